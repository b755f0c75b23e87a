/*
 * edge/edge.h: the shortwave-edge daemon as a library: an HTTP server (HTTP/1.1, h2c, optional
 * TLS) in front of the object cache (edge/cache.h) and the upstream fetcher (edge/upstream.h).
 *
 * One edge_server_t runs on one loop. GET and HEAD are served from the cache; a miss makes one
 * upstream fetch that every concurrent request for the same key shares while it streams
 * (read-while-write). /healthz and /metrics (Prometheus text) are answered locally.
 */
#ifndef EDGE_EDGE_H
#define EDGE_EDGE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "edge/err.h"
#include "sw/conf.h"

typedef struct edge_server edge_server_t;

/* Every field is a config key; edge_conf_keys() documents them with their defaults. */
typedef struct edge_config {
    char *listen;     /* plain HTTP/1.1 + h2c listen address */
    char *tls_listen; /* TLS listen address, or NULL */
    char *tls_cert;   /* PEM chain for tls_listen */
    char *tls_key;    /* PEM key for tls_listen */
    char **origins;   /* base URLs, in failover order */
    size_t n_origins;
    int64_t cache_size; /* cache budget in bytes */
    int log_level;
} edge_config_t;

/** The configuration keys (a table for sw_conf_load() / sw_conf_set()). */
const sw_conf_key_t *edge_conf_keys(void);
/** Fills `cfg` with the defaults. */
void edge_config_init(edge_config_t *cfg);
/** Frees what the config owns. */
void edge_config_dispose(edge_config_t *cfg);

/**
 * Creates the edge on `loop`: cache, upstream fetcher and listeners. Copies what it keeps from
 * `cfg`. On failure writes a reason into err[0..errlen). Returns 0, EDGE_ERR_INVAL (no origin,
 * bad address, bad TLS files, bad origin URL), EDGE_ERR_NOMEM or EDGE_ERR_UPSTREAM.
 */
int edge_server_new(edge_server_t **out, uv_loop_t *loop, const edge_config_t *cfg, char *err,
                    size_t errlen);

/**
 * Stops listening, aborts requests in flight, closes the upstream fetcher and the HTTP server,
 * and calls `on_closed(data)` once every handle is closed; then call edge_server_free().
 */
void edge_server_shutdown(edge_server_t *s, void (*on_closed)(void *data), void *data);

/** Frees a server after edge_server_shutdown() completed. NULL does nothing. */
void edge_server_free(edge_server_t *s);

#endif
