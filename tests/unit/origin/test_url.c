/*
 * Unit tests for origin_url.c: the media URL space, good and bad paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hls/hls.h"
#include "origin_url.h"

static origin_media_url_t good(const char *path, int type, int kind)
{
    origin_media_url_t u;
    const char *err = NULL;
    if (origin_media_url_parse(path, &u, &err) != 0)
        fail_msg("\"%s\" refused: %s", path, err);
    assert_int_equal(u.type, type);
    assert_int_equal(u.kind, kind);
    return u;
}

static void test_good(void **state)
{
    origin_media_url_t u = good("room42/index.m3u8", ORIGIN_URL_MULTIVARIANT, -1);
    assert_string_equal(u.name, "room42");
    good("vip-room42/manifest.mpd", ORIGIN_URL_MPD, -1);
    good("a_b/v.m3u8", ORIGIN_URL_PLAYLIST, HLS_VIDEO);
    good("a_b/a.m3u8", ORIGIN_URL_PLAYLIST, HLS_AUDIO);
    u = good("x/v/init-7.mp4", ORIGIN_URL_INIT, HLS_VIDEO);
    assert_int_equal(u.num, 7);
    assert_string_equal(u.file, "init-7.mp4");
    u = good("x/a/0.m4s", ORIGIN_URL_SEGMENT, HLS_AUDIO);
    assert_int_equal(u.num, 0);
    u = good("x/a/18446744073709551615.m4s", ORIGIN_URL_SEGMENT, HLS_AUDIO);
    assert_true(u.num == UINT64_MAX);
    u = good("x/v/12.4294967295.m4s", ORIGIN_URL_PART, HLS_VIDEO);
    assert_int_equal(u.num, 12);
    assert_true(u.part == UINT32_MAX);
    assert_string_equal(u.file, "12.4294967295.m4s");
    char path[80];
    snprintf(path, sizeof(path), "%064d/index.m3u8", 1);
    good(path, ORIGIN_URL_MULTIVARIANT, -1);
}

static void test_bad(void **state)
{
    static const struct {
        const char *path;
        int rv;
    } bad[] = {
        {"", ORIGIN_URL_ERR_NAME},
        {"/index.m3u8", ORIGIN_URL_ERR_NAME},
        {"room42", ORIGIN_URL_ERR_NAME},
        {"room.42/index.m3u8", ORIGIN_URL_ERR_NAME},
        {"../index.m3u8", ORIGIN_URL_ERR_NAME},
        {"r%2e/index.m3u8", ORIGIN_URL_ERR_NAME},
        {"room42/", ORIGIN_URL_ERR_FILE},
        {"room42/index.m3u8/", ORIGIN_URL_ERR_FILE},
        {"room42/x.m3u8", ORIGIN_URL_ERR_FILE},
        {"room42/v", ORIGIN_URL_ERR_FILE},
        {"room42/v/", ORIGIN_URL_ERR_FILE},
        {"room42/v/../../etc/passwd", ORIGIN_URL_ERR_FILE},
        {"room42/v/007.m4s", ORIGIN_URL_ERR_FILE},  /* a second spelling of 7.m4s */
        {"room42/v/7.03.m4s", ORIGIN_URL_ERR_FILE}, /* and of 7.3.m4s */
        {"room42/v/init-01.mp4", ORIGIN_URL_ERR_FILE},
        {"room42/v/18446744073709551616.m4s", ORIGIN_URL_ERR_FILE}, /* 2^64 */
        {"room42/v/1.4294967296.m4s", ORIGIN_URL_ERR_FILE},         /* 2^32 */
        {"room42/v/init-4294967296.mp4", ORIGIN_URL_ERR_FILE},
        {"room42/v/+1.m4s", ORIGIN_URL_ERR_FILE},
        {"room42/v/-1.m4s", ORIGIN_URL_ERR_FILE},
        {"room42/v/ 1.m4s", ORIGIN_URL_ERR_FILE},
        {"room42/v/1.m4s.m4s", ORIGIN_URL_ERR_FILE},
        {"room42/v/1..m4s", ORIGIN_URL_ERR_FILE},
        {"room42/v/1.m4", ORIGIN_URL_ERR_FILE},
        {"room42/v/init-.mp4", ORIGIN_URL_ERR_FILE},
        {"room42/x/1.m4s", ORIGIN_URL_ERR_FILE},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        origin_media_url_t u;
        const char *err = NULL;
        int rv = origin_media_url_parse(bad[i].path, &u, &err);
        if (rv != bad[i].rv)
            fail_msg("\"%s\": %d, expected %d", bad[i].path, rv, bad[i].rv);
        assert_non_null(err);
    }
    char path[80];
    snprintf(path, sizeof(path), "%065d/index.m3u8", 1);
    origin_media_url_t u;
    const char *err;
    assert_int_equal(origin_media_url_parse(path, &u, &err), ORIGIN_URL_ERR_NAME);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
