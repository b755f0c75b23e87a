/*
 * edge_overlay_msg.c: the overlay's message formats, with no I/O: what a viewer may send (hello,
 * add_to_cart), and the server messages built from Redis stream entries and the state hash.
 * jansson parses and prints; it keeps an object's keys in insertion order, so every message
 * starts with type, id, media_time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "edge_overlay_int.h"
#include "sw/sw.h"

static const char *const event_types[] = {
    "product_pinned", "product_unpinned", "price_update",
    "stock_update",   "flash_sale",       "short_ready",
};

int edge_overlay_parse_id(const char *id, size_t len, uint64_t *ms, uint64_t *seq)
{
    uint64_t v[2] = {0, 0};
    size_t i = 0;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        for (; i < len && id[i] >= '0' && id[i] <= '9'; i++) {
            uint64_t d = (uint64_t)(id[i] - '0');
            if (v[part] > UINT64_MAX / 10 || (v[part] == UINT64_MAX / 10 && d > UINT64_MAX % 10))
                return EDGE_ERR_INVAL;
            v[part] = v[part] * 10 + d;
        }
        if (i == start || i - start > 20)
            return EDGE_ERR_INVAL;
        if (part == 0) {
            if (i >= len || id[i] != '-')
                return EDGE_ERR_INVAL;
            i++;
        }
    }
    if (i != len)
        return EDGE_ERR_INVAL;
    *ms = v[0];
    *seq = v[1];
    return 0;
}

int edge__overlay_idcmp(const char *a, const char *b)
{
    uint64_t am = 0, as = 0, bm = 0, bs = 0;
    edge_overlay_parse_id(a, strlen(a), &am, &as);
    edge_overlay_parse_id(b, strlen(b), &bm, &bs);
    if (am != bm)
        return am < bm ? -1 : 1;
    return as < bs ? -1 : as > bs;
}

int edge__overlay_room_ok(const char *room, size_t len)
{
    if (len == 0 || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = room[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* "req" is echoed as the client sent it: a short string or an integer, re-encoded by jansson so
 * that what goes back is always valid JSON. */
static int take_req(json_t *obj, edge_overlay_msg_t *out)
{
    json_t *r = json_object_get(obj, "req");
    if (r == NULL || json_is_null(r))
        return 0;
    if (json_is_string(r) && json_string_length(r) <= EDGE_OVERLAY_REQ_MAX) {
        /* A string of 64 bytes may grow when escaped; only plain ones fit the buffer. */
        const char *s = json_string_value(r);
        size_t n = json_string_length(r);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\' ||
                (unsigned char)s[i] >= 0x7f)
                return -1;
        snprintf(out->req, sizeof(out->req), "\"%s\"", s);
        return 0;
    }
    if (json_is_integer(r)) {
        snprintf(out->req, sizeof(out->req), "%" JSON_INTEGER_FORMAT, json_integer_value(r));
        return 0;
    }
    return -1;
}

int edge_overlay_parse(const uint8_t *buf, size_t len, edge_overlay_msg_t *out,
                       const char **err_desc)
{
    const char *dummy;
    json_error_t jerr;
    int rv = EDGE_ERR_INVAL;

    if (err_desc == NULL)
        err_desc = &dummy;
    memset(out, 0, sizeof(*out));
    json_t *obj = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (obj == NULL) {
        *err_desc = "not JSON";
        return EDGE_ERR_INVAL;
    }
    if (!json_is_object(obj)) {
        *err_desc = "not a JSON object";
        goto out;
    }
    if (take_req(obj, out) != 0) {
        *err_desc = "req must be an integer or a plain string of at most 64 bytes";
        goto out;
    }
    const char *type = json_string_value(json_object_get(obj, "type"));
    if (type == NULL) {
        *err_desc = "no type";
        goto out;
    }
    if (strcmp(type, "hello") == 0) {
        out->type = EDGE_OVERLAY_HELLO;
        json_t *id = json_object_get(obj, "last_event_id");
        if (id != NULL && !json_is_null(id)) {
            const char *s = json_string_value(id);
            uint64_t ms, seq;
            if (s == NULL || json_string_length(id) >= sizeof(out->last_event_id) ||
                edge_overlay_parse_id(s, json_string_length(id), &ms, &seq) != 0) {
                *err_desc = "last_event_id must be a stream id \"MS-SEQ\" or null";
                goto out;
            }
            memcpy(out->last_event_id, s, json_string_length(id) + 1);
        }
        rv = 0;
    } else if (strcmp(type, "add_to_cart") == 0) {
        out->type = EDGE_OVERLAY_ADD_TO_CART;
        json_t *sku = json_object_get(obj, "sku"), *qty = json_object_get(obj, "qty");
        size_t n = json_string_length(sku);
        if (!json_is_string(sku) || n == 0 || n > EDGE_OVERLAY_SKU_MAX ||
            memchr(json_string_value(sku), '\0', n) != NULL) {
            *err_desc = "sku must be a non-empty string of at most 64 bytes";
            goto out;
        }
        if (!json_is_integer(qty) || json_integer_value(qty) < 1 || json_integer_value(qty) > 99) {
            *err_desc = "qty must be an integer from 1 to 99";
            goto out;
        }
        memcpy(out->sku, json_string_value(sku), n + 1);
        out->qty = (int)json_integer_value(qty);
        rv = 0;
    } else {
        *err_desc = "unknown type";
    }
out:
    json_decref(obj);
    return rv;
}

static int slot_of(const char *type)
{
    if (strcmp(type, "product_pinned") == 0 || strcmp(type, "product_unpinned") == 0)
        return EDGE__SLOT_PIN;
    if (strcmp(type, "flash_sale") == 0)
        return EDGE__SLOT_FLASH;
    if (strcmp(type, "price_update") == 0)
        return EDGE__SLOT_PRICE;
    if (strcmp(type, "stock_update") == 0)
        return EDGE__SLOT_STOCK;
    return EDGE__SLOT_NONE;
}

static int known_type(const char *type)
{
    for (size_t i = 0; i < SW_ARRAY_SIZE(event_types); i++)
        if (strcmp(type, event_types[i]) == 0)
            return 1;
    return 0;
}

/* Serializes `msg` into ev->json and fills the slot and sku. Takes the reference on `msg`. */
static int finish(json_t *msg, edge__ov_event_t *ev, const char *type, const char *id)
{
    sw_str_reset(&ev->json);
    ev->slot = slot_of(type);
    ev->sku[0] = '\0';
    const char *sku = json_string_value(json_object_get(msg, "sku"));
    if (sku != NULL)
        snprintf(ev->sku, sizeof(ev->sku), "%s", sku);
    snprintf(ev->id, sizeof(ev->id), "%s", id);
    char *text = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(msg);
    if (text == NULL)
        return EDGE_ERR_NOMEM;
    int rv = sw_str_puts(&ev->json, text);
    free(text);
    return rv != 0 ? EDGE_ERR_NOMEM : 0;
}

int edge__overlay_event(const char *id, const char *type, const char *data, size_t data_len,
                        const char *media_time, edge__ov_event_t *ev, const char **err_desc)
{
    uint64_t ms, seq;
    char mt[40];
    json_error_t jerr;

    if (strlen(id) >= sizeof(ev->id) || edge_overlay_parse_id(id, strlen(id), &ms, &seq) != 0) {
        *err_desc = "bad id";
        return EDGE_ERR_INVAL;
    }
    if (type == NULL || !known_type(type)) {
        *err_desc = "unknown type";
        return EDGE_ERR_INVAL;
    }
    json_t *d = data != NULL ? json_loadb(data, data_len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(d)) {
        json_decref(d);
        *err_desc = "data is not a JSON object";
        return EDGE_ERR_INVAL;
    }
    if (media_time == NULL || media_time[0] == '\0')
        media_time = sw_iso8601((int64_t)ms, mt, sizeof(mt));
    json_t *msg = json_object();
    if (msg == NULL || json_object_set_new(msg, "type", json_string(type)) != 0 ||
        json_object_set_new(msg, "id", json_string(id)) != 0 ||
        json_object_set_new(msg, "media_time", json_string(media_time)) != 0) {
        json_decref(msg);
        json_decref(d);
        return EDGE_ERR_NOMEM;
    }
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v)
    {
        if (strcmp(k, "type") == 0 || strcmp(k, "id") == 0 || strcmp(k, "media_time") == 0)
            continue;
        if (json_object_set(msg, k, v) != 0) {
            json_decref(msg);
            json_decref(d);
            return EDGE_ERR_NOMEM;
        }
    }
    json_decref(d);
    return finish(msg, ev, type, id);
}

int edge__overlay_state(const char *json, size_t len, edge__ov_event_t *ev, const char **err_desc)
{
    json_error_t jerr;
    uint64_t ms, seq;
    json_t *msg = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *type = json_string_value(json_object_get(msg, "type"));
    const char *id = json_string_value(json_object_get(msg, "id"));
    if (!json_is_object(msg) || type == NULL || !known_type(type) || id == NULL ||
        strlen(id) >= sizeof(ev->id) || edge_overlay_parse_id(id, strlen(id), &ms, &seq) != 0) {
        json_decref(msg);
        *err_desc = "not an event message with a known type and an id";
        return EDGE_ERR_INVAL;
    }
    char idcopy[48];
    snprintf(idcopy, sizeof(idcopy), "%s", id);
    return finish(msg, ev, type, idcopy);
}
