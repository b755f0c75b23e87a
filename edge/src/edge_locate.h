/*
 * edge_locate.h: where a live stream is published, from the origins' Redis registry
 * (origin/src/origin_redis.c: `HSET sw:stream:NAME origin URL`, with a TTL). One locator per
 * worker, on the worker's loop, with its own hiredis connection and its own small cache, so that
 * no lock is taken on the request path. Internal to edge/.
 */
#ifndef EDGE_LOCATE_H
#define EDGE_LOCATE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "edge/err.h"

typedef struct edge__locate edge__locate_t;

/** Called once with the stream's origin base URL, or NULL (unknown, Redis down, too slow). */
typedef void (*edge__located_cb)(void *data, const char *url);

/* How long a fetch waits for Redis before it goes to the configured origins. */
#define EDGE__LOCATE_WAIT_MS 250

/**
 * Creates a locator on `loop` and starts connecting to `redis_url` (retried every second while
 * down). Returns 0, EDGE_ERR_INVAL (bad URL) or EDGE_ERR_NOMEM, with err set. Loop thread.
 */
int edge__locate_new(edge__locate_t **out, uv_loop_t *loop, const char *redis_url, char *err,
                     size_t errlen);

/**
 * Where stream `name` is published. Returns 0 when the answer is known now: *url is the cached
 * base URL, or NULL (known unknown, or Redis not connected); the string is valid until the next
 * call. Returns 1 when a lookup was sent: `cb(data, url)` then runs exactly once from the loop,
 * within EDGE__LOCATE_WAIT_MS, or from edge__locate_close() (with NULL). Answers, found or not,
 * are cached for a few seconds in a fixed table. Loop thread.
 */
int edge__locate(edge__locate_t *l, const char *name, edge__located_cb cb, void *data,
                 const char **url);

/**
 * Answers every pending lookup with NULL, disconnects, and calls on_closed(data) from the loop
 * once every handle is closed; the locator is freed right after. Loop thread.
 */
void edge__locate_close(edge__locate_t *l, void (*on_closed)(void *data), void *data);

#endif
