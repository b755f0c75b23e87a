/*
 * origin_event.c: room events as text: the body of POST /api/rooms/ROOM/events, checked field by
 * field against docs/overlay-protocol.md, and the client message built from an event. Pure (no
 * loop, no Redis) and fuzzed by tests/fuzz/fuzz_origin_event.c.
 *
 * The checks are strict on purpose: an event reaches every viewer's screen and every edge, so a
 * field that is missing, of the wrong type, unknown or oversized is refused here with its name,
 * rather than shown half-broken to a shopper. Prices are decimal strings so that no float
 * rounding reaches anyone.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "origin_int.h"

enum field_kind {
    F_TEXT,     /* a non-empty string */
    F_PRICE,    /* a decimal string: digits, optionally '.' and 1 to 4 digits */
    F_CURRENCY, /* ISO 4217: three capital letters */
    F_URL,      /* http:// or https:// */
    F_COUNT,    /* an integer >= 0 */
    F_SECONDS,  /* a number >= 0 */
    F_UTC,      /* RFC 3339 UTC: 2026-11-28T09:30:00Z or with .mmm */
    F_WINDOW,   /* a number of seconds > 0, at most 3600 */
};

typedef struct field {
    const char *name;
    int kind;
    int optional;
} field_t;

typedef struct event_type {
    const char *name;
    field_t fields[7];
    /* Not shown in the media (playlists, MPD): a signal for the shorts detector, posted every
     * few seconds, that would crowd the pins out of a room's ORIGIN_ROOM_MAX_EVENTS. */
    int signal_only;
} event_type_t;

static const event_type_t types[] = {
    {"product_pinned",
     {{"sku", F_TEXT, 0},
      {"title", F_TEXT, 0},
      {"price", F_PRICE, 0},
      {"currency", F_CURRENCY, 0},
      {"image", F_URL, 0},
      {"stock", F_COUNT, 0}},
     0},
    {"product_unpinned", {{"sku", F_TEXT, 0}}, 0},
    {"price_update", {{"sku", F_TEXT, 0}, {"price", F_PRICE, 0}, {"currency", F_CURRENCY, 0}}, 0},
    {"stock_update", {{"sku", F_TEXT, 0}, {"stock", F_COUNT, 0}}, 0},
    {"flash_sale",
     {{"sku", F_TEXT, 0},
      {"price", F_PRICE, 0},
      {"currency", F_CURRENCY, 0},
      {"ends_at", F_UTC, 0}},
     0},
    {"short_ready",
     {{"short_id", F_TEXT, 0},
      {"url", F_URL, 0},
      {"title", F_TEXT, 0},
      {"duration", F_SECONDS, 0},
      {"poster", F_URL, 1}},
     0},
    {"chat_rate", {{"count", F_COUNT, 0}, {"window_s", F_WINDOW, 0}}, 1},
};

#define MAX_TEXT 2048 /* bytes in one string field */

const char *origin__event_type_name(const char *s)
{
    for (size_t i = 0; i < SW_ARRAY_SIZE(types); i++)
        if (strcmp(types[i].name, s) == 0)
            return types[i].name;
    return NULL;
}

int origin__event_in_media(const char *type)
{
    for (size_t i = 0; i < SW_ARRAY_SIZE(types); i++)
        if (strcmp(types[i].name, type) == 0)
            return !types[i].signal_only;
    return 0;
}

int origin__room_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int64_t origin__parse_utc_ms(const char *s)
{
    struct tm tm = {0};
    size_t n = strlen(s);
    int ms = 0;

    /* YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS.mmmZ */
    if ((n != 20 && n != 24) || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || s[10] != 'T' || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2) || s[n - 1] != 'Z')
        return -1;
    if (n == 24) {
        if (s[19] != '.' || !digits(s + 20, 3))
            return -1;
        ms = atoi(s + 20);
    }
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = atoi(s + 5) - 1;
    tm.tm_mday = atoi(s + 8);
    tm.tm_hour = atoi(s + 11);
    tm.tm_min = atoi(s + 14);
    tm.tm_sec = atoi(s + 17);
    if (tm.tm_year < 70 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Checks one value; returns NULL or what is wrong with it. */
static const char *check_value(const field_t *f, json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = s != NULL ? json_string_length(v) : 0;

    switch (f->kind) {
    case F_COUNT:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return "expected an integer >= 0";
        return NULL;
    case F_SECONDS:
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e9)
            return "expected a number of seconds >= 0";
        return NULL;
    case F_WINDOW:
        if (!json_is_number(v) || !(json_number_value(v) > 0) || json_number_value(v) > 3600)
            return "expected a number of seconds above 0, at most 3600";
        return NULL;
    }
    if (s == NULL)
        return "expected a string";
    if (n == 0 || n > MAX_TEXT)
        return "expected a string of 1 to 2048 bytes";
    switch (f->kind) {
    case F_PRICE: {
        size_t i = 0;
        while (i < n && i < 13 && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == 0 || i > 12)
            return "expected a decimal string such as \"19.99\"";
        if (i < n) {
            size_t frac = n - i - 1;
            if (s[i] != '.' || frac < 1 || frac > 4 || !digits(s + i + 1, (int)frac))
                return "expected a decimal string such as \"19.99\"";
        }
        return NULL;
    }
    case F_CURRENCY:
        if (n != 3 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' || s[2] < 'A' ||
            s[2] > 'Z')
            return "expected an ISO 4217 code such as \"EUR\"";
        return NULL;
    case F_URL:
        if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
            return "expected an http:// or https:// URL";
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
                return "expected a URL without spaces or control characters";
        return NULL;
    case F_UTC:
        if (origin__parse_utc_ms(s) < 0)
            return "expected RFC 3339 UTC such as \"2026-11-28T09:30:00Z\"";
        return NULL;
    }
    return NULL;
}

/*
 * The object's members in compact JSON, without the braces: "k":v,... ("" for {}), for the client
 * message. Members named like the message's own (type, id, media_time) are left out rather than
 * allowed to repeat or override them: short_ready's data.id is one (see the protocol doc).
 */
static char *inner_json(json_t *data)
{
    json_t *copy = json_copy(data);
    if (copy == NULL)
        return NULL;
    json_object_del(copy, "type");
    json_object_del(copy, "id");
    json_object_del(copy, "media_time");
    char *s = json_dumps(copy, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(copy);
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    memmove(s, s + 1, n - 2);
    s[n - 2] = '\0';
    return s;
}

int origin__event_parse(const uint8_t *body, size_t len, origin_event_in_t *out, char *err,
                        size_t errlen)
{
    json_error_t je;
    json_t *root, *data;
    const event_type_t *t = NULL;
    const char *key;
    json_t *v;
    int rv = -1;

    memset(out, 0, sizeof(*out));
    if (len > ORIGIN_EVENT_MAX_BODY) {
        snprintf(err, errlen, "body over %d bytes", ORIGIN_EVENT_MAX_BODY);
        return -1;
    }
    if ((root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
        snprintf(err, errlen, "invalid JSON at line %d, column %d: %s", je.line, je.column,
                 je.text);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "expected a JSON object {\"type\": ..., \"data\": {...}}");
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "type") != 0 && strcmp(key, "data") != 0) {
            snprintf(err, errlen,
                     "unknown member \"%.64s\": only type and data (media_time is "
                     "stamped by the origin)",
                     key);
            goto out;
        }
    }
    json_t *type = json_object_get(root, "type");
    if (!json_is_string(type)) {
        snprintf(err, errlen, "type: %s", type == NULL ? "missing" : "expected a string");
        goto out;
    }
    for (size_t i = 0; i < SW_ARRAY_SIZE(types); i++)
        if (strcmp(types[i].name, json_string_value(type)) == 0)
            t = &types[i];
    if (t == NULL) {
        snprintf(err, errlen, "type: unknown event type \"%.64s\"", json_string_value(type));
        goto out;
    }
    data = json_object_get(root, "data");
    if (!json_is_object(data)) {
        snprintf(err, errlen, "data: %s", data == NULL ? "missing" : "expected a JSON object");
        goto out;
    }
    json_object_foreach(data, key, v)
    {
        const field_t *f = NULL;
        for (const field_t *g = t->fields; g->name != NULL; g++)
            if (strcmp(g->name, key) == 0)
                f = g;
        if (f == NULL) {
            snprintf(err, errlen, "data.%.64s: not a field of %s", key, t->name);
            goto out;
        }
        const char *why = check_value(f, v);
        if (why != NULL) {
            snprintf(err, errlen, "data.%s: %s", f->name, why);
            goto out;
        }
    }
    for (const field_t *f = t->fields; f->name != NULL; f++)
        if (!f->optional && json_object_get(data, f->name) == NULL) {
            snprintf(err, errlen, "data.%s: missing (required for %s)", f->name, t->name);
            goto out;
        }
    out->type = t->name;
    json_t *sku = json_object_get(data, "sku");
    if (sku != NULL && (out->sku = strdup(json_string_value(sku))) == NULL)
        goto nomem;
    if ((out->data = json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER)) ==
            NULL ||
        (out->inner = inner_json(data)) == NULL)
        goto nomem;
    rv = 0;
    goto out;
nomem:
    origin__event_in_dispose(out);
    snprintf(err, errlen, "out of memory");
    rv = ORIGIN_ERR_NOMEM;
out:
    json_decref(root);
    return rv;
}

void origin__event_in_dispose(origin_event_in_t *ev)
{
    free(ev->sku);
    free(ev->data);
    free(ev->inner);
    memset(ev, 0, sizeof(*ev));
}

int origin__event_message(sw_str_t *out, const char *type, const char *id, int64_t media_ms,
                          const char *inner)
{
    char iso[40];
    sw_str_printf(out, "{\"type\":\"%s\",\"id\":\"%s\",\"media_time\":\"%s\"%s%s}", type, id,
                  sw_iso8601(media_ms, iso, sizeof(iso)), inner[0] != '\0' ? "," : "", inner);
    return out->failed ? ORIGIN_ERR_NOMEM : 0;
}

/*
 * An entry read from Redis: written by the origin or straight by a backend, so only the shape is
 * checked (a known type, data a JSON object).
 */
int origin__event_from_entry(const char *type, const char *data, size_t data_len,
                             const char **type_out, char **inner_out)
{
    json_error_t je;
    json_t *obj;

    *inner_out = NULL;
    if ((*type_out = origin__event_type_name(type)) == NULL)
        return -1;
    if ((obj = json_loadb(data, data_len, JSON_REJECT_DUPLICATES, &je)) == NULL)
        return -1;
    if (!json_is_object(obj)) {
        json_decref(obj);
        return -1;
    }
    *inner_out = inner_json(obj);
    json_decref(obj);
    return *inner_out != NULL ? 0 : ORIGIN_ERR_NOMEM;
}
