/*
 * Fuzz target for the DVR index (origin_dvrindex.c): index.log is read back after a restart and
 * may hold anything a crash, a full disk or a person left there. The input goes through the line
 * parser whole, and line by line as the restore reads it, and through the compaction. An accepted
 * segment line must format back into a line that parses to the same values; a refused one must
 * say why; compaction may only keep whole lines that parse, and never grow the file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "origin_int.h"

static void check_line(const char *p, size_t n)
{
    origin_dvr_line_t l, again;
    const char *why = NULL;
    char buf[256];

    if (origin__dvr_line_parse(p, n, &l, &why) != 0) {
        CHECK(why != NULL);
        return;
    }
    CHECK(n > 0 && p[n - 1] == '\n');
    CHECK(l.type == ORIGIN_DVR_LINE_SEG || l.type == ORIGIN_DVR_LINE_START ||
          l.type == ORIGIN_DVR_LINE_END);
    if (l.type != ORIGIN_DVR_LINE_SEG)
        return;
    CHECK(l.kind == HLS_VIDEO || l.kind == HLS_AUDIO);
    CHECK(l.seg.bytes <= ORIGIN_DVR_MAX_BYTES && l.timescale <= ORIGIN_DVR_MAX_TIMESCALE);
    int m = origin__dvr_line_format(buf, sizeof(buf), l.kind, &l.seg, l.origin_ms, l.timescale);
    CHECK(m > 0);
    CHECK(origin__dvr_line_parse(buf, (size_t)m, &again, &why) == 0 && again.checked);
    CHECK(again.kind == l.kind && again.seg.msn == l.seg.msn && again.seg.start == l.seg.start &&
          again.seg.duration == l.seg.duration && again.seg.pdt_ms == l.seg.pdt_ms &&
          again.seg.init_gen == l.seg.init_gen && again.seg.discontinuity == l.seg.discontinuity &&
          again.seg.bytes == l.seg.bytes && again.seg.gap == l.seg.gap &&
          again.origin_ms == l.origin_ms && again.timescale == l.timescale);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Copies of exactly `size` bytes, so that ASan sees any read past the end. */
    char *in = malloc(size ? size : 1), *out = malloc(size ? size : 1);
    if (in == NULL || out == NULL)
        goto out;
    memcpy(in, data, size);
    check_line(in, size);
    for (size_t off = 0; off < size;) {
        const char *nl = memchr(in + off, '\n', size - off);
        size_t n = nl != NULL ? (size_t)(nl - (in + off)) + 1 : size - off;
        check_line(in + off, n);
        off += n;
    }

    /* The window's start: from the input's first bytes, so that it moves across the lines. */
    int64_t keep_from = 0;
    memcpy(&keep_from, data, size < sizeof(keep_from) ? size : sizeof(keep_from));
    size_t n = origin__dvr_index_compact(in, size, keep_from, out);
    CHECK(n <= size);
    for (size_t off = 0; off < n;) {
        const char *nl = memchr(out + off, '\n', n - off);
        CHECK(nl != NULL);
        origin_dvr_line_t l;
        const char *why;
        size_t len = (size_t)(nl - (out + off)) + 1;
        CHECK(origin__dvr_line_parse(out + off, len, &l, &why) == 0 &&
              l.type == ORIGIN_DVR_LINE_SEG);
        off += len;
    }
out:
    free(in);
    free(out);
    return 0;
}
