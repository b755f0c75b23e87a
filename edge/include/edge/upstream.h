/*
 * edge/upstream.h: fetches objects from Shortwave origins (or parent edges) over HTTP/1.1 or
 * HTTP/2, on the caller's libuv loop.
 *
 * One edge_upstream_t owns a libcurl multi handle driven by the loop (one uv_poll_t per socket,
 * one uv_timer_t), a pool of keep-alive connections, and optional health checks. Each
 * edge_fetch_t is one GET whose response is streamed to the caller as it arrives: on_head once
 * the status line and headers are complete, on_data for every piece libcurl reads (no
 * coalescing: LL-HLS parts must not wait), on_done exactly once.
 *
 * Choosing an upstream: parents (if any) come first, ordered by rendezvous (highest random
 * weight) hashing of the fetch's hash key, so that a fleet of edges sends each stream to the
 * same parent; then a located origin given with the fetch (edge_fetch_opts_t); then the
 * origins in configuration order (the first is the primary). Upstreams that failed `health_fails`
 * checks in a row are skipped until a check passes again; when every upstream is down, all are
 * tried anyway in the same order.
 *
 * Failover: a fetch whose upstream cannot be connected to, does not answer before the
 * first-byte timeout, fails before the headers are complete, or answers 5xx (when another
 * upstream is left to try) is retried on the next upstream without the caller noticing. Once
 * on_head has been called there is no retry: a later failure reaches on_done.
 *
 * Threads: everything here runs on the loop's thread, callbacks included.
 * Errors: the EDGE_ERR_* codes of edge/err.h.
 */
#ifndef EDGE_UPSTREAM_H
#define EDGE_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "edge/err.h"
#include "sw/rbuf.h"

typedef struct edge_upstream edge_upstream_t;
typedef struct edge_fetch edge_fetch_t;

/** Most upstreams (origins plus parents) one edge_upstream_t accepts. */
#define EDGE_UPSTREAM_MAX 64

typedef struct edge_upstream_config {
    /*
     * Base URLs, without a path: "http://127.0.0.1:8080", "https://origin.example:8443", or
     * "h2c://127.0.0.1:8080" (plain HTTP/2 with prior knowledge for that upstream only).
     * Copied by edge_upstream_new(). At least one origin or one parent is required.
     */
    const char *const *origins;
    size_t n_origins;
    const char *const *parents; /* parent edges, picked by rendezvous hashing; may be empty */
    size_t n_parents;
    int http2_prior_knowledge; /* 1: speak h2c to every http:// upstream (default 0: HTTP/1.1) */
    /*
     * "Name: value", sent with every fetch to a parent and with nothing else: the hop marker
     * that tells a parent edge to fetch from its origins, never from its own parents. Copied;
     * NULL (the default): no header.
     */
    const char *parent_header;

    uint32_t connect_timeout_ms;    /* TCP (and TLS) connect, per attempt (default 2000) */
    uint32_t first_byte_timeout_ms; /* request start to complete headers, per attempt; covers
                                       LL-HLS blocking requests, so keep it above the longest
                                       hold (default 10000) */
    uint32_t total_timeout_ms;      /* whole transfer, per attempt (default 60000) */
    uint32_t low_speed_time_s;      /* abort when fewer than low_speed_bytes per second arrive */
    uint32_t low_speed_bytes;       /*   for this many seconds (default 15 s, 1 byte/s) */

    uint32_t health_interval_ms; /* GET health_path on every upstream this often; 0 disables
                                    health checks (default 1000) */
    uint32_t health_fails;       /* consecutive failed checks that mark an upstream down
                                    (default 3); one passing check marks it up again */
    uint32_t health_timeout_ms;  /* per check (default 1000) */
    const char *health_path;     /* copied; any 2xx passes (default "/healthz") */

    uint32_t max_fetches;    /* fetches in flight at once; more get EDGE_ERR_TOO_BIG
                                (default 1024) */
    uint32_t max_host_conns; /* connections per upstream; further HTTP/1.1 requests wait
                                for a free one (default 16) */
    uint32_t max_streams;    /* concurrent HTTP/2 streams per connection (default 256) */
} edge_upstream_config_t;

/** Fills `cfg` with the defaults above and no upstreams. */
void edge_upstream_config_init(edge_upstream_config_t *cfg);

/**
 * Creates the fetcher on `loop` and starts health checks. Copies everything it keeps from `cfg`.
 * On failure writes a reason into err[0..errlen) (when err is not NULL).
 * Returns 0, EDGE_ERR_INVAL (no upstream, more than EDGE_UPSTREAM_MAX, a URL that is not
 * http://, https:// or h2c://HOST[:PORT], zero timeouts), EDGE_ERR_NOMEM, or EDGE_ERR_UPSTREAM
 * (libcurl could not be initialised). Loop thread only.
 */
int edge_upstream_new(edge_upstream_t **out, uv_loop_t *loop, const edge_upstream_config_t *cfg,
                      char *err, size_t errlen);

/**
 * Replaces the origins and parents with those of `cfg` (a reload); every other field of `cfg` is
 * ignored and stays as edge_upstream_new() set it. An upstream whose URL is in both lists, in the
 * same role, keeps its health state, counters and connections; a new one starts up and is checked
 * from the next health round; a removed one gets no more checks. Fetches in flight go on: one
 * that has reached an upstream finishes on it, removed or not, and one that fails over after the
 * change tries the new lists (minus what it already tried). On failure nothing changed and
 * err[0..errlen) names the URL ("bad origin URL: ...", "bad parent URL: ...").
 * Returns 0, EDGE_ERR_INVAL (as edge_upstream_new() for the lists), EDGE_ERR_NOMEM,
 * EDGE_ERR_UPSTREAM (libcurl could not make a handle) or EDGE_ERR_STATE (closing, or called from
 * inside a fetch callback). Loop thread only.
 */
int edge_upstream_reconfigure(edge_upstream_t *u, const edge_upstream_config_t *cfg, char *err,
                              size_t errlen);

/**
 * Starts closing: every fetch still running ends with on_done(EDGE_ERR_STATE, "closing") before
 * this returns, health checks stop, connections are closed. `on_closed(data)` (may be NULL) runs
 * from the loop once every handle is closed; `u` is freed right after it returns. May be called
 * from any fetch callback (the close then happens when that callback returns). Calling it twice
 * does nothing. Loop thread only; the loop must keep running until on_closed.
 */
void edge_upstream_close(edge_upstream_t *u, void (*on_closed)(void *data), void *data);

/** edge_upstream_close(u, NULL, NULL). NULL does nothing. */
void edge_upstream_free(edge_upstream_t *u);

/**
 * The base URL of the upstream a fetch with hash key `key` goes to first: the parent with the
 * highest rendezvous score among those up, else the first origin that is up (all down: as if
 * all were up). The string belongs to `u` and lives until the next edge_upstream_reconfigure()
 * or close. Never NULL. Loop thread.
 */
const char *edge_upstream_pick(edge_upstream_t *u, const char *key);

/** One response header. Names are lower-cased; both strings are NUL-terminated. */
typedef struct edge_header {
    const char *name;
    const char *value;
} edge_header_t;

typedef struct edge_fetch_cbs {
    /*
     * Called once, when the final status line and all headers have arrived (1xx responses are
     * skipped). `headers` and its strings are valid during the call only: copy what you keep.
     */
    void (*on_head)(void *data, int status, const edge_header_t *headers, size_t n_headers);
    /*
     * Called for every piece of body as libcurl reads it, in order, never with len 0. The call
     * owns one reference to `chunk` and drops it on return: take your own with sw_rbuf_ref()
     * to keep it. The bytes must not be modified. May be NULL (body discarded).
     */
    void (*on_data)(void *data, sw_rbuf_t *chunk);
    /*
     * Called exactly once, last, unless the fetch was cancelled. err is 0 when the response
     * (whatever its status) was received whole. Otherwise: EDGE_ERR_UPSTREAM (no upstream
     * answered: refused, timed out before the first byte, broken before the headers, or
     * every one answered 5xx and the last 5xx could not be delivered), EDGE_ERR_TRUNCATED
     * (failed after on_head: upstream died or stalled mid-body, total timeout), EDGE_ERR_NOMEM,
     * EDGE_ERR_TOO_BIG (response headers over 64 KiB), EDGE_ERR_STATE (edge_upstream_close()).
     * `reason` is a human-readable detail, valid during the call. on_head may not have been
     * called. The fetch is freed when on_done returns.
     */
    void (*on_done)(void *data, int err, const char *reason);
} edge_fetch_cbs_t;

/**
 * Starts `GET <upstream base><path_and_query>`. `path_and_query` must start with '/'; it is
 * copied. `hash_key` (may be NULL: the path is used) picks the parent, as edge_upstream_pick().
 * `cbs` is copied; on_head and on_done are required. `data` is passed to every callback.
 * No callback runs before this returns. *out (may be NULL) is valid until on_done returns or
 * edge_fetch_cancel() is called.
 * Returns 0 (then on_done will be called exactly once, unless cancelled), EDGE_ERR_INVAL,
 * EDGE_ERR_NOMEM, EDGE_ERR_TOO_BIG (max_fetches in flight) or EDGE_ERR_STATE (closing); on an
 * error no callback is ever called. Loop thread only; may be called from any callback.
 */
int edge_fetch_start(edge_upstream_t *u, const char *path_and_query, const char *hash_key,
                     const edge_fetch_cbs_t *cbs, void *data, edge_fetch_t **out);

/**
 * Abandons a fetch: no callback of it runs afterwards, its connection is closed or its HTTP/2
 * stream reset, and its memory is released (possibly later, from the loop). Safe from inside
 * any callback of this or another fetch; inside its own on_done it does nothing. Must not be
 * called after on_done returned. Loop thread only.
 */
void edge_fetch_cancel(edge_fetch_t *f);

/** Options of edge_fetch_start_opts(); zeroed (or NULL) is edge_fetch_start(u, path, NULL, ...). */
typedef struct edge_fetch_opts {
    const char *hash_key; /* picks the parent, as edge_upstream_pick(); NULL: the path */
    int origins_only;     /* 1: skip the parents (the request came from another edge) */
    /*
     * An origin base URL found for this object elsewhere (the origins' Redis registry): tried
     * after the parents and before the configured origins. If it is one of them, that origin
     * moves first; otherwise it gets no health checks. Copied; NULL: none.
     */
    const char *located;
} edge_fetch_opts_t;

/**
 * edge_fetch_start() with options (may be NULL). Returns what it does; EDGE_ERR_INVAL also for a
 * `located` URL that is not http://, https:// or h2c://HOST[:PORT], and for origins_only with
 * no origin configured or located. Loop thread only.
 */
int edge_fetch_start_opts(edge_upstream_t *u, const char *path_and_query,
                          const edge_fetch_opts_t *opts, const edge_fetch_cbs_t *cbs, void *data,
                          edge_fetch_t **out);

/** Kinds of upstreams, for edge_upstream_stats_t.attempts_by_kind[] and heads_by_kind[]. */
enum edge_upstream_kind {
    EDGE_UPKIND_ORIGIN = 0,  /* a configured origin */
    EDGE_UPKIND_PARENT = 1,  /* a parent edge */
    EDGE_UPKIND_LOCATED = 2, /* edge_fetch_opts_t.located */
    EDGE_UPKIND_N = 3,
};

/** Kinds of failed attempts, for edge_upstream_stats_t.errors[]. */
enum edge_upstream_errkind {
    EDGE_UPERR_CONNECT = 0,     /* refused, unreachable, connect timeout, TLS handshake */
    EDGE_UPERR_FIRST_BYTE = 1,  /* no complete headers within first_byte_timeout_ms */
    EDGE_UPERR_HTTP_5XX = 2,    /* 5xx answered and failed over */
    EDGE_UPERR_BEFORE_HEAD = 3, /* connection broke or protocol error before the headers */
    EDGE_UPERR_MID_BODY = 4,    /* broke, stalled or timed out after on_head */
    EDGE_UPERR_OTHER = 5,       /* out of memory, headers too big, anything else */
    EDGE_UPERR_KINDS = 6,
};

/* Upper bounds (ms) of the time-to-first-byte histogram buckets; the last bucket is unbounded. */
#define EDGE_TTFB_BOUNDS_MS                                                                        \
    {                                                                                              \
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000                                \
    }
#define EDGE_TTFB_BUCKETS 14

typedef struct edge_upstream_stats {
    uint64_t in_flight;  /* fetches started and not done or cancelled */
    uint64_t started;    /* edge_fetch_start() calls that returned 0 */
    uint64_t completed;  /* on_done(0) */
    uint64_t failed;     /* on_done(err != 0) */
    uint64_t cancelled;  /* edge_fetch_cancel() before on_done */
    uint64_t failovers;  /* attempts moved to another upstream */
    uint64_t connects;   /* new connections libcurl opened (fetches and health checks) */
    uint64_t body_bytes; /* body bytes delivered through on_data */
    uint64_t errors[EDGE_UPERR_KINDS];        /* failed attempts by kind */
    uint64_t ttfb_hist[EDGE_TTFB_BUCKETS];    /* attempt start to on_head, per delivered head */
    uint64_t attempts_by_kind[EDGE_UPKIND_N]; /* attempts sent, by the kind of upstream */
    uint64_t heads_by_kind[EDGE_UPKIND_N];    /* heads delivered (the fetch was served), by kind */
    size_t n_upstreams; /* origins then parents, for edge_upstream_node_stats() */
} edge_upstream_stats_t;

typedef struct edge_upstream_node_stats {
    const char *url; /* as configured; belongs to the fetcher */
    int is_parent;
    int healthy;             /* 0 while skipped after health_fails failed checks */
    uint32_t fails_in_row;   /* consecutive failed health checks */
    uint64_t attempts;       /* fetch attempts sent to it */
    uint64_t attempt_errors; /* of which failed (any kind) */
    uint64_t checks;         /* health checks completed */
    uint64_t check_failures;
    uint64_t transitions;  /* up->down and down->up changes */
    uint64_t last_ttfb_us; /* time to first byte of its latest delivered head */
} edge_upstream_node_stats_t;

/** Copies the counters into *out. Loop thread only. */
void edge_upstream_stats(const edge_upstream_t *u, edge_upstream_stats_t *out);

/**
 * Copies the state of upstream `i` (0 .. n_upstreams-1: origins in order, then parents, as last
 * configured) into *out; out->url lives until the next edge_upstream_reconfigure() or close.
 * Returns 0 or EDGE_ERR_INVAL (i out of range). Loop thread only.
 */
int edge_upstream_node_stats(const edge_upstream_t *u, size_t i, edge_upstream_node_stats_t *out);

#endif
