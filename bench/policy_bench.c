/*
 * policy_bench.c: replays the synthetic live-viewer trace of live_trace.h through the edge's
 * cache (edge/cache.h) with LRU and with S3-FIFO at several budgets, and prints the hit ratios by
 * requests (objects) and by bytes. A request is a hit when the key is cached or being filled
 * (collapsed); a miss fills the object at once. No I/O, no clock: the trace's own times drive
 * expiry, so the figures are the same on every machine.
 *
 *   build/bin/policy_bench [--streams N] [--viewers N] [--dvr N] [--minutes N] [--seed N]
 *                            [--budgets 8,16,32,...]   (MiB)
 *
 * The first row, "unbounded", is the trace with a cache that never evicts: its misses are the
 * first requests and the refetches of expired playlists, so its ratios are what no policy can
 * beat; its miss bytes are every object of the trace once (and each playlist once a second).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/cache.h"
#include "live_trace.h"

typedef struct run {
    edge_cache_t *cache;
    sw_rbuf_t *blob; /* every object's body: a reference, not a copy */
    uint64_t req, hit, bytes, hit_bytes;
    int failed;
} run_t;

static void on_request(void *data, const char *key, size_t size, int64_t ttl_ms, int64_t now)
{
    run_t *r = data;
    edge_obj_t *o;
    int rv = edge_cache_get(r->cache, key, now, &o);
    if (rv < 0) {
        r->failed = 1;
        return;
    }
    r->req++;
    r->bytes += size;
    if (rv == EDGE_CACHE_HIT || rv == EDGE_CACHE_FILLING) {
        r->hit++;
        r->hit_bytes += size;
    } else {
        edge_ttl_t t = {.cacheable = 1, .fresh_ms = ttl_ms};
        if (edge_obj_set_response(o, 200, (int64_t)size, &t, NULL, now) != 0 ||
            edge_obj_append(o, r->blob, 0, size) != 0 || edge_obj_finish(o, now) != 0)
            r->failed = 1;
    }
    edge_obj_unref(o);
}

/* Replays the trace once. Returns 0, or -1 with a message printed. */
static int replay(const live_trace_t *t, edge_policy_kind_t kind, size_t budget, sw_rbuf_t *blob,
                  run_t *out)
{
    edge_cache_config_t cfg;
    memset(out, 0, sizeof(*out));
    out->blob = blob;
    edge_cache_config_init(&cfg);
    cfg.policy = kind;
    cfg.budget_bytes = budget;
    if (edge_cache_new(&out->cache, &cfg) != 0) {
        fprintf(stderr, "cannot create a cache of %zu bytes\n", budget);
        return -1;
    }
    int rv = live_trace_run(t, on_request, out);
    edge_cache_free(out->cache);
    if (rv != 0 || out->failed) {
        fprintf(stderr, "%s\n", rv != 0 ? "bad trace parameters" : "the cache refused a request");
        return -1;
    }
    return 0;
}

static double pct(uint64_t a, uint64_t b)
{
    return b != 0 ? 100.0 * (double)a / (double)b : 0.0;
}

static int arg_int(const char *v, long min, long max, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: policy_bench [--streams N] [--viewers N] [--dvr N] [--minutes N] "
                    "[--seed N] [--budgets MIB,MIB,...]\n");
}

int main(int argc, char **argv)
{
    live_trace_t t;
    size_t budgets[16] = {8, 16, 32, 64, 128, 256};
    size_t nb = 6;
    long v;

    live_trace_default(&t);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--streams") == 0 && arg_int(val, 1, LIVE_TRACE_MAX_STREAMS, &v) == 0) {
            t.streams = (int)v;
        } else if (strcmp(a, "--viewers") == 0 &&
                   arg_int(val, 0, LIVE_TRACE_MAX_VIEWERS, &v) == 0) {
            t.live_viewers = (int)v;
        } else if (strcmp(a, "--dvr") == 0 && arg_int(val, 0, LIVE_TRACE_MAX_VIEWERS, &v) == 0) {
            t.dvr_viewers = (int)v;
        } else if (strcmp(a, "--minutes") == 0 && arg_int(val, 1, 600, &v) == 0) {
            t.steps = (int)(v * 30);
        } else if (strcmp(a, "--seed") == 0 && arg_int(val, 1, 0x7fffffffL, &v) == 0) {
            t.seed = (uint64_t)v;
        } else if (strcmp(a, "--budgets") == 0) {
            nb = 0;
            for (const char *p = val; *p != '\0' && nb < 16;) {
                char *end;
                unsigned long m = strtoul(p, &end, 10);
                if (end == p || m == 0 || m > (1ul << 20) || (*end != ',' && *end != '\0')) {
                    usage();
                    return 2;
                }
                budgets[nb++] = m;
                p = *end == ',' ? end + 1 : end;
            }
        } else {
            usage();
            return 2;
        }
    }

    sw_rbuf_t *blob = sw_rbuf_new(1000000);
    if (blob == NULL)
        return 1;
    blob->len = 1000000;
    memset(blob->data, 0x47, blob->len);

    printf("trace: %d streams (Zipf 1.0), %d live viewers (half LL-HLS parts, half segments), "
           "%d DVR viewers, %d min\n",
           t.streams, t.live_viewers, t.dvr_viewers, t.steps / 30);
    run_t r;
    if (replay(&t, EDGE_POLICY_LRU, (size_t)1 << 40, blob, &r) != 0)
        return 1;
    printf(
        "%llu requests, %.1f GB; %.0f MiB of distinct objects (the unbounded cache's misses)\n\n",
        (unsigned long long)r.req, (double)r.bytes / 1e9,
        (double)(r.bytes - r.hit_bytes) / 1048576.0);
    printf("| budget | LRU objects | LRU bytes | S3-FIFO objects | S3-FIFO bytes |\n");
    printf("|--------|-------------|-----------|-----------------|---------------|\n");
    printf("| unbounded | %.2f%% | %.2f%% | %.2f%% | %.2f%% |\n", pct(r.hit, r.req),
           pct(r.hit_bytes, r.bytes), pct(r.hit, r.req), pct(r.hit_bytes, r.bytes));
    for (size_t b = 0; b < nb; b++) {
        run_t lru, s3;
        if (replay(&t, EDGE_POLICY_LRU, budgets[b] << 20, blob, &lru) != 0 ||
            replay(&t, EDGE_POLICY_S3FIFO, budgets[b] << 20, blob, &s3) != 0)
            return 1;
        printf("| %zu MiB | %.2f%% | %.2f%% | %.2f%% | %.2f%% |\n", budgets[b],
               pct(lru.hit, lru.req), pct(lru.hit_bytes, lru.bytes), pct(s3.hit, s3.req),
               pct(s3.hit_bytes, s3.bytes));
        fflush(stdout);
    }
    sw_rbuf_unref(blob);
    return 0;
}
