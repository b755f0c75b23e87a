/*
 * fuzz_edge_overlay.c: the overlay's message formats on arbitrary bytes. The first byte picks the
 * parser: a viewer's message (edge_overlay_parse()), a stream entry's data (edge__overlay_event())
 * or a message stored in the state hash (edge__overlay_state()). Whatever they accept must come
 * out as valid JSON of bounded size, and a parsed message must hold what the protocol allows.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "edge_overlay_int.h"
#include "fuzz.h"

static void check_json_object(const sw_str_t *s)
{
    json_error_t e;
    json_t *o = json_loadb(s->p, s->len, 0, &e);
    CHECK(json_is_object(o));
    CHECK(json_is_string(json_object_get(o, "type")));
    CHECK(json_is_string(json_object_get(o, "id")));
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (data[0] % 3 == 0) {
        edge_overlay_msg_t m;
        int rv = edge_overlay_parse(p, n, &m, &why);
        CHECK(rv == 0 || (rv == EDGE_ERR_INVAL && why != NULL));
        CHECK(strlen(m.req) <= EDGE_OVERLAY_REQ_MAX + 2);
        if (rv == 0 && m.type == EDGE_OVERLAY_ADD_TO_CART) {
            CHECK(m.qty >= 1 && m.qty <= 99);
            CHECK(strlen(m.sku) >= 1 && strlen(m.sku) <= EDGE_OVERLAY_SKU_MAX);
        }
        if (rv == 0 && m.last_event_id[0] != '\0') {
            uint64_t ms, seq;
            CHECK(edge_overlay_parse_id(m.last_event_id, strlen(m.last_event_id), &ms, &seq) == 0);
        }
        return 0;
    }
    edge__ov_event_t ev;
    sw_str_init(&ev.json);
    int rv;
    if (data[0] % 3 == 1) {
        static const char *const types[] = {"product_pinned", "stock_update", "short_ready",
                                            "flash_sale", "nope"};
        rv = edge__overlay_event("1764322200123-7", types[data[0] / 3 % 5], (const char *)p, n,
                                 (data[0] & 0x80) ? NULL : "2026-11-28T09:30:00.123Z", &ev, &why);
    } else {
        rv = edge__overlay_state((const char *)p, n, &ev, &why);
    }
    CHECK(rv == 0 || rv == EDGE_ERR_INVAL || rv == EDGE_ERR_NOMEM);
    if (rv == 0) {
        check_json_object(&ev.json);
        CHECK(strlen(ev.sku) <= EDGE_OVERLAY_SKU_MAX);
    }
    sw_str_dispose(&ev.json);
    return 0;
}
