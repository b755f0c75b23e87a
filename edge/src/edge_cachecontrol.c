/*
 * edge_cachecontrol.c: Cache-Control, HTTP-date, and the freshness lifetime of RFC 9111 section
 * 4.2.1 as a shared cache computes it.
 *
 * Doubt always resolves towards "not fresh": a response we cannot read is fetched again rather
 * than served from cache to the wrong audience or for too long.
 */
#include <string.h>
#include <strings.h>

#include "edge/http_util.h"
#include "edge_int.h"

#define DELTA_MAX 2147483648ll /* RFC 9111 section 1.2.2 */

static int tchar(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* delta-seconds: digits only, clamped. Returns -1 if not a number. */
static int64_t delta(const char *p, size_t n)
{
    int64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        if (v < DELTA_MAX)
            v = v * 10 + (p[i] - '0');
    }
    return v > DELTA_MAX ? DELTA_MAX : v;
}

static void keep_min(int64_t *slot, int64_t v)
{
    if (*slot < 0 || v < *slot)
        *slot = v;
}

static int name_is(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

static void apply(edge_cc_t *cc, const char *name, size_t nlen, const char *val, size_t vlen,
                  int has_val)
{
    int64_t d = has_val ? delta(val, vlen) : -1;

    if (name_is(name, nlen, "no-store")) {
        cc->no_store = 1;
    } else if (name_is(name, nlen, "no-cache")) {
        cc->no_cache = 1; /* also the qualified form no-cache="field": we do not split headers */
    } else if (name_is(name, nlen, "private")) {
        cc->is_private = 1;
    } else if (name_is(name, nlen, "public")) {
        cc->is_public = 1;
    } else if (name_is(name, nlen, "immutable")) {
        cc->immutable = 1;
    } else if (name_is(name, nlen, "must-revalidate")) {
        cc->must_revalidate = 1;
    } else if (name_is(name, nlen, "proxy-revalidate")) {
        cc->proxy_revalidate = 1;
    } else if (name_is(name, nlen, "max-age")) {
        keep_min(&cc->max_age, d < 0 ? 0 : d); /* invalid: treat as stale */
    } else if (name_is(name, nlen, "s-maxage")) {
        keep_min(&cc->s_maxage, d < 0 ? 0 : d);
    } else if (name_is(name, nlen, "stale-if-error")) {
        if (d >= 0)
            keep_min(&cc->stale_if_error, d);
    } else if (name_is(name, nlen, "stale-while-revalidate")) {
        if (d >= 0)
            keep_min(&cc->stale_while_revalidate, d);
    }
}

int edge_cc_parse(const char *v, size_t len, edge_cc_t *out, const char **err_desc)
{
    const char *p = v, *end = v + len;
    char qbuf[32];

    memset(out, 0, sizeof(*out));
    out->max_age = out->s_maxage = out->stale_if_error = out->stale_while_revalidate = -1;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end)
            return 0;
        const char *name = p;
        while (p < end && tchar((unsigned char)*p))
            p++;
        size_t nlen = (size_t)(p - name);
        if (nlen == 0)
            goto bad;
        const char *val = NULL;
        size_t vlen = 0;
        int has_val = 0;
        if (p < end && *p == '=') {
            p++;
            has_val = 1;
            if (p < end && *p == '"') {
                /* quoted-string: unescape into a small buffer; only short values matter to us. */
                p++;
                vlen = 0;
                for (;;) {
                    if (p == end)
                        goto bad;
                    char ch = *p++;
                    if (ch == '"')
                        break;
                    if (ch == '\\') {
                        if (p == end)
                            goto bad;
                        ch = *p++;
                    }
                    if (vlen < sizeof(qbuf))
                        qbuf[vlen] = ch;
                    vlen++;
                }
                val = qbuf;
                if (vlen > sizeof(qbuf))
                    vlen = sizeof(qbuf); /* too long to be a number; delta() then refuses it */
            } else {
                val = p;
                while (p < end && tchar((unsigned char)*p))
                    p++;
                vlen = (size_t)(p - val);
            }
        }
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p != ',')
            goto bad;
        apply(out, name, nlen, val, vlen, has_val);
    }
bad:
    if (err_desc != NULL)
        *err_desc = "Cache-Control is not a list of directives";
    return EDGE_ERR_INVAL;
}

/* ---- HTTP-date ---------------------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01 in the proleptic Gregorian calendar. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int num(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

static int month(const char *p)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++) {
        if (memcmp(p, names + 3 * i, 3) == 0)
            return i + 1;
    }
    return 0;
}

/* "08:49:37" */
static int hms(const char *p, int *h, int *mi, int *s)
{
    if (p[2] != ':' || p[5] != ':' || num(p, 2, h) || num(p + 3, 2, mi) || num(p + 6, 2, s))
        return -1;
    return *h < 24 && *mi < 60 && *s < 61 ? 0 : -1;
}

static int64_t mk(int y, int mo, int d, int h, int mi, int s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || d < 1 || d > mdays[mo - 1])
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    if (y < 1970) /* before the epoch: -1 is "invalid", which reads as "long expired" anyway */
        return -1;
    return days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s;
}

int64_t edge_http_date_parse(const char *v, size_t len)
{
    int y, mo, d, h, mi, s;
    const char *comma = memchr(v, ',', len < 10 ? len : 10);

    if (comma != NULL && comma - v == 3 && len == 29) {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        const char *p = v + 4;
        if (p[0] != ' ' || p[3] != ' ' || p[7] != ' ' || p[12] != ' ' || p[21] != ' ' ||
            memcmp(p + 22, "GMT", 3) != 0 || num(p + 1, 2, &d) || (mo = month(p + 4)) == 0 ||
            num(p + 8, 4, &y) || hms(p + 13, &h, &mi, &s))
            return -1;
        return mk(y, mo, d, h, mi, s);
    }
    if (comma != NULL && comma - v >= 6) {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; two-digit years below 70 are 20xx. */
        const char *p = comma + 1;
        if ((size_t)(v + len - p) != 23 || p[0] != ' ' || p[3] != '-' || p[7] != '-' ||
            p[10] != ' ' || p[19] != ' ' || memcmp(p + 20, "GMT", 3) != 0 || num(p + 1, 2, &d) ||
            (mo = month(p + 4)) == 0 || num(p + 8, 2, &y) || hms(p + 11, &h, &mi, &s))
            return -1;
        y += y < 70 ? 2000 : 1900;
        return mk(y, mo, d, h, mi, s);
    }
    if (comma == NULL && len == 24) {
        /* asctime: "Sun Nov  6 08:49:37 1994" */
        if (v[3] != ' ' || v[7] != ' ' || v[10] != ' ' || v[19] != ' ' ||
            (mo = month(v + 4)) == 0 || hms(v + 11, &h, &mi, &s) || num(v + 20, 4, &y))
            return -1;
        if (v[8] == ' ') {
            if (num(v + 9, 1, &d))
                return -1;
        } else if (num(v + 8, 2, &d)) {
            return -1;
        }
        return mk(y, mo, d, h, mi, s);
    }
    return -1;
}

/* ---- freshness ---------------------------------------------------------------------------- */

void edge_ttl_compute(const char *cache_control, const char *expires, const char *date,
                      int64_t now_ms, const edge_ttl_rules_t *rules, edge_ttl_t *out)
{
    static const edge_ttl_rules_t zero;
    edge_cc_t cc;
    int64_t fresh;

    if (rules == NULL)
        rules = &zero;
    memset(out, 0, sizeof(*out));
    if (cache_control != NULL && edge_cc_parse(cache_control, strlen(cache_control), &cc, NULL))
        return;
    if (cache_control == NULL)
        edge_cc_parse("", 0, &cc, NULL);
    out->immutable = cc.immutable;
    out->is_private = cc.is_private;
    if (cc.no_store || cc.is_private || cc.no_cache)
        return;

    if (cc.s_maxage >= 0) {
        fresh = cc.s_maxage * 1000;
    } else if (cc.max_age >= 0) {
        fresh = cc.max_age * 1000;
    } else if (expires != NULL) {
        int64_t e = edge_http_date_parse(expires, strlen(expires));
        int64_t d = date != NULL ? edge_http_date_parse(date, strlen(date)) : -1;
        fresh = e < 0 ? 0 : e * 1000 - (d >= 0 ? d * 1000 : now_ms);
    } else if (cc.immutable && rules->immutable_ttl_ms > 0) {
        fresh = rules->immutable_ttl_ms;
    } else {
        fresh = rules->default_ttl_ms;
    }
    if (fresh < 0)
        fresh = 0;
    if (rules->max_ttl_ms > 0 && fresh > rules->max_ttl_ms)
        fresh = rules->max_ttl_ms;
    out->fresh_ms = fresh;
    out->cacheable = fresh > 0;
    if (cc.must_revalidate || cc.proxy_revalidate)
        out->stale_if_error_ms = 0;
    else if (cc.stale_if_error >= 0)
        out->stale_if_error_ms = cc.stale_if_error * 1000;
    else
        out->stale_if_error_ms = rules->stale_if_error_ms;
}
