/*
 * One worker's request path: local endpoints, then cache lookup; a miss starts one upstream
 * fetch that fills the object, and every request for the key (the fetcher's own included) is a
 * subscriber served by the same code: pump() writes the object's chunks (rbuf references, no
 * copies) from the request's own offset as they arrive. The cache is shared with the other
 * workers: a request may subscribe to an object another worker fills; its callbacks then come
 * through this worker's waker, on this loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "edge/cache.h"
#include "edge/edge.h"
#include "edge/http_util.h"
#include "edge/overlay.h"
#include "edge/upstream.h"
#include "edge/web.h"
#include "edge_daemon.h"
#include "edge_int.h"
#include "edge_locate.h"
#include "sw/http.h"
#include "sw/log.h"
#include "sw/str.h"

#define SWEEP_MS 5000

/* Upper bounds (seconds) of the upstream time-to-first-byte histogram. */
static const double ttfb_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,  0.5,    1,     2.5,  5,     10};
#define N_TTFB SW_ARRAY_SIZE(ttfb_bounds)
_Static_assert(N_TTFB == EDGE__N_TTFB, "edge__stats_t holds the histogram");

/* The shared counters only count: no ordering with anything else is needed. */
#define ADD(counter, n) atomic_fetch_add_explicit(&(counter), (n), memory_order_relaxed)
#define GET(counter)    ((unsigned long long)atomic_load_explicit(&(counter), memory_order_relaxed))

/*
 * The hop marker (edge/README.md, "Parent tier"): every fetch to a parent carries
 * "x-sw-hop: ID", ID naming this process. An edge that receives the header fetches from its
 * origins only, so a request crosses at most one parent; one that receives its own ID is its own
 * parent and answers 508, which the sender's fetcher fails over like any 5xx. Process-wide, as
 * every worker of one edge is the same hop; so are the counters.
 */
#define HOP_HEADER "x-sw-hop"
static char hop_id[17];
static uv_once_t hop_once = UV_ONCE_INIT;
static atomic_uint_fast64_t hop_requests, loops_refused;

static void make_hop_id(void)
{
    uint8_t r[8];
    /* Two edges whose IDs collide would refuse each other's requests (508) and fall back to
     * their origins: unlikely, and harmless. Without entropy the address of a stack byte and the
     * time still tell processes apart. */
    if (uv_random(NULL, NULL, r, sizeof(r), 0, NULL) != 0) {
        uint64_t v = uv_hrtime() ^ (uint64_t)(uintptr_t)&r ^ ((uint64_t)uv_os_getpid() << 32);
        memcpy(r, &v, sizeof(r));
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(hop_id + 2 * i, 3, "%02x", r[i]);
}

typedef struct fetch_ctx fetch_ctx_t;
typedef struct ereq ereq_t;
typedef struct byteranges byteranges_t;

struct edge_server {
    uv_loop_t *loop;
    unsigned index; /* this worker's */
    sw_http_server_t *http;
    edge_upstream_t *up;
    edge__locate_t *locate; /* the stream registry, when `redis` is set; else NULL */
    edge__shared_t *sh;     /* the cache, the overlay (NULL without redis), the counters */
    edge_cache_t *cache;    /* sh->cache */
    edge_web_t *web;        /* sh->web */
    edge_waker_t *waker;    /* delivers other workers' fills to our subscribers, through `wake` */
    uv_async_t wake;
    uv_check_t publish;   /* copies our HTTP and fetcher figures to sh->workers[index] */
    uv_timer_t sweep;     /* worker 0 only: one sweep is enough for the shared cache */
    fetch_ctx_t *fetches; /* in flight, for shutdown */
    ereq_t *reqs;         /* requests in flight */
    int pending_close;
    void (*on_closed)(void *data);
    void *closed_data;
    /* borrowed: [protect], admin_allow, admin_token (see edge_daemon_new()) */
    const edge_config_t *cfg;
    sw_alog_t alog;
    uint64_t req_t0; /* uv_now() when on_request() began: the start of synchronous answers */
};

/* One client request being served from an object. */
struct ereq {
    edge_server_t *srv;
    sw_http_req_t *req;
    edge_obj_t *obj; /* our reference */
    edge_sub_t sub;
    uint64_t off;     /* the next byte of obj to queue */
    uint64_t end;     /* stop before this offset (a Range), UINT64_MAX: the whole object */
    byteranges_t *br; /* several ranges: their framing and progress; else NULL */
    uint64_t bytes;
    uint64_t t0;         /* uv_now() at the request */
    int64_t upstream_ms; /* the fetch's time to first byte, if this request started it; else -1 */
    int status;
    int started;
    const char *xcache;
    fetch_ctx_t *fc; /* the fetch this request started, while both live */
    ereq_t *prev, *next;
};

/* The framing of a multipart/byteranges answer (RFC 9110 section 14.6), laid out before the
 * head, as its length is part of Content-Length: framing i goes out before range i, framing n
 * (the close-delimiter) after the last range. */
struct byteranges {
    edge_range_set_t set;
    size_t off[EDGE_RANGE_MAX + 2];     /* framing i is text[off[i]..off[i+1]) */
    size_t next;                        /* the framing to send next */
    char ctype[64 + EDGE_BOUNDARY_MAX]; /* the response's Content-Type, with the boundary */
    char text[];
};

/* One upstream fetch filling one object. */
struct fetch_ctx {
    edge_server_t *srv;
    edge_obj_t *obj; /* our reference */
    edge_fetch_t *f; /* NULL while the registry is asked */
    int have_head;
    int origins_only;
    uint64_t t0;   /* uv_now() at the start of the fetch */
    ereq_t *owner; /* the request that started it, while both live */
    fetch_ctx_t *prev, *next;
};

static const sw_http_header_t cors = {"access-control-allow-origin", "*"};

static void count(edge_server_t *s, sw_http_req_t *req, int status)
{
    int p = req->version == 10 ? 0 : req->version == 20 ? 2 : 1;
    int c = status >= 100 && status < 600 ? status / 100 : 0;
    ADD(s->sh->stats.requests[p][c], 1);
}

/* One access-log line for a request that ends now. */
static void log_request(edge_server_t *s, sw_http_req_t *req, int status, uint64_t bytes,
                        uint64_t t0, const char *cache, int64_t upstream_ms, int aborted)
{
    sw_alog_rec_t rec = {
        .peer = req->peer,
        .method = req->method,
        .path = req->path,
        .query = req->query,
        .cache = cache,
        .version = req->version,
        .status = status,
        .aborted = aborted,
        .bytes = strcmp(req->method, "HEAD") == 0 ? 0 : bytes,
        .duration_ms = (int64_t)(uv_now(s->loop) - t0),
        .upstream_ms = upstream_ms,
    };
    sw_alog_write(&s->alog, &rec);
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
    log_request(s, req, status, len, s->req_t0, NULL, -1, 0);
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

static void meta_get(const sw_rbuf_t *b, const char *v[META_N])
{
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

/* Lets go of what `r` holds. `r` itself is request memory (sw_http_req_alloc()), so this comes
 * before the request ends. */
static void ereq_release(ereq_t *r)
{
    edge_obj_unsubscribe(&r->sub);
    edge_obj_unref(r->obj);
    free(r->br);
    if (r->fc != NULL)
        r->fc->owner = NULL;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        r->srv->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
}

static void on_req_abort(sw_http_req_t *req, void *data)
{
    ereq_t *r = data;
    log_request(r->srv, req, r->status, r->bytes, r->t0, r->xcache, r->upstream_ms, 1);
    ereq_release(r);
}

static int write_piece(void *data, sw_rbuf_t *b, size_t boff, size_t len)
{
    ereq_t *r = data;
    if (sw_http_write_rbuf(r->req, b, boff, len) != 0)
        return -1;
    r->off += len;
    r->bytes += len;
    return 0;
}

/* A boundary must not occur in the parts' bytes: 64 random bits make that as likely as guessing
 * them, and a new one per response keeps an origin from planting it in an object. */
static void make_boundary(char out[17])
{
    uint8_t b[8];
    if (uv_random(NULL, NULL, b, sizeof(b), 0, NULL) != 0) {
        uint64_t v = uv_hrtime() ^ ((uint64_t)(uintptr_t)out << 16);
        memcpy(b, &v, sizeof(b));
    }
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Sets r up to answer the ranges of `set` (two or more) of an object of `len` bytes as
 * multipart/byteranges. Its length is known up front, so it streams from an object still filling
 * as a single range does: pump() waits on each range in turn. Out of memory, the whole body goes
 * out with 200 instead, which is always allowed. */
static int choose_byteranges(ereq_t *r, const edge_range_set_t *set, const char *ctype, int64_t len,
                             int64_t *clen)
{
    char boundary[17];
    size_t off[EDGE_RANGE_MAX + 2];
    uint64_t body;

    make_boundary(boundary);
    size_t tlen = edge_byteranges_layout(set, (uint64_t)len, ctype, boundary, NULL, 0, off, &body);
    byteranges_t *br = malloc(sizeof(*br) + tlen);
    if (br == NULL)
        return 200;
    edge_byteranges_layout(set, (uint64_t)len, ctype, boundary, br->text, tlen, br->off, &body);
    br->set = *set;
    br->next = 0;
    snprintf(br->ctype, sizeof(br->ctype), "multipart/byteranges; boundary=%s", boundary);
    r->br = br;
    r->off = r->end = 0; /* an empty span: pump() goes straight to framing 0 */
    *clen = (int64_t)body;
    return 206;
}

/* Which part of a 200 object to send: 304 on a matching If-None-Match, 206 for satisfiable ranges
 * (one: its Content-Range in `crange`; several: multipart/byteranges, set up in r->br), 416 with
 * a Content-Range when none is satisfiable, else the whole body. Sets r->off, r->end and the body
 * length in *clen; returns the status. A range needs the length: an object still filling from a
 * chunked origin answer has none yet, so its Range is ignored and the whole body streams (RFC 9110
 * lets a server ignore Range), while an object with a Content-Length is served from its bytes as
 * they arrive. edge_range_parse() has already capped the number of ranges and refused overlaps,
 * so a multipart body is at most the object plus 16 part heads and a closing line. */
static int choose_part(ereq_t *r, const char *etag, const char *ctype, int64_t len, char *crange,
                       size_t crlen, int64_t *clen)
{
    sw_http_req_t *req = r->req;
    const char *inm = sw_http_req_header(req, "if-none-match");
    const char *rh = sw_http_req_header(req, "range");
    const char *ifr = sw_http_req_header(req, "if-range");
    edge_range_set_t set;
    const char *why = NULL;

    r->off = 0;
    r->end = UINT64_MAX;
    *clen = len;
    if (inm != NULL && etag[0] && edge_etag_match(inm, strlen(inm), etag) == 1) {
        r->end = 0;
        *clen = -1;
        return 304;
    }
    /* If-Range with a validator other than our strong ETag: the client's copy is another
     * representation, so it gets the whole body. */
    if (rh == NULL || len < 0 ||
        (ifr != NULL && (strncmp(etag, "W/", 2) == 0 || strcmp(ifr, etag) != 0)))
        return 200;
    int res = edge_range_parse(rh, strlen(rh), len, &set, &why);
    if (res == EDGE_RANGE_UNSATISFIABLE) {
        snprintf(crange, crlen, "bytes */%lld", (long long)len);
        r->end = 0;
        *clen = 0;
        return 416;
    }
    if (res != EDGE_RANGE_RANGES)
        return 200;
    edge_range_coalesce(&set);
    if (set.n > 1)
        return choose_byteranges(r, &set, ctype, len, clen);
    r->off = set.r[0].first;
    r->end = set.r[0].last + 1;
    *clen = (int64_t)(r->end - r->off);
    snprintf(crange, crlen, "bytes %llu-%llu/%lld", (unsigned long long)set.r[0].first,
             (unsigned long long)set.r[0].last, (long long)len);
    return 206;
}

static int start_response(ereq_t *r, const edge_obj_view_t *v)
{
    const char *m[META_N];
    char age[SW_U64_DEC], crange[80] = "";
    sw_http_header_t h[10];
    size_t n = 0;
    int status = v->status;
    int64_t clen = v->state == EDGE_OBJ_COMPLETE ? (int64_t)v->size : v->content_length;

    meta_get(v->meta, m);
    int ranges = status == 200 && clen >= 0;
    r->off = 0;
    r->end = UINT64_MAX;
    if (status == 200)
        status = choose_part(r, m[META_ETAG], m[META_CTYPE], clen, crange, sizeof(crange), &clen);
    h[n++] = cors;
    h[n++] = (sw_http_header_t){"x-cache", r->xcache};
    /* With several ranges the object's type goes in each part; the response is the multipart. */
    const char *ctype = r->br != NULL ? r->br->ctype : m[META_CTYPE];
    if (ctype[0])
        h[n++] = (sw_http_header_t){"content-type", ctype};
    if (m[META_CC][0])
        h[n++] = (sw_http_header_t){"cache-control", m[META_CC]};
    if (m[META_ETAG][0])
        h[n++] = (sw_http_header_t){"etag", m[META_ETAG]};
    int64_t t = 0, now = sw_now_ms();
    for (const char *p = m[META_TIME]; *p >= '0' && *p <= '9'; p++) /* digits on_head() wrote */
        t = t * 10 + (*p - '0');
    sw_u64_dec(age, (uint64_t)(t > 0 && now > t ? (now - t) / 1000 : 0));
    h[n++] = (sw_http_header_t){"age", age};
    if (ranges)
        h[n++] = (sw_http_header_t){"accept-ranges", "bytes"};
    if (crange[0])
        h[n++] = (sw_http_header_t){"content-range", crange};
    r->status = status;
    count(r->srv, r->req, status);
    if (sw_http_start(r->req, status, h, n, clen) != 0)
        return -1;
    r->started = 1;
    return 0;
}

/* At the end of a span of a multipart answer: queues the framing that follows it and moves r->off
 * and r->end to the next range. Returns 1 if there is one, 0 once the body is complete (at once
 * for a single span), -1 if the write failed. */
static int next_span(ereq_t *r)
{
    byteranges_t *br = r->br;
    if (br == NULL || br->next > br->set.n)
        return 0;
    size_t i = br->next++;
    size_t len = br->off[i + 1] - br->off[i];
    if (sw_http_write(r->req, br->text + br->off[i], len) != 0)
        return -1;
    r->bytes += len;
    if (i == br->set.n)
        return 0; /* that was the close-delimiter */
    r->off = br->set.r[i].first;
    r->end = br->set.r[i].last + 1;
    return 1;
}

/* Writes what arrived since the last call, up to the end of the requested span (of each span in
 * turn, with their framing, for several ranges); ends the response once the body is out or the
 * object is complete. Returns 1 if the request is finished (r freed). */
static int pump(ereq_t *r)
{
    /* State and size from one instant: another worker may complete the object between two
     * separate reads, and a COMPLETE read after a stale size would end the response short. */
    edge_obj_view_t v;
    edge_obj_view(r->obj, &v);
    if (!r->started && start_response(r, &v) != 0)
        goto end;
    for (;;) {
        uint64_t lim = v.size < r->end ? v.size : r->end;
        if (lim > r->off && edge_obj_chunks(r->obj, r->off, lim - r->off, write_piece, r) != 0)
            goto end;
        if (r->off < r->end) {
            if (v.state == EDGE_OBJ_FILLING)
                return 0;
            break;
        }
        if (next_span(r) != 1)
            break;
    }
end:
    log_request(r->srv, r->req, r->status, r->bytes, r->t0, r->xcache, r->upstream_ms, 0);
    sw_http_req_t *req = r->req;
    ereq_release(r);
    sw_http_end(req);
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
        ADD(s->sh->stats.stale_served, 1);
        pump(r);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "upstream failed: %s", edge_strerror(err));
    ADD(s->sh->stats.upstream_502, 1);
    s->req_t0 = r->t0;
    sw_http_req_t *req = r->req;
    ereq_release(r);
    respond_error(s, req, err == EDGE_ERR_UNCACHEABLE ? 503 : 502, msg);
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

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t l = strlen(suffix);
    return len >= l && memcmp(s + len - l, suffix, l) == 0;
}

/*
 * A live playlist or MPD: by its Content-Type, or by its path when there is none. These never
 * get the configured stale window. A stale live playlist does not look like a failure to a
 * player: it reloads it, finds no new segment, and sits at the same live edge until it stalls,
 * where a 502 would have made it retry or switch to a redundant stream at once. The origin says
 * so itself (stale-if-error=0 on playlists, origin_http.c); this covers origins that say nothing.
 */
static int is_playlist(const char *key, const char *ctype)
{
    static const char *const types[] = {"application/vnd.apple.mpegurl", "application/x-mpegurl",
                                        "audio/mpegurl", "audio/x-mpegurl", "application/dash+xml"};
    if (ctype != NULL) {
        for (size_t i = 0; i < SW_ARRAY_SIZE(types); i++)
            if (strncasecmp(ctype, types[i], strlen(types[i])) == 0)
                return 1;
    }
    size_t plen = strcspn(key, "?");
    return ends_with(key, plen, ".m3u8") || ends_with(key, plen, ".mpd");
}

static void on_fetch_head(void *data, int status, const edge_header_t *headers, size_t n)
{
    fetch_ctx_t *fc = data;
    int64_t now = sw_now_ms();
    edge_ttl_t ttl;
    edge_server_t *s = fc->srv;
    uint64_t ttfb = uv_now(s->loop) - fc->t0;
    size_t b = 0;
    while (b < N_TTFB && (double)ttfb / 1000.0 > ttfb_bounds[b])
        b++;
    ADD(s->sh->stats.ttfb_buckets[b], 1);
    ADD(s->sh->stats.ttfb_count, 1);
    ADD(s->sh->stats.ttfb_sum_us, ttfb * 1000);
    if (fc->owner != NULL)
        fc->owner->upstream_ms = (int64_t)ttfb;
    /* An error answer lets a stale copy stand in, as a failed fetch does (RFC 5861 counts 500,
     * 502, 503 and 504 as errors). The fetcher has tried the other upstreams already. Without a
     * stale copy the answer is relayed: it says more than a 502 of ours would. */
    if (status == 500 || (status >= 502 && status <= 504)) {
        edge_obj_t *stale = edge_obj_stale(fc->obj, now);
        if (stale != NULL) {
            edge_obj_unref(stale);
            sw_log(SW_LOG_WARN, "edge", "%s: upstream answered %d: serving the stale copy",
                   edge_obj_key(fc->obj), status);
            edge_fetch_cancel(fc->f);
            edge_obj_fail(fc->obj, EDGE_ERR_UPSTREAM, now);
            fetch_free(fc);
            return;
        }
    }
    const char *cc = find_header(headers, n, "cache-control");
    const char *cl = find_header(headers, n, "content-length");
    char tbuf[SW_U64_DEC];

    /* The configured stale window stands in for a stale-if-error the upstream did not send,
     * except on playlists: see is_playlist(). */
    const char *ctype = find_header(headers, n, "content-type");
    edge_ttl_rules_t rules = {0};
    if (!is_playlist(edge_obj_key(fc->obj), ctype))
        rules.stale_if_error_ms = s->cfg->stale_if_error_ms;
    edge_ttl_compute(cc, find_header(headers, n, "expires"), find_header(headers, n, "date"), now,
                     &rules, &ttl);
    if (status != 200 && status != 203 && status != 204 && status != 404 && status != 410)
        ttl.cacheable = 0;
    if (!ttl.cacheable)
        ttl.fresh_ms = 0;
    sw_u64_dec(tbuf, (uint64_t)now);
    const char *m[META_N] = {ctype, cc, find_header(headers, n, "etag"), tbuf};
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

/* Starts the upstream fetch of fc->obj, from `located` first when it is set. */
static int fetch_go(fetch_ctx_t *fc, const char *located)
{
    static const edge_fetch_cbs_t cbs = {on_fetch_head, on_fetch_data, on_fetch_done};
    const char *key = edge_obj_key(fc->obj);
    char hk[256];
    /* The fetch asks for the key itself: the normalized path and the kept query parameters,
     * so that what is cached under the key is exactly what was fetched. */
    edge_fetch_opts_t opts = {.hash_key = hash_key(key, hk, sizeof(hk)),
                              .origins_only = fc->origins_only,
                              .located = located};
    return edge_fetch_start_opts(fc->srv->up, key, &opts, &cbs, fc, &fc->f);
}

/* The registry answered (or gave up): the fetch starts now; if it cannot, the object fails and
 * its subscribers answer 502 (or stale). */
static void on_located(void *data, const char *url)
{
    fetch_ctx_t *fc = data;
    int rv = fetch_go(fc, url);
    if (rv != 0) {
        sw_log(SW_LOG_WARN, "edge", "%s: cannot start the fetch: %s", edge_obj_key(fc->obj),
               edge_strerror(rv));
        edge_obj_fail(fc->obj, rv, sw_now_ms());
        fetch_free(fc);
    }
}

/* `origins_only`: the request came from another edge (it carries the hop marker). With a
 * registry, a /live/NAME/ miss first asks where NAME is published (edge_locate.h). */
static int fetch_start(edge_server_t *s, edge_obj_t *o, const char *key, ereq_t *owner,
                       int origins_only)
{
    char hk[256];
    const char *name = hash_key(key, hk, sizeof(hk)), *url = NULL;
    fetch_ctx_t *fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        return EDGE_ERR_NOMEM;
    fc->srv = s;
    fc->obj = edge_obj_ref(o);
    fc->owner = owner;
    fc->origins_only = origins_only;
    fc->t0 = uv_now(s->loop);
    fc->next = s->fetches;
    if (fc->next != NULL)
        fc->next->prev = fc;
    s->fetches = fc;
    owner->fc = fc;
    if (s->locate != NULL && name != NULL && edge__locate(s->locate, name, on_located, fc, &url))
        return 0; /* on_located() starts it */
    int rv = fetch_go(fc, url);
    if (rv != 0)
        fetch_free(fc);
    return rv;
}

/* ---- metrics ----------------------------------------------------------------------------- */

/* This worker's origins as its fetcher has them now (a reload may change them): edge__hash() of
 * each URL, which other workers can compare without sharing the strings, and whether each is up.
 * Returns how many. */
static size_t my_origins(edge_server_t *s, uint64_t *ids, unsigned char *up)
{
    edge_upstream_node_stats_t ns;
    size_t n = 0;
    while (n < EDGE_UPSTREAM_MAX && edge_upstream_node_stats(s->up, n, &ns) == 0 && !ns.is_parent) {
        ids[n] = edge__hash(ns.url, strlen(ns.url));
        up[n] = (unsigned char)ns.healthy;
        n++;
    }
    return n;
}

/* Copies this worker's HTTP and fetcher figures where other workers' /metrics read them. */
static void publish_stats(edge_server_t *s)
{
    edge__wstats_t *w = &s->sh->workers[s->index];
    pthread_mutex_lock(&w->mu);
    sw_http_server_stats(s->http, &w->http);
    edge_upstream_stats(s->up, &w->up);
    w->n_origins = my_origins(s, w->origin_id, w->healthy);
    pthread_mutex_unlock(&w->mu);
}

static void on_publish(uv_check_t *h)
{
    publish_stats(sw_container_of(h, edge_server_t, publish));
}

/* The figures of every worker, summed; origin ids[i] is healthy when every worker finds it so
 * (during a reload a worker may not have it yet, or any more: that one is left out). */
static void sum_workers(edge_server_t *s, sw_http_stats_t *hs, edge_upstream_stats_t *us,
                        const uint64_t *ids, unsigned char *healthy, size_t n_origins)
{
    memset(hs, 0, sizeof(*hs));
    memset(us, 0, sizeof(*us));
    memset(healthy, 1, n_origins);
    for (unsigned k = 0; k < s->sh->n_workers; k++) {
        edge__wstats_t *w = &s->sh->workers[k];
        pthread_mutex_lock(&w->mu);
        hs->connections += w->http.connections;
        hs->bytes_out += w->http.bytes_out;
        us->in_flight += w->up.in_flight;
        us->started += w->up.started;
        us->completed += w->up.completed;
        us->failed += w->up.failed;
        us->cancelled += w->up.cancelled;
        us->failovers += w->up.failovers;
        us->connects += w->up.connects;
        us->body_bytes += w->up.body_bytes;
        for (int j = 0; j < EDGE_UPKIND_N; j++) {
            us->attempts_by_kind[j] += w->up.attempts_by_kind[j];
            us->heads_by_kind[j] += w->up.heads_by_kind[j];
        }
        for (size_t i = 0; i < n_origins; i++) {
            for (size_t j = 0; j < w->n_origins; j++)
                if (w->origin_id[j] == ids[i])
                    healthy[i] &= w->healthy[j];
        }
        pthread_mutex_unlock(&w->mu);
    }
}

static void serve_metrics(edge_server_t *s, sw_http_req_t *req)
{
    static const char *proto[3] = {"http/1.0", "http/1.1", "h2"};
    static const char *cls[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    edge__stats_t *st = &s->sh->stats;
    sw_str_t b;
    edge_cache_stats_t cs;
    edge_upstream_stats_t us;
    sw_http_stats_t hs;
    uint64_t ids[EDGE_UPSTREAM_MAX];
    unsigned char healthy[EDGE_UPSTREAM_MAX];

    sw_str_init(&b);
    edge_cache_stats(s->cache, &cs);
    publish_stats(s);
    size_t n_origins = my_origins(s, ids, healthy);
    sum_workers(s, &hs, &us, ids, healthy, n_origins);
    sw_str_puts(&b, "# TYPE shortwave_edge_requests_total counter\n");
    for (int p = 0; p < 3; p++)
        for (int c = 0; c < 6; c++)
            if (GET(st->requests[p][c]) != 0)
                sw_str_printf(&b,
                              "shortwave_edge_requests_total{protocol=\"%s\",status=\"%s\"} "
                              "%llu\n",
                              proto[p], cls[c], GET(st->requests[p][c]));
    /* Which worker received how many (websocket upgrades included): SO_REUSEPORT spreads
     * connections, and this shows how. */
    sw_str_puts(&b, "# TYPE shortwave_edge_worker_requests_total counter\n");
    for (unsigned k = 0; k < s->sh->n_workers; k++)
        sw_str_printf(&b, "shortwave_edge_worker_requests_total{worker=\"%u\"} %llu\n", k,
                      GET(s->sh->workers[k].requests));
#define M(name, type, v)                                                                           \
    sw_str_printf(&b, "# TYPE shortwave_edge_" name " " type "\nshortwave_edge_" name " %llu\n",   \
                  (unsigned long long)(v))
    M("workers", "gauge", s->sh->n_workers);
    M("cache_hits_total", "counter", cs.hits);
    M("cache_misses_total", "counter", cs.misses);
    M("cache_collapsed_total", "counter", cs.collapsed);
    M("cache_evictions_total", "counter", cs.evictions);
    M("cache_expired_total", "counter", cs.expired);
    M("cache_objects", "gauge", cs.objects);
    M("cache_bytes", "gauge", cs.bytes);
    sw_str_printf(&b,
                  "# TYPE shortwave_edge_cache_policy gauge\nshortwave_edge_cache_policy{"
                  "policy=\"%s\"} 1\n",
                  edge_cache_policy(s->cache) == EDGE_POLICY_S3FIFO ? "s3fifo" : "lru");
    M("stale_served_total", "counter", GET(st->stale_served));
    M("upstream_errors_answered_total", "counter", GET(st->upstream_502));
    M("not_forwarded_total", "counter", GET(st->not_forwarded));
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
    M("purge_requests_total", "counter", GET(st->purge_requests));
    M("purged_objects_total", "counter", GET(st->purged));
    M("signed_url_refused_total", "counter", GET(st->token_refused));
    M("hop_requests_total", "counter", GET(hop_requests));
    M("loops_refused_total", "counter", GET(loops_refused));
#undef M
    /* Which kind of upstream the fetches went to (attempts, failovers included) and which kind
     * answered them: with parents, "origin" answers on a child mean a parent was down. */
    static const char *kinds[EDGE_UPKIND_N] = {"origin", "parent", "located"};
    sw_str_puts(&b, "# TYPE shortwave_edge_upstream_attempts_total counter\n");
    for (int k = 0; k < EDGE_UPKIND_N; k++)
        sw_str_printf(&b, "shortwave_edge_upstream_attempts_total{kind=\"%s\"} %llu\n", kinds[k],
                      (unsigned long long)us.attempts_by_kind[k]);
    sw_str_puts(&b, "# TYPE shortwave_edge_upstream_answers_total counter\n");
    for (int k = 0; k < EDGE_UPKIND_N; k++)
        sw_str_printf(&b, "shortwave_edge_upstream_answers_total{kind=\"%s\"} %llu\n", kinds[k],
                      (unsigned long long)us.heads_by_kind[k]);
    /* Time from the start of an upstream fetch to the origin's response head. */
    sw_str_puts(&b, "# TYPE shortwave_edge_upstream_ttfb_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t i = 0; i <= N_TTFB; i++) {
        cum += GET(st->ttfb_buckets[i]);
        if (i < N_TTFB)
            sw_str_printf(&b, "shortwave_edge_upstream_ttfb_seconds_bucket{le=\"%g\"} %llu\n",
                          ttfb_bounds[i], cum);
        else
            sw_str_printf(&b, "shortwave_edge_upstream_ttfb_seconds_bucket{le=\"+Inf\"} %llu\n",
                          cum);
    }
    sw_str_printf(&b, "shortwave_edge_upstream_ttfb_seconds_sum %.6f\n",
                  (double)GET(st->ttfb_sum_us) / 1e6);
    sw_str_printf(&b, "shortwave_edge_upstream_ttfb_seconds_count %llu\n", GET(st->ttfb_count));
    sw_str_puts(&b, "# TYPE shortwave_edge_upstream_healthy gauge\n");
    for (size_t i = 0; i < n_origins; i++) {
        edge_upstream_node_stats_t ns;
        if (edge_upstream_node_stats(s->up, i, &ns) == 0)
            sw_str_printf(&b, "shortwave_edge_upstream_healthy{upstream=\"%s\"} %d\n", ns.url,
                          healthy[i]);
    }
    if (s->sh->overlay != NULL)
        edge_overlay_metrics(s->sh->overlay, &b);
    if (b.failed)
        respond_error(s, req, 500, "out of memory");
    else
        respond_text(s, req, 200, "text/plain; version=0.0.4", b.p, b.len, NULL, 0);
    sw_str_dispose(&b);
}

/* ---- purge API and signed URLs ----------------------------------------------------------- */

/* "127.0.0.1:5555" -> "127.0.0.1", "[::1]:5555" -> "::1". */
static const char *peer_ip(const char *peer, char *buf, size_t len)
{
    const char *p = peer, *e;
    if (*p == '[') {
        p++;
        e = strchr(p, ']');
    } else {
        e = strrchr(p, ':');
    }
    size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
    if (n >= len)
        n = len - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

/* The value of `name` in an application/x-www-form-urlencoded string, percent-decoded into `out`.
 * Returns 1 if found, 0 if absent, -1 if repeated, badly escaped, holding a NUL or too long. */
static int form_value(const char *q, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    int found = 0;
    for (const char *p = q; *p != '\0';) {
        size_t len = strcspn(p, "&");
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            if (found++)
                return -1;
            size_t o = 0;
            for (size_t i = nl + 1; i < len; i++) {
                int c = (unsigned char)p[i];
                if (c == '%') {
                    int hi = i + 2 < len ? edge__hexval(p[i + 1]) : -1;
                    int lo = i + 2 < len ? edge__hexval(p[i + 2]) : -1;
                    if (hi < 0 || lo < 0 || (c = hi * 16 + lo) == 0)
                        return -1;
                    i += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (o + 1 >= outlen)
                    return -1;
                out[o++] = (char)c;
            }
            out[o] = '\0';
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return found;
}

/* POST (or DELETE) /api/purge?key=PATH[%3FQUERY] or ?prefix=PATH-PREFIX, the parameters in the
 * query or in a form body. Only from admin_allow, and with the admin token when one is set. */
static void serve_purge(edge_server_t *s, sw_http_req_t *req)
{
    const edge_config_t *cfg = s->cfg;
    char ip[64], val[EDGE_KEY_MAX], key[EDGE_KEY_MAX], body[128];
    const char *why = NULL;

    if (strcmp(req->method, "POST") != 0 && strcmp(req->method, "DELETE") != 0) {
        static const sw_http_header_t h[] = {{"allow", "POST, DELETE"}};
        respond_text(s, req, 405, "text/plain", "use POST or DELETE\n", 19, h, 1);
        return;
    }
    if (!edge__cidr_match(cfg->admin_allow, cfg->n_admin_allow,
                          peer_ip(req->peer, ip, sizeof(ip)))) {
        respond_error(s, req, 403, "purge: this address is not in admin_allow");
        return;
    }
    if (cfg->admin_token != NULL && cfg->admin_token[0] != '\0') {
        const char *a = sw_http_req_header(req, "authorization");
        size_t tl = strlen(cfg->admin_token);
        if (a == NULL || strncmp(a, "Bearer ", 7) != 0 || strlen(a + 7) != tl ||
            CRYPTO_memcmp(a + 7, cfg->admin_token, tl) != 0) {
            respond_error(s, req, 403, "purge: missing or wrong admin token");
            return;
        }
    }
    /* The parameters come from the query, or from a form body (curl -d key=...). */
    char form[EDGE_KEY_MAX * 2];
    const char *q = req->query;
    if (q[0] == '\0' && req->body_len > 0 && req->body_len < sizeof(form)) {
        memcpy(form, req->body, req->body_len);
        form[req->body_len] = '\0';
        q = form;
    }
    size_t n;
    int rk = form_value(q, "key", val, sizeof(val));
    int rp = rk == 0 ? form_value(q, "prefix", val, sizeof(val)) : 0;
    if (rk < 0 || rp < 0 || (rk == 0 && rp == 0)) {
        respond_error(s, req, 400, "purge: give one key=PATH or prefix=PATH-PREFIX");
        return;
    }
    if (rk == 1) {
        /* The same normalization as a request, so "/a//b?utm=1" purges what "/a/b" cached. */
        if (edge_key_normalize(val, NULL, NULL, key, sizeof(key), &why) != 0) {
            char msg[256];
            snprintf(msg, sizeof(msg), "purge: bad key: %s", why ? why : "invalid");
            respond_error(s, req, 400, msg);
            return;
        }
        n = (size_t)edge_cache_purge(s->cache, key);
    } else {
        if (val[0] != '/') {
            respond_error(s, req, 400, "purge: a prefix starts with /");
            return;
        }
        n = edge_cache_purge_prefix(s->cache, val);
    }
    ADD(s->sh->stats.purge_requests, 1);
    ADD(s->sh->stats.purged, n);
    sw_log(SW_LOG_INFO, "edge", "purge %s %s by %s: %zu object(s)", rk == 1 ? "key" : "prefix",
           rk == 1 ? key : val, req->peer, n);
    int bl = snprintf(body, sizeof(body), "{\"purged\":%zu}\n", n);
    respond_text(s, req, 200, "application/json", body, (size_t)bl, NULL, 0);
}

/* The [protect] section for a normalized path: the longest matching prefix, or NULL. */
static const edge_protect_t *protect_for(const edge_config_t *cfg, const char *path, size_t plen)
{
    const edge_protect_t *best = NULL;
    for (size_t i = 0; i < cfg->n_protect; i++) {
        const edge_protect_t *p = &cfg->protect[i];
        size_t l = strlen(p->prefix);
        if (l <= plen && memcmp(path, p->prefix, l) == 0 &&
            (best == NULL || l > strlen(best->prefix)))
            best = p;
    }
    return best;
}

/* Answers 403 and returns -1 if `key`'s path is protected and the request's token fails. */
static int check_signed(edge_server_t *s, sw_http_req_t *req, const char *key)
{
    char path[EDGE_KEY_MAX], ip[64];
    size_t plen = strcspn(key, "?");
    const edge_protect_t *p = protect_for(s->cfg, key, plen);
    const char *why = NULL;
    if (p == NULL)
        return 0;
    memcpy(path, key, plen);
    path[plen] = '\0';
    int rv = edge_token_verify(&p->token, path, req->query, strlen(req->query),
                               peer_ip(req->peer, ip, sizeof(ip)), sw_now_ms() / 1000, &why);
    if (rv == 0)
        return 0;
    /* The address is inside the MAC: a token used from another address just fails to verify. */
    if (rv == EDGE_ERR_TOKEN_BAD_SIG && strstr(req->query, "sw_ip=1") != NULL &&
        strcmp(why ? why : "", "signature does not verify") == 0)
        why = "signature does not verify for this client address (wrong address?)";
    char msg[256];
    snprintf(msg, sizeof(msg), "forbidden: %s (%s)", edge_strerror(rv), why ? why : "invalid");
    ADD(s->sh->stats.token_refused, 1);
    respond_error(s, req, 403, msg);
    return -1;
}

/* ---- the handler ------------------------------------------------------------------------- */

static void on_request(void *data, sw_http_req_t *req)
{
    edge_server_t *s = data;
    char key[EDGE_KEY_MAX];
    const char *why = NULL;
    edge_obj_t *o = NULL;

    s->req_t0 = uv_now(s->loop);
    ADD(s->sh->workers[s->index].requests, 1);
    if (s->sh->overlay != NULL && edge_overlay_handoff(s->sh->overlay, req))
        return; /* answered, or handed to the overlay's loop as a websocket (edge/overlay.h) */
    if (strcmp(req->method, "OPTIONS") == 0) {
        static const sw_http_header_t h[] = {
            {"access-control-allow-methods", "GET, HEAD, OPTIONS"},
            {"access-control-allow-headers", "*"},
            {"access-control-max-age", "86400"},
        };
        respond_text(s, req, 204, "text/plain", NULL, 0, h, SW_ARRAY_SIZE(h));
        return;
    }
    if (strcmp(req->path, "/api/purge") == 0) {
        serve_purge(s, req);
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
    if (req->path[1] == 'a' && strcmp(req->path, "/api/time") == 0) {
        /* The DASH UTCTiming source the origin's MPD names (a relative URL, so players ask us):
         * our own clock, in the origin's format. Forwarding it would cost an origin round trip
         * per player, as it cannot be cached, and add that trip's delay to the time. */
        char iso[40];
        sw_iso8601(sw_now_ms(), iso, sizeof(iso));
        respond_text(s, req, 200, "text/plain", iso, strlen(iso), NULL, 0);
        return;
    }
    edge_web_resp_t wr;
    if (edge_web_route(s->web, req->path, sw_http_req_header(req, "if-none-match"), &wr)) {
        count(s, req, wr.status);
        log_request(s, req, wr.status, wr.len, s->req_t0, NULL, -1, 0);
        sw_http_respond(req, wr.status, wr.headers, wr.n_headers, wr.body, wr.len);
        return;
    }
    if (edge_key_normalize(req->path, req->query, NULL, key, sizeof(key), &why) != 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "bad path: %s", why ? why : "invalid");
        respond_error(s, req, 400, msg);
        return;
    }
    /* On the normalized key: a path that names another resource once decoded was refused
     * above, so what matches here is what the origin is asked for. */
    if (!edge__forwarded(s->cfg->forward, s->cfg->n_forward, key)) {
        ADD(s->sh->stats.not_forwarded, 1);
        respond_error(s, req, 404, "not found");
        return;
    }
    if (check_signed(s, req, key) != 0)
        return;
    const char *hop = sw_http_req_header(req, HOP_HEADER);
    if (hop != NULL && strcmp(hop, hop_id) == 0) {
        ADD(loops_refused, 1);
        respond_error(s, req, 508, "loop detected: this edge is its own parent");
        return;
    }
    if (hop != NULL)
        ADD(hop_requests, 1);
    /* Collapsed waiters of a private answer get 503: they should retry (and then fetch alone). */
    int res = edge_cache_get(s->cache, key, sw_now_ms(), &o);
    if (res < 0) {
        respond_error(s, req, 503, "out of memory");
        return;
    }
    ereq_t *r = sw_http_req_alloc(req, sizeof(*r));
    if (r == NULL) {
        edge_obj_unref(o);
        respond_error(s, req, 503, "out of memory");
        return;
    }
    r->srv = s;
    r->req = req;
    r->obj = o;
    r->t0 = s->req_t0;
    r->upstream_ms = -1;
    r->end = UINT64_MAX;
    r->sub.on_data = on_sub_data;
    r->sub.on_done = on_sub_done;
    r->sub.data = r;
    r->sub.waker = s->waker;
    r->next = s->reqs;
    if (r->next != NULL)
        r->next->prev = r;
    s->reqs = r;
    r->xcache = res == EDGE_CACHE_HIT ? "HIT" : res == EDGE_CACHE_FILLING ? "HIT-FILLING" : "MISS";

    if (res == EDGE_CACHE_MISS) {
        int rv = fetch_start(s, o, key, r, hop != NULL);
        if (rv != 0) {
            edge_obj_fail(o, EDGE_ERR_UPSTREAM, sw_now_ms());
            serve_stale_or_502(r, rv);
            return;
        }
    }
    /* A hit is COMPLETE, and stays so: only other answers have a state to look at. */
    edge_obj_view_t v = {.state = EDGE_OBJ_COMPLETE};
    if (res != EDGE_CACHE_HIT)
        edge_obj_view(o, &v);
    if (v.state == EDGE_OBJ_FILLING) {
        int rv = edge_obj_subscribe(o, &r->sub);
        edge_obj_view(o, &v); /* read after subscribing: later bytes come with on_data */
        if (rv == 0) {
            sw_http_req_on_abort(req, on_req_abort, r);
            /* A late subscriber: what already arrived goes out now. */
            if (v.status != 0 && v.size > 0)
                pump(r);
            return;
        }
        if (rv != EDGE_ERR_STATE) {
            ereq_release(r);
            respond_error(s, req, 500, "cannot subscribe");
            return;
        }
        /* Another worker completed or failed it since the lookup: serve it as it is now. */
    }
    if (v.state == EDGE_OBJ_FAILED) {
        serve_stale_or_502(r, v.err);
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

/* The cache's kick, from the filler's thread: wake our loop. */
static void kick(void *data)
{
    edge_server_t *s = data;
    uv_async_send(&s->wake);
}

static void on_wake(uv_async_t *h)
{
    edge_server_t *s = sw_container_of(h, edge_server_t, wake);
    edge_waker_run(s->waker);
}

/* The fetcher's origins and parents, from the daemon's configuration. */
static void upstream_lists(edge_upstream_config_t *uc, const edge_config_t *cfg)
{
    uc->origins = (const char *const *)cfg->origins;
    uc->n_origins = cfg->n_origins;
    uc->parents = (const char *const *)cfg->parents;
    uc->n_parents = cfg->n_parents;
}

int edge__server_reload(edge_server_t *s, const edge_config_t *cfg, edge__reload_t *r, char *err,
                        size_t errlen)
{
    sw_alog_t alog;
    const char *why = NULL;
    int rv, failed = 0, strict = r->strict;

    if (sw_alog_open(&alog, cfg->access_log, err, errlen) != 0) {
        if (strict)
            return EDGE_ERR_INVAL;
        failed = EDGE_ERR_INVAL;
        alog = s->alog;
    }
    /* The certificate last: it is the one change that cannot be taken back. */
    if (s->cfg->tls_listen != NULL && cfg->tls_cert != NULL && cfg->tls_key != NULL &&
        (rv = sw_http_server_reload_tls(s->http, cfg->tls_cert, cfg->tls_key, &why)) != 0) {
        snprintf(err, errlen, "TLS: %s", why ? why : "cannot load");
        rv = rv == SW_ERR_NOMEM ? EDGE_ERR_NOMEM : EDGE_ERR_INVAL;
        if (strict) {
            sw_alog_close(&alog);
            return rv;
        }
        failed = rv;
    }
    /* Lines are written with one write(2) each, so swapping between two lines loses nothing. */
    if (alog.fd != s->alog.fd) {
        sw_alog_close(&s->alog);
        s->alog = alog;
    }
    s->cfg = cfg;
    /* The upstream lists after the strict part: refusing them (a bad URL) changes nothing, so it
     * refuses only them, and fetches in flight go on (see edge_upstream_reconfigure()). */
    if (r->upstreams) {
        edge_upstream_config_t uc;
        edge_upstream_config_init(&uc);
        upstream_lists(&uc, cfg);
        if (edge_upstream_reconfigure(s->up, &uc, r->up_err, sizeof(r->up_err)) != 0)
            r->upstreams = 0;
    }
    return failed;
}

static void close_step(void *data)
{
    edge_server_t *s = data;
    if (--s->pending_close == 0 && s->on_closed != NULL)
        s->on_closed(s->closed_data);
}

static void on_handle_closed(uv_handle_t *h)
{
    close_step(h->data);
}

static void on_http_closed(void *data)
{
    edge_server_t *s = data;
    /* Every request is freed, hence unsubscribed: the waker has nothing left to deliver. */
    edge_waker_free(s->waker);
    s->waker = NULL;
    uv_close((uv_handle_t *)&s->wake, on_handle_closed);
    uv_close((uv_handle_t *)&s->publish, on_handle_closed);
    uv_close((uv_handle_t *)&s->sweep, on_handle_closed);
    /* The registry first: its pending lookups start their fetches, which the fetcher's close
     * then ends (the objects fail, with no subscriber left). */
    if (s->locate != NULL)
        edge__locate_close(s->locate, close_step, s);
    edge_upstream_close(s->up, close_step, s);
    close_step(s);
}

int edge__server_new(edge_server_t **out, uv_loop_t *loop, const edge_config_t *cfg,
                     edge__shared_t *sh, unsigned index, char *err, size_t errlen)
{
    edge_server_t *s;
    edge_upstream_config_t uc;
    sw_http_server_config_t hc;
    const char *why = NULL;
    int rv = EDGE_ERR_NOMEM;

    snprintf(err, errlen, "out of memory");
    if ((s = calloc(1, sizeof(*s))) == NULL)
        goto fail;
    s->loop = loop;
    s->index = index;
    s->sh = sh;
    s->cache = sh->cache;
    s->web = sh->web;
    s->cfg = cfg;
    s->alog.fd = -1;
    edge_upstream_config_init(&uc);
    upstream_lists(&uc, cfg);
    char hop_line[64];
    uv_once(&hop_once, make_hop_id);
    snprintf(hop_line, sizeof(hop_line), "%s: %s", HOP_HEADER, hop_id);
    uc.parent_header = hop_line;
    if ((rv = edge_upstream_new(&s->up, loop, &uc, err, errlen)) != 0)
        goto fail_server;
    if (cfg->redis != NULL && (rv = edge__locate_new(&s->locate, loop, cfg->redis, err, errlen)))
        goto fail_upstream;
    sw_http_server_config_init(&hc);
    hc.server_name = "shortwave-edge";
    /* The limit is the process's: each worker takes its share (the kernel spreads connections
     * evenly over SO_REUSEPORT listeners, by a hash of the addresses). */
    hc.max_connections = (uint32_t)((cfg->max_connections + sh->n_workers - 1) / sh->n_workers);
    hc.max_header_bytes = (size_t)cfg->max_header_bytes;
    hc.max_streams = (uint32_t)cfg->max_streams;
    hc.idle_timeout_ms = (uint32_t)cfg->idle_timeout_ms;
    hc.header_timeout_ms = (uint32_t)cfg->header_timeout_ms;
    hc.send_timeout_ms = (uint32_t)cfg->send_timeout_ms;
    hc.drain_timeout_ms = (uint32_t)cfg->drain_timeout_ms;
    hc.notsent_lowat = (uint32_t)cfg->notsent_lowat;
    if (sw_http_server_new(&s->http, loop, &hc, on_request, s) != 0) {
        rv = EDGE_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail_upstream;
    }
    if (sw_http_server_listen(s->http, cfg->listen, 1, NULL, &why) != 0) {
        rv = EDGE_ERR_INVAL;
        snprintf(err, errlen, "listen %s: %s", cfg->listen, why ? why : "failed");
        goto fail_http;
    }
    if (cfg->tls_listen != NULL &&
        sw_http_server_listen_tls(s->http, cfg->tls_listen, 1, cfg->tls_cert, cfg->tls_key, NULL,
                                  &why) != 0) {
        rv = EDGE_ERR_INVAL;
        snprintf(err, errlen, "tls listen %s: %s", cfg->tls_listen, why ? why : "failed");
        goto fail_http;
    }
    if (sw_alog_open(&s->alog, cfg->access_log, err, errlen) != 0) {
        rv = EDGE_ERR_INVAL;
        goto fail_http;
    }
    if ((rv = edge_waker_new(&s->waker, sh->cache, kick, s)) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail_alog;
    }
    /* Nothing is subscribed through the waker yet, so nothing can kick before this. */
    uv_async_init(loop, &s->wake, on_wake);
    /* Started after the listens, so it runs before the server writes (sw/http.h): a client that
     * has its answer finds it counted in /metrics, whichever worker answers that. */
    uv_check_init(loop, &s->publish);
    uv_check_start(&s->publish, on_publish);
    uv_timer_init(loop, &s->sweep);
    s->wake.data = s->publish.data = s->sweep.data = s;
    if (index == 0)
        uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    *out = s;
    return 0;
fail_alog:
    sw_alog_close(&s->alog);
fail_http:
    /* Nothing was accepted yet; closing still has to run on the loop. */
    sw_http_server_close(s->http, NULL, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    sw_http_server_free(s->http);
fail_upstream:
    if (s->locate != NULL)
        edge__locate_close(s->locate, NULL, NULL);
    edge_upstream_close(s->up, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
fail_server:
    free(s);
fail:
    return rv;
}

void edge__server_shutdown(edge_server_t *s, void (*on_closed)(void *data), void *data)
{
    s->on_closed = on_closed;
    s->closed_data = data;
    /* the HTTP server, the fetcher, three handles, the registry */
    s->pending_close = s->locate != NULL ? 6 : 5;
    /* Held requests are aborted at once (they unsubscribe); responses under way drain while
     * the fetcher still feeds them; once the HTTP side has closed, the fetches end. */
    sw_http_server_close(s->http, on_http_closed, s);
}

void edge__server_free(edge_server_t *s)
{
    if (s == NULL)
        return;
    sw_http_server_free(s->http);
    sw_alog_close(&s->alog);
    free(s);
}
