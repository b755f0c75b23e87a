/*
 * tests/unit/hls/test_failmalloc.c: hls/ under a failing allocator (as nghttp2's
 * tests/failmalloc_test.c does). The test binary is linked with --wrap for malloc, calloc and
 * realloc, so every allocation the library (and sw/) makes goes through a countdown here: the n-th
 * one fails. For every n until a whole run completes, a stream is created, fed real H.264 and AAC,
 * rendered and freed; each call must return 0 or HLS_ERR_NOMEM (after which the stream only says
 * HLS_ERR_NOMEM), never crash, and leak nothing (AddressSanitizer's leak check in the sanitized
 * build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hls_int.h"
#include "hls_testdata.h"
#include "hls_clip.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

static long countdown = -1; /* allocations left before one fails; -1: never fail */
static long failures;

static int should_fail(void)
{
    if (countdown < 0)
        return 0;
    if (countdown-- == 0) {
        failures++;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

static au_t clip[64];
static size_t nclip;

static void split(void)
{
    nclip = split_clip(clip_h264, clip_h264_len, clip, 64);
}

static int ok_or_nomem(int rv)
{
    return rv == 0 || rv == HLS_ERR_NOMEM || rv == HLS_ERR_AGAIN;
}

/* One whole run. Returns 1 when an allocation failed somewhere inside it. */
static int run_once(long fail_at)
{
    hls_stream_t *s = NULL;
    hls_stream_config_t cfg;
    const char *err;
    int nomem = 0;

    hls_stream_config_init(&cfg);
    cfg.segment_ms = 1000;
    failures = 0;
    countdown = fail_at;

    int rv = hls_stream_new(&s, &cfg, NULL, NULL);
    if (rv != 0) {
        countdown = -1;
        assert_int_equal(rv, HLS_ERR_NOMEM);
        assert_int_equal(failures, 1);
        return 1;
    }
    hls_track_info_t vi = {.codec = HLS_CODEC_H264}, ai = {.codec = HLS_CODEC_AAC};
    rv = hls_stream_set_track(s, HLS_VIDEO, &vi);
    assert_true(ok_or_nomem(rv));
    nomem |= rv == HLS_ERR_NOMEM;
    rv = hls_stream_set_track(s, HLS_AUDIO, &ai);
    assert_true(ok_or_nomem(rv));
    nomem |= rv == HLS_ERR_NOMEM;

    /* 2.5 s of video and audio, in dts order: three segments, a dozen parts each track. */
    size_t aoff = 0;
    int64_t vt = 0, at = 0;
    for (int i = 0; i < 75 + 117; i++) {
        if (vt <= at) {
            const au_t *a = &clip[(size_t)(vt / 3000) % nclip];
            rv = hls_stream_write(s, HLS_VIDEO, a->p, a->len, vt, vt, a->key, 1000 + vt / 90, &err);
            vt += 3000;
        } else {
            if (aoff + 7 > a_aac_len)
                aoff = 0;
            size_t fl = ((size_t)(a_aac[aoff + 3] & 3) << 11) | ((size_t)a_aac[aoff + 4] << 3) |
                        (a_aac[aoff + 5] >> 5);
            rv = hls_stream_write(s, HLS_AUDIO, a_aac + aoff, fl, at, at, 1, 1000 + at / 90, &err);
            aoff += fl;
            at += 1920;
        }
        if (!ok_or_nomem(rv))
            fail_msg("write returned %d (%s) with allocation %ld failing", rv, hls_strerror(rv),
                     fail_at);
        nomem |= rv == HLS_ERR_NOMEM;
        if (rv == HLS_ERR_NOMEM) {
            /* Dead from now on: every later call says so too. */
            rv = hls_stream_write(s, HLS_AUDIO, a_aac, 7, at, at, 1, 0, &err);
            assert_int_equal(rv, HLS_ERR_NOMEM);
            break;
        }
    }
    /* Video alone past its next cut (3 s), so that the discontinuity gives audio a gap segment. */
    for (int i = 0; i < 17 && rv != HLS_ERR_NOMEM; i++) {
        const au_t *a = &clip[(size_t)(vt / 3000) % nclip];
        rv = hls_stream_write(s, HLS_VIDEO, a->p, a->len, vt, vt, a->key, 1000 + vt / 90, &err);
        if (!ok_or_nomem(rv))
            fail_msg("write returned %d with allocation %ld failing", rv, fail_at);
        nomem |= rv == HLS_ERR_NOMEM;
        vt += 3000;
    }
    rv = hls_stream_discontinuity(s, 5000);
    assert_true(ok_or_nomem(rv));
    nomem |= rv == HLS_ERR_NOMEM;
    if (!nomem) {
        const hls_track_t *tv = hls_stream_track(s, HLS_VIDEO),
                          *ta = hls_stream_track(s, HLS_AUDIO);
        assert_int_equal(ta->next_msn, tv->next_msn);
        assert_true(hls_track_segment(ta, ta->next_msn - 1)->gap);
    }

    hls_view_t v;
    hls_stream_view(s, &v);
    /* Dateranges inside the timeline, so that their rendering runs out of memory too. */
    const hls_daterange_t dr[] = {{"1-0", 1500, "product_pinned", "{\"sku\":\"a\"}"},
                                  {"2-0", 2500, "product_unpinned", "{}"}};
    hls_render_opts_t o = {.now_ms = 5000, .dateranges = dr, .ndateranges = 2};
    sw_str_t out;
    sw_str_init(&out);
    /* A track whose set-up ran out of memory is absent: HLS_ERR_NOT_FOUND is right for it. */
    int r1 = hls_render_multivariant(&v, &o, &out);
    int r2 = hls_render_media(&v, HLS_VIDEO, &o, &out);
    int r3 = hls_render_mpd(&v, &o, &out);
    if (!ok_or_nomem(r1) || !(ok_or_nomem(r2) || r2 == HLS_ERR_NOT_FOUND) || !ok_or_nomem(r3))
        fail_msg("renderers returned %d, %d, %d with allocation %ld failing", r1, r2, r3, fail_at);
    sw_str_dispose(&out);
    hls_stream_free(s);
    countdown = -1;
    return failures > 0 || nomem;
}

static void test_every_allocation_fails_once(void **state)
{
    split();
    long n;
    for (n = 0; n < 100000; n++)
        if (!run_once(n))
            break;
    print_message("a run makes %ld allocations; each of them failed once\n", n);
    assert_true(n > 20);
    assert_true(n < 100000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_fails_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
