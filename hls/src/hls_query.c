/*
 * hls_query.c: the LL-HLS query of a playlist request (_HLS_msn, _HLS_part, _HLS_skip) and what a
 * blocking request should do with it (hls_track_block_state() is in hls_playlist.c, next to the
 * rules that decide what a playlist lists).
 *
 * The query comes straight from the network. It is a sequence of key=value pairs separated by '&';
 * keys we do not know (dvr=1, tracking parameters) are skipped without looking at their values.
 * Our values are plain decimal numbers or a keyword, so percent-encoding or '+' in them is refused
 * rather than decoded: a client that encodes "7" as "%37" is broken and should learn so.
 */
#include <string.h>

#include "hls/hls.h"

#define MSN_MAX_DIGITS 20

static int fail(const char **err_desc, const char *why)
{
    if (err_desc != NULL)
        *err_desc = why;
    return HLS_ERR_INVAL;
}

/* Parses 1 to `max_digits` ASCII digits into *out; fails on anything else and on overflow. */
static int parse_u64(const char *p, size_t len, size_t max_digits, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > max_digits)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int key_is(const char *k, size_t klen, const char *name)
{
    size_t n = strlen(name);
    return klen == n && memcmp(k, name, n) == 0;
}

int hls_query_parse(const char *query, size_t len, hls_query_t *out, const char **err_desc)
{
    memset(out, 0, sizeof(*out));
    if (query == NULL)
        len = 0;

    int has_skip = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *pair = query + pos;
        const char *amp = memchr(pair, '&', len - pos);
        size_t plen = amp != NULL ? (size_t)(amp - pair) : len - pos;
        pos += plen + 1;
        if (plen == 0)
            continue; /* "a=1&&b=2" or a trailing '&' */

        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq != NULL ? (size_t)(eq - pair) : plen;
        const char *val = eq != NULL ? eq + 1 : NULL;
        size_t vlen = eq != NULL ? plen - klen - 1 : 0;

        if (key_is(pair, klen, "_HLS_msn")) {
            if (out->has_msn)
                return fail(err_desc, "_HLS_msn given twice");
            if (val == NULL || vlen == 0)
                return fail(err_desc, "_HLS_msn has no value");
            if (parse_u64(val, vlen, MSN_MAX_DIGITS, UINT64_MAX, &out->msn) != 0)
                return fail(err_desc, "_HLS_msn is not a decimal number below 2^64");
            out->has_msn = 1;
        } else if (key_is(pair, klen, "_HLS_part")) {
            uint64_t v;
            if (out->has_part)
                return fail(err_desc, "_HLS_part given twice");
            if (val == NULL || vlen == 0)
                return fail(err_desc, "_HLS_part has no value");
            if (parse_u64(val, vlen, 10, UINT32_MAX, &v) != 0)
                return fail(err_desc, "_HLS_part is not a decimal number below 2^32");
            out->part = (uint32_t)v;
            out->has_part = 1;
        } else if (key_is(pair, klen, "_HLS_skip")) {
            if (has_skip)
                return fail(err_desc, "_HLS_skip given twice");
            if (val != NULL && vlen == 3 && memcmp(val, "YES", 3) == 0)
                out->skip = 1;
            else if (val != NULL && vlen == 2 && memcmp(val, "v2", 2) == 0)
                out->skip = 2;
            else
                return fail(err_desc, "_HLS_skip is neither YES nor v2");
            has_skip = 1;
        }
    }
    if (out->has_part && !out->has_msn)
        return fail(err_desc, "_HLS_part without _HLS_msn");
    return 0;
}
