/*
 * origin_analyze_events.c: one line of the offline analyzer's events file to one detector event
 * (origin_analyze.h has the format). Pure (no I/O) and fuzzed by
 * tests/fuzz/fuzz_origin_analyze.c.
 *
 * The checks are strict where a lenient reading would change a score (a time, a product, a
 * quantity) and lenient where it would not (members the detector does not read are ignored, as
 * are event types it does not use).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "origin_analyze.h"

#define MAX_MS      1e15 /* ts_ms and epoch_ms: Unix milliseconds, well past any real date */
#define MAX_COUNT   1e9
#define MAX_WINDOWS 3600.

static const struct {
    const char *name;
    int type;
} types[] = {
    {"product_pinned", SHORTS_EV_PIN},
    {"product_unpinned", SHORTS_EV_UNPIN},
    {"add_to_cart", SHORTS_EV_CART},
    {"chat_rate", SHORTS_EV_CHAT},
};

void origin__aev_state_init(origin_aev_state_t *st)
{
    memset(st, 0, sizeof(*st));
}

const char *origin__aev_type_name(int type)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (types[i].type == type)
            return types[i].name;
    return "unknown";
}

/*
 * A field of the event, flat or under "data". Returns 0 with *v (NULL when absent), or -1 when
 * it is in both places: the two could disagree, and picking one silently would hide that.
 */
static int field(json_t *root, json_t *data, const char *name, json_t **v)
{
    json_t *flat = json_object_get(root, name);
    json_t *nested = data != NULL ? json_object_get(data, name) : NULL;

    *v = nested != NULL ? nested : flat;
    return flat != NULL && nested != NULL ? -1 : 0;
}

/* A JSON number as a double; jansson refuses NaN, infinities and overflowing literals. */
static int number(json_t *v, double *out)
{
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return isfinite(*out) ? 0 : -1;
}

static const char *parse_sku(json_t *root, json_t *data, char *out)
{
    json_t *sku, *alias;

    if (field(root, data, "sku", &sku) != 0)
        return "sku: given both flat and under data";
    if (field(root, data, "product_id", &alias) != 0)
        return "product_id: given both flat and under data";
    if (sku != NULL && alias != NULL)
        return "sku and product_id (its alias) both given";
    if (sku == NULL)
        sku = alias;
    if (sku == NULL)
        return "sku (or product_id): missing";
    if (!json_is_string(sku))
        return "sku: expected a string";
    const char *s = json_string_value(sku);
    size_t n = json_string_length(sku);
    if (n == 0 || n > 64)
        return "sku: expected a string of 1 to 64 bytes";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "sku: control characters (or NUL) are not allowed";
    memcpy(out, s, n);
    out[n] = '\0';
    return NULL;
}

/* The line's time on the media timeline, from t or from ts_ms and the stream_start epoch. */
static const char *parse_time(const origin_aev_state_t *st, json_t *root, double *t)
{
    json_t *tv = json_object_get(root, "t"), *ms = json_object_get(root, "ts_ms");
    double x;

    if (tv != NULL && ms != NULL)
        return "t and ts_ms both given: one time only";
    if (tv != NULL) {
        if (number(tv, &x) != 0)
            return "t: expected a number of seconds";
        if (fabs(x) > ORIGIN_AEV_MAX_T)
            return "t: out of range (more than 1e7 seconds from the first video frame)";
        *t = x;
        return NULL;
    }
    if (ms == NULL)
        return "time missing: expected t (media seconds) or ts_ms (wall-clock milliseconds)";
    if (number(ms, &x) != 0 || x < 0 || x > MAX_MS)
        return "ts_ms: expected Unix milliseconds, a number from 0 to 1e15";
    if (!st->has_epoch)
        return "ts_ms without a stream_start line before it (its epoch_ms is t = 0)";
    x = (x - (double)st->epoch_ms) / 1000;
    if (fabs(x) > ORIGIN_AEV_MAX_T)
        return "ts_ms: out of range (more than 1e7 seconds from stream_start's epoch_ms)";
    *t = x;
    return NULL;
}

static const char *parse_stream_start(origin_aev_state_t *st, json_t *root)
{
    json_t *v = json_object_get(root, "epoch_ms");
    double x;

    if (st->has_epoch)
        return "a second stream_start: a file has one epoch";
    if (v == NULL)
        return "stream_start: epoch_ms missing";
    if (number(v, &x) != 0 || x < 0 || x > MAX_MS)
        return "stream_start: epoch_ms: expected Unix milliseconds, a number from 0 to 1e15";
    st->has_epoch = 1;
    st->epoch_ms = (int64_t)llround(x);
    return NULL;
}

/* The type's own fields. */
static const char *parse_fields(json_t *root, json_t *data, origin_aev_t *out)
{
    json_t *v;
    double x;

    switch (out->ev.type) {
    case SHORTS_EV_CART:
        if (field(root, data, "qty", &v) != 0)
            return "qty: given both flat and under data";
        out->ev.qty = 1;
        if (v != NULL) {
            if (!json_is_integer(v))
                return "qty: expected an integer";
            json_int_t q = json_integer_value(v);
            if (q < 1 || q > ORIGIN_AEV_MAX_QTY)
                return "qty: expected an integer from 1 to 100000";
            out->ev.qty = (int)q;
        }
        break;
    case SHORTS_EV_CHAT:
        if (field(root, data, "count", &v) != 0)
            return "count: given both flat and under data";
        if (v == NULL)
            return "count: missing (required for chat_rate)";
        if (number(v, &x) != 0 || x < 0 || x > MAX_COUNT)
            return "count: expected a number of messages from 0 to 1e9";
        out->ev.count = x;
        if (field(root, data, "window_s", &v) != 0)
            return "window_s: given both flat and under data";
        if (v == NULL)
            return "window_s: missing (required for chat_rate)";
        if (number(v, &x) != 0 || !(x > 0) || x > MAX_WINDOWS)
            return "window_s: expected a number of seconds above 0, at most 3600";
        out->ev.window_s = x;
        return NULL;
    }
    const char *why = parse_sku(root, data, out->sku);
    if (why != NULL)
        return why;
    out->ev.sku = out->sku;
    return NULL;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

int origin__aev_parse(origin_aev_state_t *st, const char *line, size_t len, origin_aev_t *out,
                      const char **err_desc)
{
    json_error_t je;
    json_t *root;
    const char *why = NULL;
    int rv = ORIGIN_AEV_BAD;

    memset(out, 0, sizeof(*out));
    *err_desc = NULL;
    if (blank(line, len))
        return ORIGIN_AEV_SKIP;
    if (len > ORIGIN_AEV_MAX_LINE) {
        *err_desc = "line over 65536 bytes";
        return ORIGIN_AEV_BAD;
    }
    /* Duplicate members are refused for the same reason as a field in two places. */
    if ((root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
        /* jansson's text is not static: it goes into the state, valid until the next line. */
        snprintf(st->_why, sizeof(st->_why), "invalid JSON at column %d: %s", je.column, je.text);
        *err_desc = st->_why;
        return ORIGIN_AEV_BAD;
    }
    if (!json_is_object(root)) {
        why = "expected a JSON object {\"type\": ..., \"t\": ..., ...}";
        goto out;
    }
    json_t *type = json_object_get(root, "type");
    if (type == NULL || !json_is_string(type)) {
        why = type == NULL ? "type: missing" : "type: expected a string";
        goto out;
    }
    const char *name = json_string_value(type);
    if (strcmp(name, "stream_start") == 0) {
        why = parse_stream_start(st, root);
        rv = why == NULL ? ORIGIN_AEV_SKIP : ORIGIN_AEV_BAD;
        goto out;
    }
    out->ev.type = -1;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(types[i].name, name) == 0)
            out->ev.type = types[i].type;
    if (out->ev.type < 0) {
        memset(out, 0, sizeof(*out));
        rv = ORIGIN_AEV_SKIP;
        goto out;
    }
    json_t *data = json_object_get(root, "data");
    if (data != NULL && !json_is_object(data)) {
        why = "data: expected a JSON object";
        goto out;
    }
    if ((why = parse_time(st, root, &out->ev.t)) != NULL ||
        (why = parse_fields(root, data, out)) != NULL)
        goto out;
    rv = ORIGIN_AEV_EVENT;
out:
    json_decref(root);
    if (rv == ORIGIN_AEV_BAD) {
        memset(out, 0, sizeof(*out));
        *err_desc = why;
    }
    return rv;
}
