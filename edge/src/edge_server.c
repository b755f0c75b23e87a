/*
 * The edge daemon's request path: local endpoints, then cache lookup; a miss starts one upstream
 * fetch that fills the object, and every request for the key (the fetcher's own included) is a
 * subscriber served by the same code: pump() writes the object's chunks (rbuf references, no
 * copies) from the request's own offset as they arrive.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/cache.h"
#include "edge/edge.h"
#include "edge/http_util.h"
#include "edge/upstream.h"
#include "sw/http.h"
#include "sw/log.h"
#include "sw/str.h"

#define SWEEP_MS 5000

typedef struct fetch_ctx fetch_ctx_t;
typedef struct ereq ereq_t;

struct edge_server {
    uv_loop_t *loop;
    sw_http_server_t *http;
    edge_upstream_t *up;
    edge_cache_t *cache;
    uv_timer_t sweep;
    fetch_ctx_t *fetches; /* in flight, for shutdown */
    ereq_t *reqs;         /* requests in flight */
    int pending_close;
    void (*on_closed)(void *data);
    void *closed_data;
    /* metrics */
    uint64_t requests[3][6]; /* protocol (1.0, 1.1, 2) x status class (0: other, 1xx..5xx) */
    uint64_t stale_served;
    uint64_t upstream_502;
};

/* One client request being served from an object. */
struct ereq {
    edge_server_t *srv;
    sw_http_req_t *req;
    edge_obj_t *obj; /* our reference */
    edge_sub_t sub;
    uint64_t off; /* bytes of obj queued to the client */
    int started;
    const char *xcache;
    fetch_ctx_t *fc; /* the fetch this request started, while both live */
    ereq_t *prev, *next;
};

/* One upstream fetch filling one object. */
struct fetch_ctx {
    edge_server_t *srv;
    edge_obj_t *obj; /* our reference */
    edge_fetch_t *f;
    int have_head;
    ereq_t *owner; /* the request that started it, while both live */
    fetch_ctx_t *prev, *next;
};

static const sw_http_header_t cors = {"access-control-allow-origin", "*"};

static void count(edge_server_t *s, sw_http_req_t *req, int status)
{
    int p = req->version == 10 ? 0 : req->version == 20 ? 2 : 1;
    int c = status >= 100 && status < 600 ? status / 100 : 0;
    s->requests[p][c]++;
}

static void respond_text(edge_server_t *s, sw_http_req_t *req, int status, const char *ctype,
                         const char *body, size_t len, const sw_http_header_t *extra, size_t nextra)
{
    sw_http_header_t h[8];
    size_t n = 0;
    h[n++] = cors;
    h[n++] = (sw_http_header_t){"content-type", ctype};
    h[n++] = (sw_http_header_t){"cache-control", "no-store"};
    for (size_t i = 0; i < nextra && n < SW_ARRAY_SIZE(h); i++)
        h[n++] = extra[i];
    count(s, req, status);
    sw_http_respond(req, status, h, n, body, len);
}

static void respond_error(edge_server_t *s, sw_http_req_t *req, int status, const char *msg)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "%s\n", msg);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)sizeof(body) - 1;
    respond_text(s, req, status, "text/plain", body, (size_t)n, NULL, 0);
}

/* ---- meta: the headers we replay, as NUL-terminated strings ------------------------------ */

enum { META_CTYPE, META_CC, META_ETAG, META_TIME, META_N };

static sw_rbuf_t *meta_build(const char *v[META_N])
{
    size_t len = 0;
    for (int i = 0; i < META_N; i++)
        len += strlen(v[i] ? v[i] : "") + 1;
    sw_rbuf_t *b = sw_rbuf_new(len);
    if (b == NULL)
        return NULL;
    for (int i = 0; i < META_N; i++) {
        size_t l = strlen(v[i] ? v[i] : "") + 1;
        memcpy(b->data + b->len, v[i] ? v[i] : "", l);
        b->len += l;
    }
    return b;
}

static void meta_get(const edge_obj_t *o, const char *v[META_N])
{
    sw_rbuf_t *b = edge_obj_meta(o);
    size_t off = 0;
    for (int i = 0; i < META_N; i++) {
        v[i] = "";
        if (b != NULL && off < b->len) {
            v[i] = (const char *)b->data + off;
            off += strnlen(v[i], b->len - off) + 1;
        }
    }
}

/* ---- serving an object ------------------------------------------------------------------- */

static void ereq_free(ereq_t *r)
{
    edge_obj_unsubscribe(&r->sub);
    edge_obj_unref(r->obj);
    if (r->fc != NULL)
        r->fc->owner = NULL;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        r->srv->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    free(r);
}

static void on_req_abort(sw_http_req_t *req, void *data)
{
    (void)req;
    ereq_free(data);
}

static int write_piece(void *data, sw_rbuf_t *b, size_t boff, size_t len)
{
    ereq_t *r = data;
    if (sw_http_write_rbuf(r->req, b, boff, len) != 0)
        return -1;
    r->off += len;
    return 0;
}

static int start_response(ereq_t *r)
{
    edge_obj_t *o = r->obj;
    const char *m[META_N];
    char age[32];
    sw_http_header_t h[8];
    size_t n = 0;
    int64_t clen = -1;

    meta_get(o, m);
    h[n++] = cors;
    h[n++] = (sw_http_header_t){"x-cache", r->xcache};
    if (m[META_CTYPE][0])
        h[n++] = (sw_http_header_t){"content-type", m[META_CTYPE]};
    if (m[META_CC][0])
        h[n++] = (sw_http_header_t){"cache-control", m[META_CC]};
    if (m[META_ETAG][0])
        h[n++] = (sw_http_header_t){"etag", m[META_ETAG]};
    int64_t t = strtoll(m[META_TIME], NULL, 10), now = sw_now_ms();
    snprintf(age, sizeof(age), "%lld", (long long)(t > 0 && now > t ? (now - t) / 1000 : 0));
    h[n++] = (sw_http_header_t){"age", age};
    if (edge_obj_state(o) == EDGE_OBJ_COMPLETE)
        clen = (int64_t)edge_obj_size(o);
    else
        clen = edge_obj_content_length(o);
    count(r->srv, r->req, edge_obj_status(o));
    if (sw_http_start(r->req, edge_obj_status(o), h, n, clen) != 0)
        return -1;
    r->started = 1;
    return 0;
}

/* Writes what arrived since the last call; ends the response once the object is complete.
 * Returns 1 if the request is finished (r freed). */
static int pump(ereq_t *r)
{
    if (!r->started && start_response(r) != 0)
        goto end;
    if (edge_obj_size(r->obj) > r->off &&
        edge_obj_chunks(r->obj, r->off, UINT64_MAX, write_piece, r) != 0)
        goto end;
    if (edge_obj_state(r->obj) == EDGE_OBJ_FILLING)
        return 0;
end:
    sw_http_end(r->req);
    ereq_free(r);
    return 1;
}

static void serve_stale_or_502(ereq_t *r, int err)
{
    edge_server_t *s = r->srv;
    edge_obj_t *stale = edge_obj_stale(r->obj, sw_now_ms());
    if (stale != NULL) {
        edge_obj_unref(r->obj);
        r->obj = stale;
        r->off = 0;
        r->xcache = "STALE";
        s->stale_served++;
        pump(r);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "upstream failed: %s", edge_strerror(err));
    s->upstream_502++;
    respond_error(s, r->req, err == EDGE_ERR_UNCACHEABLE ? 503 : 502, msg);
    ereq_free(r);
}

static void on_sub_data(edge_sub_t *sub, edge_obj_t *o)
{
    (void)o;
    pump(sub->data);
}

static void on_sub_done(edge_sub_t *sub, edge_obj_t *o, int err)
{
    ereq_t *r = sub->data;
    (void)o;
    if (err == 0 || r->started) {
        /* A failure after the head went out cannot be reported; end what was sent. */
        pump(r);
        return;
    }
    serve_stale_or_502(r, err);
}

/* ---- the upstream fetch ------------------------------------------------------------------ */

static void fetch_free(fetch_ctx_t *fc)
{
    edge_obj_unref(fc->obj);
    if (fc->owner != NULL)
        fc->owner->fc = NULL;
    if (fc->prev != NULL)
        fc->prev->next = fc->next;
    else
        fc->srv->fetches = fc->next;
    if (fc->next != NULL)
        fc->next->prev = fc->prev;
    free(fc);
}

static const char *find_header(const edge_header_t *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

static void on_fetch_head(void *data, int status, const edge_header_t *headers, size_t n)
{
    fetch_ctx_t *fc = data;
    int64_t now = sw_now_ms();
    edge_ttl_t ttl;
    const char *cc = find_header(headers, n, "cache-control");
    const char *cl = find_header(headers, n, "content-length");
    char tbuf[32];

    edge_ttl_compute(cc, find_header(headers, n, "expires"), find_header(headers, n, "date"), now,
                     NULL, &ttl);
    if (status != 200 && status != 203 && status != 204 && status != 404 && status != 410)
        ttl.cacheable = 0;
    if (!ttl.cacheable)
        ttl.fresh_ms = 0;
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)now);
    const char *m[META_N] = {find_header(headers, n, "content-type"), cc,
                             find_header(headers, n, "etag"), tbuf};
    sw_rbuf_t *meta = meta_build(m);
    int64_t clen = -1;
    if (cl != NULL) {
        char *end;
        long long v = strtoll(cl, &end, 10);
        if (end != cl && *end == '\0' && v >= 0)
            clen = v;
    }
    /* A private answer is told to the collapsed waiters as EDGE_ERR_UNCACHEABLE; the request
     * that started the fetch keeps it: step its subscription out of the way meanwhile. */
    ereq_t *owner = ttl.is_private && fc->owner != NULL ? fc->owner : NULL;
    if (owner != NULL)
        edge_obj_unsubscribe(&owner->sub);
    int rv = edge_obj_set_response(fc->obj, status, clen, &ttl, meta, now);
    sw_rbuf_unref(meta);
    if (owner != NULL)
        edge_obj_subscribe(fc->obj, &owner->sub);
    if (rv != 0)
        sw_log(SW_LOG_WARN, "edge", "%s: set_response: %s", edge_obj_key(fc->obj),
               edge_strerror(rv));
    fc->have_head = 1;
}

static void on_fetch_data(void *data, sw_rbuf_t *chunk)
{
    fetch_ctx_t *fc = data;
    if (edge_obj_state(fc->obj) != EDGE_OBJ_FILLING)
        return;
    int rv = edge_obj_append(fc->obj, chunk, 0, chunk->len);
    if (rv != 0) {
        sw_log(SW_LOG_WARN, "edge", "%s: append: %s", edge_obj_key(fc->obj), edge_strerror(rv));
        edge_fetch_cancel(fc->f);
        edge_obj_fail(fc->obj, rv, sw_now_ms());
        fetch_free(fc);
    }
}

static void on_fetch_done(void *data, int err, const char *reason)
{
    fetch_ctx_t *fc = data;
    int64_t now = sw_now_ms();
    if (err == 0 && fc->have_head) {
        edge_obj_finish(fc->obj, now);
    } else {
        sw_log(SW_LOG_WARN, "edge", "%s: upstream: %s (%s)", edge_obj_key(fc->obj),
               edge_strerror(err), reason ? reason : "");
        edge_obj_fail(fc->obj, err != 0 ? err : EDGE_ERR_UPSTREAM, now);
    }
    fetch_free(fc);
}

/* The stream name of /live/NAME/..., so every object of a stream goes to the same parent. */
static const char *hash_key(const char *key, char *buf, size_t len)
{
    if (strncmp(key, "/live/", 6) != 0)
        return NULL;
    const char *p = key + 6, *e = strpbrk(p, "/?");
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n == 0 || n >= len)
        return NULL;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

static int fetch_start(edge_server_t *s, edge_obj_t *o, const char *key, ereq_t *owner)
{
    static const edge_fetch_cbs_t cbs = {on_fetch_head, on_fetch_data, on_fetch_done};
    char hk[256];
    fetch_ctx_t *fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        return EDGE_ERR_NOMEM;
    fc->srv = s;
    fc->obj = edge_obj_ref(o);
    fc->owner = owner;
    /* The fetch asks for the key itself: the normalized path and the kept query parameters,
     * so that what is cached under the key is exactly what was fetched. */
    int rv = edge_fetch_start(s->up, key, hash_key(key, hk, sizeof(hk)), &cbs, fc, &fc->f);
    if (rv != 0) {
        edge_obj_unref(fc->obj);
        free(fc);
        return rv;
    }
    fc->next = s->fetches;
    if (fc->next != NULL)
        fc->next->prev = fc;
    s->fetches = fc;
    owner->fc = fc;
    return 0;
}

/* ---- metrics ----------------------------------------------------------------------------- */

static void serve_metrics(edge_server_t *s, sw_http_req_t *req)
{
    static const char *proto[3] = {"http/1.0", "http/1.1", "h2"};
    static const char *cls[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    sw_str_t b;
    edge_cache_stats_t cs;
    edge_upstream_stats_t us;
    sw_http_stats_t hs;

    sw_str_init(&b);
    edge_cache_stats(s->cache, &cs);
    edge_upstream_stats(s->up, &us);
    sw_http_server_stats(s->http, &hs);
    sw_str_puts(&b, "# TYPE shortwave_edge_requests_total counter\n");
    for (int p = 0; p < 3; p++)
        for (int c = 0; c < 6; c++)
            if (s->requests[p][c] != 0)
                sw_str_printf(&b,
                              "shortwave_edge_requests_total{protocol=\"%s\",status=\"%s\"} "
                              "%llu\n",
                              proto[p], cls[c], (unsigned long long)s->requests[p][c]);
#define M(name, type, v)                                                                           \
    sw_str_printf(&b, "# TYPE shortwave_edge_" name " " type "\nshortwave_edge_" name " %llu\n",   \
                  (unsigned long long)(v))
    M("cache_hits_total", "counter", cs.hits);
    M("cache_misses_total", "counter", cs.misses);
    M("cache_collapsed_total", "counter", cs.collapsed);
    M("cache_evictions_total", "counter", cs.evictions);
    M("cache_expired_total", "counter", cs.expired);
    M("cache_objects", "gauge", cs.objects);
    M("cache_bytes", "gauge", cs.bytes);
    M("stale_served_total", "counter", s->stale_served);
    M("upstream_errors_answered_total", "counter", s->upstream_502);
    M("bytes_out_total", "counter", hs.bytes_out);
    M("connections", "gauge", hs.connections);
    M("upstream_fetches_in_flight", "gauge", us.in_flight);
    M("upstream_fetches_started_total", "counter", us.started);
    M("upstream_fetches_completed_total", "counter", us.completed);
    M("upstream_fetches_failed_total", "counter", us.failed);
    M("upstream_fetches_cancelled_total", "counter", us.cancelled);
    M("upstream_failovers_total", "counter", us.failovers);
    M("upstream_connects_total", "counter", us.connects);
    M("upstream_body_bytes_total", "counter", us.body_bytes);
#undef M
    sw_str_puts(&b, "# TYPE shortwave_edge_upstream_healthy gauge\n");
    for (size_t i = 0; i < us.n_upstreams; i++) {
        edge_upstream_node_stats_t ns;
        if (edge_upstream_node_stats(s->up, i, &ns) == 0)
            sw_str_printf(&b, "shortwave_edge_upstream_healthy{upstream=\"%s\"} %d\n", ns.url,
                          ns.healthy);
    }
    if (b.failed)
        respond_error(s, req, 500, "out of memory");
    else
        respond_text(s, req, 200, "text/plain; version=0.0.4", b.p, b.len, NULL, 0);
    sw_str_dispose(&b);
}

/* ---- the handler ------------------------------------------------------------------------- */

static void on_request(void *data, sw_http_req_t *req)
{
    edge_server_t *s = data;
    char key[EDGE_KEY_MAX];
    const char *why = NULL;
    edge_obj_t *o = NULL;

    if (strcmp(req->method, "OPTIONS") == 0) {
        static const sw_http_header_t h[] = {
            {"access-control-allow-methods", "GET, HEAD, OPTIONS"},
            {"access-control-allow-headers", "*"},
            {"access-control-max-age", "86400"},
        };
        respond_text(s, req, 204, "text/plain", NULL, 0, h, SW_ARRAY_SIZE(h));
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        static const sw_http_header_t h[] = {{"allow", "GET, HEAD, OPTIONS"}};
        respond_text(s, req, 405, "text/plain", "method not allowed\n", 19, h, 1);
        return;
    }
    if (strcmp(req->path, "/healthz") == 0) {
        respond_text(s, req, 200, "text/plain", "ok\n", 3, NULL, 0);
        return;
    }
    if (strcmp(req->path, "/metrics") == 0) {
        serve_metrics(s, req);
        return;
    }
    if (edge_key_normalize(req->path, req->query, NULL, key, sizeof(key), &why) != 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "bad path: %s", why ? why : "invalid");
        respond_error(s, req, 400, msg);
        return;
    }
    /* Collapsed waiters of a private answer get 503: they should retry (and then fetch alone). */
    int res = edge_cache_get(s->cache, key, sw_now_ms(), &o);
    if (res < 0) {
        respond_error(s, req, 503, "out of memory");
        return;
    }
    ereq_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        edge_obj_unref(o);
        respond_error(s, req, 503, "out of memory");
        return;
    }
    r->srv = s;
    r->req = req;
    r->obj = o;
    r->sub.on_data = on_sub_data;
    r->sub.on_done = on_sub_done;
    r->sub.data = r;
    r->next = s->reqs;
    if (r->next != NULL)
        r->next->prev = r;
    s->reqs = r;
    r->xcache = res == EDGE_CACHE_HIT ? "HIT" : res == EDGE_CACHE_FILLING ? "HIT-FILLING" : "MISS";

    if (res == EDGE_CACHE_MISS) {
        int rv = fetch_start(s, o, key, r);
        if (rv != 0) {
            edge_obj_fail(o, EDGE_ERR_UPSTREAM, sw_now_ms());
            serve_stale_or_502(r, rv);
            return;
        }
    }
    if (edge_obj_state(o) == EDGE_OBJ_FILLING) {
        if (edge_obj_subscribe(o, &r->sub) != 0) {
            respond_error(s, req, 500, "cannot subscribe");
            ereq_free(r);
            return;
        }
        sw_http_req_on_abort(req, on_req_abort, r);
        /* A late subscriber: what already arrived goes out now. */
        if (edge_obj_status(o) != 0 && edge_obj_size(o) > 0)
            pump(r);
        return;
    }
    if (edge_obj_state(o) == EDGE_OBJ_FAILED) {
        serve_stale_or_502(r, edge_obj_error(o));
        return;
    }
    pump(r);
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void on_sweep(uv_timer_t *t)
{
    edge_server_t *s = t->data;
    edge_cache_sweep(s->cache, sw_now_ms());
}

static void close_step(void *data)
{
    edge_server_t *s = data;
    if (--s->pending_close == 0 && s->on_closed != NULL)
        s->on_closed(s->closed_data);
}

static void on_timer_closed(uv_handle_t *h)
{
    close_step(h->data);
}

int edge_server_new(edge_server_t **out, uv_loop_t *loop, const edge_config_t *cfg, char *err,
                    size_t errlen)
{
    edge_server_t *s;
    edge_cache_config_t cc;
    edge_upstream_config_t uc;
    sw_http_server_config_t hc;
    const char *why = NULL;
    int rv = EDGE_ERR_NOMEM;

    snprintf(err, errlen, "out of memory");
    if (cfg->n_origins == 0) {
        snprintf(err, errlen, "no origin configured (--origin URL)");
        return EDGE_ERR_INVAL;
    }
    if (cfg->tls_listen != NULL && (cfg->tls_cert == NULL || cfg->tls_key == NULL)) {
        snprintf(err, errlen, "tls_listen needs tls_cert and tls_key");
        return EDGE_ERR_INVAL;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL)
        goto fail;
    s->loop = loop;
    edge_cache_config_init(&cc);
    cc.budget_bytes = (size_t)cfg->cache_size;
    if (cc.max_object_bytes > cc.budget_bytes / 4)
        cc.max_object_bytes = cc.budget_bytes / 4;
    if ((rv = edge_cache_new(&s->cache, &cc)) != 0) {
        snprintf(err, errlen, "cache: %s", edge_strerror(rv));
        goto fail_server;
    }
    edge_upstream_config_init(&uc);
    uc.origins = (const char *const *)cfg->origins;
    uc.n_origins = cfg->n_origins;
    if ((rv = edge_upstream_new(&s->up, loop, &uc, err, errlen)) != 0)
        goto fail_cache;
    sw_http_server_config_init(&hc);
    hc.server_name = "shortwave-edge";
    if (sw_http_server_new(&s->http, loop, &hc, on_request, s) != 0) {
        rv = EDGE_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail_upstream;
    }
    if (sw_http_server_listen(s->http, cfg->listen, 0, NULL, &why) != 0) {
        rv = EDGE_ERR_INVAL;
        snprintf(err, errlen, "listen %s: %s", cfg->listen, why ? why : "failed");
        goto fail_http;
    }
    if (cfg->tls_listen != NULL &&
        sw_http_server_listen_tls(s->http, cfg->tls_listen, 0, cfg->tls_cert, cfg->tls_key, NULL,
                                  &why) != 0) {
        rv = EDGE_ERR_INVAL;
        snprintf(err, errlen, "tls listen %s: %s", cfg->tls_listen, why ? why : "failed");
        goto fail_http;
    }
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    sw_log(SW_LOG_INFO, "edge", "listening on %s%s%s, %zu origin(s), cache %lld bytes", cfg->listen,
           cfg->tls_listen ? " and TLS " : "", cfg->tls_listen ? cfg->tls_listen : "",
           cfg->n_origins, (long long)cfg->cache_size);
    *out = s;
    return 0;
fail_http:
    /* Nothing was accepted yet; closing still has to run on the loop. */
    sw_http_server_close(s->http, NULL, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    sw_http_server_free(s->http);
fail_upstream:
    edge_upstream_close(s->up, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
fail_cache:
    edge_cache_free(s->cache);
fail_server:
    free(s);
fail:
    return rv;
}

void edge_server_shutdown(edge_server_t *s, void (*on_closed)(void *data), void *data)
{
    s->on_closed = on_closed;
    s->closed_data = data;
    s->pending_close = 3;
    uv_timer_stop(&s->sweep);
    /* Held requests are aborted first (they unsubscribe), then the fetches end. */
    sw_http_server_close(s->http, close_step, s);
    edge_upstream_close(s->up, close_step, s);
    uv_close((uv_handle_t *)&s->sweep, on_timer_closed);
}

void edge_server_free(edge_server_t *s)
{
    if (s == NULL)
        return;
    sw_http_server_free(s->http);
    edge_cache_free(s->cache);
    free(s);
}
