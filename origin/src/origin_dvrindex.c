/*
 * origin_dvrindex.c: the lines of a DVR folder's index.log. Pure code: no I/O, no allocation,
 * fuzzed by tests/fuzz/fuzz_origin_dvrindex.c, since after a restart the file is outside input
 * (a crash, a full disk or a person may have left anything in it).
 *
 * A segment line is eleven fields and a checksum, separated by single spaces:
 *
 *   seg K MSN START DURATION PDT_MS INIT_GEN DISC BYTES ORIGIN_MS TIMESCALE GAP crc=XXXXXXXX\n
 *
 * K is "v" or "a"; XXXXXXXX is the CRC-32 (IEEE 802.3), in lower-case hex, of every byte before
 * " crc=". Lines written before the checksum have nine fields (no TIMESCALE, no GAP), ten (no GAP)
 * or eleven, and no checksum; they are still read. "start N\n" records that a run began, with N
 * its first media sequence number, and "end\n" that it stopped cleanly.
 *
 * The checksum is what tells a line apart from the garbage a crash can leave: a kill -9 keeps
 * every write() that returned (the page cache survives the process), so a torn line is the one
 * that a power cut or a full disk cut short, and zeros or bytes of another file can follow it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "origin_int.h"

#define CRC_TAG " crc="

uint32_t origin__dvr_crc32(const char *s, size_t len)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        c ^= (unsigned char)s[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

int origin__dvr_line_format(char *buf, size_t size, int kind, const hls_segment_t *seg,
                            int64_t origin_ms, uint32_t timescale)
{
    int n = snprintf(buf, size,
                     "seg %s %" PRIu64 " %" PRId64 " %" PRIu64 " %" PRId64 " %u %u %" PRIu64
                     " %" PRId64 " %u %u",
                     kind == HLS_VIDEO ? "v" : "a", seg->msn, seg->start, seg->duration,
                     seg->pdt_ms, seg->init_gen, seg->discontinuity ? 1u : 0u, seg->bytes,
                     origin_ms, timescale, seg->gap ? 1u : 0u);
    if (n < 0 || (size_t)n >= size)
        return -1;
    uint32_t crc = origin__dvr_crc32(buf, (size_t)n);
    int m = snprintf(buf + n, size - (size_t)n, CRC_TAG "%08" PRIx32 "\n", crc);
    if (m < 0 || (size_t)m >= size - (size_t)n)
        return -1;
    return n + m;
}

/* Reads one unsigned decimal field of at most 18 digits at *p: below 10^18, so that it fits in an
 * int64_t and sums of two of them do not overflow. */
static int field_u(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (++digits > 18)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    if (digits == 0)
        return -1;
    *out = v;
    *p = s;
    return 0;
}

/* The same with an optional '-': PDTs and output times are signed in hls_segment_t. */
static int field_i(const char **p, const char *end, int64_t *out)
{
    int neg = *p < end && **p == '-';
    uint64_t v;
    if (neg)
        (*p)++;
    if (field_u(p, end, &v) != 0)
        return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

int origin__dvr_line_parse(const char *line, size_t len, origin_dvr_line_t *out,
                           const char **err_desc)
{
    memset(out, 0, sizeof(*out));
    if (len == 0 || line[len - 1] != '\n') {
        *err_desc = "torn line: no newline at its end";
        return -1;
    }
    const char *end = line + len - 1; /* the newline */
    if (memchr(line, '\n', len - 1) != NULL || memchr(line, '\0', len - 1) != NULL) {
        *err_desc = "a newline or a NUL byte inside the line";
        return -1;
    }
    if (end - line == 3 && memcmp(line, "end", 3) == 0) {
        out->type = ORIGIN_DVR_LINE_END;
        return 0;
    }
    if (end - line > 6 && memcmp(line, "start ", 6) == 0) {
        const char *p = line + 6;
        if (field_u(&p, end, &out->seg.msn) != 0 || p != end) {
            *err_desc = "a start line without a number of at most 18 digits";
            return -1;
        }
        out->type = ORIGIN_DVR_LINE_START;
        return 0;
    }
    if (end - line < 6 || memcmp(line, "seg ", 4) != 0 || (line[4] != 'v' && line[4] != 'a') ||
        line[5] != ' ') {
        *err_desc = "neither \"seg v\", \"seg a\", \"start\" nor \"end\"";
        return -1;
    }
    /* The checksum, when there is one, covers what precedes it. */
    const char *body_end = end;
    const size_t tag = sizeof(CRC_TAG) - 1;
    if (end - line > (ptrdiff_t)(tag + 8) && memcmp(end - 8 - tag, CRC_TAG, tag) == 0) {
        uint32_t want = 0;
        for (const char *h = end - 8; h < end; h++) {
            int d = *h >= '0' && *h <= '9' ? *h - '0' : *h >= 'a' && *h <= 'f' ? *h - 'a' + 10 : -1;
            if (d < 0) {
                *err_desc = "a checksum that is not 8 lower-case hex digits";
                return -1;
            }
            want = want << 4 | (uint32_t)d;
        }
        body_end = end - 8 - tag;
        if (origin__dvr_crc32(line, (size_t)(body_end - line)) != want) {
            *err_desc = "checksum mismatch";
            return -1;
        }
        out->checked = 1;
    }

    out->kind = line[4] == 'v' ? HLS_VIDEO : HLS_AUDIO;
    hls_segment_t *seg = &out->seg;
    /* MSN START DURATION PDT_MS INIT_GEN DISC BYTES ORIGIN_MS, then TIMESCALE and GAP. */
    uint64_t f[10] = {0};
    int n = 0;
    const char *p = line + 5;
    while (p < body_end && n < 10) {
        if (*p++ != ' ') {
            *err_desc = "fields must be separated by one space";
            return -1;
        }
        int rv;
        /* START, PDT_MS and ORIGIN_MS are signed in hls_segment_t; the others are not. */
        if (n == 1 || n == 3 || n == 7) {
            int64_t v = 0;
            rv = field_i(&p, body_end, &v);
            f[n] = (uint64_t)v;
        } else {
            rv = field_u(&p, body_end, &f[n]);
        }
        if (rv != 0) {
            *err_desc = "a field that is not a decimal number of at most 18 digits";
            return -1;
        }
        n++;
    }
    if (p != body_end) {
        *err_desc = "more fields than a segment line has";
        return -1;
    }
    if (n < 8 || (out->checked && n != 10)) {
        *err_desc = "too few fields";
        return -1;
    }
    if (f[4] > UINT32_MAX || f[5] > 1 || (n >= 9 && f[8] > ORIGIN_DVR_MAX_TIMESCALE) ||
        (n == 10 && f[9] > 1)) {
        *err_desc = "a field out of range (init generation, flag or timescale)";
        return -1;
    }
    /* Bounds that keep the sums a restore does (start + duration, pdt + duration) far from
     * overflowing: 2^40 ticks is more than a day at any timescale allowed. */
    if (f[2] > ((uint64_t)1 << 40)) {
        *err_desc = "a segment duration out of range";
        return -1;
    }
    if (f[6] > ORIGIN_DVR_MAX_BYTES) {
        *err_desc = "a segment larger than the DVR serves (64 MiB)";
        return -1;
    }
    seg->msn = f[0];
    seg->start = (int64_t)f[1];
    seg->duration = f[2];
    seg->pdt_ms = (int64_t)f[3];
    seg->init_gen = (uint32_t)f[4];
    seg->discontinuity = (uint8_t)f[5];
    seg->bytes = f[6];
    out->origin_ms = (int64_t)f[7];
    out->timescale = n >= 9 ? (uint32_t)f[8] : 0;
    seg->gap = (uint8_t)(n == 10 ? f[9] : 0);
    seg->complete = 1;
    out->type = ORIGIN_DVR_LINE_SEG;
    return 0;
}

size_t origin__dvr_index_compact(const char *in, size_t len, int64_t keep_from_ms, char *out)
{
    size_t o = 0;
    const char *p = in, *end = in + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        origin_dvr_line_t l;
        const char *why;
        /* Only segment lines that still end inside the window stay: "end" is about the run that
         * wrote it, and a line that does not parse would not be read after a restart either. */
        if (origin__dvr_line_parse(p, n, &l, &why) == 0 && l.type == ORIGIN_DVR_LINE_SEG) {
            uint32_t ts = l.timescale != 0 ? l.timescale : 90000;
            int64_t end_ms = l.seg.pdt_ms + (int64_t)(l.seg.duration * 1000 / ts);
            if (end_ms > keep_from_ms) {
                memmove(out + o, p, n);
                o += n;
            }
        }
        p += n;
    }
    return o;
}
