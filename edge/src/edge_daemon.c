/*
 * edge_daemon.c: the edge process. One cache for the process; the overlay (when redis is set) on
 * the caller's loop, so that there is one Redis reader per edge; and the workers, one thread and
 * one loop each, whose HTTP servers listen on the same addresses with SO_REUSEPORT so that the
 * kernel spreads connections over them.
 *
 * The daemon's loop talks to a worker through the worker's `cmd` async handle and a few fields
 * under the daemon's mutex: a reload is handed over and waited for (a worker never waits for the
 * daemon's loop, so the wait is short and cannot deadlock), a stop is only asked for. A worker
 * whose loop has ended says so through the daemon's `done` async handle; once all have, the
 * daemon joins them, closes the overlay and reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge.h"
#include "edge_daemon.h"
#include "edge_int.h"
#include "sw/log.h"
#include "sw/str.h"

enum { W_STARTING = 0, W_READY, W_FAILED };

typedef struct worker {
    edge_daemon_t *d;
    unsigned index;
    uv_thread_t thread;
    int started; /* the thread was created */
    uv_loop_t loop;
    uv_async_t cmd;     /* wakes the worker for a reload or a stop */
    edge_server_t *srv; /* the worker thread's */
    int stopping;       /* the worker thread's: shutdown began */
    /* under d->mu */
    int state;
    int stop;                    /* asked to stop */
    const edge_config_t *reload; /* a reload to apply, or NULL */
    edge__reload_t rl;           /* how, and what became of the upstream lists */
    int reload_done, reload_rv;
    char err[512];
} worker_t;

struct edge_daemon {
    uv_loop_t *loop;
    edge_config_t *cfg; /* the one the workers read; ours */
    edge__shared_t sh;
    worker_t *w;
    unsigned n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uv_async_t done; /* a worker's loop has ended */
    unsigned n_done; /* under mu */
    int joined;
    int stopping;
    char *restart_keys;      /* the running values of what a reload cannot change */
    char *origins, *parents; /* the running upstream lists, as "URL, URL" for the log */
    void (*on_closed)(void *data);
    void *closed_data;
};

unsigned edge_default_workers(void)
{
    unsigned n = uv_available_parallelism(); /* the affinity mask on Linux */
    return n > 0 ? n : 1;
}

/* ---- on a worker's thread ------------------------------------------------------------------ */

static void on_server_closed(void *data)
{
    worker_t *w = data;
    uv_close((uv_handle_t *)&w->cmd, NULL);
}

static void on_cmd(uv_async_t *h)
{
    worker_t *w = h->data;
    edge_daemon_t *d = w->d;
    char err[512] = "";

    pthread_mutex_lock(&d->mu);
    const edge_config_t *cfg = w->reload;
    edge__reload_t rl = w->rl;
    int stop = w->stop && !w->stopping;
    w->reload = NULL;
    pthread_mutex_unlock(&d->mu);
    if (cfg != NULL) {
        int rv = edge__server_reload(w->srv, cfg, &rl, err, sizeof(err));
        pthread_mutex_lock(&d->mu);
        w->rl = rl;
        w->reload_rv = rv;
        snprintf(w->err, sizeof(w->err), "%s", err);
        w->reload_done = 1;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
    }
    if (stop) {
        w->stopping = 1;
        edge__server_shutdown(w->srv, on_server_closed, w);
    }
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    edge_daemon_t *d = w->d;
    char err[512] = "cannot create the event loop";
    int rv = uv_loop_init(&w->loop), have_loop = rv == 0;

    /* cmd after the server: a failing edge__server_new() runs the loop until it is empty. The
     * daemon only wakes a worker that said it is ready. */
    if (have_loop && (rv = edge__server_new(&w->srv, &w->loop, d->cfg, &d->sh, w->index, err,
                                            sizeof(err))) == 0) {
        uv_async_init(&w->loop, &w->cmd, on_cmd);
        w->cmd.data = w;
    }
    pthread_mutex_lock(&d->mu);
    w->state = rv == 0 ? W_READY : W_FAILED;
    snprintf(w->err, sizeof(w->err), "%s", err);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (have_loop) {
        uv_run(&w->loop, UV_RUN_DEFAULT); /* until the server and cmd have closed */
        edge__server_free(w->srv);
        uv_loop_close(&w->loop);
    }
    pthread_mutex_lock(&d->mu);
    d->n_done++;
    pthread_mutex_unlock(&d->mu);
    uv_async_send(&d->done);
}

/* ---- on the daemon's loop ------------------------------------------------------------------ */

static void ask_stop(edge_daemon_t *d)
{
    for (unsigned i = 0; i < d->n; i++) {
        worker_t *w = &d->w[i];
        pthread_mutex_lock(&d->mu);
        int ready = w->state == W_READY;
        w->stop = 1;
        pthread_mutex_unlock(&d->mu);
        if (ready)
            uv_async_send(&w->cmd);
    }
}

static void join_all(edge_daemon_t *d)
{
    for (unsigned i = 0; i < d->n; i++)
        if (d->w[i].started)
            uv_thread_join(&d->w[i].thread);
    d->joined = 1;
}

static void on_overlay_closed(void *data)
{
    edge_daemon_t *d = data;
    if (d->on_closed != NULL)
        d->on_closed(d->closed_data);
}

static void on_done_closed(uv_handle_t *h)
{
    edge_daemon_t *d = h->data;
    /* Workers hand connections to the overlay: it closes after the last of them. */
    if (d->sh.overlay != NULL)
        edge_overlay_close(d->sh.overlay, on_overlay_closed, d);
    else
        on_overlay_closed(d);
}

static void on_done(uv_async_t *h)
{
    edge_daemon_t *d = h->data;
    pthread_mutex_lock(&d->mu);
    int all = d->n_done == d->n;
    pthread_mutex_unlock(&d->mu);
    if (!all || d->joined || !d->stopping)
        return;
    /* Each has ended its loop; joining also waits out its last uv_async_send() on `done`. */
    join_all(d);
    uv_close((uv_handle_t *)&d->done, on_done_closed);
}

/* The redis URL for the log: a password in it becomes "***". */
static const char *redis_shown(const char *url, char *buf, size_t len)
{
    const char *at = url != NULL ? strchr(url, '@') : NULL, *scheme;
    if (url == NULL)
        return "";
    if (at == NULL || (scheme = strstr(url, "://")) == NULL || scheme > at)
        return url;
    snprintf(buf, len, "%.*s***%s", (int)(scheme + 3 - url), url, at);
    return buf;
}

/* The settings only a restart applies, one "name=value" line each, so that a reload can name
 * those that changed. */
static char *restart_keys(const edge_config_t *c)
{
    sw_str_t b;
    sw_str_init(&b);
    sw_str_printf(&b, "listen=%s\ntls_listen=%s\nworkers=%lld\ncache_size=%lld\ncache_policy=%s\n",
                  c->listen ? c->listen : "", c->tls_listen ? c->tls_listen : "",
                  (long long)c->workers, (long long)c->cache_size,
                  c->cache_policy == EDGE_POLICY_S3FIFO ? "s3fifo" : "lru");
    sw_str_printf(&b,
                  "[http] max_connections=%lld\n[http] max_header_bytes=%lld\n"
                  "[http] max_streams=%lld\n[http] idle_timeout=%lld\n"
                  "[http] header_timeout=%lld\n[http] send_timeout=%lld\n"
                  "[http] drain_timeout=%lld\n[http] notsent_lowat=%lld\n",
                  (long long)c->max_connections, (long long)c->max_header_bytes,
                  (long long)c->max_streams, (long long)c->idle_timeout_ms,
                  (long long)c->header_timeout_ms, (long long)c->send_timeout_ms,
                  (long long)c->drain_timeout_ms, (long long)c->notsent_lowat);
    /* The overlay is built once, from these. The token key is named by a hash, not written. */
    const char *tk = c->overlay_token_key;
    char rbuf[256];
    sw_str_printf(&b,
                  "redis=%s\nedge_name=%s\noverlay_allowed_origins=%s\noverlay_token_key=#%016llx\n"
                  "overlay_max_message=%lld\noverlay_send_queue=%lld\noverlay_cart_rate=%lld\n"
                  "overlay_cart_burst=%lld\noverlay_cart_maxlen=%lld\noverlay_max_viewers=%lld\n"
                  "overlay_max_rooms=%lld\n",
                  redis_shown(c->redis, rbuf, sizeof(rbuf)), c->edge_name ? c->edge_name : "",
                  c->overlay_allowed_origins ? c->overlay_allowed_origins : "",
                  tk ? (unsigned long long)edge__hash(tk, strlen(tk)) : 0ULL,
                  (long long)c->overlay_max_message, (long long)c->overlay_send_queue,
                  (long long)c->overlay_cart_rate, (long long)c->overlay_cart_burst,
                  (long long)c->overlay_cart_maxlen, (long long)c->overlay_max_viewers,
                  (long long)c->overlay_max_rooms);
    if (b.failed) {
        sw_str_dispose(&b);
        return NULL;
    }
    return b.p;
}

/* Logs each line of `now` missing from `before`: a setting that changed (or, with `verb`
 * "removed", went away) and waits for a restart. */
static void log_restart_needed(const char *before, const char *now, const char *verb)
{
    for (const char *l = now; *l != '\0';) {
        size_t n = strcspn(l, "\n");
        int found = 0;
        for (const char *m = before; *m != '\0' && !found;) {
            size_t k = strcspn(m, "\n");
            found = k == n && memcmp(l, m, n) == 0;
            m += k + (m[k] == '\n');
        }
        if (!found)
            sw_log(SW_LOG_WARN, "edge", "reload: %s %.*s needs a restart; the running value stays",
                   verb, (int)n, l);
        l += n + (l[n] == '\n');
    }
}

/* An upstream list as the log shows it: "URL, URL", or "none". */
static char *list_text(char *const *urls, size_t n)
{
    sw_str_t b;
    sw_str_init(&b);
    for (size_t i = 0; i < n; i++)
        sw_str_printf(&b, "%s%s", i ? ", " : "", urls[i]);
    if (n == 0)
        sw_str_puts(&b, "none");
    if (b.failed) {
        sw_str_dispose(&b);
        return NULL;
    }
    return b.p;
}

/* Hands `cfg` to worker `w` and waits until its thread has applied it as `rl` says; `rl` then
 * holds what became of the upstream lists. */
static int reload_worker(edge_daemon_t *d, worker_t *w, const edge_config_t *cfg,
                         edge__reload_t *rl, char *err, size_t errlen)
{
    pthread_mutex_lock(&d->mu);
    w->reload = cfg;
    w->rl = *rl;
    w->reload_done = 0;
    pthread_mutex_unlock(&d->mu);
    uv_async_send(&w->cmd);
    pthread_mutex_lock(&d->mu);
    while (!w->reload_done)
        pthread_cond_wait(&d->cv, &d->mu);
    int rv = w->reload_rv;
    if (rv != 0)
        snprintf(err, errlen, "%s", w->err);
    *rl = w->rl;
    pthread_mutex_unlock(&d->mu);
    return rv;
}

/* Logs the upstream lists that a reload changed, and keeps them as the running ones. Takes
 * ownership of `origins` and `parents`. */
static void note_upstreams(edge_daemon_t *d, char *origins, char *parents)
{
    if (strcmp(origins, d->origins) != 0)
        sw_log(SW_LOG_INFO, "edge", "reload: origins now %s", origins);
    if (strcmp(parents, d->parents) != 0)
        sw_log(SW_LOG_INFO, "edge", "reload: parents now %s", parents);
    free(d->origins);
    free(d->parents);
    d->origins = origins;
    d->parents = parents;
}

int edge_daemon_reload(edge_daemon_t *d, edge_config_t *cfg, char *err, size_t errlen)
{
    int rv;
    if (d->stopping) {
        snprintf(err, errlen, "shutting down");
        return EDGE_ERR_STATE;
    }
    if ((rv = edge_config_check(cfg, err, errlen)) != 0)
        return rv;
    char *keys = restart_keys(cfg);
    char *origins = list_text(cfg->origins, cfg->n_origins);
    char *parents = list_text(cfg->parents, cfg->n_parents);
    if (keys == NULL || origins == NULL || parents == NULL) {
        snprintf(err, errlen, "out of memory");
        rv = EDGE_ERR_NOMEM;
        goto out;
    }
    /* The first worker finds a bad file before anything changed anywhere; the others load the
     * same files, and one that still fails keeps its previous certificate or log. The first
     * worker also decides on the upstream lists: if it refuses them (a bad URL), the others are
     * not asked, so that every worker keeps fetching from the same upstreams. */
    int upstreams = 1;
    for (unsigned i = 0; i < d->n; i++) {
        char werr[512];
        edge__reload_t rl = {.strict = i == 0, .upstreams = upstreams};
        rv = reload_worker(d, &d->w[i], cfg, &rl, werr, sizeof(werr));
        if (rv != 0 && i == 0) {
            snprintf(err, errlen, "%s", werr);
            goto out;
        }
        if (rv != 0)
            sw_log(SW_LOG_ERROR, "edge", "reload: worker %u: %s; it keeps the previous one", i,
                   werr);
        if (upstreams && !rl.upstreams && i == 0)
            sw_log(SW_LOG_ERROR, "edge",
                   "reload: origin/parent list refused: %s; the running one stays (origins %s; "
                   "parents %s)",
                   rl.up_err, d->origins, d->parents);
        else if (upstreams && !rl.upstreams)
            sw_log(SW_LOG_ERROR, "edge",
                   "reload: worker %u: %s; it keeps its previous origins and parents", i,
                   rl.up_err);
        if (i == 0)
            upstreams = rl.upstreams;
    }
    if (upstreams) {
        note_upstreams(d, origins, parents);
        origins = parents = NULL;
    }
    log_restart_needed(d->restart_keys, keys, "new");
    log_restart_needed(keys, d->restart_keys, "removed");
    /* d->restart_keys keeps the running values: the next reload compares with what is in
     * effect, not with this file. */
    sw_log_set_level(cfg->log_level);
    sw_log(SW_LOG_INFO, "edge",
           "reloaded: %u worker(s), %s, %zu signed-URL prefix(es), access log %s, log level %d",
           d->n, cfg->tls_listen ? "certificate reloaded" : "no TLS", cfg->n_protect,
           cfg->access_log ? cfg->access_log : "off", cfg->log_level);
    /* Every worker has switched to `cfg` on its own thread: none reads the old one now. */
    edge_config_dispose(d->cfg);
    free(d->cfg);
    d->cfg = cfg;
    rv = 0;
out:
    free(keys);
    free(origins);
    free(parents);
    return rv;
}

void edge_daemon_shutdown(edge_daemon_t *d, void (*on_closed)(void *data), void *data)
{
    d->stopping = 1;
    d->on_closed = on_closed;
    d->closed_data = data;
    ask_stop(d);
    on_done(&d->done); /* in case every worker has ended already */
}

static void shared_dispose(edge__shared_t *sh)
{
    for (unsigned i = 0; sh->workers != NULL && i < sh->n_workers; i++)
        pthread_mutex_destroy(&sh->workers[i].mu);
    free(sh->workers);
    edge_web_free(sh->web);
    edge_cache_free(sh->cache);
}

static int shared_init(edge__shared_t *sh, const edge_config_t *cfg, unsigned n)
{
    edge_cache_config_t cc;
    memset(sh, 0, sizeof(*sh));
    edge_cache_config_init(&cc);
    cc.budget_bytes = (size_t)cfg->cache_size;
    cc.policy = (edge_policy_kind_t)cfg->cache_policy;
    if (cc.max_object_bytes > cc.budget_bytes / 4)
        cc.max_object_bytes = cc.budget_bytes / 4;
    int rv = edge_cache_new(&sh->cache, &cc);
    if (rv != 0)
        return rv;
    if ((sh->workers = calloc(n, sizeof(*sh->workers))) == NULL)
        goto fail;
    for (; sh->n_workers < n; sh->n_workers++) {
        if (pthread_mutex_init(&sh->workers[sh->n_workers].mu, NULL) != 0)
            goto fail;
    }
    return 0;
fail:
    shared_dispose(sh);
    return EDGE_ERR_NOMEM;
}

int edge_daemon_new(edge_daemon_t **out, uv_loop_t *loop, edge_config_t *cfg, char *err,
                    size_t errlen)
{
    edge_daemon_t *d;
    int rv;

    if ((rv = edge_config_check(cfg, err, errlen)) != 0)
        return rv;
    rv = EDGE_ERR_NOMEM;
    snprintf(err, errlen, "out of memory");
    if ((d = calloc(1, sizeof(*d))) == NULL)
        goto fail;
    d->loop = loop;
    d->cfg = cfg;
    d->n = cfg->workers > 0 ? (unsigned)cfg->workers : edge_default_workers();
    if ((d->w = calloc(d->n, sizeof(*d->w))) == NULL)
        goto fail_daemon;
    if ((d->restart_keys = restart_keys(cfg)) == NULL ||
        (d->origins = list_text(cfg->origins, cfg->n_origins)) == NULL ||
        (d->parents = list_text(cfg->parents, cfg->n_parents)) == NULL)
        goto fail_keys;
    if ((rv = shared_init(&d->sh, cfg, d->n)) != 0) {
        snprintf(err, errlen, "cache: %s", edge_strerror(rv));
        goto fail_keys;
    }
    if ((rv = edge_web_open(&d->sh.web, cfg->web_root, err, errlen)) != 0)
        goto fail_shared;
    rv = EDGE_ERR_NOMEM;
    snprintf(err, errlen, "out of memory");
    if (pthread_mutex_init(&d->mu, NULL) != 0)
        goto fail_shared;
    if (pthread_cond_init(&d->cv, NULL) != 0)
        goto fail_mutex;
    if (cfg->redis != NULL &&
        (rv = edge__overlay_open(&d->sh.overlay, loop, cfg, err, errlen)) != 0)
        goto fail_cond;
    uv_async_init(loop, &d->done, on_done);
    d->done.data = d;
    for (unsigned i = 0; i < d->n; i++) {
        worker_t *w = &d->w[i];
        w->d = d;
        w->index = i;
        if (uv_thread_create(&w->thread, worker_main, w) != 0) {
            w->state = W_FAILED;
            snprintf(w->err, sizeof(w->err), "cannot start worker thread %u", i);
            pthread_mutex_lock(&d->mu);
            d->n_done++;
            pthread_mutex_unlock(&d->mu);
            continue;
        }
        w->started = 1;
    }
    const char *why = NULL;
    pthread_mutex_lock(&d->mu);
    for (unsigned i = 0; i < d->n; i++) {
        while (d->w[i].state == W_STARTING)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->w[i].state == W_FAILED && why == NULL)
            why = d->w[i].err;
    }
    pthread_mutex_unlock(&d->mu);
    if (why != NULL) {
        snprintf(err, errlen, "%s", why);
        rv = EDGE_ERR_INVAL;
        ask_stop(d);
        join_all(d);
        uv_close((uv_handle_t *)&d->done, NULL);
        if (d->sh.overlay != NULL)
            edge_overlay_close(d->sh.overlay, NULL, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        edge_overlay_free(d->sh.overlay);
        goto fail_cond;
    }
    sw_log(SW_LOG_INFO, "edge",
           "listening on %s%s%s with %u worker(s), %zu origin(s), %zu parent(s), cache %lld bytes",
           cfg->listen, cfg->tls_listen ? " and TLS " : "", cfg->tls_listen ? cfg->tls_listen : "",
           d->n, cfg->n_origins, cfg->n_parents, (long long)cfg->cache_size);
    *out = d;
    return 0;
fail_cond:
    pthread_cond_destroy(&d->cv);
fail_mutex:
    pthread_mutex_destroy(&d->mu);
fail_shared:
    shared_dispose(&d->sh);
fail_keys:
    free(d->origins);
    free(d->parents);
    free(d->restart_keys);
    free(d->w);
fail_daemon:
    free(d);
fail:
    return rv;
}

void edge_daemon_free(edge_daemon_t *d)
{
    if (d == NULL)
        return;
    if (!d->joined)
        join_all(d);
    /* Last: no thread uses the cache any more. */
    shared_dispose(&d->sh);
    edge_overlay_free(d->sh.overlay);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    edge_config_dispose(d->cfg);
    free(d->cfg);
    free(d->restart_keys);
    free(d->origins);
    free(d->parents);
    free(d->w);
    free(d);
}
