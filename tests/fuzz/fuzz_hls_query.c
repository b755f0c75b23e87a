/*
 * fuzz_hls_query.c: hls_query_parse() on arbitrary bytes, then hls_track_block_state() with what
 * it accepted, against a small fixed timeline (segments 100..102, 103 in progress).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hls/hls.h"
#include "fuzz.h"

/* assert() is compiled out in release builds; these checks must not be. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hls_part_t parts[4][6];
    static hls_segment_t ring[4];
    hls_track_t t;
    hls_query_t q;
    const char *why = NULL;

    if (hls_query_parse((const char *)data, size, &q, &why) != 0) {
        CHECK(why != NULL);
        return 0;
    }
    CHECK(!q.has_part || q.has_msn);
    CHECK(q.skip >= 0 && q.skip <= 2);

    memset(&t, 0, sizeof(t));
    t.kind = HLS_VIDEO;
    t.codec = HLS_CODEC_H264;
    t.timescale = 90000;
    t.ring = ring;
    t.ring_cap = 4;
    t.first_msn = 100;
    t.next_msn = 104;
    for (uint64_t m = 100; m < 104; m++) {
        hls_segment_t *s = &ring[m % 4];
        memset(s, 0, sizeof(*s));
        s->msn = m;
        s->parts = parts[m % 4];
        s->nparts = m < 103 ? 6 : 2;
        s->complete = m < 103;
        for (uint32_t i = 0; i < s->nparts; i++)
            s->parts[i].duration = 30000;
        s->duration = 30000ull * s->nparts;
    }
    int st = hls_track_block_state(&t, &q);
    CHECK(st == HLS_BLOCK_READY || st == HLS_BLOCK_WAIT || st == HLS_BLOCK_BAD);
    CHECK(!q.has_msn || q.msn <= 105 || st == HLS_BLOCK_BAD);
    CHECK(!q.has_msn || q.msn > 102 || st == HLS_BLOCK_READY);
    return 0;
}
