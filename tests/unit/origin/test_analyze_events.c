/*
 * Unit tests for origin_analyze_events.c: one line of the offline analyzer's events file to one
 * detector event (good lines of every type and spelling), or a skip, or a refusal with its
 * reason (bad JSON, a missing or bad time, a bad sku, qty, count or window_s, huge numbers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "origin_analyze.h"

/* Parses `line` with `st`; fails the test unless it gives `want`. */
/*
 * The event comes back by value: its ev.sku pointed into the callee's copy, so the tests read
 * `sku` itself, after checking that ev.sku was set (or not) as it should be.
 */
static origin_aev_t parse_as(origin_aev_state_t *st, const char *line, int want)
{
    origin_aev_t a;
    const char *why = NULL;
    int rv = origin__aev_parse(st, line, strlen(line), &a, &why);
    if (rv != want)
        fail_msg("%s: %d, not %d (%s)", line, rv, want, why ? why : "no reason");
    if (rv == ORIGIN_AEV_BAD && (why == NULL || why[0] == '\0'))
        fail_msg("%s: refused without a reason", line);
    if (rv == ORIGIN_AEV_EVENT &&
        (a.ev.type == SHORTS_EV_CHAT ? a.ev.sku != NULL : a.ev.sku != a.sku))
        fail_msg("%s: ev.sku is not set as it should be", line);
    return a;
}

static origin_aev_t good(const char *line)
{
    origin_aev_state_t st;
    origin__aev_state_init(&st);
    return parse_as(&st, line, ORIGIN_AEV_EVENT);
}

static void expect_bad(const char *line, const char *reason)
{
    origin_aev_state_t st;
    origin_aev_t a;
    const char *why = NULL;

    origin__aev_state_init(&st);
    int rv = origin__aev_parse(&st, line, strlen(line), &a, &why);
    if (rv != ORIGIN_AEV_BAD)
        fail_msg("%s: accepted (%d)", line, rv);
    if (why == NULL || strstr(why, reason) == NULL)
        fail_msg("%s: \"%s\" does not say \"%s\"", line, why ? why : "(null)", reason);
}

static void test_each_type(void **state)
{
    origin_aev_t a = good("{\"type\":\"product_pinned\",\"t\":1.5,\"sku\":\"SKU-1\","
                          "\"title\":\"Kettle\",\"price\":\"19.99\"}");
    assert_int_equal(a.ev.type, SHORTS_EV_PIN);
    assert_true(a.ev.t == 1.5);
    assert_string_equal(a.sku, "SKU-1");

    a = good("{\"type\":\"product_unpinned\",\"t\":2,\"sku\":\"SKU-1\"}");
    assert_int_equal(a.ev.type, SHORTS_EV_UNPIN);
    assert_true(a.ev.t == 2);

    a = good("{\"type\":\"add_to_cart\",\"t\":3.25,\"sku\":\"B\",\"qty\":3,\"viewer\":\"v1\"}");
    assert_int_equal(a.ev.type, SHORTS_EV_CART);
    assert_int_equal(a.ev.qty, 3);
    assert_string_equal(a.sku, "B");
    a = good("{\"type\":\"add_to_cart\",\"t\":0,\"sku\":\"B\"}");
    assert_int_equal(a.ev.qty, 1); /* the default */

    a = good("{\"type\":\"chat_rate\",\"t\":-1.5,\"count\":42,\"window_s\":2.5}");
    assert_int_equal(a.ev.type, SHORTS_EV_CHAT);
    assert_true(a.ev.t == -1.5); /* before the first video frame: still on the timeline */
    assert_true(a.ev.count == 42 && a.ev.window_s == 2.5);
}

static void test_spellings(void **state)
{
    /* Fields under data, and product_id as sku's alias, give the same event as flat ones. */
    origin_aev_t a = good("{\"type\":\"add_to_cart\",\"t\":4,\"data\":{\"product_id\":\"P9\","
                          "\"qty\":2}}");
    assert_int_equal(a.ev.type, SHORTS_EV_CART);
    assert_string_equal(a.sku, "P9");
    assert_int_equal(a.ev.qty, 2);
    a = good("{\"type\":\"product_pinned\",\"t\":4,\"product_id\":\"P9\"}");
    assert_string_equal(a.sku, "P9");
    a = good("{\"type\":\"chat_rate\",\"t\":4,\"data\":{\"count\":0,\"window_s\":10}}");
    assert_true(a.ev.count == 0 && a.ev.window_s == 10);
    /* Flat and nested fields may mix, as long as none is in both. */
    a = good("{\"type\":\"add_to_cart\",\"t\":4,\"sku\":\"S\",\"data\":{\"qty\":7}}");
    assert_string_equal(a.sku, "S");
    assert_int_equal(a.ev.qty, 7);
    /* A 64-byte sku is the longest. */
    a = good("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":"
             "\"0123456789012345678901234567890123456789012345678901234567890123\"}");
    assert_int_equal(strlen(a.sku), 64);
}

static void test_wall_clock(void **state)
{
    origin_aev_state_t st;
    origin__aev_state_init(&st);

    /* ts_ms before any stream_start has no timeline to land on. */
    parse_as(&st, "{\"type\":\"add_to_cart\",\"ts_ms\":1764322212500,\"sku\":\"A\"}",
             ORIGIN_AEV_BAD);
    parse_as(&st, "{\"type\":\"stream_start\",\"epoch_ms\":1764322200000}", ORIGIN_AEV_SKIP);
    origin_aev_t a = parse_as(
        &st, "{\"type\":\"add_to_cart\",\"ts_ms\":1764322212500,\"sku\":\"A\"}", ORIGIN_AEV_EVENT);
    assert_true(a.ev.t == 12.5);
    a = parse_as(&st, "{\"type\":\"product_pinned\",\"ts_ms\":1764322199000,\"sku\":\"A\"}",
                 ORIGIN_AEV_EVENT);
    assert_true(a.ev.t == -1);
    /* t still works beside ts_ms lines. */
    a = parse_as(&st, "{\"type\":\"add_to_cart\",\"t\":3,\"sku\":\"A\"}", ORIGIN_AEV_EVENT);
    assert_true(a.ev.t == 3);
    const char *why = NULL;
    origin_aev_t b;
    const char *again = "{\"type\":\"stream_start\",\"epoch_ms\":1764322300000}";
    assert_int_equal(origin__aev_parse(&st, again, strlen(again), &b, &why), ORIGIN_AEV_BAD);
    assert_non_null(strstr(why, "a second stream_start"));
    assert_int_equal(st.epoch_ms, 1764322200000LL); /* the first one stays */
}

static void test_skipped(void **state)
{
    origin_aev_state_t st;
    origin__aev_state_init(&st);
    parse_as(&st, "", ORIGIN_AEV_SKIP);
    parse_as(&st, "  \t\r", ORIGIN_AEV_SKIP);
    /* An unknown type is skipped whatever else its line holds. */
    parse_as(&st, "{\"type\":\"viewer_count\",\"t\":1,\"count\":9}", ORIGIN_AEV_SKIP);
    parse_as(&st, "{\"type\":\"price_update\",\"sku\":\"\"}", ORIGIN_AEV_SKIP);
    parse_as(&st, "{\"type\":\"short_ready\"}", ORIGIN_AEV_SKIP);
    /* Not NUL-terminated: only `len` bytes are read. */
    const char buf[] = "{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"A\"}garbage";
    origin_aev_t a;
    const char *why;
    assert_int_equal(origin__aev_parse(&st, buf, sizeof(buf) - 1 - 7, &a, &why), ORIGIN_AEV_EVENT);
}

static void test_reasons(void **state)
{
    expect_bad("{oops", "invalid JSON at column");
    expect_bad("[1,2]", "expected a JSON object");
    expect_bad("\"add_to_cart\"", "invalid JSON");
    expect_bad("{\"t\":1}", "type: missing");
    expect_bad("{\"type\":7,\"t\":1}", "type: expected a string");
    expect_bad("{\"type\":\"add_to_cart\",\"sku\":\"A\"}", "time missing");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":\"3\",\"sku\":\"A\"}", "t: expected a number");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":null,\"sku\":\"A\"}", "t: expected a number");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"ts_ms\":5,\"sku\":\"A\"}", "both given");
    /* JSON has no NaN; huge numbers overflow or leave the timeline. */
    expect_bad("{\"type\":\"add_to_cart\",\"t\":NaN,\"sku\":\"A\"}", "invalid JSON");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1e999,\"sku\":\"A\"}", "invalid JSON");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1e300,\"sku\":\"A\"}", "t: out of range");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":-2e7,\"sku\":\"A\"}", "t: out of range");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":99999999999999999999999,\"sku\":\"A\"}",
               "invalid JSON");
    expect_bad("{\"type\":\"add_to_cart\",\"ts_ms\":-5,\"sku\":\"A\"}", "ts_ms: expected");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1}", "sku (or product_id): missing");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"\"}", "1 to 64 bytes");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":12}", "sku: expected a string");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":"
               "\"01234567890123456789012345678901234567890123456789012345678901234\"}",
               "1 to 64 bytes");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"a\\nb\"}", "control characters");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"a\\u0000b\"}", "invalid JSON");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"A\",\"product_id\":\"B\"}",
               "sku and product_id");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"A\",\"data\":{\"sku\":\"A\"}}",
               "sku: given both flat and under data");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"A\",\"sku\":\"B\"}", "duplicate");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"data\":[]}", "data: expected a JSON object");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"A\",\"qty\":-1}", "qty: expected");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"A\",\"qty\":0}", "qty: expected");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"A\",\"qty\":1.5}", "qty: expected");
    expect_bad("{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"A\",\"qty\":4294967297}",
               "qty: expected an integer from 1");
    expect_bad("{\"type\":\"chat_rate\",\"t\":1,\"window_s\":10}", "count: missing");
    expect_bad("{\"type\":\"chat_rate\",\"t\":1,\"count\":-1,\"window_s\":10}", "count: expected");
    expect_bad("{\"type\":\"chat_rate\",\"t\":1,\"count\":1e12,\"window_s\":10}",
               "count: expected");
    expect_bad("{\"type\":\"chat_rate\",\"t\":1,\"count\":3}", "window_s: missing");
    expect_bad("{\"type\":\"chat_rate\",\"t\":1,\"count\":3,\"window_s\":0}", "window_s: expected");
    expect_bad("{\"type\":\"chat_rate\",\"t\":1,\"count\":3,\"window_s\":\"10\"}",
               "window_s: expected");
    expect_bad("{\"type\":\"stream_start\"}", "epoch_ms missing");
    expect_bad("{\"type\":\"stream_start\",\"epoch_ms\":\"now\"}", "epoch_ms: expected");
}

static void test_long_line(void **state)
{
    size_t n = ORIGIN_AEV_MAX_LINE + 100;
    char *line = malloc(n + 1);
    assert_non_null(line);
    memset(line, ' ', n);
    const char *head = "{\"type\":\"add_to_cart\",\"t\":1,\"sku\":\"A\"}";
    memcpy(line, head, strlen(head));
    line[n] = '\0';
    expect_bad(line, "line over 65536 bytes");
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_type),  cmocka_unit_test(test_spellings),
        cmocka_unit_test(test_wall_clock), cmocka_unit_test(test_skipped),
        cmocka_unit_test(test_reasons),    cmocka_unit_test(test_long_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
