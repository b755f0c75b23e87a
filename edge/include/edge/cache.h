/*
 * edge/cache.h: the edge's in-memory object cache, with request collapsing and read-while-write.
 *
 * An object (edge_obj_t) is one cached response body, a list of chunks that reference sw_rbuf_t
 * buffers (no copies), plus its status, expiry and an opaque `meta` buffer for the headers the
 * daemon wants to replay. The first miss on a key creates the object in state FILLING and makes
 * the caller its fetcher; later lookups of that key get the same object and subscribe to it
 * (edge_sub_t), so concurrent misses make exactly one upstream fetch and every waiter is woken on
 * each appended chunk, not once the object is complete.
 *
 * Objects are refcounted. The cache holds one reference while an object is in its index; every
 * edge_cache_get() that yields an object hands the caller one more. Eviction, expiry and purge only
 * drop the cache's reference, so a response that is still streaming keeps its object alive.
 *
 * The byte budget counts every indexed object, FILLING ones included, as they grow. Which object
 * to evict is up to the policy chosen at creation: LRU, or S3-FIFO (a small FIFO of 10% of the
 * budget, a main FIFO with a 2-bit frequency, and a ghost FIFO of recently evicted keys).
 *
 * The cache never reads the clock: every call that needs the time takes `now_ms` (Unix ms).
 *
 * Threading. One cache may be shared by several loop threads (one per worker). Every function
 * here may be called from any thread: the index, the policy, every object's state and chunks and
 * every subscription sit under one mutex, held only inside these calls and never while a callback
 * runs; object references are atomic. Three rules remain for the caller:
 * - An object has one filler: edge_obj_set_response(), _append(), _finish() and _fail() on one
 *   object come from one thread at a time (the thread whose loop runs its fetch).
 * - A subscriber belongs to one thread. With `sub->waker` NULL its callbacks run on the filler's
 *   thread, inside the filler's call: the single-loop case, where they are one thread. With a
 *   waker (edge_waker_new(), one per loop), they run on the waker's thread: directly when that is
 *   also the filler's thread, otherwise from edge_waker_run(), which that loop calls once the
 *   waker's kick has woken it (a uv_async_t). Subscribe and unsubscribe on its own thread
 *   only.
 * - edge_cache_free() comes last, once no other thread uses the cache; a waker is freed on its
 *   thread once none of its subscribers is subscribed.
 * A snapshot taken with one call can be stale by the next (another thread appends in between):
 * use edge_obj_progress() to read a state and a size that belong together.
 */
#ifndef EDGE_CACHE_H
#define EDGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "sw/rbuf.h"
#include "edge/err.h"

typedef struct edge_cache edge_cache_t;
typedef struct edge_obj edge_obj_t;
typedef struct edge_sub edge_sub_t;

typedef enum edge_policy_kind {
    EDGE_POLICY_LRU = 0,
    EDGE_POLICY_S3FIFO = 1,
} edge_policy_kind_t;

typedef struct edge_cache_config {
    edge_policy_kind_t policy; /* default EDGE_POLICY_LRU (see edge/README.md) */
    size_t budget_bytes;       /* default 256 MiB; bodies plus per-object overhead */
    size_t max_object_bytes;   /* default 32 MiB; bigger objects are streamed through, not kept */
    size_t ghost_entries;      /* S3-FIFO ghost FIFO length in keys; default 0 = budget / 16 KiB,
                                  clamped to [256, 1 << 20] */
} edge_cache_config_t;

typedef struct edge_cache_stats {
    uint64_t hits;      /* edge_cache_get() -> EDGE_CACHE_HIT */
    uint64_t misses;    /* -> EDGE_CACHE_MISS (an upstream fetch) */
    uint64_t collapsed; /* -> EDGE_CACHE_FILLING (joined a fetch in flight) */
    uint64_t evictions; /* objects dropped by the policy to honour the budget */
    uint64_t evicted_bytes;
    uint64_t expired; /* objects dropped past their stale window */
    uint64_t purged;
    uint64_t too_big; /* objects let go for exceeding max_object_bytes */
    size_t objects;   /* objects now in the index */
    size_t bytes;     /* bytes charged to the budget now */
} edge_cache_stats_t;

/** Fills `cfg` with the defaults above. */
void edge_cache_config_init(edge_cache_config_t *cfg);

/**
 * Creates a cache. `cfg` is copied. Returns 0 and sets `*out`, or EDGE_ERR_NOMEM, or
 * EDGE_ERR_INVAL (budget 0, unknown policy).
 */
int edge_cache_new(edge_cache_t **out, const edge_cache_config_t *cfg);

/** The policy `c` was created with (for /metrics). Any thread; takes no lock. */
edge_policy_kind_t edge_cache_policy(const edge_cache_t *c);

/**
 * Frees the cache and drops its reference on every indexed object. Objects still referenced by
 * readers stay alive, detached (a FILLING one keeps streaming to its subscribers). NULL does
 * nothing.
 */
void edge_cache_free(edge_cache_t *c);

typedef enum edge_cache_result {
    EDGE_CACHE_HIT = 1,     /* a complete, fresh object: serve it */
    EDGE_CACHE_FILLING = 2, /* another request is fetching it: subscribe and stream what arrives */
    EDGE_CACHE_MISS = 3,    /* a new FILLING object: the caller is its fetcher */
} edge_cache_result_t;

/**
 * Looks `key` up at `now_ms` (`key` should come from edge_key_normalize()). On success sets
 * `*out` to an object holding one new reference for the caller (release with edge_obj_unref())
 * and returns one of edge_cache_result_t:
 * - HIT: complete and fresh.
 * - FILLING: a fetch is in flight; edge_obj_subscribe() to be woken as bytes arrive.
 * - MISS: nothing usable was cached; a new object in state FILLING is now indexed under `key` and
 *   the caller must fetch it: edge_obj_set_response(), edge_obj_append()..., then edge_obj_finish()
 *   or edge_obj_fail(). If an expired copy was still inside its stale-if-error window it is kept
 *   aside as the new object's fallback (see edge_obj_stale()).
 * Returns EDGE_ERR_NOMEM (nothing changed) or EDGE_ERR_INVAL (empty key).
 */
int edge_cache_get(edge_cache_t *c, const char *key, int64_t now_ms, edge_obj_t **out);

/**
 * Removes the object indexed under exactly `key`. Returns 1 if one was removed, 0 if none.
 * Readers holding references keep the object.
 */
int edge_cache_purge(edge_cache_t *c, const char *key);

/** Removes every object whose key starts with `prefix` ("" removes all). Returns how many. */
size_t edge_cache_purge_prefix(edge_cache_t *c, const char *prefix);

/**
 * Removes every complete object past its stale window at `now_ms`; lookups also do this lazily.
 * O(objects): call it from a timer every few seconds. Returns how many were removed.
 */
size_t edge_cache_sweep(edge_cache_t *c, int64_t now_ms);

/** Copies the counters into `out`. */
void edge_cache_stats(const edge_cache_t *c, edge_cache_stats_t *out);

/* ---- objects ---------------------------------------------------------------------------- */

typedef enum edge_obj_state {
    EDGE_OBJ_FILLING = 0,  /* bytes are still arriving */
    EDGE_OBJ_COMPLETE = 1, /* all bytes are here */
    EDGE_OBJ_FAILED = 2,   /* the fetch failed; see edge_obj_error() */
} edge_obj_state_t;

/** Adds a reference and returns `o`. Any thread (the count is atomic). */
edge_obj_t *edge_obj_ref(edge_obj_t *o);
/**
 * Drops a reference; the last one frees the object and its chunk references, on whichever thread
 * drops it. NULL does nothing.
 */
void edge_obj_unref(edge_obj_t *o);

/** The object's key (NUL-terminated, lives as long as the object). */
const char *edge_obj_key(const edge_obj_t *o);
edge_obj_state_t edge_obj_state(const edge_obj_t *o);
/** The EDGE_ERR_* code given to edge_obj_fail() (0 unless FAILED). */
int edge_obj_error(const edge_obj_t *o);
/** The HTTP status given to edge_obj_set_response() (0 before). */
int edge_obj_status(const edge_obj_t *o);
/** Bytes arrived so far. */
uint64_t edge_obj_size(const edge_obj_t *o);
/** The announced length, or -1 if unknown (chunked origin response) until the object completes. */
int64_t edge_obj_content_length(const edge_obj_t *o);
/** The `meta` buffer given to edge_obj_set_response() (borrowed), or NULL. */
sw_rbuf_t *edge_obj_meta(const edge_obj_t *o);
/** Unix ms until which the object is fresh (0 before edge_obj_set_response()). */
int64_t edge_obj_expires_ms(const edge_obj_t *o);
/** 1 while the object is in the cache's index, 0 once evicted, purged, expired or uncacheable. */
int edge_obj_cached(const edge_obj_t *o);

/* Freshness of a response, filled by edge_ttl_compute() in edge/http_util.h. */
typedef struct edge_ttl {
    int cacheable;             /* 0: stream to the waiters, never keep */
    int is_private;            /* Cache-Control: private; implies !cacheable */
    int immutable;             /* Cache-Control: immutable */
    int64_t fresh_ms;          /* freshness lifetime from the response time */
    int64_t stale_if_error_ms; /* how long past expiry the object may stand in for a failed fetch */
} edge_ttl_t;

/**
 * The fetcher's first call once the origin's response head is known. `status` is the origin's
 * HTTP status; `content_length` is -1 when unknown; `ttl` comes from edge_ttl_compute();
 * `meta` (may be NULL) is an opaque buffer of whatever the daemon needs to replay the response
 * head: this takes a new reference on it. If the response is not cacheable, or announces more than
 * max_object_bytes, the object leaves the index at once and is streamed through to the waiters
 * already subscribed; if it is private, those waiters are told EDGE_ERR_UNCACHEABLE through
 * on_done (no bytes are shared) and must fetch on their own.
 * Returns 0, or EDGE_ERR_STATE (not FILLING, or called twice).
 */
int edge_obj_set_response(edge_obj_t *o, int status, int64_t content_length, const edge_ttl_t *ttl,
                          sw_rbuf_t *meta, int64_t now_ms);

/**
 * Appends `b->data[off..off+len)`: takes a new reference on `b`, copies nothing. `b` must not be
 * written afterwards. Calls every subscriber's on_data before returning, charges the bytes to the
 * budget (which may evict other objects, or this one if over max_object_bytes). len 0 does
 * nothing. Returns 0, EDGE_ERR_NOMEM, EDGE_ERR_STATE (not FILLING, no response set yet, or called
 * from one of this object's callbacks) or EDGE_ERR_TOO_BIG (past the announced Content-Length).
 */
int edge_obj_append(edge_obj_t *o, sw_rbuf_t *b, size_t off, size_t len);

/**
 * Marks a FILLING object COMPLETE and calls on_done(sub, o, 0) on each subscriber, which is
 * unsubscribed first. If fewer bytes than the announced Content-Length arrived the object fails
 * instead (as edge_obj_fail(o, EDGE_ERR_TRUNCATED, now_ms)). Returns 0, EDGE_ERR_TRUNCATED or
 * EDGE_ERR_STATE.
 */
int edge_obj_finish(edge_obj_t *o, int64_t now_ms);

/**
 * Marks a FILLING object FAILED with `err` (an EDGE_ERR_* code, e.g. EDGE_ERR_UPSTREAM), removes it
 * from the index and calls on_done(sub, o, err) on each subscriber. If the object has a stale
 * fallback still inside its stale-if-error window at `now_ms`, the fallback goes back into the
 * index (so the next lookup retries the origin and can fall back again). Returns 0 or
 * EDGE_ERR_STATE.
 */
int edge_obj_fail(edge_obj_t *o, int err, int64_t now_ms);

/**
 * The expired copy this object replaced, if it is COMPLETE and `now_ms` is inside its
 * stale-if-error window; NULL otherwise. Returns a new reference. Use it from on_done when the
 * fetch failed: serve the stale copy instead of a 502.
 */
edge_obj_t *edge_obj_stale(edge_obj_t *o, int64_t now_ms);

/**
 * Returns the state and sets `*size` to the bytes arrived, both read at one instant: when the state
 * is COMPLETE or FAILED, `*size` is final. A subscriber on another thread than the filler's must
 * use this, not edge_obj_state() then edge_obj_size(), to know it has written the last byte.
 */
edge_obj_state_t edge_obj_progress(const edge_obj_t *o, uint64_t *size);

/** What a response is built from, read at one instant (one lock instead of one per getter). */
typedef struct edge_obj_view {
    edge_obj_state_t state;
    int err;
    int status;             /* 0 before edge_obj_set_response() */
    int64_t content_length; /* announced by the upstream; -1 unknown */
    uint64_t size;          /* bytes arrived; final once COMPLETE or FAILED */
    sw_rbuf_t *meta;        /* borrowed, as edge_obj_meta() */
} edge_obj_view_t;

void edge_obj_view(const edge_obj_t *o, edge_obj_view_t *v);

/**
 * Finds the bytes at offset `off`: sets `*b` (borrowed; take sw_rbuf_ref() to keep it), `*boff`
 * and `*len` to the rest of the chunk holding `off`, and returns 1; returns 0 when `off` is at or
 * past the bytes arrived so far. O(log chunks). Any state.
 */
int edge_obj_read(const edge_obj_t *o, uint64_t off, sw_rbuf_t **b, size_t *boff, size_t *len);

/**
 * Calls `cb(data, b, boff, len)` for each piece of the arrived bytes in [off, off + len), in
 * order (`len` UINT64_MAX: to the end of what has arrived). `cb` returns 0 to go on; a non-zero
 * value stops the walk and is returned. Returns 0 after the last piece. `cb` must not append to o.
 */
int edge_obj_chunks(const edge_obj_t *o, uint64_t off, uint64_t len,
                    int (*cb)(void *data, sw_rbuf_t *b, size_t boff, size_t len), void *data);

typedef struct edge_waker edge_waker_t;

/**
 * A waiter on a FILLING object, embedded in the waiter's own struct (get it back with
 * sw_container_of). Set on_data, on_done, data and waker (NULL for a single loop), then
 * edge_obj_subscribe().
 * - on_data(sub, o): more bytes arrived. Read from your own offset to edge_obj_progress()'s size
 *   with edge_obj_read() / edge_obj_chunks(). Called once per append on the filler's thread; a
 *   subscriber woken through its waker gets one call for all the appends since its last one.
 * - on_done(sub, o, err): the object completed (err 0) or failed (err < 0, e.g. EDGE_ERR_UPSTREAM,
 *   EDGE_ERR_TRUNCATED, EDGE_ERR_UNCACHEABLE). The sub is already unsubscribed. Called exactly
 *   once, after the last on_data; bytes may have arrived since that on_data (a woken subscriber's
 *   pending on_data is folded into on_done): read to the end here.
 * Both run on the subscriber's thread (see Threading above). Callbacks may unsubscribe any sub of
 * their own thread and drop references, but must not append to, finish or fail the object that
 * calls them. The object is kept alive for the duration of a callback.
 */
struct edge_sub {
    void (*on_data)(edge_sub_t *sub, edge_obj_t *o);
    void (*on_done)(edge_sub_t *sub, edge_obj_t *o, int err);
    void *data;
    edge_waker_t *waker; /* the subscriber's loop; NULL: called on the filler's thread */
    /* private: _obj is the subscriber thread's; the rest is under the cache's mutex */
    edge_obj_t *_obj;
    edge_sub_t *_prev, *_next;   /* in the object's list */
    edge_sub_t *_wprev, *_wnext; /* in the waker's queue */
    unsigned _flags;
    int _err;
};

/**
 * Subscribes `sub` to a FILLING object. Bytes that already arrived are not replayed: read them
 * with edge_obj_read() from offset 0 (a late subscriber sees them there). The subscription holds
 * no reference: keep your own until on_done or edge_obj_unsubscribe(). With several loops the
 * object may complete between edge_cache_get() and this call: EDGE_ERR_STATE then means "read it
 * whole", exactly as a HIT. Returns 0, EDGE_ERR_STATE (the object is no longer FILLING; or `sub`
 * is already subscribed) or EDGE_ERR_INVAL (`sub->waker` belongs to another cache).
 */
int edge_obj_subscribe(edge_obj_t *o, edge_sub_t *sub);

/**
 * Removes `sub` from its object, e.g. when the client went away, and drops a wake-up still queued
 * for it: after this call none of its callbacks runs. Does nothing if not subscribed. Call it on
 * the subscriber's thread.
 */
void edge_obj_unsubscribe(edge_sub_t *sub);

/* ---- wakers: delivering callbacks on the subscriber's own loop -------------------------- */

/**
 * Creates the waker of the calling thread's loop, for subscribers of objects of `c`. The cache
 * stays free of loops: when a subscriber of this waker has something to be told, the cache calls
 * `kick(kick_data)` from the filler's thread, with the cache's mutex held, at most once until the
 * next edge_waker_run(). `kick` must be thread-safe, quick and must not call into the cache:
 * uv_async_send() on an async handle of the loop whose callback calls edge_waker_run() is the one
 * intended use. Call from the thread that will run the waker. Returns 0 and sets `*out`, or
 * EDGE_ERR_NOMEM.
 */
int edge_waker_new(edge_waker_t **out, edge_cache_t *c, void (*kick)(void *data), void *kick_data);

/**
 * Delivers every wake-up queued for this waker's subscribers: on_data, or on_done (once) to those
 * whose object ended. Call it on the waker's thread, from the async callback that `kick` woke.
 * Wake-ups queued while it runs are delivered too, up to as many as were queued on entry; past
 * that it kicks again rather than starve the loop.
 */
void edge_waker_run(edge_waker_t *w);

/**
 * Frees the waker, on its thread, once none of its subscribers is subscribed (each got on_done or
 * was unsubscribed); then close the kick's async handle. The cache may already be freed. NULL does
 * nothing.
 */
void edge_waker_free(edge_waker_t *w);

#endif
