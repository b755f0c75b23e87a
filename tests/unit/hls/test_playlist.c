/*
 * test_playlist.c: the multivariant and LL-HLS media playlists, and blocking-reload decisions,
 * rendered from hand-built timelines (timeline_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hls/hls.h"
#include "sw/str.h"
#include "timeline_fixture.h"

#define VPART 30000 /* 1/3 s at 90 kHz: six parts make a 2 s segment */
#define APART 16000 /* 1/3 s at 48 kHz */

typedef struct env {
    fx_track_t *v, *a;
    hls_view_t view;
    hls_render_opts_t o;
    sw_str_t s;
} env_t;

static int setup(void **state)
{
    env_t *e = calloc(1, sizeof(*e));
    e->v = fx_track_new(HLS_VIDEO, 10);
    e->a = fx_track_new(HLS_AUDIO, 10);
    fx_view(&e->view, e->v, e->a);
    e->o.now_ms = FX_ORIGIN_MS + 60000;
    sw_str_init(&e->s);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env_t *e = *state;
    sw_str_dispose(&e->s);
    free(e->v);
    free(e->a);
    free(e);
    return 0;
}

/* Adds `n` complete 2 s segments to both tracks. */
static void add_complete(env_t *e, int n)
{
    for (int i = 0; i < n; i++) {
        fx_add(e->v, 6, VPART, 1, 0);
        fx_add(e->a, 6, APART, 1, 0);
    }
}

static const char *media(env_t *e, int kind)
{
    sw_str_reset(&e->s);
    int rv = hls_render_media(&e->view, kind, &e->o, &e->s);
    assert_int_equal(rv, 0);
    assert_non_null(e->s.p);
    return e->s.p;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_live_exact(void **state)
{
    env_t *e = *state;
    add_complete(e, 2);
    fx_add(e->v, 2, VPART, 0, 0);
    fx_add(e->a, 1, APART, 0, 0);

    assert_string_equal(
        media(e, HLS_VIDEO),
        "#EXTM3U\n"
        "#EXT-X-VERSION:9\n"
        "#EXT-X-TARGETDURATION:2\n"
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002,CAN-SKIP-UNTIL=12.0\n"
        "#EXT-X-PART-INF:PART-TARGET=0.334\n"
        "#EXT-X-MEDIA-SEQUENCE:10\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"
        "#EXT-X-MAP:URI=\"v/init-1.mp4\"\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:20.000Z\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/10.0.m4s\",INDEPENDENT=YES\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/10.1.m4s\"\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/10.2.m4s\"\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/10.3.m4s\"\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/10.4.m4s\"\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/10.5.m4s\"\n"
        "#EXTINF:2.00000,\n"
        "v/10.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:22.000Z\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/11.0.m4s\",INDEPENDENT=YES\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/11.1.m4s\"\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/11.2.m4s\"\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/11.3.m4s\"\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/11.4.m4s\"\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/11.5.m4s\"\n"
        "#EXTINF:2.00000,\n"
        "v/11.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:24.000Z\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/12.0.m4s\",INDEPENDENT=YES\n"
        "#EXT-X-PART:DURATION=0.33333,URI=\"v/12.1.m4s\"\n"
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"v/12.2.m4s\"\n"
        "#EXT-X-RENDITION-REPORT:URI=\"a.m3u8\",LAST-MSN=12,LAST-PART=0\n");

    /* The audio playlist reports the video rendition. */
    const char *a = media(e, HLS_AUDIO);
    assert_non_null(strstr(a, "#EXT-X-MAP:URI=\"a/init-1.mp4\"\n"));
    assert_non_null(strstr(a, "#EXT-X-PART:DURATION=0.33333,URI=\"a/12.0.m4s\",INDEPENDENT=YES\n"
                              "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a/12.1.m4s\"\n"
                              "#EXT-X-RENDITION-REPORT:URI=\"v.m3u8\",LAST-MSN=12,LAST-PART=1\n"));
}

static void test_window_and_recent_parts(void **state)
{
    env_t *e = *state;
    add_complete(e, 10); /* 10..19 */
    fx_add(e->v, 1, VPART, 0, 0);
    fx_add(e->a, 1, APART, 0, 0);

    const char *p = media(e, HLS_VIDEO);
    /* Live window: the last six complete segments, 14..19, plus 20 in progress. */
    assert_non_null(strstr(p, "#EXT-X-MEDIA-SEQUENCE:14\n"));
    assert_int_equal(count(p, "#EXTINF:"), 6);
    assert_null(strstr(p, "v/13.m4s"));
    assert_non_null(strstr(p, "\nv/14.m4s\n"));
    assert_non_null(strstr(p, "\nv/19.m4s\n"));
    assert_null(strstr(p, "v/20.m4s\n"));
    /* Parts only for segments ending less than 3 target durations (6 s) before the end: 17, 18,
     * 19 end 4.33, 2.33 and 0.33 s before it; 16 ends 6.33 s before. */
    assert_null(strstr(p, "v/16.0.m4s"));
    assert_non_null(strstr(p, "v/17.0.m4s"));
    assert_non_null(strstr(p, "v/17.5.m4s"));
    assert_non_null(strstr(p, "v/20.0.m4s"));
    assert_int_equal(count(p, "#EXT-X-PART:"), 3 * 6 + 1);
    /* Every listed segment has its date. */
    assert_int_equal(count(p, "#EXT-X-PROGRAM-DATE-TIME:"), 7);
    assert_non_null(strstr(p, "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:28.000Z\n"
                              "#EXTINF:2.00000,\nv/14.m4s\n"));

    e->o.window_segments = 3;
    p = media(e, HLS_VIDEO);
    assert_non_null(strstr(p, "#EXT-X-MEDIA-SEQUENCE:17\n"));
    assert_int_equal(count(p, "#EXTINF:"), 3);
}

static void test_preload_hint(void **state)
{
    env_t *e = *state;
    add_complete(e, 2);

    /* No segment in progress: the hint names the first part of the next one. */
    const char *p = media(e, HLS_VIDEO);
    assert_non_null(strstr(p, "\nv/11.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"v/12.0.m4s\"\n"));

    /* A segment begun without parts yet shows nothing but the hint. */
    fx_add(e->v, 0, VPART, 0, 0);
    p = media(e, HLS_VIDEO);
    assert_non_null(strstr(p, "\nv/11.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"v/12.0.m4s\"\n"));
    assert_int_equal(count(p, "#EXT-X-PROGRAM-DATE-TIME:"), 2);

    fx_add_part(e->v, VPART);
    fx_add_part(e->v, VPART);
    fx_add_part(e->v, VPART);
    p = media(e, HLS_VIDEO);
    assert_non_null(
        strstr(p, "URI=\"v/12.2.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"v/12.3.m4s\"\n"));
    assert_int_equal(count(p, "#EXT-X-PROGRAM-DATE-TIME:"), 3);
}

static void test_rendition_report(void **state)
{
    env_t *e = *state;
    add_complete(e, 3);
    fx_add(e->v, 4, VPART, 0, 0);
    fx_add(e->a, 0, APART, 0, 0); /* audio's segment 13 has no part yet: its last part is 12.5 */

    const char *p = media(e, HLS_VIDEO);
    assert_non_null(strstr(p, "#EXT-X-RENDITION-REPORT:URI=\"a.m3u8\",LAST-MSN=12,LAST-PART=5\n"));
    p = media(e, HLS_AUDIO);
    assert_non_null(strstr(p, "#EXT-X-RENDITION-REPORT:URI=\"v.m3u8\",LAST-MSN=13,LAST-PART=3\n"));

    e->o.dvr = 1;
    p = media(e, HLS_VIDEO);
    assert_non_null(
        strstr(p, "#EXT-X-RENDITION-REPORT:URI=\"a.m3u8?dvr=1\",LAST-MSN=12,LAST-PART=5\n"));

    /* Video only: no report. */
    e->view.tracks[HLS_AUDIO] = NULL;
    p = media(e, HLS_VIDEO);
    assert_null(strstr(p, "RENDITION-REPORT"));
}

static void test_discontinuity_and_map(void **state)
{
    env_t *e = *state;
    add_complete(e, 2); /* 10, 11: init 1 */
    e->v->t.init_gen = 2;
    fx_add(e->v, 6, VPART, 1, 1); /* 12: a reconnect with a new init segment */
    fx_add(e->v, 6, VPART, 1, 0); /* 13 */
    fx_add(e->v, 2, VPART, 0, 0); /* 14 in progress */

    const char *p = media(e, HLS_VIDEO);
    assert_non_null(
        strstr(p, "#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-MAP:URI=\"v/init-1.mp4\"\n"));
    assert_non_null(strstr(p, "\nv/11.m4s\n"
                              "#EXT-X-DISCONTINUITY\n"
                              "#EXT-X-MAP:URI=\"v/init-2.mp4\"\n"
                              "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:24.000Z\n"));
    assert_int_equal(count(p, "#EXT-X-MAP:"), 2);
    assert_int_equal(count(p, "#EXT-X-DISCONTINUITY\n"), 1);

    /* Once the flagged segment slid out of the window, the sequence counts it. */
    e->o.window_segments = 1;
    p = media(e, HLS_VIDEO);
    assert_non_null(strstr(p, "#EXT-X-MEDIA-SEQUENCE:13\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"
                              "#EXT-X-MAP:URI=\"v/init-2.mp4\"\n"));
    assert_null(strstr(p, "#EXT-X-DISCONTINUITY\n"));

    /* A flagged first segment keeps its tag and is not counted yet (hls.js counts the tag). */
    e->o.window_segments = 2;
    p = media(e, HLS_VIDEO);
    assert_non_null(strstr(p, "#EXT-X-MEDIA-SEQUENCE:12\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"
                              "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"v/init-2.mp4\"\n"));
}

/* A clip: a range of complete segments as a VOD playlist, whatever the live window shows. */
static void test_clip(void **state)
{
    env_t *e = *state;
    add_complete(e, 2); /* 10, 11: init 1 */
    e->v->t.init_gen = 2;
    fx_add(e->v, 6, VPART, 1, 1); /* 12: a reconnect with a new init segment */
    fx_add(e->v, 4, VPART, 1, 0); /* 13: 1.33 s */
    fx_add(e->v, 2, VPART, 0, 0); /* 14 in progress */
    e->o.window_segments = 1;

    sw_str_reset(&e->s);
    assert_int_equal(hls_render_clip(&e->view, HLS_VIDEO, 11, 13, &e->s), 0);
    assert_string_equal(e->s.p, "#EXTM3U\n"
                                "#EXT-X-VERSION:9\n"
                                "#EXT-X-TARGETDURATION:2\n"
                                "#EXT-X-PLAYLIST-TYPE:VOD\n"
                                "#EXT-X-INDEPENDENT-SEGMENTS\n"
                                "#EXT-X-MEDIA-SEQUENCE:11\n"
                                "#EXT-X-MAP:URI=\"v/init-1.mp4\"\n"
                                "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:22.000Z\n"
                                "#EXTINF:2.00000,\n"
                                "v/11.m4s\n"
                                "#EXT-X-DISCONTINUITY\n"
                                "#EXT-X-MAP:URI=\"v/init-2.mp4\"\n"
                                "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:24.000Z\n"
                                "#EXTINF:2.00000,\n"
                                "v/12.m4s\n"
                                "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:26.000Z\n"
                                "#EXTINF:1.33333,\n"
                                "v/13.m4s\n"
                                "#EXT-X-ENDLIST\n");
    /* A flagged first segment needs no tag: nothing comes before it in the clip. */
    sw_str_reset(&e->s);
    assert_int_equal(hls_render_clip(&e->view, HLS_VIDEO, 12, 12, &e->s), 0);
    assert_null(strstr(e->s.p, "#EXT-X-DISCONTINUITY\n"));
    assert_non_null(strstr(e->s.p, "#EXT-X-MAP:URI=\"v/init-2.mp4\"\n"));
    /* The audio track's own segments. */
    sw_str_reset(&e->s);
    assert_int_equal(hls_render_clip(&e->view, HLS_AUDIO, 10, 11, &e->s), 0);
    assert_non_null(strstr(e->s.p, "a/10.m4s\n"));
    assert_non_null(strstr(e->s.p, "a/11.m4s\n#EXT-X-ENDLIST\n"));

    sw_str_reset(&e->s);
    assert_int_equal(hls_render_clip(&e->view, HLS_VIDEO, 12, 14, &e->s), HLS_ERR_AGAIN);
    assert_int_equal(hls_render_clip(&e->view, HLS_VIDEO, 9, 11, &e->s), HLS_ERR_NOT_FOUND);
    assert_int_equal(hls_render_clip(&e->view, HLS_VIDEO, 13, 12, &e->s), HLS_ERR_NOT_FOUND);
    assert_int_equal(hls_render_clip(&e->view, HLS_VIDEO, 12, 15, &e->s), HLS_ERR_NOT_FOUND);
    assert_int_equal(hls_render_clip(&e->view, 7, 10, 11, &e->s), HLS_ERR_NOT_FOUND);
    assert_int_equal(e->s.len, 0);
}

/* What hls.js keeps of a playlist: the first msn, how many were skipped, and the listed
 * segments' URIs and durations in order. */
typedef struct parsed {
    uint64_t media_seq;
    uint64_t skipped;
    uint64_t disc_seq;
    int n;
    char uri[FX_RING][256];
    char extinf[FX_RING][256];
    int map_before_first; /* an EXT-X-MAP precedes the first listed segment */
    int pdt_before_first;
} parsed_t;

static void parse_playlist(const char *p, parsed_t *out)
{
    memset(out, 0, sizeof(*out));
    char pending[256] = "";
    int seen_map = 0, seen_pdt = 0;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        char line[256];
        size_t len = (size_t)(nl - p);
        assert_true(len < sizeof(line));
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl + 1;
        unsigned long long n;
        if (sscanf(line, "#EXT-X-MEDIA-SEQUENCE:%llu", &n) == 1)
            out->media_seq = n;
        else if (sscanf(line, "#EXT-X-DISCONTINUITY-SEQUENCE:%llu", &n) == 1)
            out->disc_seq = n;
        else if (sscanf(line, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%llu", &n) == 1)
            out->skipped = n;
        else if (strncmp(line, "#EXTINF:", 8) == 0)
            snprintf(pending, sizeof(pending), "%s", line + 8);
        else if (strncmp(line, "#EXT-X-MAP:", 11) == 0)
            seen_map = 1;
        else if (strncmp(line, "#EXT-X-PROGRAM-DATE-TIME:", 25) == 0)
            seen_pdt = 1;
        else if (line[0] != '#' && line[0] != '\0') {
            assert_true(out->n < FX_RING);
            if (out->n == 0) {
                out->map_before_first = seen_map;
                out->pdt_before_first = seen_pdt;
            }
            snprintf(out->uri[out->n], sizeof(out->uri[0]), "%s", line);
            snprintf(out->extinf[out->n], sizeof(out->extinf[0]), "%s", pending);
            out->n++;
        }
    }
}

/* The delta playlist, merged with the full one the way hls.js merges (sn = media sequence +
 * skipped + index), must give the same segments as the full one. */
static void check_delta(env_t *e, int kind, uint64_t want_skipped)
{
    static parsed_t full, delta;
    e->o.skip = 0;
    parse_playlist(media(e, kind), &full);
    e->o.skip = 1;
    const char *d = media(e, kind);
    parse_playlist(d, &delta);
    e->o.skip = 0;

    assert_int_equal(delta.skipped, want_skipped);
    if (want_skipped == 0)
        assert_null(strstr(d, "#EXT-X-SKIP"));
    assert_int_equal(delta.media_seq, full.media_seq);
    assert_int_equal(delta.disc_seq, full.disc_seq);
    assert_int_equal(delta.skipped + (uint64_t)delta.n, (uint64_t)full.n);
    for (int i = 0; i < delta.n; i++) {
        uint64_t sn = delta.media_seq + delta.skipped + (uint64_t)i;
        char want[32];
        snprintf(want, sizeof(want), "%s/%llu.m4s", kind == HLS_AUDIO ? "a" : "v",
                 (unsigned long long)sn);
        assert_string_equal(delta.uri[i], want);
        assert_string_equal(delta.uri[i], full.uri[delta.skipped + (uint64_t)i]);
        assert_string_equal(delta.extinf[i], full.extinf[delta.skipped + (uint64_t)i]);
    }
    assert_true(delta.map_before_first);
    assert_true(delta.pdt_before_first);
}

static void test_skip(void **state)
{
    env_t *e = *state;
    add_complete(e, 30); /* 10..39, 60 s */
    fx_add(e->v, 3, VPART, 0, 0);
    fx_add(e->a, 3, APART, 0, 0);

    /* Live window of 6 x 2 s with CAN-SKIP-UNTIL=12 s: segment 34 ends 11 s before the end, so
     * nothing may be skipped and no EXT-X-SKIP appears. */
    check_delta(e, HLS_VIDEO, 0);

    /* A window of 10: 30..39 + 1 s in progress. Segments ending at least 12 s before the end are
     * 30..33 (33 ends 13 s before; 34 ends 11 s before). */
    e->o.window_segments = 10;
    check_delta(e, HLS_VIDEO, 4);
    e->o.skip = 1;
    const char *d = media(e, HLS_VIDEO);
    assert_non_null(strstr(d, "#EXT-X-MEDIA-SEQUENCE:30\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"
                              "#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"
                              "#EXT-X-MAP:URI=\"v/init-1.mp4\"\n"
                              "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:01:08.000Z\n"
                              "#EXTINF:2.00000,\nv/34.m4s\n"));
    e->o.skip = 0;
    e->o.window_segments = 0;

    /* DVR: 30 segments listed, all but the last 6 (and one more, 33, ends 13 s before) skipped. */
    e->o.dvr = 1;
    check_delta(e, HLS_VIDEO, 24);
    check_delta(e, HLS_AUDIO, 24);
}

static void test_skip_stops_at_discontinuity(void **state)
{
    env_t *e = *state;
    add_complete(e, 5); /* 10..14 */
    e->v->t.init_gen = 2;
    fx_add(e->v, 6, VPART, 1, 1); /* 15 */
    for (int i = 0; i < 14; i++)
        fx_add(e->v, 6, VPART, 1, 0); /* 16..29 */
    e->o.dvr = 1;
    check_delta(e, HLS_VIDEO, 5);
    e->o.skip = 1;
    const char *d = media(e, HLS_VIDEO);
    assert_non_null(strstr(d, "#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n#EXT-X-DISCONTINUITY\n"
                              "#EXT-X-MAP:URI=\"v/init-2.mp4\"\n"));
}

static void test_dvr_lists_everything(void **state)
{
    env_t *e = *state;
    add_complete(e, 20);
    fx_add(e->v, 1, VPART, 0, 0);
    e->o.dvr = 1;
    const char *p = media(e, HLS_VIDEO);
    assert_non_null(strstr(p, "#EXT-X-MEDIA-SEQUENCE:10\n"));
    assert_int_equal(count(p, "#EXTINF:"), 20);
    assert_int_equal(count(p, "#EXT-X-PART:"), 3 * 6 + 1);
}

static void test_target_duration_rounds(void **state)
{
    env_t *e = *state;
    fx_add(e->v, 6, 30030, 1, 0); /* 2.002 s: 60 frames at 29.97 fps */
    fx_add(e->v, 6, 30030, 1, 0);
    const char *p = media(e, HLS_VIDEO);
    /* To the nearest second (RFC 8216 4.3.3.1): 2.002 s stays a 2 s target. */
    assert_non_null(strstr(p, "#EXT-X-TARGETDURATION:2\n"));
    assert_non_null(strstr(p, "CAN-SKIP-UNTIL=12.0\n"));
    assert_non_null(strstr(p, "#EXT-X-PART-INF:PART-TARGET=0.334\n"));
    assert_non_null(strstr(p, "#EXTINF:2.00200,\n"));
    assert_non_null(strstr(p, "#EXT-X-PART:DURATION=0.33367,"));

    /* A part longer than the configured target raises PART-TARGET to cover it. */
    fx_add(e->v, 1, 45000, 0, 0);
    p = media(e, HLS_VIDEO);
    assert_non_null(strstr(p, "#EXT-X-PART-INF:PART-TARGET=0.500\n"));
    assert_non_null(strstr(p, "PART-HOLD-BACK=1.500,"));
}

static void test_target_duration_late_keyframe(void **state)
{
    env_t *e = *state;
    fx_add(e->v, 6, 30000, 1, 0);
    fx_add(e->v, 5, 45000, 1, 0); /* 2.5 s: a late keyframe */
    fx_add(e->v, 1, 30000, 0, 0);
    const char *p = media(e, HLS_VIDEO);
    assert_non_null(strstr(p, "#EXT-X-TARGETDURATION:3\n"));
    assert_non_null(strstr(p, "#EXTINF:2.50000,\n"));
}

static void test_media_errors(void **state)
{
    env_t *e = *state;
    sw_str_reset(&e->s);
    /* Nothing complete yet. */
    assert_int_equal(hls_render_media(&e->view, HLS_VIDEO, &e->o, &e->s), HLS_ERR_AGAIN);
    fx_add(e->v, 3, VPART, 0, 0);
    assert_int_equal(hls_render_media(&e->view, HLS_VIDEO, &e->o, &e->s), HLS_ERR_AGAIN);
    assert_int_equal(hls_render_media(&e->view, 7, &e->o, &e->s), HLS_ERR_NOT_FOUND);
    e->view.tracks[HLS_AUDIO] = NULL;
    assert_int_equal(hls_render_media(&e->view, HLS_AUDIO, &e->o, &e->s), HLS_ERR_NOT_FOUND);
    e->a->t.codec = HLS_CODEC_NONE;
    e->view.tracks[HLS_AUDIO] = &e->a->t;
    assert_int_equal(hls_render_media(&e->view, HLS_AUDIO, &e->o, &e->s), HLS_ERR_NOT_FOUND);
    assert_int_equal(e->s.len, 0);
    /* Default options when NULL. */
    fx_complete(e->v);
    assert_int_equal(hls_render_media(&e->view, HLS_VIDEO, NULL, &e->s), 0);
}

static const char *multivariant(env_t *e, int want)
{
    sw_str_reset(&e->s);
    assert_int_equal(hls_render_multivariant(&e->view, &e->o, &e->s), want);
    return e->s.p != NULL ? e->s.p : "";
}

static void test_multivariant(void **state)
{
    env_t *e = *state;
    sw_rbuf_t *vinit = sw_rbuf_copy("init", 4), *ainit = sw_rbuf_copy("init", 4);

    /* No init segment yet, or only one of two. */
    multivariant(e, HLS_ERR_AGAIN);
    e->v->t.init = vinit;
    multivariant(e, HLS_ERR_AGAIN);
    e->a->t.init = ainit;

    assert_string_equal(
        multivariant(e, 0),
        "#EXTM3U\n"
        "#EXT-X-VERSION:9\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,"
        "CHANNELS=\"2\",URI=\"a.m3u8\"\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=2628000,CODECS=\"avc1.64001f,mp4a.40.2\","
        "RESOLUTION=1280x720,AUDIO=\"aud\"\n"
        "v.m3u8\n");

    e->o.dvr = 1;
    const char *p = multivariant(e, 0);
    assert_non_null(strstr(p, ",URI=\"a.m3u8?dvr=1\"\n"));
    assert_non_null(strstr(p, "\nv.m3u8?dvr=1\n"));
    e->o.dvr = 0;

    /* Video only, bandwidth unknown: estimated from measured segments, else from the size. */
    e->view.tracks[HLS_AUDIO] = NULL;
    e->v->t.bandwidth = 0;
    assert_string_equal(multivariant(e, 0),
                        "#EXTM3U\n"
                        "#EXT-X-VERSION:9\n"
                        "#EXT-X-INDEPENDENT-SEGMENTS\n"
                        "#EXT-X-STREAM-INF:BANDWIDTH=2764800,CODECS=\"avc1.64001f\","
                        "RESOLUTION=1280x720\n"
                        "v.m3u8\n");
    fx_add(e->v, 6, VPART, 1, 0); /* 60000 bytes in 2 s */
    assert_non_null(strstr(multivariant(e, 0), "BANDWIDTH=240000,"));

    /* Audio only. */
    e->view.tracks[HLS_AUDIO] = &e->a->t;
    e->view.tracks[HLS_VIDEO] = NULL;
    assert_string_equal(multivariant(e, 0),
                        "#EXTM3U\n"
                        "#EXT-X-VERSION:9\n"
                        "#EXT-X-INDEPENDENT-SEGMENTS\n"
                        "#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS=\"mp4a.40.2\"\n"
                        "a.m3u8\n");
    e->view.tracks[HLS_AUDIO] = NULL;
    multivariant(e, HLS_ERR_AGAIN);

    sw_rbuf_unref(vinit);
    sw_rbuf_unref(ainit);
}

static int block(const hls_track_t *t, int has_msn, uint64_t msn, int has_part, uint32_t part)
{
    hls_query_t q = {.has_msn = has_msn, .msn = msn, .has_part = has_part, .part = part};
    return hls_track_block_state(t, &q);
}

static void test_block_state(void **state)
{
    env_t *e = *state;
    const hls_track_t *t = &e->v->t;

    /* Nothing complete yet: wait for what is near, refuse what is far. */
    assert_int_equal(block(t, 1, 10, 0, 0), HLS_BLOCK_WAIT);
    assert_int_equal(block(t, 1, 11, 1, 0), HLS_BLOCK_WAIT);
    assert_int_equal(block(t, 1, 12, 0, 0), HLS_BLOCK_BAD);

    add_complete(e, 3);           /* 10, 11, 12 */
    fx_add(e->v, 2, VPART, 0, 0); /* 13 in progress: parts 0 and 1; last = 13 */

    assert_int_equal(block(t, 0, 0, 0, 0), HLS_BLOCK_READY);
    assert_int_equal(block(NULL, 1, 99, 0, 0), HLS_BLOCK_READY);
    /* _HLS_msn alone: the segment must be complete. */
    assert_int_equal(block(t, 1, 5, 0, 0), HLS_BLOCK_READY); /* expired: long past */
    assert_int_equal(block(t, 1, 12, 0, 0), HLS_BLOCK_READY);
    assert_int_equal(block(t, 1, 13, 0, 0), HLS_BLOCK_WAIT); /* msn = last, in progress */
    assert_int_equal(block(t, 1, 14, 0, 0), HLS_BLOCK_WAIT); /* last + 1 */
    assert_int_equal(block(t, 1, 15, 0, 0), HLS_BLOCK_WAIT); /* last + 2 */
    assert_int_equal(block(t, 1, 16, 0, 0), HLS_BLOCK_BAD);  /* last + 3 */
    assert_int_equal(block(t, 1, UINT64_MAX, 0, 0), HLS_BLOCK_BAD);
    /* With _HLS_part (counted from 0). */
    assert_int_equal(block(t, 1, 12, 1, 5), HLS_BLOCK_READY);
    assert_int_equal(block(t, 1, 12, 1, 9), HLS_BLOCK_READY); /* 13 has parts: a later one exists */
    assert_int_equal(block(t, 1, 13, 1, 0), HLS_BLOCK_READY);
    assert_int_equal(block(t, 1, 13, 1, 1), HLS_BLOCK_READY);
    assert_int_equal(block(t, 1, 13, 1, 2), HLS_BLOCK_WAIT); /* the next part */
    assert_int_equal(block(t, 1, 13, 1, 4000000000u), HLS_BLOCK_WAIT);
    assert_int_equal(block(t, 1, 14, 1, 0), HLS_BLOCK_WAIT);
    assert_int_equal(block(t, 1, 15, 1, 3), HLS_BLOCK_WAIT);
    assert_int_equal(block(t, 1, 16, 1, 0), HLS_BLOCK_BAD);

    /* 13 completes: now msn=13 alone is ready, and so is any part of it. */
    fx_add_part(e->v, VPART);
    fx_complete(e->v);
    assert_int_equal(block(t, 1, 13, 0, 0), HLS_BLOCK_READY);
    assert_int_equal(block(t, 1, 13, 1, 2), HLS_BLOCK_READY);
    assert_int_equal(block(t, 1, 13, 1, 3), HLS_BLOCK_WAIT); /* no such part: wait for 14.0 */
    assert_int_equal(block(t, 1, 14, 1, 0), HLS_BLOCK_WAIT);
    assert_int_equal(block(t, 1, 15, 0, 0), HLS_BLOCK_WAIT);
    assert_int_equal(block(t, 1, 16, 0, 0), HLS_BLOCK_BAD);

    /* 14 begun without parts: the last listed is still 13.2. */
    fx_add(e->v, 0, VPART, 0, 0);
    assert_int_equal(block(t, 1, 14, 1, 0), HLS_BLOCK_WAIT);
    assert_int_equal(block(t, 1, 16, 1, 0), HLS_BLOCK_BAD);
    fx_add_part(e->v, VPART);
    assert_int_equal(block(t, 1, 14, 1, 0), HLS_BLOCK_READY);
    assert_int_equal(block(t, 1, 13, 1, 3), HLS_BLOCK_READY);
    assert_int_equal(block(t, 1, 16, 1, 0), HLS_BLOCK_WAIT);
}

/* Line index (0-based) of the first line of `p` starting with `prefix`, after line `after`. */
static int line_of(const char *p, const char *prefix, int after)
{
    int n = 0;
    for (const char *l = p; *l != '\0'; n++) {
        if (n > after && strncmp(l, prefix, strlen(prefix)) == 0)
            return n;
        const char *nl = strchr(l, '\n');
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    return -1;
}

#define SEG_PDT(m) (FX_ORIGIN_MS + 2000 * (int64_t)(m)) /* fixture: 2 s segments from output 0 */

static void test_dateranges_window(void **state)
{
    env_t *e = *state;
    add_complete(e, 10); /* 10..19; live window 14..19, PDT 28 s to 40 s */
    const hls_daterange_t dr[] = {
        {"1-0", SEG_PDT(14) - 1, "product_pinned", "{}"}, /* before the window */
        {"2-0", SEG_PDT(14), "product_pinned", "ab"},     /* its first instant */
        {"3-0", SEG_PDT(16) + 500, "product_pinned",      /* quote: base64 */
         "{\"type\":\"product_pinned\",\"sku\":\"S\\\"1\"}"},
        {"4\"x", SEG_PDT(17), "product_pinned", "{}"},       /* id with a quote: left out */
        {"5-0", SEG_PDT(17), "bad\ntype", "{}"},             /* type with LF: left out */
        {"6-0", SEG_PDT(20), "product_unpinned", "a"},       /* the end of the last segment */
        {"7-0", SEG_PDT(20) + 1, "product_unpinned", "abc"}, /* after the span */
    };
    e->o.dateranges = dr;
    e->o.ndateranges = SW_ARRAY_SIZE(dr);

    for (int kind = HLS_VIDEO; kind <= HLS_AUDIO; kind++) {
        const char *p = media(e, kind);
        assert_int_equal(count(p, "#EXT-X-DATERANGE:"), 3);
        assert_null(strstr(p, "ID=\"1-0\""));
        assert_null(strstr(p, "ID=\"7-0\""));
        assert_null(strstr(p, "4\"x"));
        assert_null(strstr(p, "X-SW-TYPE=\"bad"));
        assert_non_null(strstr(p, "#EXT-X-DATERANGE:ID=\"2-0\",CLASS=\"com.shortwave.commerce\","
                                  "START-DATE=\"2026-11-28T00:00:28.000Z\","
                                  "X-SW-TYPE=\"product_pinned\",X-SW-DATA=\"YWI=\"\n"));
        assert_non_null(strstr(p, "ID=\"3-0\",CLASS=\"com.shortwave.commerce\","
                                  "START-DATE=\"2026-11-28T00:00:32.500Z\",X-SW-TYPE=\"product_"
                                  "pinned\",X-SW-DATA=\"eyJ0eXBlIjoicHJvZHVjdF9waW5uZWQiLCJza3Ui"
                                  "OiJTXCIxIn0=\"\n"));
        assert_non_null(strstr(p, "ID=\"6-0\",CLASS=\"com.shortwave.commerce\","
                                  "START-DATE=\"2026-11-28T00:00:40.000Z\","
                                  "X-SW-TYPE=\"product_unpinned\",X-SW-DATA=\"YQ==\"\n"));
        /* Each right after the PDT of the segment holding it, before that segment's URI. */
        int pdt14 = line_of(p, "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:28.000Z", -1);
        int pdt16 = line_of(p, "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:32.000Z", -1);
        int pdt19 = line_of(p, "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:38.000Z", -1);
        assert_true(pdt14 >= 0 && pdt16 > pdt14 && pdt19 > pdt16);
        assert_int_equal(line_of(p, "#EXT-X-DATERANGE:ID=\"2-0\"", -1), pdt14 + 1);
        assert_int_equal(line_of(p, "#EXT-X-DATERANGE:ID=\"3-0\"", -1), pdt16 + 1);
        assert_int_equal(line_of(p, "#EXT-X-DATERANGE:ID=\"6-0\"", -1), pdt19 + 1);
    }

    /* The DVR playlist spans 10..19: the first one is in it now. */
    e->o.dvr = 1;
    const char *p = media(e, HLS_VIDEO);
    assert_int_equal(count(p, "#EXT-X-DATERANGE:"), 4);
    assert_non_null(strstr(p, "ID=\"1-0\""));

    /* A segment in progress extends the span to the end of its parts. */
    e->o.dvr = 0;
    fx_add(e->v, 2, VPART, 0, 0);
    p = media(e, HLS_VIDEO);
    assert_non_null(strstr(p, "ID=\"7-0\""));
    /* 6-0 starts where segment 20 starts: it moves there, from the end of 19. */
    int pdt20 = line_of(p, "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T00:00:40.000Z", -1);
    assert_int_equal(line_of(p, "#EXT-X-DATERANGE:ID=\"6-0\"", -1), pdt20 + 1);
    assert_int_equal(line_of(p, "#EXT-X-DATERANGE:ID=\"7-0\"", -1), pdt20 + 2);
}

static void test_dateranges_skip(void **state)
{
    env_t *e = *state;
    add_complete(e, 30); /* 10..39 */
    fx_add(e->v, 3, VPART, 0, 0);
    fx_add(e->a, 3, APART, 0, 0);
    e->o.window_segments = 10; /* 30..39: a delta update skips 30..33 (see test_skip) */
    const hls_daterange_t dr[] = {
        {"9-0", SEG_PDT(29) + 100, "product_pinned", "{}"},  /* before the window */
        {"10-0", SEG_PDT(31) + 100, "product_pinned", "{}"}, /* in a skipped segment */
        {"11-0", SEG_PDT(35) + 100, "flash_sale", "{}"},
        {"12-0", SEG_PDT(39) + 100, "price_update", "{}"},
    };
    e->o.dateranges = dr;
    e->o.ndateranges = SW_ARRAY_SIZE(dr);

    for (int skip = 1; skip <= 2; skip++) {
        e->o.skip = skip;
        const char *p = media(e, HLS_VIDEO);
        assert_non_null(strstr(p, "#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"));
        assert_null(strstr(p, "CAN-SKIP-DATERANGES"));
        assert_null(strstr(p, "RECENTLY-REMOVED-DATERANGES"));
        /* Every daterange of the span stays; the skipped segment's right after EXT-X-SKIP. */
        assert_int_equal(count(p, "#EXT-X-DATERANGE:"), 3);
        assert_int_equal(line_of(p, "#EXT-X-DATERANGE:ID=\"10-0\"", -1),
                         line_of(p, "#EXT-X-SKIP:", -1) + 1);
        assert_true(line_of(p, "#EXT-X-DATERANGE:ID=\"11-0\"", -1) >
                    line_of(p, "#EXT-X-PROGRAM-DATE-TIME:", -1));
    }
    check_delta(e, HLS_VIDEO, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_and_recent_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preload_hint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rendition_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discontinuity_and_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_stops_at_discontinuity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dvr_lists_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_duration_late_keyframe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_duration_rounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_media_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multivariant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dateranges_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dateranges_skip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
