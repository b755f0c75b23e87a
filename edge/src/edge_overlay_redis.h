/*
 * edge_overlay_redis.h: a hiredis async connection that reconnects by itself (see
 * edge_overlay_redis.c). Internal to edge/.
 */
#ifndef EDGE_OVERLAY_REDIS_H
#define EDGE_OVERLAY_REDIS_H

#include <stdint.h>
#include <uv.h>

#include "edge/err.h"
#include "sw/sw.h"

struct redisAsyncContext;

typedef struct edge__ov_redis_addr {
    char host[256];
    int port;
    int db;
    char password[128];
} edge__ov_redis_addr_t;

typedef struct edge__ov_redis edge__ov_redis_t;

struct edge__ov_redis {
    /* set by the owner before edge__ov_redis_start() */
    const char *name; /* "command" or "reader", for the log */
    const edge__ov_redis_addr_t *addr;
    void *data;
    void (*on_up)(edge__ov_redis_t *r);     /* connected; commands may be sent */
    void (*on_down)(edge__ov_redis_t *r);   /* lost (may be NULL); pending callbacks got NULL */
    void (*on_closed)(edge__ov_redis_t *r); /* after edge__ov_redis_close(), all handles closed */
    /* state */
    uv_loop_t *loop;
    struct redisAsyncContext *ac; /* NULL while disconnected */
    int connected;
    int closing;
    int warned;
    int timer_closed;
    uint64_t reconnects; /* failed attempts and lost connections */
    uv_timer_t retry;
};

/** Parses redis://[:PASSWORD@]HOST[:PORT][/DB]. Returns 0 or EDGE_ERR_INVAL. */
int edge__ov_redis_parse_url(edge__ov_redis_addr_t *a, const char *url);

/** Starts connecting; retries every second until edge__ov_redis_close(). */
void edge__ov_redis_start(edge__ov_redis_t *r, uv_loop_t *loop);

/** Disconnects (pending callbacks get NULL replies) and calls on_closed once the timer closed. */
void edge__ov_redis_close(edge__ov_redis_t *r);

#endif
