/*
 * sw_http_upgrade.c: sw_http_takeover(), which hands an HTTP/1.1 connection to another protocol
 * engine (libwebsockets on the edge), and the tunnel that bridges a taken-over TLS connection.
 *
 * A plain connection is given away whole: the socket is duplicated and the server closes its own
 * descriptor through uv_close(), which in libuv 1.44 removes it from epoll before close(), so the
 * duplicate is never reported on the server's watcher and the new owner registers it afresh.
 *
 * A TLS session lives here (memory BIOs, sw_tls.c), so the other engine cannot read the socket.
 * The connection switches to SW__PROTO_TUNNEL instead: decrypted bytes go into one end of a
 * socketpair (the caller gets the other end), and bytes read from the pair join the connection's
 * output queue, which the TLS transport encrypts as it does for HTTP. The pair end is the
 * connection's third handle, so the connection is freed after all three are closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sw/log.h"
#include "sw_http_int.h"

/* Client bytes waiting for the caller to read the pair: past this the caller is not keeping up
 * and the connection closes rather than buffer without bound. */
#define TUNNEL_MAX_PENDING (1024 * 1024)
#define TUNNEL_READ_SIZE   16384

typedef struct sw__tunnel {
    uv_pipe_t pipe; /* our end of the socketpair */
    uv_write_t wreq;
    sw__queue_t q;   /* client plaintext not yet written into the pair */
    size_t wr_bytes; /* bytes of the write in flight */
    unsigned writing : 1;
    unsigned reading : 1;
    unsigned eof : 1; /* the caller closed its end */
    uint8_t rbuf[TUNNEL_READ_SIZE];
} sw__tunnel_t;

/* Rebuilds the request head from the parsed request. The raw bytes are gone (the parser's spans
 * point into c->in, which was consumed), and a rebuilt head carries the same meaning. */
static int append_head(const sw__req_t *r, sw_str_t *pre)
{
    sw_str_printf(pre, "%s %s%s%s HTTP/1.1\r\n", r->pub.method, r->pub.path,
                  r->pub.query[0] != '\0' ? "?" : "", r->pub.query);
    for (size_t i = 0; i < r->nhdrs; i++)
        sw_str_printf(pre, "%s: %s\r\n", r->hdrs[i].name, r->hdrs[i].value);
    sw_str_puts(pre, "\r\n");
    return pre->failed ? SW_ERR_NOMEM : 0;
}

/* The request is over for the server: log it as switched and free it without an abort. */
static void finish_req(sw__conn_t *c, sw__req_t *r)
{
    r->status = 101;
    r->state = SW__REQ_ENDED;
    sw__req_log(r, 0);
    c->req = NULL;
    sw__req_free(r);
}

static void on_pipe_write(uv_write_t *w, int status)
{
    sw__conn_t *c = w->data;
    sw__tunnel_t *t = c->tunnel;
    t->writing = 0;
    if (c->closing)
        return;
    if (status < 0) {
        sw__conn_close(c);
        return;
    }
    sw__queue_consume(&t->q, t->wr_bytes);
    c->last_active = uv_now(c->server->loop);
    sw__tunnel_feed(c, NULL, 0);
}

void sw__tunnel_feed(sw__conn_t *c, const uint8_t *buf, size_t len)
{
    sw__tunnel_t *t = c->tunnel;
    if (len > 0 && sw__queue_copy(&t->q, buf, len) != 0) {
        sw__conn_close(c);
        return;
    }
    if (t->q.bytes > TUNNEL_MAX_PENDING) {
        sw_log(SW_LOG_DEBUG, "http", "%s: tunnel peer not reading; closing", c->peer);
        sw__conn_close(c);
        return;
    }
    if (t->writing || t->q.head == NULL || t->eof)
        return;
    uv_buf_t iov[16];
    unsigned n = 0;
    size_t bytes = 0;
    for (sw__chunk_t *k = t->q.head; k != NULL && n < SW_ARRAY_SIZE(iov); k = k->next) {
        k->sealed = 1;
        iov[n++] = uv_buf_init((char *)k->p, (unsigned)k->len);
        bytes += k->len;
    }
    t->wr_bytes = bytes;
    t->wreq.data = c;
    if (uv_write(&t->wreq, (uv_stream_t *)&t->pipe, iov, n, on_pipe_write) != 0) {
        sw__conn_close_soon(c);
        return;
    }
    t->writing = 1;
}

static void on_pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sw__conn_t *c = h->data;
    buf->base = (char *)c->tunnel->rbuf;
    buf->len = sizeof(c->tunnel->rbuf);
}

static void on_pipe_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    sw__conn_t *c = st->data;
    sw__tunnel_t *t = c->tunnel;
    if (nread < 0) {
        /* The caller closed its end: send what it wrote (its close frame), then close. */
        t->eof = 1;
        uv_read_stop(st);
        t->reading = 0;
        c->close_after_flush = 1;
        sw__conn_flush(c);
        sw__conn_update(c);
        return;
    }
    if (nread == 0)
        return;
    if (sw__conn_queue(c, NULL, buf->base, (size_t)nread) != 0) {
        sw__conn_close(c);
        return;
    }
    sw__conn_flush(c);
    sw__conn_update(c);
}

void sw__tunnel_update(sw__conn_t *c)
{
    sw__tunnel_t *t = c->tunnel;
    int want = !t->eof && !c->close_after_flush && c->out.bytes < SW__OUT_SOFT_LIMIT;
    if (want && !t->reading) {
        if (uv_read_start((uv_stream_t *)&t->pipe, on_pipe_alloc, on_pipe_read) == 0)
            t->reading = 1;
    } else if (!want && t->reading) {
        uv_read_stop((uv_stream_t *)&t->pipe);
        t->reading = 0;
    }
}

void sw__tunnel_close(sw__conn_t *c)
{
    uv_close((uv_handle_t *)&c->tunnel->pipe, sw__conn_handle_closed);
}

void sw__tunnel_free(sw__tunnel_t *t)
{
    if (t == NULL)
        return;
    sw__queue_dispose(&t->q);
    free(t);
}

static void on_unused_pipe_closed(uv_handle_t *h)
{
    free(h->data);
}

static int takeover_tls(sw__conn_t *c, int *fd)
{
    int sv[2];
    sw__tunnel_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return SW_ERR_NOMEM;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        sw_log(SW_LOG_WARN, "http", "socketpair: %s", strerror(errno));
        free(t);
        return SW_ERR_IO;
    }
    sw__queue_init(&t->q);
    uv_pipe_init(c->server->loop, &t->pipe, 0);
    if (uv_pipe_open(&t->pipe, sv[0]) != 0) {
        close(sv[0]);
        close(sv[1]);
        t->pipe.data = t;
        uv_close((uv_handle_t *)&t->pipe, on_unused_pipe_closed);
        return SW_ERR_IO;
    }
    t->pipe.data = c;
    c->handles++;
    c->tunnel = t;
    c->proto = SW__PROTO_TUNNEL;
    *fd = sv[1];
    return 0;
}

int sw_http_takeover(sw_http_req_t *req, int *fd, sw_str_t *pre)
{
    sw__req_t *r = (sw__req_t *)req;
    sw__conn_t *c = r->conn;
    size_t pre_len = pre->len;
    int rv;

    if (c->proto != SW__PROTO_H1 || r->pub.version != 11 || r->state != SW__REQ_HANDLER ||
        r->body_len > 0 || c->out.bytes > 0 || c->writing || c->fake)
        return SW_ERR_STATE;
    if ((rv = append_head(r, pre)) != 0 || sw_str_append(pre, c->in, c->in_len) != 0) {
        pre->len = pre_len;
        return SW_ERR_NOMEM;
    }
    if (c->tp == &sw__transport_plain) {
        uv_os_fd_t own;
        int d = uv_fileno((uv_handle_t *)&c->tcp, &own) == 0 ? fcntl(own, F_DUPFD_CLOEXEC, 0) : -1;
        if (d < 0) {
            pre->len = pre_len;
            return SW_ERR_IO;
        }
        finish_req(c, r);
        c->in_len = 0;
        sw__conn_close(c);
        *fd = d;
        return 0;
    }
    if ((rv = takeover_tls(c, fd)) != 0) {
        pre->len = pre_len;
        return rv;
    }
    finish_req(c, r);
    c->in_len = 0;
    sw__conn_update(c);
    return 0;
}
