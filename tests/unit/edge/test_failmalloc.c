/*
 * test_failmalloc.c: the cache under a failing allocator. The cache's .c files are compiled into
 * this test with their allocations routed through fm_*(), which fail at the n-th call; a scenario
 * of lookups, collapsing, appends and index growth runs for every n until it runs clean. Every
 * call must fail with EDGE_ERR_NOMEM and leave the cache usable, and nothing may leak (ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static long fm_left = -1; /* allocations left before one fails; -1: never */
static long fm_failed;

static int fm_fail(void)
{
    if (fm_left < 0)
        return 0;
    if (fm_left-- == 0) {
        fm_failed++;
        return 1;
    }
    return 0;
}

static void *fm_calloc(size_t n, size_t size)
{
    return fm_fail() ? NULL : calloc(n, size);
}

static void *fm_realloc(void *p, size_t size)
{
    return fm_fail() ? NULL : realloc(p, size);
}

#define calloc  fm_calloc
#define realloc fm_realloc
#include "edge_cache.c"
#include "edge_policy_lru.c"
#include "edge_policy_s3fifo.c"
#undef calloc
#undef realloc

static void scenario(edge_policy_kind_t kind, sw_rbuf_t *b)
{
    edge_cache_config_t cfg;
    edge_cache_t *c = NULL;
    edge_ttl_t t = {1, 0, 0, 60000, 0};
    char key[32];

    edge_cache_config_init(&cfg);
    cfg.policy = kind;
    cfg.budget_bytes = 64 * 1024;
    int rv = edge_cache_new(&c, &cfg);
    if (rv != 0) {
        assert_int_equal(rv, EDGE_ERR_NOMEM);
        return;
    }
    for (int i = 0; i < 150; i++) {
        edge_obj_t *o, *w = NULL;
        snprintf(key, sizeof(key), "/k/%d", i % 120);
        rv = edge_cache_get(c, key, i, &o);
        if (rv < 0) {
            assert_int_equal(rv, EDGE_ERR_NOMEM);
            continue;
        }
        if (rv != EDGE_CACHE_MISS) {
            edge_obj_unref(o);
            continue;
        }
        assert_int_equal(edge_cache_get(c, key, i, &w), EDGE_CACHE_FILLING);
        assert_int_equal(edge_obj_set_response(o, 200, -1, &t, NULL, i), 0);
        int failed = 0;
        for (int j = 0; j < 12; j++) {
            rv = edge_obj_append(o, b, (size_t)j, 10);
            if (rv != 0) {
                assert_int_equal(rv, EDGE_ERR_NOMEM);
                failed = 1;
                break;
            }
        }
        if (failed)
            assert_int_equal(edge_obj_fail(o, EDGE_ERR_NOMEM, i), 0);
        else
            assert_int_equal(edge_obj_finish(o, i), 0);
        edge_obj_unref(w);
        edge_obj_unref(o);
    }
    edge_cache_stats_t st;
    edge_cache_stats(c, &st);
    assert_true(st.bytes <= cfg.budget_bytes);
    edge_cache_free(c);
}

static void test_failmalloc(void **state)
{
    sw_rbuf_t *b = sw_rbuf_new(64);
    b->len = 64;
    memset(b->data, 1, 64);
    for (int k = 0; k < 2; k++) {
        long n;
        for (n = 0;; n++) {
            fm_left = n;
            fm_failed = 0;
            scenario(k == 0 ? EDGE_POLICY_LRU : EDGE_POLICY_S3FIFO, b);
            if (fm_failed == 0)
                break;
        }
        fm_left = -1;
        print_message("%s: ran clean once allocation %ld and later succeed\n",
                      k == 0 ? "lru" : "s3fifo", n);
        assert_true(n > 10);
    }
    sw_rbuf_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failmalloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
