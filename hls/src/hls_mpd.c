/*
 * hls_mpd.c: the dynamic DASH MPD over the same CMAF files as the HLS playlists.
 *
 * One SegmentTemplate with a SegmentTimeline per track and Period. While the stream is live the
 * timeline ends with the segment in progress and the next one, at their expected durations;
 * availabilityTimeOffset (the segment target minus one part) with availabilityTimeComplete="false"
 * makes each available one part after it starts, so a low-latency client (dash.js) requests it
 * then, and the server sends it with chunked transfer as its parts arrive. A ServiceDescription
 * gives the latency to aim for.
 *
 * Periods: a new Period starts at every segment flagged as a discontinuity (a reconnect or a codec
 * change, so possibly a new init segment). A Period's id and start come from the segment that
 * began it, which keeps them stable while the live window slides; when no such segment is retained
 * the Period is the one that began at output time 0, with id "0".
 */
#include <stdio.h>
#include <string.h>

#include "hls/hls.h"
#include "hls_int.h"
#include "sw/sw.h"

#define DEFAULT_WINDOW_SEGMENTS 6

static int usable(const hls_track_t *t)
{
    return t != NULL && t->codec != HLS_CODEC_NONE && t->timescale != 0 && t->ring_cap != 0;
}

/* Appends ` name="PT<s>.<ms>S"`. */
static void put_dur(sw_str_t *out, const char *name, uint64_t ms)
{
    sw_str_printf(out, " %s=\"PT%llu.%03lluS\"", name, (unsigned long long)(ms / 1000),
                  (unsigned long long)(ms % 1000));
}

static void put_escaped(sw_str_t *out, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&':
            sw_str_puts(out, "&amp;");
            break;
        case '<':
            sw_str_puts(out, "&lt;");
            break;
        case '>':
            sw_str_puts(out, "&gt;");
            break;
        case '"':
            sw_str_puts(out, "&quot;");
            break;
        case '\'':
            sw_str_puts(out, "&apos;");
            break;
        default:
            sw_str_append(out, s, 1);
        }
    }
}

/* `ticks` of timescale `from` in timescale `to`, without overflowing for long streams. */
static int64_t rescale(int64_t ticks, uint32_t from, uint32_t to)
{
    return ticks / from * to + ticks % from * to / from;
}

static int flagged(const hls_view_t *v, uint64_t msn)
{
    for (int k = 0; k < HLS_NTRACKS; k++) {
        const hls_segment_t *seg =
            usable(v->tracks[k]) ? hls_track_segment(v->tracks[k], msn) : NULL;
        if (seg != NULL && seg->discontinuity)
            return 1;
    }
    return 0;
}

/* What the next segment of `t` should last: the last complete one's duration (a gap's says
 * nothing), or the target before there is one. */
static uint64_t expected_duration(const hls_track_t *t, uint32_t segment_ms)
{
    for (uint64_t m = hls__complete_end(t); m > t->first_msn; m--) {
        const hls_segment_t *seg = hls_track_segment(t, m - 1);
        if (!seg->gap && !seg->restored)
            return seg->duration;
    }
    return (uint64_t)segment_ms * t->timescale / 1000;
}

/*
 * Where segment `m` of `t` sits in the timeline: its own start and duration once complete; for
 * the segment in progress its start and `expect` (or what it has so far when longer); for one
 * not begun yet (live only), right after `prev_end`, lasting `expect`. Returns 0 when `m` cannot
 * be listed.
 */
static int entry(const hls_track_t *t, uint64_t m, int live, uint64_t expect, int64_t prev_end,
                 int64_t *start, uint64_t *dur)
{
    const hls_segment_t *seg = hls_track_segment(t, m);

    if (seg != NULL && seg->gap)
        return 0; /* it ends its Period: the segment after it is a discontinuity */
    if (seg != NULL && seg->complete) {
        *start = seg->start;
        *dur = seg->duration;
        return 1;
    }
    if (!live || expect == 0)
        return 0;
    if (seg != NULL) {
        *start = seg->start;
        *dur = seg->duration > expect ? seg->duration : expect;
        return 1;
    }
    if (prev_end < 0)
        return 0;
    *start = prev_end;
    *dur = expect;
    return 1;
}

/*
 * One AdaptationSet: track `t`'s segments with from <= msn < to, if any. With `live` (the
 * reference track has a segment in progress) the timeline goes on past the complete segments: the
 * segment in progress and those after it up to `to` are listed with their expected duration, so
 * that a client knows their numbers and start times before they exist. availabilityTimeOffset
 * makes each one available one part after it starts; the server holds a request for the next
 * segment until it begins and streams a segment in progress as its parts arrive. The next MPD
 * corrects a duration that came out different (a keyframe interval that changed).
 */
static void put_adaptation(sw_str_t *out, const hls_view_t *v, const hls_track_t *t, uint64_t from,
                           uint64_t to, int live, int64_t pstart, uint32_t pstart_ts)
{
    int audio = t->kind == HLS_AUDIO;
    const char *dir = audio ? "a" : "v";
    int64_t start, end = -1;
    uint64_t dur, expect = live ? expected_duration(t, v->cfg.segment_ms) : 0;

    if (from < t->first_msn)
        from = t->first_msn;
    /* The listable run: it ends at the first segment that cannot be listed. */
    uint64_t lto = from;
    while (lto < to && entry(t, lto, live, expect, end, &start, &dur)) {
        end = start + (int64_t)dur;
        lto++;
    }
    if (from >= lto)
        return;
    to = lto;

    sw_str_printf(out, "    <AdaptationSet id=\"%d\" contentType=\"%s\" mimeType=\"%s\" codecs=\"",
                  audio, audio ? "audio" : "video", audio ? "audio/mp4" : "video/mp4");
    put_escaped(out, t->codecs[0] != '\0' ? t->codecs : (audio ? "mp4a.40.2" : "avc1.64001f"));
    sw_str_puts(out, "\"");
    if (!audio && t->width != 0 && t->height != 0)
        sw_str_printf(out, " width=\"%u\" height=\"%u\"", t->width, t->height);
    if (audio && t->sample_rate != 0)
        sw_str_printf(out, " audioSamplingRate=\"%u\"", t->sample_rate);
    sw_str_puts(out, " segmentAlignment=\"true\" startWithSAP=\"1\">\n");
    if (audio && t->channels != 0)
        sw_str_printf(out,
                      "      <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:"
                      "audio_channel_configuration:2011\" value=\"%u\"/>\n",
                      t->channels);
    sw_str_printf(out, "      <Representation id=\"%s\" bandwidth=\"%llu\">\n", dir,
                  (unsigned long long)hls__peak_bandwidth(t));
    sw_str_printf(out,
                  "        <SegmentTemplate timescale=\"%u\" initialization=\"%s/init-%u.mp4\" "
                  "media=\"%s/$Number$.m4s\" startNumber=\"%llu\" presentationTimeOffset=\"%lld\"",
                  t->timescale, dir, hls_track_segment(t, from)->init_gen, dir,
                  (unsigned long long)from, (long long)rescale(pstart, pstart_ts, t->timescale));
    /* A segment may be requested once its first part exists. */
    if (v->cfg.part_ms != 0 && v->cfg.part_ms < v->cfg.segment_ms) {
        uint32_t ato = v->cfg.segment_ms - v->cfg.part_ms;
        sw_str_printf(out, " availabilityTimeOffset=\"%u.%03u\" availabilityTimeComplete=\"false\"",
                      ato / 1000, ato % 1000);
    }
    sw_str_puts(out, ">\n          <SegmentTimeline>\n");

    /* Equal consecutive durations merge into one S with r=; t= is given again after a gap. */
    uint64_t run = 0, head_dur = 0;
    int64_t head_start = 0, head_next = 0;
    int have_head = 0;
    end = -1;
    for (uint64_t m = from; m <= to; m++) {
        int have = m < to && entry(t, m, live, expect, end, &start, &dur);
        if (have)
            end = start + (int64_t)dur;
        if (have_head && have && start == head_next && dur == head_dur) {
            run++;
            head_next += (int64_t)dur;
            continue;
        }
        if (have_head) {
            sw_str_printf(out, "            <S t=\"%lld\" d=\"%llu\"", (long long)head_start,
                          (unsigned long long)head_dur);
            if (run > 0)
                sw_str_printf(out, " r=\"%llu\"", (unsigned long long)run);
            sw_str_puts(out, "/>\n");
        }
        have_head = have;
        head_start = start;
        head_dur = dur;
        run = 0;
        head_next = start + (int64_t)dur;
    }
    sw_str_puts(out, "          </SegmentTimeline>\n        </SegmentTemplate>\n"
                     "      </Representation>\n    </AdaptationSet>\n");
}

/* XML 1.0 has no way to write most control characters, not even as references. */
static int xml_text_safe(const char *s)
{
    if (s == NULL)
        return 0;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

/*
 * The Period's EventStream: the dateranges from index `i` on that start within the PDT span of the
 * reference track's segments [from, to), up to the next Period's first PDT (the last Period's end
 * included). presentationTime is on the Period's timeline: the output time of the event's instant,
 * from the segment holding it, minus the Period's start. Returns the index of the first one left.
 */
static size_t put_events(sw_str_t *out, const hls_render_opts_t *o, size_t i,
                         const hls_track_t *ref, uint64_t from, uint64_t to, int64_t pstart)
{
    const hls_segment_t *last = hls_track_segment(ref, to - 1);
    int final = to >= hls__complete_end(ref);
    int64_t until = final ? last->pdt_ms + rescale((int64_t)last->duration, ref->timescale, 1000)
                          : hls_track_segment(ref, to)->pdt_ms;
    uint64_t m = from;
    int opened = 0;

    for (; i < o->ndateranges; i++) {
        const hls_daterange_t *d = &o->dateranges[i];
        if (d->start_ms > until || (d->start_ms == until && !final))
            break;
        if (!xml_text_safe(d->id) || d->id[0] == '\0' || !xml_text_safe(d->data))
            continue;
        while (m + 1 < to && hls_track_segment(ref, m + 1)->pdt_ms <= d->start_ms)
            m++;
        const hls_segment_t *seg = hls_track_segment(ref, m);
        int64_t at = seg->start + rescale(d->start_ms - seg->pdt_ms, 1000, ref->timescale);
        int64_t pt = rescale(at - pstart, ref->timescale, 1000);
        if (!opened) {
            sw_str_puts(out, "    <EventStream schemeIdUri=\"" HLS_EVENT_SCHEME_URI
                             "\" timescale=\"1000\">\n");
            opened = 1;
        }
        sw_str_printf(out, "      <Event presentationTime=\"%lld\" id=\"",
                      (long long)(pt > 0 ? pt : 0));
        put_escaped(out, d->id);
        sw_str_puts(out, "\">");
        put_escaped(out, d->data);
        sw_str_puts(out, "</Event>\n");
    }
    if (opened)
        sw_str_puts(out, "    </EventStream>\n");
    return i;
}

int hls_render_mpd(const hls_view_t *v, const hls_render_opts_t *o, sw_str_t *out)
{
    static const hls_render_opts_t defaults;
    const hls_track_t *ref = NULL;
    size_t len0 = out->len;
    char iso[40];

    if (o == NULL)
        o = &defaults;
    /* The video track leads (its keyframes cut the segments); audio alone when there is none. */
    for (int k = 0; k < HLS_NTRACKS && ref == NULL; k++)
        if (usable(v->tracks[k]) &&
            hls__complete_end(v->tracks[k]) > hls__list_from(v->tracks[k], o->dvr))
            ref = v->tracks[k];
    if (ref == NULL)
        return HLS_ERR_AGAIN;

    uint32_t window = o->window_segments != 0 ? o->window_segments : DEFAULT_WINDOW_SEGMENTS;
    uint64_t cend = hls__complete_end(ref);
    uint64_t list_from = hls__list_from(ref, o->dvr);
    uint64_t first = o->dvr || cend - list_from <= window ? list_from : cend - window;
    uint64_t maxd = ref->max_duration;
    for (uint64_t m = first; m < cend; m++)
        if (hls_track_segment(ref, m)->duration > maxd)
            maxd = hls_track_segment(ref, m)->duration;
    uint64_t target_ms = (maxd * 1000 + ref->timescale - 1) / ref->timescale;
    if (target_ms < v->cfg.segment_ms)
        target_ms = v->cfg.segment_ms;
    uint64_t max_s = (target_ms + 999) / 1000;

    uint64_t depth_ms;
    if (o->dvr) {
        const hls_segment_t *a = hls_track_segment(ref, ref->first_msn);
        const hls_segment_t *z = hls_track_segment(ref, cend - 1);
        depth_ms =
            (uint64_t)rescale(z->start + (int64_t)z->duration - a->start, ref->timescale, 1000);
    } else {
        depth_ms = window * target_ms;
    }
    /* dash.js low-latency mode steers towards Latency@target. The segment in progress is
     * available one part after it starts and arrives part by part, so a client needs what
     * LL-HLS asks (PART-HOLD-BACK, three parts) plus half a second for the transfer and the jitter
     * of its MPD reloads (to the nearest 100 ms); the minimum is the three parts. */
    uint64_t latency_ms = (3 * (uint64_t)v->cfg.part_ms + 500 + 50) / 100 * 100;
    uint64_t update_ms = v->cfg.segment_ms / 2 > 500 ? v->cfg.segment_ms / 2 : 500;

    sw_str_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" "
                     "profiles=\"urn:mpeg:dash:profile:isoff-live:2011,"
                     "urn:mpeg:dash:profile:cmaf:2019\" type=\"dynamic\"");
    sw_str_printf(out, " availabilityStartTime=\"%s\"", sw_iso8601(v->origin_ms, iso, sizeof(iso)));
    sw_str_printf(out, " publishTime=\"%s\"", sw_iso8601(o->now_ms, iso, sizeof(iso)));
    put_dur(out, "minimumUpdatePeriod", update_ms);
    put_dur(out, "timeShiftBufferDepth", depth_ms);
    put_dur(out, "suggestedPresentationDelay", latency_ms);
    put_dur(out, "maxSegmentDuration", max_s * 1000);
    put_dur(out, "minBufferTime", update_ms);
    sw_str_puts(out, ">\n");
    sw_str_printf(out,
                  "  <ServiceDescription id=\"0\">\n"
                  "    <Latency target=\"%llu\" min=\"%llu\" max=\"%llu\"/>\n"
                  "    <PlaybackRate min=\"0.96\" max=\"1.04\"/>\n"
                  "  </ServiceDescription>\n",
                  (unsigned long long)latency_ms, (unsigned long long)(3 * v->cfg.part_ms),
                  (unsigned long long)(latency_ms * 2));

    /* While the reference track has a segment in progress, the MPD lists it and the one after
     * it, so that a client reloading it every minimumUpdatePeriod (through a cache that may add
     * its max-age) always knows the segment it will need next. */
    const hls_segment_t *last = hls_track_segment(ref, ref->next_msn - 1);
    int live = last != NULL && !last->complete;
    uint64_t lend = live ? ref->next_msn + 1 : cend;

    /* The Period holding `first` began at the newest flagged segment at or before it. */
    uint64_t pmsn = first;
    int found = 0;
    for (uint64_t m = first + 1; m > ref->first_msn && !found; m--)
        if (flagged(v, m - 1)) {
            pmsn = m - 1;
            found = 1;
        }
    /* Events before the first listed segment are outside the MPD's span. */
    size_t dr = 0;
    while (dr < o->ndateranges &&
           o->dateranges[dr].start_ms < hls_track_segment(ref, first)->pdt_ms)
        dr++;
    for (uint64_t from = first; from < lend;) {
        uint64_t to = from + 1;
        while (to < lend && !(to < ref->next_msn && flagged(v, to)))
            to++;
        int64_t pstart = found ? hls_track_segment(ref, pmsn)->start : 0;
        sw_str_printf(out, "  <Period id=\"%llu\"", found ? (unsigned long long)pmsn : 0ULL);
        put_dur(out, "start", (uint64_t)rescale(pstart, ref->timescale, 1000));
        sw_str_puts(out, ">\n");
        /* Events are placed by complete segments; those later wait for the next MPD. */
        if (from < cend)
            dr = put_events(out, o, dr, ref, from, to < cend ? to : cend, pstart);
        for (int k = 0; k < HLS_NTRACKS; k++)
            if (usable(v->tracks[k]))
                put_adaptation(out, v, v->tracks[k], from, to, live, pstart, ref->timescale);
        sw_str_puts(out, "  </Period>\n");
        from = pmsn = to;
        found = 1;
    }

    if (o->utc_timing_url != NULL) {
        sw_str_puts(out, "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"");
        put_escaped(out, o->utc_timing_url);
        sw_str_puts(out, "\"/>\n");
    } else {
        sw_str_printf(out,
                      "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"%s\"/>\n",
                      sw_iso8601(o->now_ms, iso, sizeof(iso)));
    }
    sw_str_puts(out, "</MPD>\n");

    return hls__render_done(out, len0);
}
