/*
 * edge_upstream.c: the upstream fetcher, libcurl's multi interface on a libuv loop.
 *
 * libcurl tells us which sockets to watch (on_curl_socket: one uv_poll_t per socket, freed in
 * its close callback) and when to call it back (on_curl_timer: one uv_timer_t); we hand every
 * readiness event back through curl_multi_socket_action() and then read finished transfers
 * with curl_multi_info_read(). User callbacks run from inside libcurl's header and write
 * callbacks, where libcurl must not be re-entered, so anything a callback asks for that needs
 * the multi handle (starting a fetch, cancelling one, closing the fetcher) is recorded and done
 * once control is back in this file (leave()).
 */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "edge_upstream_int.h"
#include "sw/log.h"
#include "sw/sw.h"

#define MAX_HEADER_BYTES (64 * 1024)

/*
 * An upstream. Nodes are refcounted because a reload (edge_upstream_reconfigure()) may drop one
 * that fetches in flight still point at: u->nodes[] holds one reference while the node is
 * configured, and a fetch one per entry of its cand[] plus one on its located origin. A node
 * leaves u->nodes[] with its health check stopped, so a node that only fetches hold has no check
 * handle and is freed by whichever fetch lets go of it last.
 */
typedef struct up_node {
    int kind;       /* XFER_CHECK: what the check handle's CURLINFO_PRIVATE points at */
    unsigned refs;  /* see above */
    int configured; /* in u->nodes[], at index idx */
    size_t idx;
    char *url;  /* as configured */
    char *base; /* scheme rewritten for libcurl: h2c:// becomes http:// */
    uint64_t hash;
    int is_parent;
    long http_version;
    int no_reuse; /* h2c on a libcurl that cannot reuse such connections */
    int healthy;
    uint32_t fails_in_row;
    CURL *check;       /* health check handle, reused */
    int check_running; /* in the multi */
    char check_err[CURL_ERROR_SIZE];
    edge_upstream_node_stats_t st;
} up_node_t;

/* Room in edge_fetch_t.cand[]: a full list, then a full list more after a reload. */
#define MAX_CAND (2 * (EDGE_UPSTREAM_MAX + 1))

/* What CURLINFO_PRIVATE points at: a fetch or a health check. */
enum { XFER_FETCH = 1, XFER_CHECK = 2 };

typedef struct sock {
    uv_poll_t poll;
    edge_upstream_t *u;
    curl_socket_t fd;
    struct sock *next, *prev;
} sock_t;

struct edge_fetch {
    int kind; /* XFER_FETCH; first, so CURLINFO_PRIVATE can be told apart */
    edge_upstream_t *u;
    CURL *easy;
    uv_timer_t fb_timer; /* first-byte timeout; the fetch is freed in its close callback */
    edge_fetch_cbs_t cbs;
    void *data;
    char *path;
    struct edge_fetch *next, *prev;

    up_node_t *cand[MAX_CAND]; /* upstreams tried and to try, in order; a reference each */
    size_t n_cand, cur;
    unsigned gen;       /* u->gen when cand[] was ordered */
    up_node_t *located; /* our reference on the located origin (edge_fetch_opts_t), or NULL:
                           a configured origin with the same base, else a node of its own */
    char *key;          /* the hash key (edge_fetch_opts_t), or NULL: the path */

    unsigned attached : 1;  /* in the multi */
    unsigned pending : 1;   /* started from inside libcurl: added in leave() */
    unsigned head_sent : 1; /* on_head called */
    unsigned canceled : 1;
    unsigned done : 1;       /* on_done running or ran */
    unsigned retry_5xx : 1;  /* aborted by us to fail over */
    unsigned fb_expired : 1; /* first-byte timer fired */
    unsigned oom : 1;        /* allocation failed in a libcurl callback */
    unsigned retired : 1;    /* no longer counted in st.in_flight */
    unsigned too_big : 1;    /* headers over MAX_HEADER_BYTES */
    unsigned origins_only : 1;

    int status;
    char *hbuf; /* "name\0value\0" pairs of the response being read */
    size_t hlen, hcap, n_headers;

    uint64_t t_attempt_ns;
    int last_err;
    char reason[CURL_ERROR_SIZE + 160];
    char errbuf[CURL_ERROR_SIZE];
};

struct edge_upstream {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;                    /* libcurl's timeout */
    uv_timer_t health_timer;             /* health check interval */
    up_node_t *nodes[EDGE_UPSTREAM_MAX]; /* a reference each */
    size_t n_nodes;                      /* origins first, then parents */
    size_t n_origins;
    unsigned gen; /* edge_upstream_reconfigure() calls so far */
    uint64_t parent_hash[EDGE_UPSTREAM_MAX];
    unsigned char parent_up[EDGE_UPSTREAM_MAX];
    edge_upstream_config_t cfg;
    char *health_path;
    struct curl_slist *parent_header; /* cfg.parent_header as libcurl takes it, or NULL */

    edge_fetch_t *fetches; /* every fetch not yet freed */
    sock_t *socks;         /* poll handles not yet closing */
    int in_curl;           /* inside curl_multi_socket_action() or another libcurl call */
    int depth;             /* nested dispatch through this file */
    size_t n_canceled;     /* canceled fetches waiting for leave() */
    size_t n_pending;      /* fetches waiting to be added in leave() */
    int close_requested, closing;
    int open_handles; /* uv handles (timers, polls, fetch timers) not yet closed */
    void (*on_closed)(void *data);
    void *closed_data;
    edge_upstream_stats_t st;
};

static void check_multi(edge_upstream_t *u);
static void leave(edge_upstream_t *u);
static void do_close(edge_upstream_t *u);

/* ---- hashing ------------------------------------------------------------------------------- */

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

uint64_t edge__hrw_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ULL;
    }
    return fmix64(h);
}

uint64_t edge__hrw_score(uint64_t key_hash, uint64_t node_hash)
{
    return fmix64(key_hash ^ fmix64(node_hash + 0x9e3779b97f4a7c15ULL));
}

int edge__hrw_pick(const char *key, const uint64_t *node_hashes, const unsigned char *usable,
                   size_t n)
{
    uint64_t kh = edge__hrw_hash(key, strlen(key));
    int best = -1;
    uint64_t best_score = 0;
    for (size_t i = 0; i < n; i++) {
        if (usable != NULL && !usable[i])
            continue;
        uint64_t s = edge__hrw_score(kh, node_hashes[i]);
        if (best < 0 || s > best_score || (s == best_score && node_hashes[i] < node_hashes[best])) {
            best = (int)i;
            best_score = s;
        }
    }
    return best;
}

/* ---- configuration --------------------------------------------------------------------------- */

void edge_upstream_config_init(edge_upstream_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->connect_timeout_ms = 2000;
    cfg->first_byte_timeout_ms = 10000;
    cfg->total_timeout_ms = 60000;
    cfg->low_speed_time_s = 15;
    cfg->low_speed_bytes = 1;
    cfg->health_interval_ms = 1000;
    cfg->health_fails = 3;
    cfg->health_timeout_ms = 1000;
    cfg->health_path = "/healthz";
    cfg->max_fetches = 1024;
    cfg->max_host_conns = 16;
    cfg->max_streams = 256;
}

static void set_err(char *err, size_t errlen, const char *msg, const char *arg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s%s%s", msg, arg ? ": " : "", arg ? arg : "");
}

static void node_free(up_node_t *n)
{
    assert(n->check == NULL && !n->configured);
    free(n->url);
    free(n->base);
    free(n);
}

static up_node_t *node_ref(up_node_t *n)
{
    n->refs++;
    return n;
}

static void node_unref(up_node_t *n)
{
    if (n != NULL && --n->refs == 0)
        node_free(n);
}

/* Whether `n` is one of list[0..len). */
static int node_in(up_node_t *const *list, size_t len, const up_node_t *n)
{
    for (size_t i = 0; i < len; i++)
        if (list[i] == n)
            return 1;
    return 0;
}

/* Accepts http://, https:// and h2c:// followed by a host and no path. The node has one
 * reference, no health check, and is not configured. */
static int node_new(up_node_t **out, const char *url, int is_parent, int h2)
{
    static const char *const schemes[] = {"http://", "https://", "h2c://"};
    size_t k;
    for (k = 0; k < SW_ARRAY_SIZE(schemes); k++) {
        if (strncmp(url, schemes[k], strlen(schemes[k])) == 0)
            break;
    }
    if (k == SW_ARRAY_SIZE(schemes))
        return EDGE_ERR_INVAL;
    const char *host = url + strlen(schemes[k]);
    size_t hl = strlen(host);
    while (hl > 0 && host[hl - 1] == '/')
        hl--;
    if (hl == 0 || memchr(host, '/', hl) != NULL || memchr(host, '?', hl) != NULL)
        return EDGE_ERR_INVAL;
    up_node_t *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return EDGE_ERR_NOMEM;
    n->refs = 1;
    const char *scheme = k == 1 ? "https://" : "http://";
    if ((n->url = strdup(url)) == NULL || (n->base = malloc(strlen(scheme) + hl + 1)) == NULL) {
        node_free(n);
        return EDGE_ERR_NOMEM;
    }
    sprintf(n->base, "%s%.*s", scheme, (int)hl, host);
    n->hash = edge__hrw_hash(n->base, strlen(n->base));
    n->is_parent = is_parent;
    if (k == 2 || (k == 0 && h2)) {
        n->http_version = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
        /* libcurl before 8.0.0 fails every request reusing an HTTP/2 prior-knowledge
         * connection with "Error in the HTTP2 framing layer" (curl issue #10634, fixed by
         * pull request #10643); Debian 12 has 7.88.1. There each request gets its own
         * connection. */
        n->no_reuse = curl_version_info(CURLVERSION_NOW)->version_num < 0x080000;
    } else if (k == 1)
        n->http_version = CURL_HTTP_VERSION_2TLS;
    else
        n->http_version = CURL_HTTP_VERSION_1_1;
    n->healthy = 1;
    n->st.url = n->url;
    n->st.is_parent = is_parent;
    n->st.healthy = 1;
    *out = n;
    return 0;
}

/* The upstream the fetch's current attempt goes to. */
static up_node_t *cur_node(edge_fetch_t *f)
{
    return f->cand[f->cur];
}

static int node_kind(const edge_fetch_t *f, const up_node_t *n)
{
    if (n == f->located)
        return EDGE_UPKIND_LOCATED;
    return n->is_parent ? EDGE_UPKIND_PARENT : EDGE_UPKIND_ORIGIN;
}

/* ---- the libuv side of libcurl ------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    edge_upstream_t *u = h->data;
    if (--u->open_handles == 0 && u->closing) {
        void (*cb)(void *) = u->on_closed;
        void *data = u->closed_data;
        free(u->health_path);
        free(u);
        curl_global_cleanup();
        if (cb != NULL)
            cb(data);
    }
}

static void on_sock_closed(uv_handle_t *h)
{
    sock_t *s = sw_container_of((uv_poll_t *)h, sock_t, poll);
    edge_upstream_t *u = s->u;
    free(s);
    on_handle_closed((uv_handle_t *)&u->timer);
}

/* Stops watching a socket now (libcurl is about to close it, and the descriptor number may be
 * reused by the next socket at once); the memory goes in the close callback. */
static void sock_close(edge_upstream_t *u, sock_t *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        u->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void socket_action(edge_upstream_t *u, curl_socket_t fd, int flags)
{
    int running;
    u->depth++;
    u->in_curl++;
    curl_multi_socket_action(u->multi, fd, flags, &running);
    u->in_curl--;
    check_multi(u);
    leave(u);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_t *s = sw_container_of(p, sock_t, poll);
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* `s` may be closed during the call; its memory stays until its close callback. */
    socket_action(s->u, s->fd, flags);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    edge_upstream_t *u = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(u->multi, fd, NULL);
            sock_close(u, s);
        }
        return 0;
    }
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL)
            return -1;
        if (uv_poll_init_socket(u->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->u = u;
        s->fd = fd;
        s->poll.data = u;
        u->open_handles++;
        if ((s->next = u->socks) != NULL)
            s->next->prev = s;
        u->socks = s;
        curl_multi_assign(u->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    edge_upstream_t *u = t->data;
    socket_action(u, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    edge_upstream_t *u = userp;
    if (u->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&u->timer);
    else
        uv_timer_start(&u->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- fetches ------------------------------------------------------------------------------- */

static void on_fetch_closed(uv_handle_t *h)
{
    edge_fetch_t *f = sw_container_of((uv_timer_t *)h, edge_fetch_t, fb_timer);
    edge_upstream_t *u = f->u;
    free(f);
    on_handle_closed((uv_handle_t *)&u->timer);
}

static void retire(edge_fetch_t *f)
{
    if (!f->retired) {
        f->retired = 1;
        f->u->st.in_flight--;
    }
}

/* Releases a fetch that is out of the multi. */
static void fetch_free(edge_fetch_t *f)
{
    edge_upstream_t *u = f->u;
    if (f->prev != NULL)
        f->prev->next = f->next;
    else
        u->fetches = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    retire(f);
    curl_easy_cleanup(f->easy);
    for (size_t i = 0; i < f->n_cand; i++)
        node_unref(f->cand[i]);
    node_unref(f->located);
    free(f->key);
    free(f->path);
    free(f->hbuf);
    uv_close((uv_handle_t *)&f->fb_timer, on_fetch_closed);
}

static void detach(edge_fetch_t *f)
{
    if (f->attached) {
        curl_multi_remove_handle(f->u->multi, f->easy);
        f->attached = 0;
        long n = 0;
        if (curl_easy_getinfo(f->easy, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK && n > 0)
            f->u->st.connects += (uint64_t)n;
    }
    uv_timer_stop(&f->fb_timer);
}

static void finish(edge_fetch_t *f, int err, const char *reason)
{
    edge_upstream_t *u = f->u;
    f->done = 1;
    retire(f);
    if (err == 0)
        u->st.completed++;
    else
        u->st.failed++;
    u->depth++;
    f->cbs.on_done(f->data, err, reason);
    fetch_free(f);
    leave(u);
}

static void on_first_byte_timeout(uv_timer_t *t);

/* Sends the current attempt. Returns 0 or an EDGE_ERR_* code. */
static int attempt(edge_fetch_t *f)
{
    edge_upstream_t *u = f->u;
    up_node_t *n = cur_node(f);
    size_t bl = strlen(n->base), pl = strlen(f->path);
    char *url = malloc(bl + pl + 1);
    if (url == NULL)
        return EDGE_ERR_NOMEM;
    memcpy(url, n->base, bl);
    memcpy(url + bl, f->path, pl + 1);
    CURLcode rc = curl_easy_setopt(f->easy, CURLOPT_URL, url);
    free(url);
    if (rc != CURLE_OK)
        return rc == CURLE_OUT_OF_MEMORY ? EDGE_ERR_NOMEM : EDGE_ERR_INVAL;
    curl_easy_setopt(f->easy, CURLOPT_HTTP_VERSION, n->http_version);
    curl_easy_setopt(f->easy, CURLOPT_PIPEWAIT, n->no_reuse ? 0L : 1L);
    curl_easy_setopt(f->easy, CURLOPT_FRESH_CONNECT, (long)n->no_reuse);
    curl_easy_setopt(f->easy, CURLOPT_FORBID_REUSE, (long)n->no_reuse);
    curl_easy_setopt(f->easy, CURLOPT_HTTPHEADER, n->is_parent ? u->parent_header : NULL);
    f->retry_5xx = f->fb_expired = 0;
    f->status = 0;
    f->hlen = f->n_headers = 0;
    f->errbuf[0] = '\0';
    f->t_attempt_ns = sw_mono_ns();
    n->st.attempts++;
    u->st.attempts_by_kind[node_kind(f, n)]++;
    if (curl_multi_add_handle(u->multi, f->easy) != CURLM_OK)
        return EDGE_ERR_NOMEM;
    f->attached = 1;
    uv_timer_start(&f->fb_timer, on_first_byte_timeout, u->cfg.first_byte_timeout_ms, 0);
    return 0;
}

/*
 * Lists the upstreams a fetch tries, in order: parents by rendezvous score of `key` (none when
 * `origins_only`), then the located origin `loc` (may be NULL), then the other origins in order;
 * down ones are skipped unless all are down, but a located origin that is not configured is
 * always tried. Writes at most EDGE_UPSTREAM_MAX + 1 nodes to out[], takes no reference, and
 * returns how many.
 */
static size_t order(edge_upstream_t *u, const char *key, int origins_only, up_node_t *loc,
                    up_node_t **out)
{
    size_t n = 0;
    int loc_checked = loc != NULL && loc->configured;
    for (int pass = 0; pass < 2 && n == 0; pass++) {
        size_t np = origins_only ? 0 : u->n_nodes - u->n_origins;
        unsigned char left[EDGE_UPSTREAM_MAX];
        for (size_t i = 0; i < np; i++)
            left[i] = pass == 1 || u->parent_up[i];
        int p;
        while ((p = edge__hrw_pick(key, u->parent_hash, left, np)) >= 0) {
            out[n++] = u->nodes[u->n_origins + (size_t)p];
            left[p] = 0;
        }
        if (loc != NULL && (!loc_checked || pass == 1 || loc->healthy))
            out[n++] = loc;
        for (size_t i = 0; i < u->n_origins; i++) {
            if (u->nodes[i] != loc && (pass == 1 || u->nodes[i]->healthy))
                out[n++] = u->nodes[i];
        }
    }
    return n;
}

static const char *fetch_key(const edge_fetch_t *f)
{
    return f->key != NULL ? f->key : f->path;
}

/*
 * A reload replaced the upstreams after f's candidates were ordered. Rather than go on through a
 * list the operator has just changed (to an origin that was moved away, say), what is left to
 * try is ordered again from the new lists, minus the upstreams this fetch already tried. The
 * nodes it tried stay referenced by cand[], so comparing pointers is sound.
 */
static void replan(edge_fetch_t *f)
{
    edge_upstream_t *u = f->u;
    up_node_t *next[EDGE_UPSTREAM_MAX + 1];
    size_t n = order(u, fetch_key(f), f->origins_only, f->located, next);
    for (size_t i = f->cur + 1; i < f->n_cand; i++)
        node_unref(f->cand[i]);
    f->n_cand = f->cur + 1;
    for (size_t i = 0; i < n && f->n_cand < MAX_CAND; i++) {
        if (!node_in(f->cand, f->n_cand, next[i]))
            f->cand[f->n_cand++] = node_ref(next[i]);
    }
    f->gen = u->gen;
}

/* The current attempt failed before on_head: the next candidate, or on_done. */
static void fail_over(edge_fetch_t *f, int kind, const char *why)
{
    edge_upstream_t *u = f->u;
    up_node_t *n = cur_node(f);
    u->st.errors[kind]++;
    n->st.attempt_errors++;
    snprintf(f->reason, sizeof(f->reason), "%s%s: %s", n->url, f->path, why);
    if (f->gen != u->gen)
        replan(f);
    while (f->cur + 1 < f->n_cand) {
        f->cur++;
        u->st.failovers++;
        sw_log(SW_LOG_INFO, "upstream", "%s; trying %s", f->reason, cur_node(f)->url);
        int rv = attempt(f);
        if (rv == 0)
            return;
        u->st.errors[EDGE_UPERR_OTHER]++;
        snprintf(f->reason, sizeof(f->reason), "%s%s: cannot start (out of memory)",
                 cur_node(f)->url, f->path);
    }
    sw_log(SW_LOG_WARN, "upstream", "%s; no upstream left", f->reason);
    finish(f, kind == EDGE_UPERR_OTHER && f->oom ? EDGE_ERR_NOMEM : EDGE_ERR_UPSTREAM, f->reason);
}

static void on_first_byte_timeout(uv_timer_t *t)
{
    edge_fetch_t *f = sw_container_of(t, edge_fetch_t, fb_timer);
    edge_upstream_t *u = f->u;
    if (f->head_sent || !f->attached)
        return;
    u->depth++;
    detach(f);
    if (f->canceled) {
        /* leave() frees it. */
    } else {
        char why[64];
        snprintf(why, sizeof(why), "no response within %u ms", u->cfg.first_byte_timeout_ms);
        fail_over(f, EDGE_UPERR_FIRST_BYTE, why);
    }
    leave(u);
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    edge_fetch_t *f = userdata;
    edge_upstream_t *u = f->u;
    size_t len = size * nitems;
    if (f->canceled)
        return 0;
    if (f->head_sent)
        return len; /* trailers */
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A status line: the start of a (possibly interim) response. */
        const char *sp = memchr(buf, ' ', len);
        f->status = sp != NULL ? atoi(sp + 1) : 0;
        f->hlen = f->n_headers = 0;
        return len;
    }
    if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        if (f->status < 200)
            return len; /* end of a 1xx response */
        if (f->status >= 500 && f->gen != u->gen)
            replan(f); /* whether another upstream is left depends on the new lists */
        if (f->status >= 500 && f->cur + 1 < f->n_cand) {
            f->retry_5xx = 1;
            return 0;
        }
        edge_header_t hs[256];
        size_t nh = f->n_headers < SW_ARRAY_SIZE(hs) ? f->n_headers : SW_ARRAY_SIZE(hs);
        const char *p = f->hbuf;
        for (size_t i = 0; i < nh; i++) {
            hs[i].name = p;
            p += strlen(p) + 1;
            hs[i].value = p;
            p += strlen(p) + 1;
        }
        uint64_t ttfb_ns = sw_mono_ns() - f->t_attempt_ns;
        static const uint32_t bounds[] = EDGE_TTFB_BOUNDS_MS;
        size_t b = 0;
        while (b < SW_ARRAY_SIZE(bounds) && ttfb_ns > (uint64_t)bounds[b] * 1000000)
            b++;
        u->st.ttfb_hist[b]++;
        up_node_t *n = cur_node(f);
        n->st.last_ttfb_us = ttfb_ns / 1000;
        u->st.heads_by_kind[node_kind(f, n)]++;
        f->head_sent = 1;
        uv_timer_stop(&f->fb_timer);
        f->cbs.on_head(f->data, f->status, hs, nh);
        free(f->hbuf);
        f->hbuf = NULL;
        f->hcap = f->hlen = 0;
        return f->canceled ? 0 : len;
    }
    /* "Name: value\r\n" stored as "name\0value\0". */
    const char *colon = memchr(buf, ':', len);
    if (colon == NULL || colon == buf)
        return len; /* obsolete folding or junk: ignore */
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vl = (size_t)(end - v), need = f->hlen + nl + vl + 2;
    if (need > MAX_HEADER_BYTES) {
        f->too_big = 1;
        return 0;
    }
    if (need > f->hcap) {
        size_t cap = f->hcap ? f->hcap * 2 : 1024;
        while (cap < need)
            cap *= 2;
        char *nb = realloc(f->hbuf, cap);
        if (nb == NULL) {
            f->oom = 1;
            return 0;
        }
        f->hbuf = nb;
        f->hcap = cap;
    }
    char *w = f->hbuf + f->hlen;
    for (size_t i = 0; i < nl; i++)
        w[i] = (char)tolower((unsigned char)buf[i]);
    w[nl] = '\0';
    memcpy(w + nl + 1, v, vl);
    w[nl + 1 + vl] = '\0';
    f->hlen = need;
    f->n_headers++;
    return len;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    edge_fetch_t *f = userdata;
    size_t len = size * nmemb;
    if (f->canceled || !f->head_sent)
        return 0;
    if (len == 0)
        return 0;
    if (f->cbs.on_data != NULL) {
        sw_rbuf_t *b = sw_rbuf_copy(ptr, len);
        if (b == NULL) {
            f->oom = 1;
            return 0;
        }
        f->cbs.on_data(f->data, b);
        sw_rbuf_unref(b);
    }
    f->u->st.body_bytes += len;
    return f->canceled ? 0 : len;
}

static int classify(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return EDGE_UPERR_CONNECT;
    default:
        return EDGE_UPERR_BEFORE_HEAD;
    }
}

/* A fetch's transfer ended in libcurl. */
static void fetch_xfer_done(edge_fetch_t *f, CURLcode rc)
{
    edge_upstream_t *u = f->u;
    detach(f);
    if (f->canceled)
        return; /* leave() frees it */
    if (rc == CURLE_OK && f->head_sent) {
        finish(f, 0, NULL);
        return;
    }
    const char *detail = f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc);
    if (!f->head_sent) {
        if (f->oom || f->too_big) {
            u->st.errors[EDGE_UPERR_OTHER]++;
            snprintf(f->reason, sizeof(f->reason), "%s: %s", f->path,
                     f->oom ? "out of memory" : "response headers too big");
            finish(f, f->oom ? EDGE_ERR_NOMEM : EDGE_ERR_TOO_BIG, f->reason);
        } else if (f->retry_5xx) {
            char why[32];
            snprintf(why, sizeof(why), "answered %d", f->status);
            fail_over(f, EDGE_UPERR_HTTP_5XX, why);
        } else if (rc == CURLE_OK) {
            fail_over(f, EDGE_UPERR_BEFORE_HEAD, "no response headers");
        } else if (rc == CURLE_OPERATION_TIMEDOUT) {
            double ct = 0;
            curl_easy_getinfo(f->easy, CURLINFO_CONNECT_TIME, &ct);
            fail_over(f, ct > 0 ? EDGE_UPERR_FIRST_BYTE : EDGE_UPERR_CONNECT, detail);
        } else {
            fail_over(f, classify(rc), detail);
        }
        return;
    }
    /* After on_head there is no retry: the caller has seen this response. */
    up_node_t *n = cur_node(f);
    n->st.attempt_errors++;
    if (f->oom) {
        u->st.errors[EDGE_UPERR_OTHER]++;
        snprintf(f->reason, sizeof(f->reason), "%s%s: out of memory", n->url, f->path);
        finish(f, EDGE_ERR_NOMEM, f->reason);
        return;
    }
    u->st.errors[EDGE_UPERR_MID_BODY]++;
    snprintf(f->reason, sizeof(f->reason), "%s%s: body cut short: %s", n->url, f->path, detail);
    sw_log(SW_LOG_WARN, "upstream", "%s", f->reason);
    finish(f, EDGE_ERR_TRUNCATED, f->reason);
}

/* ---- health checks ------------------------------------------------------------------------- */

static void set_healthy(edge_upstream_t *u, up_node_t *n, int healthy, const char *why)
{
    if (n->healthy == healthy)
        return;
    n->healthy = healthy;
    n->st.healthy = healthy;
    n->st.transitions++;
    if (n->is_parent && n->configured) /* a retired node has no place in parent_up[] */
        u->parent_up[n->idx - u->n_origins] = (unsigned char)healthy;
    if (healthy)
        sw_log(SW_LOG_INFO, "upstream", "%s is up again (%s)", n->url, why);
    else
        sw_log(SW_LOG_WARN, "upstream", "%s is down: %u health checks failed in a row (%s)", n->url,
               n->fails_in_row, why);
}

void edge__upstream_set_healthy(edge_upstream_t *u, size_t i, int healthy)
{
    if (i < u->n_nodes)
        set_healthy(u, u->nodes[i], healthy, "set by caller");
}

static size_t on_check_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    return size * nmemb;
}

static void check_xfer_done(edge_upstream_t *u, up_node_t *n, CURLcode rc)
{
    curl_multi_remove_handle(u->multi, n->check);
    n->check_running = 0;
    long code = 0, conns = 0;
    curl_easy_getinfo(n->check, CURLINFO_RESPONSE_CODE, &code);
    if (curl_easy_getinfo(n->check, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK && conns > 0)
        u->st.connects += (uint64_t)conns;
    n->st.checks++;
    char why[CURL_ERROR_SIZE + 32];
    if (rc == CURLE_OK && code >= 200 && code < 300) {
        snprintf(why, sizeof(why), "check answered %ld", code);
        n->fails_in_row = 0;
        set_healthy(u, n, 1, why);
    } else {
        if (rc != CURLE_OK)
            snprintf(why, sizeof(why), "%s",
                     n->check_err[0] ? n->check_err : curl_easy_strerror(rc));
        else
            snprintf(why, sizeof(why), "check answered %ld", code);
        n->st.check_failures++;
        n->fails_in_row++;
        if (n->fails_in_row >= u->cfg.health_fails)
            set_healthy(u, n, 0, why);
    }
    n->st.fails_in_row = n->fails_in_row;
}

static void on_health_timer(uv_timer_t *t)
{
    edge_upstream_t *u = t->data;
    u->depth++;
    for (size_t i = 0; i < u->n_nodes; i++) {
        up_node_t *n = u->nodes[i];
        if (n->check_running)
            continue;
        n->check_err[0] = '\0';
        if (curl_multi_add_handle(u->multi, n->check) == CURLM_OK)
            n->check_running = 1;
    }
    leave(u);
}

/* ---- driving the multi --------------------------------------------------------------------- */

static void check_multi(edge_upstream_t *u)
{
    CURLMsg *msg;
    int left;
    while (!u->closing && (msg = curl_multi_info_read(u->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        void *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        if (priv == NULL)
            continue;
        if (*(int *)priv == XFER_FETCH)
            fetch_xfer_done(priv, rc);
        else
            check_xfer_done(u, sw_container_of((int *)priv, up_node_t, kind), rc);
    }
}

/*
 * Called when a dispatch through this file ends. At the outermost level, outside libcurl, it
 * does what callbacks asked for while libcurl could not be re-entered.
 */
static void leave(edge_upstream_t *u)
{
    if (--u->depth > 0 || u->in_curl > 0)
        return;
    u->depth++;
    /* Callbacks run here (on_done of a fetch that cannot start) may cancel or start others, so
     * sweep until a pass finds nothing to do. */
    for (int busy = 1; busy && (u->n_pending > 0 || u->n_canceled > 0);) {
        busy = 0;
        for (edge_fetch_t *f = u->fetches, *next; f != NULL; f = next) {
            next = f->next;
            if (f->canceled || f->pending)
                busy = 1;
            if (f->canceled) {
                detach(f);
                u->n_canceled--;
                if (f->pending)
                    u->n_pending--;
                fetch_free(f);
            } else if (f->pending) {
                f->pending = 0;
                u->n_pending--;
                int rv = attempt(f);
                if (rv != 0) {
                    snprintf(f->reason, sizeof(f->reason), "%s: cannot start", f->path);
                    finish(f, rv, f->reason);
                }
            }
        }
    }
    u->n_canceled = u->n_pending = 0;
    u->depth--;
    if (u->close_requested && !u->closing)
        do_close(u);
}

/* ---- configured nodes ---------------------------------------------------------------------- */

/* Gives a configured node its health check handle, reused for every check. */
static int check_init(edge_upstream_t *u, up_node_t *n)
{
    if ((n->check = curl_easy_init()) == NULL)
        return EDGE_ERR_UPSTREAM;
    char *url = malloc(strlen(n->base) + strlen(u->health_path) + 1);
    if (url == NULL) {
        curl_easy_cleanup(n->check);
        n->check = NULL;
        return EDGE_ERR_NOMEM;
    }
    sprintf(url, "%s%s", n->base, u->health_path);
    curl_easy_setopt(n->check, CURLOPT_URL, url);
    free(url);
    n->kind = XFER_CHECK;
    curl_easy_setopt(n->check, CURLOPT_PRIVATE, &n->kind);
    curl_easy_setopt(n->check, CURLOPT_HTTP_VERSION, n->http_version);
    curl_easy_setopt(n->check, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(n->check, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(n->check, CURLOPT_PIPEWAIT, n->no_reuse ? 0L : 1L);
    curl_easy_setopt(n->check, CURLOPT_FRESH_CONNECT, (long)n->no_reuse);
    curl_easy_setopt(n->check, CURLOPT_FORBID_REUSE, (long)n->no_reuse);
    curl_easy_setopt(n->check, CURLOPT_CONNECTTIMEOUT_MS, (long)u->cfg.connect_timeout_ms);
    curl_easy_setopt(n->check, CURLOPT_TIMEOUT_MS, (long)u->cfg.health_timeout_ms);
    curl_easy_setopt(n->check, CURLOPT_WRITEFUNCTION, on_check_body);
    curl_easy_setopt(n->check, CURLOPT_ERRORBUFFER, n->check_err);
    return 0;
}

/* Takes a node out of u->nodes[] (the caller drops that reference): no more health checks. */
static void node_retire(edge_upstream_t *u, up_node_t *n)
{
    if (n->check_running)
        curl_multi_remove_handle(u->multi, n->check);
    n->check_running = 0;
    curl_easy_cleanup(n->check);
    n->check = NULL;
    n->configured = 0;
}

static int check_lists(const edge_upstream_config_t *cfg, char *err, size_t errlen)
{
    size_t total = cfg->n_origins + cfg->n_parents;
    if (total == 0 || total > EDGE_UPSTREAM_MAX) {
        set_err(err, errlen, total ? "too many upstreams" : "no upstream configured", NULL);
        return EDGE_ERR_INVAL;
    }
    return 0;
}

/*
 * Builds the node list cfg names, origins then parents, into out[] with one reference each: a
 * node of u->nodes[] with the same URL and role is taken as it is (its health state, counters
 * and check go on), any other is new, with its own check. On failure nothing changed and err
 * names the URL.
 */
static int nodes_build(edge_upstream_t *u, const edge_upstream_config_t *cfg, up_node_t **out,
                       char *err, size_t errlen)
{
    size_t total = cfg->n_origins + cfg->n_parents, n = 0;
    int rv = 0;
    for (; n < total; n++) {
        int parent = n >= cfg->n_origins;
        const char *url = parent ? cfg->parents[n - cfg->n_origins] : cfg->origins[n];
        url = url != NULL ? url : "";
        /* A URL listed twice: the second is a node of its own. */
        up_node_t *old = NULL;
        for (size_t i = 0; i < u->n_nodes && old == NULL; i++) {
            up_node_t *c = u->nodes[i];
            if (c->is_parent == parent && strcmp(c->url, url) == 0 && !node_in(out, n, c))
                old = c;
        }
        if (old != NULL) {
            out[n] = node_ref(old);
            continue;
        }
        if ((rv = node_new(&out[n], url, parent, u->cfg.http2_prior_knowledge)) != 0) {
            set_err(err, errlen,
                    rv == EDGE_ERR_NOMEM ? "out of memory"
                    : parent             ? "bad parent URL"
                                         : "bad origin URL",
                    url);
            goto fail;
        }
        if (u->cfg.health_interval_ms > 0 && (rv = check_init(u, out[n])) != 0) {
            set_err(err, errlen, rv == EDGE_ERR_NOMEM ? "out of memory" : "curl_easy_init failed",
                    NULL);
            node_unref(out[n]);
            goto fail;
        }
        if (out[n]->no_reuse)
            sw_log(SW_LOG_WARN, "upstream",
                   "%s: libcurl %s cannot reuse HTTP/2 prior-knowledge connections; one "
                   "connection per request (HTTP/1.1 keeps connections alive)",
                   url, curl_version_info(CURLVERSION_NOW)->version);
    }
    return 0;
fail:
    while (n-- > 0) {
        if (!out[n]->configured) {
            curl_easy_cleanup(out[n]->check);
            out[n]->check = NULL;
        }
        node_unref(out[n]);
    }
    return rv;
}

/* Makes nodes[0..n) (one reference each, taken over) the configured list; the previous nodes
 * that are not in it are retired, and fetches that still hold them keep them alive. */
static void nodes_install(edge_upstream_t *u, up_node_t **nodes, size_t n, size_t n_origins)
{
    for (size_t i = 0; i < u->n_nodes; i++) {
        if (!node_in(nodes, n, u->nodes[i]))
            node_retire(u, u->nodes[i]);
        node_unref(u->nodes[i]);
    }
    for (size_t i = 0; i < n; i++) {
        up_node_t *nd = nodes[i];
        u->nodes[i] = nd;
        nd->idx = i;
        nd->configured = 1;
        if (i >= n_origins) {
            u->parent_hash[i - n_origins] = nd->hash;
            u->parent_up[i - n_origins] = (unsigned char)nd->healthy;
        }
    }
    u->n_nodes = n;
    u->n_origins = n_origins;
    u->st.n_upstreams = n;
    u->gen++;
}

/* ---- public API ---------------------------------------------------------------------------- */

int edge_upstream_new(edge_upstream_t **out, uv_loop_t *loop, const edge_upstream_config_t *cfg,
                      char *err, size_t errlen)
{
    edge_upstream_t *u;
    up_node_t *nodes[EDGE_UPSTREAM_MAX];
    int rv;

    if ((rv = check_lists(cfg, err, errlen)) != 0)
        goto fail;
    if (cfg->connect_timeout_ms == 0 || cfg->first_byte_timeout_ms == 0 ||
        cfg->total_timeout_ms == 0 || cfg->max_fetches == 0 ||
        (cfg->health_interval_ms > 0 && (cfg->health_fails == 0 || cfg->health_timeout_ms == 0 ||
                                         cfg->health_path == NULL || cfg->health_path[0] != '/'))) {
        set_err(err, errlen, "zero timeout or limit, or bad health_path", NULL);
        rv = EDGE_ERR_INVAL;
        goto fail;
    }
    rv = EDGE_ERR_NOMEM;
    if ((u = calloc(1, sizeof(*u))) == NULL) {
        set_err(err, errlen, "out of memory", NULL);
        goto fail;
    }
    u->loop = loop;
    u->cfg = *cfg;
    u->cfg.origins = u->cfg.parents = NULL;
    if ((u->health_path = strdup(cfg->health_path ? cfg->health_path : "/healthz")) == NULL) {
        set_err(err, errlen, "out of memory", NULL);
        goto fail_u;
    }
    u->cfg.health_path = u->health_path;
    if (cfg->parent_header != NULL &&
        (u->parent_header = curl_slist_append(NULL, cfg->parent_header)) == NULL) {
        set_err(err, errlen, "out of memory", NULL);
        goto fail_path;
    }
    u->cfg.parent_header = NULL;
    rv = EDGE_ERR_UPSTREAM;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        set_err(err, errlen, "curl_global_init failed", NULL);
        goto fail_header;
    }
    if ((u->multi = curl_multi_init()) == NULL) {
        set_err(err, errlen, "curl_multi_init failed", NULL);
        goto fail_global;
    }
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->max_host_conns);
    curl_multi_setopt(u->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)cfg->max_streams);
    if ((rv = nodes_build(u, cfg, nodes, err, errlen)) != 0)
        goto fail_multi;
    nodes_install(u, nodes, cfg->n_origins + cfg->n_parents, cfg->n_origins);
    uv_timer_init(loop, &u->timer);
    uv_timer_init(loop, &u->health_timer);
    u->timer.data = u->health_timer.data = u;
    u->open_handles = 2;
    if (cfg->health_interval_ms > 0)
        uv_timer_start(&u->health_timer, on_health_timer, 0, cfg->health_interval_ms);
    *out = u;
    return 0;

fail_multi:
    curl_multi_cleanup(u->multi);
fail_global:
    curl_global_cleanup();
fail_header:
    curl_slist_free_all(u->parent_header);
fail_path:
    free(u->health_path);
fail_u:
    free(u);
fail:
    return rv;
}

int edge_upstream_reconfigure(edge_upstream_t *u, const edge_upstream_config_t *cfg, char *err,
                              size_t errlen)
{
    up_node_t *nodes[EDGE_UPSTREAM_MAX];
    int rv;

    if (u->closing || u->close_requested || u->depth > 0 || u->in_curl > 0) {
        set_err(err, errlen, "closing, or called from a callback", NULL);
        return EDGE_ERR_STATE;
    }
    if ((rv = check_lists(cfg, err, errlen)) != 0 ||
        (rv = nodes_build(u, cfg, nodes, err, errlen)) != 0)
        return rv;
    nodes_install(u, nodes, cfg->n_origins + cfg->n_parents, cfg->n_origins);
    return 0;
}

const char *edge_upstream_pick(edge_upstream_t *u, const char *key)
{
    up_node_t *c[EDGE_UPSTREAM_MAX + 1];
    order(u, key, 0, NULL, c); /* never empty: there is always an upstream */
    return c[0]->url;
}

/* Sets f->located from a located origin URL: a configured origin with the same base (with its
 * health state and pooled connections), else a node of its own. */
static int set_located(edge_upstream_t *u, edge_fetch_t *f, const char *url)
{
    int rv = node_new(&f->located, url, 0, u->cfg.http2_prior_knowledge);
    if (rv != 0)
        return rv;
    for (size_t i = 0; i < u->n_origins; i++) {
        if (strcmp(u->nodes[i]->base, f->located->base) == 0) {
            node_unref(f->located);
            f->located = node_ref(u->nodes[i]);
            break;
        }
    }
    return 0;
}

int edge_fetch_start(edge_upstream_t *u, const char *path_and_query, const char *hash_key,
                     const edge_fetch_cbs_t *cbs, void *data, edge_fetch_t **out)
{
    edge_fetch_opts_t o = {.hash_key = hash_key};
    return edge_fetch_start_opts(u, path_and_query, &o, cbs, data, out);
}

int edge_fetch_start_opts(edge_upstream_t *u, const char *path_and_query,
                          const edge_fetch_opts_t *opts, const edge_fetch_cbs_t *cbs, void *data,
                          edge_fetch_t **out)
{
    static const edge_fetch_opts_t no_opts;
    edge_fetch_t *f;
    int rv;

    if (opts == NULL)
        opts = &no_opts;
    if (path_and_query == NULL || path_and_query[0] != '/' || cbs == NULL || cbs->on_head == NULL ||
        cbs->on_done == NULL)
        return EDGE_ERR_INVAL;
    if (u->closing || u->close_requested)
        return EDGE_ERR_STATE;
    if (u->st.in_flight >= u->cfg.max_fetches)
        return EDGE_ERR_TOO_BIG;
    rv = EDGE_ERR_NOMEM;
    if ((f = calloc(1, sizeof(*f))) == NULL)
        goto fail;
    f->kind = XFER_FETCH;
    f->u = u;
    f->cbs = *cbs;
    f->data = data;
    f->origins_only = opts->origins_only != 0;
    if ((f->path = strdup(path_and_query)) == NULL)
        goto fail_f;
    if (opts->hash_key != NULL && (f->key = strdup(opts->hash_key)) == NULL)
        goto fail_path;
    if (opts->located != NULL && (rv = set_located(u, f, opts->located)) != 0)
        goto fail_key;
    up_node_t *c[EDGE_UPSTREAM_MAX + 1];
    f->n_cand = order(u, fetch_key(f), f->origins_only, f->located, c);
    f->gen = u->gen;
    rv = EDGE_ERR_INVAL; /* origins_only with parents alone */
    if (f->n_cand == 0)
        goto fail_loc;
    rv = EDGE_ERR_NOMEM;
    if ((f->easy = curl_easy_init()) == NULL)
        goto fail_loc;
    for (size_t i = 0; i < f->n_cand; i++)
        f->cand[i] = node_ref(c[i]);
    CURL *e = f->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, f);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)u->cfg.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)u->cfg.total_timeout_ms);
    if (u->cfg.low_speed_time_s > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)u->cfg.low_speed_time_s);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, (long)u->cfg.low_speed_bytes);
    }
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    uv_timer_init(u->loop, &f->fb_timer);
    f->fb_timer.data = u;
    u->open_handles++;
    if ((f->next = u->fetches) != NULL)
        f->next->prev = f;
    u->fetches = f;
    u->st.in_flight++;
    if (u->in_curl > 0) {
        f->pending = 1; /* libcurl cannot be re-entered from its callbacks */
        u->n_pending++;
    } else if ((rv = attempt(f)) != 0) {
        fetch_free(f); /* no callback: the caller sees the error */
        return rv;
    }
    u->st.started++;
    if (out != NULL)
        *out = f;
    return 0;

fail_loc:
    node_unref(f->located);
fail_key:
    free(f->key);
fail_path:
    free(f->path);
fail_f:
    free(f);
fail:
    return rv;
}

void edge_fetch_cancel(edge_fetch_t *f)
{
    if (f == NULL || f->done || f->canceled)
        return;
    edge_upstream_t *u = f->u;
    f->canceled = 1;
    retire(f);
    u->st.cancelled++;
    if (u->in_curl > 0 || u->depth > 0) {
        u->n_canceled++; /* freed in leave() */
        return;
    }
    detach(f);
    if (f->pending)
        u->n_pending--;
    fetch_free(f);
}

static void do_close(edge_upstream_t *u)
{
    u->depth++;
    /* Fetches end first, while the multi still exists; their callbacks may start nothing new. */
    for (edge_fetch_t *f = u->fetches, *next; f != NULL; f = next) {
        next = f->next;
        detach(f);
        if (f->canceled || f->done) {
            fetch_free(f);
        } else {
            f->pending = 0;
            snprintf(f->reason, sizeof(f->reason), "%s: closing", f->path);
            u->st.errors[EDGE_UPERR_OTHER]++;
            f->done = 1;
            retire(f);
            u->st.failed++;
            f->cbs.on_done(f->data, EDGE_ERR_STATE, f->reason);
            fetch_free(f);
        }
        next = u->fetches; /* callbacks may have cancelled others */
    }
    u->n_canceled = u->n_pending = 0;
    u->closing = 1;
    /* Every fetch has let go of its nodes: the list's references are the last. */
    for (size_t i = 0; i < u->n_nodes; i++) {
        node_retire(u, u->nodes[i]);
        node_unref(u->nodes[i]);
    }
    u->n_nodes = 0;
    curl_multi_cleanup(u->multi);
    u->multi = NULL;
    while (u->socks != NULL)
        sock_close(u, u->socks);
    curl_slist_free_all(u->parent_header);
    u->parent_header = NULL;
    uv_close((uv_handle_t *)&u->health_timer, on_handle_closed);
    uv_close((uv_handle_t *)&u->timer, on_handle_closed);
    u->depth--;
}

void edge_upstream_close(edge_upstream_t *u, void (*on_closed)(void *data), void *data)
{
    if (u == NULL || u->close_requested)
        return;
    u->close_requested = 1;
    u->on_closed = on_closed;
    u->closed_data = data;
    if (u->depth == 0 && u->in_curl == 0)
        do_close(u);
}

void edge_upstream_free(edge_upstream_t *u)
{
    edge_upstream_close(u, NULL, NULL);
}

void edge_upstream_stats(const edge_upstream_t *u, edge_upstream_stats_t *out)
{
    *out = u->st;
}

int edge_upstream_node_stats(const edge_upstream_t *u, size_t i, edge_upstream_node_stats_t *out)
{
    if (i >= u->n_nodes)
        return EDGE_ERR_INVAL;
    *out = u->nodes[i]->st;
    return 0;
}
