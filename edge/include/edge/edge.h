/*
 * edge/edge.h: the shortwave-edge daemon as a library: an HTTP server (HTTP/1.1, h2c, optional
 * TLS) in front of the object cache (edge/cache.h) and the upstream fetcher (edge/upstream.h).
 *
 * An edge_daemon_t runs several worker loops, one thread each, over one shared cache. GET and HEAD
 * are served from the cache; a miss makes one upstream fetch that every concurrent request for
 * the same key shares while it streams (read-while-write), whichever worker they reached.
 * /healthz and /metrics (Prometheus text, summed over the workers) are answered locally.
 */
#ifndef EDGE_EDGE_H
#define EDGE_EDGE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "edge/cache.h"
#include "edge/err.h"
#include "edge/token.h"
#include "sw/conf.h"

/* A [protect PREFIX] section: requests whose normalized path starts with `prefix` need a signed
 * URL (edge/token.h) verified with one of `keys`. The longest matching prefix applies. */
typedef struct edge_protect {
    char *prefix;              /* starts with '/' */
    edge_token_key_t *keys;    /* kid and key point into strings this entry owns */
    size_t nkeys;              /* 1, or 2 while rotating (at most 8) */
    edge_token_config_t token; /* points at keys; require_ip from the section */
} edge_protect_t;

/* One entry of admin_allow: an address with a prefix length (an address alone is /32 or /128). */
typedef struct edge_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int bits;
} edge_cidr_t;

/** How many forward_prefixes at most, and how long each may be (NUL excluded). */
#define EDGE_FORWARD_MAX     16
#define EDGE_FORWARD_MAX_LEN 63

/* One entry of forward_prefixes: a path prefix the edge forwards upstream. One that ends in '/'
 * matches every path under it; one that does not matches that path exactly, or followed by '/'
 * or a query ("/api/x" matches "/api/x?a=1" and "/api/x/y", not "/api/xy"). */
typedef struct edge_prefix {
    size_t len;
    char s[EDGE_FORWARD_MAX_LEN + 1]; /* starts with '/' */
} edge_prefix_t;

/* Every field is a config key; edge_conf_keys() documents them with their defaults. */
typedef struct edge_config {
    char *listen;     /* plain HTTP/1.1 + h2c listen address */
    char *tls_listen; /* TLS listen address, or NULL */
    char *tls_cert;   /* PEM chain for tls_listen */
    char *tls_key;    /* PEM key for tls_listen */
    char **origins;   /* base URLs, in failover order */
    size_t n_origins;
    char **parents; /* parent edges' base URLs, chosen per stream by rendezvous hashing */
    size_t n_parents;
    int64_t workers;    /* loop threads; 0: edge_default_workers() */
    int64_t cache_size; /* cache budget in bytes */
    int cache_policy;   /* edge_policy_kind_t (edge/cache.h) */
    /* The only paths sent upstream (normalized; compared without allocating); others get 404 */
    edge_prefix_t forward[EDGE_FORWARD_MAX];
    size_t n_forward;
    int64_t stale_if_error_ms; /* stale window of answers that name none (not playlists) */
    char *web_root;            /* viewer pages (edge/web.h); NULL: bin/../web if present */
    int log_level;
    char *access_log;        /* a file, "stderr" or "off" */
    edge_protect_t *protect; /* [protect PREFIX] sections */
    size_t n_protect;
    edge_cidr_t *admin_allow; /* who may call /api/purge; default loopback */
    size_t n_admin_allow;
    char *admin_token; /* if set, /api/purge also needs "Authorization: Bearer TOKEN" */
    /* [http] limits */
    int64_t max_connections, max_header_bytes, max_streams;
    int64_t idle_timeout_ms, header_timeout_ms, send_timeout_ms, drain_timeout_ms;
    int64_t notsent_lowat;
    /* overlays (edge/overlay.h, docs/overlay-protocol.md): on when `redis` is set */
    char *redis;                   /* redis://[:PASSWORD@]HOST[:PORT][/DB] */
    char *edge_name;               /* names this edge in cart entries; default the host name */
    char *overlay_allowed_origins; /* comma-separated Origin values; unset: any */
    char *overlay_token_key;       /* [KID:]SECRET for viewer tokens; unset: no token */
    int64_t overlay_max_message, overlay_send_queue, overlay_cart_rate, overlay_cart_burst;
    int64_t overlay_cart_maxlen; /* XADD room:{room}:cart MAXLEN ~ this */
    int64_t overlay_max_viewers; /* websockets on this edge; more are closed with 1013 */
    int64_t overlay_max_rooms;   /* open rooms the registry does not list; a new one past: 1013 */
} edge_config_t;

/** The configuration keys (a table for sw_conf_load() / sw_conf_set()). */
const sw_conf_key_t *edge_conf_keys(void);
/** Fills `cfg` with the defaults. */
void edge_config_init(edge_config_t *cfg);
/** Frees what the config owns. */
void edge_config_dispose(edge_config_t *cfg);
/**
 * Checks what a key alone cannot: an origin is set, tls_listen has its files, every [protect]
 * section has a key. Returns 0 or EDGE_ERR_INVAL with the reason in err[0..errlen).
 */
int edge_config_check(const edge_config_t *cfg, char *err, size_t errlen);

/**
 * The worker count `workers = 0` stands for: the CPUs this process may run on (its affinity
 * mask, so `taskset -c 1 shortwave-edge` runs one worker). At least 1.
 */
unsigned edge_default_workers(void);

typedef struct edge_daemon edge_daemon_t;

/**
 * Starts the edge: creates the cache (one for the process), the overlay service on `loop` when
 * `redis` is set, and `workers` threads (edge_default_workers() when 0), each running its own
 * loop with its own HTTP server, listening with SO_REUSEPORT on the same addresses, and its own
 * upstream fetcher. Returns once every worker listens, or has failed and the others are stopped.
 * On success takes ownership of `cfg` (heap-allocated, freed with edge_config_dispose() and
 * free()); workers read its [protect] sections, admin_allow and admin_token while serving. On
 * failure writes a reason into err[0..errlen) and the caller keeps `cfg`. Loop thread only.
 * Returns 0, EDGE_ERR_INVAL (no origin, bad address, bad TLS files, bad origin URL, the access
 * log cannot be opened, bad redis URL), EDGE_ERR_NOMEM or EDGE_ERR_UPSTREAM.
 */
int edge_daemon_new(edge_daemon_t **out, uv_loop_t *loop, edge_config_t *cfg, char *err,
                    size_t errlen);

/**
 * Applies a re-read configuration (SIGHUP) without dropping a connection: each worker, on its own
 * thread, reloads the TLS certificate and key (new handshakes only), reopens the access log
 * (so that logrotate can move the file), switches to the new [protect] keys, admin_allow and
 * admin_token, and to the new origins and parents (edge_upstream_reconfigure(): fetches in flight
 * go on; the changed lists are logged); log_level changes at once. Origins or parents the first
 * worker refuses (a URL that is not http://, https:// or h2c://HOST[:PORT]) are logged as an error
 * and every worker keeps the running lists, while the rest of the reload applies. What needs a
 * restart (listen addresses, workers, cache_size, cache_policy, [http] limits, redis, edge_name,
 * overlay_*) is logged as such and left as it was. Waits for every worker (a moment: workers never
 * wait for this loop). On success takes ownership of `cfg` and frees the previous configuration,
 * which no worker reads any more; on failure (found by the first worker, before any change) nothing
 * changes, the caller keeps `cfg` and err[0..errlen) says why. Loop thread only. Returns 0,
 * EDGE_ERR_INVAL (bad TLS files, the access log cannot be opened), EDGE_ERR_NOMEM or
 * EDGE_ERR_STATE (shutting down).
 */
int edge_daemon_reload(edge_daemon_t *d, edge_config_t *cfg, char *err, size_t errlen);

/**
 * Stops: every worker stops listening, aborts held requests, lets responses under way finish for
 * up to [http] drain_timeout, then closes its connections and its loop; then the overlay closes.
 * Calls `on_closed(data)` on `loop` once all that is done; then call edge_daemon_free().
 */
void edge_daemon_shutdown(edge_daemon_t *d, void (*on_closed)(void *data), void *data);

/** Joins the workers and frees everything, the configuration included, after
 * edge_daemon_shutdown() completed. NULL does nothing. */
void edge_daemon_free(edge_daemon_t *d);

#endif
