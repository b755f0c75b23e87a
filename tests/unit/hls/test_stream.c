/*
 * tests/unit/hls/test_stream.c: the segmenter (hls_stream.c) fed with a real 64x64 H.264 clip
 * (GOP of 15 frames at 30 fps, no B-frames) and real ADTS AAC frames (48 kHz mono), both looped
 * with synthetic timestamps. Every part is read back with the box reader as it is published.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hls_int.h"
#include "hls_testdata.h"
#include "hls_clip.h"

#define FRAME_90K 3000 /* 30 fps */
#define AAC_90K   1920 /* 1024 samples at 48 kHz */
#define T0_MS     INT64_C(1795000000000)

/* ---- the clip, split into access units at each AUD ---- */

static au_t clip[64];
static size_t nclip;
static const uint8_t *aac[32];
static size_t aac_len[32], naac;

static au_t small[16];
static size_t nsmall;

static void split_media(void)
{
    nclip = split_clip(clip_h264, clip_h264_len, clip, 64);
    nsmall = split_clip(small_h264, small_h264_len, small, 16);
    naac = 0;
    for (size_t i = 0; i + 7 <= a_aac_len;) {
        size_t fl =
            ((size_t)(a_aac[i + 3] & 3) << 11) | ((size_t)a_aac[i + 4] << 3) | (a_aac[i + 5] >> 5);
        aac[naac] = a_aac + i;
        aac_len[naac++] = fl;
        i += fl;
    }
}

/* ---- what the callbacks saw ---- */

typedef struct cap {
    hls_stream_t *s;
    int inits[2];
    int parts[2];
    int segments[2];
    int gaps[2];
    int expired[2];
    int logs;
    char last_log[256];
    int log_lines_with[2]; /* "dropping samples", "jumped" */
    uint64_t part_limit[2];
    int fail;
    int dependent_ok; /* video segments may start without a keyframe (forced cuts) */
} cap_t;

static void on_init(void *data, int track, uint32_t gen, sw_rbuf_t *init)
{
    cap_t *c = data;
    hls_mp4_init_t in;
    const char *err = NULL;
    c->inits[track]++;
    assert_int_equal(hls__mp4_read_init(init->data, init->len, &in, &err), 0);
    assert_int_equal(in.timescale, track == HLS_VIDEO ? 90000 : 48000);
}

static void on_part(void *data, int track, const hls_segment_t *seg, uint32_t part)
{
    cap_t *c = data;
    const hls_part_t *p = &seg->parts[part];
    hls_mp4_frag_t f;
    const char *err = NULL;

    c->parts[track]++;
    assert_non_null(p->data);
    assert_int_equal(hls__mp4_read_fragment(p->data->data, p->data->len, &f, &err), 0);
    /* The trun's durations add up to the part's, and tfdt is where the part starts. */
    assert_int_equal(f.duration, p->duration);
    uint64_t before = 0;
    for (uint32_t i = 0; i < part; i++)
        before += seg->parts[i].duration;
    assert_true(f.base_dts == (uint64_t)seg->start + before);
    assert_int_equal(f.first_sync, p->independent);
    if (f.nsamples > 1)
        assert_true(p->duration <= c->part_limit[track]);
    if (track == HLS_AUDIO)
        assert_true(p->independent);
    if (part == 0 && track == HLS_VIDEO && !c->dependent_ok)
        assert_true(p->independent);
}

static void on_segment(void *data, int track, const hls_segment_t *seg)
{
    cap_t *c = data;
    assert_true(seg->complete);
    if (seg->gap) {
        c->gaps[track]++;
        assert_int_equal(track, HLS_AUDIO);
        assert_int_equal(seg->nparts, 0);
        assert_int_equal(seg->bytes, 0);
        return;
    }
    c->segments[track]++;
    uint64_t sum = 0, bytes = 0;
    for (uint32_t i = 0; i < seg->nparts; i++) {
        assert_non_null(seg->parts[i].data);
        sum += seg->parts[i].duration;
        bytes += seg->parts[i].data->len;
    }
    assert_true(sum == seg->duration);
    assert_true(bytes == seg->bytes);
}

static void on_expire(void *data, int track, uint64_t msn)
{
    cap_t *c = data;
    c->expired[track]++;
    assert_null(hls_track_segment(hls_stream_track(c->s, track), msn));
}

static void on_log(void *data, int level, const char *msg)
{
    cap_t *c = data;
    c->logs++;
    snprintf(c->last_log, sizeof(c->last_log), "%s", msg);
    if (getenv("HLS_TEST_LOG") != NULL)
        print_message("log: %s\n", msg);
    if (strstr(msg, "dropping samples") != NULL)
        c->log_lines_with[0]++;
    if (strstr(msg, "jumped") != NULL)
        c->log_lines_with[1]++;
}

static const hls_stream_cbs_t cbs = {on_init, on_part, on_segment, on_expire, on_log};

static hls_stream_t *make(cap_t *c, hls_stream_config_t *cfg, int video, int audio)
{
    hls_stream_t *s;
    memset(c, 0, sizeof(*c));
    split_media();
    assert_int_equal(hls_stream_new(&s, cfg, &cbs, c), 0);
    c->s = s;
    c->part_limit[0] = (uint64_t)cfg->part_ms * 90;
    c->part_limit[1] = (uint64_t)cfg->part_ms * 48;
    if (video) {
        hls_track_info_t vi = {.codec = HLS_CODEC_H264};
        assert_int_equal(hls_stream_set_track(s, HLS_VIDEO, &vi), 0);
    }
    if (audio) {
        hls_track_info_t ai = {.codec = HLS_CODEC_AAC};
        assert_int_equal(hls_stream_set_track(s, HLS_AUDIO, &ai), 0);
    }
    return s;
}

/*
 * Feeds `ms` of media: video frame i at dts0 + i*3000 (clip frame (first + i) % n), audio frame j
 * at dts0 + j*1920, merged in dts order, wall clock now0 + elapsed. Returns the next frame index.
 */
typedef struct feed {
    int64_t dts0;
    int64_t now0;
    size_t first;
    int video, audio;
} feed_t;

/* The frames of feed() from `from_ms` to `to_ms` only, of the tracks `f` names. */
static void feed_span(hls_stream_t *s, const feed_t *f, int64_t from_ms, int64_t to_ms)
{
    int64_t vi = (from_ms * 90 + FRAME_90K - 1) / FRAME_90K,
            ai = (from_ms * 90 + AAC_90K - 1) / AAC_90K, end = to_ms * 90;
    const char *err;
    while (vi * FRAME_90K < end || ai * AAC_90K < end) {
        int64_t vt = f->video ? vi * FRAME_90K : INT64_MAX,
                at = f->audio ? ai * AAC_90K : INT64_MAX;
        if (vt >= end && at >= end)
            break;
        if (vt <= at) {
            const au_t *a = &clip[(f->first + (size_t)vi) % nclip];
            int64_t dts = f->dts0 + vt;
            assert_int_equal(hls_stream_write(s, HLS_VIDEO, a->p, a->len, dts, dts, a->key,
                                              f->now0 + vt / 90, &err),
                             0);
            vi++;
        } else {
            size_t k = (size_t)ai % naac;
            int64_t dts = f->dts0 + at;
            assert_int_equal(hls_stream_write(s, HLS_AUDIO, aac[k], aac_len[k], dts, dts, 1,
                                              f->now0 + at / 90, &err),
                             0);
            ai++;
        }
    }
}

static void feed(hls_stream_t *s, const feed_t *f, int64_t ms)
{
    feed_span(s, f, 0, ms);
}

static hls_stream_config_t config(uint32_t segment_ms)
{
    hls_stream_config_t cfg;
    hls_stream_config_init(&cfg);
    cfg.segment_ms = segment_ms;
    return cfg;
}

/* Checks that segments in [from, to) follow each other without gaps. */
static void assert_contiguous(const hls_track_t *t, uint64_t from, uint64_t to)
{
    for (uint64_t msn = from; msn + 1 < to; msn++) {
        const hls_segment_t *a = hls_track_segment(t, msn), *b = hls_track_segment(t, msn + 1);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(a->msn, msn);
        if (!b->discontinuity)
            assert_true(a->start + (int64_t)a->duration == b->start);
    }
}

static void test_av_segments(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    cfg.first_msn = 100;
    hls_stream_t *s = make(&c, &cfg, 1, 1);
    feed_t f = {.dts0 = 900000, .now0 = T0_MS, .video = 1, .audio = 1};

    feed(s, &f, 5000);
    const hls_track_t *v = hls_stream_track(s, HLS_VIDEO), *a = hls_stream_track(s, HLS_AUDIO);
    assert_int_equal(c.inits[0], 1);
    assert_int_equal(c.inits[1], 1);
    assert_int_equal(v->width, 64);
    assert_int_equal(v->height, 64);
    assert_int_equal(strncmp(v->codecs, "avc1.", 5), 0);
    assert_string_equal(a->codecs, "mp4a.40.2");
    assert_int_equal(a->timescale, 48000);
    assert_int_equal(hls_stream_origin_ms(s), T0_MS);

    /* Keyframes every 0.5 s, target 1 s: a segment per second, first one at output time 0. */
    assert_int_equal(v->first_msn, 100);
    assert_int_equal(v->next_msn, 105); /* 100..103 complete, 104 open */
    assert_int_equal(c.segments[0], 4);
    for (uint64_t msn = 100; msn < 104; msn++) {
        const hls_segment_t *seg = hls_track_segment(v, msn);
        assert_true(seg->complete);
        assert_int_equal(seg->start, (int64_t)(msn - 100) * 90000);
        assert_int_equal(seg->duration, 90000);
        assert_int_equal(seg->pdt_ms, T0_MS + (int64_t)(msn - 100) * 1000);
        assert_int_equal(seg->nparts, 3); /* 10 frames of 33.3 ms fit in 334 ms */
        assert_int_equal(seg->init_gen, 1);
        assert_false(seg->discontinuity);
    }
    assert_contiguous(v, 100, 105);
    assert_int_equal(v->max_duration, 90000);
    assert_int_equal(v->max_part_duration, 30000);
    assert_true(v->bandwidth > 0);

    /* Audio segment n covers video segment n, to within one AAC frame. */
    assert_int_equal(a->first_msn, 100);
    assert_int_equal(a->next_msn, 105);
    for (uint64_t msn = 100; msn < 105; msn++) {
        const hls_segment_t *vs = hls_track_segment(v, msn), *as = hls_track_segment(a, msn);
        double vt = vs->start / 90000.0, at = as->start / 48000.0;
        assert_true(at >= vt - 1e-9 && at - vt < 1024 / 48000.0);
        assert_true(as->parts[0].independent);
    }
    assert_contiguous(a, 100, 105);
    assert_true(a->max_part_duration <= 334 * 48);
    assert_true(a->bandwidth > 0);

    hls_stream_stats_t st;
    hls_stream_get_stats(s, &st);
    assert_int_equal(st.samples[0], 150);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.discontinuities, 0);
    hls_view_t view;
    hls_stream_view(s, &view);
    assert_ptr_equal(view.tracks[HLS_VIDEO], v);
    assert_int_equal(view.origin_ms, T0_MS);
    hls_stream_free(s);
}

static void test_wrap_is_continuous(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s = make(&c, &cfg, 1, 1);
    /* Starts 2 s before 2^33: the wrap happens in the third segment. */
    feed_t f = {.now0 = T0_MS, .video = 1, .audio = 1};
    f.dts0 = (INT64_C(1) << 33) - 180000;
    /* The feeder adds times beyond 2^33; the stream must see wrapped 33-bit values. */
    const char *err;
    int64_t vi = 0, ai = 0, end = 5000 * 90;
    while (vi * FRAME_90K < end || ai * AAC_90K < end) {
        int64_t vt = vi * FRAME_90K, at = ai * AAC_90K;
        if (vt <= at && vt < end) {
            const au_t *au = &clip[(size_t)vi % nclip];
            int64_t dts = (f.dts0 + vt) & ((INT64_C(1) << 33) - 1);
            assert_int_equal(hls_stream_write(s, HLS_VIDEO, au->p, au->len, dts, dts, au->key,
                                              f.now0 + vt / 90, &err),
                             0);
            vi++;
        } else {
            size_t k = (size_t)ai % naac;
            int64_t dts = (f.dts0 + at) & ((INT64_C(1) << 33) - 1);
            assert_int_equal(hls_stream_write(s, HLS_AUDIO, aac[k], aac_len[k], dts, dts, 1,
                                              f.now0 + at / 90, &err),
                             0);
            ai++;
        }
    }
    hls_stream_stats_t st;
    hls_stream_get_stats(s, &st);
    assert_int_equal(st.discontinuities, 0);
    assert_int_equal(st.dropped, 0);
    const hls_track_t *v = hls_stream_track(s, HLS_VIDEO);
    assert_int_equal(v->next_msn, 5);
    assert_contiguous(v, 0, 5);
    assert_contiguous(hls_stream_track(s, HLS_AUDIO), 0, 5);
    assert_int_equal(hls_track_segment(v, 4)->start, 4 * 90000);
    hls_stream_free(s);
}

static void test_backward_jump(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s = make(&c, &cfg, 1, 1);
    feed_t f = {.dts0 = 50 * 90000, .now0 = T0_MS, .video = 1, .audio = 1};

    feed(s, &f, 3000);
    const hls_track_t *v = hls_stream_track(s, HLS_VIDEO), *a = hls_stream_track(s, HLS_AUDIO);
    uint64_t vmsn = v->next_msn;
    /* The encoder restarts its clock: 40 s back, wall clock continues. */
    feed_t g = {.dts0 = 10 * 90000, .now0 = T0_MS + 3000, .video = 1, .audio = 1};
    feed(s, &g, 3000);
    hls_stream_stats_t st;
    hls_stream_get_stats(s, &st);
    assert_int_equal(st.discontinuities, 1);
    assert_int_equal(c.log_lines_with[1], 1);
    const hls_segment_t *prev = hls_track_segment(v, vmsn - 1), *next = hls_track_segment(v, vmsn);
    assert_non_null(next);
    assert_true(prev->complete);
    assert_true(next->discontinuity);
    assert_true(next->start >= prev->start + (int64_t)prev->duration);
    /* Output time never goes back, and follows the wall clock (3 s). */
    assert_true(next->start >= 3 * 90000);
    const hls_segment_t *an = hls_track_segment(a, vmsn);
    assert_non_null(an);
    assert_true(an->discontinuity);
    assert_true(an->start * 90000 / 48000 >= next->start - 1920);
    hls_stream_free(s);
}

static void test_discontinuity_follows_wall_clock(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s = make(&c, &cfg, 1, 1);
    feed_t f = {.dts0 = 0, .now0 = T0_MS, .video = 1, .audio = 1};

    feed(s, &f, 2500);
    const hls_track_t *v = hls_stream_track(s, HLS_VIDEO), *a = hls_stream_track(s, HLS_AUDIO);
    uint64_t vmsn = v->next_msn, amsn = a->next_msn;
    assert_int_equal(vmsn, amsn);
    /* The publisher drops; it is back 10 s later with a fresh clock. */
    assert_int_equal(hls_stream_discontinuity(s, T0_MS + 2500), 0);
    const hls_segment_t *last = hls_track_segment(v, vmsn - 1);
    assert_true(last->complete);
    assert_int_equal(last->duration, 45000); /* the half segment written so far */
    feed_t g = {.dts0 = 777777, .now0 = T0_MS + 12500, .video = 1, .audio = 1};
    feed(s, &g, 2000);
    const hls_segment_t *vs = hls_track_segment(v, vmsn), *as = hls_track_segment(a, amsn);
    assert_non_null(vs);
    assert_non_null(as);
    assert_true(vs->discontinuity);
    assert_true(as->discontinuity);
    assert_int_equal(vs->start, 12500 * 90);
    assert_int_equal(vs->pdt_ms, T0_MS + 12500);
    assert_int_equal(as->start, 12500 * 48);
    assert_int_equal(as->pdt_ms, T0_MS + 12500);
    /* After the discontinuity the next segment is a normal one again. */
    const hls_segment_t *vn = hls_track_segment(v, vmsn + 1);
    assert_non_null(vn);
    assert_false(vn->discontinuity);
    hls_stream_stats_t st;
    hls_stream_get_stats(s, &st);
    assert_int_equal(st.discontinuities, 1);
    hls_stream_free(s);
}

/*
 * Media until 1.9 s in both tracks, then video alone until 2.2 s: video cut segment 2 at 2 s,
 * audio (muxed a little late, as MPEG-TS often is) has not reached it when the discontinuity comes.
 */
static void lagging_audio_then_discontinuity(hls_stream_t *s, int64_t now0)
{
    feed_t f = {.dts0 = 0, .now0 = now0, .video = 1, .audio = 1};
    feed_span(s, &f, 0, 1900);
    f.audio = 0;
    feed_span(s, &f, 1900, 2200);
    const hls_track_t *v = hls_stream_track(s, HLS_VIDEO), *a = hls_stream_track(s, HLS_AUDIO);
    assert_int_equal(v->next_msn, 3); /* 2 open */
    assert_int_equal(a->next_msn, 2); /* 1 open */
    assert_int_equal(hls_stream_discontinuity(s, now0 + 2200), 0);
}

/* Issue 2: msn n is the same time in both tracks, also after audio lagged at a discontinuity. */
static void test_discontinuity_with_lagging_audio(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s = make(&c, &cfg, 1, 1);
    const hls_track_t *v = hls_stream_track(s, HLS_VIDEO), *a = hls_stream_track(s, HLS_AUDIO);

    lagging_audio_then_discontinuity(s, T0_MS);
    /* Audio gets a gap for segment 2: no media, from its own end to the end of video's 2. */
    assert_int_equal(a->next_msn, v->next_msn);
    assert_int_equal(c.gaps[HLS_AUDIO], 1);
    const hls_segment_t *vs2 = hls_track_segment(v, 2), *a1 = hls_track_segment(a, 1),
                        *gap = hls_track_segment(a, 2);
    assert_true(gap->gap && gap->complete && !gap->discontinuity);
    assert_int_equal(gap->nparts, 0);
    assert_int_equal(gap->start, a1->start + (int64_t)a1->duration);
    assert_int_equal(gap->start + (int64_t)gap->duration,
                     (vs2->start + (int64_t)vs2->duration) * 48000 / 90000);
    assert_int_equal(gap->pdt_ms, T0_MS + gap->start / 48);

    /* The publisher is back 10 s later: segment 3 starts both tracks, at the same time. */
    feed_t g = {.dts0 = 555555, .now0 = T0_MS + 12000, .video = 1, .audio = 1};
    feed(s, &g, 3500);
    assert_int_equal(a->next_msn, v->next_msn);
    for (uint64_t m = 3; m < v->next_msn; m++) {
        const hls_segment_t *x = hls_track_segment(v, m), *y = hls_track_segment(a, m);
        assert_int_equal(x->discontinuity, m == 3);
        assert_int_equal(y->discontinuity, m == 3);
        assert_false(y->gap);
        double vt = x->start / 90000.0, at = y->start / 48000.0;
        assert_true(at >= vt - 1e-9 && at - vt < 1024 / 48000.0);
    }

    /* The audio playlist marks the gap; the MPD's first Period ends audio before it. */
    hls_view_t view;
    hls_stream_view(s, &view);
    hls_render_opts_t o = {.dvr = 1, .now_ms = T0_MS + 16000};
    sw_str_t out;
    sw_str_init(&out);
    assert_int_equal(hls_render_media(&view, HLS_AUDIO, &o, &out), 0);
    const char *g2 = strstr(out.p, "#EXT-X-GAP\n#EXTINF:");
    assert_non_null(g2);
    assert_non_null(strstr(g2, ",\na/2.m4s\n#EXT-X-DISCONTINUITY\n"));
    assert_int_equal(strstr(out.p, "#EXT-X-GAP") - out.p, g2 - out.p); /* only one */
    assert_null(strstr(g2 + 1, "#EXT-X-GAP"));
    sw_str_reset(&out);
    assert_int_equal(hls_render_mpd(&view, &o, &out), 0);
    char s2[48];
    snprintf(s2, sizeof(s2), "<S t=\"%lld\"", (long long)gap->start);
    assert_null(strstr(out.p, s2));
    assert_non_null(strstr(out.p, "<Period id=\"3\""));
    sw_str_dispose(&out);
    hls_stream_free(s);
}

/* Issue 2: after a clean stop with audio lagging, the next run restores both timelines. */
static void test_restore_after_lagging_audio(void **state)
{
    cap_t c1, c2;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s1 = make(&c1, &cfg, 1, 1);
    lagging_audio_then_discontinuity(s1, T0_MS);
    const hls_track_t *v1 = hls_stream_track(s1, HLS_VIDEO), *a1 = hls_stream_track(s1, HLS_AUDIO);
    uint64_t next = v1->next_msn;
    /* What a server restores from: each track's run ends right before the next number. */
    assert_int_equal(a1->next_msn, next);

    hls_stream_config_t cfg2 = config(1000);
    cfg2.first_msn = next;
    cfg2.origin_ms = hls_stream_origin_ms(s1);
    cfg2.first_init_gen = v1->init_gen;
    hls_stream_t *s2 = make(&c2, &cfg2, 1, 1);
    for (int k = 0; k < HLS_NTRACKS; k++) {
        const hls_track_t *t1 = hls_stream_track(s1, k);
        for (uint64_t m = t1->first_msn; m < next; m++)
            assert_int_equal(
                hls_stream_restore_segment(s2, k, hls_track_segment(t1, m), t1->timescale), 0);
    }
    const hls_track_t *v2 = hls_stream_track(s2, HLS_VIDEO), *a2 = hls_stream_track(s2, HLS_AUDIO);
    assert_int_equal(a2->next_msn, next);
    assert_true(hls_track_segment(a2, next - 1)->gap);
    feed_t g = {.dts0 = 4242, .now0 = T0_MS + 20000, .video = 1, .audio = 1};
    feed(s2, &g, 2500);
    assert_int_equal(a2->next_msn, v2->next_msn);
    assert_true(hls_track_segment(v2, next)->discontinuity);
    assert_true(hls_track_segment(a2, next)->discontinuity);
    assert_int_equal(hls_track_segment(a2, next)->pdt_ms, hls_track_segment(v2, next)->pdt_ms);

    hls_view_t view;
    hls_stream_view(s2, &view);
    hls_render_opts_t o = {.dvr = 1, .now_ms = T0_MS + 23000};
    sw_str_t out;
    sw_str_init(&out);
    assert_int_equal(hls_render_media(&view, HLS_AUDIO, &o, &out), 0);
    assert_non_null(strstr(out.p, "#EXT-X-GAP\n"));
    assert_non_null(strstr(out.p, "a/0.m4s\n"));
    sw_str_dispose(&out);
    hls_stream_free(s1);
    hls_stream_free(s2);
}

static void test_drop_before_keyframe(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s = make(&c, &cfg, 1, 1);
    /* Start mid-GOP: frames 5..14 and the audio beside them wait for the keyframe at 15. */
    feed_t f = {.dts0 = 0, .now0 = T0_MS, .first = 5, .video = 1, .audio = 1};

    feed(s, &f, 3000);
    hls_stream_stats_t st;
    hls_stream_get_stats(s, &st);
    assert_int_equal(st.samples[0], 90 - 10);
    assert_true(st.dropped >= 10);
    assert_int_equal(c.log_lines_with[0], 2); /* one line per track, not per sample */
    const hls_segment_t *first = hls_track_segment(hls_stream_track(s, HLS_VIDEO), 0);
    assert_int_equal(first->start, 0);
    assert_true(first->parts[0].independent);
    const hls_segment_t *afirst = hls_track_segment(hls_stream_track(s, HLS_AUDIO), 0);
    assert_true(afirst->start >= 0 && afirst->start < 1024);
    hls_stream_free(s);
}

/* A publisher that sends one keyframe and then none (an infinite GOP): video segments are cut at
 * max_segment_ms (four times the target) anyway, audio's follow them, nothing grows without
 * bound, and the cuts are counted and logged once, not per cut. */
static void test_no_keyframes_after_the_first(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s = make(&c, &cfg, 1, 1);
    const char *err;
    size_t key = nclip, nonkey[64], nnon = 0;

    c.dependent_ok = 1;

    for (size_t i = 0; i < nclip; i++) {
        if (clip[i].key && key == nclip)
            key = i;
        else if (!clip[i].key && key != nclip)
            nonkey[nnon++] = i;
    }
    assert_true(key < nclip && nnon > 10);
    /* 30 s of video at 30 fps, and of audio: frame 0 the keyframe, the rest P-frames. */
    int64_t vi = 0, ai = 0, end = 30000 * 90;
    while (vi * FRAME_90K < end || ai * AAC_90K < end) {
        if (vi * FRAME_90K <= ai * AAC_90K) {
            const au_t *a = &clip[vi == 0 ? key : nonkey[(size_t)(vi - 1) % nnon]];
            int64_t dts = vi * FRAME_90K;
            assert_int_equal(hls_stream_write(s, HLS_VIDEO, a->p, a->len, dts, dts, vi == 0,
                                              T0_MS + dts / 90, &err),
                             0);
            vi++;
        } else {
            size_t k = (size_t)ai % naac;
            int64_t dts = ai * AAC_90K;
            assert_int_equal(hls_stream_write(s, HLS_AUDIO, aac[k], aac_len[k], dts, dts, 1,
                                              T0_MS + dts / 90, &err),
                             0);
            ai++;
        }
    }
    const hls_track_t *v = hls_stream_track(s, HLS_VIDEO), *a = hls_stream_track(s, HLS_AUDIO);
    hls_stream_stats_t st;
    hls_stream_get_stats(s, &st);
    /* Cuts at 4 s (within a frame): 0-4, 4-8, ..., 24-28 complete, 28-30 open. */
    assert_int_equal(v->next_msn, 8);
    assert_int_equal(st.forced_cuts, 7);
    for (uint64_t msn = 0; msn < 7; msn++) {
        const hls_segment_t *seg = hls_track_segment(v, msn);
        assert_true(seg->complete);
        assert_true(seg->duration >= 4 * 90000 - FRAME_90K && seg->duration <= 4 * 90000);
        assert_int_equal(seg->parts[0].independent, msn == 0);
        const hls_segment_t *as = hls_track_segment(a, msn);
        assert_true(as->complete && !as->gap);
        assert_true(as->duration > 4 * 48000 - 2048 && as->duration < 4 * 48000 + 2048);
    }
    assert_contiguous(v, 0, 8);
    assert_int_equal(a->next_msn, 8);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(c.logs, 1);
    assert_non_null(strstr(c.last_log, "no keyframe for 4.0 s"));
    assert_non_null(strstr(c.last_log, "keyframe interval"));
    hls_stream_free(s);
}

static void test_retention_and_ring_growth(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    cfg.window_ms = 20000;
    cfg.mem_segments = 3;
    hls_stream_t *s = make(&c, &cfg, 1, 0);
    feed_t f = {.dts0 = 0, .now0 = T0_MS, .video = 1};

    feed(s, &f, 40000); /* 40 segments: the ring grows past 16 and 32 */
    const hls_track_t *v = hls_stream_track(s, HLS_VIDEO);
    assert_int_equal(v->next_msn, 40);
    assert_int_equal(c.segments[0], 39);
    assert_true(v->ring_cap >= 20);
    /* 20 s of complete segments stay (the ones ending within 20 s of the newest end). */
    assert_int_equal(v->first_msn, 39 - 20);
    assert_int_equal(c.expired[0], (int)v->first_msn);
    for (uint64_t msn = v->first_msn; msn < v->next_msn; msn++) {
        const hls_segment_t *seg = hls_track_segment(v, msn);
        assert_int_equal(seg->msn, msn);
        assert_int_equal(seg->start, (int64_t)msn * 90000);
        /* The last mem_segments complete ones keep their bytes, and the open one. */
        int in_memory = msn + cfg.mem_segments >= v->next_msn - 1;
        for (uint32_t i = 0; i < seg->nparts; i++)
            assert_true((seg->parts[i].data != NULL) == in_memory);
    }
    assert_null(hls_track_segment(v, v->first_msn - 1));
    hls_stream_free(s);
}

static void test_audio_only_and_opus(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s = make(&c, &cfg, 0, 1);
    feed_t f = {.dts0 = 12345, .now0 = T0_MS, .audio = 1};

    feed(s, &f, 3100);
    const hls_track_t *a = hls_stream_track(s, HLS_AUDIO);
    assert_int_equal(a->next_msn, 4);
    for (uint64_t msn = 0; msn < 3; msn++) {
        const hls_segment_t *seg = hls_track_segment(a, msn);
        /* 47 frames = 1.003 s: the first frame at or past 1 s minus half a frame. */
        assert_true(seg->duration >= 47 * 1024 - 1024 && seg->duration <= 48 * 1024);
    }
    assert_contiguous(a, 0, 4);
    hls_stream_free(s);

    /* Opus: 20 ms packets, durations from the TOC. */
    static const uint8_t head[19] = {'O',  'p',  'u',  's',  'H', 'e', 'a', 'd', 1, 2,
                                     0x38, 0x01, 0x80, 0xbb, 0,   0,   0,   0,   0};
    assert_int_equal(hls_stream_new(&s, &cfg, &cbs, &c), 0);
    c.s = s;
    c.part_limit[1] = 334 * 48;
    hls_track_info_t oi = {.codec = HLS_CODEC_OPUS, .extradata = head, .extradata_len = 19};
    assert_int_equal(hls_stream_set_track(s, HLS_AUDIO, &oi), 0);
    a = hls_stream_track(s, HLS_AUDIO);
    assert_string_equal(a->codecs, "opus");
    assert_int_equal(a->channels, 2);
    uint8_t pkt[40] = {31 << 3};
    const char *err;
    for (int i = 0; i < 150; i++)
        assert_int_equal(hls_stream_write(s, HLS_AUDIO, pkt, sizeof(pkt), i * 1800, i * 1800, 1,
                                          T0_MS + i * 20, &err),
                         0);
    assert_int_equal(a->next_msn, 3);
    assert_int_equal(hls_track_segment(a, 0)->duration, 48000);
    assert_int_equal(hls_track_segment(a, 0)->parts[0].duration, 16 * 960);
    pkt[0] = (3 << 3) | 3; /* 60 ms x 63 frames */
    pkt[1] = 63;
    assert_int_equal(hls_stream_write(s, HLS_AUDIO, pkt, sizeof(pkt), 150 * 1800, 150 * 1800, 1,
                                      T0_MS + 3000, &err),
                     HLS_ERR_BITSTREAM);
    assert_string_equal(err, "Opus packet with a bad TOC");
    hls_stream_free(s);
}

static void test_bad_input(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s = make(&c, &cfg, 1, 1);
    const char *err = NULL;

    static const uint8_t junk[] = {1, 2, 3, 4, 5};
    assert_int_equal(hls_stream_write(s, HLS_VIDEO, junk, sizeof(junk), 0, 0, 1, T0_MS, &err),
                     HLS_ERR_BITSTREAM);
    assert_string_equal(err, "access unit is not Annex-B");
    assert_int_equal(hls_stream_write(s, HLS_VIDEO, junk, 0, 0, 0, 1, T0_MS, &err),
                     HLS_ERR_BITSTREAM);
    assert_string_equal(err, "empty sample");
    uint8_t *huge = calloc(1, HLS_MAX_SAMPLE + 1);
    assert_non_null(huge);
    assert_int_equal(hls_stream_write(s, HLS_VIDEO, huge, HLS_MAX_SAMPLE + 1, 0, 0, 1, T0_MS, &err),
                     HLS_ERR_TOO_BIG);
    free(huge);
    /* Raw AAC without an AudioSpecificConfig. */
    assert_int_equal(hls_stream_write(s, HLS_AUDIO, junk, sizeof(junk), 0, 0, 1, T0_MS, &err),
                     HLS_ERR_BITSTREAM);
    /* A truncated ADTS frame. */
    assert_int_equal(hls_stream_write(s, HLS_AUDIO, aac[0], aac_len[0] - 1, 0, 0, 1, T0_MS, &err),
                     HLS_ERR_BITSTREAM);
    assert_string_equal(err, "ADTS frame truncated");
    /* Every truncation of a keyframe access unit is rejected or accepted, never crashes. */
    for (size_t n = 1; n < clip[0].len; n += 7)
        (void)hls_stream_write(s, HLS_VIDEO, clip[0].p, n, 0, 0, 1, T0_MS, &err);
    /* A small step back in dts drops the sample without a discontinuity. */
    feed_t f = {.dts0 = 0, .now0 = T0_MS, .video = 1, .audio = 1};
    feed(s, &f, 1000);
    assert_int_equal(hls_stream_write(s, HLS_AUDIO, aac[0], aac_len[0], 90000 - 3840, 90000 - 3840,
                                      1, T0_MS + 1000, &err),
                     0);
    hls_stream_stats_t st0;
    hls_stream_get_stats(s, &st0);
    assert_int_equal(st0.discontinuities, 0);
    hls_track_info_t bad = {.codec = HLS_CODEC_AAC};
    assert_int_equal(hls_stream_set_track(s, HLS_VIDEO, &bad), HLS_ERR_INVAL);
    assert_int_equal(hls_stream_set_track(s, 5, &bad), HLS_ERR_INVAL);
    hls_track_info_t bad_asc = {.codec = HLS_CODEC_AAC, .extradata = junk, .extradata_len = 1};
    assert_int_equal(hls_stream_set_track(s, HLS_AUDIO, &bad_asc), HLS_ERR_INVAL);
    hls_stream_stats_t st;
    hls_stream_get_stats(s, &st);
    assert_true(st.dropped >= 5);
    hls_stream_free(s);
    hls_stream_free(NULL);
    assert_int_equal(hls_stream_new(&s, &cfg, NULL, NULL), 0);
    hls_stream_free(s);
    cfg.part_ms = 0;
    assert_int_equal(hls_stream_new(&s, &cfg, NULL, NULL), HLS_ERR_INVAL);
}

static void test_resolution_change(void **state)
{
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s = make(&c, &cfg, 1, 1);
    feed_t f = {.dts0 = 0, .now0 = T0_MS, .video = 1, .audio = 1};
    const char *err;

    feed(s, &f, 2500);
    const hls_track_t *v = hls_stream_track(s, HLS_VIDEO), *a = hls_stream_track(s, HLS_AUDIO);
    assert_int_equal(nsmall, 15);
    assert_int_equal(v->init_gen, 1);
    /* At 2.5 s, mid-segment, the encoder switches to 48x32 (new SPS in the keyframe). */
    for (size_t i = 0; i < nsmall; i++) {
        int64_t dts = 225000 + (int64_t)i * FRAME_90K;
        assert_int_equal(hls_stream_write(s, HLS_VIDEO, small[i].p, small[i].len, dts, dts,
                                          small[i].key, T0_MS + dts / 90, &err),
                         0);
        for (int64_t at = dts == 225000 ? 224641 : dts - FRAME_90K + 1; at <= dts; at++)
            if (at % AAC_90K == 0) {
                size_t k = (size_t)(at / AAC_90K) % naac;
                assert_int_equal(hls_stream_write(s, HLS_AUDIO, aac[k], aac_len[k], at, at, 1,
                                                  T0_MS + at / 90, &err),
                                 0);
            }
    }
    assert_int_equal(c.inits[0], 2);
    assert_int_equal(v->init_gen, 2);
    assert_int_equal(v->width, 48);
    assert_int_equal(v->height, 32);
    const hls_segment_t *before = hls_track_segment(v, 2), *after = hls_track_segment(v, 3);
    assert_non_null(after);
    assert_true(before->complete);
    assert_int_equal(before->duration, 45000); /* cut early, at the new keyframe */
    assert_int_equal(before->init_gen, 1);
    assert_int_equal(after->start, 225000);
    assert_int_equal(after->init_gen, 2);
    assert_true(after->discontinuity);
    /* Audio followed the cut: its segment 3 starts with video's. */
    assert_int_equal(a->next_msn, 4);
    const hls_segment_t *as = hls_track_segment(a, 3);
    assert_true(as->start >= 120000 && as->start < 120000 + 1024);
    hls_stream_free(s);
}

/* ---- end to end: the bytes decode with FFmpeg ---- */

/* A restart: the earlier run's segments go back on the timeline, and the next run continues. */
static void test_restore_earlier_run(void **state)
{
    cap_t c1, c2;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s1 = make(&c1, &cfg, 1, 1);
    feed_t f = {.dts0 = 0, .now0 = T0_MS, .video = 1, .audio = 1};
    feed(s1, &f, 3500);
    assert_int_equal(hls_stream_discontinuity(s1, T0_MS + 3500), 0); /* a clean stop */
    const hls_track_t *v1 = hls_stream_track(s1, HLS_VIDEO), *a1 = hls_stream_track(s1, HLS_AUDIO);
    uint64_t next = v1->next_msn;
    assert_int_equal(a1->next_msn, next);

    hls_stream_config_t cfg2 = config(1000);
    cfg2.first_msn = next;
    cfg2.origin_ms = hls_stream_origin_ms(s1);
    cfg2.first_init_gen = v1->init_gen;
    hls_stream_t *s2 = make(&c2, &cfg2, 1, 1);
    /* Out of order, or not below first_msn: refused. */
    assert_int_equal(hls_stream_restore_segment(s2, HLS_VIDEO, hls_track_segment(v1, next - 1), 0),
                     HLS_ERR_INVAL);
    hls_segment_t late = *hls_track_segment(v1, next - 1);
    late.msn = next;
    assert_int_equal(hls_stream_restore_segment(s2, HLS_VIDEO, &late, 90000), HLS_ERR_INVAL);
    for (int k = 0; k < HLS_NTRACKS; k++) {
        const hls_track_t *t1 = hls_stream_track(s1, k);
        for (uint64_t m = t1->first_msn; m < next; m++)
            assert_int_equal(
                hls_stream_restore_segment(s2, k, hls_track_segment(t1, m), t1->timescale), 0);
        assert_int_equal(hls_stream_restore_segment(s2, k, hls_track_segment(t1, 0), t1->timescale),
                         HLS_ERR_INVAL); /* a hole or a repeat */
    }
    const hls_track_t *v2 = hls_stream_track(s2, HLS_VIDEO), *a2 = hls_stream_track(s2, HLS_AUDIO);
    assert_int_equal(v2->first_msn, v1->first_msn);
    hls_view_t before;
    hls_stream_view(s2, &before);
    hls_render_opts_t live = {.now_ms = T0_MS + 20000};
    sw_str_t tmp;
    sw_str_init(&tmp);
    assert_int_equal(hls_render_media(&before, HLS_VIDEO, &live, &tmp), HLS_ERR_AGAIN);
    assert_int_equal(hls_render_mpd(&before, &live, &tmp), HLS_ERR_AGAIN);
    sw_str_dispose(&tmp);
    assert_int_equal(v2->next_msn, next);
    assert_int_equal(a2->next_msn, next);

    /* The publisher is back 20 s after the first run began, with a fresh clock. */
    feed_t g = {.dts0 = 123456, .now0 = T0_MS + 20000, .video = 1, .audio = 1};
    feed(s2, &g, 2500);
    const hls_segment_t *vs = hls_track_segment(v2, next), *as = hls_track_segment(a2, next);
    assert_non_null(vs);
    assert_non_null(as);
    assert_true(vs->discontinuity);
    assert_true(as->discontinuity);
    assert_int_equal(vs->start, 20000 * 90);
    assert_int_equal(vs->pdt_ms, T0_MS + 20000);
    assert_int_equal(as->start, 20000 * 48);
    assert_contiguous(v2, v2->first_msn, next);
    for (uint64_t m = v1->first_msn; m < next; m++) {
        assert_int_equal(hls_track_segment(v2, m)->pdt_ms, hls_track_segment(v1, m)->pdt_ms);
        assert_int_equal(hls_track_segment(v2, m)->nparts, 0);
    }
    /* Too late once samples were written. */
    assert_int_equal(hls_stream_restore_segment(s2, HLS_VIDEO, hls_track_segment(v1, 0), 90000),
                     HLS_ERR_INVAL);

    /* The DVR playlist lists both runs, with one discontinuity between them. */
    hls_view_t view;
    hls_stream_view(s2, &view);
    hls_render_opts_t o = {.dvr = 1, .now_ms = T0_MS + 23000};
    sw_str_t out;
    sw_str_init(&out);
    assert_int_equal(hls_render_media(&view, HLS_VIDEO, &o, &out), 0);
    char first[32];
    snprintf(first, sizeof(first), "v/%llu.m4s\n", (unsigned long long)v1->first_msn);
    assert_non_null(strstr(out.p, first));
    assert_non_null(strstr(out.p, "#EXT-X-DISCONTINUITY\n"));
    assert_null(strstr(strstr(out.p, "#EXT-X-DISCONTINUITY\n") + 1, "#EXT-X-DISCONTINUITY\n"));
    sw_str_reset(&out);
    assert_int_equal(hls_render_mpd(&view, &o, &out), 0);
    /* A live playlist starts with the current run. */
    o.dvr = 0;
    sw_str_reset(&out);
    assert_int_equal(hls_render_media(&view, HLS_VIDEO, &o, &out), 0);
    char seq[48];
    snprintf(seq, sizeof(seq), "#EXT-X-MEDIA-SEQUENCE:%llu\n", (unsigned long long)next);
    assert_non_null(strstr(out.p, seq));
    assert_null(strstr(out.p, first));
    sw_str_dispose(&out);
    hls_stream_free(s1);
    hls_stream_free(s2);
}

static int have_tool(const char *name)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static void write_track(const hls_track_t *t, const char *path, uint64_t from, uint64_t to)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(t->init->data, 1, t->init->len, f), t->init->len);
    for (uint64_t msn = from; msn < to; msn++) {
        const hls_segment_t *seg = hls_track_segment(t, msn);
        for (uint32_t i = 0; i < seg->nparts; i++)
            assert_int_equal(fwrite(seg->parts[i].data->data, 1, seg->parts[i].data->len, f),
                             seg->parts[i].data->len);
    }
    fclose(f);
}

static void test_ffmpeg_decodes(void **state)
{
    if (!have_tool("ffmpeg") || !have_tool("ffprobe")) {
        skip();
        return;
    }
    cap_t c;
    hls_stream_config_t cfg = config(1000);
    hls_stream_t *s = make(&c, &cfg, 1, 1);
    feed_t f = {.dts0 = 0, .now0 = T0_MS, .video = 1, .audio = 1};
    feed(s, &f, 3500);

    char dir[] = "/tmp/hls-test-XXXXXX", v[64], a[64], cmd[512];
    assert_non_null(mkdtemp(dir));
    snprintf(v, sizeof(v), "%s/v.mp4", dir);
    snprintf(a, sizeof(a), "%s/a.mp4", dir);
    write_track(hls_stream_track(s, HLS_VIDEO), v, 0, 3);
    write_track(hls_stream_track(s, HLS_AUDIO), a, 0, 3);
    /* Decode everything; any error message fails the test. */
    for (int i = 0; i < 2; i++) {
        const char *p = i == 0 ? v : a;
        snprintf(
            cmd, sizeof(cmd),
            "ffmpeg -nostdin -v error -xerror -i %s -f null - >%s/err 2>&1 && test ! -s %s/err", p,
            dir, dir);
        assert_int_equal(system(cmd), 0);
    }
    /* ffprobe agrees on the frame count and size: 3 s of 30 fps video, 64x64. */
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
             "stream=width,height,nb_read_frames -of csv=p=0 %s >%s/probe 2>&1",
             v, dir);
    assert_int_equal(system(cmd), 0);
    char probe[64] = {0}, path[96];
    snprintf(path, sizeof(path), "%s/probe", dir);
    FILE *pf = fopen(path, "r");
    assert_non_null(pf);
    assert_non_null(fgets(probe, sizeof(probe), pf));
    fclose(pf);
    assert_string_equal(probe, "64,64,90\n");
    if (getenv("HLS_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
    } else {
        print_message("kept %s\n", dir);
    }
    hls_stream_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_av_segments),
        cmocka_unit_test(test_wrap_is_continuous),
        cmocka_unit_test(test_backward_jump),
        cmocka_unit_test(test_discontinuity_follows_wall_clock),
        cmocka_unit_test(test_discontinuity_with_lagging_audio),
        cmocka_unit_test(test_restore_after_lagging_audio),
        cmocka_unit_test(test_drop_before_keyframe),
        cmocka_unit_test(test_no_keyframes_after_the_first),
        cmocka_unit_test(test_retention_and_ring_growth),
        cmocka_unit_test(test_audio_only_and_opus),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_resolution_change),
        cmocka_unit_test(test_restore_earlier_run),
        cmocka_unit_test(test_ffmpeg_decodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
