/*
 * test_mpd.c: the dynamic MPD rendered from hand-built timelines (timeline_fixture.h): the
 * SegmentTimeline with r= runs, Periods split at discontinuities, timing attributes, and
 * well-formed XML (checked with xmllint when it is installed).
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

#include "hls/hls.h"
#include "sw/str.h"
#include "timeline_fixture.h"

#define VPART 30000
#define APART 16000

typedef struct env {
    fx_track_t *v, *a;
    hls_view_t view;
    hls_render_opts_t o;
    sw_str_t s;
} env_t;

static int setup(void **state)
{
    env_t *e = calloc(1, sizeof(*e));
    e->v = fx_track_new(HLS_VIDEO, 0);
    e->a = fx_track_new(HLS_AUDIO, 0);
    fx_view(&e->view, e->v, e->a);
    e->o.now_ms = FX_ORIGIN_MS + 13000;
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

static const char *mpd(env_t *e)
{
    sw_str_reset(&e->s);
    assert_int_equal(hls_render_mpd(&e->view, &e->o, &e->s), 0);
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

/* Well-formed XML, when xmllint is there to say so. */
static void check_xml(const char *xml)
{
    if (system("command -v xmllint >/dev/null 2>&1") != 0) {
        fprintf(stderr, "xmllint not installed: skipping the XML check\n");
        return;
    }
    char path[] = "/tmp/test_mpd_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(xml);
    assert_int_equal(write(fd, xml, len), (ssize_t)len);
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "xmllint --noout %s", path);
    int rv = system(cmd);
    unlink(path);
    assert_int_equal(rv, 0);
}

/* 0..2: 2 s; 3: 1.98 s; 4 (a reconnect, new init): 2 s; 5: 2 s; 6 in progress. The MPD lists 6
 * and 7 ahead at the expected 2 s (the live edge: test_live_edge). */
static void build_discontinuity(env_t *e)
{
    for (int i = 0; i < 3; i++) {
        fx_add(e->v, 6, VPART, 1, 0);
        fx_add(e->a, 6, APART, 1, 0);
    }
    fx_add(e->v, 6, 29700, 1, 0);
    fx_add(e->a, 6, APART, 1, 0);
    e->v->t.init_gen = e->a->t.init_gen = 2;
    fx_add(e->v, 6, VPART, 1, 1);
    fx_add(e->a, 6, APART, 1, 1);
    fx_add(e->v, 6, VPART, 1, 0);
    fx_add(e->a, 6, APART, 1, 0);
    fx_add(e->v, 2, VPART, 0, 0);
    fx_add(e->a, 2, APART, 0, 0);
}

static void test_periods_exact(void **state)
{
    env_t *e = *state;
    build_discontinuity(e);
    e->o.window_segments = 10;
    const char *p = mpd(e);
    assert_string_equal(
        p, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" "
           "profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" "
           "type=\"dynamic\" availabilityStartTime=\"2026-11-28T00:00:00.000Z\" "
           "publishTime=\"2026-11-28T00:00:13.000Z\" minimumUpdatePeriod=\"PT1.000S\" "
           "timeShiftBufferDepth=\"PT20.000S\" suggestedPresentationDelay=\"PT1.500S\" "
           "maxSegmentDuration=\"PT2.000S\" minBufferTime=\"PT1.000S\">\n"
           "  <ServiceDescription id=\"0\">\n"
           "    <Latency target=\"1500\" min=\"1002\" max=\"3000\"/>\n"
           "    <PlaybackRate min=\"0.96\" max=\"1.04\"/>\n"
           "  </ServiceDescription>\n"
           "  <Period id=\"0\" start=\"PT0.000S\">\n"
           "    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" "
           "codecs=\"avc1.64001f\" width=\"1280\" height=\"720\" segmentAlignment=\"true\" "
           "startWithSAP=\"1\">\n"
           "      <Representation id=\"v\" bandwidth=\"2500000\">\n"
           "        <SegmentTemplate timescale=\"90000\" initialization=\"v/init-1.mp4\" "
           "media=\"v/$Number$.m4s\" startNumber=\"0\" presentationTimeOffset=\"0\" "
           "availabilityTimeOffset=\"1.666\" availabilityTimeComplete=\"false\">\n"
           "          <SegmentTimeline>\n"
           "            <S t=\"0\" d=\"180000\" r=\"2\"/>\n"
           "            <S t=\"540000\" d=\"178200\"/>\n"
           "          </SegmentTimeline>\n"
           "        </SegmentTemplate>\n"
           "      </Representation>\n"
           "    </AdaptationSet>\n"
           "    <AdaptationSet id=\"1\" contentType=\"audio\" mimeType=\"audio/mp4\" "
           "codecs=\"mp4a.40.2\" audioSamplingRate=\"48000\" segmentAlignment=\"true\" "
           "startWithSAP=\"1\">\n"
           "      <AudioChannelConfiguration "
           "schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"2\"/>\n"
           "      <Representation id=\"a\" bandwidth=\"128000\">\n"
           "        <SegmentTemplate timescale=\"48000\" initialization=\"a/init-1.mp4\" "
           "media=\"a/$Number$.m4s\" startNumber=\"0\" presentationTimeOffset=\"0\" "
           "availabilityTimeOffset=\"1.666\" availabilityTimeComplete=\"false\">\n"
           "          <SegmentTimeline>\n"
           "            <S t=\"0\" d=\"96000\" r=\"3\"/>\n"
           "          </SegmentTimeline>\n"
           "        </SegmentTemplate>\n"
           "      </Representation>\n"
           "    </AdaptationSet>\n"
           "  </Period>\n"
           "  <Period id=\"4\" start=\"PT7.980S\">\n"
           "    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" "
           "codecs=\"avc1.64001f\" width=\"1280\" height=\"720\" segmentAlignment=\"true\" "
           "startWithSAP=\"1\">\n"
           "      <Representation id=\"v\" bandwidth=\"2500000\">\n"
           "        <SegmentTemplate timescale=\"90000\" initialization=\"v/init-2.mp4\" "
           "media=\"v/$Number$.m4s\" startNumber=\"4\" presentationTimeOffset=\"718200\" "
           "availabilityTimeOffset=\"1.666\" availabilityTimeComplete=\"false\">\n"
           "          <SegmentTimeline>\n"
           "            <S t=\"718200\" d=\"180000\" r=\"3\"/>\n"
           "          </SegmentTimeline>\n"
           "        </SegmentTemplate>\n"
           "      </Representation>\n"
           "    </AdaptationSet>\n"
           "    <AdaptationSet id=\"1\" contentType=\"audio\" mimeType=\"audio/mp4\" "
           "codecs=\"mp4a.40.2\" audioSamplingRate=\"48000\" segmentAlignment=\"true\" "
           "startWithSAP=\"1\">\n"
           "      <AudioChannelConfiguration "
           "schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"2\"/>\n"
           "      <Representation id=\"a\" bandwidth=\"128000\">\n"
           "        <SegmentTemplate timescale=\"48000\" initialization=\"a/init-2.mp4\" "
           "media=\"a/$Number$.m4s\" startNumber=\"4\" presentationTimeOffset=\"383040\" "
           "availabilityTimeOffset=\"1.666\" availabilityTimeComplete=\"false\">\n"
           "          <SegmentTimeline>\n"
           "            <S t=\"384000\" d=\"96000\" r=\"3\"/>\n"
           "          </SegmentTimeline>\n"
           "        </SegmentTemplate>\n"
           "      </Representation>\n"
           "    </AdaptationSet>\n"
           "  </Period>\n"
           "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" "
           "value=\"2026-11-28T00:00:13.000Z\"/>\n"
           "</MPD>\n");
    check_xml(p);
}

static void test_period_id_stable_as_window_slides(void **state)
{
    env_t *e = *state;
    build_discontinuity(e);

    /* Live window of 2: segments 4 and 5, one Period, still the one segment 4 began. */
    e->o.window_segments = 2;
    const char *p = mpd(e);
    assert_int_equal(count(p, "<Period "), 1);
    assert_non_null(strstr(p, "<Period id=\"4\" start=\"PT7.980S\">"));
    assert_non_null(strstr(p, "startNumber=\"4\" presentationTimeOffset=\"718200\""));
    assert_non_null(strstr(p, "timeShiftBufferDepth=\"PT4.000S\""));

    /* Window of 1: only 5 listed (and 6, 7 ahead), yet the Period is the same. */
    e->o.window_segments = 1;
    p = mpd(e);
    assert_non_null(strstr(p, "<Period id=\"4\" start=\"PT7.980S\">"));
    assert_non_null(strstr(p, "startNumber=\"5\" presentationTimeOffset=\"718200\""));
    assert_non_null(
        strstr(p, "<S t=\"898200\" d=\"180000\" r=\"2\"/>\n          </SegmentTimeline>"));
    check_xml(p);
}

static void test_timeline_runs_and_gaps(void **state)
{
    env_t *e = *state;
    e->view.tracks[HLS_AUDIO] = NULL;
    for (int i = 0; i < 4; i++)
        fx_add(e->v, 6, VPART, 1, 0); /* 0..3 */
    e->v->end += 9000;                /* a 0.1 s hole before 4 */
    fx_add(e->v, 6, VPART, 1, 0);     /* 4 */
    fx_add(e->v, 6, VPART, 1, 0);     /* 5 */
    fx_add(e->v, 5, VPART, 1, 0);     /* 6: short */
    fx_add(e->v, 6, VPART, 1, 0);     /* 7 */
    e->o.window_segments = 8;
    const char *p = mpd(e);
    assert_non_null(strstr(p, "          <SegmentTimeline>\n"
                              "            <S t=\"0\" d=\"180000\" r=\"3\"/>\n"
                              "            <S t=\"729000\" d=\"180000\" r=\"1\"/>\n"
                              "            <S t=\"1089000\" d=\"150000\"/>\n"
                              "            <S t=\"1239000\" d=\"180000\"/>\n"
                              "          </SegmentTimeline>\n"));
    assert_int_equal(count(p, "<AdaptationSet"), 1);
    assert_null(strstr(p, "audio"));
}

static void test_dvr_and_timing(void **state)
{
    env_t *e = *state;
    for (int i = 0; i < 20; i++) {
        fx_add(e->v, 6, VPART, 1, 0);
        fx_add(e->a, 6, APART, 1, 0);
    }
    const char *p = mpd(e);
    /* Live: the last six segments, 14..19. */
    assert_non_null(strstr(p, "timeShiftBufferDepth=\"PT12.000S\""));
    assert_non_null(strstr(p, "startNumber=\"14\""));
    assert_non_null(strstr(p, "<S t=\"2520000\" d=\"180000\" r=\"5\"/>"));
    assert_non_null(strstr(p, "<Period id=\"0\" start=\"PT0.000S\">"));
    assert_non_null(strstr(p, "availabilityStartTime=\"2026-11-28T00:00:00.000Z\""));
    assert_non_null(strstr(p, "publishTime=\"2026-11-28T00:00:13.000Z\""));
    assert_non_null(strstr(p, "<Latency target=\"1500\" min=\"1002\" max=\"3000\"/>"));
    assert_non_null(strstr(p, "suggestedPresentationDelay=\"PT1.500S\""));
    assert_non_null(
        strstr(p, "availabilityTimeOffset=\"1.666\" availabilityTimeComplete=\"false\""));

    e->o.dvr = 1;
    p = mpd(e);
    assert_non_null(strstr(p, "timeShiftBufferDepth=\"PT40.000S\""));
    assert_non_null(strstr(p, "startNumber=\"0\""));
    assert_non_null(strstr(p, "<S t=\"0\" d=\"180000\" r=\"19\"/>"));
    check_xml(p);
}

static void test_utc_timing(void **state)
{
    env_t *e = *state;
    fx_add(e->v, 6, VPART, 1, 0);
    const char *p = mpd(e);
    assert_non_null(strstr(p, "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" "
                              "value=\"2026-11-28T00:00:13.000Z\"/>\n</MPD>\n"));
    e->o.utc_timing_url = "https://time.example/iso?a=1&b=\"2\"";
    p = mpd(e);
    assert_non_null(strstr(p, "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" "
                              "value=\"https://time.example/iso?a=1&amp;b=&quot;2&quot;\"/>\n"));
    check_xml(p);
}

static void test_audio_only_and_again(void **state)
{
    env_t *e = *state;
    sw_str_reset(&e->s);
    assert_int_equal(hls_render_mpd(&e->view, &e->o, &e->s), HLS_ERR_AGAIN);
    fx_add(e->v, 3, VPART, 0, 0);
    fx_add(e->a, 3, APART, 0, 0);
    assert_int_equal(hls_render_mpd(&e->view, &e->o, &e->s), HLS_ERR_AGAIN);
    assert_int_equal(e->s.len, 0);

    /* Audio only: the audio track leads. */
    e->view.tracks[HLS_VIDEO] = NULL;
    fx_complete(e->a);
    const char *p = mpd(e);
    assert_int_equal(count(p, "<AdaptationSet"), 1);
    assert_non_null(
        strstr(p, "mimeType=\"audio/mp4\" codecs=\"mp4a.40.2\" audioSamplingRate=\"48000\""));
    assert_non_null(strstr(p, "<S t=\"0\" d=\"48000\"/>"));
    assert_non_null(strstr(p, "value=\"2\"/>"));
    check_xml(p);
}

/*
 * The live edge: while the reference track has a segment in progress, each track lists its own
 * segment in progress and those after it up to one past the reference's, at the expected duration
 * (the last complete segment's, or what the segment in progress already has when longer).
 */
static void test_live_edge(void **state)
{
    env_t *e = *state;
    for (int i = 0; i < 3; i++) {
        fx_add(e->v, 6, VPART, 1, 0); /* 0..2: 2 s */
        fx_add(e->a, 6, APART, 1, 0);
    }
    fx_add(e->v, 6, 29700, 1, 0); /* 3: 1.98 s, the expected duration from now on */
    fx_add(e->a, 6, APART, 1, 0);
    fx_add(e->v, 2, VPART, 0, 0); /* 4 in progress; audio has not reached it yet */
    const char *p = mpd(e);
    /* Video: 4 in progress and 5 ahead, both 1.98 s. */
    assert_non_null(strstr(p, "            <S t=\"0\" d=\"180000\" r=\"2\"/>\n"
                              "            <S t=\"540000\" d=\"178200\" r=\"2\"/>\n"
                              "          </SegmentTimeline>"));
    /* Audio: 4 and 5 ahead of it, right after 3. */
    assert_non_null(strstr(p, "            <S t=\"0\" d=\"96000\" r=\"5\"/>\n"
                              "          </SegmentTimeline>"));
    check_xml(p);

    /* Audio reaches 4; video's 4 grows past the expected duration: it is listed as it is. */
    fx_add(e->a, 1, APART, 0, 0);
    for (int i = 0; i < 5; i++)
        fx_add_part(e->v, VPART);
    p = mpd(e);
    assert_non_null(strstr(p, "            <S t=\"540000\" d=\"178200\"/>\n"
                              "            <S t=\"718200\" d=\"210000\"/>\n"
                              "            <S t=\"928200\" d=\"178200\"/>\n"
                              "          </SegmentTimeline>"));
    assert_non_null(strstr(p, "            <S t=\"0\" d=\"96000\" r=\"5\"/>\n"
                              "          </SegmentTimeline>"));

    /* Once nothing is in progress (the publisher left), only complete segments are listed. */
    fx_complete(e->v);
    fx_complete(e->a);
    p = mpd(e);
    assert_non_null(strstr(p, "            <S t=\"718200\" d=\"210000\"/>\n"
                              "          </SegmentTimeline>"));
    assert_non_null(strstr(p, "            <S t=\"0\" d=\"96000\" r=\"3\"/>\n"
                              "            <S t=\"384000\" d=\"16000\"/>\n"
                              "          </SegmentTimeline>"));
    check_xml(p);
}

/* A gap segment (audio behind video's cut at a discontinuity) ends its Period unlisted, and says
 * nothing about what the next segments will last. */
static void test_gap_ends_period(void **state)
{
    env_t *e = *state;
    for (int i = 0; i < 2; i++) {
        fx_add(e->v, 6, VPART, 1, 0); /* 0, 1 */
        fx_add(e->a, 6, APART, 1, 0);
    }
    fx_add(e->v, 2, VPART, 1, 0);                      /* 2: 0.67 s, then the publisher left */
    hls_segment_t *gap = fx_add(e->a, 0, APART, 1, 0); /* audio had not reached it: */
    gap->gap = 1;                                      /* no parts; it spans video's 2 */
    gap->duration = 32000;
    e->a->end = gap->start + 32000;
    fx_add(e->v, 1, VPART, 0, 1); /* 3: the next run, in progress */
    fx_add(e->a, 1, APART, 0, 1);
    const char *p = mpd(e);
    assert_int_equal(count(p, "<Period "), 2);
    /* Period 0: audio 0 and 1 only. */
    assert_non_null(strstr(p, "            <S t=\"0\" d=\"96000\" r=\"1\"/>\n"
                              "          </SegmentTimeline>"));
    /* Period 3: audio 3 in progress and 4 ahead, at 2 s (the gap's 0.67 s is no guide). */
    assert_non_null(strstr(p, "            <S t=\"224000\" d=\"96000\" r=\"1\"/>\n"
                              "          </SegmentTimeline>"));
    /* Video's last complete segment was short; that is what it expects next. */
    assert_non_null(strstr(p, "            <S t=\"420000\" d=\"60000\" r=\"1\"/>\n"
                              "          </SegmentTimeline>"));
    check_xml(p);
}

/* Events go to the Period holding their instant, on that Period's timeline, as escaped text. */
static void test_event_stream(void **state)
{
    env_t *e = *state;
    build_discontinuity(e); /* Period 0: 0..3 (0 to 7.98 s); Period 4: 4..5 (7.98 to 11.98 s) */
    e->o.window_segments = 10;
    const hls_daterange_t dr[] = {
        {"1-0", FX_ORIGIN_MS + 1500, "product_pinned", "{\"t\":\"<a&b>\"}"},
        {"2-0", FX_ORIGIN_MS + 7979, "price_update", "x"},     /* the gap-free end of Period 0 */
        {"3-0", FX_ORIGIN_MS + 7980, "price_update", "y"},     /* Period 4 at 0 */
        {"4-0", FX_ORIGIN_MS + 8480, "stock_update", "z"},     /* Period 4 at 500 */
        {"5\x01", FX_ORIGIN_MS + 9000, "stock_update", "z"},   /* control character: left out */
        {"6-0", FX_ORIGIN_MS + 11980, "stock_update", "end"},  /* the end of the last segment */
        {"7-0", FX_ORIGIN_MS + 11981, "stock_update", "late"}, /* after it */
    };
    e->o.dateranges = dr;
    e->o.ndateranges = SW_ARRAY_SIZE(dr);
    const char *p = mpd(e);
    check_xml(p);
    assert_int_equal(count(p, "<EventStream schemeIdUri=\"urn:shortwave:commerce:2026\" "
                              "timescale=\"1000\">\n"),
                     2);
    const char *p0 = strstr(p, "<Period id=\"0\"");
    const char *p4 = strstr(p, "<Period id=\"4\"");
    assert_non_null(p0);
    assert_non_null(p4);
    const char *ev1 = strstr(p, "      <Event presentationTime=\"1500\" id=\"1-0\">"
                                "{&quot;t&quot;:&quot;&lt;a&amp;b&gt;&quot;}</Event>\n");
    const char *ev2 = strstr(p, "<Event presentationTime=\"7979\" id=\"2-0\">x</Event>");
    const char *ev3 = strstr(p, "<Event presentationTime=\"0\" id=\"3-0\">y</Event>");
    const char *ev4 = strstr(p, "<Event presentationTime=\"500\" id=\"4-0\">z</Event>");
    const char *ev6 = strstr(p, "<Event presentationTime=\"4000\" id=\"6-0\">end</Event>");
    assert_true(ev1 > p0 && ev1 < p4 && ev2 > ev1 && ev2 < p4);
    assert_true(ev3 > p4 && ev4 > ev3 && ev6 > ev4);
    assert_null(strstr(p, "id=\"7-0\""));
    assert_int_equal(count(p, "<Event "), 5);
    /* The EventStream comes before the AdaptationSets, as the schema orders them. */
    assert_true(strstr(p4, "<EventStream") < strstr(p4, "<AdaptationSet"));

    /* A live window of 2 (segments 4 and 5) leaves the first Period and its events out. */
    e->o.window_segments = 2;
    p = mpd(e);
    check_xml(p);
    assert_null(strstr(p, "id=\"1-0\""));
    assert_null(strstr(p, "id=\"2-0\""));
    assert_non_null(strstr(p, "<Event presentationTime=\"0\" id=\"3-0\">y</Event>"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_periods_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_period_id_stable_as_window_slides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeline_runs_and_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dvr_and_timing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utc_timing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audio_only_and_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap_ends_period, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
