/*
 * tests/unit/hls/test_nal.c: SPS parsing, avcC/hvcC records, codec strings and Annex-B
 * conversion (hls_nal.c), against parameter sets made by real encoders:
 *   ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -t 0.1 -c:v libx264 -f h264 x720.h264
 *   ffmpeg -f lavfi -i testsrc2=size=1920x1080:rate=30 -t 0.1 -c:v libx264 -f h264 x1080.h264
 *   ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -t 0.1 -c:v libx265 -f hevc x720.hevc
 * The expected avcC/hvcC bytes are what `ffmpeg -i x720.h264 -c copy x.mp4` wrote (ffmpeg 6).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hls_int.h"

static const uint8_t h264_sps_720[] = {0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05,
                                       0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
                                       0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60};
static const uint8_t h264_pps[] = {0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0};
static const uint8_t h264_sps_1080[] = {0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02,
                                        0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04,
                                        0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58};
static const uint8_t hevc_vps[] = {0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60,
                                   0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03,
                                   0x00, 0x00, 0x03, 0x00, 0x5d, 0x95, 0x98, 0x09};
static const uint8_t hevc_sps[] = {0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00,
                                   0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x5d, 0xa0, 0x02, 0x80, 0x80,
                                   0x2d, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0, 0x5a, 0x02, 0x00,
                                   0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x10};
static const uint8_t hevc_pps[] = {0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40};

/* The avcC ffmpeg wrote for x720.h264. */
static const char ffmpeg_avcc_720[] = "0164001fffe1001a6764001facd9405005bb0110000003001000000303c0"
                                      "f183196001000668ebe3cb22c0fdf8f800";
/* The hvcC ffmpeg wrote for x720.hevc (-tag:v hvc1). */
static const char ffmpeg_hvcc_720[] =
    "0101600000009000000000005df000fcfdf8f800000f03a00001001840010c01ffff0160000003009000000300"
    "0003005d959809a10001002b42010101600000030090000003000003005da00280802d165959a4932bc05a0200"
    "00030002000003003c10a2000100074401c172b46240";

static size_t unhex(uint8_t *out, const char *hex)
{
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static void test_h264_sps_720(void **state)
{
    hls_sps_info_t si;
    const char *err = NULL;
    char codec[48];

    assert_int_equal(hls__h264_sps_parse(h264_sps_720, sizeof(h264_sps_720), &si, &err), 0);
    assert_int_equal(si.width, 1280);
    assert_int_equal(si.height, 720);
    assert_int_equal(si.profile_idc, 100);
    assert_int_equal(si.level_idc, 31);
    assert_int_equal(si.chroma_format_idc, 1);
    hls__codec_string(codec, sizeof(codec), HLS_CODEC_H264, &si);
    assert_string_equal(codec, "avc1.64001f");
}

static void test_h264_sps_cropped(void **state)
{
    hls_sps_info_t si;
    const char *err = NULL;
    char codec[48];

    /* 1080 is 68 macroblocks (1088) cropped by 8 lines. */
    assert_int_equal(hls__h264_sps_parse(h264_sps_1080, sizeof(h264_sps_1080), &si, &err), 0);
    assert_int_equal(si.width, 1920);
    assert_int_equal(si.height, 1080);
    hls__codec_string(codec, sizeof(codec), HLS_CODEC_H264, &si);
    assert_string_equal(codec, "avc1.640028");
}

static void test_hevc_sps(void **state)
{
    hls_sps_info_t si;
    const char *err = NULL;
    char codec[48];

    assert_int_equal(hls__hevc_sps_parse(hevc_sps, sizeof(hevc_sps), &si, &err), 0);
    assert_int_equal(si.width, 1280);
    assert_int_equal(si.height, 720);
    assert_int_equal(si.profile_idc, 1);
    assert_int_equal(si.level_idc, 93);
    assert_int_equal(si.compat_flags, 0x60000000);
    hls__codec_string(codec, sizeof(codec), HLS_CODEC_HEVC, &si);
    /* x265 sets progressive_source only: constraint byte 0x90 (B0 would add interlaced=0 etc.) */
    assert_string_equal(codec, "hvc1.1.6.L93.90");
}

static void test_avcc_matches_ffmpeg(void **state)
{
    hls_psets_t ps = {.codec = HLS_CODEC_H264};
    hls_sps_info_t si;
    hls_buf_t b;
    uint8_t want[128];
    const char *err = NULL;

    assert_int_equal(hls__psets_set(&ps, h264_sps_720, sizeof(h264_sps_720)), 0);
    assert_int_equal(hls__psets_set(&ps, h264_pps, sizeof(h264_pps)), 0);
    assert_true(hls__psets_complete(&ps));
    assert_int_equal(hls__psets_info(&ps, &si, &err), 0);
    hls__buf_init(&b);
    hls__avcc_build(&b, &ps, &si);
    size_t n = unhex(want, ffmpeg_avcc_720);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.p, want, n);

    /* And back: the avcC as extradata gives the same parameter sets. */
    hls_psets_t back = {0};
    assert_int_equal(hls__psets_from_extradata(&back, HLS_CODEC_H264, b.p, b.len, &err), 0);
    assert_int_equal(back.sps_len, sizeof(h264_sps_720));
    assert_memory_equal(back.sps, h264_sps_720, sizeof(h264_sps_720));
    assert_memory_equal(back.pps, h264_pps, sizeof(h264_pps));
    hls__psets_dispose(&back);
    hls__psets_dispose(&ps);
    hls__buf_dispose(&b);
}

static void test_hvcc_matches_ffmpeg(void **state)
{
    static const uint8_t annexb_hdr[4] = {0, 0, 0, 1};
    hls_psets_t ps = {0};
    hls_sps_info_t si;
    hls_buf_t ex, b;
    uint8_t want[256];
    const char *err = NULL;

    /* Annex-B extradata, as an MPEG-TS demuxer would hand it over. */
    hls__buf_init(&ex);
    hls__put(&ex, annexb_hdr, 4);
    hls__put(&ex, hevc_vps, sizeof(hevc_vps));
    hls__put(&ex, annexb_hdr, 4);
    hls__put(&ex, hevc_sps, sizeof(hevc_sps));
    hls__put(&ex, annexb_hdr + 1, 3);
    hls__put(&ex, hevc_pps, sizeof(hevc_pps));
    assert_int_equal(hls__psets_from_extradata(&ps, HLS_CODEC_HEVC, ex.p, ex.len, &err), 0);
    assert_true(hls__psets_complete(&ps));
    assert_int_equal(hls__psets_info(&ps, &si, &err), 0);
    hls__buf_init(&b);
    hls__hvcc_build(&b, &ps, &si);
    size_t n = unhex(want, ffmpeg_hvcc_720);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.p, want, n);

    hls_psets_t back = {0};
    assert_int_equal(hls__psets_from_extradata(&back, HLS_CODEC_HEVC, b.p, b.len, &err), 0);
    assert_true(hls__psets_complete(&back));
    assert_memory_equal(back.vps, hevc_vps, sizeof(hevc_vps));
    assert_memory_equal(back.pps, hevc_pps, sizeof(hevc_pps));
    hls__psets_dispose(&back);
    hls__psets_dispose(&ps);
    hls__buf_dispose(&b);
    hls__buf_dispose(&ex);
}

static void test_unescape(void **state)
{
    static const uint8_t in[] = {0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03, 0x00, 0x03, 0x05};
    static const uint8_t want[] = {0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x05};
    uint8_t out[sizeof(in)];

    size_t n = hls__unescape(out, in, sizeof(in));
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(out, want, n);
}

static void test_annexb_to_sample(void **state)
{
    static const uint8_t idr[] = {0x65, 0x88, 0x84, 0x00, 0x21};
    static const uint8_t sei[] = {0x06, 0x05, 0x01, 0x80};
    static const uint8_t sc4[] = {0, 0, 0, 1}, aud[] = {0x09, 0xf0}, filler[] = {0x0c, 0xff, 0xff};
    hls_buf_t in, out;
    hls_au_info_t ai;
    const char *err = NULL;

    hls__buf_init(&in);
    hls__buf_init(&out);
    hls__put(&in, sc4, 4);
    hls__put(&in, aud, sizeof(aud));
    hls__put(&in, sc4, 4);
    hls__put(&in, h264_sps_720, sizeof(h264_sps_720));
    hls__put(&in, sc4 + 1, 3);
    hls__put(&in, h264_pps, sizeof(h264_pps));
    hls__put(&in, sc4 + 1, 3);
    hls__put(&in, sei, sizeof(sei));
    hls__put(&in, sc4 + 1, 3);
    hls__put(&in, filler, sizeof(filler));
    hls__put(&in, sc4, 4);
    hls__put(&in, idr, sizeof(idr));
    hls__put8(&in, 0); /* trailing_zero_8bits */
    assert_int_equal(hls__annexb_to_sample(HLS_CODEC_H264, in.p, in.len, &out, &ai, &err), 0);
    assert_true(ai.irap);
    assert_non_null(ai.sps);
    assert_int_equal(ai.sps_len, sizeof(h264_sps_720));
    assert_memory_equal(ai.sps, h264_sps_720, sizeof(h264_sps_720));
    assert_int_equal(ai.pps_len, sizeof(h264_pps));
    /* SEI and the IDR slice stay, each with a 4-byte length; AUD, SPS, PPS and filler go. */
    static const uint8_t want[] = {0, 0, 0, 4,    0x06, 0x05, 0x01, 0x80, 0,
                                   0, 0, 5, 0x65, 0x88, 0x84, 0x00, 0x21};
    assert_int_equal(out.len, sizeof(want));
    assert_memory_equal(out.p, want, sizeof(want));
    hls__buf_dispose(&in);
    hls__buf_dispose(&out);
}

static void test_malformed_rejected(void **state)
{
    hls_buf_t out;
    hls_au_info_t ai;
    hls_sps_info_t si;
    hls_psets_t ps = {0};
    const char *err = NULL;

    hls__buf_init(&out);
    /* Not Annex-B (a length prefix). */
    static const uint8_t lp[] = {0, 0, 0, 5, 0x65, 0x88, 0x84, 0x00, 0x21};
    assert_int_equal(hls__annexb_to_sample(HLS_CODEC_H264, lp, sizeof(lp), &out, &ai, &err),
                     HLS_ERR_BITSTREAM);
    assert_non_null(err);
    /* Only an AUD: no picture. */
    static const uint8_t only_aud[] = {0, 0, 0, 1, 0x09, 0xf0};
    err = NULL;
    assert_int_equal(
        hls__annexb_to_sample(HLS_CODEC_H264, only_aud, sizeof(only_aud), &out, &ai, &err),
        HLS_ERR_BITSTREAM);
    assert_string_equal(err, "access unit holds no picture data");
    /* forbidden_zero_bit. */
    static const uint8_t forbidden[] = {0, 0, 1, 0xe5, 0x88};
    assert_int_equal(
        hls__annexb_to_sample(HLS_CODEC_H264, forbidden, sizeof(forbidden), &out, &ai, &err),
        HLS_ERR_BITSTREAM);
    assert_int_equal(out.len, 0);

    /* Every truncation of a real SPS fails cleanly or parses; none reads out of bounds. */
    for (size_t n = 0; n < sizeof(h264_sps_720); n++)
        (void)hls__h264_sps_parse(h264_sps_720, n, &si, &err);
    for (size_t n = 0; n < sizeof(hevc_sps); n++)
        (void)hls__hevc_sps_parse(hevc_sps, n, &si, &err);
    assert_int_equal(hls__h264_sps_parse(h264_sps_720, 8, &si, &err), HLS_ERR_BITSTREAM);
    assert_int_equal(hls__hevc_sps_parse(hevc_sps, 20, &si, &err), HLS_ERR_BITSTREAM);
    /* The wrong NAL type. */
    assert_int_equal(hls__h264_sps_parse(h264_pps, sizeof(h264_pps), &si, &err), HLS_ERR_BITSTREAM);

    /* Truncated avcC / hvcC. */
    static const uint8_t avcc[] = {1, 0x64, 0, 0x1f, 0xff, 0xe1, 0x00, 0x40, 0x67, 0x64};
    assert_int_equal(hls__psets_from_extradata(&ps, HLS_CODEC_H264, avcc, sizeof(avcc), &err),
                     HLS_ERR_BITSTREAM);
    assert_string_equal(err, "avcC truncated");
    static const uint8_t hvcc[23] = {1};
    uint8_t hv[24];
    memcpy(hv, hvcc, 23);
    hv[22] = 3; /* three arrays announced, none there */
    assert_int_equal(hls__psets_from_extradata(&ps, HLS_CODEC_HEVC, hv, 23, &err),
                     HLS_ERR_BITSTREAM);
    hls__psets_dispose(&ps);
    hls__buf_dispose(&out);
}

/* A tiny bit writer to make baseline SPSs with chosen sizes. */
typedef struct bw {
    uint8_t p[64];
    size_t bits;
} bw_t;

static void bw_u(bw_t *w, unsigned n, uint32_t v)
{
    for (unsigned i = 0; i < n; i++, w->bits++)
        if ((v >> (n - 1 - i)) & 1)
            w->p[w->bits / 8] |= (uint8_t)(0x80 >> (w->bits % 8));
}

static void bw_ue(bw_t *w, uint32_t v)
{
    uint32_t x = v + 1;
    unsigned len = 0;
    while ((x >> len) > 1)
        len++;
    bw_u(w, len, 0);
    bw_u(w, len + 1, x);
}

static size_t baseline_sps(uint8_t *out, uint32_t w_mbs, uint32_t h_mbs, uint32_t crop_bottom)
{
    bw_t w;
    memset(&w, 0, sizeof(w));
    bw_u(&w, 8, 0x67);
    bw_u(&w, 8, 66);
    bw_u(&w, 8, 0);
    bw_u(&w, 8, 30);
    bw_ue(&w, 0); /* sps id */
    bw_ue(&w, 0); /* log2_max_frame_num - 4 */
    bw_ue(&w, 2); /* poc type */
    bw_ue(&w, 1); /* max refs */
    bw_u(&w, 1, 0);
    bw_ue(&w, w_mbs - 1);
    bw_ue(&w, h_mbs - 1);
    bw_u(&w, 1, 1); /* frame_mbs_only */
    bw_u(&w, 1, 1);
    bw_u(&w, 1, crop_bottom ? 1 : 0);
    if (crop_bottom) {
        bw_ue(&w, 0);
        bw_ue(&w, 0);
        bw_ue(&w, 0);
        bw_ue(&w, crop_bottom);
    }
    bw_u(&w, 1, 0); /* no VUI */
    bw_u(&w, 1, 1); /* rbsp stop bit */
    size_t n = (w.bits + 7) / 8;
    memcpy(out, w.p, n);
    return n;
}

static void test_sps_limits(void **state)
{
    uint8_t sps[64];
    hls_sps_info_t si;
    const char *err = NULL;

    size_t n = baseline_sps(sps, 40, 30, 0);
    assert_int_equal(hls__h264_sps_parse(sps, n, &si, &err), 0);
    assert_int_equal(si.width, 640);
    assert_int_equal(si.height, 480);
    n = baseline_sps(sps, 40, 30, 4); /* 4 crop units of 2 lines */
    assert_int_equal(hls__h264_sps_parse(sps, n, &si, &err), 0);
    assert_int_equal(si.height, 472);
    n = baseline_sps(sps, 1000, 30, 0); /* 16000 wide */
    assert_int_equal(hls__h264_sps_parse(sps, n, &si, &err), HLS_ERR_BITSTREAM);
    assert_string_equal(err, "SPS picture size out of range");
    n = baseline_sps(sps, 40, 30, 240); /* crops away the whole picture */
    assert_int_equal(hls__h264_sps_parse(sps, n, &si, &err), HLS_ERR_BITSTREAM);
    n = baseline_sps(sps, 40, 513, 0); /* 8208 tall */
    assert_int_equal(hls__h264_sps_parse(sps, n, &si, &err), HLS_ERR_BITSTREAM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h264_sps_720),
        cmocka_unit_test(test_h264_sps_cropped),
        cmocka_unit_test(test_hevc_sps),
        cmocka_unit_test(test_avcc_matches_ffmpeg),
        cmocka_unit_test(test_hvcc_matches_ffmpeg),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_annexb_to_sample),
        cmocka_unit_test(test_malformed_rejected),
        cmocka_unit_test(test_sps_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
