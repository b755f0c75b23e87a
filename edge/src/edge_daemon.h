/*
 * edge_daemon.h: internals of the daemon layer (edge_daemon.c, edge_server.c, edge_conf.c):
 * what the workers share, one worker's server (with its access log, sw/alog.h) and the admin
 * address list. Never included from outside edge/src/.
 */
#ifndef EDGE_DAEMON_H
#define EDGE_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "edge/cache.h"
#include "edge/edge.h"
#include "edge/overlay.h"
#include "edge/upstream.h"
#include "edge/web.h"
#include "sw/alog.h"
#include "sw/http.h"

/* ---- what the workers share (edge_daemon.c) ---- */

#define EDGE__N_TTFB 13 /* upstream time-to-first-byte buckets, +Inf not counted */

/* Counters every worker adds to at once: relaxed atomics, so /metrics on any worker reads them
 * current, with no lock on the request path. */
typedef struct edge__stats {
    atomic_uint_fast64_t requests[3][6]; /* protocol (1.0, 1.1, 2) x status class (0: other) */
    atomic_uint_fast64_t stale_served, upstream_502, purged, purge_requests, token_refused;
    atomic_uint_fast64_t not_forwarded; /* 404s for paths outside forward_prefixes */
    atomic_uint_fast64_t ttfb_buckets[EDGE__N_TTFB + 1]; /* the last one is +Inf */
    atomic_uint_fast64_t ttfb_count, ttfb_sum_us;
} edge__stats_t;

/* One worker's HTTP server and fetcher figures, which only its thread may read: it copies them
 * here at the end of each loop iteration (and before it answers /metrics) under `mu`. */
typedef struct edge__wstats {
    pthread_mutex_t mu;
    atomic_uint_fast64_t requests; /* received by this worker: current, not copied */
    sw_http_stats_t http;
    edge_upstream_stats_t up;
    size_t n_origins;                      /* the worker's origins, as its last reload left them */
    uint64_t origin_id[EDGE_UPSTREAM_MAX]; /* edge__hash() of each one's URL */
    unsigned char healthy[EDGE_UPSTREAM_MAX];
} edge__wstats_t;

typedef struct edge__shared {
    edge_cache_t *cache;
    edge_overlay_t *overlay; /* NULL without redis; runs on the daemon's loop */
    edge_web_t *web;         /* viewer pages, or NULL; read-only, so any worker reads it */
    edge__stats_t stats;
    edge__wstats_t *workers; /* n_workers */
    unsigned n_workers;
} edge__shared_t;

/* ---- one worker's server (edge_server.c) ---- */

typedef struct edge_server edge_server_t;

/**
 * Creates worker `index`'s server on `loop`, which must be the calling thread's: listeners with
 * SO_REUSEPORT, its own upstream fetcher, its waker on `sh->cache`; worker 0 also sweeps the
 * cache. Reads `cfg` as edge_daemon_new() says until edge__server_reload() switches it.
 * Returns 0, EDGE_ERR_INVAL, EDGE_ERR_NOMEM or EDGE_ERR_UPSTREAM, with err set.
 */
int edge__server_new(edge_server_t **out, uv_loop_t *loop, const edge_config_t *cfg,
                     edge__shared_t *sh, unsigned index, char *err, size_t errlen);

/* How a worker applies a reload (edge__server_reload()). */
typedef struct edge__reload {
    int strict;       /* in: any failure of the log or certificate changes nothing */
    int upstreams;    /* in: 1 to switch the fetcher to cfg's origins and parents; out: 0 if
                         they were refused, and the running ones stay */
    char up_err[256]; /* out: why they were refused, naming the URL */
} edge__reload_t;

/**
 * On the worker's thread: reopens the access log, reloads the certificate and switches to `cfg`.
 * With r->strict, any failure leaves everything as it was and is returned; otherwise the server
 * switches to `cfg` anyway and keeps the log or certificate that failed. Then, once switched and
 * if r->upstreams, it switches the fetcher to cfg's origins and parents: a refusal there (see
 * r->upstreams) leaves the rest of the reload applied and is not part of the return value.
 * Returns 0, EDGE_ERR_INVAL or EDGE_ERR_NOMEM, with err set.
 */
int edge__server_reload(edge_server_t *s, const edge_config_t *cfg, edge__reload_t *r, char *err,
                        size_t errlen);

/** Drains and closes (see edge_daemon_shutdown()); `on_closed(data)` once every handle is
 * closed. On the worker's thread. */
void edge__server_shutdown(edge_server_t *s, void (*on_closed)(void *data), void *data);

/** Frees a server after edge__server_shutdown() completed. NULL does nothing. */
void edge__server_free(edge_server_t *s);

/* ---- admin_allow (edge_conf.c) ---- */

/** Parses "127.0.0.1, ::1, 10.0.0.0/8" into `out` (at most `max`). Returns the count or -1. */
int edge__cidr_parse_list(const char *text, edge_cidr_t *out, size_t max);
/** 1 if the text address `ip` ("::1", "10.1.2.3") falls in one of the `n` entries, else 0. */
int edge__cidr_match(const edge_cidr_t *list, size_t n, const char *ip);

/* ---- forward_prefixes (edge_conf.c, edge_server.c) ---- */

/**
 * Parses "/live/, /shorts/" (commas or blanks between) into `out` (at most `max`). Returns the
 * count (at least 1), or -1 with *err set to a static reason: too many, one not starting with
 * '/', longer than EDGE_FORWARD_MAX_LEN, or holding '?', '#', '\\' or "//" (never in the path of
 * a normalized key, so such a prefix could never match) or '%' (a prefix is written decoded).
 */
int edge__forward_parse_list(const char *text, edge_prefix_t *out, size_t max, const char **err);

/**
 * 1 if the normalized cache key `key` (edge_key_normalize()) is under one of the `n` prefixes
 * (edge_prefix_t says how one matches), else 0. A few compares, no allocation: it runs on every
 * request that reaches the cache.
 */
static inline int edge__forwarded(const edge_prefix_t *list, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = list[i].s;
        size_t l = list[i].len, j = 0;
        /* A byte loop rather than strncmp(): a prefix is a few bytes, fewer instructions than
         * the call. It stops at the key's NUL, which no prefix holds. */
        while (j < l && key[j] == p[j])
            j++;
        if (j < l)
            continue;
        char next = key[l];
        if (list[i].s[l - 1] == '/' || next == '\0' || next == '/' || next == '?')
            return 1;
    }
    return 0;
}

#endif
