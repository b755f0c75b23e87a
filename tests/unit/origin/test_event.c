/*
 * Unit tests for origin_event.c: the POST body validator (a precise reason for every refusal),
 * the client message, entries read from Redis, RFC 3339 times and room names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "origin_int.h"

#define PIN_DATA                                                                                   \
    "{\"sku\":\"SKU-1\",\"title\":\"Kettle\",\"price\":\"19.99\",\"currency\":\"EUR\","            \
    "\"image\":\"https://shop.test/k.jpg\",\"stock\":12}"

static void expect_refused(const char *body, const char *reason)
{
    origin_event_in_t ev;
    char err[256] = "";
    int rv = origin__event_parse((const uint8_t *)body, strlen(body), &ev, err, sizeof(err));
    if (rv != -1)
        fail_msg("%s: accepted", body);
    if (strstr(err, reason) == NULL)
        fail_msg("%s: \"%s\" does not say \"%s\"", body, err, reason);
}

static void test_accepts_each_type(void **state)
{
    static const char *const good[] = {
        "{\"type\":\"product_pinned\",\"data\":" PIN_DATA "}",
        "{\"data\":{\"sku\":\"a\"},\"type\":\"product_unpinned\"}",
        "{\"type\":\"price_update\",\"data\":{\"sku\":\"a\",\"price\":\"0.5\",\"currency\":\"USD\"}"
        "}",
        "{\"type\":\"stock_update\",\"data\":{\"sku\":\"a\",\"stock\":0}}",
        "{\"type\":\"flash_sale\",\"data\":{\"sku\":\"a\",\"price\":\"1\",\"currency\":\"EUR\","
        "\"ends_at\":\"2026-11-28T10:00:00Z\"}}",
        "{\"type\":\"short_ready\",\"data\":{\"short_id\":\"s\",\"url\":\"https://x/"
        "s.m3u8\",\"title\":"
        "\"t\",\"duration\":12.5}}",
        "{\"type\":\"chat_rate\",\"data\":{\"count\":0,\"window_s\":5}}",
        "{\"type\":\"chat_rate\",\"data\":{\"count\":1200,\"window_s\":0.5}}",
    };
    for (size_t i = 0; i < SW_ARRAY_SIZE(good); i++) {
        origin_event_in_t ev;
        char err[256] = "";
        if (origin__event_parse((const uint8_t *)good[i], strlen(good[i]), &ev, err, sizeof(err)) !=
            0)
            fail_msg("%s refused: %s", good[i], err);
        assert_non_null(origin__event_type_name(ev.type));
        origin__event_in_dispose(&ev);
    }
}

static void test_reasons(void **state)
{
    expect_refused("{oops", "invalid JSON at line 1");
    expect_refused("", "invalid JSON");
    expect_refused("\"str\"", "invalid JSON");
    expect_refused("[]", "expected a JSON object");
    expect_refused("{\"data\":{}}", "type: missing");
    expect_refused("{\"type\":1,\"data\":{}}", "type: expected a string");
    expect_refused("{\"type\":\"product_zapped\",\"data\":{}}",
                   "unknown event type \"product_zapped\"");
    expect_refused("{\"type\":\"product_unpinned\"}", "data: missing");
    expect_refused("{\"type\":\"product_unpinned\",\"data\":\"x\"}",
                   "data: expected a JSON object");
    expect_refused("{\"type\":\"product_unpinned\",\"data\":{\"sku\":\"a\"},\"x\":1}",
                   "unknown member \"x\"");
    expect_refused("{\"type\":\"product_unpinned\",\"data\":{}}", "data.sku: missing");
    expect_refused("{\"type\":\"product_unpinned\",\"data\":{\"sku\":\"\"}}",
                   "data.sku: expected a string of 1");
    expect_refused("{\"type\":\"product_unpinned\",\"data\":{\"sku\":1}}",
                   "data.sku: expected a string");
    expect_refused("{\"type\":\"product_unpinned\",\"data\":{\"sku\":\"a\",\"qty\":1}}",
                   "data.qty: not a field of product_unpinned");
    expect_refused("{\"type\":\"stock_update\",\"data\":{\"sku\":\"a\",\"stock\":-1}}",
                   "data.stock: expected an integer >= 0");
    expect_refused("{\"type\":\"stock_update\",\"data\":{\"sku\":\"a\",\"stock\":1.5}}",
                   "data.stock");
    static const char *const prices[] = {"19.999999", "1e3",   "-1", ".5",
                                         "1.",        "19,99", "",   "1234567890123"};
    for (size_t i = 0; i < SW_ARRAY_SIZE(prices); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"type\":\"price_update\",\"data\":{\"sku\":\"a\",\"price\":\"%s\","
                 "\"currency\":\"EUR\"}}",
                 prices[i]);
        expect_refused(body, "data.price");
    }
    expect_refused("{\"type\":\"price_update\",\"data\":{\"sku\":\"a\",\"price\":19.99,"
                   "\"currency\":\"EUR\"}}",
                   "data.price: expected a string");
    expect_refused("{\"type\":\"price_update\",\"data\":{\"sku\":\"a\",\"price\":\"1\","
                   "\"currency\":\"eur\"}}",
                   "data.currency");
    expect_refused("{\"type\":\"flash_sale\",\"data\":{\"sku\":\"a\",\"price\":\"1\","
                   "\"currency\":\"EUR\",\"ends_at\":\"2026-11-28 10:00:00\"}}",
                   "data.ends_at: expected RFC 3339 UTC");
    expect_refused(
        "{\"type\":\"short_ready\",\"data\":{\"short_id\":\"s\",\"url\":\"ftp://x\",\"title\":"
        "\"t\",\"duration\":1}}",
        "data.url: expected an http");
    expect_refused("{\"type\":\"short_ready\",\"data\":{\"short_id\":\"s\",\"url\":\"https://x y\","
                   "\"title\":\"t\",\"duration\":1}}",
                   "data.url: expected a URL without spaces");
    /* chat_rate: count messages over window_s seconds. */
    expect_refused("{\"type\":\"chat_rate\",\"data\":{\"count\":-1,\"window_s\":5}}",
                   "data.count: expected an integer >= 0");
    expect_refused("{\"type\":\"chat_rate\",\"data\":{\"count\":1.5,\"window_s\":5}}",
                   "data.count: expected an integer >= 0");
    expect_refused("{\"type\":\"chat_rate\",\"data\":{\"count\":\"3\",\"window_s\":5}}",
                   "data.count: expected an integer >= 0");
    expect_refused("{\"type\":\"chat_rate\",\"data\":{\"count\":3,\"window_s\":0}}",
                   "data.window_s: expected a number of seconds above 0");
    expect_refused("{\"type\":\"chat_rate\",\"data\":{\"count\":3,\"window_s\":-5}}",
                   "data.window_s: expected a number of seconds above 0");
    expect_refused("{\"type\":\"chat_rate\",\"data\":{\"count\":3,\"window_s\":7200}}",
                   "data.window_s: expected a number of seconds above 0, at most 3600");
    expect_refused("{\"type\":\"chat_rate\",\"data\":{\"count\":3,\"window_s\":\"5\"}}",
                   "data.window_s: expected a number");
    expect_refused("{\"type\":\"chat_rate\",\"data\":{\"count\":3}}",
                   "data.window_s: missing (required for chat_rate)");
    expect_refused("{\"type\":\"chat_rate\",\"data\":{\"window_s\":5}}",
                   "data.count: missing (required for chat_rate)");
    expect_refused("{\"type\":\"chat_rate\",\"data\":{\"count\":3,\"window_s\":5,\"sku\":\"a\"}}",
                   "data.sku: not a field of chat_rate");
    /* Duplicate members, NUL in strings. */
    expect_refused("{\"type\":\"product_unpinned\",\"type\":\"x\",\"data\":{\"sku\":\"a\"}}",
                   "invalid JSON");
    expect_refused("{\"type\":\"product_unpinned\",\"data\":{\"sku\":\"a\\u0000\"}}",
                   "invalid JSON");

    char *big = malloc(ORIGIN_EVENT_MAX_BODY + 2);
    memset(big, ' ', ORIGIN_EVENT_MAX_BODY + 1);
    big[ORIGIN_EVENT_MAX_BODY + 1] = '\0';
    expect_refused(big, "body over 4096 bytes");
    free(big);
}

static void test_message(void **state)
{
    origin_event_in_t ev;
    char err[256];
    const char *body = "{\"type\":\"product_pinned\",\"data\":" PIN_DATA "}";
    assert_int_equal(
        origin__event_parse((const uint8_t *)body, strlen(body), &ev, err, sizeof(err)), 0);
    assert_string_equal(ev.type, "product_pinned");
    assert_string_equal(ev.sku, "SKU-1");
    assert_string_equal(ev.data, PIN_DATA);
    sw_str_t m;
    sw_str_init(&m);
    assert_int_equal(
        origin__event_message(&m, ev.type, "1795858359223-0", 1795858359223LL, ev.inner), 0);
    assert_string_equal(m.p, "{\"type\":\"product_pinned\",\"id\":\"1795858359223-0\","
                             "\"media_time\":\"2026-11-28T09:32:39.223Z\",\"sku\":\"SKU-1\","
                             "\"title\":\"Kettle\",\"price\":\"19.99\",\"currency\":\"EUR\","
                             "\"image\":\"https://shop.test/k.jpg\",\"stock\":12}");
    sw_str_dispose(&m);
    origin__event_in_dispose(&ev);

    /* short_ready names its short short_id, which the message keeps beside its own id. */
    body = "{\"type\":\"short_ready\",\"data\":{\"short_id\":\"s\",\"url\":\"https://x\","
           "\"title\":\"\\u00e9\",\"duration\":2}}";
    assert_int_equal(
        origin__event_parse((const uint8_t *)body, strlen(body), &ev, err, sizeof(err)), 0);
    assert_string_equal(
        ev.inner, "\"short_id\":\"s\",\"url\":\"https://x\",\"title\":\"\\u00E9\",\"duration\":2");
    origin__event_in_dispose(&ev);
}

static void test_entries(void **state)
{
    const char *type;
    char *inner;
    const char *d = "{\"sku\":\"a\",\"type\":\"evil\",\"media_time\":\"x\",\"stock\":3}";
    assert_int_equal(origin__event_from_entry("stock_update", d, strlen(d), &type, &inner), 0);
    assert_string_equal(type, "stock_update");
    assert_string_equal(inner, "\"sku\":\"a\",\"stock\":3");
    free(inner);
    assert_int_equal(origin__event_from_entry("nonsense", "{}", 2, &type, &inner), -1);
    assert_null(inner);
    assert_int_equal(origin__event_from_entry("stock_update", "[1]", 3, &type, &inner), -1);
    assert_int_equal(origin__event_from_entry("stock_update", "{", 1, &type, &inner), -1);
    assert_int_equal(origin__event_from_entry("stock_update", "{}", 2, &type, &inner), 0);
    assert_string_equal(inner, "");
    free(inner);
    /* chat_rate is read back from Redis like any event, but only the detector wants it. */
    d = "{\"count\":12,\"window_s\":5}";
    assert_int_equal(origin__event_from_entry("chat_rate", d, strlen(d), &type, &inner), 0);
    assert_string_equal(type, "chat_rate");
    free(inner);
    assert_false(origin__event_in_media("chat_rate"));
    assert_true(origin__event_in_media("product_pinned"));
    assert_true(origin__event_in_media("short_ready"));
    assert_false(origin__event_in_media("nonsense"));
}

static void test_utc_and_names(void **state)
{
    assert_int_equal(origin__parse_utc_ms("2026-11-28T00:00:00Z"), 1795824000000LL);
    assert_int_equal(origin__parse_utc_ms("2026-11-28T09:32:39.223Z"), 1795858359223LL);
    assert_int_equal(origin__parse_utc_ms("2026-11-28T09:32:39.2Z"), -1);
    assert_int_equal(origin__parse_utc_ms("2026-11-28T09:32:39+00:00"), -1);
    assert_int_equal(origin__parse_utc_ms("2026-11-28T24:00:00Z"), -1);
    assert_int_equal(origin__parse_utc_ms(""), -1);
    assert_true(origin__room_name_valid("room42", 6));
    assert_true(origin__room_name_valid("a.b-c_D", 7));
    assert_false(origin__room_name_valid("", 0));
    assert_false(origin__room_name_valid("a/b", 3));
    assert_false(origin__room_name_valid("a b", 3));
    char name[66];
    memset(name, 'r', 65);
    assert_true(origin__room_name_valid(name, 64));
    assert_false(origin__room_name_valid(name, 65));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_each_type), cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_message),           cmocka_unit_test(test_entries),
        cmocka_unit_test(test_utc_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
