/*
 * test_policy_trace.c: replays the synthetic live-viewer trace of bench/live_trace.h (the one
 * bench/policy_bench.c replays; 50 live streams with Zipf(1.0) audiences, 500 live viewers half
 * on LL-HLS parts and half on segments, 40 DVR viewers scanning old segments: 986,750 requests)
 * through LRU and S3-FIFO at a few budgets and prints hit ratios by requests and by bytes.
 *
 * LRU is the default policy (edge/README.md, "LRU or S3-FIFO") because it hits more on this
 * trace, by bytes most of all: a live object is asked for again within seconds of its birth,
 * which is recency at its best, while S3-FIFO's small FIFO (10% of the budget) lets a segment go
 * before its second viewer comes. The test asserts that advantage, with margins a little under
 * the measured ones (bytes: 6.3 points at 16 MiB, 4.4 at 64 MiB; requests: 1.2 and 1.0), so that
 * a change to either policy that closes the gap fails here and makes us revisit the default.
 * Also: every ratio is in (0, 1], LRU never hits less with a bigger budget, and LRU is the
 * default of both the cache (edge_cache_config_init()) and the daemon (cache_policy).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "edge/cache.h"
#include "edge/edge.h"
#include "live_trace.h"

typedef struct trace_stats {
    edge_cache_t *c;
    uint64_t req, hit, bytes, hit_bytes;
} trace_stats_t;

static sw_rbuf_t *blob;

static void request(void *data, const char *key, size_t size, int64_t ttl_ms, int64_t now)
{
    trace_stats_t *st = data;
    edge_obj_t *o;
    int rv = edge_cache_get(st->c, key, now, &o);
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
    edge_cache_config_t cfg;
    live_trace_t t;

    memset(st, 0, sizeof(*st));
    edge_cache_config_init(&cfg);
    cfg.policy = kind;
    cfg.budget_bytes = budget;
    assert_int_equal(edge_cache_new(&st->c, &cfg), 0);
    live_trace_default(&t);
    assert_int_equal(live_trace_run(&t, request, st), 0);
    edge_cache_stats_t cs;
    edge_cache_stats(st->c, &cs);
    assert_true(cs.bytes <= budget);
    edge_cache_free(st->c);
}

static void test_trace(void **state)
{
    static const size_t budgets[] = {16u << 20, 64u << 20, 256u << 20};
    /* LRU's lead over S3-FIFO, in points, at each budget: at 256 MiB the cache holds nearly
     * the whole live working set and both policies come close to the ceiling. */
    static const double min_lead_req[] = {0.8, 0.6, 0.0}, min_lead_bytes[] = {5.0, 3.5, 0.3};
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
        printf("%4zu MiB  lru leads by %.2f points of requests, %.2f of bytes\n", budgets[b] >> 20,
               100 * (req[0] - req[1]), 100 * (bytes[0] - bytes[1]));
        assert_true(100 * (req[0] - req[1]) >= min_lead_req[b]);
        assert_true(100 * (bytes[0] - bytes[1]) >= min_lead_bytes[b]);
    }
    sw_rbuf_unref(blob);

    /* So the defaults are the policy that wins here: the cache's and the daemon's. */
    edge_cache_config_t cc;
    edge_cache_config_init(&cc);
    assert_int_equal(cc.policy, EDGE_POLICY_LRU);
    edge_config_t dc;
    edge_config_init(&dc);
    assert_int_equal(dc.cache_policy, EDGE_POLICY_LRU);
    edge_config_dispose(&dc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
