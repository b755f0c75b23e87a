/*
 * edge_range.c: the Range request header (RFC 9110 section 14), the multipart/byteranges framing
 * of several ranges (section 14.6), and If-None-Match (section 13.1.2).
 *
 * A server may always ignore Range and send 200, so everything doubtful is ignored rather than
 * answered with an error: that is never wrong, and it bounds the work a hostile list can cause.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "edge/http_util.h"
#include "edge_int.h"

/* Numbers above this are refused: 10^18 bytes is far past any object we hold. */
#define MAX_POS 999999999999999999ull

typedef struct cursor {
    const char *p, *end;
} cursor_t;

static void skip_ows(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* Reads 1..18 digits. Returns 0, or -1 if there are none or too many. */
static int read_num(cursor_t *c, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (++n > 18)
            return -1;
        v = v * 10 + (uint64_t)(*c->p++ - '0');
    }
    if (n == 0)
        return -1;
    *out = v;
    return 0;
}

static int none(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return EDGE_RANGE_NONE;
}

int edge_range_parse(const char *hdr, size_t len, int64_t length, edge_range_set_t *out,
                     const char **err_desc)
{
    size_t nspecs = 0;

    out->n = 0;
    if (hdr == NULL) /* before any arithmetic on it: NULL + 0 is undefined too */
        return none(err_desc, "no Range header");
    cursor_t c = {hdr, hdr + len};
    skip_ows(&c);
    if (c.end - c.p < 6 || strncasecmp(c.p, "bytes=", 6) != 0)
        return none(err_desc, "range unit is not bytes");
    c.p += 6;
    for (;;) {
        skip_ows(&c);
        if (c.p == c.end)
            break;
        if (*c.p == ',') { /* an empty list element, allowed by the #rule */
            c.p++;
            continue;
        }
        if (++nspecs > EDGE_RANGE_MAX)
            return none(err_desc, "more than 16 ranges");
        uint64_t first = 0, last = 0;
        int suffix = 0, open = 0;
        if (*c.p == '-') {
            c.p++;
            suffix = 1;
            if (read_num(&c, &last) != 0)
                return none(err_desc, "bad suffix length");
        } else {
            if (read_num(&c, &first) != 0)
                return none(err_desc, "bad first position");
            if (c.p == c.end || *c.p != '-')
                return none(err_desc, "missing '-'");
            c.p++;
            if (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
                if (read_num(&c, &last) != 0)
                    return none(err_desc, "bad last position");
                if (last < first)
                    return none(err_desc, "last position before first");
            } else {
                open = 1;
            }
        }
        skip_ows(&c);
        if (c.p < c.end && *c.p != ',')
            return none(err_desc, "junk after a range");

        edge_range_t r;
        if (length < 0) {
            if (suffix)
                return none(err_desc, "suffix range with the length unknown");
            r.first = first;
            r.last = open ? EDGE_RANGE_OPEN : last;
        } else {
            uint64_t L = (uint64_t)length;
            if (suffix) {
                if (last == 0 || L == 0)
                    continue; /* unsatisfiable: "-0", or any suffix of nothing */
                r.first = last >= L ? 0 : L - last;
                r.last = L - 1;
            } else {
                if (first >= L)
                    continue; /* unsatisfiable, but others in the list may be fine */
                r.first = first;
                r.last = open || last >= L ? L - 1 : last;
            }
        }
        out->r[out->n++] = r;
    }
    if (nspecs == 0)
        return none(err_desc, "empty range set");
    if (out->n == 0) {
        if (err_desc != NULL)
            *err_desc = "no range overlaps the representation";
        return EDGE_RANGE_UNSATISFIABLE;
    }
    for (size_t i = 0; i < out->n; i++) {
        for (size_t j = i + 1; j < out->n; j++) {
            if (out->r[i].first <= out->r[j].last && out->r[j].first <= out->r[i].last) {
                out->n = 0;
                return none(err_desc, "overlapping ranges");
            }
        }
    }
    if (err_desc != NULL)
        *err_desc = NULL;
    return EDGE_RANGE_RANGES;
}

void edge_range_coalesce(edge_range_set_t *set)
{
    size_t k = 0;

    if (set->n == 0)
        return;
    for (size_t i = 1; i < set->n; i++) {
        edge_range_t *prev = &set->r[k];
        if (prev->last != EDGE_RANGE_OPEN && set->r[i].first == prev->last + 1)
            prev->last = set->r[i].last;
        else
            set->r[++k] = set->r[i];
    }
    set->n = k + 1;
}

/* Appends text to a buffer that may be too small: past the first piece that does not fit, only
 * the length keeps counting, so one walk both measures and writes. */
typedef struct sink {
    char *p;
    size_t cap, len;
} sink_t;

static void put(sink_t *s, const char *str)
{
    size_t n = strlen(str);
    if (s->p != NULL && s->len <= s->cap && n <= s->cap - s->len)
        memcpy(s->p + s->len, str, n);
    s->len += n;
}

static void put_delimiter(sink_t *s, const char *boundary, int first)
{
    /* The first delimiter opens the body: its CRLF would only be an empty preamble. */
    put(s, first ? "--" : "\r\n--");
    put(s, boundary);
}

size_t edge_byteranges_layout(const edge_range_set_t *set, uint64_t length, const char *ctype,
                              const char *boundary, char *out, size_t outlen,
                              size_t off[EDGE_RANGE_MAX + 2], uint64_t *body_len)
{
    sink_t s = {out, out != NULL ? outlen : 0, 0};
    uint64_t data = 0;
    char cr[128];

    for (size_t i = 0; i < set->n; i++) {
        const edge_range_t *r = &set->r[i];
        off[i] = s.len;
        put_delimiter(&s, boundary, i == 0);
        if (ctype != NULL && ctype[0] != '\0') {
            put(&s, "\r\nContent-Type: ");
            put(&s, ctype);
        }
        snprintf(cr, sizeof(cr), "\r\nContent-Range: bytes %llu-%llu/%llu\r\n\r\n",
                 (unsigned long long)r->first, (unsigned long long)r->last,
                 (unsigned long long)length);
        put(&s, cr);
        data += r->last - r->first + 1;
    }
    off[set->n] = s.len;
    put_delimiter(&s, boundary, 0);
    put(&s, "--\r\n");
    off[set->n + 1] = s.len;
    *body_len = s.len + data;
    return s.len;
}

/* The opaque-tag of an entity-tag, quotes included, without a W/ prefix. */
static void opaque(const char **p, size_t *n)
{
    if (*n >= 2 && (*p)[0] == 'W' && (*p)[1] == '/') {
        *p += 2;
        *n -= 2;
    }
}

int edge_etag_match(const char *hdr, size_t len, const char *etag)
{
    const char *cur = etag;
    size_t curlen = etag != NULL ? strlen(etag) : 0;
    int matched = 0, ntags = 0;

    if (hdr == NULL)
        return 0;
    cursor_t c = {hdr, hdr + len};
    opaque(&cur, &curlen);
    skip_ows(&c);
    if (c.p < c.end && *c.p == '*') {
        c.p++;
        skip_ows(&c);
        return c.p == c.end ? 1 : EDGE_ERR_INVAL;
    }
    for (;;) {
        skip_ows(&c);
        if (c.p == c.end)
            break;
        if (*c.p == ',') {
            c.p++;
            continue;
        }
        if (c.end - c.p >= 2 && c.p[0] == 'W' && c.p[1] == '/')
            c.p += 2;
        if (c.p == c.end || *c.p != '"')
            return EDGE_ERR_INVAL;
        const char *start = c.p++;
        while (c.p < c.end && *c.p != '"') {
            unsigned char ch = (unsigned char)*c.p;
            if (ch < 0x21 || ch == 0x7f)
                return EDGE_ERR_INVAL;
            c.p++;
        }
        if (c.p == c.end)
            return EDGE_ERR_INVAL;
        c.p++;
        size_t n = (size_t)(c.p - start);
        if (cur != NULL && n == curlen && memcmp(start, cur, n) == 0)
            matched = 1;
        ntags++;
        skip_ows(&c);
        if (c.p < c.end && *c.p != ',')
            return EDGE_ERR_INVAL;
    }
    return ntags == 0 ? EDGE_ERR_INVAL : matched;
}
