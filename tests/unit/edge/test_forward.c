/*
 * test_forward.c: forward_prefixes, the paths an edge fetches upstream (edge_daemon.h):
 * edge__forward_parse_list() and edge__forwarded() on normalized keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "edge/http_util.h"
#include "edge_daemon.h"

static int fwd(const edge_prefix_t *l, size_t n, const char *path, const char *query)
{
    char key[EDGE_KEY_MAX];
    assert_int_equal(edge_key_normalize(path, query, NULL, key, sizeof(key), NULL), 0);
    return edge__forwarded(l, n, key);
}

static void test_default_list(void **state)
{
    edge_prefix_t l[EDGE_FORWARD_MAX];
    const char *err = NULL;
    edge_config_t c;
    (void)state;

    edge_config_init(&c);
    assert_int_equal(c.n_forward, 2);
    assert_string_equal(c.forward[0].s, "/live/");
    assert_string_equal(c.forward[1].s, "/shorts/");
    edge_config_dispose(&c);

    int n = edge__forward_parse_list("/live/, /shorts/", l, EDGE_FORWARD_MAX, &err);
    assert_int_equal(n, 2);
    assert_true(fwd(l, 2, "/live/room/v.m3u8", "_HLS_msn=3&_HLS_part=1"));
    assert_true(fwd(l, 2, "/live/room/v/12.m4s", NULL));
    assert_true(fwd(l, 2, "/shorts/x/index.m3u8", NULL));
    assert_true(fwd(l, 2, "/%6Cive/room/v.m3u8", NULL)); /* decoded to /live/ */
    assert_true(fwd(l, 2, "//live//room/v.m3u8", NULL)); /* // collapses */
    assert_false(fwd(l, 2, "/api/streams", NULL));
    assert_false(fwd(l, 2, "/api/streams/room", NULL));
    assert_false(fwd(l, 2, "/metrics", NULL));
    assert_false(fwd(l, 2, "/%61pi/streams", NULL));
    assert_false(fwd(l, 2, "/api/./streams", NULL));
    assert_false(fwd(l, 2, "/live", NULL)); /* "/live/" needs its slash */
    assert_false(fwd(l, 2, "/livex/a", NULL));
    assert_false(fwd(l, 2, "/LIVE/a", NULL)); /* case-sensitive, as the origin is */
    assert_false(fwd(l, 2, "/", NULL));
}

static void test_exact_prefix(void **state)
{
    edge_prefix_t l[EDGE_FORWARD_MAX];
    const char *err = NULL;
    (void)state;

    /* Without a trailing slash: that path, or that path followed by '/' or a query. */
    assert_int_equal(edge__forward_parse_list("/api/shorts /live/", l, EDGE_FORWARD_MAX, &err), 2);
    assert_true(fwd(l, 2, "/api/shorts", NULL));
    assert_true(fwd(l, 2, "/api/shorts", "dvr=1"));
    assert_true(fwd(l, 2, "/api/shorts/42", NULL));
    assert_false(fwd(l, 2, "/api/shortsx", NULL));
    assert_false(fwd(l, 2, "/api/short", NULL));
    assert_false(fwd(l, 2, "/api/streams", NULL));

    assert_int_equal(edge__forward_parse_list("/", l, EDGE_FORWARD_MAX, &err), 1);
    assert_true(fwd(l, 1, "/anything/at/all", NULL));
    assert_true(fwd(l, 1, "/api/streams", NULL));
}

static void test_bad_lists(void **state)
{
    edge_prefix_t l[EDGE_FORWARD_MAX];
    char many[512] = "", long_one[80];
    (void)state;

    static const char *const bad[] = {"",     " , ",   "live/", "/a?b", "/a%2Fb",
                                      "/a#b", "/a\\b", "/a//b", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        const char *err = NULL;
        assert_int_equal(edge__forward_parse_list(bad[i], l, EDGE_FORWARD_MAX, &err), -1);
        assert_non_null(err);
    }
    for (int i = 0; i < EDGE_FORWARD_MAX + 1; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "/p%d/,", i);
    const char *err = NULL;
    assert_int_equal(edge__forward_parse_list(many, l, EDGE_FORWARD_MAX, &err), -1);
    assert_non_null(strstr(err, "too many"));
    memset(long_one, 'a', sizeof(long_one) - 1);
    long_one[0] = '/';
    long_one[sizeof(long_one) - 1] = '\0';
    err = NULL;
    assert_int_equal(edge__forward_parse_list(long_one, l, EDGE_FORWARD_MAX, &err), -1);
    long_one[EDGE_FORWARD_MAX_LEN] = '\0'; /* exactly the longest allowed */
    assert_int_equal(edge__forward_parse_list(long_one, l, EDGE_FORWARD_MAX, &err), 1);
    assert_int_equal(l[0].len, EDGE_FORWARD_MAX_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_list),
        cmocka_unit_test(test_exact_prefix),
        cmocka_unit_test(test_bad_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
