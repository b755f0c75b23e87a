/*
 * live_trace.h: a synthetic live-viewer request trace, for comparing cache policies. Used by
 * bench/policy_bench.c and tests/unit/edge/test_policy_trace.c; no I/O, no allocation.
 *
 * `streams` live streams whose audiences follow Zipf(1.0); each makes a 2 s segment of four
 * 0.5 s LL-HLS parts, at 1, 2 or 4 Mbit/s (stream k: 250 KB << k % 3 per segment), and a playlist
 * (2 KB) refreshed every part (TTL 1 s). `live_viewers` watch at the live edge: half of them
 * LL-HLS (playlist and newest part every 0.5 s), half classic HLS (playlist every 0.5 s, the
 * newest complete segment once per 2 s, each viewer at its own phase). `dvr_viewers` each scan
 * one stream sequentially, one segment per 2 s, from a random point up to 10 minutes back,
 * seeking back again once caught up: one-hit objects, the scan that S3-FIFO is built to resist.
 * `steps` segments of trace (2 s each). Deterministic for a given seed. Not reentrant: the
 * per-viewer tables are static.
 */
#ifndef SW_BENCH_LIVE_TRACE_H
#define SW_BENCH_LIVE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define LIVE_TRACE_MAX_STREAMS 1024
#define LIVE_TRACE_MAX_VIEWERS 100000

typedef struct live_trace {
    int streams, live_viewers, dvr_viewers, steps;
    uint64_t seed;
} live_trace_t;

/* One request: the cache key, the object's size and lifetime, and the time it is made. */
typedef void (*live_trace_cb)(void *data, const char *key, size_t size, int64_t ttl_ms,
                              int64_t now_ms);

/** The trace test_policy_trace.c and the README's table use: 50 streams, 500 live viewers,
 * 40 DVR viewers, 10 minutes (986,750 requests). */
void live_trace_default(live_trace_t *t);

/**
 * Calls `cb` for every request of the trace, in time order. Returns 0, or -1 if a count is out
 * of range (streams in [1, LIVE_TRACE_MAX_STREAMS], viewers in [0, LIVE_TRACE_MAX_VIEWERS]).
 */
int live_trace_run(const live_trace_t *t, live_trace_cb cb, void *data);

#endif
