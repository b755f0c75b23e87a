/*
 * tests/unit/hls/test_cmaf.c: the box writer (hls_cmaf.c) read back by the box reader
 * (hls_mp4read.c), and the audio helpers (hls_audio.c): ADTS, AudioSpecificConfig, OpusHead, TOC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hls_int.h"

static const uint8_t h264_sps_720[] = {0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05,
                                       0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
                                       0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60};
static const uint8_t h264_pps[] = {0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0};

static void test_init_video(void **state)
{
    hls_psets_t ps = {.codec = HLS_CODEC_H264};
    hls_sps_info_t si;
    hls_buf_t cfg, b;
    hls_mp4_init_t in;
    const char *err = NULL;

    assert_int_equal(hls__psets_set(&ps, h264_sps_720, sizeof(h264_sps_720)), 0);
    assert_int_equal(hls__psets_set(&ps, h264_pps, sizeof(h264_pps)), 0);
    assert_int_equal(hls__psets_info(&ps, &si, &err), 0);
    hls__buf_init(&cfg);
    hls__buf_init(&b);
    hls__avcc_build(&cfg, &ps, &si);
    hls_init_desc_t d = {.codec = HLS_CODEC_H264,
                         .track_id = 1,
                         .timescale = 90000,
                         .width = si.width,
                         .height = si.height,
                         .config = cfg.p,
                         .config_len = cfg.len};
    hls__cmaf_init(&b, &d);
    assert_false(b.failed);
    assert_memory_equal(b.p + 4, "ftypiso6", 8);
    assert_int_equal(hls__mp4_read_init(b.p, b.len, &in, &err), 0);
    assert_int_equal(in.track_id, 1);
    assert_int_equal(in.timescale, 90000);
    assert_string_equal(in.handler, "vide");
    assert_string_equal(in.entry, "avc1");
    assert_string_equal(in.config, "avcC");
    assert_int_equal(in.width, 1280);
    assert_int_equal(in.height, 720);
    assert_true(in.has_trex);

    /* Every truncation is rejected by the reader, never read past. */
    for (size_t n = 1; n < b.len; n++)
        assert_int_not_equal(hls__mp4_read_init(b.p, n, &in, &err), 0);
    hls__psets_dispose(&ps);
    hls__buf_dispose(&cfg);
    hls__buf_dispose(&b);
}

static void test_init_audio(void **state)
{
    uint8_t asc[2];
    hls_buf_t b;
    hls_mp4_init_t in;
    hls_asc_t a;
    const char *err = NULL;

    hls__asc_build(asc, 2, 3, 2);
    assert_int_equal(asc[0], 0x11);
    assert_int_equal(asc[1], 0x90);
    assert_int_equal(hls__asc_parse(asc, 2, &a, &err), 0);
    assert_int_equal(a.aot, 2);
    assert_int_equal(a.sample_rate, 48000);
    assert_int_equal(a.channels, 2);

    hls__buf_init(&b);
    hls_init_desc_t d = {.codec = HLS_CODEC_AAC,
                         .track_id = 1,
                         .timescale = 48000,
                         .sample_rate = 48000,
                         .channels = 2,
                         .config = asc,
                         .config_len = 2};
    hls__cmaf_init(&b, &d);
    assert_int_equal(hls__mp4_read_init(b.p, b.len, &in, &err), 0);
    assert_string_equal(in.handler, "soun");
    assert_string_equal(in.entry, "mp4a");
    assert_string_equal(in.config, "esds");
    assert_int_equal(in.sample_rate, 48000);
    assert_int_equal(in.channels, 2);
    assert_int_equal(in.timescale, 48000);

    /* Opus: the OpusHead (little-endian) becomes a dOps (big-endian). */
    static const uint8_t head[19] = {'O',  'p',  'u',  's',  'H', 'e', 'a', 'd', 1, 2,
                                     0x38, 0x01, 0x80, 0xbb, 0,   0,   0,   0,   0};
    hls_opus_head_t oh;
    assert_int_equal(hls__opus_head_parse(head, sizeof(head), &oh, &err), 0);
    assert_int_equal(oh.channels, 2);
    assert_int_equal(oh.pre_skip, 312);
    assert_int_equal(oh.input_rate, 48000);
    hls__buf_reset(&b);
    hls_init_desc_t o = {.codec = HLS_CODEC_OPUS,
                         .track_id = 1,
                         .timescale = 48000,
                         .sample_rate = 48000,
                         .channels = 2,
                         .opus = &oh};
    hls__cmaf_init(&b, &o);
    assert_int_equal(hls__mp4_read_init(b.p, b.len, &in, &err), 0);
    assert_string_equal(in.entry, "Opus");
    assert_string_equal(in.config, "dOps");
    const uint8_t *dops = memmem(b.p, b.len, "dOps", 4);
    assert_non_null(dops);
    static const uint8_t want[] = {0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0};
    assert_memory_equal(dops + 4, want, sizeof(want));
    assert_int_equal(hls__opus_head_parse(head, 18, &oh, &err), HLS_ERR_BITSTREAM);
    hls__buf_dispose(&b);
}

static void test_fragment(void **state)
{
    uint8_t mdat[300];
    hls_sample_t s[3] = {
        {3000, 100, 6000, 1},
        {3000, 120, 0, 0},
        {3003, 80, -3000, 0},
    };
    hls_buf_t b;
    hls_mp4_frag_t f;
    const char *err = NULL;

    for (size_t i = 0; i < sizeof(mdat); i++)
        mdat[i] = (uint8_t)i;
    hls__buf_init(&b);
    uint64_t base = (UINT64_C(1) << 33) + 12345; /* needs tfdt version 1 */
    hls__cmaf_fragment(&b, 7, 1, base, s, 3, 1, mdat, 300);
    assert_false(b.failed);
    assert_int_equal(hls__mp4_read_fragment(b.p, b.len, &f, &err), 0);
    assert_int_equal(f.seq, 7);
    assert_int_equal(f.track_id, 1);
    assert_true(f.base_dts == base);
    assert_int_equal(f.nsamples, 3);
    assert_int_equal(f.duration, 9003);
    assert_true(f.first_sync);
    assert_int_equal(f.mdat_len, 300);
    /* The mdat payload is the last 300 bytes, in order. */
    assert_memory_equal(b.p + b.len - 300, mdat, 300);

    /* A fragment whose trun claims more bytes than the mdat holds is refused. */
    hls_sample_t big[1] = {{1024, 400, 0, 1}};
    hls__buf_reset(&b);
    hls__cmaf_fragment(&b, 1, 1, 0, big, 1, 0, mdat, 300);
    assert_int_equal(hls__mp4_read_fragment(b.p, b.len, &f, &err), HLS_ERR_BITSTREAM);
    assert_string_equal(err, "trun data lies outside the mdat");
    hls__buf_dispose(&b);
}

static void test_walk_rejects(void **state)
{
    const char *err = NULL;
    static const uint8_t too_big[] = {0, 0, 0, 20, 'f', 'r', 'e', 'e', 0, 0, 0, 0};
    assert_int_equal(hls__mp4_walk(too_big, sizeof(too_big), NULL, NULL, &err), HLS_ERR_BITSTREAM);
    static const uint8_t too_small[] = {0, 0, 0, 4, 'f', 'r', 'e', 'e'};
    assert_int_equal(hls__mp4_walk(too_small, sizeof(too_small), NULL, NULL, &err),
                     HLS_ERR_BITSTREAM);
    static const uint8_t large[] = {0,    0,    0,    1,    'f',  'r',  'e',  'e',
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(hls__mp4_walk(large, sizeof(large), NULL, NULL, &err), HLS_ERR_BITSTREAM);
    /* 20 nested moov boxes. */
    uint8_t deep[160];
    for (int i = 0; i < 20; i++) {
        uint32_t n = 160 - 8 * (uint32_t)i;
        deep[8 * i] = 0;
        deep[8 * i + 1] = 0;
        deep[8 * i + 2] = (uint8_t)(n >> 8);
        deep[8 * i + 3] = (uint8_t)n;
        memcpy(deep + 8 * i + 4, "moov", 4);
    }
    assert_int_equal(hls__mp4_walk(deep, sizeof(deep), NULL, NULL, &err), HLS_ERR_BITSTREAM);
    assert_string_equal(err, "boxes nested too deep");
    static const uint8_t ok[] = {0, 0, 0, 8, 'f', 'r', 'e', 'e', 0, 0, 0, 0, 'm', 'd', 'a', 't'};
    assert_int_equal(hls__mp4_walk(ok, sizeof(ok), NULL, NULL, &err), 0);
}

static void test_adts(void **state)
{
    /* The first header of `ffmpeg -f lavfi -i sine -c:a aac -ac 1 -f adts`: LC, 48 kHz, mono. */
    static const uint8_t hdr[7] = {0xff, 0xf1, 0x4c, 0x40, 0x0f, 0x9f, 0xfc};
    hls_adts_t h;
    const char *err = NULL;

    assert_int_equal(hls__adts_parse(hdr, 7, &h, &err), 0);
    assert_int_equal(h.aot, 2);
    assert_int_equal(h.sample_rate, 48000);
    assert_int_equal(h.channels, 1);
    assert_int_equal(h.header_len, 7);
    assert_int_equal(h.frame_len, 124);
    assert_int_equal(hls__adts_parse(hdr, 6, &h, &err), HLS_ERR_AGAIN);
    uint8_t bad[7];
    memcpy(bad, hdr, 7);
    bad[2] = (uint8_t)((bad[2] & ~0x3c) | (13 << 2)); /* sampling index 13 */
    assert_int_equal(hls__adts_parse(bad, 7, &h, &err), HLS_ERR_BITSTREAM);
    memcpy(bad, hdr, 7);
    bad[6] |= 1; /* two raw data blocks */
    assert_int_equal(hls__adts_parse(bad, 7, &h, &err), HLS_ERR_UNSUPPORTED);
    memcpy(bad, hdr, 7);
    bad[3] &= 0x3f; /* channel configuration 0 */
    assert_int_equal(hls__adts_parse(bad, 7, &h, &err), HLS_ERR_UNSUPPORTED);
    memcpy(bad, hdr, 7);
    bad[4] = 0;
    bad[5] &= 0x1f; /* frame length 0 */
    assert_int_equal(hls__adts_parse(bad, 7, &h, &err), HLS_ERR_BITSTREAM);
}

static void test_opus_toc(void **state)
{
    uint8_t p[2];
    p[0] = 31 << 3; /* CELT FB 20 ms, one frame */
    assert_int_equal(hls__opus_duration(p, 1), 960);
    p[0] = (31 << 3) | 1; /* two frames */
    assert_int_equal(hls__opus_duration(p, 1), 1920);
    p[0] = (1 << 3) | 0; /* SILK NB 20 ms */
    assert_int_equal(hls__opus_duration(p, 1), 960);
    p[0] = (16 << 3) | 3; /* CELT 2.5 ms, code 3 */
    p[1] = 4;
    assert_int_equal(hls__opus_duration(p, 2), 480);
    p[0] = (3 << 3) | 3; /* SILK 60 ms x 3 = 180 ms: over the 120 ms limit */
    p[1] = 3;
    assert_int_equal(hls__opus_duration(p, 2), 0);
    assert_int_equal(hls__opus_duration(p, 1), 0);
    assert_int_equal(hls__opus_duration(p, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_video), cmocka_unit_test(test_init_audio),
        cmocka_unit_test(test_fragment),   cmocka_unit_test(test_walk_rejects),
        cmocka_unit_test(test_adts),       cmocka_unit_test(test_opus_toc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
