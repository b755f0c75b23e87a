/*
 * Unit tests for origin_dvrindex.c: the index.log line parser (every line an earlier origin
 * wrote, and a reason for every refusal: torn lines, checksum mismatches, bad fields), the
 * formatter it must agree with, and the compaction that keeps the whole DVR window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "origin_int.h"

static int parse(const char *s, origin_dvr_line_t *l, const char **why)
{
    *why = NULL;
    return origin__dvr_line_parse(s, strlen(s), l, why);
}

static void expect_refused(const char *s, const char *reason)
{
    origin_dvr_line_t l;
    const char *why;
    if (parse(s, &l, &why) != -1)
        fail_msg("\"%s\": accepted", s);
    if (why == NULL || strstr(why, reason) == NULL)
        fail_msg("\"%s\": \"%s\" does not say \"%s\"", s, why ? why : "(null)", reason);
}

static hls_segment_t sample_segment(void)
{
    hls_segment_t seg;
    memset(&seg, 0, sizeof(seg));
    seg.msn = 1234;
    seg.start = 111060000;
    seg.duration = 180000;
    seg.pdt_ms = 1796000000123;
    seg.init_gen = 3;
    seg.discontinuity = 1;
    seg.bytes = 654321;
    return seg;
}

static void test_round_trip(void **state)
{
    char buf[256];
    hls_segment_t seg = sample_segment();
    int n = origin__dvr_line_format(buf, sizeof(buf), HLS_AUDIO, &seg, 1795999000000, 48000);
    assert_true(n > 0 && (size_t)n == strlen(buf) && buf[n - 1] == '\n');
    assert_non_null(strstr(buf, " crc="));

    origin_dvr_line_t l;
    const char *why;
    assert_int_equal(parse(buf, &l, &why), 0);
    assert_int_equal(l.type, ORIGIN_DVR_LINE_SEG);
    assert_int_equal(l.kind, HLS_AUDIO);
    assert_true(l.checked);
    assert_int_equal(l.seg.msn, 1234);
    assert_int_equal(l.seg.start, 111060000);
    assert_int_equal(l.seg.duration, 180000);
    assert_int_equal(l.seg.pdt_ms, 1796000000123);
    assert_int_equal(l.seg.init_gen, 3);
    assert_int_equal(l.seg.discontinuity, 1);
    assert_int_equal(l.seg.bytes, 654321);
    assert_int_equal(l.seg.gap, 0);
    assert_int_equal(l.origin_ms, 1795999000000);
    assert_int_equal(l.timescale, 48000);

    /* A gap segment and negative times (output times and PDTs are signed). */
    seg.gap = 1;
    seg.bytes = 0;
    seg.start = -5;
    seg.pdt_ms = -7;
    assert_true(origin__dvr_line_format(buf, sizeof(buf), HLS_VIDEO, &seg, -9, 90000) > 0);
    assert_int_equal(parse(buf, &l, &why), 0);
    assert_int_equal(l.kind, HLS_VIDEO);
    assert_int_equal(l.seg.gap, 1);
    assert_int_equal(l.seg.start, -5);
    assert_int_equal(l.seg.pdt_ms, -7);
    assert_int_equal(l.origin_ms, -9);

    /* Too small a buffer is refused, not truncated into a line that would parse. */
    assert_int_equal(origin__dvr_line_format(buf, 40, HLS_VIDEO, &seg, 0, 90000), -1);
    n = origin__dvr_line_format(buf, sizeof(buf), HLS_AUDIO, &seg, 0, 48000);
    assert_true(n > 0);
    assert_int_equal(origin__dvr_line_format(buf, (size_t)n, HLS_AUDIO, &seg, 0, 48000), -1);
    assert_int_equal(origin__dvr_line_format(buf, (size_t)n + 1, HLS_AUDIO, &seg, 0, 48000), n);
}

static void test_older_lines(void **state)
{
    origin_dvr_line_t l;
    const char *why;

    /* Nine fields (no timescale, no gap), ten, eleven: what earlier origins wrote. */
    assert_int_equal(
        parse("seg v 7 630000 180000 1796000000000 1 0 5000 1795999990000\n", &l, &why), 0);
    assert_int_equal(l.timescale, 0);
    assert_false(l.checked);
    assert_int_equal(l.seg.msn, 7);
    assert_int_equal(
        parse("seg a 7 336000 96000 1796000000000 1 0 500 1795999990000 48000\n", &l, &why), 0);
    assert_int_equal(l.timescale, 48000);
    assert_int_equal(l.seg.gap, 0);
    assert_int_equal(
        parse("seg a 8 432000 96000 1796000002000 1 0 0 1795999990000 48000 1\n", &l, &why), 0);
    assert_int_equal(l.seg.gap, 1);

    assert_int_equal(parse("end\n", &l, &why), 0);
    assert_int_equal(l.type, ORIGIN_DVR_LINE_END);
    assert_int_equal(parse("start 42\n", &l, &why), 0);
    assert_int_equal(l.type, ORIGIN_DVR_LINE_START);
    assert_int_equal(l.seg.msn, 42);
}

static void test_refusals(void **state)
{
    char buf[256];
    hls_segment_t seg = sample_segment();
    int n = origin__dvr_line_format(buf, sizeof(buf), HLS_VIDEO, &seg, 1, 90000);

    /* What a crash or a power cut leaves at the end of the file. */
    expect_refused("", "torn line");
    expect_refused("seg v 1234 0 18", "torn line");
    buf[n - 1] = '\0';
    expect_refused(buf, "torn line"); /* the whole line but its newline */
    buf[n - 1] = '\n';
    char torn[256];
    memcpy(torn, buf, (size_t)n);
    torn[20] = '\n';
    torn[21] = '\0';
    expect_refused(torn, "too few fields");
    expect_refused("end", "torn line");
    origin_dvr_line_t l;
    const char *why;
    static const char zeros[] = "seg v 1\0\0\0\n";
    assert_int_equal(origin__dvr_line_parse(zeros, sizeof(zeros) - 1, &l, &why), -1);

    /* One changed byte anywhere, the checksum's own digits included. */
    for (int i = 4; i < n - 1; i++) {
        memcpy(torn, buf, (size_t)n + 1);
        if (torn[i] == ' ' || torn[i] == 'v')
            continue;
        torn[i] = torn[i] == '1' ? '2' : '1';
        assert_int_equal(parse(torn, &l, &why), -1);
    }
    memcpy(torn, buf, (size_t)n + 1);
    torn[n - 2] = 'G';
    expect_refused(torn, "hex");
    memcpy(torn, buf, (size_t)n + 1);
    torn[n - 2] = torn[n - 2] == '0' ? '1' : '0';
    expect_refused(torn, "checksum mismatch");

    /* Bad shapes and values. */
    expect_refused("seg x 1 0 1 1 0 0 1 0\n", "neither");
    expect_refused("bogus\n", "neither");
    expect_refused("end \n", "neither");
    expect_refused("start\n", "neither");
    expect_refused("start x\n", "start line");
    expect_refused("start 1 2\n", "start line");
    expect_refused("seg v 1 0 1 1 0 0 1\n", "too few fields");
    expect_refused("seg v 1 0 1 1 0 0 1 0 90000 0 7\n", "more fields");
    expect_refused("seg v 1  0 1 1 0 0 1 0\n", "decimal");
    expect_refused("seg v 1 0 1 1 0 0 1 0 \n", "decimal");
    expect_refused("seg v -1 0 1 1 0 0 1 0\n", "decimal");
    expect_refused("seg v 1 0 1 1 0 0 1 0x10\n", "one space");
    expect_refused("seg v 1 0 1 1 0 0 +1 0\n", "decimal");
    expect_refused("seg v 1\t0 1 1 0 0 1 0\n", "one space");
    expect_refused("seg v 1000000000000000000 0 1 1 0 0 1 0\n", "18 digits");
    expect_refused("seg v 1 -1000000000000000000 1 1 0 0 1 0\n", "18 digits");
    expect_refused("seg v 1 0 1 1 4294967296 0 1 0\n", "out of range");
    expect_refused("seg v 1 0 1 1 0 2 1 0\n", "out of range");
    expect_refused("seg v 1 0 1 1 0 0 1 0 1000001\n", "out of range");
    expect_refused("seg v 1 0 1 1 0 0 1 0 90000 2\n", "out of range");
    expect_refused("seg v 1 0 1099511627777 1 0 0 1 0\n", "duration");
    expect_refused("seg v 1 0 1 1 0 0 67108865 0\n", "64 MiB");
    expect_refused("seg v 1 0 1 1 0 0 1 0\nseg v 2 0 1 1 0 0 1 0\n", "newline");
    /* A checksum on a line that lacks fields: only complete lines carry one. */
    snprintf(buf, sizeof(buf), "seg v 1 0 1 1 0 0 1 0");
    n = (int)strlen(buf);
    snprintf(buf + n, sizeof(buf) - (size_t)n, " crc=%08x\n", origin__dvr_crc32(buf, (size_t)n));
    expect_refused(buf, "too few fields");
}

/* Known CRC-32 values (as zlib's crc32() gives them). */
static void test_crc32(void **state)
{
    assert_int_equal(origin__dvr_crc32("", 0), 0);
    assert_int_equal(origin__dvr_crc32("123456789", 9), 0xcbf43926);
    assert_int_equal(origin__dvr_crc32("a", 1), 0xe8b7be43);
}

/* Two hours and a half of 2 s segments in both tracks, with the lines a crash leaves among them:
 * the compaction to a 2 h window keeps every segment that ends in it, in order, and no other. */
static void test_compact_keeps_window(void **state)
{
    const int64_t t0 = 1796000000000, window = 2 * 3600000;
    const int nseg = 4500;
    size_t cap = (size_t)nseg * 2 * 160 + 64, len = 0;
    char *in = malloc(cap), *out = malloc(cap);
    assert_non_null(in);
    assert_non_null(out);
    for (int i = 0; i < nseg; i++) {
        hls_segment_t seg;
        memset(&seg, 0, sizeof(seg));
        seg.msn = (uint64_t)i;
        seg.duration = 180000;
        seg.start = (int64_t)i * 180000;
        seg.pdt_ms = t0 + (int64_t)i * 2000;
        seg.bytes = 1000;
        len += (size_t)origin__dvr_line_format(in + len, cap - len, HLS_VIDEO, &seg, t0, 90000);
        seg.duration = 96000;
        seg.start = (int64_t)i * 96000;
        len += (size_t)origin__dvr_line_format(in + len, cap - len, HLS_AUDIO, &seg, t0, 48000);
        if (i == 100)
            len += (size_t)snprintf(in + len, cap - len, "end\nstart 101\nseg v 9 garbage\n");
    }
    len += (size_t)snprintf(in + len, cap - len, "seg v 4500 0 1"); /* a torn tail */
    int64_t newest = t0 + (int64_t)(nseg - 1) * 2000;
    size_t n = origin__dvr_index_compact(in, len, newest - window, out);
    assert_true(n < len);

    uint64_t next[HLS_NTRACKS] = {0, 0};
    int count[HLS_NTRACKS] = {0, 0};
    for (const char *p = out, *end = out + n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        origin_dvr_line_t l;
        const char *why;
        assert_int_equal(origin__dvr_line_parse(p, (size_t)(nl - p) + 1, &l, &why), 0);
        assert_int_equal(l.type, ORIGIN_DVR_LINE_SEG);
        if (count[l.kind]++ == 0)
            next[l.kind] = l.seg.msn;
        assert_int_equal(l.seg.msn, next[l.kind]); /* in order, no hole */
        next[l.kind]++;
        assert_true(l.seg.pdt_ms + 2000 > newest - window);
        p = nl + 1;
    }
    /* 2 h of 2 s segments end inside the window, and the one that straddles its start. */
    for (int k = 0; k < HLS_NTRACKS; k++) {
        assert_int_equal(count[k], 3601);
        assert_int_equal(next[k], nseg);
    }
    /* In place, as the compaction job does it. */
    assert_int_equal(origin__dvr_index_compact(in, len, newest - window, in), n);
    assert_memory_equal(in, out, n);
    free(in);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_older_lines),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_compact_keeps_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
