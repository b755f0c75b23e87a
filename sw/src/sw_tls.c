/*
 * sw_tls.c: the TLS transport. OpenSSL runs over BIOs in memory, so the socket stays with the
 * connection core and libuv: ciphertext read from the socket goes into a memory BIO and SSL_read()
 * decrypts straight into the connection's plaintext buffer for sw__conn_feed(); the output queue
 * is encrypted with SSL_write() into a BIO of our own that appends the records to the buffer
 * uv_write() then sends.
 *
 * Plaintext stays in c->out until the write that carries its ciphertext completes, so the size of
 * the output queue (and with it the soft limit that stops reading) means what it means on a plain
 * connection. Input is decrypted only as far as the protocol can take it; what is left inside
 * OpenSSL is picked up again through the `pending` hook once the connection may read.
 *
 * Each listener holds a reference on its SSL_CTX, and each connection one more through SSL_new(),
 * so a reload swaps the listener's context while connections finish on the one they began with.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sw/log.h"
#include "sw_http_int.h"

/* Plaintext encrypted for one socket write: enough to amortize the system call, small enough to
 * bound the ciphertext each connection holds (its buffer is freed once the write is done). With
 * 256 KB, a connection carrying segments sat idle for about 50 ms now and then: at 460 segment
 * requests/s over TLS, requests sent 17 ms apart on one connection all ended together, p99 31 ms
 * against h2o's 4; with 128 KB once in three runs, with 64 KB never, at the same CPU per byte. */
#define TLS_BATCH (64 * 1024)
/* Ciphertext beyond the plaintext per record, at most: header, explicit nonce, tag, type. */
#define TLS_RECORD_OVERHEAD 64

/* TLS 1.2 suites with forward secrecy and AEAD only (RFC 9113 9.2.2 forbids the rest for h2).
 * Both lists put AES-128-GCM first (OpenSSL's TLS 1.3 default order starts with AES-256, a third
 * slower per byte for no practical gain); a client that prefers ChaCha20 (no AES instructions)
 * gets it (SSL_OP_PRIORITIZE_CHACHA). */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
#define TLS13_CIPHERS "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

typedef struct sw__tls {
    SSL *ssl;
    BIO *rbio;     /* owned by ssl, as the sink BIO on the write side */
    uint8_t *obuf; /* ciphertext not yet handed to a write: the sink BIO appends here */
    size_t olen, ocap;
    uint8_t *wbuf;   /* ciphertext of the write in flight */
    size_t wr_plain; /* bytes at the front of c->out that this write carries */
    unsigned handshaken : 1;
    unsigned failed : 1;  /* fatal TLS error: no SSL_shutdown(), no more records */
    unsigned stalled : 1; /* decrypted input held back because the protocol could not take it */
    unsigned shut : 1;    /* our close_notify is queued */
    unsigned peer_closed : 1;
} sw__tls_t;

static const unsigned char alpn_protos[] = "\x02h2\x08http/1.1";

static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;
    /* The server's order wins: h2 whenever the client offers it. */
    if (SSL_select_next_proto(&sel, outlen, alpn_protos, sizeof(alpn_protos) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* nothing in common: go on without ALPN, as HTTP/1.1 */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The first error queued is the cause ("no start line", a failed fopen()); later ones only say
 * which call gave up ("PEM lib"). */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    if (e == 0)
        return "unknown error";
    if (ERR_SYSTEM_ERROR(e))
        return strerror(ERR_GET_REASON(e));
    const char *r = ERR_reason_error_string(e);
    return r != NULL ? r : "unknown error";
}

static int load_failed(SSL_CTX *ctx, char *err, size_t errlen, const char *what, const char *file)
{
    snprintf(err, errlen, "%s %s: %s", what, file, ssl_reason());
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return SW_ERR_INVAL;
}

int sw__tls_ctx_new(SSL_CTX **out, const char *cert_file, const char *key_file, char *err,
                    size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ERR_clear_error();
        snprintf(err, errlen, "out of memory");
        return SW_ERR_NOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_PRIORITIZE_CHACHA | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
    SSL_CTX_set_ciphersuites(ctx, TLS13_CIPHERS);
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select, NULL);
    if (cert_file == NULL || key_file == NULL) {
        snprintf(err, errlen, "no certificate or key file given");
        SSL_CTX_free(ctx);
        return SW_ERR_INVAL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
        return load_failed(ctx, err, errlen, "cannot load certificate", cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        /* OpenSSL compares the key with the certificate as it loads it. */
        int mismatch = ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH;
        return load_failed(ctx, err, errlen,
                           mismatch ? "key does not match the certificate:" : "cannot load key",
                           key_file);
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
        return load_failed(ctx, err, errlen, "key does not match the certificate:", key_file);
    *out = ctx;
    return 0;
}

void sw__tls_ctx_ref(SSL_CTX *ctx)
{
    SSL_CTX_up_ref(ctx);
}

void sw__tls_ctx_unref(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx); /* does nothing with NULL */
}

/* The write side's BIO. OpenSSL's memory BIO zeroes its buffer as it grows and its bytes are
 * then copied out; this one appends each record to t->obuf, which goes to uv_write() as it is
 * (callgrind: 22,260 -> 21,610 instructions per TLS playlist request). */
static BIO_METHOD *sink_method;
static pthread_once_t sink_once = PTHREAD_ONCE_INIT;

static int obuf_reserve(sw__tls_t *t, size_t n)
{
    if (t->ocap - t->olen >= n)
        return 0;
    size_t cap = t->ocap > 0 ? t->ocap : 4096;
    while (cap - t->olen < n)
        cap *= 2;
    uint8_t *p = realloc(t->obuf, cap);
    if (p == NULL)
        return -1;
    t->obuf = p;
    t->ocap = cap;
    return 0;
}

static int sink_write(BIO *b, const char *p, int len)
{
    sw__tls_t *t = BIO_get_data(b);
    if (len <= 0)
        return 0;
    if (obuf_reserve(t, (size_t)len) != 0)
        return -1;
    memcpy(t->obuf + t->olen, p, (size_t)len);
    t->olen += (size_t)len;
    return len;
}

static long sink_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    sw__tls_t *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING:
        return (long)t->olen;
    default:
        return 0;
    }
}

static int sink_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void sink_method_new(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sw ciphertext");
    if (m != NULL && (!BIO_meth_set_write(m, sink_write) || !BIO_meth_set_ctrl(m, sink_ctrl) ||
                      !BIO_meth_set_create(m, sink_create))) {
        BIO_meth_free(m);
        m = NULL;
    }
    sink_method = m;
}

int sw__tls_conn_init(sw__conn_t *c, SSL_CTX *ctx)
{
    sw__tls_t *t = calloc(1, sizeof(*t));
    BIO *r, *w;

    if (t == NULL)
        goto fail;
    if ((t->ssl = SSL_new(ctx)) == NULL) /* takes a reference on ctx */
        goto fail_t;
    pthread_once(&sink_once, sink_method_new);
    r = BIO_new(BIO_s_mem());
    w = sink_method != NULL ? BIO_new(sink_method) : NULL;
    if (r == NULL || w == NULL) {
        BIO_free(r);
        BIO_free(w);
        goto fail_ssl;
    }
    /* An empty memory BIO means "try again" (SSL_ERROR_WANT_READ), not end of file. */
    BIO_set_mem_eof_return(r, -1);
    BIO_set_data(w, t);
    SSL_set_bio(t->ssl, r, w);
    SSL_set_accept_state(t->ssl);
    t->rbio = r;
    c->tp_data = t;
    return 0;
fail_ssl:
    SSL_free(t->ssl);
fail_t:
    free(t);
fail:
    ERR_clear_error();
    return SW_ERR_NOMEM;
}

static void tls_dispose(sw__conn_t *c)
{
    sw__tls_t *t = c->tp_data;
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs and drops the context reference */
    free(t->obuf);
    free(t->wbuf);
    free(t);
    c->tp_data = NULL;
}

static void tls_alloc(sw__conn_t *c, uv_buf_t *buf)
{
    /* Ciphertext is copied into the read BIO before on_read returns, so one buffer serves every
     * connection of the loop. */
    buf->base = (char *)c->server->tls_rbuf;
    buf->len = SW__TLS_RBUF_SIZE;
}

static void on_tls_write(uv_write_t *w, int status)
{
    sw__conn_t *c = w->data;
    sw__tls_t *t = c->tp_data;
    free(t->wbuf);
    t->wbuf = NULL;
    sw__conn_written(c, status < 0 ? 0 : t->wr_plain, status);
}

static int write_all(SSL *ssl, const uint8_t *p, size_t len)
{
    while (len > 0) {
        int n = SSL_write(ssl, p, len > INT_MAX ? INT_MAX : (int)len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Feeds the front of c->out to SSL_write(), TLS_BATCH bytes at most. Small chunks
 * (an HTTP/2 frame header before its payload) are gathered in a stage so that records are full
 * (16 KiB) instead of one short record per chunk; runs of whole records go straight through. */
static int encrypt_out(sw__conn_t *c, sw__tls_t *t, size_t *plain)
{
    uint8_t *stage = c->server->tls_stage;
    size_t sl = 0;
    for (sw__chunk_t *k = c->out.head; k != NULL && *plain < TLS_BATCH; k = k->next) {
        k->sealed = 1; /* a chunk may be taken in part: nothing may be appended to it */
        const uint8_t *p = k->p;
        size_t len = k->len < TLS_BATCH - *plain ? k->len : TLS_BATCH - *plain;
        *plain += len;
        while (len > 0) {
            if (sl == 0 && len >= SW__TLS_RECORD) {
                size_t n = len - len % SW__TLS_RECORD;
                if (write_all(t->ssl, p, n) != 0)
                    return -1;
                p += n;
                len -= n;
                continue;
            }
            size_t n = SW__TLS_RECORD - sl < len ? SW__TLS_RECORD - sl : len;
            memcpy(stage + sl, p, n);
            sl += n;
            p += n;
            len -= n;
            if (sl == SW__TLS_RECORD) {
                if (write_all(t->ssl, stage, sl) != 0)
                    return -1;
                sl = 0;
            }
        }
    }
    return sl > 0 ? write_all(t->ssl, stage, sl) : 0;
}

/* Encrypts the front of c->out (up to TLS_BATCH) and writes it with whatever OpenSSL queued by
 * itself (handshake messages, tickets, alerts, close_notify). Those plaintext bytes stay at the
 * front of c->out, untouched, until the write completes and sw__conn_written() drops them. */
static void tls_flush(sw__conn_t *c)
{
    sw__tls_t *t = c->tp_data;
    if (t == NULL || c->writing || c->closing)
        return;
    size_t plain = 0;
    if (t->handshaken && !t->failed && !t->shut) {
        /* Room for the records of one batch, so that they seldom move while they are written. */
        size_t want = c->out.bytes < TLS_BATCH ? c->out.bytes : TLS_BATCH;
        ERR_clear_error();
        if ((want > 0 &&
             obuf_reserve(t, want + (want / SW__TLS_RECORD + 1) * TLS_RECORD_OVERHEAD) != 0) ||
            encrypt_out(c, t, &plain) != 0) {
            sw_log(SW_LOG_DEBUG, "http", "%s: TLS write failed: %s", c->peer, ssl_reason());
            ERR_clear_error();
            t->failed = 1;
            sw__conn_close_soon(c);
            return;
        }
    }
    size_t n = t->olen;
    if (n == 0 || n > UINT_MAX)
        return;
    t->wbuf = t->obuf;
    t->obuf = NULL;
    t->olen = t->ocap = 0;
    t->wr_plain = plain;
    uv_buf_t b = uv_buf_init((char *)t->wbuf, (unsigned)n);
    int rv = sw__conn_write(c, &b, 1, on_tls_write);
    if (rv != 0) {
        free(t->wbuf);
        t->wbuf = NULL;
        sw__conn_written(c, rv > 0 ? plain : 0, rv > 0 ? 0 : rv);
    }
}

/* A fatal TLS error. During the handshake the alert OpenSSL queued goes out before the close;
 * later the connection closes at once. */
static void tls_fail(sw__conn_t *c, sw__tls_t *t, int ssl_err)
{
    const char *why = ERR_peek_error() != 0          ? ssl_reason()
                      : ssl_err == SSL_ERROR_SYSCALL ? "unexpected end of stream"
                                                     : "error";
    t->failed = 1;
    if (!t->handshaken) {
        c->server->stats.bad_requests++;
        sw_log(SW_LOG_DEBUG, "http", "%s: TLS handshake failed: %s", c->peer, why);
        ERR_clear_error();
        c->close_after_flush = 1;
        /* Written now, not from the flusher: the alert is in the write BIO, not in c->out, so
         * sw__conn_update() would see nothing queued and close before it went out. */
        tls_flush(c);
        sw__conn_update(c);
        return;
    }
    sw_log(SW_LOG_DEBUG, "http", "%s: TLS: %s", c->peer, why);
    ERR_clear_error();
    sw__conn_close(c);
}

/* Returns 1 once the handshake is done and the protocol chosen, 0 to wait or stop. */
static int tls_handshake(sw__conn_t *c, sw__tls_t *t)
{
    int r = SSL_do_handshake(t->ssl);
    if (r != 1) {
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            sw__conn_flush(c);
            sw__conn_update(c);
        } else {
            tls_fail(c, t, e);
        }
        return 0;
    }
    t->handshaken = 1;
    const unsigned char *p;
    unsigned n;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n == 2 && memcmp(p, "h2", 2) == 0) {
        if (sw__h2_init(c) != 0) {
            sw__conn_close(c);
            return 0;
        }
        c->proto = SW__PROTO_H2;
        sw__h2_send(c); /* our SETTINGS */
    } else {
        c->h1_only = 1; /* HTTP/1.1 by ALPN or by default: no h2c sniffing */
    }
    return 1;
}

/* Decrypts into c->in while the protocol can take more: room in the buffer, output under the
 * soft limit. Each SSL_read() consumes buffered ciphertext, so the loop ends. */
static void tls_decrypt(sw__conn_t *c, sw__tls_t *t)
{
    for (;;) {
        if (c->closing || c->close_now || (c->close_after_flush && c->proto != SW__PROTO_H2))
            return;
        size_t room = c->in_cap - c->in_len;
        if (room == 0 || c->out.bytes >= SW__OUT_SOFT_LIMIT) {
            t->stalled = SSL_has_pending(t->ssl) || BIO_ctrl_pending(t->rbio) > 0;
            return;
        }
        uint8_t *p = c->in + c->in_len;
        int n = SSL_read(t->ssl, p, room > INT_MAX ? INT_MAX : (int)room);
        if (n > 0) {
            sw__conn_feed(c, p, (size_t)n);
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            return;
        if (e == SSL_ERROR_ZERO_RETURN) {
            /* close_notify: the client closed its side, as a socket EOF would. */
            t->peer_closed = 1;
            sw__conn_eof(c);
            return;
        }
        tls_fail(c, t, e);
        return;
    }
}

static void tls_on_read(sw__conn_t *c, const uint8_t *buf, size_t len)
{
    sw__tls_t *t = c->tp_data;
    if (c->closing || t == NULL || t->failed || t->peer_closed)
        return;
    ERR_clear_error();
    if (len > 0 && BIO_write(t->rbio, buf, (int)len) != (int)len) {
        sw__conn_close(c);
        return;
    }
    t->stalled = 0;
    if (!t->handshaken && !tls_handshake(c, t))
        return;
    tls_decrypt(c, t);
    if (!c->closing) {
        sw__conn_flush(c); /* alerts, tickets or KeyUpdate replies that SSL_read() queued */
        sw__conn_update(c);
    }
}

static int tls_pending(sw__conn_t *c)
{
    sw__tls_t *t = c->tp_data;
    return t != NULL && t->stalled && !t->failed && !t->peer_closed;
}

static int tls_shutdown(sw__conn_t *c)
{
    sw__tls_t *t = c->tp_data;
    if (t == NULL || t->shut || t->failed || !t->handshaken || c->read_eof)
        return 0;
    t->shut = 1;
    ERR_clear_error();
    if (SSL_shutdown(t->ssl) < 0) {
        ERR_clear_error();
        return 0;
    }
    sw__conn_flush(c);
    return c->writing || t->olen > 0;
}

const sw__transport_t sw__transport_tls = {
    .name = "tls",
    .on_read = tls_on_read,
    .flush = tls_flush,
    .alloc = tls_alloc,
    .pending = tls_pending,
    .shutdown = tls_shutdown,
    .dispose = tls_dispose,
};
