/*
 * Unit tests for origin_streamid.c: origin_streamid_parse() and origin_stream_name().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "origin_ingest.h"

static int parse(const char *sid, size_t len, char *res, char *mode, const char **err)
{
    return origin_streamid_parse(sid, len, res, 256, mode, 16, err);
}

static void expect_good(const char *sid, const char *want_res, const char *want_mode,
                        const char *want_name)
{
    char res[256], mode[16], name[65];
    const char *err = NULL;

    if (parse(sid, strlen(sid), res, mode, &err) != 0)
        fail_msg("\"%s\" refused: %s", sid, err);
    assert_string_equal(res, want_res);
    assert_string_equal(mode, want_mode);
    assert_int_equal(origin_stream_name(res, name, sizeof(name), &err), 0);
    assert_string_equal(name, want_name);
}

static void test_good(void **state)
{
    expect_good("#!::r=live/room42,m=publish", "live/room42", "publish", "room42");
    expect_good("#!::m=publish,r=live/room42", "live/room42", "publish", "room42");
    expect_good("#!::u=bob,r=live/x", "live/x", "publish", "x");
    expect_good("live/room42", "live/room42", "publish", "room42");
    expect_good("room42", "room42", "publish", "room42");
    expect_good("#!::r=a/b/c-d_e", "a/b/c-d_e", "publish", "b-c-d_e");
    expect_good("live/vip/room42", "live/vip/room42", "publish", "vip-room42");
    /* m=request parses; the handshake callback refuses it with SRT_REJX_BAD_MODE. */
    expect_good("#!::r=live/x,m=request", "live/x", "request", "x");
    /* Exactly 64 characters is the longest name. */
    char sid[128];
    snprintf(sid, sizeof(sid), "#!::r=live/%064d", 7);
    char want[80];
    snprintf(want, sizeof(want), "%064d", 7);
    char res[256], mode[16], name[65];
    const char *err = NULL;
    assert_int_equal(parse(sid, strlen(sid), res, mode, &err), 0);
    assert_int_equal(origin_stream_name(res, name, sizeof(name), &err), 0);
    assert_string_equal(name, want);
}

static void test_bad(void **state)
{
    static const char *bad[] = {
        "",                                 /* empty */
        "#!::",                             /* no pairs */
        "#!::r=",                           /* empty resource */
        "#!::r=live/../x",                  /* '..' */
        "#!::r=live/..",                    /* '..' as the name */
        "#!::r=live/a.b",                   /* '.' in the name */
        "#!::r=live/ro om",                 /* space */
        "#!::r=live/room%41",               /* '%' */
        "#!::r=live/room42,r=live/y",       /* duplicate key */
        "#!::m=publish,m=publish,r=live/x", /* duplicate key */
        "#!::r=live/x,",                    /* trailing ',' */
        "#!::r",                            /* key without value */
        "#!::=live/x",                      /* empty key */
        "#!::u=bob",                        /* no r= */
        "#!:r=live/x",                      /* not "#!::" */
        "#!",                               /* unterminated prefix */
        "#!::r=live/x,m=",                  /* empty mode */
        "#!::r=live/x,m=PUBLISH",           /* mode not a lowercase word */
        "/live/x",                          /* leading '/' */
        "live//x",                          /* empty element */
        "live/x/",                          /* trailing '/' */
        "live/\xc3\xa9t\xc3\xa9",           /* non-ASCII */
        "live/x\n",                         /* control byte */
        "#!::r=live/x,,m=publish",          /* empty pair */
    };
    char res[256], mode[16];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = NULL;
        if (parse(bad[i], strlen(bad[i]), res, mode, &err) == 0)
            fail_msg("bad streamid #%zu \"%s\" accepted", i, bad[i]);
        assert_non_null(err);
    }

    /* Names over 64 characters. */
    char sid[128];
    const char *err = NULL;
    snprintf(sid, sizeof(sid), "#!::r=live/%065d", 7);
    assert_int_equal(parse(sid, strlen(sid), res, mode, &err), -1);
    snprintf(sid, sizeof(sid), "%065d", 7);
    assert_int_equal(parse(sid, strlen(sid), res, mode, &err), -1);

    /* A NUL byte inside the given length, and garbage bytes. */
    static const char nul[] = "live/a\0b";
    assert_int_equal(parse(nul, sizeof(nul) - 1, res, mode, &err), -1);
    static const char garbage[] = "\x01\xff\x80\x7f#!::";
    assert_int_equal(parse(garbage, sizeof(garbage) - 1, res, mode, &err), -1);
    assert_int_equal(origin_streamid_parse(NULL, 0, res, 256, mode, 16, &err), -1);
}

static void test_small_buffers(void **state)
{
    char res[8], mode[4], name[4];
    const char *err = NULL;

    assert_int_equal(origin_streamid_parse("live/room42", 11, res, sizeof(res), mode, 16, &err),
                     -1);
    assert_int_equal(origin_streamid_parse("live/x", 6, res, sizeof(res), mode, sizeof(mode), &err),
                     -1); /* "publish" does not fit */
    assert_int_equal(origin_stream_name("live/room42", name, sizeof(name), &err), -1);
    /* The length is honoured: the bytes after it are not read. */
    char res2[256], mode2[16];
    assert_int_equal(origin_streamid_parse("live/xyz", 6, res2, 256, mode2, 16, &err), 0);
    assert_string_equal(res2, "live/x");
}

static void test_stream_name(void **state)
{
    char name[65];
    const char *err = NULL;

    assert_int_equal(origin_stream_name("", name, sizeof(name), &err), -1);
    assert_int_equal(origin_stream_name("live/", name, sizeof(name), &err), -1);
    assert_int_equal(origin_stream_name("live/a.b", name, sizeof(name), &err), -1);
    assert_int_equal(origin_stream_name("a/b", name, sizeof(name), &err), 0);
    assert_string_equal(name, "b");
    assert_int_equal(origin_stream_name("live//b", name, sizeof(name), &err), -1);
    assert_int_equal(origin_stream_name("live/a b", name, sizeof(name), &err), -1);
    /* Every element after the first counts toward the 64 characters of a name. */
    char res[160];
    snprintf(res, sizeof(res), "live/%032d/%031d", 1, 2);
    assert_int_equal(origin_stream_name(res, name, sizeof(name), &err), 0);
    assert_int_equal(strlen(name), 64);
    snprintf(res, sizeof(res), "live/%032d/%032d", 1, 2);
    assert_int_equal(origin_stream_name(res, name, sizeof(name), &err), -1);
}

/* Every route to one name gives the same "live/NAME", so one rule: the hole where
 * "live/room42" took the name that "[prefix live/vip]" protected under "live/vip/room42". */
static void test_routes_one_name(void **state)
{
    static const char *routes[] = {"live/vip/room42", "live/vip-room42", "other/vip/room42",
                                   "vip-room42", "x/vip/room42"};
    char name[65], prefix[64];
    const char *err = NULL;

    assert_int_equal(origin_rule_prefix("live/vip/", prefix, sizeof(prefix), &err), 0);
    assert_string_equal(prefix, "live/vip-");
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        assert_int_equal(origin_stream_name(routes[i], name, sizeof(name), &err), 0);
        assert_string_equal(name, "vip-room42");
    }
    /* The open route to "room42" names another stream, which the rule does not cover. */
    assert_int_equal(origin_stream_name("live/room42", name, sizeof(name), &err), 0);
    assert_string_equal(name, "room42");
}

static void test_rule_prefix(void **state)
{
    char out[64];
    const char *err = NULL;

    assert_int_equal(origin_rule_prefix("", out, sizeof(out), &err), 0);
    assert_string_equal(out, "");
    assert_int_equal(origin_rule_prefix("live", out, sizeof(out), &err), 0);
    assert_string_equal(out, "live");
    assert_int_equal(origin_rule_prefix("live/", out, sizeof(out), &err), 0);
    assert_string_equal(out, "live/");
    assert_int_equal(origin_rule_prefix("live/vip", out, sizeof(out), &err), 0);
    assert_string_equal(out, "live/vip");
    assert_int_equal(origin_rule_prefix("live/a/b/", out, sizeof(out), &err), 0);
    assert_string_equal(out, "live/a-b-");
    assert_int_equal(origin_rule_prefix("studio/x", out, sizeof(out), &err), -1);
    assert_non_null(strstr(err, "live/"));
    assert_int_equal(origin_rule_prefix("liv", out, sizeof(out), &err), -1);
    assert_int_equal(origin_rule_prefix("lively", out, sizeof(out), &err), -1);
    assert_int_equal(origin_rule_prefix("live/a.b", out, sizeof(out), &err), -1);
    assert_int_equal(origin_rule_prefix("live/", out, 3, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_small_buffers),
        cmocka_unit_test(test_stream_name),
        cmocka_unit_test(test_routes_one_name),
        cmocka_unit_test(test_rule_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
