/*
 * fuzz_edge_range.c: edge_range_parse() and edge_etag_match() on arbitrary bytes. The first byte
 * picks the representation length (or unknown). Checks that every range returned lies inside the
 * representation, that there are at most EDGE_RANGE_MAX, and that none overlap; then that
 * edge_range_coalesce() keeps the same bytes and that the multipart/byteranges layout of the set
 * adds up: its body length is the framing plus the ranges, and the framing it writes fits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/http_util.h"
#include "fuzz.h"

static uint64_t span_bytes(const edge_range_set_t *rs)
{
    uint64_t n = 0;
    for (size_t i = 0; i < rs->n; i++)
        n += rs->r[i].last - rs->r[i].first + 1;
    return n;
}

static void check_layout(edge_range_set_t *rs, uint64_t len)
{
    static char text[EDGE_RANGE_MAX * 256 + 256];
    size_t off[EDGE_RANGE_MAX + 2];
    uint64_t body = 0, bytes = span_bytes(rs);

    edge_range_coalesce(rs);
    CHECK(rs->n >= 1 && span_bytes(rs) == bytes);
    size_t tl =
        edge_byteranges_layout(rs, len, "video/mp4", "0123456789abcdef", NULL, 0, off, &body);
    CHECK(off[0] == 0 && off[rs->n + 1] == tl && body == tl + bytes);
    CHECK(tl <= sizeof(text));
    size_t t2 = edge_byteranges_layout(rs, len, "video/mp4", "0123456789abcdef", text, sizeof(text),
                                       off, &body);
    CHECK(t2 == tl && body == tl + bytes);
    for (size_t i = 0; i < rs->n; i++) {
        char want[96];
        snprintf(want, sizeof(want), "Content-Range: bytes %llu-%llu/%llu",
                 (unsigned long long)rs->r[i].first, (unsigned long long)rs->r[i].last,
                 (unsigned long long)len);
        CHECK(memmem(text + off[i], off[i + 1] - off[i], want, strlen(want)) != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t lengths[] = {-1, 0, 1, 100, 1000, 1 << 20, INT64_MAX};
    edge_range_set_t rs;
    const char *why = NULL;

    if (size < 1)
        return 0;
    int64_t len = lengths[data[0] % (sizeof(lengths) / sizeof(lengths[0]))];
    const char *hdr = (const char *)data + 1;
    size_t n = size - 1;

    int rv = edge_range_parse(hdr, n, len, &rs, &why);
    CHECK(rv == EDGE_RANGE_NONE || rv == EDGE_RANGE_RANGES || rv == EDGE_RANGE_UNSATISFIABLE);
    if (rv == EDGE_RANGE_RANGES) {
        CHECK(rs.n >= 1 && rs.n <= EDGE_RANGE_MAX);
        for (size_t i = 0; i < rs.n; i++) {
            CHECK(rs.r[i].first <= rs.r[i].last);
            if (len >= 0)
                CHECK(rs.r[i].last < (uint64_t)len);
            for (size_t j = i + 1; j < rs.n; j++)
                CHECK(rs.r[i].last < rs.r[j].first || rs.r[j].last < rs.r[i].first);
        }
        if (len >= 0)
            check_layout(&rs, (uint64_t)len);
    } else {
        CHECK(why != NULL);
        CHECK(rv != EDGE_RANGE_UNSATISFIABLE || len >= 0);
    }

    int m = edge_etag_match(hdr, n, "W/\"abc\"");
    CHECK(m == 0 || m == 1 || m == EDGE_ERR_INVAL);
    m = edge_etag_match(hdr, n, NULL);
    CHECK(m == 0 || m == 1 || m == EDGE_ERR_INVAL);
    return 0;
}
