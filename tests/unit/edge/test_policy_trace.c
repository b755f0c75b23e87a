/*
 * test_policy_trace.c: replays one synthetic live trace through LRU and S3-FIFO at a few budgets
 * and prints hit ratios by requests and by bytes.
 *
 * The trace: 50 live streams whose audiences follow Zipf(1.0); each produces a 2 s segment made of
 * four 0.5 s LL-HLS parts, at 1, 2 or 4 Mbit/s, and a playlist refreshed every part (TTL 1 s).
 * 500 live viewers, half of them LL-HLS (playlist and newest part every 0.5 s), half classic HLS
 * (playlist every 0.5 s, newest complete segment once per 2 s), plus 40 DVR viewers that each
 * scan one stream sequentially from a random point up to 10 minutes back: one-hit objects that
 * pollute an LRU. 10 minutes of trace, about a million requests, deterministic (fixed seed).
 *
 * Only robust properties are asserted: every ratio is in (0, 1], and LRU never hits less with a
 * bigger budget. Which policy wins is not asserted: on this trace LRU does (see edge/README.md).
 * The figures are printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "edge/cache.h"

#define STREAMS     50
#define LIVE_VIEWER 500
#define DVR_VIEWER  40
#define STEPS       300 /* 2 s each: 10 minutes */
#define PARTS       4
#define PL_BYTES    2048

typedef struct trace_stats {
    uint64_t req, hit, bytes, hit_bytes;
} trace_stats_t;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static sw_rbuf_t *blob;

static void request(edge_cache_t *c, const char *key, size_t size, int64_t ttl_ms, int64_t now,
                    trace_stats_t *st)
{
    edge_obj_t *o;
    int rv = edge_cache_get(c, key, now, &o);
    assert_true(rv > 0);
    st->req++;
    st->bytes += size;
    if (rv == EDGE_CACHE_HIT || rv == EDGE_CACHE_FILLING) {
        st->hit++;
        st->hit_bytes += size;
    } else {
        edge_ttl_t t = {1, 0, 0, ttl_ms, 0};
        assert_int_equal(edge_obj_set_response(o, 200, (int64_t)size, &t, NULL, now), 0);
        assert_int_equal(edge_obj_append(o, blob, 0, size), 0); /* a reference, not a copy */
        assert_int_equal(edge_obj_finish(o, now), 0);
    }
    edge_obj_unref(o);
}

static void run(edge_policy_kind_t kind, size_t budget, trace_stats_t *st)
{
    static double cdf[STREAMS];
    int viewer_stream[LIVE_VIEWER], dvr_stream[DVR_VIEWER];
    int64_t dvr_pos[DVR_VIEWER];
    size_t seg_bytes[STREAMS];
    char key[96];
    edge_cache_config_t cfg;
    edge_cache_t *c;

    rng = 0x9e3779b97f4a7c15ull;
    memset(st, 0, sizeof(*st));
    double sum = 0;
    for (int s = 0; s < STREAMS; s++) {
        sum += 1.0 / (s + 1);
        cdf[s] = sum;
        seg_bytes[s] = (size_t)(250000 << (s % 3)); /* 2 s at 1, 2 or 4 Mbit/s */
    }
    for (int v = 0; v < LIVE_VIEWER; v++) {
        double u = (double)(next_rand() >> 11) / 9007199254740992.0 * sum;
        int s = 0;
        while (s < STREAMS - 1 && cdf[s] < u)
            s++;
        viewer_stream[v] = s;
    }
    for (int d = 0; d < DVR_VIEWER; d++) {
        dvr_stream[d] = (int)(next_rand() % STREAMS);
        dvr_pos[d] = -1;
    }

    edge_cache_config_init(&cfg);
    cfg.policy = kind;
    cfg.budget_bytes = budget;
    assert_int_equal(edge_cache_new(&c, &cfg), 0);

    for (int64_t step = 0; step < STEPS; step++) {
        for (int p = 0; p < PARTS; p++) {
            int64_t now = step * 2000 + p * 500;
            /* Viewers in a different order each sub-step. */
            int start = (int)(next_rand() % LIVE_VIEWER);
            for (int i = 0; i < LIVE_VIEWER; i++) {
                int v = (start + i * 7) % LIVE_VIEWER, s = viewer_stream[v];
                snprintf(key, sizeof(key), "/live/s%d/index.m3u8", s);
                request(c, key, PL_BYTES, 1000, now, st);
                if (v % 2 == 0) {
                    snprintf(key, sizeof(key), "/live/s%d/seg%lld.p%d.m4s", s, (long long)step, p);
                    request(c, key, seg_bytes[s] / PARTS, 600000, now, st);
                } else if (p == v % PARTS && step > 0) {
                    snprintf(key, sizeof(key), "/live/s%d/seg%lld.m4s", s, (long long)step - 1);
                    request(c, key, seg_bytes[s], 600000, now, st);
                }
            }
            if (p != 0)
                continue;
            for (int d = 0; d < DVR_VIEWER; d++) {
                int s = dvr_stream[d];
                if (dvr_pos[d] < 0 || dvr_pos[d] >= step - 1) { /* caught up: seek back again */
                    int64_t back = (int64_t)(next_rand() % 300);
                    dvr_pos[d] = step - 1 - back < 0 ? 0 : step - 1 - back;
                }
                snprintf(key, sizeof(key), "/live/s%d/seg%lld.m4s?dvr=1", s,
                         (long long)dvr_pos[d]++);
                request(c, key, seg_bytes[s], 600000, now, st);
            }
        }
    }
    edge_cache_stats_t cs;
    edge_cache_stats(c, &cs);
    assert_true(cs.bytes <= budget);
    edge_cache_free(c);
}

static void test_trace(void **state)
{
    static const size_t budgets[] = {16u << 20, 64u << 20, 256u << 20};
    double last_req[2] = {0, 0};

    blob = sw_rbuf_new(1000000);
    blob->len = 1000000;
    memset(blob->data, 0x47, blob->len);
    printf("budget    policy  requests  req-hit  byte-hit\n");
    for (size_t b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
        double req[2], bytes[2];
        for (int k = 0; k < 2; k++) {
            trace_stats_t st;
            run(k == 0 ? EDGE_POLICY_LRU : EDGE_POLICY_S3FIFO, budgets[b], &st);
            req[k] = (double)st.hit / (double)st.req;
            bytes[k] = (double)st.hit_bytes / (double)st.bytes;
            printf("%4zu MiB  %-6s  %8llu  %6.2f%%  %7.2f%%\n", budgets[b] >> 20,
                   k == 0 ? "lru" : "s3fifo", (unsigned long long)st.req, 100 * req[k],
                   100 * bytes[k]);
            assert_true(req[k] > 0 && req[k] <= 1);
            assert_true(bytes[k] > 0 && bytes[k] <= 1);
            if (k == 0) /* LRU has the stack property; S3-FIFO need not */
                assert_true(req[k] >= last_req[k] - 1e-9);
            last_req[k] = req[k];
        }
    }
    sw_rbuf_unref(blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
