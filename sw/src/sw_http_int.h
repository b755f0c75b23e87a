/*
 * sw_http_int.h: internals of the HTTP server core. Never included from outside sw/ (tests and
 * fuzz targets excepted).
 *
 * Layers, bottom up:
 *   socket (uv_tcp_t)  ->  transport (plain, or TLS in sw_tls.c)  ->  protocol (HTTP/1.1 or HTTP/2)
 * The transport turns socket bytes into plaintext for sw__conn_feed() and turns the connection's
 * output queue into socket writes. The protocols never touch the socket.
 */
#ifndef SW_HTTP_INT_H
#define SW_HTTP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sw/alog.h"
#include "sw/http.h"
#include "sw/str.h"

/* ---- HTTP/1.1 request head parser (sw_http1.c): pure, no I/O ---- */

#define SW__HTTP1_MAX_HEADERS 100

enum {
    SW__HTTP1_ERROR = -1,     /* head->status and *err_desc say why */
    SW__HTTP1_INCOMPLETE = 0, /* need more bytes; call again with the longer buffer */
    SW__HTTP1_COMPLETE = 1,   /* head->head_len bytes form the head */
};

typedef struct sw__span {
    uint32_t off, len; /* into the parsed buffer */
} sw__span_t;

typedef struct sw__http1_head {
    /* in */
    size_t max_bytes; /* over it: 431 */
    /* kept between calls */
    size_t _scanned; /* bytes already searched for the blank line */
    /* out, valid on SW__HTTP1_COMPLETE */
    size_t head_len; /* bytes up to and including the blank line (and any leading empty lines) */
    sw__span_t method, target, path, query, authority; /* authority: from an absolute-form target */
    int version;                                       /* 10 or 11 */
    size_t nheaders;
    struct {
        sw__span_t name, value;
    } headers[SW__HTTP1_MAX_HEADERS];
    int64_t content_length; /* -1 when absent */
    int host_index;         /* index of the Host header, -1 when absent */
    unsigned keep_alive : 1;
    unsigned expect_continue : 1;
    /* out on SW__HTTP1_ERROR: the status to answer with (400, 411, 431, 501, 505) */
    int status;
} sw__http1_head_t;

/** Resets `h` for a new request head with the given size limit. */
void sw__http1_head_init(sw__http1_head_t *h, size_t max_bytes);

/**
 * Parses a request head from buf[0..len). Resumable: call again with the same `h` and a longer
 * buffer that starts with the same bytes. Returns SW__HTTP1_COMPLETE, SW__HTTP1_INCOMPLETE or
 * SW__HTTP1_ERROR (then h->status is the status to answer and *err_desc a static reason).
 * Chunked request bodies are refused with 411 (a deliberate choice: no client we serve sends them),
 * other transfer codings with 501.
 */
int sw__http1_parse_head(const uint8_t *buf, size_t len, sw__http1_head_t *h,
                         const char **err_desc);

/**
 * Appends a response head to `out`. `content_length` < 0 with `chunked` set adds
 * Transfer-Encoding: chunked; < 0 without it sends neither (close-delimited). Returns 0 or
 * SW_ERR_NOMEM.
 */
int sw__http1_format_head(sw_str_t *out, int version, int status, const sw_http_header_t *hdrs,
                          size_t nhdrs, int64_t content_length, int chunked, int keep_alive,
                          const char *date, const char *server_name);

/* ---- output queue of byte chunks: copies for small writes, rbuf references for big ones ---- */

typedef struct sw__chunk {
    struct sw__chunk *next;
    sw_rbuf_t *rb;    /* referenced bytes, or NULL for bytes copied into data[] */
    const uint8_t *p; /* next unsent byte */
    size_t len;       /* unsent bytes */
    size_t cap;       /* capacity of data[] */
    int sealed;       /* handed to a write: nothing may be appended */
    uint8_t data[];
} sw__chunk_t;

typedef struct sw__queue {
    sw__chunk_t *head, *tail;
    size_t bytes;
    sw__chunk_t *spare; /* an emptied first-size chunk kept for the next response, or NULL */
} sw__queue_t;

void sw__queue_init(sw__queue_t *q);
/** Frees every chunk, the spare too. */
void sw__queue_dispose(sw__queue_t *q);
/** Frees the queued chunks but keeps a spare: the queue of a request kept for reuse. */
void sw__queue_reset(sw__queue_t *q);
int sw__queue_copy(sw__queue_t *q, const void *p, size_t len);
int sw__queue_rbuf(sw__queue_t *q, sw_rbuf_t *b, size_t off, size_t len);
/** Copies up to `len` bytes out of the queue's front and drops them. Returns the count. */
size_t sw__queue_read(sw__queue_t *q, uint8_t *out, size_t len);
/** Drops `len` bytes from the front. */
void sw__queue_consume(sw__queue_t *q, size_t len);
/**
 * Moves `len` bytes from the front of `src` to the end of `dst`: rbuf chunks by reference, copied
 * chunks by copy. Returns 0 or SW_ERR_NOMEM (then some bytes may have moved).
 */
int sw__queue_move(sw__queue_t *dst, sw__queue_t *src, size_t len);

/* ---- memory kept for reuse ---- */

/* Under AddressSanitizer, memory kept for reuse is poisoned while it waits, so that a use after
 * its free is still reported. */
#if defined(__SANITIZE_ADDRESS__)
#define SW__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SW__ASAN 1
#endif
#endif
#ifdef SW__ASAN
#include <sanitizer/asan_interface.h>
#define SW__POISON(p, n)   __asan_poison_memory_region((p), (n))
#define SW__UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define SW__POISON(p, n)   ((void)0)
#define SW__UNPOISON(p, n) ((void)0)
#endif

/* nghttp2's freed small blocks, by size class (sw_http2.c): one per server, i.e. per loop. */
#define SW__H2MEM_CLASSES 5
typedef struct sw__h2mem {
    void *free[SW__H2MEM_CLASSES];
    unsigned nfree[SW__H2MEM_CLASSES];
} sw__h2mem_t;

void sw__h2mem_dispose(sw__h2mem_t *m);

/* ---- request arena ---- */

typedef struct sw__pool_block {
    struct sw__pool_block *next;
    size_t used, cap;
    _Alignas(16) uint8_t data[];
} sw__pool_block_t;

typedef struct sw__pool {
    sw__pool_block_t *head;
} sw__pool_t;

void *sw__pool_alloc(sw__pool_t *p, size_t size);
char *sw__pool_strndup(sw__pool_t *p, const void *s, size_t len);
void sw__pool_dispose(sw__pool_t *p);
/** Frees every block but the first (small) one, which it empties; 0 when none is left. */
int sw__pool_reset(sw__pool_t *p);

/* ---- connection core (sw_http.c) ---- */

typedef struct sw__conn sw__conn_t;
typedef struct sw__req sw__req_t;

typedef struct sw__transport {
    const char *name;
    /* Socket bytes arrived; pass the plaintext to sw__conn_feed(). Called with (NULL, 0) to resume
     * input the transport held back (see `pending`). */
    void (*on_read)(sw__conn_t *c, const uint8_t *buf, size_t len);
    /* Write what is queued in c->out unless a write is already in flight (with sw__conn_write()).
     * Only the server's flusher calls it: everything else calls sw__conn_flush(). */
    void (*flush)(sw__conn_t *c);
    /* The fields below are optional (NULL for the plain transport). */
    /* Where the socket's next bytes go; NULL: straight into c->in (plaintext). */
    void (*alloc)(sw__conn_t *c, uv_buf_t *buf);
    /* Nonzero when input is buffered in the transport and was held back by backpressure: once
     * the connection may read again, sw__conn_update() calls on_read(c, NULL, 0) from the
     * connection's timer. */
    int (*pending)(sw__conn_t *c);
    /* Before a graceful close: may queue a last message (TLS close_notify). Returns nonzero if
     * a write is now in flight; the connection closes once it completes. */
    int (*shutdown)(sw__conn_t *c);
    /* Frees c->tp_data; runs once, when the connection is freed. */
    void (*dispose)(sw__conn_t *c);
} sw__transport_t;

/* SW__PROTO_TUNNEL: taken over (sw_http_takeover()) on TLS; plaintext is bridged to a socketpair.
 */
enum { SW__PROTO_NONE = 0, SW__PROTO_H1, SW__PROTO_H2, SW__PROTO_TUNNEL };

enum {
    SW__REQ_RECV = 0, /* head or body still arriving */
    SW__REQ_HANDLER,  /* given to the handler, not answered */
    SW__REQ_STARTED,  /* response head queued */
    SW__REQ_ENDED,    /* response ended; dead for the application */
};

struct sw__req {
    sw_http_req_t pub; /* first: the handler's pointer is ours */
    sw__conn_t *conn;
    sw__pool_t pool;
    sw_http_header_t *hdrs;
    size_t nhdrs, hcap, hbytes;
    void (*abort_cb)(sw_http_req_t *req, void *data);
    void *abort_data;
    int state;
    int status;
    int64_t content_length; /* of the response; -1 unknown */
    uint64_t body_sent;     /* response body bytes queued */
    uint64_t bytes_out;     /* response bytes queued, head included */
    uint64_t start_ms;
    unsigned is_head : 1;
    unsigned chunked : 1;
    unsigned keep_alive : 1;
    unsigned too_big : 1;   /* HTTP/2: headers or body over the limit */
    unsigned deferred : 1;  /* HTTP/2: the data provider returned NGHTTP2_ERR_DEFERRED */
    unsigned ready : 1;     /* HTTP/2: on the ready list */
    unsigned refused : 1;   /* HTTP/2: reset with REFUSED_STREAM (body caps); data is dropped */
    unsigned rst_after : 1; /* HTTP/2: answered before the body ended: RST_STREAM after the end */
    /* Request body. body_cap bytes are allocated and counted against the connection's and the
     * server's caps (sw__body_grow()) until sw__body_release(). body_want: the Content-Length,
     * 0 when absent. */
    uint8_t *body;
    size_t body_len, body_cap, body_want;
    /* HTTP/2 */
    int32_t stream_id;
    sw__queue_t q;            /* response body not yet taken by nghttp2 */
    sw__req_t *next, **pprev; /* the connection's open streams */
    sw__req_t *next_ready;
};

typedef struct sw__h2 sw__h2_t;

struct sw__conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq; /* lingering close: FIN, then read until the peer's */
    sw_http_server_t *server;
    sw__conn_t *next, **pprev;
    sw__conn_t *flush_next, **flush_pprev; /* the server's flush list; pprev NULL: not on it */
    const sw__transport_t *tp;
    void *tp_data;
    int proto;
    int handles; /* open uv handles; the last close frees the connection */
    unsigned closing : 1;
    unsigned close_after_flush : 1;
    unsigned reading : 1;
    unsigned writing : 1;
    unsigned processing : 1;
    unsigned read_eof : 1;
    unsigned shutting_down : 1; /* server close: finish, then close */
    unsigned fake : 1;          /* no socket (tests, fuzzing) */
    unsigned close_now : 1;     /* sw__conn_close_soon() was called */
    unsigned tp_pump : 1;       /* the timer is armed to resume input held by the transport */
    unsigned h1_only : 1;       /* no h2c preface sniffing (TLS: ALPN chose HTTP/1.1) */
    unsigned lingering : 1;     /* sent FIN after the last byte; discarding input until EOF */
    char peer[64];
    size_t body_bytes; /* request body bytes allocated for its requests (sw__body_grow()) */
    /* input: plaintext not yet consumed */
    uint8_t *in;
    size_t in_len, in_cap;
    /* output */
    sw__queue_t out;
    size_t wr_bytes;      /* bytes of the write in flight */
    uint64_t head_start;  /* uv_now() when the current request head began */
    uint64_t last_active; /* uv_now() of the last read or write progress */
    /* HTTP/1.1 */
    sw__http1_head_t head;
    sw__req_t *req; /* the request being answered */
    /* HTTP/2 */
    sw__h2_t *h2;
    /* SW__PROTO_TUNNEL (sw_http_upgrade.c) */
    struct sw__tunnel *tunnel;
};

#define SW__OUT_SOFT_LIMIT (1024 * 1024)
/* How long a closing connection waits for the client's FIN after ours (see conn_linger). */
#define SW__LINGER_MS 2000

struct sw_http_server {
    uv_loop_t *loop;
    sw_http_server_config_t cfg;
    char server_name[64];
    sw_http_handler_cb cb;
    void *data;
    struct sw__listener *listeners;
    sw__conn_t *conns;
    sw_http_stats_t stats;
    int handles; /* listeners + connections + close timer still open */
    int closing;
    uv_timer_t close_timer;
    int close_timer_state; /* 0 none, 1 draining, 2 forcing */
    /* Connections with output to write, written once per loop iteration, after the I/O callbacks
     * (uv_check): one write system call carries every response an iteration produced. The idle
     * handle runs while the list is not empty, so that the loop does not block before it. */
    sw__conn_t *flush_list;
    uv_check_t flush_check;
    uv_idle_t flush_idle;
    int flush_state; /* 0 not started, 1 running, 2 closed */
    void (*on_closed)(void *data);
    void *on_closed_data;
    char date[40];
    int64_t date_sec;
    uint8_t *tls_rbuf;     /* ciphertext read buffer shared by TLS connections (one loop thread) */
    uint8_t *tls_stage;    /* plaintext gathered into one record before SSL_write(), shared too */
    char tls_err[320];     /* the last TLS load error, for *err_desc */
    const sw_alog_t *alog; /* sw_http_server_set_alog(), or NULL */
    sw__req_t *spare;      /* freed requests kept for the next ones (sw__req_new()) */
    unsigned nspare;
    sw__h2mem_t h2mem;
};

#define SW__TLS_RBUF_SIZE (64 * 1024)
#define SW__TLS_RECORD    16384 /* the largest TLS record payload */

extern const sw__transport_t sw__transport_plain;

/** Creates a connection on `s` with transport `tp`. Returns NULL when out of memory. */
sw__conn_t *sw__conn_new(sw_http_server_t *s, const sw__transport_t *tp);
/** Plaintext arrived (from the transport): buffers it and runs the protocol. */
void sw__conn_feed(sw__conn_t *c, const uint8_t *buf, size_t len);
/** Queues output bytes; `rb` NULL means copy. Returns 0 or SW_ERR_NOMEM. */
int sw__conn_queue(sw__conn_t *c, sw_rbuf_t *rb, const void *p, size_t len);
/** The transport's write finished: `n` bytes of c->out went out (n == 0 with err < 0 on error). */
void sw__conn_written(sw__conn_t *c, size_t n, int err);
/** Has what is queued in c->out written at the end of this loop iteration. */
void sw__conn_flush(sw__conn_t *c);
/**
 * For a transport's flush: writes `bufs` at once as far as the socket takes them, and the rest
 * with uv_write() and `cb` (c->writing set). Returns 1 when all went out (call
 * sw__conn_written() then), 0 when a write is in flight, or a negative libuv error. May change
 * `bufs`.
 */
int sw__conn_write(sw__conn_t *c, uv_buf_t *bufs, unsigned n, uv_write_cb cb);
/** The peer closed its side (socket EOF or TLS close_notify): finish what is queued or close. */
void sw__conn_eof(sw__conn_t *c);
/** Closes now (aborting requests that have not ended). Safe to call twice. */
void sw__conn_close(sw__conn_t *c);
/** Closes from the next loop iteration: for calls made inside callbacks. */
void sw__conn_close_soon(sw__conn_t *c);
void sw__conn_update(sw__conn_t *c);
/** The close callback of every handle a connection owns; the last one frees the connection. */
void sw__conn_handle_closed(uv_handle_t *h);

/**
 * Nonzero for a method that takes no request body here: GET, HEAD, OPTIONS and TRACE (see
 * sw/http.h). `m` may be NULL (a request without a method yet: not bodyless).
 */
int sw__method_bodyless(const char *m);

/* Outcomes of sw__body_grow() besides 0 and SW_ERR_NOMEM. */
enum { SW__BODY_CONN_CAP = 1, SW__BODY_SERVER_CAP = 2 };

/**
 * Makes r->body hold at least `cap` bytes (cap > r->body_cap), counting the growth against
 * max_conn_body_bytes and max_server_body_bytes. Returns 0, SW__BODY_CONN_CAP or
 * SW__BODY_SERVER_CAP (over a cap: nothing changed) or SW_ERR_NOMEM (nothing changed).
 */
int sw__body_grow(sw__req_t *r, size_t cap);
/** Frees r->body and gives its bytes back to the caps. Nothing when it has none. */
void sw__body_release(sw__req_t *r);

/** Common request helpers. */
sw__req_t *sw__req_new(sw__conn_t *c);
void sw__req_free(sw__req_t *r);
int sw__req_add_header(sw__req_t *r, const char *name, size_t nlen, const char *value, size_t vlen);
void sw__req_abort(sw__req_t *r);
void sw__req_log(sw__req_t *r, int aborted);
const char *sw__server_date(sw_http_server_t *s);

/* ---- tunnels of taken-over TLS connections (sw_http_upgrade.c) ---- */

/** Plaintext from the client: queued towards the socketpair. */
void sw__tunnel_feed(sw__conn_t *c, const uint8_t *buf, size_t len);
/** Re-decides reading the socketpair (stops while the client's output is over the soft limit). */
void sw__tunnel_update(sw__conn_t *c);
/** Closes the socketpair end (one of the connection's handles) with the connection. */
void sw__tunnel_close(sw__conn_t *c);
/** Frees what the tunnel holds once every handle is closed. NULL does nothing. */
void sw__tunnel_free(struct sw__tunnel *t);

/* ---- TLS (sw_tls.c): OpenSSL through memory BIOs, ALPN "h2" or "http/1.1" ---- */

struct ssl_ctx_st;
extern const sw__transport_t sw__transport_tls;

/**
 * Makes a server context (TLS 1.2 and 1.3, ALPN, no renegotiation) with the certificate chain
 * and key from PEM files. Returns 0, SW_ERR_NOMEM or SW_ERR_INVAL (then `err` names the file
 * and the reason).
 */
int sw__tls_ctx_new(struct ssl_ctx_st **out, const char *cert_file, const char *key_file, char *err,
                    size_t errlen);
void sw__tls_ctx_ref(struct ssl_ctx_st *ctx);
void sw__tls_ctx_unref(struct ssl_ctx_st *ctx);
/**
 * Starts the server side of a handshake on `c`, whose transport must be sw__transport_tls. The
 * connection holds a reference on `ctx` until it is freed. Returns 0 or SW_ERR_NOMEM.
 */
int sw__tls_conn_init(sw__conn_t *c, struct ssl_ctx_st *ctx);

/* ---- HTTP/2 (sw_http2.c) ---- */

extern const uint8_t sw__h2_preface[24];
int sw__h2_init(sw__conn_t *c);
void sw__h2_dispose(sw__conn_t *c);
/** Feeds plaintext to nghttp2 and dispatches complete requests. */
void sw__h2_feed(sw__conn_t *c, const uint8_t *buf, size_t len);
/** Moves frames from nghttp2 to the output queue while it is under the soft limit. */
void sw__h2_send(sw__conn_t *c);
/** Aborts every stream whose response has not ended and frees all streams. */
void sw__h2_abort_all(sw__conn_t *c);
/** Server close: aborts and resets unanswered streams, sends GOAWAY; answered streams finish. */
void sw__h2_goaway(sw__conn_t *c);
int sw__h2_has_streams(const sw__conn_t *c);
/** Batches frames while on: sw_http_respond() sends HEADERS and DATA with END_STREAM together. */
void sw__h2_hold(sw__conn_t *c, int on);

int sw__h2_start(sw__req_t *r, int status, const sw_http_header_t *hdrs, size_t nhdrs,
                 int64_t content_length);
int sw__h2_write(sw__req_t *r, sw_rbuf_t *rb, const void *p, size_t len);
int sw__h2_end(sw__req_t *r);

#endif
