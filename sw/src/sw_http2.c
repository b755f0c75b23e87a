/*
 * sw_http2.c: HTTP/2 over nghttp2's memory interface. nghttp2 parses what sw__h2_feed() gives it
 * and produces frames that sw__h2_send() copies into the connection's output queue; the socket
 * stays with the connection core.
 *
 * Handlers are never called from inside an nghttp2 callback: a stream whose request is complete
 * goes on a ready list that is drained after nghttp2_session_mem_recv() returns. nghttp2 must not
 * be re-entered from its own callbacks, so sw__h2_send() only marks work while one is running.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <nghttp2/nghttp2.h>

#include "sw/log.h"
#include "sw_http_int.h"

struct sw__h2 {
    nghttp2_session *ng;
    sw__req_t *streams;
    sw__req_t *ready_head, *ready_tail;
    int busy;  /* inside nghttp2_session_mem_recv() or _mem_send() */
    int again; /* sw__h2_send() was asked for while busy */
    int hold;  /* > 0: batch frames (inside a handler or sw_http_respond()) and send later */
};

const uint8_t sw__h2_preface[24] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* SETTINGS_INITIAL_WINDOW_SIZE: RFC 9113's default. Only a stream that takes a body is opened
 * further (on_request_head()). */
#define H2_STREAM_WINDOW 65535

static sw__req_t *stream_req(nghttp2_session *ng, int32_t id)
{
    return nghttp2_session_get_stream_user_data(ng, id);
}

static void unlink_ready(sw__h2_t *h2, sw__req_t *r)
{
    if (!r->ready)
        return;
    sw__req_t **pp = &h2->ready_head, *prev = NULL;
    while (*pp != NULL && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next_ready;
    }
    if (*pp == r) {
        *pp = r->next_ready;
        if (h2->ready_tail == r)
            h2->ready_tail = prev;
    }
    r->ready = 0;
}

static void stream_free(sw__h2_t *h2, sw__req_t *r)
{
    unlink_ready(h2, r);
    *r->pprev = r->next;
    if (r->next != NULL)
        r->next->pprev = r->pprev;
    sw__req_free(r);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data)
{
    sw__conn_t *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    sw__req_t *r = sw__req_new(c);
    if (r == NULL)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    r->stream_id = frame->hd.stream_id;
    r->pub.version = 20;
    r->keep_alive = 1;
    r->next = c->h2->streams;
    if (r->next != NULL)
        r->next->pprev = &r->next;
    r->pprev = &c->h2->streams;
    c->h2->streams = r;
    nghttp2_session_set_stream_user_data(ng, r->stream_id, r);
    return 0;
}

/* nghttp2 has checked that a content-length is digits only; anything else, or a value too large
 * for size_t, is SIZE_MAX, over any max_body_bytes. */
static size_t parse_length(const char *v, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9' || n > (SIZE_MAX - 9) / 10)
            return SIZE_MAX;
        n = n * 10 + (size_t)(v[i] - '0');
    }
    return n;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    sw__conn_t *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    sw__req_t *r = stream_req(ng, frame->hd.stream_id);
    if (r == NULL || r->status != 0)
        return 0;
    r->hbytes += namelen + valuelen + 4;
    if (r->hbytes > c->server->cfg.max_header_bytes) {
        r->status = 431;
        return 0;
    }
    const char *n = (const char *)name, *v = (const char *)value;
    char **dst = NULL;
    if (namelen == 7 && memcmp(n, ":method", 7) == 0) {
        dst = (char **)&r->pub.method;
    } else if (namelen == 10 && memcmp(n, ":authority", 10) == 0) {
        dst = (char **)&r->pub.authority;
    } else if (namelen == 5 && memcmp(n, ":path", 5) == 0) {
        const char *qm = memchr(v, '?', valuelen);
        size_t plen = qm != NULL ? (size_t)(qm - v) : valuelen;
        r->pub.path = sw__pool_strndup(&r->pool, v, plen);
        if (qm != NULL)
            r->pub.query = sw__pool_strndup(&r->pool, qm + 1, valuelen - plen - 1);
        return r->pub.path != NULL && r->pub.query != NULL ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
    } else if (namelen > 0 && n[0] == ':') {
        return 0; /* :scheme, :protocol */
    } else {
        if (namelen == 4 && memcmp(n, "host", 4) == 0 && r->pub.authority[0] == '\0')
            dst = (char **)&r->pub.authority;
        else if (namelen == 14 && memcmp(n, "content-length", 14) == 0)
            r->body_want = parse_length(v, valuelen);
        if (sw__req_add_header(r, n, namelen, v, valuelen) != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        if (dst == NULL)
            return 0;
    }
    if ((*dst = sw__pool_strndup(&r->pool, v, valuelen)) == NULL)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

/* Puts a stream on the list of requests to give to the handler (dispatch()). */
static void make_ready(sw__h2_t *h2, sw__req_t *r)
{
    r->ready = 1;
    r->next_ready = NULL;
    if (h2->ready_tail != NULL)
        h2->ready_tail->next_ready = r;
    else
        h2->ready_head = r;
    h2->ready_tail = r;
}

/* Answers a request the server refuses (`status`: 400, 413, 431) before its body has all arrived:
 * dispatch() sends the error, and read_body() has RST_STREAM (NO_ERROR) follow its last frame,
 * which tells the client to stop uploading (RFC 9113 8.1); nghttp2 does not send it by itself,
 * and would keep opening the stream's window for data that is dropped. What the body held goes
 * back to the caps now. */
static void fail_early(sw__conn_t *c, sw__req_t *r, int status)
{
    r->status = status;
    r->rst_after = 1;
    sw__body_release(r);
    if (!r->ready)
        make_ready(c->h2, r);
}

/* A body that does not fit under the connection's or the server's cap: the stream is reset with
 * REFUSED_STREAM (no handler saw it, so the client may retry it) and its bytes are given back. */
static void refuse(sw__conn_t *c, sw__req_t *r)
{
    r->refused = 1;
    sw__body_release(r);
    c->server->stats.bodies_refused++;
    nghttp2_submit_rst_stream(c->h2->ng, NGHTTP2_FLAG_NONE, r->stream_id, NGHTTP2_REFUSED_STREAM);
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *user_data)
{
    sw__conn_t *c = user_data;
    sw__req_t *r = stream_req(ng, stream_id);
    if (r == NULL || r->status != 0 || r->refused || r->state != SW__REQ_RECV)
        return 0;
    size_t max = c->server->cfg.max_body_bytes;
    if (sw__method_bodyless(r->pub.method)) {
        fail_early(c, r, 400);
        return 0;
    }
    if (len > max - r->body_len) {
        fail_early(c, r, 413);
        return 0;
    }
    size_t need = r->body_len + len;
    if (need > r->body_cap) {
        /* The announced length at once; without one, doubling up to max_body_bytes. */
        size_t cap;
        if (r->body_want >= need && r->body_want <= max) {
            cap = r->body_want;
        } else {
            cap = r->body_cap ? r->body_cap * 2 : 16384;
            while (cap < need)
                cap *= 2;
            if (cap > max)
                cap = max;
        }
        int rv = sw__body_grow(r, cap);
        if (rv == SW_ERR_NOMEM)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        if (rv != 0) {
            refuse(c, r);
            return 0;
        }
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    return 0;
}

/* The request head is in and a body follows. A bodyless method announcing one, or a length over
 * max_body_bytes, is answered now rather than after the upload. An announced body gets its room
 * now, so that a stream past a cap is refused before the client sends any of it, and streams
 * are served in the order they came rather than in the order their DATA frames interleave. A
 * method that takes a body gets a stream window that lets the whole of it come without waiting
 * for WINDOW_UPDATEs (the connection starts every stream at the 64 KiB of RFC 9113, so a
 * client's many GETs cannot make it hold more than that each). Returns 0 or SW_ERR_NOMEM. */
static int on_request_head(sw__conn_t *c, sw__req_t *r)
{
    size_t max = c->server->cfg.max_body_bytes;
    if (r->status != 0) {
        fail_early(c, r, r->status);
        return 0;
    }
    if (sw__method_bodyless(r->pub.method)) {
        if (r->body_want > 0)
            fail_early(c, r, 400);
        return 0;
    }
    if (r->body_want > max) {
        fail_early(c, r, 413);
        return 0;
    }
    if (r->body_want > 0) {
        int rv = sw__body_grow(r, r->body_want);
        if (rv == SW_ERR_NOMEM)
            return rv;
        if (rv != 0) {
            refuse(c, r);
            return 0;
        }
    }
    size_t win = r->body_want > 0 ? r->body_want : max;
    if (win > H2_STREAM_WINDOW)
        nghttp2_session_set_local_window_size(c->h2->ng, NGHTTP2_FLAG_NONE, r->stream_id,
                                              win < INT32_MAX ? (int32_t)win : INT32_MAX);
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data)
{
    sw__conn_t *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            sw__req_t *r = stream_req(ng, frame->hd.stream_id);
            if (r != NULL && r->state == SW__REQ_RECV && on_request_head(c, r) != 0)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        return 0;
    }
    sw__req_t *r = stream_req(ng, frame->hd.stream_id);
    if (r == NULL || r->ready || r->refused || r->state != SW__REQ_RECV)
        return 0;
    make_ready(c->h2, r);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    sw__conn_t *c = user_data;
    sw__req_t *r = stream_req(ng, stream_id);
    if (r == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, stream_id, NULL);
    /* Closed before the response ended: RST_STREAM from the client, or a protocol error. */
    sw__req_abort(r);
    stream_free(c->h2, r);
    return 0;
}

/* Sizes the next DATA frame; its bytes are moved out of r->q by on_send_data() (NO_COPY), so a
 * body given as rbuf references reaches the output queue, and the transport, without a copy. */
static ssize_t read_body(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    sw__req_t *r = source->ptr;
    size_t n = r->q.bytes < length ? r->q.bytes : length;
    if (n == r->q.bytes && r->state == SW__REQ_ENDED) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        /* Queued behind this frame, the last of the response (see fail_early()). */
        if (r->rst_after && !nghttp2_session_get_stream_remote_close(ng, stream_id))
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR);
    } else if (n == 0) {
        r->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n > 0)
        *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    return (ssize_t)n;
}

/* Writes a DATA frame sized by read_body(): the 9-byte header is copied, the payload moves from
 * the stream's queue to the connection's (rbuf chunks by reference). Over the soft limit it asks
 * nghttp2 to retry later, which keeps the output queue bounded as without NO_COPY. */
static int on_send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *user_data)
{
    sw__conn_t *c = user_data;
    sw__req_t *r = source->ptr;
    if (c->out.bytes >= SW__OUT_SOFT_LIMIT)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (r->q.bytes < length)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* cannot happen: reset the stream */
    size_t pad = frame->data.padlen;
    uint8_t padlen = (uint8_t)(pad > 0 ? pad - 1 : 0);
    static const uint8_t zeros[256];
    if (sw__conn_queue(c, NULL, framehd, 9) != 0 ||
        (pad > 0 && sw__conn_queue(c, NULL, &padlen, 1) != 0) ||
        sw__queue_move(&c->out, &r->q, length) != 0 ||
        (padlen > 0 && sw__conn_queue(c, NULL, zeros, padlen) != 0))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

/* nghttp2 allocates a handful of small blocks per stream (the stream, its frame items, copies of
 * header names and values) and frees them when the stream closes. glibc's per-thread cache keeps
 * 7 blocks per size, which a connection's 8 concurrent streams overflow into malloc's slower
 * paths; so a freed block of up to 1 KB waits on its server's list for its size class, up to
 * H2MEM_KEEP of them (callgrind: 17,810 -> 17,120 instructions per h2c playlist request). */
#define H2MEM_MIN  64 /* the smallest class, header included; each next class doubles */
#define H2MEM_KEEP 256

typedef struct h2blk {
    struct h2blk *next; /* on a free list */
    uint32_t cls;       /* size class; SW__H2MEM_CLASSES: a block of its own size */
    uint32_t size;      /* as asked for */
    max_align_t data[];
} h2blk_t;

static size_t h2mem_cap(uint32_t cls)
{
    return ((size_t)H2MEM_MIN << cls) - sizeof(h2blk_t);
}

static h2blk_t *h2blk_of(void *p)
{
    return (h2blk_t *)((char *)p - offsetof(h2blk_t, data));
}

static void *h2mem_malloc(size_t size, void *ud)
{
    sw__h2mem_t *m = ud;
    uint32_t cls = 0;
    while (cls < SW__H2MEM_CLASSES && h2mem_cap(cls) < size)
        cls++;
    h2blk_t *b = cls < SW__H2MEM_CLASSES ? m->free[cls] : NULL;
    if (b != NULL) {
        m->free[cls] = b->next;
        m->nfree[cls]--;
    } else {
        size_t cap = cls < SW__H2MEM_CLASSES ? h2mem_cap(cls) : size;
        if (size > UINT32_MAX || (b = malloc(sizeof(*b) + cap)) == NULL)
            return NULL;
        b->cls = cls;
        SW__POISON(b->data, cap);
    }
    b->size = (uint32_t)size;
    SW__UNPOISON(b->data, size);
    return b->data;
}

static void h2mem_free(void *p, void *ud)
{
    sw__h2mem_t *m = ud;
    if (p == NULL)
        return;
    h2blk_t *b = h2blk_of(p);
    if (b->cls == SW__H2MEM_CLASSES || m->nfree[b->cls] >= H2MEM_KEEP) {
        free(b);
        return;
    }
    b->next = m->free[b->cls];
    m->free[b->cls] = b;
    m->nfree[b->cls]++;
    /* Not the header: LeakSanitizer does not follow the links through poisoned memory. */
    SW__POISON(b->data, h2mem_cap(b->cls));
}

static void *h2mem_calloc(size_t n, size_t size, void *ud)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = h2mem_malloc(n * size, ud);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

static void *h2mem_realloc(void *p, size_t size, void *ud)
{
    if (p == NULL)
        return h2mem_malloc(size, ud);
    h2blk_t *b = h2blk_of(p);
    if (b->cls < SW__H2MEM_CLASSES && size <= h2mem_cap(b->cls)) {
        SW__POISON(b->data, h2mem_cap(b->cls));
        SW__UNPOISON(b->data, size);
        b->size = (uint32_t)size;
        return p;
    }
    void *n = h2mem_malloc(size, ud);
    if (n == NULL)
        return NULL;
    memcpy(n, p, b->size < size ? b->size : size);
    h2mem_free(p, ud);
    return n;
}

void sw__h2mem_dispose(sw__h2mem_t *m)
{
    for (int i = 0; i < SW__H2MEM_CLASSES; i++) {
        for (h2blk_t *b = m->free[i], *n; b != NULL; b = n) {
            n = b->next;
            free(b);
        }
        m->free[i] = NULL;
        m->nfree[i] = 0;
    }
}

int sw__h2_init(sw__conn_t *c)
{
    sw__h2_t *h2 = calloc(1, sizeof(*h2));
    nghttp2_session_callbacks *cbs;
    int rv = SW_ERR_NOMEM;

    if (h2 == NULL)
        goto fail;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        goto fail_h2;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(cbs, on_send_data);
    nghttp2_mem mem = {&c->server->h2mem, h2mem_malloc, h2mem_free, h2mem_calloc, h2mem_realloc};
    rv = nghttp2_session_server_new3(&h2->ng, cbs, c, NULL, &mem);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        rv = SW_ERR_NOMEM;
        goto fail_h2;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->server->cfg.max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)c->server->cfg.max_header_bytes},
    };
    if (nghttp2_submit_settings(h2->ng, NGHTTP2_FLAG_NONE, iv, SW_ARRAY_SIZE(iv)) != 0 ||
        nghttp2_session_set_local_window_size(h2->ng, NGHTTP2_FLAG_NONE, 0, 16 * 1024 * 1024) !=
            0) {
        rv = SW_ERR_NOMEM;
        goto fail_session;
    }
    /* Bound what the kernel holds unsent, so that nghttp2 can still put a new stream's frames
     * before the rest of a long body. HTTP/1.1 has one response in flight and leaves the kernel's
     * own limit: each extra write round costs more than it buys there (about a fifth more server
     * CPU for a 730 KB segment at 256 KiB). */
    uv_os_fd_t fd;
    int lowat = (int)c->server->cfg.notsent_lowat;
    if (lowat > 0 && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
    c->h2 = h2;
    return 0;
fail_session:
    nghttp2_session_del(h2->ng);
fail_h2:
    free(h2);
fail:
    return rv;
}

void sw__h2_dispose(sw__conn_t *c)
{
    if (c->h2 == NULL)
        return;
    nghttp2_session_del(c->h2->ng);
    free(c->h2);
    c->h2 = NULL;
}

static void kick(sw__conn_t *c)
{
    if (c->h2 == NULL || c->h2->hold > 0)
        return;
    sw__h2_send(c);
    sw__conn_update(c);
}

void sw__h2_hold(sw__conn_t *c, int on)
{
    if (c->h2 == NULL)
        return;
    c->h2->hold += on ? 1 : -1;
    if (!on)
        kick(c);
}

int sw__h2_has_streams(const sw__conn_t *c)
{
    /* A session nghttp2 ended by itself (its GOAWAY after a compression or flow-control error)
     * has no stream left to finish. */
    return c->h2 != NULL && c->h2->streams != NULL && nghttp2_session_want_read(c->h2->ng);
}

void sw__h2_abort_all(sw__conn_t *c)
{
    sw__h2_t *h2 = c->h2;
    if (h2 == NULL)
        return;
    /* The session dies with the connection, so streams are freed here, not by nghttp2. */
    while (h2->streams != NULL) {
        sw__req_t *r = h2->streams;
        nghttp2_session_set_stream_user_data(h2->ng, r->stream_id, NULL);
        sw__req_abort(r);
        stream_free(h2, r);
    }
}

void sw__h2_goaway(sw__conn_t *c)
{
    sw__h2_t *h2 = c->h2;
    if (h2 == NULL)
        return;
    for (sw__req_t *r = h2->streams; r != NULL; r = r->next) {
        if (r->state == SW__REQ_ENDED)
            continue; /* answered: let it finish */
        unlink_ready(h2, r);
        sw__req_abort(r);
        /* r->q stays until the stream is freed: a DATA frame of it may already be sized
         * (NO_COPY), and RST_STREAM goes out before any further one. */
        nghttp2_submit_rst_stream(h2->ng, NGHTTP2_FLAG_NONE, r->stream_id, NGHTTP2_CANCEL);
    }
    nghttp2_submit_goaway(h2->ng, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h2->ng), NGHTTP2_NO_ERROR, NULL,
                          0);
    sw__h2_send(c);
}

void sw__h2_send(sw__conn_t *c)
{
    sw__h2_t *h2 = c->h2;
    if (h2 == NULL || c->closing)
        return;
    if (h2->busy) {
        h2->again = 1;
        return;
    }
    h2->busy = 1;
    do {
        h2->again = 0;
        while (c->out.bytes < SW__OUT_SOFT_LIMIT) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(h2->ng, &p);
            if (n < 0) {
                sw_log(SW_LOG_DEBUG, "http", "%s: nghttp2: %s", c->peer, nghttp2_strerror((int)n));
                h2->busy = 0;
                sw__conn_close_soon(c);
                return;
            }
            if (n == 0)
                break;
            if (sw__conn_queue(c, NULL, p, (size_t)n) != 0) {
                h2->busy = 0;
                sw__conn_close_soon(c);
                return;
            }
        }
    } while (h2->again && c->out.bytes < SW__OUT_SOFT_LIMIT);
    h2->busy = 0;
    if (!nghttp2_session_want_read(h2->ng) && !nghttp2_session_want_write(h2->ng))
        c->close_after_flush = 1;
    sw__conn_flush(c);
}

static void dispatch(sw__conn_t *c)
{
    sw_http_server_t *s = c->server;
    sw__h2_t *h2 = c->h2;
    while (!c->closing && c->h2 != NULL && h2->ready_head != NULL) {
        sw__req_t *r = h2->ready_head;
        h2->ready_head = r->next_ready;
        if (h2->ready_head == NULL)
            h2->ready_tail = NULL;
        r->ready = 0;
        r->state = SW__REQ_HANDLER;
        if (r->body_len > 0)
            r->pub.body = r->body;
        r->pub.body_len = r->body_len;
        if (r->pub.method == NULL)
            r->pub.method = "";
        if (r->pub.path == NULL)
            r->pub.path = "/";
        r->is_head = strcmp(r->pub.method, "HEAD") == 0;
        s->stats.requests[2]++;
        if (r->status != 0) {
            int st = r->status;
            r->status = 0;
            s->stats.bad_requests++;
            h2->hold++;
            sw_http_respond_error(&r->pub, st, sw_http_reason(st));
            h2->hold--;
            continue;
        }
        h2->hold++;
        s->cb(s->data, &r->pub);
        if (c->h2 != NULL)
            h2->hold--;
    }
}

void sw__h2_feed(sw__conn_t *c, const uint8_t *buf, size_t len)
{
    sw__h2_t *h2 = c->h2;
    h2->busy = 1;
    ssize_t rv = nghttp2_session_mem_recv(h2->ng, buf, len);
    h2->busy = 0;
    if (rv < 0) {
        /* nghttp2 queued a GOAWAY where it could; send it, then close. */
        c->server->stats.bad_requests++;
        sw_log(SW_LOG_DEBUG, "http", "%s: HTTP/2: %s", c->peer, nghttp2_strerror((int)rv));
        nghttp2_session_terminate_session(h2->ng, NGHTTP2_PROTOCOL_ERROR);
        c->close_after_flush = 1;
    } else {
        dispatch(c);
        if (!nghttp2_session_want_read(h2->ng))
            c->close_after_flush = 1;
    }
    sw__h2_send(c);
    sw__conn_update(c);
}

int sw__h2_start(sw__req_t *r, int status, const sw_http_header_t *hdrs, size_t nhdrs,
                 int64_t content_length)
{
    sw__conn_t *c = r->conn;
    sw_http_server_t *s = c->server;
    nghttp2_nv nva[64];
    char st[SW_U64_DEC], cl[SW_U64_DEC];
    size_t n = 0;
    int rv = 0;

#define NV(nm, nl, v, vl, fl)                                                                      \
    nva[n].name = (uint8_t *)(nm), nva[n].namelen = (nl), nva[n].value = (uint8_t *)(v),           \
    nva[n].valuelen = (vl), nva[n].flags = (fl), n++
    /* Our own names are lower-case literals, and the server name lives as long as the server:
     * nghttp2 need not copy (and lower) them. */
    const uint8_t lit = NGHTTP2_NV_FLAG_NO_COPY_NAME;
    r->status = status;
    r->content_length = content_length;
    NV(":status", 7, st, sw_u64_dec(st, (uint64_t)status), lit);
    const char *date = sw__server_date(s);
    NV("date", 4, date, strlen(date), lit);
    NV("server", 6, s->server_name, strlen(s->server_name), lit | NGHTTP2_NV_FLAG_NO_COPY_VALUE);
    if (content_length >= 0) {
        NV("content-length", 14, cl, sw_u64_dec(cl, (uint64_t)content_length), lit);
    }
    if (nhdrs > SW_ARRAY_SIZE(nva) - n)
        return SW_ERR_NOMEM;
    /* HTTP/2 field names are lower case (RFC 9113 8.2.1): nghttp2 lowers the names it copies. */
    for (size_t i = 0; i < nhdrs; i++)
        NV(hdrs[i].name, strlen(hdrs[i].name), hdrs[i].value, strlen(hdrs[i].value),
           NGHTTP2_NV_FLAG_NONE);
#undef NV
    nghttp2_data_provider prd;
    prd.source.ptr = r;
    prd.read_callback = read_body;
    for (size_t i = 0; i < n; i++)
        r->bytes_out += nva[i].namelen + nva[i].valuelen;
    /* Always with a data provider, so the stream stays open until sw_http_end(): a response
     * without a body ends with an empty DATA frame. */
    if (nghttp2_submit_response(c->h2->ng, r->stream_id, nva, n, &prd) != 0)
        rv = SW_ERR_NOMEM;
    if (status == 204 || status == 304)
        r->is_head = 1; /* drop writes */
    kick(c);
    return rv;
}

int sw__h2_write(sw__req_t *r, sw_rbuf_t *rb, const void *p, size_t len)
{
    if (r->is_head || len == 0)
        return 0;
    int rv = rb != NULL ? sw__queue_rbuf(&r->q, rb, (const uint8_t *)p - rb->data, len)
                        : sw__queue_copy(&r->q, p, len);
    if (rv != 0)
        return rv;
    r->bytes_out += len;
    r->body_sent += len;
    sw__conn_t *c = r->conn;
    if (r->deferred) {
        r->deferred = 0;
        nghttp2_session_resume_data(c->h2->ng, r->stream_id);
    }
    kick(c);
    return 0;
}

int sw__h2_end(sw__req_t *r)
{
    sw__conn_t *c = r->conn;
    r->state = SW__REQ_ENDED;
    sw__req_log(r, 0);
    if (r->deferred) {
        r->deferred = 0;
        nghttp2_session_resume_data(c->h2->ng, r->stream_id);
    }
    /* The stream, and `r` with it, may be freed in here once its last frame is out. */
    kick(c);
    return 0;
}
