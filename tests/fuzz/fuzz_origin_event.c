/*
 * Fuzz target for the room event validator (origin_event.c): the body of
 * POST /api/rooms/ROOM/events, any bytes. An accepted body must give a known type and data that
 * is a JSON object whose client message is valid JSON carrying type, id and media_time; a refused
 * one must say why. The same bytes also go through the reader's path (an entry's data field) and
 * the RFC 3339 parser.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "origin_int.h"

static void check_message(const char *type, const char *inner)
{
    sw_str_t m;
    json_error_t je;

    sw_str_init(&m);
    CHECK(origin__event_message(&m, type, "1795824000000-0", 1795824000000LL, inner) == 0);
    json_t *msg = json_loads(m.p, JSON_REJECT_DUPLICATES, &je);
    CHECK(json_is_object(msg));
    CHECK(strcmp(json_string_value(json_object_get(msg, "type")), type) == 0);
    CHECK(strcmp(json_string_value(json_object_get(msg, "id")), "1795824000000-0") == 0);
    CHECK(strcmp(json_string_value(json_object_get(msg, "media_time")),
                 "2026-11-28T00:00:00.000Z") == 0);
    json_decref(msg);
    sw_str_dispose(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    origin_event_in_t ev;
    char err[256] = "";
    /* A copy of exactly `size` bytes, so that ASan sees any read past the end. */
    uint8_t *body = malloc(size ? size : 1);

    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    int rv = origin__event_parse(body, size, &ev, err, sizeof(err));
    if (rv == 0) {
        CHECK(origin__event_type_name(ev.type) == ev.type);
        json_error_t je;
        json_t *d = json_loads(ev.data, 0, &je);
        CHECK(json_is_object(d));
        json_decref(d);
        check_message(ev.type, ev.inner);
        origin__event_in_dispose(&ev);
    } else {
        CHECK(rv == -1 && err[0] != '\0');
    }

    const char *type;
    char *inner;
    if (origin__event_from_entry("product_pinned", (const char *)body, size, &type, &inner) == 0) {
        check_message(type, inner);
        free(inner);
    }

    char *s = malloc(size + 1);
    if (s != NULL) {
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t ms = origin__parse_utc_ms(s);
        CHECK(ms >= -1);
        free(s);
    }
    free(body);
    return 0;
}
