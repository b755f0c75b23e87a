/*
 * sw/http.h: the HTTP server core shared by shortwave-origin and shortwave-edge.
 *
 * One server lives on one uv_loop_t and is used from that loop's thread only. It speaks HTTP/1.1
 * (keep-alive, pipelined requests answered in order, chunked responses) and HTTP/2 with prior
 * knowledge on the same plain port (h2c: the connection preface selects it), through nghttp2's
 * mem_recv/mem_send. TLS listeners (OpenSSL, memory BIOs) select HTTP/2 or HTTP/1.1 by ALPN on
 * top of the same connection core.
 *
 * The server calls the handler once per request, after the whole head (and a body up to
 * max_body_bytes) has arrived. The handler answers at once or later: a request may be held (an
 * LL-HLS blocking playlist reload, a part that does not exist yet) without a thread, and answered
 * from any later callback on the same loop. A response is either whole (sw_http_respond) or
 * streamed (sw_http_start, sw_http_write*, sw_http_end); a streamed response of unknown length goes
 * out chunked on HTTP/1.1 and as DATA frames on HTTP/2, each write sent as soon as the socket takes
 * it.
 *
 * Lifetime of a request: from the handler call until sw_http_end()/sw_http_respond() returns, or
 * until the abort callback returns if the client goes away first. After either, the pointer is
 * dead. A held request whose client disconnects gets its abort callback exactly once; a request
 * that was answered never does.
 *
 * HEAD is handled here: the handler answers it as GET and the server drops the body while keeping
 * Content-Length.
 *
 * Request bodies are read whole into memory before the handler call, up to max_body_bytes (413
 * beyond). GET, HEAD, OPTIONS and TRACE take none here (RFC 9110 gives such content no meaning,
 * and no route of the origin or the edge reads one): a body on them is answered 400, without a
 * handler call. DELETE may have one: the edge's DELETE /api/purge takes its parameters in a form
 * body as well as in the query. HTTP/1.1 sees it in the head (Content-Length above 0) and closes
 * the connection after the 400; HTTP/2 sees a content-length above 0 or the first DATA byte,
 * answers at once and ends the stream's upload with RST_STREAM (NO_ERROR). Content-Length: 0 or an
 * empty DATA frame is no body. Bytes held for bodies are capped per connection
 * (max_conn_body_bytes; HTTP/2 streams add up) and per server (max_server_body_bytes). A body that
 * would go past a cap is not buffered: HTTP/1.1 answers 413 (the connection's cap) or 503 (the
 * server's) and closes; HTTP/2 resets that stream with REFUSED_STREAM (it never reached the
 * handler, so the client may retry it), and the connection's other streams go on. sw_http_stats_t
 * counts both. HTTP/2 streams start with a receive window of 64 KiB; one whose method takes a body
 * gets a window of its content-length (or max_body_bytes) when its headers arrive.
 */
#ifndef SW_HTTP_H
#define SW_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sw/rbuf.h"
#include "sw/str.h"
#include "sw/sw.h"

typedef struct sw_http_server sw_http_server_t;
typedef struct sw_http_req sw_http_req_t;

typedef struct sw_http_header {
    const char *name; /* lower case on HTTP/2; compared case-insensitively */
    const char *value;
} sw_http_header_t;

typedef struct sw_http_server_config {
    size_t max_header_bytes;      /* request line + headers, default 16 KiB; over it: 431 */
    size_t max_body_bytes;        /* request body, default 1 MiB; over it: 413 */
    size_t max_conn_body_bytes;   /* request body bytes one connection may have buffered at once
                                     (HTTP/2 streams add up), default 0: twice max_body_bytes;
                                     never less than max_body_bytes. Over it: see below. */
    size_t max_server_body_bytes; /* the same for the whole server (one loop), default 64 MiB;
                                     never less than max_conn_body_bytes */
    uint32_t header_timeout_ms;   /* a request head must arrive within this, default 10 s */
    uint32_t idle_timeout_ms;     /* keep-alive connection with nothing to do, default 60 s;
                                     also one that holds request body bytes (a body half sent,
                                     on HTTP/2 too) and neither reads nor writes for this long */
    uint32_t max_connections;     /* default 10000; beyond it new connections are closed */
    uint32_t max_streams;         /* HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS, default 256 */
    uint32_t send_timeout_ms;     /* queued output that makes no progress this long closes the
                                     connection (a client that stopped reading); default 0:
                                     idle_timeout_ms */
    uint32_t drain_timeout_ms;    /* on close, how long answered requests may still finish, 2 s */
    uint32_t notsent_lowat;       /* TCP_NOTSENT_LOWAT of each HTTP/2 connection, default 256 KiB:
                                     the kernel holds at most this much not yet sent, so that output
                                     waits in the server, where HTTP/2 can still order it; 0 leaves
                                     the kernel's. HTTP/1.1 connections always have the kernel's. */
    const char *server_name;      /* Server header, default "shortwave" */
} sw_http_server_config_t;

/** Fills `cfg` with the defaults above. */
void sw_http_server_config_init(sw_http_server_config_t *cfg);

/** The application's request handler. Runs on the loop thread. */
typedef void (*sw_http_handler_cb)(void *data, sw_http_req_t *req);

/**
 * Creates a server on `loop`. Copies `cfg`. Returns 0 or SW_ERR_NOMEM.
 */
int sw_http_server_new(sw_http_server_t **out, uv_loop_t *loop, const sw_http_server_config_t *cfg,
                       sw_http_handler_cb cb, void *data);

/**
 * Writes one access-log line (sw/alog.h) per request the server ends or sees aborted, with what
 * the core knows (no cache status, no upstream time). `log` is the caller's and must outlive the
 * server or be replaced first; NULL stops. A server whose application writes its own lines (the
 * edge) leaves it unset. Loop thread.
 */
struct sw_alog;
void sw_http_server_set_alog(sw_http_server_t *s, const struct sw_alog *log);

/**
 * Listens on "HOST:PORT", "[V6]:PORT" or ":PORT". May be called several times. With `reuseport`
 * set, binds with SO_REUSEPORT (one server per worker thread). Returns 0, SW_ERR_ADDR (with
 * *err_desc naming why) or SW_ERR_NOMEM. `bound_port`, if not NULL, receives the port actually
 * bound (useful with port 0). Responses are written once per loop iteration from a uv_check
 * handle that the first listen starts: a uv_check the caller starts after that runs before it in
 * each iteration (libuv runs check handles newest first), e.g. to publish counters before the
 * answers they count reach clients.
 */
int sw_http_server_listen(sw_http_server_t *s, const char *addr, int reuseport, int *bound_port,
                          const char **err_desc);

/**
 * Listens like sw_http_server_listen(), with TLS (1.2 and 1.3) on every connection. ALPN selects
 * HTTP/2 ("h2") or HTTP/1.1 ("http/1.1", also when the client offers no ALPN); h2c prior
 * knowledge is not accepted here. `cert_file` is a PEM certificate chain (leaf first) and
 * `key_file` its PEM private key, both read before this returns. Each TLS listener has its own
 * context, shared by its connections. Returns 0, SW_ERR_ADDR, SW_ERR_NOMEM or SW_ERR_INVAL (a
 * file cannot be read or parsed, or the key does not match the certificate). On error *err_desc
 * says why; for SW_ERR_INVAL it names the file, and stays valid until the next call on `s`.
 */
int sw_http_server_listen_tls(sw_http_server_t *s, const char *addr, int reuseport,
                              const char *cert_file, const char *key_file, int *bound_port,
                              const char **err_desc);

/**
 * Loads a new certificate chain and key (on SIGHUP, say) for every TLS listener of `s`, which
 * then share one new context: new handshakes use it; open connections keep the context they
 * started with until they close. Session tickets issued before the reload are not accepted after.
 * On error nothing changes and the previous certificate stays in use. Call from the loop thread.
 * Returns 0, SW_ERR_NOMEM, SW_ERR_INVAL (*err_desc names the file, valid until the next call on
 * `s`) or SW_ERR_STATE (the server has no TLS listener).
 */
int sw_http_server_reload_tls(sw_http_server_t *s, const char *cert_file, const char *key_file,
                              const char **err_desc);

/**
 * Stops accepting, lets requests in flight finish (held ones are aborted), closes connections and
 * calls `on_closed` once everything is released; then the server may be freed with
 * sw_http_server_free(). `on_closed` may be NULL. Responses already started, and output still
 * queued, get up to drain_timeout_ms to go out; then every connection is closed.
 */
void sw_http_server_close(sw_http_server_t *s, void (*on_closed)(void *data), void *data);
void sw_http_server_free(sw_http_server_t *s);

typedef struct sw_http_stats {
    uint64_t connections; /* open now */
    uint64_t accepted;    /* since start */
    uint64_t requests[3]; /* since start, by protocol: [0] HTTP/1.0, [1] HTTP/1.1, [2] HTTP/2 */
    uint64_t bytes_out;
    uint64_t bad_requests;   /* answered 4xx by the server itself or closed for a protocol error */
    uint64_t body_bytes;     /* bytes allocated for request bodies now: announced lengths, or
                                room grown as bytes come (at most max_server_body_bytes) */
    uint64_t bodies_refused; /* since start: bodies refused for max_conn_body_bytes or
                                max_server_body_bytes (REFUSED_STREAM, 413 or 503) */
} sw_http_stats_t;

void sw_http_server_stats(const sw_http_server_t *s, sw_http_stats_t *out);

/* A request, as the handler sees it. All strings are NUL-terminated and live as long as `req`. */
struct sw_http_req {
    const char *method; /* "GET", "HEAD", "POST", "DELETE", ... */
    const char *path;   /* as sent, without the query; not percent-decoded */
    const char *query;  /* after '?', "" when there is none */
    const char *authority;
    int version;         /* 10, 11 or 20 */
    const uint8_t *body; /* whole request body; NULL when empty */
    size_t body_len;
    char peer[64]; /* "127.0.0.1:5555" */
    void *user;    /* free for the handler */
    sw_http_server_t *server;
};

/** Looks up a request header by name, case-insensitively. Returns NULL when absent. */
const char *sw_http_req_header(const sw_http_req_t *req, const char *name);

/**
 * Zeroed memory that lives as long as the request: freed with it, after the response has ended
 * (sw_http_end() or sw_http_respond()) or after the abort callback returned; so a handler's
 * per-request state must be let go before it ends the request. NULL when out of memory.
 */
void *sw_http_req_alloc(sw_http_req_t *req, size_t size);

/**
 * Calls `cb` if the client goes away before the response ends. The request is freed after `cb`
 * returns; `cb` must not answer it. Setting it again replaces the previous one.
 */
void sw_http_req_on_abort(sw_http_req_t *req, void (*cb)(sw_http_req_t *req, void *data),
                          void *data);

/**
 * Sends a whole response and ends the request. Copies `body`. Adds Content-Length, Date and
 * Server; `hdrs` must not contain those, nor Connection or Transfer-Encoding.
 * Returns 0 or SW_ERR_NOMEM (the request is ended either way: on failure the connection closes).
 */
int sw_http_respond(sw_http_req_t *req, int status, const sw_http_header_t *hdrs, size_t nhdrs,
                    const void *body, size_t len);

/** sw_http_respond() with a text/plain body "<message>\n". */
int sw_http_respond_error(sw_http_req_t *req, int status, const char *message);

/**
 * Starts a streamed response. `content_length` < 0 means unknown: chunked on HTTP/1.1. Then call
 * sw_http_write*() any number of times and sw_http_end() once. Returns 0, SW_ERR_NOMEM or
 * SW_ERR_STATE (already started).
 */
int sw_http_start(sw_http_req_t *req, int status, const sw_http_header_t *hdrs, size_t nhdrs,
                  int64_t content_length);

/** Queues a copy of `p[0..len)`. Returns 0, SW_ERR_NOMEM or SW_ERR_STATE. */
int sw_http_write(sw_http_req_t *req, const void *p, size_t len);

/**
 * Queues `b->data[off..off+len)` without copying; takes a new reference on `b` and drops it once
 * sent. Returns 0, SW_ERR_NOMEM or SW_ERR_STATE.
 */
int sw_http_write_rbuf(sw_http_req_t *req, sw_rbuf_t *b, size_t off, size_t len);

/** Ends a streamed response. The request is dead after it returns. Returns 0 or SW_ERR_STATE. */
int sw_http_end(sw_http_req_t *req);

/** Bytes queued on this request's connection and not yet written (for backpressure). */
size_t sw_http_pending(const sw_http_req_t *req);

/**
 * Takes the connection of an HTTP/1.1 request away from the server, for a protocol that upgrades
 * it (websockets): call it from the handler instead of answering. On success the request is dead
 * (no response, no abort callback) and the caller owns `*fd`, a connected non-blocking stream
 * socket with FD_CLOEXEC, and `pre`, to which the bytes the caller must treat as already read
 * from that socket were appended: the request head (rebuilt from the parsed request: method,
 * target, version and every header in order) followed by whatever the client sent after it.
 *
 * On a plain connection `*fd` is the client's own socket (duplicated; the server closes its
 * copy and forgets the connection). On a TLS connection the TLS session stays in the server and
 * `*fd` is one end of a socketpair whose other end the server keeps: plaintext goes both ways
 * through it until either side closes; the server stops reading the pair while the client's
 * output is over its soft limit, and closes the connection if the caller stops reading the pair
 * while the client keeps sending (1 MiB pending). Such a connection still counts against
 * max_connections and closes with the server.
 *
 * Returns 0, SW_ERR_STATE (not HTTP/1.1, the request has a body or was answered, or an earlier
 * response is still being written: the request is untouched and must be answered), SW_ERR_NOMEM
 * or SW_ERR_IO (dup() or socketpair() failed; the request is untouched).
 */
int sw_http_takeover(sw_http_req_t *req, int *fd, sw_str_t *pre);

/** The canonical reason phrase for a status ("Not Found"), or "Unknown". */
const char *sw_http_reason(int status);

#endif
