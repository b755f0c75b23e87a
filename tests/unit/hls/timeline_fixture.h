/*
 * timeline_fixture.h: hand-built hls_track_t timelines for the renderer tests (test_playlist.c,
 * test_mpd.c). No packager behind them: segments and parts are plain data, the bytes are NULL.
 */
#ifndef TIMELINE_FIXTURE_H
#define TIMELINE_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "hls/hls.h"

#define FX_RING      64
#define FX_MAXPARTS  16
#define FX_ORIGIN_MS 1795824000000LL /* 2026-11-28T00:00:00.000Z */

typedef struct fx_track {
    hls_track_t t;
    hls_segment_t ring[FX_RING];
    hls_part_t parts[FX_RING][FX_MAXPARTS];
    int64_t end; /* output time where the next segment starts */
} fx_track_t;

static inline fx_track_t *fx_track_new(int kind, uint64_t first_msn)
{
    fx_track_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        abort();
    f->t.kind = kind;
    f->t.ring = f->ring;
    f->t.ring_cap = FX_RING;
    f->t.first_msn = f->t.next_msn = first_msn;
    f->t.init_gen = 1;
    if (kind == HLS_VIDEO) {
        f->t.codec = HLS_CODEC_H264;
        f->t.timescale = 90000;
        strcpy(f->t.codecs, "avc1.64001f");
        f->t.width = 1280;
        f->t.height = 720;
        f->t.bandwidth = 2500000;
    } else {
        f->t.codec = HLS_CODEC_AAC;
        f->t.timescale = 48000;
        strcpy(f->t.codecs, "mp4a.40.2");
        f->t.sample_rate = 48000;
        f->t.channels = 2;
        f->t.bandwidth = 128000;
    }
    /* Output time 0 was the first segment ever; earlier ones have expired. */
    f->end = (int64_t)first_msn * 2 * f->t.timescale;
    return f;
}

/* Appends segment next_msn with `nparts` parts of `part_dur` ticks. Parts must stay under
 * FX_MAXPARTS; the ring drops the oldest segment when full. */
static inline hls_segment_t *fx_add(fx_track_t *f, uint32_t nparts, uint32_t part_dur, int complete,
                                    int discontinuity)
{
    hls_track_t *t = &f->t;
    uint64_t msn = t->next_msn++;
    hls_segment_t *seg = &f->ring[msn % FX_RING];

    memset(seg, 0, sizeof(*seg));
    seg->msn = msn;
    seg->start = f->end;
    seg->pdt_ms = FX_ORIGIN_MS + f->end * 1000 / t->timescale;
    seg->init_gen = t->init_gen;
    seg->discontinuity = (uint8_t)discontinuity;
    seg->complete = (uint8_t)complete;
    seg->parts = f->parts[msn % FX_RING];
    seg->parts_cap = FX_MAXPARTS;
    seg->nparts = nparts;
    for (uint32_t i = 0; i < nparts; i++) {
        seg->parts[i].duration = part_dur;
        seg->parts[i].independent = (uint8_t)(i == 0 || t->kind == HLS_AUDIO);
        seg->parts[i].data = NULL;
    }
    seg->duration = (uint64_t)nparts * part_dur;
    seg->bytes = (uint64_t)nparts * 10000;
    if (complete) {
        f->end += (int64_t)seg->duration;
        if (seg->duration > t->max_duration)
            t->max_duration = seg->duration;
    }
    if (part_dur > t->max_part_duration)
        t->max_part_duration = part_dur;
    if (t->next_msn - t->first_msn > FX_RING)
        t->first_msn = t->next_msn - FX_RING;
    return seg;
}

/* Adds one part to the in-progress segment. */
static inline void fx_add_part(fx_track_t *f, uint32_t part_dur)
{
    hls_segment_t *seg = &f->ring[(f->t.next_msn - 1) % FX_RING];
    seg->parts[seg->nparts].duration = part_dur;
    seg->parts[seg->nparts].independent = (uint8_t)(seg->nparts == 0);
    seg->nparts++;
    seg->duration += part_dur;
}

/* Marks the in-progress segment complete. */
static inline void fx_complete(fx_track_t *f)
{
    hls_segment_t *seg = &f->ring[(f->t.next_msn - 1) % FX_RING];
    seg->complete = 1;
    f->end += (int64_t)seg->duration;
    if (seg->duration > f->t.max_duration)
        f->t.max_duration = seg->duration;
}

static inline void fx_view(hls_view_t *v, fx_track_t *video, fx_track_t *audio)
{
    memset(v, 0, sizeof(*v));
    v->cfg.segment_ms = 2000;
    v->cfg.part_ms = 334;
    v->cfg.window_ms = 7200000;
    v->cfg.mem_segments = 8;
    v->cfg.max_gap_ms = 5000;
    v->tracks[HLS_VIDEO] = video != NULL ? &video->t : NULL;
    v->tracks[HLS_AUDIO] = audio != NULL ? &audio->t : NULL;
    v->origin_ms = FX_ORIGIN_MS;
}

#endif
