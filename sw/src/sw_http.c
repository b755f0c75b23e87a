/*
 * sw_http.c: the server, its listeners, the connection core (transport, output queue, timers,
 * limits), HTTP/1.1 request handling and the request API shared with HTTP/2.
 *
 * A connection owns two handles, the socket and one timer, and is freed in the close callback of
 * the last one. Everything that may run inside a handler call (sw_http_end() starting the next
 * pipelined request, a write error) either queues work for the dispatch loop that is already
 * running or closes from the next loop iteration, so no callback frees what its caller still uses.
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sw/log.h"
#include "sw/alog.h"
#include "sw_http_int.h"

typedef struct sw__listener {
    uv_tcp_t tcp;
    sw_http_server_t *server;
    struct sw__listener *next;
    struct ssl_ctx_st *tls; /* a reference; NULL on a plain listener */
} sw__listener_t;

/* A connection accepted over max_connections: accepted and closed at once. */
typedef struct {
    uv_tcp_t tcp;
    sw_http_server_t *server;
} sw__reject_t;

static void h1_process(sw__conn_t *c);
static void server_handle_closed(sw_http_server_t *s);
static void flusher_close(sw_http_server_t *s);
static void flusher_start(sw_http_server_t *s);
static void spare_free(sw_http_server_t *s);

/* ---- request arena ---- */

/* The first block is small enough for malloc's per-thread cache (most request heads fit in it);
 * later ones are a page. */
#define POOL_FIRST (1008 - sizeof(sw__pool_block_t))

void *sw__pool_alloc(sw__pool_t *p, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    sw__pool_block_t *b = p->head;
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = size > 2048 ? size : b == NULL ? POOL_FIRST : 4096 - sizeof(*b);
        if (cap < size)
            cap = 4096 - sizeof(*b);
        if ((b = malloc(sizeof(*b) + cap)) == NULL)
            return NULL;
        b->used = 0;
        b->cap = cap;
        /* A big block goes behind the current one so the current one keeps its free space. */
        if (size > 2048 && p->head != NULL) {
            b->next = p->head->next;
            p->head->next = b;
        } else {
            b->next = p->head;
            p->head = b;
        }
    }
    void *r = b->data + b->used;
    b->used += size;
    return r;
}

char *sw__pool_strndup(sw__pool_t *p, const void *s, size_t len)
{
    char *r = sw__pool_alloc(p, len + 1);
    if (r == NULL)
        return NULL;
    memcpy(r, s, len);
    r[len] = '\0';
    return r;
}

void sw__pool_dispose(sw__pool_t *p)
{
    sw__pool_block_t *b = p->head, *n;
    for (; b != NULL; b = n) {
        n = b->next;
        free(b);
    }
    p->head = NULL;
}

int sw__pool_reset(sw__pool_t *p)
{
    sw__pool_block_t *b = p->head, *n, *keep = NULL;
    for (; b != NULL; b = n) {
        n = b->next;
        if (keep == NULL && b->cap == POOL_FIRST)
            keep = b;
        else
            free(b);
    }
    if ((p->head = keep) != NULL) {
        keep->next = NULL;
        keep->used = 0;
    }
    return keep != NULL;
}

/* ---- output queue ---- */

#define CHUNK_MIN 16384
/* The first chunk of an empty queue: a small response fits whole, and the block stays within
 * malloc's per-thread cache (1032 bytes); a 16 KB block per response went through _int_malloc
 * and _int_free every time. Later chunks are CHUNK_MIN. Not the request arena's 1008 bytes: the
 * cache keeps 7 blocks per size, and 8 streams' arenas and chunks in one bin overflow it
 * (callgrind: 2 % more instructions per h2c request with both at 1024). */
#define CHUNK_FIRST (1024 - sizeof(sw__chunk_t))

void sw__queue_init(sw__queue_t *q)
{
    q->head = q->tail = NULL;
    q->bytes = 0;
    q->spare = NULL;
}

static void chunk_free(sw__chunk_t *k)
{
    sw_rbuf_unref(k->rb);
    free(k);
}

/* An emptied chunk of the first size is kept as the queue's spare: the next small response
 * reuses it instead of a malloc() and free() each (64 streams' chunks in flight overflow malloc's
 * per-thread cache). Its bytes are poisoned while it waits. */
static void chunk_release(sw__queue_t *q, sw__chunk_t *k)
{
    if (k->cap != CHUNK_FIRST || q->spare != NULL) {
        chunk_free(k);
        return;
    }
    SW__POISON(k->data, k->cap);
    q->spare = k;
}

void sw__queue_reset(sw__queue_t *q)
{
    sw__chunk_t *k = q->head, *n;
    for (; k != NULL; k = n) {
        n = k->next;
        chunk_release(q, k);
    }
    q->head = q->tail = NULL;
    q->bytes = 0;
}

void sw__queue_dispose(sw__queue_t *q)
{
    sw__queue_reset(q);
    free(q->spare);
    q->spare = NULL;
}

static void queue_push(sw__queue_t *q, sw__chunk_t *k)
{
    k->next = NULL;
    if (q->tail != NULL)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
    q->bytes += k->len;
}

int sw__queue_copy(sw__queue_t *q, const void *p, size_t len)
{
    if (len == 0)
        return 0;
    sw__chunk_t *t = q->tail;
    if (t != NULL && t->rb == NULL && !t->sealed) {
        size_t room = t->cap - (size_t)(t->p + t->len - t->data);
        if (room >= len) {
            memcpy((uint8_t *)t->p + t->len, p, len);
            t->len += len;
            q->bytes += len;
            return 0;
        }
    }
    /* After a referenced chunk, a small copy is most likely an HTTP/2 frame header followed by
     * another reference: do not allocate a whole CHUNK_MIN for its 9 bytes. */
    size_t min = t == NULL ? CHUNK_FIRST : t->rb != NULL ? 64 : CHUNK_MIN;
    size_t cap = len > min ? len : min;
    sw__chunk_t *k = q->spare;
    if (cap == CHUNK_FIRST && k != NULL) {
        SW__UNPOISON(k->data, k->cap);
        q->spare = NULL;
    } else if ((k = malloc(sizeof(*k) + cap)) == NULL) {
        return SW_ERR_NOMEM;
    }
    k->rb = NULL;
    k->cap = cap;
    k->sealed = 0;
    k->p = k->data;
    memcpy(k->data, p, len);
    k->len = len;
    queue_push(q, k);
    return 0;
}

int sw__queue_rbuf(sw__queue_t *q, sw_rbuf_t *b, size_t off, size_t len)
{
    if (len == 0)
        return 0;
    /* Small pieces are cheaper copied than referenced. */
    if (len < 1024)
        return sw__queue_copy(q, b->data + off, len);
    sw__chunk_t *k = malloc(sizeof(*k));
    if (k == NULL)
        return SW_ERR_NOMEM;
    k->rb = sw_rbuf_ref(b);
    k->cap = 0;
    k->sealed = 1;
    k->p = b->data + off;
    k->len = len;
    queue_push(q, k);
    return 0;
}

void sw__queue_consume(sw__queue_t *q, size_t len)
{
    while (len > 0 && q->head != NULL) {
        sw__chunk_t *k = q->head;
        size_t n = len < k->len ? len : k->len;
        k->p += n;
        k->len -= n;
        q->bytes -= n;
        len -= n;
        if (k->len == 0) {
            q->head = k->next;
            if (q->head == NULL)
                q->tail = NULL;
            chunk_release(q, k);
        }
    }
}

int sw__queue_move(sw__queue_t *dst, sw__queue_t *src, size_t len)
{
    while (len > 0 && src->head != NULL) {
        sw__chunk_t *k = src->head;
        size_t n = len < k->len ? len : k->len;
        int rv = k->rb != NULL ? sw__queue_rbuf(dst, k->rb, (size_t)(k->p - k->rb->data), n)
                               : sw__queue_copy(dst, k->p, n);
        if (rv != 0)
            return rv;
        sw__queue_consume(src, n);
        len -= n;
    }
    return 0;
}

size_t sw__queue_read(sw__queue_t *q, uint8_t *out, size_t len)
{
    size_t done = 0;
    while (done < len && q->head != NULL) {
        sw__chunk_t *k = q->head;
        size_t n = len - done < k->len ? len - done : k->len;
        memcpy(out + done, k->p, n);
        done += n;
        sw__queue_consume(q, n);
    }
    return done;
}

/* ---- server ---- */

void sw_http_server_config_init(sw_http_server_config_t *cfg)
{
    cfg->max_header_bytes = 16 * 1024;
    cfg->max_body_bytes = 1024 * 1024;
    cfg->max_conn_body_bytes = 0;
    cfg->max_server_body_bytes = 64 * 1024 * 1024;
    cfg->header_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->max_connections = 10000;
    cfg->max_streams = 256;
    cfg->notsent_lowat = 256 * 1024;
    cfg->send_timeout_ms = 0;
    cfg->drain_timeout_ms = 2000;
    cfg->server_name = "shortwave";
}

int sw_http_server_new(sw_http_server_t **out, uv_loop_t *loop, const sw_http_server_config_t *cfg,
                       sw_http_handler_cb cb, void *data)
{
    sw_http_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SW_ERR_NOMEM;
    s->loop = loop;
    if (cfg != NULL)
        s->cfg = *cfg;
    else
        sw_http_server_config_init(&s->cfg);
    if (s->cfg.max_header_bytes < 256)
        s->cfg.max_header_bytes = 256;
    if (s->cfg.max_streams == 0)
        s->cfg.max_streams = 1;
    /* A body of max_body_bytes must fit under both caps: a client told REFUSED_STREAM may retry,
     * and would be refused again for ever. */
    if (s->cfg.max_conn_body_bytes == 0)
        s->cfg.max_conn_body_bytes =
            s->cfg.max_body_bytes <= SIZE_MAX / 2 ? 2 * s->cfg.max_body_bytes : SIZE_MAX;
    if (s->cfg.max_conn_body_bytes < s->cfg.max_body_bytes)
        s->cfg.max_conn_body_bytes = s->cfg.max_body_bytes;
    if (s->cfg.max_server_body_bytes < s->cfg.max_conn_body_bytes)
        s->cfg.max_server_body_bytes = s->cfg.max_conn_body_bytes;
    snprintf(s->server_name, sizeof(s->server_name), "%s",
             s->cfg.server_name != NULL ? s->cfg.server_name : "shortwave");
    s->cfg.server_name = s->server_name;
    s->cb = cb;
    s->data = data;
    s->date_sec = -1;
    *out = s;
    return 0;
}

void sw_http_server_free(sw_http_server_t *s)
{
    if (s == NULL)
        return;
    /* Only valid once sw_http_server_close() has reported everything closed (or nothing was
     * ever opened): no handle may still point at `s`. */
    spare_free(s);
    sw__h2mem_dispose(&s->h2mem);
    free(s->tls_rbuf);
    free(s->tls_stage);
    free(s);
}

void sw_http_server_stats(const sw_http_server_t *s, sw_http_stats_t *out)
{
    *out = s->stats;
}

const char *sw__server_date(sw_http_server_t *s)
{
    int64_t sec = sw_now_ms() / 1000;
    if (sec != s->date_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char mons[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        gmtime_r(&t, &tm);
        snprintf(s->date, sizeof(s->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 days[tm.tm_wday % 7], tm.tm_mday, mons[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        s->date_sec = sec;
    }
    return s->date;
}

static void on_reject_closed(uv_handle_t *h)
{
    sw__reject_t *r = h->data;
    sw_http_server_t *s = r->server;
    free(r);
    server_handle_closed(s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sw__conn_t *c = sw_container_of(h, sw__conn_t, tcp);
    if (c->tp->alloc != NULL) {
        c->tp->alloc(c, buf);
        return;
    }
    buf->base = (char *)c->in + c->in_len;
    buf->len = c->in_cap - c->in_len;
}

void sw__conn_eof(sw__conn_t *c)
{
    c->read_eof = 1;
    /* A client that half-closed after its last request still gets the queued answer; one that
     * went away while a request is unanswered aborts it with the connection. */
    if (c->proto != SW__PROTO_H2 && c->req == NULL && (c->out.bytes > 0 || c->writing)) {
        c->close_after_flush = 1;
        sw__conn_update(c);
        return;
    }
    sw__conn_close(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    sw__conn_t *c = sw_container_of(st, sw__conn_t, tcp);
    if (c->lingering) {
        if (nread < 0)
            sw__conn_close(c);
        return; /* what a client sends after our last byte (WINDOW_UPDATE, PING) is dropped */
    }
    if (nread < 0) {
        if (nread == UV_EOF) {
            sw__conn_eof(c);
            return;
        }
        c->read_eof = 1;
        sw__conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->tp->on_read(c, (const uint8_t *)buf->base, (size_t)nread);
}

static void on_connection(uv_stream_t *ls, int status)
{
    sw__listener_t *l = ls->data;
    sw_http_server_t *s = l->server;
    if (status < 0) {
        sw_log(SW_LOG_WARN, "http", "accept failed: %s", uv_strerror(status));
        return;
    }
    if (s->closing)
        return;
    if (s->stats.connections >= s->cfg.max_connections) {
        sw__reject_t *r = malloc(sizeof(*r));
        if (r == NULL)
            return;
        r->server = s;
        uv_tcp_init(s->loop, &r->tcp);
        r->tcp.data = r;
        s->handles++;
        uv_accept(ls, (uv_stream_t *)&r->tcp);
        uv_close((uv_handle_t *)&r->tcp, on_reject_closed);
        s->stats.bad_requests++;
        return;
    }
    sw__conn_t *c = sw__conn_new(s, l->tls != NULL ? &sw__transport_tls : &sw__transport_plain);
    if (c == NULL) {
        sw_log(SW_LOG_WARN, "http", "accept: out of memory");
        return;
    }
    c->fake = 0;
    int rv;
    if ((rv = uv_accept(ls, (uv_stream_t *)&c->tcp)) != 0) {
        sw_log(SW_LOG_WARN, "http", "accept failed: %s", uv_strerror(rv));
        sw__conn_close(c);
        return;
    }
    if (l->tls != NULL && sw__tls_conn_init(c, l->tls) != 0) {
        sw_log(SW_LOG_WARN, "http", "accept: out of memory");
        sw__conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        sw_addr_format(&ss, c->peer, sizeof(c->peer));
    s->stats.accepted++;
    sw__conn_update(c);
}

/* Takes ownership of the reference `tls` (NULL for plain), on failure too. */
static int listen_on(sw_http_server_t *s, const char *addr, int reuseport, struct ssl_ctx_st *tls,
                     int *bound_port, const char **err_desc)
{
    struct sockaddr_storage ss;
    if (sw_addr_parse(addr, &ss) != 0) {
        sw__tls_ctx_unref(tls);
        *err_desc = "cannot parse address";
        return SW_ERR_ADDR;
    }
    sw__listener_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        sw__tls_ctx_unref(tls);
        return SW_ERR_NOMEM;
    }
    l->tls = tls;
    /* The socket is made by hand: libuv 1.44 has no SO_REUSEPORT flag. */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err_desc = "socket() failed";
        free(l);
        return SW_ERR_ADDR;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        *err_desc = "SO_REUSEPORT failed";
        goto fail_fd;
    }
    socklen_t slen =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, slen) != 0) {
        *err_desc = errno == EADDRINUSE ? "address in use" : "bind() failed";
        goto fail_fd;
    }
    uv_tcp_init(s->loop, &l->tcp);
    l->tcp.data = l;
    l->server = s;
    s->handles++;
    flusher_start(s);
    l->next = s->listeners;
    s->listeners = l;
    if (uv_tcp_open(&l->tcp, fd) != 0) {
        close(fd);
        *err_desc = "uv_tcp_open() failed";
        return SW_ERR_ADDR; /* the listener stays on the list and closes with the server */
    }
    if (uv_listen((uv_stream_t *)&l->tcp, 511, on_connection) != 0) {
        *err_desc = "listen() failed";
        return SW_ERR_ADDR;
    }
    if (bound_port != NULL) {
        struct sockaddr_storage b;
        int blen = sizeof(b);
        uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&b, &blen);
        *bound_port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
                                                    : ((struct sockaddr_in *)&b)->sin_port);
    }
    return 0;
fail_fd:
    close(fd);
    sw__tls_ctx_unref(l->tls);
    free(l);
    return SW_ERR_ADDR;
}

int sw_http_server_listen(sw_http_server_t *s, const char *addr, int reuseport, int *bound_port,
                          const char **err_desc)
{
    const char *dummy;
    return listen_on(s, addr, reuseport, NULL, bound_port, err_desc != NULL ? err_desc : &dummy);
}

int sw_http_server_listen_tls(sw_http_server_t *s, const char *addr, int reuseport,
                              const char *cert_file, const char *key_file, int *bound_port,
                              const char **err_desc)
{
    const char *dummy;
    struct ssl_ctx_st *ctx;
    if (err_desc == NULL)
        err_desc = &dummy;
    if (s->tls_rbuf == NULL && (s->tls_rbuf = malloc(SW__TLS_RBUF_SIZE)) == NULL)
        return SW_ERR_NOMEM;
    if (s->tls_stage == NULL && (s->tls_stage = malloc(SW__TLS_RECORD)) == NULL)
        return SW_ERR_NOMEM;
    int rv = sw__tls_ctx_new(&ctx, cert_file, key_file, s->tls_err, sizeof(s->tls_err));
    if (rv != 0) {
        *err_desc = rv == SW_ERR_NOMEM ? "out of memory" : s->tls_err;
        return rv;
    }
    return listen_on(s, addr, reuseport, ctx, bound_port, err_desc);
}

int sw_http_server_reload_tls(sw_http_server_t *s, const char *cert_file, const char *key_file,
                              const char **err_desc)
{
    const char *dummy;
    struct ssl_ctx_st *ctx;
    if (err_desc == NULL)
        err_desc = &dummy;
    int n = 0;
    for (sw__listener_t *l = s->listeners; l != NULL; l = l->next)
        n += l->tls != NULL;
    if (n == 0) {
        *err_desc = "no TLS listener";
        return SW_ERR_STATE;
    }
    int rv = sw__tls_ctx_new(&ctx, cert_file, key_file, s->tls_err, sizeof(s->tls_err));
    if (rv != 0) {
        *err_desc = rv == SW_ERR_NOMEM ? "out of memory" : s->tls_err;
        return rv;
    }
    /* Connections hold their own reference on the context they started with (SSL_new() takes
     * one), so dropping the listener's reference never frees a context in use. */
    for (sw__listener_t *l = s->listeners; l != NULL; l = l->next) {
        if (l->tls == NULL)
            continue;
        sw__tls_ctx_ref(ctx);
        sw__tls_ctx_unref(l->tls);
        l->tls = ctx;
    }
    sw__tls_ctx_unref(ctx);
    return 0;
}

static void server_handle_closed(sw_http_server_t *s)
{
    if (--s->handles == 0 && s->closing && s->on_closed != NULL) {
        void (*cb)(void *) = s->on_closed;
        s->on_closed = NULL;
        cb(s->on_closed_data);
    }
}

static void on_listener_closed(uv_handle_t *h)
{
    sw__listener_t *l = h->data;
    sw_http_server_t *s = l->server;
    sw__tls_ctx_unref(l->tls);
    free(l);
    server_handle_closed(s);
}

static void on_close_timer_closed(uv_handle_t *h)
{
    server_handle_closed(h->data);
}

static void close_timer_maybe_done(sw_http_server_t *s)
{
    if (s->conns == NULL && s->close_timer_state != 3) {
        s->close_timer_state = 3;
        uv_close((uv_handle_t *)&s->close_timer, on_close_timer_closed);
        flusher_close(s);
    }
}

static void on_close_timer(uv_timer_t *t)
{
    sw_http_server_t *s = t->data;
    if (s->close_timer_state == 1) {
        /* Draining: abort what is not answered, send GOAWAY, close idle connections, and give
         * the rest a grace period to write out what is queued. */
        s->close_timer_state = 2;
        for (sw__conn_t *c = s->conns, *n; c != NULL; c = n) {
            n = c->next;
            c->shutting_down = 1;
            if (c->proto == SW__PROTO_H2) {
                sw__h2_goaway(c);
                c->close_after_flush = 1;
                sw__conn_flush(c);
                sw__conn_update(c);
            } else if (c->req != NULL && c->req->state == SW__REQ_STARTED) {
                /* A response under way (a download) finishes, then the connection closes. */
                c->req->keep_alive = 0;
            } else if (c->req != NULL && c->req->state != SW__REQ_RECV) {
                sw__req_abort(c->req);
                c->close_after_flush = 1;
                sw__conn_update(c);
            } else if (c->req == NULL && (c->out.bytes > 0 || c->writing)) {
                c->close_after_flush = 1; /* an answer still being written */
                sw__conn_update(c);
            } else {
                sw__conn_close(c);
            }
        }
        uv_timer_start(&s->close_timer, on_close_timer, s->cfg.drain_timeout_ms, 0);
    } else if (s->close_timer_state == 2) {
        for (sw__conn_t *c = s->conns, *n; c != NULL; c = n) {
            n = c->next;
            sw__conn_close(c);
        }
    }
    close_timer_maybe_done(s);
}

void sw_http_server_close(sw_http_server_t *s, void (*on_closed)(void *data), void *data)
{
    if (s->closing)
        return;
    s->closing = 1;
    s->on_closed = on_closed;
    s->on_closed_data = data;
    for (sw__listener_t *l = s->listeners, *n; l != NULL; l = n) {
        n = l->next;
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    }
    s->listeners = NULL;
    /* The rest happens from the timer so that a handler may call this safely. */
    uv_timer_init(s->loop, &s->close_timer);
    s->close_timer.data = s;
    s->handles++;
    s->close_timer_state = 1;
    uv_timer_start(&s->close_timer, on_close_timer, 0, 0);
}

/* ---- connection core ---- */

static void plain_on_read(sw__conn_t *c, const uint8_t *buf, size_t len)
{
    sw__conn_feed(c, buf, len);
}

static void on_write(uv_write_t *w, int status)
{
    sw__conn_t *c = w->data;
    sw__conn_written(c, status < 0 ? 0 : c->wr_bytes, status);
}

static void plain_flush(sw__conn_t *c)
{
    if (c->writing || c->out.head == NULL || c->closing)
        return;
    uv_buf_t iov[64];
    unsigned n = 0;
    size_t bytes = 0;
    for (sw__chunk_t *k = c->out.head; k != NULL && n < SW_ARRAY_SIZE(iov); k = k->next) {
        k->sealed = 1;
        iov[n++] = uv_buf_init((char *)k->p, (unsigned)k->len);
        bytes += k->len;
    }
    c->wr_bytes = bytes;
    int rv = sw__conn_write(c, iov, n, on_write);
    if (rv != 0)
        sw__conn_written(c, rv > 0 ? bytes : 0, rv > 0 ? 0 : rv);
}

const sw__transport_t sw__transport_plain = {
    .name = "plain", .on_read = plain_on_read, .flush = plain_flush};

static void on_conn_closed(uv_handle_t *h)
{
    sw__conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    sw_http_server_t *s = c->server;
    if (c->flush_pprev != NULL) {
        *c->flush_pprev = c->flush_next;
        if (c->flush_next != NULL)
            c->flush_next->flush_pprev = c->flush_pprev;
    }
    if (c->tp->dispose != NULL)
        c->tp->dispose(c);
    sw__tunnel_free(c->tunnel);
    sw__queue_dispose(&c->out);
    free(c->in);
    free(c);
    server_handle_closed(s);
}

void sw__conn_handle_closed(uv_handle_t *h)
{
    on_conn_closed(h);
}

static void on_conn_timer(uv_timer_t *t);

sw__conn_t *sw__conn_new(sw_http_server_t *s, const sw__transport_t *tp)
{
    sw__conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->in_cap = s->cfg.max_header_bytes + 1024;
    if ((c->in = malloc(c->in_cap)) == NULL) {
        free(c);
        return NULL;
    }
    c->server = s;
    c->tp = tp;
    c->fake = 1;
    sw__queue_init(&c->out);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    s->handles++;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->pprev = &c->next;
    c->pprev = &s->conns;
    s->conns = c;
    s->stats.connections++;
    c->head_start = c->last_active = uv_now(s->loop);
    snprintf(c->peer, sizeof(c->peer), "-");
    sw__http1_head_init(&c->head, s->cfg.max_header_bytes);
    return c;
}

void sw__conn_close(sw__conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->proto == SW__PROTO_H2) {
        sw__h2_abort_all(c);
        sw__h2_dispose(c);
    } else if (c->req != NULL) {
        sw__req_abort(c->req);
    }
    sw_http_server_t *s = c->server;
    *c->pprev = c->next;
    if (c->next != NULL)
        c->next->pprev = c->pprev;
    if (!c->lingering)
        s->stats.connections--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    if (c->tunnel != NULL)
        sw__tunnel_close(c);
    if (s->closing && s->close_timer_state != 0)
        close_timer_maybe_done(s);
}

static void on_conn_timer(uv_timer_t *t)
{
    sw__conn_t *c = t->data;
    if (c->tp_pump && !c->close_now) {
        c->tp_pump = 0;
        c->tp->on_read(c, NULL, 0);
        return;
    }
    if (c->proto != SW__PROTO_H2 && c->req == NULL && c->in_len > 0 && !c->lingering) {
        /* A head that did not arrive in time: slowloris or a dead client. */
        c->server->stats.bad_requests++;
        sw_log(SW_LOG_DEBUG, "http", "%s: request head timed out", c->peer);
    }
    sw__conn_close(c);
}

static void on_linger_shutdown(uv_shutdown_t *req, int status)
{
    sw__conn_t *c = req->data;
    if (status != 0 && status != UV_ECANCELED)
        sw__conn_close(c);
}

/*
 * Ends a connection whose last answer is out. Closing the socket at once would make the kernel
 * answer with a reset any bytes the client still sends (an HTTP/2 client's WINDOW_UPDATEs for the
 * last DATA frames, a pipelined request), and a reset makes the client's kernel drop what it has
 * received and not yet read: the end of the response. So send FIN, read and drop until the
 * client's FIN, for at most SW__LINGER_MS.
 */
static void conn_linger(sw__conn_t *c)
{
    if (c->fake || c->read_eof) {
        sw__conn_close(c);
        return;
    }
    /* Done with HTTP: no longer counted as open (metrics, max_connections). */
    c->lingering = 1;
    c->server->stats.connections--;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_linger_shutdown) != 0) {
        sw__conn_close(c);
        return;
    }
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
    uv_timer_start(&c->timer, on_conn_timer, SW__LINGER_MS, 0);
}

void sw__conn_close_soon(sw__conn_t *c)
{
    if (c->closing)
        return;
    c->close_after_flush = 1;
    c->close_now = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    uv_timer_start(&c->timer, on_conn_timer, 0, 0);
}

/* Re-decides reading and the timer from the connection's state; call after every event. */
void sw__conn_update(sw__conn_t *c)
{
    if (c->closing || c->close_now || c->lingering)
        return;
    sw_http_server_t *s = c->server;
    if (c->close_after_flush && c->out.bytes == 0 && !c->writing &&
        (c->proto != SW__PROTO_H2 || !sw__h2_has_streams(c))) {
        if (c->tp->shutdown == NULL || !c->tp->shutdown(c)) {
            conn_linger(c);
            return;
        }
    }
    /* An HTTP/2 connection shutting down still reads: WINDOW_UPDATEs let answered streams end. */
    int want_read = (!c->close_after_flush || (c->proto == SW__PROTO_H2 && c->shutting_down)) &&
                    c->out.bytes < SW__OUT_SOFT_LIMIT && c->in_len < c->in_cap && !c->fake;
    if (c->proto == SW__PROTO_H1 && c->req != NULL && c->req->state != SW__REQ_RECV &&
        c->in_len >= c->in_cap)
        want_read = 0;
    if (want_read && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    } else if (!want_read && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    if (c->tunnel != NULL)
        sw__tunnel_update(c);
    /* Input the transport held back (decrypted bytes that did not fit): resume it from the
     * timer, never from here, since this runs inside protocol and handler calls. */
    c->tp_pump = 0;
    if (want_read && c->tp->pending != NULL && c->tp->pending(c)) {
        c->tp_pump = 1;
        uv_timer_start(&c->timer, on_conn_timer, 0, 0);
        return;
    }

    uint64_t now = uv_now(s->loop), deadline = 0;
    if (c->out.bytes > 0) {
        /* A client that stopped reading. */
        deadline = c->last_active +
                   (s->cfg.send_timeout_ms ? s->cfg.send_timeout_ms : s->cfg.idle_timeout_ms);
    } else if (c->proto == SW__PROTO_TUNNEL) {
        deadline = 0; /* the tunnelled protocol keeps its own timeouts (websocket pings) */
    } else if (c->proto == SW__PROTO_H2) {
        /* Body bytes count against the caps: a client that goes quiet holding some (a body half
         * sent) is closed like an idle one, not kept for as long as its streams stay open. */
        if (!sw__h2_has_streams(c) || c->body_bytes > 0)
            deadline = c->last_active + s->cfg.idle_timeout_ms;
    } else if (c->req == NULL) {
        if (c->in_len > 0 || c->proto == SW__PROTO_NONE)
            deadline = c->head_start + s->cfg.header_timeout_ms;
        else
            deadline = c->last_active + s->cfg.idle_timeout_ms;
    } else if (c->req->state == SW__REQ_RECV) {
        deadline = c->last_active + s->cfg.idle_timeout_ms;
    }
    if (deadline == 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_conn_timer, deadline > now ? deadline - now : 0, 0);
}

int sw__conn_queue(sw__conn_t *c, sw_rbuf_t *rb, const void *p, size_t len)
{
    if (rb != NULL)
        return sw__queue_rbuf(&c->out, rb, (const uint8_t *)p - rb->data, len);
    return sw__queue_copy(&c->out, p, len);
}

int sw__conn_write(sw__conn_t *c, uv_buf_t *bufs, unsigned n, uv_write_cb cb)
{
    /* uv_write() would write at once too, but it re-arms the socket in epoll every time. */
    int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
    if (w < 0 && w != UV_EAGAIN)
        return w;
    size_t done = w > 0 ? (size_t)w : 0;
    unsigned i = 0;
    while (i < n && done >= bufs[i].len)
        done -= bufs[i++].len;
    if (i == n)
        return 1;
    bufs[i].base += done;
    bufs[i].len -= done;
    c->wreq.data = c;
    int rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs + i, n - i, cb);
    if (rv != 0)
        return rv;
    c->writing = 1;
    return 0;
}

static void on_flush_check(uv_check_t *h)
{
    sw_http_server_t *s = h->data;
    sw__conn_t *list = s->flush_list;
    s->flush_list = NULL;
    /* A connection written here may queue itself again (more frames after a write that went
     * out at once): it goes on the new list, for the next iteration. Nothing is freed before the
     * loop's close phase, so the taken list stays valid. */
    while (list != NULL) {
        sw__conn_t *c = list;
        list = c->flush_next;
        c->flush_next = NULL;
        c->flush_pprev = NULL;
        if (!c->closing)
            c->tp->flush(c);
    }
    if (s->flush_list == NULL)
        uv_idle_stop(&s->flush_idle);
}

static void on_flush_idle(uv_idle_t *h)
{
    (void)h; /* only keeps the loop from blocking while connections wait for on_flush_check() */
}

static void flusher_close(sw_http_server_t *s)
{
    if (s->flush_state != 1)
        return;
    s->flush_state = 2;
    uv_close((uv_handle_t *)&s->flush_check, on_close_timer_closed);
    uv_close((uv_handle_t *)&s->flush_idle, on_close_timer_closed);
}

/* Started by the first listen, before the owner's own check handles: libuv runs check handles
 * newest first, so theirs (the edge publishing its counters) run before the output they count
 * is written. */
static void flusher_start(sw_http_server_t *s)
{
    if (s->flush_state != 0)
        return;
    uv_check_init(s->loop, &s->flush_check);
    uv_idle_init(s->loop, &s->flush_idle);
    s->flush_check.data = s;
    s->flush_idle.data = s;
    uv_check_start(&s->flush_check, on_flush_check);
    uv_unref((uv_handle_t *)&s->flush_check);
    s->handles += 2;
    s->flush_state = 1;
}

void sw__conn_flush(sw__conn_t *c)
{
    if (c->closing || c->flush_pprev != NULL) /* closing, or on the list already */
        return;
    if (c->fake) {
        c->tp->flush(c); /* no loop behind it (fuzzing) */
        return;
    }
    sw_http_server_t *s = c->server;
    c->flush_next = s->flush_list;
    if (s->flush_list != NULL)
        s->flush_list->flush_pprev = &c->flush_next;
    c->flush_pprev = &s->flush_list;
    s->flush_list = c;
    uv_idle_start(&s->flush_idle, on_flush_idle);
}

void sw__conn_written(sw__conn_t *c, size_t n, int err)
{
    c->writing = 0;
    if (c->closing)
        return;
    if (err < 0) {
        sw__conn_close(c);
        return;
    }
    sw__queue_consume(&c->out, n);
    c->server->stats.bytes_out += n;
    c->last_active = uv_now(c->server->loop);
    if (c->proto == SW__PROTO_H2)
        sw__h2_send(c);
    sw__conn_flush(c);
    sw__conn_update(c);
}

void sw__conn_feed(sw__conn_t *c, const uint8_t *buf, size_t len)
{
    if (c->closing || c->close_now || (c->close_after_flush && c->proto != SW__PROTO_H2))
        return;
    c->last_active = uv_now(c->server->loop);
    if (c->proto == SW__PROTO_H2) {
        sw__h2_feed(c, buf, len);
        return;
    }
    if (c->proto == SW__PROTO_TUNNEL) {
        sw__tunnel_feed(c, buf, len);
        return;
    }
    if (buf == c->in + c->in_len) {
        c->in_len += len;
    } else {
        size_t room = c->in_cap - c->in_len;
        if (len > room) {
            /* Only a transport that ignores backpressure gets here. */
            sw__conn_close(c);
            return;
        }
        memcpy(c->in + c->in_len, buf, len);
        c->in_len += len;
    }
    if (c->proto == SW__PROTO_NONE && !c->h1_only) {
        size_t n = c->in_len < sizeof(sw__h2_preface) ? c->in_len : sizeof(sw__h2_preface);
        if (memcmp(c->in, sw__h2_preface, n) == 0) {
            if (n < sizeof(sw__h2_preface)) {
                sw__conn_update(c);
                return;
            }
            if (sw__h2_init(c) != 0) {
                sw__conn_close(c);
                return;
            }
            c->proto = SW__PROTO_H2;
            size_t l = c->in_len;
            c->in_len = 0;
            sw__h2_feed(c, c->in, l);
            return;
        }
    }
    c->proto = SW__PROTO_H1;
    h1_process(c);
}

/* ---- requests ---- */

/* Up to SPARE_MAX freed requests of a server are kept with their first arena block and header
 * array: a request then costs no malloc() of its own (callgrind: 19,480 -> 18,700 instructions
 * per h2c playlist request). */
#define SPARE_MAX  64
#define SPARE_HDRS 16

/* A spare request is poisoned under AddressSanitizer while it waits (SW__POISON), all but the
 * pointers that hold it and its memory: LeakSanitizer does not follow pointers stored in poisoned
 * memory, and would report what they hold as leaked. */
static void spare_hide(sw__req_t *r)
{
    if (r->pool.head != NULL)
        SW__POISON(r->pool.head->data, r->pool.head->cap);
    if (r->hdrs != NULL)
        SW__POISON(r->hdrs, r->hcap * sizeof(*r->hdrs));
    SW__POISON(r, sizeof(*r));
    SW__UNPOISON(&r->next, sizeof(r->next));
    SW__UNPOISON(&r->pool, sizeof(r->pool));
    SW__UNPOISON(&r->hdrs, sizeof(r->hdrs));
    SW__UNPOISON(&r->q.spare, sizeof(r->q.spare));
}

static void spare_show(sw__req_t *r)
{
    SW__UNPOISON(r, sizeof(*r));
    if (r->pool.head != NULL)
        SW__UNPOISON(r->pool.head->data, r->pool.head->cap);
    if (r->hdrs != NULL)
        SW__UNPOISON(r->hdrs, r->hcap * sizeof(*r->hdrs));
}

sw__req_t *sw__req_new(sw__conn_t *c)
{
    sw_http_server_t *s = c->server;
    sw__req_t *r = s->spare;
    if (r != NULL) {
        spare_show(r);
        s->spare = r->next;
        s->nspare--;
        sw__pool_t pool = r->pool;
        sw_http_header_t *hdrs = r->hdrs;
        size_t hcap = r->hcap;
        sw__chunk_t *qspare = r->q.spare;
        memset(r, 0, sizeof(*r));
        r->pool = pool;
        r->hdrs = hdrs;
        r->hcap = hcap;
        r->q.spare = qspare;
    } else if ((r = calloc(1, sizeof(*r))) == NULL) {
        return NULL;
    }
    r->conn = c;
    r->pub.server = s;
    r->pub.query = "";
    r->pub.authority = "";
    r->content_length = -1;
    r->start_ms = uv_now(s->loop);
    _Static_assert(sizeof(r->pub.peer) == sizeof(c->peer), "peer buffers differ");
    memcpy(r->pub.peer, c->peer, sizeof(r->pub.peer));
    return r; /* r->q: zeroed, an empty queue, maybe with its spare chunk */
}

static void req_destroy(sw__req_t *r)
{
    sw__queue_dispose(&r->q);
    free(r->hdrs);
    sw__pool_dispose(&r->pool);
    free(r);
}

void sw__req_free(sw__req_t *r)
{
    if (r == NULL)
        return;
    sw_http_server_t *s = r->pub.server;
    sw__queue_reset(&r->q);
    sw__body_release(r);
    if (s->nspare < SPARE_MAX && r->hcap <= SPARE_HDRS && sw__pool_reset(&r->pool)) {
        r->next = s->spare;
        s->spare = r;
        s->nspare++;
        spare_hide(r);
        return;
    }
    req_destroy(r);
}

static void spare_free(sw_http_server_t *s)
{
    for (sw__req_t *r = s->spare, *n; r != NULL; r = n) {
        spare_show(r);
        n = r->next;
        req_destroy(r);
    }
    s->spare = NULL;
    s->nspare = 0;
}

int sw__method_bodyless(const char *m)
{
    if (m == NULL)
        return 0;
    /* Methods are case-sensitive (RFC 9110 9.1); the first letter settles most of them. */
    switch (m[0]) {
    case 'G':
        return strcmp(m, "GET") == 0;
    case 'H':
        return strcmp(m, "HEAD") == 0;
    case 'O':
        return strcmp(m, "OPTIONS") == 0;
    case 'T':
        return strcmp(m, "TRACE") == 0;
    default:
        return 0;
    }
}

int sw__body_grow(sw__req_t *r, size_t cap)
{
    sw__conn_t *c = r->conn;
    sw_http_server_t *s = c->server;
    size_t more = cap - r->body_cap;
    /* Both counters stay within their caps, so the differences cannot wrap. */
    if (more > s->cfg.max_conn_body_bytes - c->body_bytes)
        return SW__BODY_CONN_CAP;
    if (more > s->cfg.max_server_body_bytes - s->stats.body_bytes)
        return SW__BODY_SERVER_CAP;
    uint8_t *b = realloc(r->body, cap);
    if (b == NULL)
        return SW_ERR_NOMEM;
    r->body = b;
    r->body_cap = cap;
    c->body_bytes += more;
    s->stats.body_bytes += more;
    return 0;
}

void sw__body_release(sw__req_t *r)
{
    if (r->body_cap == 0)
        return;
    r->conn->body_bytes -= r->body_cap;
    r->conn->server->stats.body_bytes -= r->body_cap;
    free(r->body);
    r->body = NULL;
    r->body_cap = 0;
    r->body_len = 0;
}

int sw__req_add_header(sw__req_t *r, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (r->nhdrs == r->hcap) {
        size_t cap = r->hcap ? r->hcap * 2 : SPARE_HDRS;
        sw_http_header_t *h = realloc(r->hdrs, cap * sizeof(*h));
        if (h == NULL)
            return SW_ERR_NOMEM;
        r->hdrs = h;
        r->hcap = cap;
    }
    char *n = sw__pool_strndup(&r->pool, name, nlen), *v = sw__pool_strndup(&r->pool, value, vlen);
    if (n == NULL || v == NULL)
        return SW_ERR_NOMEM;
    r->hdrs[r->nhdrs].name = n;
    r->hdrs[r->nhdrs].value = v;
    r->nhdrs++;
    return 0;
}

void sw_http_server_set_alog(sw_http_server_t *s, const sw_alog_t *log)
{
    s->alog = log;
}

void sw__req_log(sw__req_t *r, int aborted)
{
    const sw_alog_t *alog = r->conn->server->alog;
    if (alog != NULL && alog->fd >= 0) {
        sw_alog_rec_t rec = {
            .peer = r->pub.peer,
            .method = r->pub.method,
            .path = r->pub.path,
            .query = r->pub.query,
            .version = r->pub.version,
            .status = r->status,
            .aborted = aborted,
            .bytes = r->is_head ? 0 : r->body_sent,
            .duration_ms = (int64_t)(uv_now(r->conn->server->loop) - r->start_ms),
            .upstream_ms = -1,
        };
        sw_alog_write(alog, &rec);
    }
    if (!sw_log_enabled(SW_LOG_DEBUG))
        return;
    const char *proto = r->pub.version == 20   ? "HTTP/2"
                        : r->pub.version == 10 ? "HTTP/1.0"
                                               : "HTTP/1.1";
    sw_log(SW_LOG_DEBUG, "http", "%s \"%s %s%s%s\" %d %llu %s %llums%s", r->pub.peer,
           r->pub.method ? r->pub.method : "-", r->pub.path ? r->pub.path : "-",
           r->pub.query[0] ? "?" : "", r->pub.query, r->status, (unsigned long long)r->bytes_out,
           proto, (unsigned long long)(uv_now(r->conn->server->loop) - r->start_ms),
           aborted ? " aborted" : "");
}

/* The client went away (or the server is closing) before the response ended. */
void sw__req_abort(sw__req_t *r)
{
    sw__conn_t *c = r->conn;
    if (r->state >= SW__REQ_HANDLER && r->state != SW__REQ_ENDED) {
        sw__req_log(r, 1);
        r->state = SW__REQ_ENDED;
        if (r->abort_cb != NULL)
            r->abort_cb(&r->pub, r->abort_data);
    }
    if (c->proto != SW__PROTO_H2) {
        if (c->req == r)
            c->req = NULL;
        sw__req_free(r);
    }
}

const char *sw_http_req_header(const sw_http_req_t *req, const char *name)
{
    const sw__req_t *r = (const sw__req_t *)req;
    int c0 = tolower((unsigned char)name[0]);
    for (size_t i = 0; i < r->nhdrs; i++) {
        const char *n = r->hdrs[i].name;
        if (tolower((unsigned char)n[0]) == c0 && strcasecmp(n, name) == 0)
            return r->hdrs[i].value;
    }
    return NULL;
}

void sw_http_req_on_abort(sw_http_req_t *req, void (*cb)(sw_http_req_t *req, void *data),
                          void *data)
{
    sw__req_t *r = (sw__req_t *)req;
    r->abort_cb = cb;
    r->abort_data = data;
}

/* ---- HTTP/1.1 ---- */

/* The server answers by itself (400, 413, 431, ...) and closes after writing. */
static void h1_fail(sw__conn_t *c, int status, const char *why)
{
    sw_http_server_t *s = c->server;
    char body[160];
    int blen = snprintf(body, sizeof(body), "%s\n", why);
    sw_str_t h;
    sw_str_init(&h);
    int version = c->head.version ? c->head.version : 11;
    sw__http1_format_head(&h, version, status, NULL, 0, blen, 0, 0, sw__server_date(s),
                          s->server_name);
    sw_str_printf(&h, "%s", body);
    if (!h.failed)
        sw__conn_queue(c, NULL, h.p, h.len);
    sw_str_dispose(&h);
    s->stats.bad_requests++;
    sw_log(SW_LOG_DEBUG, "http", "%s: %d %s", c->peer, status, why);
    c->close_after_flush = 1;
    c->in_len = 0;
    sw__conn_flush(c);
}

static int h1_make_req(sw__conn_t *c)
{
    sw__http1_head_t *h = &c->head;
    sw__req_t *r = sw__req_new(c);
    if (r == NULL)
        return SW_ERR_NOMEM;
    const char *b = (const char *)c->in;
    r->pub.method = sw__pool_strndup(&r->pool, b + h->method.off, h->method.len);
    r->pub.path = h->path.len ? sw__pool_strndup(&r->pool, b + h->path.off, h->path.len)
                              : sw__pool_strndup(&r->pool, "/", 1);
    r->pub.query = sw__pool_strndup(&r->pool, b + h->query.off, h->query.len);
    sw__span_t a = h->authority;
    if (a.len == 0 && h->host_index >= 0)
        a = h->headers[h->host_index].value;
    r->pub.authority = sw__pool_strndup(&r->pool, b + a.off, a.len);
    if (r->pub.method == NULL || r->pub.path == NULL || r->pub.query == NULL ||
        r->pub.authority == NULL)
        goto fail;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (sw__req_add_header(r, b + h->headers[i].name.off, h->headers[i].name.len,
                               b + h->headers[i].value.off, h->headers[i].value.len) != 0)
            goto fail;
    }
    r->pub.version = h->version;
    r->keep_alive = h->keep_alive;
    r->is_head = strcmp(r->pub.method, "HEAD") == 0;
    c->req = r;
    return 0;
fail:
    sw__req_free(r);
    return SW_ERR_NOMEM;
}

/* Checks a request body announced by the head (Content-Length above 0) and makes room for it.
 * Returns 0, or answers by itself (400, 413, 503 or 500), frees the request and returns -1. The
 * body is not read: the connection closes after the answer. */
static int h1_body(sw__conn_t *c, sw__req_t *r)
{
    sw_http_server_t *s = c->server;
    int st = 0;
    char why[64];
    if (sw__method_bodyless(r->pub.method)) {
        st = 400;
        snprintf(why, sizeof(why), "a %s request takes no body", r->pub.method);
    } else {
        r->body_want = (size_t)c->head.content_length;
        int rv = sw__body_grow(r, r->body_want);
        if (rv == 0)
            return 0;
        st = rv == SW__BODY_CONN_CAP ? 413 : rv == SW__BODY_SERVER_CAP ? 503 : 500;
        snprintf(why, sizeof(why), "%s",
                 st == 413   ? "request body over this connection's buffer"
                 : st == 503 ? "too many request bodies in progress, try again later"
                             : "out of memory");
        if (st != 500)
            s->stats.bodies_refused++;
    }
    c->req = NULL;
    sw__req_free(r);
    h1_fail(c, st, why);
    return -1;
}

static void h1_consume_input(sw__conn_t *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

static void h1_call_handler(sw__conn_t *c, sw__req_t *r)
{
    sw_http_server_t *s = c->server;
    r->state = SW__REQ_HANDLER;
    if (r->body_len > 0)
        r->pub.body = r->body;
    r->pub.body_len = r->body_len;
    s->stats.requests[r->pub.version == 10 ? 0 : 1]++;
    s->cb(s->data, &r->pub);
}

/* Parses and dispatches requests, strictly one at a time: the next head is looked at only once
 * the previous response has ended. Re-entered through sw_http_end(); the guard makes the
 * outer loop do the work instead of recursing. */
static void h1_process(sw__conn_t *c)
{
    if (c->processing)
        return;
    c->processing = 1;
    while (!c->closing && !c->close_after_flush) {
        sw__req_t *r = c->req;
        if (r != NULL) {
            if (r->state != SW__REQ_RECV)
                break;
            size_t n = r->body_want - r->body_len;
            if (n > c->in_len)
                n = c->in_len;
            if (n > 0) {
                memcpy(r->body + r->body_len, c->in, n);
                r->body_len += n;
                h1_consume_input(c, n);
            }
            if (r->body_len < r->body_want)
                break;
            h1_call_handler(c, r);
            continue;
        }
        if (c->in_len == 0)
            break;
        if (c->head._scanned == 0)
            c->head_start = uv_now(c->server->loop);
        const char *why = NULL;
        int rv = sw__http1_parse_head(c->in, c->in_len, &c->head, &why);
        if (rv == SW__HTTP1_INCOMPLETE) {
            if (c->in_len >= c->in_cap)
                h1_fail(c, 431, "request head too large");
            break;
        }
        if (rv == SW__HTTP1_ERROR) {
            h1_fail(c, c->head.status, why);
            break;
        }
        if ((uint64_t)(c->head.content_length > 0 ? c->head.content_length : 0) >
            c->server->cfg.max_body_bytes) {
            h1_fail(c, 413, "request body too large");
            break;
        }
        if (h1_make_req(c) != 0) {
            h1_fail(c, 500, "out of memory");
            break;
        }
        if (c->head.content_length > 0 && h1_body(c, c->req) != 0)
            break;
        h1_consume_input(c, c->head.head_len);
        if (c->head.expect_continue && c->req->body_want > 0 && c->head.version == 11 &&
            c->in_len == 0) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            sw__conn_queue(c, NULL, cont, sizeof(cont) - 1);
            sw__conn_flush(c);
        }
        sw__http1_head_init(&c->head, c->server->cfg.max_header_bytes);
        c->head.version = c->req->pub.version;
    }
    c->processing = 0;
    if (!c->closing) {
        sw__conn_flush(c);
        sw__conn_update(c);
    }
}

static int h1_start(sw__req_t *r, int status, const sw_http_header_t *hdrs, size_t nhdrs,
                    int64_t content_length)
{
    sw__conn_t *c = r->conn;
    sw_http_server_t *s = c->server;
    r->status = status;
    r->content_length = content_length;
    int bodyless = status == 204 || status == 304 || (status >= 100 && status < 200);
    if (content_length < 0 && !bodyless) {
        if (r->pub.version == 11)
            r->chunked = 1;
        else
            r->keep_alive = 0; /* HTTP/1.0: the end of the body is the end of the connection */
    }
    if (s->closing)
        r->keep_alive = 0;
    sw_str_t h;
    sw_str_init(&h);
    int rv = sw__http1_format_head(&h, r->pub.version, status, hdrs, nhdrs,
                                   bodyless ? -1 : content_length, r->chunked && !r->is_head,
                                   r->keep_alive, sw__server_date(s), s->server_name);
    if (rv == 0)
        rv = sw__conn_queue(c, NULL, h.p, h.len);
    r->bytes_out += h.len;
    sw_str_dispose(&h);
    if (r->is_head || bodyless)
        r->chunked = 0;
    return rv;
}

static int h1_write(sw__req_t *r, sw_rbuf_t *rb, const void *p, size_t len)
{
    sw__conn_t *c = r->conn;
    if (r->is_head || len == 0)
        return 0;
    int rv = 0;
    if (r->chunked) {
        char hex[24];
        int n = snprintf(hex, sizeof(hex), "%zx\r\n", len);
        rv |= sw__conn_queue(c, NULL, hex, (size_t)n);
        rv |= sw__conn_queue(c, rb, p, len);
        rv |= sw__conn_queue(c, NULL, "\r\n", 2);
        r->bytes_out += (size_t)n + 2;
    } else {
        rv = sw__conn_queue(c, rb, p, len);
    }
    r->bytes_out += len;
    r->body_sent += len;
    sw__conn_flush(c);
    return rv != 0 ? SW_ERR_NOMEM : 0;
}

static int h1_end(sw__req_t *r)
{
    sw__conn_t *c = r->conn;
    if (r->chunked) {
        sw__conn_queue(c, NULL, "0\r\n\r\n", 5);
        r->bytes_out += 5;
    }
    /* A body that does not match its Content-Length leaves the framing broken: close. */
    if (!r->is_head && r->content_length >= 0 && r->body_sent != (uint64_t)r->content_length)
        r->keep_alive = 0;
    if (!r->keep_alive)
        c->close_after_flush = 1;
    r->state = SW__REQ_ENDED;
    sw__req_log(r, 0);
    c->req = NULL;
    sw__req_free(r);
    c->last_active = uv_now(c->server->loop);
    c->head_start = c->last_active;
    sw__conn_flush(c);
    if (!c->processing)
        h1_process(c);
    return 0;
}

/* ---- the request API: dispatches to HTTP/1.1 or HTTP/2 ---- */

int sw_http_start(sw_http_req_t *req, int status, const sw_http_header_t *hdrs, size_t nhdrs,
                  int64_t content_length)
{
    sw__req_t *r = (sw__req_t *)req;
    if (r->state != SW__REQ_HANDLER)
        return SW_ERR_STATE;
    r->state = SW__REQ_STARTED;
    int rv = r->conn->proto == SW__PROTO_H2 ? sw__h2_start(r, status, hdrs, nhdrs, content_length)
                                            : h1_start(r, status, hdrs, nhdrs, content_length);
    if (rv != 0)
        sw__conn_close_soon(r->conn);
    return rv;
}

static int write_any(sw__req_t *r, sw_rbuf_t *rb, const void *p, size_t len)
{
    if (r->state != SW__REQ_STARTED)
        return SW_ERR_STATE;
    int rv = r->conn->proto == SW__PROTO_H2 ? sw__h2_write(r, rb, p, len) : h1_write(r, rb, p, len);
    if (rv != 0)
        sw__conn_close_soon(r->conn);
    return rv;
}

void *sw_http_req_alloc(sw_http_req_t *req, size_t size)
{
    void *p = sw__pool_alloc(&((sw__req_t *)req)->pool, size);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

int sw_http_write(sw_http_req_t *req, const void *p, size_t len)
{
    return write_any((sw__req_t *)req, NULL, p, len);
}

int sw_http_write_rbuf(sw_http_req_t *req, sw_rbuf_t *b, size_t off, size_t len)
{
    if (off > b->len || len > b->len - off)
        return SW_ERR_STATE;
    return write_any((sw__req_t *)req, b, b->data + off, len);
}

int sw_http_end(sw_http_req_t *req)
{
    sw__req_t *r = (sw__req_t *)req;
    if (r->state != SW__REQ_STARTED)
        return SW_ERR_STATE;
    return r->conn->proto == SW__PROTO_H2 ? sw__h2_end(r) : h1_end(r);
}

int sw_http_respond(sw_http_req_t *req, int status, const sw_http_header_t *hdrs, size_t nhdrs,
                    const void *body, size_t len)
{
    sw__req_t *r = (sw__req_t *)req;
    sw__conn_t *c = r->conn;
    if (r->state != SW__REQ_HANDLER)
        return SW_ERR_STATE;
    int h2 = c->proto == SW__PROTO_H2;
    if (h2)
        sw__h2_hold(c, 1);
    int rv = sw_http_start(req, status, hdrs, nhdrs, (int64_t)len);
    if (rv == 0)
        rv = sw_http_write(req, body, len);
    if (r->state == SW__REQ_STARTED)
        sw_http_end(req);
    /* `r` may be gone now; `c` lives until its close callback. */
    if (h2)
        sw__h2_hold(c, 0);
    return rv;
}

int sw_http_respond_error(sw_http_req_t *req, int status, const char *message)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "%s\n", message != NULL ? message : "");
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(body))
        n = sizeof(body) - 1;
    static const sw_http_header_t hdr = {"Content-Type", "text/plain; charset=utf-8"};
    return sw_http_respond(req, status, &hdr, 1, body, (size_t)n);
}

size_t sw_http_pending(const sw_http_req_t *req)
{
    const sw__req_t *r = (const sw__req_t *)req;
    return r->conn->out.bytes + r->q.bytes;
}
