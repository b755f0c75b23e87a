/*
 * hls_playlist.c: the multivariant playlist, the LL-HLS media playlists (RFC 8216bis with the
 * low-latency extensions) and the blocking-reload decision that goes with them.
 *
 * Everything here reads an hls_view_t and appends text; nothing keeps state between calls, so a
 * playlist is a pure function of the timeline. The media playlist is built in three passes over
 * the listed segments: choose the range (live window or DVR), decide which segments keep their
 * EXT-X-PART lines and which are skipped by a delta update, then print.
 */
#include <stdio.h>
#include <string.h>

#include "hls/hls.h"
#include "hls_int.h"
#include "sw/sw.h"

#define DEFAULT_WINDOW_SEGMENTS 6

static int present(const hls_track_t *t)
{
    return t != NULL && t->codec != HLS_CODEC_NONE && t->timescale != 0;
}

static const char *dir_of(int kind)
{
    return kind == HLS_AUDIO ? "a" : "v";
}

/* One past the last complete segment. Only the newest retained segment may be in progress. */
uint64_t hls__complete_end(const hls_track_t *t)
{
    if (t->ring_cap == 0 || t->next_msn == t->first_msn)
        return t->first_msn;
    return hls_track_segment(t, t->next_msn - 1)->complete ? t->next_msn : t->next_msn - 1;
}

/*
 * The newest part a playlist of `t` lists: (msn, part), or (msn, none) for a complete segment
 * without parts. Returns 0 when the track has nothing listable yet.
 */
static int last_part(const hls_track_t *t, uint64_t *msn, uint32_t *part, int *has_part)
{
    if (hls__complete_end(t) == t->first_msn)
        return 0; /* the renderer answers HLS_ERR_AGAIN until a segment is complete */
    for (uint64_t m = t->next_msn; m > t->first_msn && m + 2 > t->next_msn; m--) {
        const hls_segment_t *seg = hls_track_segment(t, m - 1);
        if (seg->nparts > 0 || seg->complete) {
            *msn = m - 1;
            *has_part = seg->nparts > 0;
            *part = seg->nparts > 0 ? seg->nparts - 1 : 0;
            return 1;
        }
    }
    return 0;
}

int hls__render_done(sw_str_t *out, size_t len0)
{
    if (!out->failed)
        return 0;
    out->len = len0;
    if (out->p != NULL)
        out->p[len0] = '\0';
    return HLS_ERR_NOMEM;
}

uint64_t hls__list_from(const hls_track_t *t, int dvr)
{
    uint64_t m = t->first_msn;
    while (!dvr && m < t->next_msn && hls_track_segment(t, m)->restored)
        m++;
    return m;
}

/* Peak bits/s of a track: the packager's figure, else measured, else a guess from the codec. */
uint64_t hls__peak_bandwidth(const hls_track_t *t)
{
    uint64_t bw = t->bandwidth, cend = hls__complete_end(t);

    /* The last few segments only: a DVR timeline holds thousands. */
    for (uint64_t m = cend - t->first_msn > 16 ? cend - 16 : t->first_msn;
         t->bandwidth == 0 && m < cend; m++) {
        const hls_segment_t *seg = hls_track_segment(t, m);
        if (seg->duration > 0 && seg->bytes * 8 * t->timescale / seg->duration > bw)
            bw = seg->bytes * 8 * t->timescale / seg->duration;
    }
    if (bw != 0)
        return bw;
    if (t->kind == HLS_AUDIO)
        return t->codec == HLS_CODEC_OPUS ? 96000 : 128000;
    /* About 0.1 bit per pixel at 30 frames a second, which is what x264 needs for fair quality. */
    bw = (uint64_t)t->width * t->height * 3;
    if (bw == 0)
        return 2000000;
    return bw > 300000 ? bw : 300000;
}

/* Track codecs string, or a common default when the packager has not filled it (never empty). */
static const char *codecs_of(const hls_track_t *t)
{
    if (t->codecs[0] != '\0')
        return t->codecs;
    switch (t->codec) {
    case HLS_CODEC_HEVC:
        return "hvc1.1.6.L93.B0";
    case HLS_CODEC_AAC:
        return "mp4a.40.2";
    case HLS_CODEC_OPUS:
        return "opus";
    default:
        return "avc1.64001f";
    }
}

int hls_render_multivariant(const hls_view_t *v, const hls_render_opts_t *o, sw_str_t *out)
{
    const hls_track_t *vt = present(v->tracks[HLS_VIDEO]) ? v->tracks[HLS_VIDEO] : NULL;
    const hls_track_t *at = present(v->tracks[HLS_AUDIO]) ? v->tracks[HLS_AUDIO] : NULL;
    const char *q = o != NULL && o->dvr ? "?dvr=1" : "";
    size_t len0 = out->len;

    /* A declared track without an init segment is waited for rather than left out: a player reads
     * the multivariant playlist once, and one that saw only audio would never show the video. */
    if ((vt == NULL && at == NULL) || (vt != NULL && vt->init == NULL) ||
        (at != NULL && at->init == NULL))
        return HLS_ERR_AGAIN;

    sw_str_puts(out, "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if (vt != NULL && at != NULL) {
        sw_str_puts(out, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,"
                         "AUTOSELECT=YES");
        if (at->channels != 0)
            sw_str_printf(out, ",CHANNELS=\"%u\"", at->channels);
        sw_str_printf(out, ",URI=\"a.m3u8%s\"\n", q);
    }
    if (vt != NULL) {
        uint64_t bw = hls__peak_bandwidth(vt) + (at != NULL ? hls__peak_bandwidth(at) : 0);
        sw_str_printf(out, "#EXT-X-STREAM-INF:BANDWIDTH=%llu,CODECS=\"%s%s%s\"",
                      (unsigned long long)bw, codecs_of(vt), at != NULL ? "," : "",
                      at != NULL ? codecs_of(at) : "");
        if (vt->width != 0 && vt->height != 0)
            sw_str_printf(out, ",RESOLUTION=%ux%u", vt->width, vt->height);
        if (at != NULL)
            sw_str_puts(out, ",AUDIO=\"aud\"");
        sw_str_printf(out, "\nv.m3u8%s\n", q);
    } else {
        sw_str_printf(out, "#EXT-X-STREAM-INF:BANDWIDTH=%llu,CODECS=\"%s\"\na.m3u8%s\n",
                      (unsigned long long)hls__peak_bandwidth(at), codecs_of(at), q);
    }
    return hls__render_done(out, len0);
}

/* What one media playlist lists, decided before anything is printed. */
typedef struct listing {
    uint64_t first;      /* EXT-X-MEDIA-SEQUENCE */
    uint64_t end;        /* one past the last listed segment (the in-progress one included) */
    uint64_t parts_from; /* segments from here on keep their EXT-X-PART lines */
    uint64_t skipped;    /* whole segments replaced by EXT-X-SKIP, from `first` on */
    uint32_t target_s;   /* EXT-X-TARGETDURATION */
    uint32_t part_ms;    /* EXT-X-PART-INF:PART-TARGET, in milliseconds */
    uint64_t disc_seq;   /* EXT-X-DISCONTINUITY-SEQUENCE */
} listing_t;

/* EXT-X-TARGETDURATION for a longest segment of `maxd` (timescale `ts`): rounded to the nearest
 * second, never below the target, at least 1. */
static uint32_t target_seconds(const hls_view_t *v, uint64_t maxd, uint64_t ts)
{
    uint32_t s = (uint32_t)((maxd + ts / 2) / ts);
    if (s < (v->cfg.segment_ms + 500) / 1000)
        s = (v->cfg.segment_ms + 500) / 1000;
    return s != 0 ? s : 1;
}

static void plan(const hls_view_t *v, const hls_track_t *t, const hls_render_opts_t *o,
                 listing_t *l)
{
    uint64_t cend = hls__complete_end(t);
    uint32_t window = o->window_segments != 0 ? o->window_segments : DEFAULT_WINDOW_SEGMENTS;
    uint64_t ts = t->timescale;

    uint64_t from = hls__list_from(t, o->dvr);
    l->first = o->dvr || cend - from <= window ? from : cend - window;
    l->end = t->next_msn;

    /* EXT-X-TARGETDURATION: the longest segment ever, rounded to the nearest second, never below
     * the target. Every EXTINF, rounded to the nearest integer, must stay at or below it (RFC 8216
     * 4.3.3.1); rounding up instead would turn 2.002 s segments at 29.97 fps into a 3 s target and
     * make players hold back further than they need. */
    uint64_t maxd = t->max_duration, maxp = t->max_part_duration;
    for (uint64_t m = l->first; m < l->end; m++) {
        const hls_segment_t *seg = hls_track_segment(t, m);
        if (m < cend && seg->duration > maxd)
            maxd = seg->duration;
        for (uint32_t i = 0; i < seg->nparts; i++)
            if (seg->parts[i].duration > maxp)
                maxp = seg->parts[i].duration;
    }
    l->target_s = target_seconds(v, maxd, ts);
    l->part_ms = (uint32_t)((maxp * 1000 + ts - 1) / ts);
    if (l->part_ms < v->cfg.part_ms)
        l->part_ms = v->cfg.part_ms;
    if (l->part_ms == 0)
        l->part_ms = 1000;

    /* Parts are listed for the segments that end less than three target durations before the end
     * of the playlist (RFC 8216bis 6.2.2), and always for the one in progress. */
    uint64_t dist = 0, limit = 3 * (uint64_t)l->target_s * ts;
    l->parts_from = l->end;
    for (uint64_t m = l->end; m > l->first && dist < limit; m--) {
        l->parts_from = m - 1;
        dist += hls_track_segment(t, m - 1)->duration;
    }

    /* Approximation: only discontinuities still in the retained timeline are counted, so the
     * number drops when a flagged segment leaves the DVR window (hours later for a live client). */
    l->disc_seq = 0;
    for (uint64_t m = t->first_msn; m < l->first; m++)
        l->disc_seq += hls_track_segment(t, m)->discontinuity != 0;

    /* A delta update (_HLS_skip) replaces the oldest whole segments that end at least
     * CAN-SKIP-UNTIL (six target durations) before the end of the playlist. It stops at the first
     * discontinuity: clients such as hls.js count EXT-X-DISCONTINUITY tags from
     * EXT-X-DISCONTINUITY-SEQUENCE and would misnumber what follows a skipped one. */
    l->skipped = 0;
    if (o->skip) {
        uint64_t total = 0, elapsed = 0, until = 6 * (uint64_t)l->target_s * ts;
        for (uint64_t m = l->first; m < l->end; m++)
            total += hls_track_segment(t, m)->duration;
        for (uint64_t m = l->first; m < cend && m < l->parts_from; m++) {
            const hls_segment_t *seg = hls_track_segment(t, m);
            elapsed += seg->duration;
            if (seg->discontinuity || total - elapsed < until)
                break;
            l->skipped++;
        }
    }
}

static void print_secs(sw_str_t *out, uint64_t d, uint32_t ts)
{
    sw_str_printf(out, "%.5f", (double)d / ts);
}

/* An HLS quoted-string may not hold '"', CR or LF (RFC 8216bis 4.2); we also keep it printable. */
static int attr_safe(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (*s < 0x20 || *s > 0x7e || *s == '"')
            return 0;
    return 1;
}

static void put_base64(sw_str_t *out, const char *s)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    char q[4];

    for (; n >= 3; p += 3, n -= 3) {
        q[0] = tab[p[0] >> 2];
        q[1] = tab[(p[0] & 3) << 4 | p[1] >> 4];
        q[2] = tab[(p[1] & 15) << 2 | p[2] >> 6];
        q[3] = tab[p[2] & 63];
        sw_str_append(out, q, 4);
    }
    if (n > 0) {
        q[0] = tab[p[0] >> 2];
        q[1] = tab[(p[0] & 3) << 4 | (n > 1 ? p[1] >> 4 : 0)];
        q[2] = n > 1 ? tab[(p[1] & 15) << 2] : '=';
        q[3] = '=';
        sw_str_append(out, q, 4);
    }
}

/*
 * Prints the dateranges from index `i` on whose start is before `until` (or at it, with
 * `inclusive`); returns the index of the first one not printed.
 */
static size_t put_dateranges(sw_str_t *out, const hls_render_opts_t *o, size_t i, int64_t until,
                             int inclusive)
{
    char iso[40];

    for (; i < o->ndateranges; i++) {
        const hls_daterange_t *d = &o->dateranges[i];
        if (d->start_ms > until || (d->start_ms == until && !inclusive))
            break;
        if (!attr_safe(d->id) || !attr_safe(d->type))
            continue;
        sw_str_printf(out,
                      "#EXT-X-DATERANGE:ID=\"%s\",CLASS=\"" HLS_DATERANGE_CLASS
                      "\",START-DATE=\"%s\",X-SW-TYPE=\"%s\",X-SW-DATA=\"",
                      d->id, sw_iso8601(d->start_ms, iso, sizeof(iso)), d->type);
        put_base64(out, d->data != NULL ? d->data : "");
        sw_str_puts(out, "\"\n");
    }
    return i;
}

int hls_render_media(const hls_view_t *v, int kind, const hls_render_opts_t *o, sw_str_t *out)
{
    static const hls_render_opts_t defaults;
    const hls_track_t *t;
    const char *dir = dir_of(kind);
    size_t len0 = out->len;
    listing_t l;
    char pdt[40];

    if (o == NULL)
        o = &defaults;
    if (kind != HLS_VIDEO && kind != HLS_AUDIO)
        return HLS_ERR_NOT_FOUND;
    if (!present(t = v->tracks[kind]) || t->ring_cap == 0)
        return HLS_ERR_NOT_FOUND;
    if (hls__complete_end(t) <= hls__list_from(t, o->dvr))
        return HLS_ERR_AGAIN;
    plan(v, t, o, &l);

    sw_str_printf(out,
                  "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:%u\n"
                  "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%u.%03u,"
                  "CAN-SKIP-UNTIL=%u.0\n"
                  "#EXT-X-PART-INF:PART-TARGET=%u.%03u\n"
                  "#EXT-X-MEDIA-SEQUENCE:%llu\n#EXT-X-DISCONTINUITY-SEQUENCE:%llu\n",
                  l.target_s, 3 * l.part_ms / 1000, 3 * l.part_ms % 1000, 6 * l.target_s,
                  l.part_ms / 1000, l.part_ms % 1000, (unsigned long long)l.first,
                  (unsigned long long)l.disc_seq);
    /* Dateranges before the first listed segment's PDT are outside the span. */
    size_t dr = 0;
    int64_t span_from = hls_track_segment(t, l.first)->pdt_ms;
    while (dr < o->ndateranges && o->dateranges[dr].start_ms < span_from)
        dr++;
    if (l.skipped > 0) {
        sw_str_printf(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%llu\n", (unsigned long long)l.skipped);
        /* Without CAN-SKIP-DATERANGES a delta update keeps every EXT-X-DATERANGE (RFC 8216bis
         * 6.2.5.1): those of the skipped segments stand here. */
        dr = put_dateranges(out, o, dr, hls_track_segment(t, l.first + l.skipped)->pdt_ms, 0);
    }

    uint32_t gen = 0;
    for (uint64_t m = l.first + l.skipped; m < l.end; m++) {
        const hls_segment_t *seg = hls_track_segment(t, m);
        int complete = seg->complete || m + 1 < l.end;
        if (!complete && seg->nparts == 0)
            break; /* the next segment has begun but has no part yet: only the hint shows it */
        if (seg->discontinuity)
            sw_str_puts(out, "#EXT-X-DISCONTINUITY\n");
        /* After EXT-X-SKIP the map is repeated, as the skipped segments carried it. */
        if (m == l.first + l.skipped || seg->init_gen != gen)
            sw_str_printf(out, "#EXT-X-MAP:URI=\"%s/init-%u.mp4\"\n", dir, seg->init_gen);
        gen = seg->init_gen;
        sw_str_printf(out, "#EXT-X-PROGRAM-DATE-TIME:%s\n",
                      sw_iso8601(seg->pdt_ms, pdt, sizeof(pdt)));
        /* This segment's dateranges: up to the next listed segment's PDT (a gap before a
         * discontinuity belongs to the segment before it), or up to its own end for the last. */
        const hls_segment_t *next = m + 1 < l.end ? hls_track_segment(t, m + 1) : NULL;
        if (next != NULL && (next->complete || m + 2 < l.end || next->nparts > 0))
            dr = put_dateranges(out, o, dr, next->pdt_ms, 0);
        else
            dr = put_dateranges(out, o, dr,
                                seg->pdt_ms + (int64_t)(seg->duration * 1000 / t->timescale), 1);
        if (m >= l.parts_from) {
            for (uint32_t i = 0; i < seg->nparts; i++) {
                sw_str_puts(out, "#EXT-X-PART:DURATION=");
                print_secs(out, seg->parts[i].duration, t->timescale);
                sw_str_printf(out, ",URI=\"%s/%llu.%u.m4s\"%s\n", dir, (unsigned long long)m, i,
                              seg->parts[i].independent ? ",INDEPENDENT=YES" : "");
            }
        }
        if (complete) {
            if (seg->gap)
                sw_str_puts(out, "#EXT-X-GAP\n");
            sw_str_puts(out, "#EXTINF:");
            print_secs(out, seg->duration, t->timescale);
            sw_str_printf(out, ",\n%s/%llu.m4s\n", dir, (unsigned long long)m);
        }
    }

    const hls_segment_t *last = hls_track_segment(t, l.end - 1);
    if (last->complete)
        sw_str_printf(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"%s/%llu.0.m4s\"\n", dir,
                      (unsigned long long)l.end);
    else
        sw_str_printf(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"%s/%llu.%u.m4s\"\n", dir,
                      (unsigned long long)(l.end - 1), last->nparts);

    int other = kind == HLS_VIDEO ? HLS_AUDIO : HLS_VIDEO;
    const hls_track_t *ot = v->tracks[other];
    uint64_t omsn;
    uint32_t opart;
    int ohas_part;
    if (present(ot) && ot->ring_cap != 0 && last_part(ot, &omsn, &opart, &ohas_part)) {
        sw_str_printf(out, "#EXT-X-RENDITION-REPORT:URI=\"%s.m3u8%s\",LAST-MSN=%llu", dir_of(other),
                      o->dvr ? "?dvr=1" : "", (unsigned long long)omsn);
        if (ohas_part)
            sw_str_printf(out, ",LAST-PART=%u", opart);
        sw_str_puts(out, "\n");
    }

    return hls__render_done(out, len0);
}

int hls_render_clip(const hls_view_t *v, int kind, uint64_t first, uint64_t last, sw_str_t *out)
{
    const hls_track_t *t;
    const char *dir = dir_of(kind);
    size_t len0 = out->len;
    char pdt[40];

    if (kind != HLS_VIDEO && kind != HLS_AUDIO)
        return HLS_ERR_NOT_FOUND;
    if (!present(t = v->tracks[kind]) || t->ring_cap == 0 || first > last || first < t->first_msn ||
        last >= t->next_msn)
        return HLS_ERR_NOT_FOUND;
    if (last >= hls__complete_end(t))
        return HLS_ERR_AGAIN;

    /* EXT-X-TARGETDURATION: the clip's longest segment (target_seconds()). */
    uint64_t maxd = 0, ts = t->timescale;
    for (uint64_t m = first; m <= last; m++)
        if (hls_track_segment(t, m)->duration > maxd)
            maxd = hls_track_segment(t, m)->duration;
    uint32_t target_s = target_seconds(v, maxd, ts);

    /* The segment names are the live ones: a clip's folder holds the DVR's files as they are. */
    sw_str_printf(out,
                  "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:%u\n"
                  "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
                  "#EXT-X-MEDIA-SEQUENCE:%llu\n",
                  target_s, (unsigned long long)first);
    uint32_t gen = 0;
    for (uint64_t m = first; m <= last; m++) {
        const hls_segment_t *seg = hls_track_segment(t, m);
        if (seg->discontinuity && m != first)
            sw_str_puts(out, "#EXT-X-DISCONTINUITY\n");
        if (m == first || seg->init_gen != gen)
            sw_str_printf(out, "#EXT-X-MAP:URI=\"%s/init-%u.mp4\"\n", dir, seg->init_gen);
        gen = seg->init_gen;
        sw_str_printf(out, "#EXT-X-PROGRAM-DATE-TIME:%s\n",
                      sw_iso8601(seg->pdt_ms, pdt, sizeof(pdt)));
        if (seg->gap)
            sw_str_puts(out, "#EXT-X-GAP\n");
        sw_str_puts(out, "#EXTINF:");
        print_secs(out, seg->duration, t->timescale);
        sw_str_printf(out, ",\n%s/%llu.m4s\n", dir, (unsigned long long)m);
    }
    sw_str_puts(out, "#EXT-X-ENDLIST\n");
    return hls__render_done(out, len0);
}

/*
 * RFC 8216bis 6.2.5.2: with _HLS_msn=M alone the request waits until segment M is complete; with
 * _HLS_part=P too, until part P of segment M, or any later part, is listed. Anything more than two
 * segments past the last one listed is a client error. A segment that already left the timeline is
 * in the past: the current playlist answers it.
 */
int hls_track_block_state(const hls_track_t *t, const hls_query_t *q)
{
    uint64_t lmsn, limit;
    uint32_t lpart;
    int lhas_part;

    if (!q->has_msn || !present(t) || t->ring_cap == 0)
        return HLS_BLOCK_READY;
    int listed = last_part(t, &lmsn, &lpart, &lhas_part);
    /* With nothing listed yet, the segment being written (next_msn - 1, or next_msn) counts as
     * the last one. */
    limit = listed ? lmsn + 2 : t->next_msn + 1;
    if (q->msn > limit)
        return HLS_BLOCK_BAD;
    if (!listed)
        return HLS_BLOCK_WAIT;
    if (q->msn < t->first_msn)
        return HLS_BLOCK_READY;
    if (!q->has_part)
        return q->msn < hls__complete_end(t) ? HLS_BLOCK_READY : HLS_BLOCK_WAIT;
    if (q->msn < lmsn)
        return HLS_BLOCK_READY; /* a later segment has parts, so a later part exists */
    if (q->msn > lmsn)
        return HLS_BLOCK_WAIT;
    return lhas_part && q->part <= lpart ? HLS_BLOCK_READY : HLS_BLOCK_WAIT;
}
