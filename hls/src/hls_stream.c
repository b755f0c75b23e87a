/*
 * hls_stream.c: the segmenter. Takes access units with MPEG-TS times, maps them onto one output
 * timeline shared by both tracks, and cuts CMAF chunks (parts) and segments.
 *
 * Time, in three steps. (1) Unwrap: a 33-bit dts becomes a 64-bit one relative to the last
 * forward-moving reference, so a wrap at 2^33 is just a small step. (2) Offset: the first sample
 * after the start or a discontinuity fixes `offset90` so that it lands at max(end of what was
 * already published, wall clock since origin); both tracks use the same offset, which keeps them
 * in sync. With a video track the anchor is the first video keyframe, and audio waits for it so
 * that audio and video segment n cover the same time. (3) Scale: video stays in 90 kHz, audio goes
 * to its sample rate and is snapped onto the exact end of the previous frame when within one frame
 * of it, so AAC durations and tfdt stay exact despite PES jitter.
 *
 * Cuts. Video starts a segment at a keyframe once the open one lasted the target (minus half a
 * frame) and queues the cut time; audio closes its segment at its first sample at or past the
 * queued time, so msn n means the same time span in both tracks. A part is closed as soon as the
 * next sample (predicted to last as long as the previous one) would not fit, which publishes it
 * one frame earlier than waiting for the next sample would.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hls_int.h"
#include "sw/log.h"

#define TS_MASK       ((INT64_C(1) << 33) - 1)
#define TS_HALF       (INT64_C(1) << 32)
#define NCUTS         32    /* video cuts the audio track has not reached yet */
#define BW_WINDOW     6     /* complete segments the bandwidth peak looks at */
#define STEP_BACK_90K 45000 /* a dts going back by less than 500 ms drops the sample only */

typedef struct trk {
    /* codec configuration */
    hls_psets_t ps;
    hls_sps_info_t si;
    hls_asc_t asc;
    uint8_t asc_bytes[8];
    size_t asc_len;
    hls_opus_head_t opus;
    int configured;      /* an init segment exists */
    int need_key;        /* video: drop until a keyframe */
    int drop_logged;     /* the current run of drops was logged */
    int64_t drop_log_ms; /* wall clock of the last drop line */
    uint64_t drops_unlogged;

    /* time */
    int have_last;
    int64_t last_in90; /* unwrapped input dts of the last accepted sample */
    int have_end;
    int64_t end;       /* output time where the last accepted sample ends (track timescale) */
    int64_t last_dts;  /* output dts of the last accepted sample */
    int run;           /* the next sample continues the last one (no discontinuity between) */
    uint32_t last_dur; /* its duration as written (or predicted) */

    /* the open part */
    hls_buf_t mdat;
    hls_sample_t *samples;
    size_t nsamples, samples_cap;
    int64_t part_dts;
    uint64_t part_dur;
    uint32_t frag_seq;
    int seg_open;
    int pending_disc;
    uint64_t mem_msn; /* segments below this have had their bytes freed */

    /* audio: video cut times (90 kHz output) still ahead */
    int64_t cuts[NCUTS];
    unsigned cut_head, ncuts;

    hls_buf_t scratch; /* one converted access unit */
    hls_buf_t out;     /* the chunk or init being written */
} trk_t;

struct hls_stream {
    hls_stream_config_t cfg;
    hls_stream_cbs_t cbs;
    void *cbdata;
    hls_track_t tracks[HLS_NTRACKS];
    trk_t t[HLS_NTRACKS];
    hls_stream_stats_t stats;
    int fatal; /* ran out of memory half-way: the stream is dead */

    int have_ref;
    int64_t ref_raw, ref_unw; /* unwrapping reference */
    int have_offset;
    int64_t offset90;
    int64_t origin_ms;
    int64_t last_now_ms;
    int64_t edge_ms;   /* PDT of the newest sample placed */
    int forced_logged; /* forced_cut() logged once, at forced_log_ms */
    int64_t forced_log_ms;
};

const char *hls_strerror(int rv)
{
    switch (rv) {
    case HLS_OK:
        return "success";
    case HLS_ERR_NOMEM:
        return "out of memory";
    case HLS_ERR_INVAL:
        return "invalid argument";
    case HLS_ERR_BITSTREAM:
        return "malformed codec data";
    case HLS_ERR_UNSUPPORTED:
        return "unsupported codec or feature";
    case HLS_ERR_NOT_FOUND:
        return "not found";
    case HLS_ERR_TOO_BIG:
        return "too big";
    case HLS_ERR_AGAIN:
        return "not enough input yet";
    default:
        return "unknown error";
    }
}

void hls_stream_config_init(hls_stream_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->segment_ms = 2000;
    cfg->part_ms = 334;
    cfg->window_ms = 7200000;
    cfg->mem_segments = 8;
    cfg->max_gap_ms = 5000;
}

static void logf_(hls_stream_t *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void logf_(hls_stream_t *s, int level, const char *fmt, ...)
{
    if (s->cbs.on_log == NULL)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->cbs.on_log(s->cbdata, level, msg);
}

static const char *kind_name(int kind)
{
    return kind == HLS_VIDEO ? "video" : "audio";
}

/* a * b / c rounded towards minus infinity, for times that may be negative. */
static int64_t rescale(int64_t v, int64_t num, int64_t den)
{
    int64_t p = v * num;
    return p >= 0 ? p / den : -((-p + den - 1) / den);
}

/* ---- the segment ring ---- */

static void segment_dispose(hls_segment_t *seg)
{
    for (uint32_t i = 0; i < seg->nparts; i++)
        sw_rbuf_unref(seg->parts[i].data);
    free(seg->parts);
    memset(seg, 0, sizeof(*seg));
}

static int ring_reserve(hls_track_t *tr)
{
    uint64_t count = tr->next_msn - tr->first_msn;
    if (count + 1 <= tr->ring_cap)
        return 0;
    uint64_t cap = tr->ring_cap ? tr->ring_cap * 2 : 16;
    hls_segment_t *ring = calloc((size_t)cap, sizeof(*ring));
    if (ring == NULL)
        return HLS_ERR_NOMEM;
    /* msn % cap moves with the capacity, so every retained segment is re-indexed. */
    for (uint64_t msn = tr->first_msn; msn < tr->next_msn; msn++)
        ring[msn % cap] = tr->ring[msn % tr->ring_cap];
    free(tr->ring);
    tr->ring = ring;
    tr->ring_cap = cap;
    return 0;
}

static hls_segment_t *seg_at(hls_track_t *tr, uint64_t msn)
{
    return &tr->ring[msn % tr->ring_cap];
}

static void update_bandwidth(hls_track_t *tr)
{
    uint64_t peak = 0;
    int complete = 0;
    for (uint64_t msn = tr->next_msn; msn > tr->first_msn && complete < BW_WINDOW; msn--) {
        hls_segment_t *seg = seg_at(tr, msn - 1);
        if (!seg->complete || seg->duration == 0 || seg->gap)
            continue;
        complete++;
        uint64_t bps = seg->bytes * 8 * tr->timescale / seg->duration;
        if (bps > peak)
            peak = bps;
    }
    if (complete == 0 && tr->next_msn > tr->first_msn) {
        /* Nothing complete yet: estimate from the parts of the open segment. */
        hls_segment_t *seg = seg_at(tr, tr->next_msn - 1);
        if (seg->duration > 0)
            peak = seg->bytes * 8 * tr->timescale / seg->duration;
        else if (seg->bytes > 0)
            peak = seg->bytes * 8;
    }
    if (peak > UINT32_MAX)
        peak = UINT32_MAX;
    if (peak > 0 || complete > 0)
        tr->bandwidth = peak > 0 ? (uint32_t)peak : 1;
}

/* Drops what fell out of the window and frees the bytes of segments beyond mem_segments. */
static void retain(hls_stream_t *s, int kind)
{
    hls_track_t *tr = &s->tracks[kind];
    trk_t *t = &s->t[kind];

    hls_segment_t *last = seg_at(tr, tr->next_msn - 1);
    int64_t cutoff =
        last->start + (int64_t)last->duration - (int64_t)s->cfg.window_ms * tr->timescale / 1000;
    while (tr->first_msn + 1 < tr->next_msn) {
        hls_segment_t *seg = seg_at(tr, tr->first_msn);
        if (!seg->complete || seg->start + (int64_t)seg->duration > cutoff)
            break;
        uint64_t msn = tr->first_msn++;
        segment_dispose(seg);
        if (s->cbs.on_expire != NULL)
            s->cbs.on_expire(s->cbdata, kind, msn);
    }
    if (t->mem_msn < tr->first_msn)
        t->mem_msn = tr->first_msn;
    while (t->mem_msn + s->cfg.mem_segments < tr->next_msn) {
        hls_segment_t *seg = seg_at(tr, t->mem_msn);
        if (!seg->complete)
            break;
        for (uint32_t i = 0; i < seg->nparts; i++) {
            sw_rbuf_unref(seg->parts[i].data);
            seg->parts[i].data = NULL;
        }
        t->mem_msn++;
    }
}

/* ---- parts and segments ---- */

static int flush_part(hls_stream_t *s, int kind)
{
    hls_track_t *tr = &s->tracks[kind];
    trk_t *t = &s->t[kind];

    if (t->nsamples == 0)
        return 0;
    hls_segment_t *seg = seg_at(tr, tr->next_msn - 1);
    if (seg->nparts == seg->parts_cap) {
        uint32_t cap = seg->parts_cap ? seg->parts_cap * 2 : 8;
        hls_part_t *parts = realloc(seg->parts, cap * sizeof(*parts));
        if (parts == NULL)
            return HLS_ERR_NOMEM;
        seg->parts = parts;
        seg->parts_cap = cap;
    }
    hls__buf_reset(&t->out);
    hls__cmaf_fragment(&t->out, ++t->frag_seq, 1, (uint64_t)t->part_dts, t->samples, t->nsamples,
                       kind == HLS_VIDEO, t->mdat.p, t->mdat.len);
    if (t->out.failed)
        return HLS_ERR_NOMEM;
    sw_rbuf_t *data = sw_rbuf_copy(t->out.p, t->out.len);
    if (data == NULL)
        return HLS_ERR_NOMEM;
    hls_part_t *part = &seg->parts[seg->nparts++];
    part->duration = (uint32_t)t->part_dur;
    part->independent = t->samples[0].sync;
    part->data = data;
    seg->duration += t->part_dur;
    seg->bytes += data->len;
    if (t->part_dur > tr->max_part_duration)
        tr->max_part_duration = t->part_dur;
    t->nsamples = 0;
    t->part_dur = 0;
    hls__buf_reset(&t->mdat);
    s->stats.parts++;
    update_bandwidth(tr);
    if (s->cbs.on_part != NULL)
        s->cbs.on_part(s->cbdata, kind, seg, seg->nparts - 1);
    return 0;
}

static int close_segment(hls_stream_t *s, int kind)
{
    hls_track_t *tr = &s->tracks[kind];
    trk_t *t = &s->t[kind];

    if (!t->seg_open)
        return 0;
    int rv = flush_part(s, kind);
    if (rv != 0)
        return rv;
    hls_segment_t *seg = seg_at(tr, tr->next_msn - 1);
    seg->complete = 1;
    t->seg_open = 0;
    if (seg->duration > tr->max_duration)
        tr->max_duration = seg->duration;
    s->stats.segments++;
    update_bandwidth(tr);
    if (s->cbs.on_segment != NULL)
        s->cbs.on_segment(s->cbdata, kind, seg);
    retain(s, kind);
    return 0;
}

static int open_segment(hls_stream_t *s, int kind, int64_t dts)
{
    hls_track_t *tr = &s->tracks[kind];
    trk_t *t = &s->t[kind];

    if (ring_reserve(tr) != 0)
        return HLS_ERR_NOMEM;
    hls_segment_t *seg = seg_at(tr, tr->next_msn);
    memset(seg, 0, sizeof(*seg));
    seg->msn = tr->next_msn;
    seg->start = dts;
    seg->pdt_ms = s->origin_ms + rescale(dts, 1000, tr->timescale);
    seg->init_gen = tr->init_gen;
    seg->discontinuity = (uint8_t)t->pending_disc;
    t->pending_disc = 0;
    tr->next_msn++;
    t->seg_open = 1;
    return 0;
}

static void push_cut(trk_t *a, int64_t t90)
{
    if (a->ncuts == NCUTS) { /* audio is far behind: forget the oldest cut */
        a->cut_head = (a->cut_head + 1) % NCUTS;
        a->ncuts--;
    }
    a->cuts[(a->cut_head + a->ncuts) % NCUTS] = t90;
    a->ncuts++;
}

/* Video segment `msn` reached max_segment_ms without a keyframe: it is cut anyway. Logged the
 * first time and then once a minute, with the count, since an encoder that sends no keyframes
 * does so all along. */
static void forced_cut(hls_stream_t *s, int64_t age, uint32_t timescale, uint64_t msn)
{
    s->stats.forced_cuts++;
    if (s->forced_logged && s->last_now_ms - s->forced_log_ms < 60000)
        return;
    logf_(s, SW_LOG_WARN,
          "video: no keyframe for %.1f s: segment %llu cut without one (%llu such cuts); the "
          "next segment starts with a frame that needs earlier ones, so a player that joins there "
          "shows nothing until a keyframe. Set the encoder's keyframe interval to the segment "
          "duration (%.1f s)",
          (double)age / timescale, (unsigned long long)msn,
          (unsigned long long)s->stats.forced_cuts, s->cfg.segment_ms / 1000.0);
    s->forced_logged = 1;
    s->forced_log_ms = s->last_now_ms;
}

/* Adds one sample at output time `dts` (track timescale); cuts parts and segments around it. */
static int add_sample(hls_stream_t *s, int kind, int64_t dts, int32_t cto, uint32_t dur, int sync,
                      const uint8_t *data, size_t len)
{
    hls_track_t *tr = &s->tracks[kind];
    trk_t *t = &s->t[kind];
    uint64_t part_len = (uint64_t)s->cfg.part_ms * tr->timescale / 1000;
    uint64_t seg_len = (uint64_t)s->cfg.segment_ms * tr->timescale / 1000;
    uint64_t max_ms = s->cfg.max_segment_ms ? s->cfg.max_segment_ms : 4ull * s->cfg.segment_ms;
    uint64_t max_len = max_ms * tr->timescale / 1000;
    int rv;

    if (t->run && kind == HLS_VIDEO) {
        /* Now the previous frame's real duration is known; fix it while its part is open, unless
         * that would push the part over the target (then the next tfdt carries the difference). */
        int64_t actual = dts - t->last_dts;
        if (actual > 0 && actual <= INT32_MAX) {
            if (t->nsamples > 0) {
                hls_sample_t *last = &t->samples[t->nsamples - 1];
                uint64_t nd = t->part_dur - last->duration + (uint64_t)actual;
                if (nd <= part_len || t->nsamples == 1) {
                    t->part_dur = nd;
                    last->duration = (uint32_t)actual;
                    t->last_dur = (uint32_t)actual;
                }
            }
            if (dur == 0)
                dur = (uint32_t)actual;
        }
    }
    if (dur == 0)
        dur = t->last_dur ? t->last_dur : 3000;
    /* Samples in one trun are back to back: a gap or an overlap needs a fresh tfdt. */
    if (t->nsamples > 0 && dts != t->last_dts + t->last_dur && (rv = flush_part(s, kind)) != 0)
        return rv;

    if (t->seg_open) {
        hls_segment_t *seg = seg_at(tr, tr->next_msn - 1);
        int64_t age = dts - seg->start, half = dur / 2;
        int cut;
        if (kind == HLS_VIDEO) {
            cut = age + half >= (int64_t)(sync ? seg_len : max_len);
            if (cut && !sync)
                forced_cut(s, age, tr->timescale, tr->next_msn - 1);
        } else if (s->tracks[HLS_VIDEO].codec != HLS_CODEC_NONE)
            cut = t->ncuts > 0 && rescale(dts, 90000, tr->timescale) >= t->cuts[t->cut_head];
        else
            cut = age + half >= (int64_t)seg_len;
        if (cut) {
            if ((rv = close_segment(s, kind)) != 0)
                return rv;
            if (kind == HLS_AUDIO && t->ncuts > 0) {
                t->cut_head = (t->cut_head + 1) % NCUTS;
                t->ncuts--;
            }
            if (kind == HLS_VIDEO && s->tracks[HLS_AUDIO].codec != HLS_CODEC_NONE)
                push_cut(&s->t[HLS_AUDIO], dts);
        }
    }
    if (t->nsamples > 0 && t->part_dur + dur > part_len && (rv = flush_part(s, kind)) != 0)
        return rv;
    if (!t->seg_open && (rv = open_segment(s, kind, dts)) != 0)
        return rv;

    if (t->nsamples == t->samples_cap) {
        size_t cap = t->samples_cap ? t->samples_cap * 2 : 64;
        hls_sample_t *p = realloc(t->samples, cap * sizeof(*p));
        if (p == NULL)
            return HLS_ERR_NOMEM;
        t->samples = p;
        t->samples_cap = cap;
    }
    hls__put(&t->mdat, data, len);
    if (t->mdat.failed)
        return HLS_ERR_NOMEM;
    if (t->nsamples == 0)
        t->part_dts = dts;
    t->samples[t->nsamples++] = (hls_sample_t){dur, (uint32_t)len, cto, (uint8_t)sync};
    t->part_dur += dur;
    t->last_dts = dts;
    t->last_dur = dur;
    t->end = dts + dur;
    t->have_end = 1;
    t->run = 1;
    s->stats.samples[kind]++;
    s->stats.bytes[kind] += len;

    /* Publish now if a next sample like this one would not fit anyway. */
    if (t->part_dur + dur > part_len)
        return flush_part(s, kind);
    return 0;
}

/* ---- discontinuities ---- */

/*
 * Brings audio to video's next msn. Audio closes segment n - 1 only at its first sample past
 * video's cut n; a discontinuity before that sample (a publisher leaving, a timestamp jump) would
 * leave audio one number behind for good, and an earlier run's audio timeline one number short of
 * video's, which a restart cannot restore. Each missing number becomes a gap segment that spans
 * the time to the end of video's segment.
 */
static int fill_gaps(hls_stream_t *s)
{
    hls_track_t *v = &s->tracks[HLS_VIDEO], *a = &s->tracks[HLS_AUDIO];
    trk_t *t = &s->t[HLS_AUDIO];

    if (v->codec == HLS_CODEC_NONE || a->codec == HLS_CODEC_NONE || a->timescale == 0)
        return 0;
    if (a->next_msn == a->first_msn) {
        /* Nothing published yet: audio simply starts at video's number. */
        if (a->next_msn < v->next_msn)
            a->first_msn = a->next_msn = t->mem_msn = v->next_msn;
        return 0;
    }
    while (a->next_msn < v->next_msn) {
        const hls_segment_t *vs = hls_track_segment(v, a->next_msn);
        if (ring_reserve(a) != 0)
            return HLS_ERR_NOMEM;
        int64_t start = t->end;
        int64_t end =
            vs != NULL ? rescale(vs->start + (int64_t)vs->duration, a->timescale, 90000) : start;
        hls_segment_t *g = seg_at(a, a->next_msn);
        memset(g, 0, sizeof(*g));
        g->msn = a->next_msn++;
        g->start = start;
        g->duration = end > start ? (uint64_t)(end - start) : 0;
        g->pdt_ms = s->origin_ms + rescale(start, 1000, a->timescale);
        g->init_gen = a->init_gen;
        g->complete = 1;
        g->gap = 1;
        t->end = t->last_dts = start + (int64_t)g->duration;
        if (s->cbs.on_segment != NULL)
            s->cbs.on_segment(s->cbdata, HLS_AUDIO, g);
        retain(s, HLS_AUDIO);
    }
    return 0;
}

static int discontinuity(hls_stream_t *s, int64_t now_ms, const char *why)
{
    int rv;

    for (int k = 0; k < HLS_NTRACKS; k++) {
        trk_t *t = &s->t[k];
        if ((rv = close_segment(s, k)) != 0)
            return rv;
        if (s->tracks[k].next_msn > s->cfg.first_msn)
            t->pending_disc = 1;
        t->have_last = 0;
        t->run = 0;
        t->ncuts = 0;
        t->need_key = 1;
        t->drop_logged = 0;
    }
    if ((rv = fill_gaps(s)) != 0)
        return rv;
    s->have_offset = 0;
    s->have_ref = 0;
    s->stats.discontinuities++;
    if (now_ms > s->last_now_ms)
        s->last_now_ms = now_ms;
    logf_(s, SW_LOG_INFO, "discontinuity: %s", why);
    return 0;
}

int hls_stream_restore_segment(hls_stream_t *s, int kind, const hls_segment_t *seg,
                               uint32_t timescale)
{
    if (s == NULL || seg == NULL || kind < 0 || kind >= HLS_NTRACKS || timescale == 0)
        return HLS_ERR_INVAL;
    if (s->fatal)
        return HLS_ERR_NOMEM;
    hls_track_t *tr = &s->tracks[kind];
    trk_t *t = &s->t[kind];
    int empty = tr->next_msn == tr->first_msn;
    if (s->have_offset || t->have_last || seg->msn >= s->cfg.first_msn ||
        (!empty && seg->msn != tr->next_msn) || (!empty && timescale != tr->timescale))
        return HLS_ERR_INVAL;
    if (ring_reserve(tr) != 0)
        return HLS_ERR_NOMEM; /* nothing changed */
    if (empty)
        tr->first_msn = tr->next_msn = t->mem_msn = seg->msn;
    hls_segment_t *r = seg_at(tr, tr->next_msn);
    memset(r, 0, sizeof(*r));
    r->msn = seg->msn;
    r->start = seg->start;
    r->duration = seg->duration;
    r->pdt_ms = seg->pdt_ms;
    r->init_gen = seg->init_gen;
    r->discontinuity = seg->discontinuity;
    r->gap = seg->gap;
    r->bytes = seg->bytes;
    r->complete = 1;
    r->restored = 1;
    tr->next_msn++;
    t->mem_msn = tr->next_msn;
    tr->timescale = timescale;
    if (r->duration > tr->max_duration && !r->gap)
        tr->max_duration = r->duration;
    /* What comes next starts after it, from another publisher session. */
    t->end = t->last_dts = r->start + (int64_t)r->duration;
    t->have_end = 1;
    t->run = 0;
    t->pending_disc = 1;
    return 0;
}

int hls_stream_discontinuity(hls_stream_t *s, int64_t now_ms)
{
    if (s->fatal)
        return HLS_ERR_NOMEM;
    int rv = discontinuity(s, now_ms, "publisher left or came back");
    if (rv != 0)
        s->fatal = 1;
    return rv;
}

/* ---- init segments ---- */

/* Builds the init segment from the track's configuration; a new generation only if it differs. */
static int build_init(hls_stream_t *s, int kind, int *changed)
{
    hls_track_t *tr = &s->tracks[kind];
    trk_t *t = &s->t[kind];
    hls_init_desc_t d;
    hls_buf_t cfg;

    *changed = 0;
    memset(&d, 0, sizeof(d));
    hls__buf_init(&cfg);
    d.codec = tr->codec;
    d.track_id = 1;
    d.timescale = tr->timescale;
    if (kind == HLS_VIDEO) {
        if (tr->codec == HLS_CODEC_HEVC)
            hls__hvcc_build(&cfg, &t->ps, &t->si);
        else
            hls__avcc_build(&cfg, &t->ps, &t->si);
        d.width = t->si.width;
        d.height = t->si.height;
        d.config = cfg.p;
        d.config_len = cfg.len;
    } else {
        d.sample_rate = tr->sample_rate;
        d.channels = tr->channels;
        d.config = t->asc_bytes;
        d.config_len = t->asc_len;
        d.opus = &t->opus;
    }
    hls__buf_reset(&t->out);
    hls__cmaf_init(&t->out, &d);
    hls__buf_dispose(&cfg);
    if (t->out.failed || cfg.failed)
        return HLS_ERR_NOMEM;
    if (tr->init != NULL && tr->init->len == t->out.len &&
        memcmp(tr->init->data, t->out.p, t->out.len) == 0) {
        t->configured = 1;
        return 0;
    }
    sw_rbuf_t *init = sw_rbuf_copy(t->out.p, t->out.len);
    if (init == NULL)
        return HLS_ERR_NOMEM;
    sw_rbuf_unref(tr->init);
    tr->init = init;
    tr->init_gen++;
    t->configured = 1;
    *changed = 1;
    if (s->cbs.on_init != NULL)
        s->cbs.on_init(s->cbdata, kind, tr->init_gen, init);
    return 0;
}

/* Parses the video parameter sets and rebuilds the init segment. */
static int configure_video(hls_stream_t *s, int *changed, const char **err_desc)
{
    hls_track_t *tr = &s->tracks[HLS_VIDEO];
    trk_t *t = &s->t[HLS_VIDEO];
    hls_sps_info_t si;

    *changed = 0;
    if (!hls__psets_complete(&t->ps))
        return HLS_ERR_AGAIN;
    int rv = hls__psets_info(&t->ps, &si, err_desc);
    if (rv != 0)
        return rv;
    t->si = si;
    tr->width = si.width;
    tr->height = si.height;
    hls__codec_string(tr->codecs, sizeof(tr->codecs), tr->codec, &si);
    return build_init(s, HLS_VIDEO, changed);
}

static int configure_aac(hls_stream_t *s, uint32_t aot, uint32_t sf_index, uint32_t rate,
                         uint32_t channels, const uint8_t *asc, size_t asc_len, int *changed)
{
    hls_track_t *tr = &s->tracks[HLS_AUDIO];
    trk_t *t = &s->t[HLS_AUDIO];

    if (asc != NULL && asc_len <= sizeof(t->asc_bytes)) {
        memcpy(t->asc_bytes, asc, asc_len);
        t->asc_len = asc_len;
    } else {
        hls__asc_build(t->asc_bytes, aot, sf_index, channels);
        t->asc_len = 2;
    }
    t->asc = (hls_asc_t){aot, sf_index, rate, channels};
    if (tr->timescale != 0 && tr->timescale != rate && t->have_end) {
        /* A new rate is a new timescale: carry the end of what was published across. */
        t->end = rescale(t->end, rate, tr->timescale) + 1;
        t->last_dts = t->end;
        t->last_dur = 0;
        t->run = 0;
    }
    tr->timescale = rate;
    tr->sample_rate = rate;
    tr->channels = channels;
    snprintf(tr->codecs, sizeof(tr->codecs), "mp4a.40.%u", aot);
    return build_init(s, HLS_AUDIO, changed);
}

int hls_stream_new(hls_stream_t **out, const hls_stream_config_t *cfg, const hls_stream_cbs_t *cbs,
                   void *cbdata)
{
    if (out == NULL || cfg == NULL || cfg->segment_ms == 0 || cfg->part_ms == 0 ||
        cfg->part_ms > cfg->segment_ms)
        return HLS_ERR_INVAL;
    hls_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return HLS_ERR_NOMEM;
    s->cfg = *cfg;
    if (cbs != NULL)
        s->cbs = *cbs;
    s->cbdata = cbdata;
    for (int k = 0; k < HLS_NTRACKS; k++) {
        s->tracks[k].kind = k;
        s->tracks[k].first_msn = s->tracks[k].next_msn = cfg->first_msn;
        s->tracks[k].init_gen = cfg->first_init_gen;
        s->t[k].mem_msn = cfg->first_msn;
        s->t[k].need_key = 1;
        hls__buf_init(&s->t[k].mdat);
        hls__buf_init(&s->t[k].scratch);
        hls__buf_init(&s->t[k].out);
    }
    *out = s;
    return 0;
}

static void track_dispose(hls_stream_t *s, int k)
{
    hls_track_t *tr = &s->tracks[k];
    trk_t *t = &s->t[k];

    for (uint64_t msn = tr->first_msn; msn < tr->next_msn; msn++)
        segment_dispose(seg_at(tr, msn));
    free(tr->ring);
    sw_rbuf_unref(tr->init);
    hls__psets_dispose(&t->ps);
    hls__buf_dispose(&t->mdat);
    hls__buf_dispose(&t->scratch);
    hls__buf_dispose(&t->out);
    free(t->samples);
}

void hls_stream_free(hls_stream_t *s)
{
    if (s == NULL)
        return;
    for (int k = 0; k < HLS_NTRACKS; k++)
        track_dispose(s, k);
    free(s);
}

static int set_track(hls_stream_t *s, int kind, const hls_track_info_t *info, const char **err)
{
    hls_track_t *tr = &s->tracks[kind];
    trk_t *t = &s->t[kind];
    int rv, changed;

    if (tr->codec != HLS_CODEC_NONE && tr->codec != info->codec) {
        /* A new codec: what was published cannot continue; the next init is a new generation. */
        if ((rv = discontinuity(s, s->last_now_ms, "codec changed")) != 0)
            return rv;
        t->configured = 0;
    }
    tr->codec = info->codec;
    switch (info->codec) {
    case HLS_CODEC_H264:
    case HLS_CODEC_HEVC:
        tr->timescale = HLS_VIDEO_TS;
        hls__psets_dispose(&t->ps);
        t->ps.codec = info->codec;
        if (info->extradata_len > 0) {
            rv = hls__psets_from_extradata(&t->ps, info->codec, info->extradata,
                                           info->extradata_len, err);
            if (rv != 0)
                return rv;
        }
        rv = configure_video(s, &changed, err);
        return rv == HLS_ERR_AGAIN ? 0 : rv;
    case HLS_CODEC_AAC:
        if (info->extradata_len > 0) {
            hls_asc_t asc;
            if ((rv = hls__asc_parse(info->extradata, info->extradata_len, &asc, err)) != 0)
                return rv;
            return configure_aac(s, asc.aot, asc.sf_index, asc.sample_rate, asc.channels,
                                 info->extradata, info->extradata_len, &changed);
        }
        return 0; /* from the first ADTS header */
    case HLS_CODEC_OPUS:
        if (info->extradata_len > 0) {
            if ((rv = hls__opus_head_parse(info->extradata, info->extradata_len, &t->opus, err)) !=
                0)
                return rv;
        } else {
            memset(&t->opus, 0, sizeof(t->opus));
            t->opus.channels = info->channels ? info->channels : 2;
            t->opus.input_rate = info->sample_rate ? info->sample_rate : HLS_OPUS_RATE;
            if (t->opus.channels > 2)
                return HLS_ERR_UNSUPPORTED; /* needs a channel mapping from an OpusHead */
        }
        tr->timescale = HLS_OPUS_RATE;
        tr->sample_rate = HLS_OPUS_RATE;
        tr->channels = t->opus.channels;
        snprintf(tr->codecs, sizeof(tr->codecs), "opus");
        return build_init(s, HLS_AUDIO, &changed);
    default:
        return HLS_ERR_UNSUPPORTED;
    }
}

int hls_stream_set_track(hls_stream_t *s, int kind, const hls_track_info_t *info)
{
    const char *err = NULL;

    if (s == NULL || info == NULL || kind < 0 || kind >= HLS_NTRACKS)
        return HLS_ERR_INVAL;
    if (s->fatal)
        return HLS_ERR_NOMEM;
    int video = info->codec == HLS_CODEC_H264 || info->codec == HLS_CODEC_HEVC;
    int audio = info->codec == HLS_CODEC_AAC || info->codec == HLS_CODEC_OPUS;
    if (!video && !audio)
        return HLS_ERR_UNSUPPORTED;
    if ((kind == HLS_VIDEO) != video)
        return HLS_ERR_INVAL;
    int rv = set_track(s, kind, info, &err);
    if (rv == HLS_ERR_NOMEM)
        s->fatal = 1;
    if (rv == HLS_ERR_BITSTREAM)
        logf_(s, SW_LOG_WARN, "%s extradata rejected: %s", kind_name(kind), err);
    /* The contract lists INVAL for bad extradata, whatever the parser said. */
    return rv == HLS_ERR_BITSTREAM || rv == HLS_ERR_TOO_BIG ? HLS_ERR_INVAL : rv;
}

/* ---- writing samples ---- */

static int64_t unwrap(hls_stream_t *s, int64_t raw)
{
    raw &= TS_MASK;
    if (!s->have_ref) {
        s->have_ref = 1;
        s->ref_raw = s->ref_unw = raw;
        return raw;
    }
    int64_t d = (raw - s->ref_raw) & TS_MASK;
    if (d >= TS_HALF)
        d -= INT64_C(1) << 33;
    int64_t u = s->ref_unw + d;
    if (d > 0) {
        s->ref_raw = raw;
        s->ref_unw = u;
    }
    return u;
}

/*
 * Drops a sample. A run of drops is logged once; a stream that keeps dropping (a damaged feed
 * alternating good and bad samples) gets at most one line every ten seconds, with a count.
 */
static int drop(hls_stream_t *s, int kind, const char *why)
{
    trk_t *t = &s->t[kind];
    s->stats.dropped++;
    if (t->drop_logged && s->last_now_ms - t->drop_log_ms < 10000) {
        t->drops_unlogged++;
        return 0;
    }
    if (t->drops_unlogged > 0)
        logf_(s, SW_LOG_INFO, "%s: dropping samples: %s (%llu more dropped in the last %llds)",
              kind_name(kind), why, (unsigned long long)t->drops_unlogged,
              (long long)((s->last_now_ms - t->drop_log_ms) / 1000));
    else
        logf_(s, SW_LOG_INFO, "%s: dropping samples: %s", kind_name(kind), why);
    t->drop_logged = 1;
    t->drop_log_ms = s->last_now_ms;
    t->drops_unlogged = 0;
    return 0;
}

/* Places a sample on the output timeline. Returns 1 with *out90 set, 0 to drop it quietly. */
static int place(hls_stream_t *s, int kind, int64_t dts, int key, int64_t now_ms, int64_t *out90,
                 int *rv)
{
    trk_t *t = &s->t[kind];
    int64_t u = unwrap(s, dts), gap = (int64_t)s->cfg.max_gap_ms * 90;
    char why[96];

    *rv = 0;
    if (t->have_last && u < t->last_in90 && t->last_in90 - u <= STEP_BACK_90K) {
        /* A small step back (a repeated frame, muxer jitter) is not worth a discontinuity. */
        drop(s, kind, "dts went back a little");
        return 0;
    }
    if (t->have_last && (u < t->last_in90 || u - t->last_in90 > gap)) {
        snprintf(why, sizeof(why), "%s dts jumped by %lld ms", kind_name(kind),
                 (long long)((u - t->last_in90) / 90));
        if ((*rv = discontinuity(s, now_ms, why)) != 0)
            return 0;
        s->have_ref = 1;
        s->ref_raw = s->ref_unw = u = dts & TS_MASK;
    } else if (!t->have_last && s->have_offset && llabs(u - s->ref_unw) > gap) {
        /* Left over from before a jump the other track already took: it fits nowhere. */
        drop(s, kind, "timestamp far from the other track");
        return 0;
    }
    if (kind == HLS_VIDEO && t->need_key && !key) {
        drop(s, kind, "waiting for a keyframe");
        return 0;
    }
    if (!s->have_offset) {
        if (kind == HLS_AUDIO && s->tracks[HLS_VIDEO].codec != HLS_CODEC_NONE) {
            drop(s, kind, "waiting for the first video keyframe");
            return 0;
        }
        if (s->origin_ms == 0)
            s->origin_ms = s->cfg.origin_ms ? s->cfg.origin_ms : now_ms;
        /* Never before what was published; follow the wall clock after a gap. */
        int64_t target = (now_ms - s->origin_ms) * 90;
        for (int k = 0; k < HLS_NTRACKS; k++) {
            hls_track_t *tr = &s->tracks[k];
            if (s->t[k].have_end && tr->timescale > 0) {
                int64_t end90 = -rescale(-s->t[k].end, 90000, tr->timescale); /* ceil */
                if (end90 > target)
                    target = end90;
            }
        }
        if (target < 0)
            target = 0;
        s->offset90 = u - target;
        s->have_offset = 1;
    }
    t->need_key = 0;
    t->have_last = 1;
    t->last_in90 = u;
    *out90 = u - s->offset90;
    if (s->origin_ms + *out90 / 90 > s->edge_ms)
        s->edge_ms = s->origin_ms + *out90 / 90;
    return 1;
}

static int32_t comp_offset(int64_t pts, int64_t dts)
{
    int64_t d = (pts - dts) & TS_MASK;
    if (d >= TS_HALF)
        d -= INT64_C(1) << 33;
    /* Over ten seconds is not a reordering delay but a broken pts. */
    return d > 900000 || d < -900000 ? 0 : (int32_t)d;
}

static int in_band_changed(const hls_psets_t *ps, const hls_au_info_t *ai)
{
    if (ai->sps != NULL && (ai->sps_len != ps->sps_len || memcmp(ai->sps, ps->sps, ps->sps_len)))
        return 1;
    if (ai->pps != NULL && (ai->pps_len != ps->pps_len || memcmp(ai->pps, ps->pps, ps->pps_len)))
        return 1;
    if (ai->vps != NULL && (ai->vps_len != ps->vps_len || memcmp(ai->vps, ps->vps, ps->vps_len)))
        return 1;
    return 0;
}

static int write_video(hls_stream_t *s, const uint8_t *data, size_t len, int64_t pts, int64_t dts,
                       int key, int64_t now_ms, const char **err)
{
    hls_track_t *tr = &s->tracks[HLS_VIDEO];
    trk_t *t = &s->t[HLS_VIDEO];
    hls_au_info_t ai;
    int rv, changed = 0, reinit = 0;

    hls__buf_reset(&t->scratch);
    if ((rv = hls__annexb_to_sample(tr->codec, data, len, &t->scratch, &ai, err)) != 0)
        return rv;
    key = key || ai.irap;
    /* In-band parameter sets count on keyframes, or while we still have none. */
    if ((key || !t->configured) && in_band_changed(&t->ps, &ai)) {
        hls_psets_t old = t->ps;
        memset(&t->ps, 0, sizeof(t->ps));
        t->ps.codec = tr->codec;
        rv = 0;
        if (old.vps != NULL && ai.vps == NULL)
            rv = hls__psets_set(&t->ps, old.vps, old.vps_len);
        if (rv == 0 && old.sps != NULL && ai.sps == NULL)
            rv = hls__psets_set(&t->ps, old.sps, old.sps_len);
        if (rv == 0 && old.pps != NULL && ai.pps == NULL)
            rv = hls__psets_set(&t->ps, old.pps, old.pps_len);
        if (rv == 0 && ai.vps != NULL)
            rv = hls__psets_set(&t->ps, ai.vps, ai.vps_len);
        if (rv == 0 && ai.sps != NULL)
            rv = hls__psets_set(&t->ps, ai.sps, ai.sps_len);
        if (rv == 0 && ai.pps != NULL)
            rv = hls__psets_set(&t->ps, ai.pps, ai.pps_len);
        if (rv == 0) {
            int had = t->configured;
            rv = configure_video(s, &changed, err);
            if (rv == HLS_ERR_AGAIN)
                rv = 0;
            reinit = rv == 0 && changed && had;
        }
        if (rv != 0) {
            /* Keep the old sets; the new ones were bad. */
            hls__psets_dispose(&t->ps);
            t->ps = old;
            if (rv == HLS_ERR_BITSTREAM || rv == HLS_ERR_TOO_BIG)
                *err = *err ? *err : "bad in-band parameter set";
            return rv;
        }
        hls__psets_dispose(&old);
    }
    if (!t->configured)
        return drop(s, HLS_VIDEO, "no parameter sets yet");
    int64_t out90;
    if (!place(s, HLS_VIDEO, dts, key, now_ms, &out90, &rv))
        return rv;
    if (reinit) {
        /* New parameters (a resolution change): the keyframe starts a segment of its own that
         * decodes with the new init. It is a cut for audio too, so msn stay aligned. */
        logf_(s, SW_LOG_INFO, "video parameters changed (%ux%u): init generation %u", tr->width,
              tr->height, tr->init_gen);
        if (t->seg_open) {
            if ((rv = close_segment(s, HLS_VIDEO)) != 0)
                return rv;
            if (s->tracks[HLS_AUDIO].codec != HLS_CODEC_NONE)
                push_cut(&s->t[HLS_AUDIO], out90);
        }
        t->pending_disc = 1;
    }
    if (out90 < t->end && t->have_end) {
        drop(s, HLS_VIDEO, "dts before the end of the published media");
        return 0;
    }
    return add_sample(s, HLS_VIDEO, out90, comp_offset(pts, dts), 0, key, t->scratch.p,
                      t->scratch.len);
}

/* Maps an audio sample to its track time, snapping onto the previous frame's end when close. */
static int audio_time(hls_stream_t *s, int64_t dts, int64_t now_ms, uint32_t dur, int64_t *out,
                      int *rv)
{
    hls_track_t *tr = &s->tracks[HLS_AUDIO];
    trk_t *t = &s->t[HLS_AUDIO];
    int64_t out90;

    if (!place(s, HLS_AUDIO, dts, 1, now_ms, &out90, rv))
        return 0;
    int64_t ts = rescale(out90, tr->timescale, 90000);
    if (t->have_end) {
        if (llabs(ts - t->end) <= (int64_t)dur)
            ts = t->end;
        else if (ts < t->end) {
            drop(s, HLS_AUDIO, "dts before the end of the published media");
            return 0;
        }
    }
    *out = ts;
    return 1;
}

static int write_aac(hls_stream_t *s, const uint8_t *data, size_t len, int64_t dts, int64_t now_ms,
                     const char **err)
{
    hls_track_t *tr = &s->tracks[HLS_AUDIO];
    trk_t *t = &s->t[HLS_AUDIO];
    int rv, changed;

    if (len < 2 || data[0] != 0xff || (data[1] & 0xf0) != 0xf0) {
        /* A raw frame: the AudioSpecificConfig came with the track. */
        if (!t->configured) {
            *err = "raw AAC frame without an AudioSpecificConfig";
            return HLS_ERR_BITSTREAM;
        }
        int64_t ts;
        if (!audio_time(s, dts, now_ms, 1024, &ts, &rv))
            return rv;
        return add_sample(s, HLS_AUDIO, ts, 0, 1024, 1, data, len);
    }
    /* Validate the whole PES first so that a bad frame in the middle adds nothing. */
    size_t off = 0, nframes = 0;
    hls_adts_t h;
    while (off < len) {
        if ((rv = hls__adts_parse(data + off, len - off, &h, err)) != 0)
            return rv == HLS_ERR_AGAIN ? HLS_ERR_BITSTREAM : rv;
        if (h.frame_len > len - off) {
            *err = "ADTS frame truncated";
            return HLS_ERR_BITSTREAM;
        }
        off += h.frame_len;
    }
    int64_t ts = 0;
    int timed = 0;
    for (off = 0; off < len; off += h.frame_len) {
        hls__adts_parse(data + off, len - off, &h, err);
        if (!t->configured || t->asc.aot != h.aot || t->asc.sf_index != h.sf_index ||
            t->asc.channels != h.channels) {
            int had = t->configured;
            if ((rv = configure_aac(s, h.aot, h.sf_index, h.sample_rate, h.channels, NULL, 0,
                                    &changed)) != 0)
                return rv;
            if (had && changed) {
                logf_(s, SW_LOG_INFO, "audio config changed (%u Hz, %u ch)", h.sample_rate,
                      h.channels);
                if ((rv = close_segment(s, HLS_AUDIO)) != 0)
                    return rv;
                t->pending_disc = 1;
                timed = 0; /* the timescale may have changed */
            }
        }
        if (!timed) {
            int64_t at = dts + rescale((int64_t)nframes * 1024, 90000, tr->timescale);
            if (!audio_time(s, at, now_ms, 1024, &ts, &rv)) {
                if (rv != 0)
                    return rv;
                nframes++;
                continue;
            }
            timed = 1;
        }
        rv = add_sample(s, HLS_AUDIO, ts, 0, 1024, 1, data + off + h.header_len,
                        h.frame_len - h.header_len);
        if (rv != 0)
            return rv;
        ts += 1024;
        nframes++;
    }
    return 0;
}

static int write_opus(hls_stream_t *s, const uint8_t *data, size_t len, int64_t dts, int64_t now_ms,
                      const char **err)
{
    uint32_t dur = hls__opus_duration(data, len);
    int64_t ts;
    int rv;

    if (dur == 0) {
        *err = "Opus packet with a bad TOC";
        return HLS_ERR_BITSTREAM;
    }
    if (!audio_time(s, dts, now_ms, dur, &ts, &rv))
        return rv;
    return add_sample(s, HLS_AUDIO, ts, 0, dur, 1, data, len);
}

int hls_stream_write(hls_stream_t *s, int kind, const uint8_t *data, size_t len, int64_t pts,
                     int64_t dts, int key, int64_t now_ms, const char **err_desc)
{
    const char *err = NULL;
    int rv;

    if (s == NULL || kind < 0 || kind >= HLS_NTRACKS || (data == NULL && len > 0))
        return HLS_ERR_INVAL;
    if (s->fatal)
        return HLS_ERR_NOMEM;
    if (s->tracks[kind].codec == HLS_CODEC_NONE)
        return HLS_ERR_INVAL;
    if (now_ms > s->last_now_ms)
        s->last_now_ms = now_ms;
    if (len > HLS_MAX_SAMPLE) {
        s->stats.dropped++;
        if (err_desc != NULL)
            *err_desc = "sample over 16 MiB";
        return HLS_ERR_TOO_BIG;
    }
    if (len == 0) {
        err = "empty sample";
        rv = HLS_ERR_BITSTREAM;
    } else if (kind == HLS_VIDEO) {
        rv = write_video(s, data, len, pts, dts, key, now_ms, &err);
    } else if (s->tracks[kind].codec == HLS_CODEC_AAC) {
        rv = write_aac(s, data, len, dts, now_ms, &err);
    } else {
        rv = write_opus(s, data, len, dts, now_ms, &err);
    }
    if (rv == HLS_ERR_NOMEM) {
        s->fatal = 1;
    } else if (rv == HLS_ERR_BITSTREAM || rv == HLS_ERR_UNSUPPORTED || rv == HLS_ERR_TOO_BIG) {
        s->stats.dropped++;
        if (rv == HLS_ERR_UNSUPPORTED)
            rv = HLS_ERR_BITSTREAM;
    }
    if (err_desc != NULL)
        *err_desc = err;
    return rv;
}

/* ---- accessors ---- */

const hls_track_t *hls_stream_track(const hls_stream_t *s, int kind)
{
    if (s == NULL || kind < 0 || kind >= HLS_NTRACKS)
        return NULL;
    return &s->tracks[kind];
}

const hls_stream_config_t *hls_stream_get_config(const hls_stream_t *s)
{
    return &s->cfg;
}

int64_t hls_stream_origin_ms(const hls_stream_t *s)
{
    return s->origin_ms;
}

int64_t hls_stream_edge_ms(const hls_stream_t *s)
{
    return s->edge_ms;
}

void hls_stream_get_stats(const hls_stream_t *s, hls_stream_stats_t *out)
{
    *out = s->stats;
}

void hls_stream_view(const hls_stream_t *s, hls_view_t *out)
{
    memset(out, 0, sizeof(*out));
    out->cfg = s->cfg;
    for (int k = 0; k < HLS_NTRACKS; k++)
        out->tracks[k] = &s->tracks[k];
    out->origin_ms = s->origin_ms;
}
