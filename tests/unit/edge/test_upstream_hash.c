/*
 * Rendezvous hashing of the upstream fetcher: stable, even, and minimal movement when a parent
 * joins or leaves. Also checks edge_upstream_pick() and edge_upstream_reconfigure() over a fetcher
 * that is created on a loop but never sends anything (health checks off).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "edge_upstream_int.h"

#define N_KEYS 10000

static const char *const parents5[] = {"http://10.0.0.1:8080", "http://10.0.0.2:8080",
                                       "http://10.0.0.3:8080", "http://10.0.0.4:8080",
                                       "http://10.0.0.5:8080"};

static void hashes(const char *const *urls, size_t n, uint64_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = edge__hrw_hash(urls[i], strlen(urls[i]));
}

static void key_name(int i, char *buf, size_t len)
{
    snprintf(buf, len, "live/stream-%d", i);
}

static void test_stable_and_order_independent(void **state)
{
    uint64_t h[4], rev[4];
    hashes(parents5, 4, h);
    for (int i = 0; i < 4; i++)
        rev[i] = h[3 - i];
    /* Fixed values: a change of hash function would send every stream to a new parent. */
    assert_int_equal(edge__hrw_hash("", 0), edge__hrw_hash("", 0));
    assert_true(edge__hrw_hash("a", 1) != edge__hrw_hash("b", 1));
    for (int i = 0; i < 1000; i++) {
        char k[32];
        key_name(i, k, sizeof(k));
        int a = edge__hrw_pick(k, h, NULL, 4);
        int b = edge__hrw_pick(k, h, NULL, 4);
        int r = edge__hrw_pick(k, rev, NULL, 4);
        assert_int_equal(a, b);
        assert_true(a >= 0 && a < 4);
        assert_int_equal(h[a], rev[r]);
    }
    unsigned char none[4] = {0, 0, 0, 0};
    assert_int_equal(edge__hrw_pick("x", h, none, 4), -1);
    assert_int_equal(edge__hrw_pick("x", h, NULL, 0), -1);
}

static void test_even_spread(void **state)
{
    uint64_t h[4];
    int count[4] = {0};
    hashes(parents5, 4, h);
    for (int i = 0; i < N_KEYS; i++) {
        char k[32];
        key_name(i, k, sizeof(k));
        count[edge__hrw_pick(k, h, NULL, 4)]++;
    }
    for (int p = 0; p < 4; p++) {
        print_message("parent %d: %d keys\n", p, count[p]);
        assert_true(count[p] >= 2500 * 85 / 100 && count[p] <= 2500 * 115 / 100);
    }
}

static void test_minimal_movement(void **state)
{
    uint64_t h[5];
    hashes(parents5, 5, h);
    int moved_add = 0, moved_remove = 0;
    for (int i = 0; i < N_KEYS; i++) {
        char k[32];
        key_name(i, k, sizeof(k));
        int with4 = edge__hrw_pick(k, h, NULL, 4);
        int with5 = edge__hrw_pick(k, h, NULL, 5);
        if (with4 != with5) {
            /* A key moves only to the parent that joined. */
            assert_int_equal(with5, 4);
            moved_add++;
        }
        /* Parent 1 leaves (marked unusable): only its keys move. */
        unsigned char usable[4] = {1, 0, 1, 1};
        int without1 = edge__hrw_pick(k, h, usable, 4);
        if (without1 != with4) {
            assert_int_equal(with4, 1);
            moved_remove++;
        } else {
            assert_true(with4 != 1);
        }
    }
    print_message("added 5th parent: %d of %d keys moved; removed one of 4: %d moved\n", moved_add,
                  N_KEYS, moved_remove);
    /* About 1/5 and 1/4 of the keys, within 15 %. */
    assert_true(moved_add >= N_KEYS / 5 * 85 / 100 && moved_add <= N_KEYS / 5 * 115 / 100);
    assert_true(moved_remove >= N_KEYS / 4 * 85 / 100 && moved_remove <= N_KEYS / 4 * 115 / 100);
}

static void on_closed(void *data)
{
    (*(int *)data)++;
}

/* An upstream over two origins and the first four of parents5, without health checks. */
static edge_upstream_t *upstream_new(uv_loop_t *loop, const char *const origins[2])
{
    edge_upstream_config_t cfg;
    edge_upstream_config_init(&cfg);
    cfg.origins = origins;
    cfg.n_origins = 2;
    cfg.parents = parents5;
    cfg.n_parents = 4;
    cfg.health_interval_ms = 0;
    edge_upstream_t *u = NULL;
    char err[128];
    assert_int_equal(edge_upstream_new(&u, loop, &cfg, err, sizeof(err)), 0);
    return u;
}

static void test_pick_api(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    static const char *const origins[] = {"http://127.0.0.1:1", "h2c://127.0.0.1:2/"};
    edge_upstream_t *u = upstream_new(&loop, origins);

    uint64_t h[4];
    hashes(parents5, 4, h);
    int moved = 0, counted = 0;
    for (int i = 0; i < 2000; i++) {
        char k[32];
        key_name(i, k, sizeof(k));
        const char *p = edge_upstream_pick(u, k);
        assert_string_equal(p, parents5[edge__hrw_pick(k, h, NULL, 4)]);
    }
    /* Parent 2 (node index 2 origins + 2 = 4) goes down: its keys move, the others stay. */
    edge__upstream_set_healthy(u, 4, 0);
    for (int i = 0; i < 2000; i++) {
        char k[32];
        key_name(i, k, sizeof(k));
        int before = edge__hrw_pick(k, h, NULL, 4);
        const char *p = edge_upstream_pick(u, k);
        if (before == 2) {
            assert_string_not_equal(p, parents5[2]);
            moved++;
        } else {
            assert_string_equal(p, parents5[before]);
        }
        counted++;
    }
    assert_true(moved > counted / 8 && moved < counted * 3 / 8);
    edge_upstream_node_stats_t ns;
    assert_int_equal(edge_upstream_node_stats(u, 4, &ns), 0);
    assert_int_equal(ns.healthy, 0);
    assert_int_equal(ns.transitions, 1);
    assert_int_equal(edge_upstream_node_stats(u, 6, &ns), EDGE_ERR_INVAL);

    /* Every parent down: the first origin that is up. All down: the first origin anyway. */
    for (size_t i = 2; i < 6; i++)
        edge__upstream_set_healthy(u, i, 0);
    assert_string_equal(edge_upstream_pick(u, "live/a"), origins[0]);
    edge__upstream_set_healthy(u, 0, 0);
    assert_string_equal(edge_upstream_pick(u, "live/a"), origins[1]);
    edge__upstream_set_healthy(u, 1, 0);
    const char *any = edge_upstream_pick(u, "live/a");
    assert_true(strncmp(any, "http://10.0.0.", 14) == 0);

    int closed = 0;
    edge_upstream_close(u, on_closed, &closed);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_bad_config(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    edge_upstream_config_t cfg;
    edge_upstream_t *u = NULL;
    char err[128];
    edge_upstream_config_init(&cfg);
    assert_int_equal(edge_upstream_new(&u, &loop, &cfg, err, sizeof(err)), EDGE_ERR_INVAL);
    static const char *const bad[] = {"ftp://x", "http://", "http://h/path", "127.0.0.1:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg.origins = &bad[i];
        cfg.n_origins = 1;
        assert_int_equal(edge_upstream_new(&u, &loop, &cfg, err, sizeof(err)), EDGE_ERR_INVAL);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void node_is(edge_upstream_t *u, size_t i, const char *url, int is_parent, int healthy)
{
    edge_upstream_node_stats_t ns;
    assert_int_equal(edge_upstream_node_stats(u, i, &ns), 0);
    assert_string_equal(ns.url, url);
    assert_int_equal(ns.is_parent, is_parent);
    assert_int_equal(ns.healthy, healthy);
}

/* A reload: nodes that stay keep their health state wherever they move in the lists, new ones
 * start up, parents are picked over the new list; a bad list changes nothing. */
static void test_reconfigure(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    static const char *const origins[] = {"http://127.0.0.1:1", "http://127.0.0.1:2"};
    edge_upstream_t *u = upstream_new(&loop, origins);
    edge__upstream_set_healthy(u, 1, 0); /* origin :2 */
    edge__upstream_set_healthy(u, 4, 0); /* parent 10.0.0.3 */

    static const char *const origins2[] = {"http://127.0.0.1:2", "http://127.0.0.1:3"};
    static const char *const parents2[] = {"http://10.0.0.3:8080", "http://10.0.0.5:8080",
                                           "http://10.0.0.1:8080"};
    edge_upstream_config_t next;
    char err[128];
    edge_upstream_config_init(&next);
    next.origins = origins2;
    next.n_origins = 2;
    next.parents = parents2;
    next.n_parents = 3;
    next.health_interval_ms = 5; /* ignored: only the lists change */
    assert_int_equal(edge_upstream_reconfigure(u, &next, err, sizeof(err)), 0);
    edge_upstream_stats_t st;
    edge_upstream_stats(u, &st);
    assert_int_equal(st.n_upstreams, 5);
    node_is(u, 0, origins2[0], 0, 0);
    node_is(u, 1, origins2[1], 0, 1);
    node_is(u, 2, parents2[0], 1, 0);
    node_is(u, 3, parents2[1], 1, 1);
    node_is(u, 4, parents2[2], 1, 1);
    edge_upstream_node_stats_t ns;
    assert_int_equal(edge_upstream_node_stats(u, 5, &ns), EDGE_ERR_INVAL);
    assert_int_equal(edge_upstream_node_stats(u, 0, &ns), 0);
    assert_int_equal(ns.transitions, 1);

    /* The parent that is down is skipped; the others are picked as over the new list. */
    uint64_t h[3];
    hashes(parents2, 3, h);
    static const unsigned char up[3] = {0, 1, 1};
    for (int i = 0; i < 500; i++) {
        char k[32];
        key_name(i, k, sizeof(k));
        assert_string_equal(edge_upstream_pick(u, k), parents2[edge__hrw_pick(k, h, up, 3)]);
    }
    edge__upstream_set_healthy(u, 2, 1);
    for (int i = 0; i < 500; i++) {
        char k[32];
        key_name(i, k, sizeof(k));
        assert_string_equal(edge_upstream_pick(u, k), parents2[edge__hrw_pick(k, h, NULL, 3)]);
    }

    /* Refused lists leave the running ones as they were, and say which URL is wrong. */
    static const char *const bad[] = {"http://127.0.0.1:4/path"};
    next.origins = bad;
    next.n_origins = 1;
    assert_int_equal(edge_upstream_reconfigure(u, &next, err, sizeof(err)), EDGE_ERR_INVAL);
    assert_non_null(strstr(err, "bad origin URL: http://127.0.0.1:4/path"));
    next.origins = origins2;
    next.n_origins = 2;
    next.parents = bad;
    next.n_parents = 1;
    assert_int_equal(edge_upstream_reconfigure(u, &next, err, sizeof(err)), EDGE_ERR_INVAL);
    assert_non_null(strstr(err, "bad parent URL"));
    next.n_origins = next.n_parents = 0;
    assert_int_equal(edge_upstream_reconfigure(u, &next, err, sizeof(err)), EDGE_ERR_INVAL);
    edge_upstream_stats(u, &st);
    assert_int_equal(st.n_upstreams, 5);
    node_is(u, 0, origins2[0], 0, 0);
    node_is(u, 2, parents2[0], 1, 1);

    /* Origins only, with one URL turning from a parent into an origin: a new node, up. */
    static const char *const origins3[] = {"http://10.0.0.3:8080"};
    next.origins = origins3;
    next.n_origins = 1;
    next.n_parents = 0;
    edge__upstream_set_healthy(u, 2, 0);
    assert_int_equal(edge_upstream_reconfigure(u, &next, err, sizeof(err)), 0);
    node_is(u, 0, origins3[0], 0, 1);
    assert_string_equal(edge_upstream_pick(u, "live/a"), origins3[0]);

    int closed = 0;
    edge_upstream_close(u, on_closed, &closed);
    assert_int_equal(edge_upstream_reconfigure(u, &next, err, sizeof(err)), EDGE_ERR_STATE);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stable_and_order_independent),
        cmocka_unit_test(test_even_spread),
        cmocka_unit_test(test_minimal_movement),
        cmocka_unit_test(test_pick_api),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_reconfigure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
