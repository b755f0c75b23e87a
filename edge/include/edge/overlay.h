/*
 * edge/overlay.h: shopping-cart overlays (docs/overlay-protocol.md). Viewers open a websocket on
 * /overlay/{room}; the edge reads each room's Redis stream once (one XREAD over every room that
 * has viewers here) and fans the events out to the room's connections; add_to_cart goes to the
 * room's cart stream and is acknowledged only once Redis has it.
 *
 * One overlay runs per edge process, on one loop. A worker's sw HTTP server parses the upgrade
 * request; edge_overlay_handoff(), on the worker's thread, checks it (room name, token, Origin),
 * takes the connection over and queues it for the overlay's loop, where libwebsockets adopts it
 * (LWS_SERVER_OPTION_LIBUV with a foreign loop). Redis is hiredis async on that loop: one command
 * connection and one reader connection per edge, each reconnecting by itself.
 *
 * Limits (docs/overlay-protocol.md, "Limits and close codes"): the websocket of a viewer past
 * max_viewers, or of one who would open a room that the origins' registry (the set sw:streams)
 * does not list while max_rooms such rooms are open, opens and is closed at once with 1013 and
 * the reason. The edge reads the registry once a second, never per join; rooms already open are
 * not checked. Cart entries are trimmed with XADD ... MAXLEN ~ cart_maxlen.
 *
 * Threading: edge_overlay_handoff() and edge_overlay_metrics() may be called from any thread
 * until edge_overlay_close(); the rest runs on the overlay's loop thread; edge_overlay_parse() is
 * pure (any thread).
 */
#ifndef EDGE_OVERLAY_H
#define EDGE_OVERLAY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "edge/err.h"
#include "sw/http.h"
#include "sw/str.h"

typedef struct edge_overlay edge_overlay_t;

typedef struct edge_overlay_config {
    const char *redis_url;       /* redis://[:PASSWORD@]HOST[:PORT][/DB]; required */
    const char *edge_name;       /* written into cart entries; default the host name */
    const char *allowed_origins; /* comma-separated Origin values; NULL or "": any */
    const char *token_key;       /* secret for viewer tokens (edge/token.h); NULL: no token */
    const char *token_kid;       /* its key id, or NULL */
    size_t max_message;          /* bytes of one client message, default 4096; over it: 1009 */
    size_t send_queue;           /* messages queued per connection, default 256; over it: 1013 */
    uint32_t cart_rate;          /* add_to_cart per second per connection, default 5 */
    uint32_t cart_burst;         /* bucket size, default 10 */
    uint64_t cart_maxlen;        /* XADD room:{room}:cart MAXLEN ~ this, default 100000 */
    size_t max_viewers;          /* viewers on this edge, default 10000; over it: 1013 */
    size_t max_rooms;            /* open rooms the registry does not list, default 100; over
                                    it a new such room is refused with 1013 */
} edge_overlay_config_t;

/** Fills `cfg` with the defaults above (redis_url NULL). */
void edge_overlay_config_init(edge_overlay_config_t *cfg);

/**
 * Creates the overlay service on `loop` and starts connecting to Redis (a Redis that is down is
 * not an error: the service retries every second). Copies what it keeps from `cfg`. On failure
 * writes a reason into err[0..errlen). Returns 0, EDGE_ERR_INVAL (bad redis URL) or
 * EDGE_ERR_NOMEM (also when libwebsockets cannot create its context).
 */
int edge_overlay_new(edge_overlay_t **out, uv_loop_t *loop, const edge_overlay_config_t *cfg,
                     char *err, size_t errlen);

struct edge_config;

/**
 * edge_overlay_new() with the overlay keys of the edge's configuration (redis, edge_name,
 * overlay_*; see edge/edge.h). For edge_daemon_new(). Same returns.
 */
int edge__overlay_open(edge_overlay_t **out, uv_loop_t *loop, const struct edge_config *cfg,
                       char *err, size_t errlen);

/**
 * Looks at one request, on the thread of the loop that serves it (any thread; the overlay's own
 * included). Returns 0 if it is not for /overlay/ (the caller serves it), or 1 if it was: then it
 * was answered (a 4xx for a bad room, a missing upgrade, a refused Origin, HTTP/2, a 5xx when
 * the connection could not be handed over) or taken over (sw_http_takeover(); a TLS connection's
 * bridge stays on the caller's loop) and queued for the overlay's loop, which opens the websocket
 * there, and the request pointer is dead. A bad token is not answered with a status: the
 * websocket opens and closes at once with 1008 and the reason, which a browser can see.
 */
int edge_overlay_handoff(edge_overlay_t *ov, sw_http_req_t *req);

/**
 * Appends the overlay's metrics (Prometheus text, shortwave_edge_overlay_*) to `out`: a copy the
 * overlay's loop refreshes at the end of each of its iterations, so any thread may call it.
 */
void edge_overlay_metrics(edge_overlay_t *ov, sw_str_t *out);

/**
 * Closes every websocket (1001), both Redis connections and the libwebsockets context, and calls
 * `on_closed(data)` once all their handles are closed; then call edge_overlay_free().
 */
void edge_overlay_close(edge_overlay_t *ov, void (*on_closed)(void *data), void *data);

/** Frees the service after edge_overlay_close() completed. NULL does nothing. */
void edge_overlay_free(edge_overlay_t *ov);

/* ---- client messages: the pure parser (fuzzed) ---- */

typedef enum edge_overlay_msg_type {
    EDGE_OVERLAY_HELLO = 1,
    EDGE_OVERLAY_ADD_TO_CART,
} edge_overlay_msg_type_t;

#define EDGE_OVERLAY_SKU_MAX 64
#define EDGE_OVERLAY_REQ_MAX 64

typedef struct edge_overlay_msg {
    edge_overlay_msg_type_t type;
    char req[EDGE_OVERLAY_REQ_MAX + 3]; /* the client's "req" as JSON (a quoted string of at
                                           most 64 bytes or an integer), "" when absent */
    char last_event_id[48];             /* hello: "MS-SEQ", "" when absent or null */
    char sku[EDGE_OVERLAY_SKU_MAX + 1]; /* add_to_cart */
    int qty;                            /* add_to_cart: 1..99 */
} edge_overlay_msg_t;

/**
 * Parses one client text message (buf[0..len), not NUL-terminated). On success fills `out`.
 * Returns 0 or EDGE_ERR_INVAL with a static reason in *err_desc (not JSON, not an object,
 * unknown type, a field missing or out of range); `out->req` is filled whenever the message was
 * an object with a valid "req", so that an error can echo it.
 */
int edge_overlay_parse(const uint8_t *buf, size_t len, edge_overlay_msg_t *out,
                       const char **err_desc);

/**
 * Checks and splits a Redis stream id "MS-SEQ" (decimal, each fits 64 bits). Returns 0 or
 * EDGE_ERR_INVAL.
 */
int edge_overlay_parse_id(const char *id, size_t len, uint64_t *ms, uint64_t *seq);

#endif
