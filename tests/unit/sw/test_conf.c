/* sw_conf: the table-driven config reader, its value parsers and its error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sw/conf.h"
#include "sw/log.h"

typedef struct cfg {
    char *addr;
    int64_t count;
    int64_t size;
    int64_t dur;
    int flag;
    int level;
    char last_arg[64];
    char last_val[64];
} cfg_t;

static int custom(void *c, const char *arg, const char *value, const char **err)
{
    cfg_t *cfg = c;
    if (strcmp(value, "bad") == 0) {
        *err = "custom says no";
        return -1;
    }
    snprintf(cfg->last_arg, sizeof(cfg->last_arg), "%s", arg);
    snprintf(cfg->last_val, sizeof(cfg->last_val), "%s", value);
    return 0;
}

static const sw_conf_key_t keys[] = {
    {"", "addr", SW_CONF_STR, offsetof(cfg_t, addr), 0, 0, NULL, "", ""},
    {"", "count", SW_CONF_INT, offsetof(cfg_t, count), 1, 10, NULL, "", ""},
    {"s", "size", SW_CONF_SIZE, offsetof(cfg_t, size), 0, 0, NULL, "", ""},
    {"s", "dur", SW_CONF_DURATION, offsetof(cfg_t, dur), 100, 5000, NULL, "", ""},
    {"s", "flag", SW_CONF_BOOL, offsetof(cfg_t, flag), 0, 0, NULL, "", ""},
    {"", "level", SW_CONF_LOGLEVEL, offsetof(cfg_t, level), 0, 0, NULL, "", ""},
    {"rule", "x", SW_CONF_CUSTOM, 0, 0, 0, custom, "", ""},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

static void test_good(void **state)
{
    cfg_t c = {0};
    char err[256];
    const char *text = "; comment\naddr = 1.2.3.4:5\ncount = 7\nlevel = debug\n[s]\nsize = 64k\n"
                       "dur = 1.5s\nflag = yes\n[rule live/vip]\nx = hello\n";
    assert_int_equal(sw_conf_load_string(text, "t.conf", keys, &c, err, sizeof(err)), 0);
    assert_string_equal(c.addr, "1.2.3.4:5");
    assert_int_equal(c.count, 7);
    assert_int_equal(c.size, 65536);
    assert_int_equal(c.dur, 1500);
    assert_int_equal(c.flag, 1);
    assert_int_equal(c.level, SW_LOG_DEBUG);
    assert_string_equal(c.last_arg, "live/vip");
    assert_string_equal(c.last_val, "hello");
    /* A flag overrides, and a second string replaces the first without leaking. */
    assert_int_equal(sw_conf_set(keys, &c, "", "addr", "[::1]:9", err, sizeof(err)), 0);
    assert_string_equal(c.addr, "[::1]:9");
    sw_conf_free_strings(keys, &c);
    assert_null(c.addr);
}

static void expect_error(const char *text, const char *needle1, const char *needle2)
{
    cfg_t c = {0};
    char err[256] = "";
    assert_int_equal(sw_conf_load_string(text, "t.conf", keys, &c, err, sizeof(err)), -1);
    if (strstr(err, needle1) == NULL || strstr(err, needle2) == NULL)
        fail_msg("\"%s\" lacks \"%s\" or \"%s\"", err, needle1, needle2);
    sw_conf_free_strings(keys, &c);
}

static void test_errors(void **state)
{
    expect_error("nope = 1\n", "t.conf:1:", "nope: unknown key");
    expect_error("addr = x\n\ncount = 11\n",
                 "t.conf:3:", "count = 11: value out of range (1 to 10)");
    expect_error("count = 3x\n", "t.conf:1:", "whole number");
    expect_error("[s]\ndur = 2\n", "t.conf:2:", "unit");
    expect_error("[s]\ndur = 50ms\n", "t.conf:2:", "(100ms to 5000ms)");
    expect_error("[s]\nsize = 12q\n", "t.conf:2:", "size");
    expect_error("[s]\nflag = maybe\n", "t.conf:2:", "yes or no");
    expect_error("level = chatty\n", "t.conf:1:", "error, warn, info or debug");
    expect_error("[rule a]\nx = bad\n", "t.conf:2:", "custom says no");
    expect_error("[s extra]\nsize = 1\n", "t.conf:2:", "takes no argument");
    expect_error("[other]\nsize = 1\n", "t.conf:2:", "[other] size: unknown key");
    expect_error("garbage line\n", "t.conf:1:", "syntax error");
    /* The first error is the one reported, even when later lines are bad too. */
    expect_error("count = 5\nbad1 = 1\nbad2 = 2\n", "t.conf:2:", "bad1");
}

static void test_parsers(void **state)
{
    int64_t v;
    assert_int_equal(sw_conf_parse_duration("334ms", &v), 0);
    assert_int_equal(v, 334);
    assert_int_equal(sw_conf_parse_duration("2h", &v), 0);
    assert_int_equal(v, 7200000);
    assert_int_equal(sw_conf_parse_duration("0.5m", &v), 0);
    assert_int_equal(v, 30000);
    assert_int_equal(sw_conf_parse_duration("-1s", &v), -1);
    assert_int_equal(sw_conf_parse_duration("1e300h", &v), -1);
    assert_int_equal(sw_conf_parse_duration("", &v), -1);
    assert_int_equal(sw_conf_parse_duration("5 s", &v), -1);
    assert_int_equal(sw_conf_parse_size("2G", &v), 0);
    assert_int_equal(v, 2LL << 30);
    assert_int_equal(sw_conf_parse_size("10kb", &v), -1);
    assert_int_equal(sw_conf_parse_size("99999999999999999999", &v), -1);
    assert_int_equal(sw_conf_parse_size("9223372036854775807G", &v), -1);
}

static void test_missing_file(void **state)
{
    cfg_t c = {0};
    char err[256];
    assert_int_equal(sw_conf_load("/nonexistent/x.conf", keys, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/x.conf: cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
