/*
 * test_overlay.c: the overlay's message formats (edge_overlay_msg.c): what a viewer may send,
 * stream ids, and the server messages built from stream entries and the state hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edge_overlay_int.h"

static int parse(const char *s, edge_overlay_msg_t *m, const char **why)
{
    return edge_overlay_parse((const uint8_t *)s, strlen(s), m, why);
}

static void test_hello(void **state)
{
    edge_overlay_msg_t m;
    const char *why = NULL;
    assert_int_equal(parse("{\"type\":\"hello\"}", &m, &why), 0);
    assert_int_equal(m.type, EDGE_OVERLAY_HELLO);
    assert_string_equal(m.last_event_id, "");
    assert_int_equal(parse("{\"type\":\"hello\",\"last_event_id\":null}", &m, &why), 0);
    assert_string_equal(m.last_event_id, "");
    assert_int_equal(parse("{\"type\":\"hello\",\"last_event_id\":\"1764322200123-4\"}", &m, &why),
                     0);
    assert_string_equal(m.last_event_id, "1764322200123-4");
    static const char *const bad[] = {
        "{\"type\":\"hello\",\"last_event_id\":17}",
        "{\"type\":\"hello\",\"last_event_id\":\"1764322200123\"}",
        "{\"type\":\"hello\",\"last_event_id\":\"-1\"}",
        "{\"type\":\"hello\",\"last_event_id\":\"1-2-3\"}",
        "{\"type\":\"hello\",\"last_event_id\":\"184467440737095516160-0\"}",
        "{\"type\":\"hello\",\"last_event_id\":\"1-0 \"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(parse(bad[i], &m, &why), EDGE_ERR_INVAL);
        assert_non_null(why);
    }
}

static void test_add_to_cart(void **state)
{
    edge_overlay_msg_t m;
    const char *why = NULL;
    assert_int_equal(
        parse("{\"type\":\"add_to_cart\",\"sku\":\"SKU-1\",\"qty\":2,\"req\":\"a1\"}", &m, &why),
        0);
    assert_int_equal(m.type, EDGE_OVERLAY_ADD_TO_CART);
    assert_string_equal(m.sku, "SKU-1");
    assert_int_equal(m.qty, 2);
    assert_string_equal(m.req, "\"a1\"");
    assert_int_equal(
        parse("{\"req\":42,\"qty\":99,\"sku\":\"x\",\"type\":\"add_to_cart\"}", &m, &why), 0);
    assert_string_equal(m.req, "42");
    char sku64[128];
    snprintf(sku64, sizeof(sku64), "{\"type\":\"add_to_cart\",\"sku\":\"%064d\",\"qty\":1}", 0);
    assert_int_equal(parse(sku64, &m, &why), 0);
    assert_int_equal(strlen(m.sku), 64);

    static const char *const bad[] = {
        "{\"type\":\"add_to_cart\",\"sku\":\"\",\"qty\":1}",
        "{\"type\":\"add_to_cart\",\"sku\":\"S\",\"qty\":0}",
        "{\"type\":\"add_to_cart\",\"sku\":\"S\",\"qty\":100}",
        "{\"type\":\"add_to_cart\",\"sku\":\"S\",\"qty\":1.5}",
        "{\"type\":\"add_to_cart\",\"sku\":\"S\",\"qty\":\"1\"}",
        "{\"type\":\"add_to_cart\",\"sku\":5,\"qty\":1}",
        "{\"type\":\"add_to_cart\",\"qty\":1}",
        "{\"type\":\"add_to_cart\",\"sku\":\"a\\u0000b\",\"qty\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(parse(bad[i], &m, &why), EDGE_ERR_INVAL);
        assert_non_null(why);
    }
    snprintf(sku64, sizeof(sku64), "{\"type\":\"add_to_cart\",\"sku\":\"%065d\",\"qty\":1}", 0);
    assert_int_equal(parse(sku64, &m, &why), EDGE_ERR_INVAL);
    /* The req of a refused message is still there to be echoed. */
    assert_int_equal(
        parse("{\"type\":\"add_to_cart\",\"sku\":\"S\",\"qty\":0,\"req\":9}", &m, &why),
        EDGE_ERR_INVAL);
    assert_string_equal(m.req, "9");
}

static void test_bad_messages(void **state)
{
    edge_overlay_msg_t m;
    static const char *const bad[] = {
        "",
        "nope",
        "{\"type\":\"hello\"",
        "[\"hello\"]",
        "\"hello\"",
        "{\"type\":\"buy_everything\"}",
        "{\"type\":7}",
        "{}",
        "{\"type\":\"hello\",\"type\":\"hello\"}",
        "{\"type\":\"hello\",\"req\":\"has \\\"quotes\\\"\"}",
        "{\"type\":\"hello\",\"req\":[1]}",
        ("{\"type\":\"hello\",\"req\":"
         "\"0123456789012345678901234567890123456789012345678901234567890123456789\"}"),
        "{\"type\":\"hello\"} trailing",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        assert_int_equal(parse(bad[i], &m, &why), EDGE_ERR_INVAL);
        assert_non_null(why);
    }
    /* Not NUL-terminated input: only `len` bytes count. */
    const char buf[] = "{\"type\":\"hello\"}XXXX";
    const char *why = NULL;
    assert_int_equal(edge_overlay_parse((const uint8_t *)buf, 16, &m, &why), 0);
}

static void test_ids(void **state)
{
    uint64_t ms, seq;
    assert_int_equal(edge_overlay_parse_id("1764322200123-4", 15, &ms, &seq), 0);
    assert_true(ms == 1764322200123ULL && seq == 4);
    assert_int_equal(
        edge_overlay_parse_id("18446744073709551615-18446744073709551615", 41, &ms, &seq), 0);
    assert_true(ms == UINT64_MAX && seq == UINT64_MAX);
    assert_int_equal(edge_overlay_parse_id("18446744073709551616-0", 22, &ms, &seq),
                     EDGE_ERR_INVAL);
    assert_int_equal(edge_overlay_parse_id("1-", 2, &ms, &seq), EDGE_ERR_INVAL);
    assert_int_equal(edge_overlay_parse_id("-1", 2, &ms, &seq), EDGE_ERR_INVAL);
    assert_int_equal(edge_overlay_parse_id("", 0, &ms, &seq), EDGE_ERR_INVAL);
    assert_true(edge__overlay_idcmp("9-0", "10-0") < 0);
    assert_true(edge__overlay_idcmp("10-2", "10-10") < 0);
    assert_true(edge__overlay_idcmp("10-2", "10-2") == 0);
    assert_true(edge__overlay_idcmp("11-0", "10-99") > 0);
    assert_true(edge__overlay_room_ok("room42", 6));
    assert_true(edge__overlay_room_ok("a.b_c-D9", 8));
    assert_false(edge__overlay_room_ok("", 0));
    assert_false(edge__overlay_room_ok("a/b", 3));
    assert_false(edge__overlay_room_ok("a b", 3));
    char long_room[66];
    memset(long_room, 'a', 65);
    long_room[65] = '\0';
    assert_true(edge__overlay_room_ok(long_room, 64));
    assert_false(edge__overlay_room_ok(long_room, 65));
}

static void test_event(void **state)
{
    edge__ov_event_t ev;
    const char *why = NULL;
    sw_str_init(&ev.json);
    const char data[] = "{\"sku\":\"SKU-1\",\"title\":\"K\\u00e9ttle\",\"price\":\"19.99\","
                        "\"currency\":\"EUR\",\"image\":\"https://i/k.png\",\"stock\":12,"
                        "\"type\":\"forged\",\"id\":\"1-1\"}";
    assert_int_equal(edge__overlay_event("1764322200123-0", "product_pinned", data,
                                         sizeof(data) - 1, "2026-11-28T09:30:00.123Z", &ev, &why),
                     0);
    /* type, id and media_time first and from the entry, never from data. */
    assert_string_equal(ev.json.p,
                        "{\"type\":\"product_pinned\",\"id\":\"1764322200123-0\",\"media_time\":"
                        "\"2026-11-28T09:30:00.123Z\",\"sku\":\"SKU-1\",\"title\":\"K\\u00E9ttle\","
                        "\"price\":\"19.99\",\"currency\":\"EUR\",\"image\":\"https://i/k.png\","
                        "\"stock\":12}");
    assert_int_equal(ev.slot, EDGE__SLOT_PIN);
    assert_string_equal(ev.sku, "SKU-1");
    assert_string_equal(ev.id, "1764322200123-0");
    /* Without media_time, the id's milliseconds. */
    assert_int_equal(edge__overlay_event("1764322200123-0", "stock_update", "{\"sku\":\"A\"}", 11,
                                         NULL, &ev, &why),
                     0);
    assert_non_null(strstr(ev.json.p, "\"media_time\":\"2025-11-28T09:30:00.123Z\""));
    assert_int_equal(ev.slot, EDGE__SLOT_STOCK);
    assert_int_equal(edge__overlay_event("1-0", "short_ready", "{}", 2, NULL, &ev, &why), 0);
    assert_int_equal(ev.slot, EDGE__SLOT_NONE);
    assert_int_equal(edge__overlay_event("1-0", "surprise", "{}", 2, NULL, &ev, &why),
                     EDGE_ERR_INVAL);
    assert_int_equal(edge__overlay_event("1-0", NULL, "{}", 2, NULL, &ev, &why), EDGE_ERR_INVAL);
    assert_int_equal(edge__overlay_event("1-0", "flash_sale", "[1]", 3, NULL, &ev, &why),
                     EDGE_ERR_INVAL);
    assert_int_equal(edge__overlay_event("1-0", "flash_sale", NULL, 0, NULL, &ev, &why),
                     EDGE_ERR_INVAL);
    assert_int_equal(edge__overlay_event("x", "flash_sale", "{}", 2, NULL, &ev, &why),
                     EDGE_ERR_INVAL);
    sw_str_dispose(&ev.json);
}

static void test_state(void **state)
{
    edge__ov_event_t ev;
    const char *why = NULL;
    sw_str_init(&ev.json);
    const char pin[] = "{\"type\":\"product_pinned\",\"id\":\"5-1\",\"media_time\":\"x\","
                       "\"sku\":\"S\"}";
    assert_int_equal(edge__overlay_state(pin, sizeof(pin) - 1, &ev, &why), 0);
    assert_string_equal(ev.id, "5-1");
    assert_string_equal(ev.sku, "S");
    assert_int_equal(ev.slot, EDGE__SLOT_PIN);
    assert_int_equal(edge__overlay_state("{\"type\":\"product_pinned\"}", 25, &ev, &why),
                     EDGE_ERR_INVAL);
    assert_int_equal(edge__overlay_state("{\"type\":\"x\",\"id\":\"1-1\"}", 24, &ev, &why),
                     EDGE_ERR_INVAL);
    assert_int_equal(edge__overlay_state("nope", 4, &ev, &why), EDGE_ERR_INVAL);
    sw_str_dispose(&ev.json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),        cmocka_unit_test(test_add_to_cart),
        cmocka_unit_test(test_bad_messages), cmocka_unit_test(test_ids),
        cmocka_unit_test(test_event),        cmocka_unit_test(test_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
