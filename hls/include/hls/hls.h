/*
 * hls/hls.h: CMAF packaging and HLS / LL-HLS / DASH manifests. No sockets, no loop, no threads.
 *
 * An hls_stream_t takes the elementary streams of one live publisher (H.264 or HEVC video in
 * Annex-B, AAC in ADTS or raw, Opus) with MPEG-TS timestamps, and cuts them into CMAF tracks: one
 * file set per track (video and audio apart) so that HLS and DASH serve the same bytes. A segment
 * starts on a video keyframe once the target duration is reached; it is made of parts (one
 * moof+mdat CMAF chunk each) of at most the part target. The concatenation of a segment's parts is
 * the segment.
 *
 * The timeline (which segments exist, their parts, durations and wall-clock times) is plain data in
 * hls_track_t, read by the renderers (hls_render_*) and by the server that serves the bytes.
 *
 * Threading: an hls_stream_t and everything it returns belong to one thread at a time. The bytes
 * (sw_rbuf_t) may be handed to other threads by taking a reference.
 *
 * Times: input pts/dts are 90 kHz MPEG-TS ticks; they may wrap at 2^33 and that is unwrapped. A
 * jump (backwards, or forwards by more than `max_gap_ms`) starts a new segment marked as a
 * discontinuity. Output times (`start` in hls_segment_t) are in the track's timescale, start at
 * 0 for the first sample ever and never go back; across a discontinuity the output time follows
 * the wall clock, so that (start / timescale) stays close to (pdt_ms - origin_ms) / 1000 and DASH
 * clients can compute the live edge from availabilityStartTime.
 */
#ifndef HLS_HLS_H
#define HLS_HLS_H

#include <stddef.h>
#include <stdint.h>

#include "sw/rbuf.h"
#include "sw/str.h"

enum {
    HLS_OK = 0,
    HLS_ERR_NOMEM = -1,       /* out of memory */
    HLS_ERR_INVAL = -2,       /* bad argument */
    HLS_ERR_BITSTREAM = -3,   /* malformed codec data; *err_desc says why */
    HLS_ERR_UNSUPPORTED = -4, /* codec or feature we do not package */
    HLS_ERR_NOT_FOUND = -5,   /* no such track, segment or part */
    HLS_ERR_TOO_BIG = -6,     /* a sample or part over the limits */
    HLS_ERR_AGAIN = -7,       /* not enough input yet (e.g. waiting for parameter sets) */
};

/** Names an HLS_ERR_* code. */
const char *hls_strerror(int rv);

typedef enum hls_codec {
    HLS_CODEC_NONE = 0,
    HLS_CODEC_H264 = 1,
    HLS_CODEC_HEVC = 2,
    HLS_CODEC_AAC = 3,
    HLS_CODEC_OPUS = 4,
} hls_codec_t;

/* Track slots: a stream has at most one video and one audio track. */
enum { HLS_VIDEO = 0, HLS_AUDIO = 1, HLS_NTRACKS = 2 };

/* What the demuxer knows of one elementary stream. */
typedef struct hls_track_info {
    hls_codec_t codec;
    /* Audio: may be 0 when unknown; AAC takes them from ADTS headers, Opus from the OpusHead. */
    uint32_t sample_rate;
    uint32_t channels;
    /* As the demuxer gave it, may be empty: Annex-B parameter sets or avcC/hvcC for video (in-band
     * parameter sets are used otherwise), AudioSpecificConfig for AAC, OpusHead for Opus. */
    const uint8_t *extradata;
    size_t extradata_len;
} hls_track_info_t;

typedef struct hls_part {
    uint32_t duration;   /* track timescale */
    uint8_t independent; /* starts with a sync sample */
    sw_rbuf_t *data;     /* moof+mdat; NULL once the segment's bytes left memory */
} hls_part_t;

typedef struct hls_segment {
    uint64_t msn;  /* media sequence number; the same msn in video and audio covers the same time */
    int64_t start; /* track timescale, output time of the first sample */
    uint64_t duration; /* sum of the parts so far; final once `complete` */
    int64_t pdt_ms;    /* wall-clock time (unix ms) of the first sample: EXT-X-PROGRAM-DATE-TIME */
    uint32_t init_gen; /* which init segment decodes it (see hls_track_t.init_gen) */
    uint8_t discontinuity; /* first segment after a reconnect, a timestamp jump or a codec change */
    uint8_t complete;      /* no more parts will be added */
    uint8_t restored; /* from an earlier run (hls_stream_restore_segment): no parts, DVR only */
    /* No media: audio that had not reached video's latest cut when a discontinuity came gets one
     * in place of each segment it lacks, so that msn n covers the same time in both tracks. It
     * spans the time to the end of video's segment n, has no parts and no bytes and is never
     * served: EXT-X-GAP in the media playlist, left out of the MPD (it always ends a Period). */
    uint8_t gap;
    uint32_t nparts;
    uint32_t parts_cap;
    hls_part_t *parts;
    uint64_t bytes; /* sum of the parts' sizes */
} hls_segment_t;

typedef struct hls_track {
    int kind;           /* HLS_VIDEO or HLS_AUDIO */
    hls_codec_t codec;  /* HLS_CODEC_NONE: the slot is empty */
    uint32_t timescale; /* 90000 for video, the sample rate for audio */
    char codecs[48];    /* RFC 6381, e.g. "avc1.64001f", "hvc1.1.6.L93.B0", "mp4a.40.2", "opus" */
    uint32_t width, height;         /* video */
    uint32_t sample_rate, channels; /* audio */
    uint32_t bandwidth; /* peak bits/s over the last segments (an estimate until one is complete) */
    uint32_t init_gen;  /* increases whenever the init segment changes (codec or resolution) */
    sw_rbuf_t *init;    /* the current init segment (ftyp+moov), NULL until known */
    /* Retained segments, a ring indexed by msn: those with first_msn <= msn < next_msn. The last
     * one (next_msn - 1) may be incomplete. Use hls_track_segment() to read it. */
    hls_segment_t *ring;
    uint64_t ring_cap;
    uint64_t first_msn;
    uint64_t next_msn;
    uint64_t
        max_duration; /* longest complete segment ever, track timescale: EXT-X-TARGETDURATION */
    uint64_t max_part_duration;
} hls_track_t;

/** The retained segment `msn`, or NULL when it is not (or no longer) retained. */
static inline const hls_segment_t *hls_track_segment(const hls_track_t *t, uint64_t msn)
{
    if (t == NULL || t->ring_cap == 0 || msn < t->first_msn || msn >= t->next_msn)
        return NULL;
    return &t->ring[msn % t->ring_cap];
}

typedef struct hls_stream_config {
    uint32_t segment_ms;   /* target segment duration, default 2000 */
    uint32_t part_ms;      /* part target (EXT-X-PART-INF), default 334: ten frames at 29.97 fps */
    uint32_t window_ms;    /* timeline kept (DVR window), default 7200000 (2 h) */
    uint32_t mem_segments; /* recent segments whose bytes stay in memory, default 8 */
    uint32_t max_gap_ms; /* a forward timestamp jump above this is a discontinuity, default 5000 */
    /* A video segment is cut here even without a keyframe, so that a publisher that sends none
     * (an infinite GOP, periodic intra refresh) cannot grow one segment, and with it audio's,
     * without bound. The next segment then starts with a frame that needs the ones before it.
     * Default 0: four times segment_ms. */
    uint32_t max_segment_ms;
    uint64_t first_msn;      /* the first media sequence number (to continue after a restart) */
    uint32_t first_init_gen; /* init generations are numbered after this one (likewise) */
    int64_t origin_ms;       /* wall clock of output time 0; 0 means "at the first sample" */
} hls_stream_config_t;

/** Fills `cfg` with the defaults above. */
void hls_stream_config_init(hls_stream_config_t *cfg);

/* Events, called synchronously from inside hls_stream_write() and friends. They must not call back
 * into the stream except for the const accessors. Any may be NULL. */
typedef struct hls_stream_cbs {
    /* A new init segment for `track` (first one, or after a codec/resolution change). */
    void (*on_init)(void *data, int track, uint32_t gen, sw_rbuf_t *init);
    /* Part `part` of segment `seg` exists now and its bytes are servable. */
    void (*on_part)(void *data, int track, const hls_segment_t *seg, uint32_t part);
    /* Segment `seg` is complete; all its parts' bytes are still in memory during this call. Also
     * called for a gap segment (seg->gap: no parts), which a server records but never serves. */
    void (*on_segment)(void *data, int track, const hls_segment_t *seg);
    /* A segment left the timeline (older than the window); its files may be deleted. */
    void (*on_expire)(void *data, int track, uint64_t msn);
    /* Something a person should know: a dropped sample, a discontinuity and why. */
    void (*on_log)(void *data, int level, const char *msg);
} hls_stream_cbs_t;

typedef struct hls_stream hls_stream_t;

/** Creates a stream. Copies `cfg` and `cbs`. Returns 0, HLS_ERR_NOMEM or HLS_ERR_INVAL. */
int hls_stream_new(hls_stream_t **out, const hls_stream_config_t *cfg, const hls_stream_cbs_t *cbs,
                   void *cbdata);
/** Frees the stream and drops its references to the bytes. NULL does nothing. */
void hls_stream_free(hls_stream_t *s);

/**
 * Declares (or redeclares, after a reconnect) the track in slot `kind`. A codec different from the
 * slot's current one starts a new init generation and a discontinuity. Returns 0, HLS_ERR_INVAL,
 * HLS_ERR_UNSUPPORTED or HLS_ERR_NOMEM.
 */
int hls_stream_set_track(hls_stream_t *s, int kind, const hls_track_info_t *info);

/**
 * Adds one access unit (video: Annex-B; AAC: ADTS frame(s) or a raw frame; Opus: one packet).
 * `pts`/`dts` in 90 kHz; `key` for a sync sample; `now_ms` is the wall clock at arrival. Samples
 * before the first video keyframe (or before parameter sets are known) are dropped and counted.
 * Returns 0, HLS_ERR_NOMEM, HLS_ERR_INVAL, HLS_ERR_BITSTREAM (sample dropped, *err_desc says why)
 * or HLS_ERR_TOO_BIG. Only HLS_ERR_NOMEM leaves the stream unusable.
 */
int hls_stream_write(hls_stream_t *s, int kind, const uint8_t *data, size_t len, int64_t pts,
                     int64_t dts, int key, int64_t now_ms, const char **err_desc);

/**
 * Puts back one complete segment of an earlier run (a server's own record of what it wrote), so
 * that the timeline, and so the DVR playlists, go on listing it after a restart. Call before the
 * first hls_stream_write(), per track in msn order without holes, ending at cfg.first_msn - 1 (the
 * caller's responsibility: segments after it would otherwise be numbered from where it stopped).
 * Reads msn, start, duration, pdt_ms, init_gen, discontinuity, gap and bytes of `seg`; no parts
 * and no bytes in memory (the server serves it from its own storage). `timescale` is the track's
 * in that run: the track keeps it until a publisher declares the track again. The window expires
 * restored segments like any other (on_expire), and the first segment written after them is a
 * discontinuity. Restored segments are listed by DVR renders only: a live playlist or MPD starts
 * with the current run, and answers HLS_ERR_AGAIN until it has a complete segment. Returns 0,
 * HLS_ERR_NOMEM or HLS_ERR_INVAL (a bad kind or timescale, samples already written, an msn out of
 * order or not below first_msn).
 */
int hls_stream_restore_segment(hls_stream_t *s, int kind, const hls_segment_t *seg,
                               uint32_t timescale);

/**
 * The publisher went away or came back: closes the open segments (parts written so far stay),
 * brings audio to video's msn with gap segments (on_segment is called for each) and marks the
 * next segment as a discontinuity. Returns 0 or HLS_ERR_NOMEM.
 */
int hls_stream_discontinuity(hls_stream_t *s, int64_t now_ms);

/** The track in slot `kind` (codec HLS_CODEC_NONE when empty). Never NULL for a valid kind. */
const hls_track_t *hls_stream_track(const hls_stream_t *s, int kind);
const hls_stream_config_t *hls_stream_get_config(const hls_stream_t *s);
/** Wall clock of output time 0 (DASH availabilityStartTime). 0 before the first sample. */
int64_t hls_stream_origin_ms(const hls_stream_t *s);
/**
 * The program date time (unix ms) of the newest sample placed on the timeline: the live edge, as
 * EXT-X-PROGRAM-DATE-TIME counts it. 0 before the first sample.
 */
int64_t hls_stream_edge_ms(const hls_stream_t *s);

typedef struct hls_stream_stats {
    uint64_t samples[HLS_NTRACKS];
    uint64_t bytes[HLS_NTRACKS];
    uint64_t dropped; /* samples dropped (before a keyframe, malformed) */
    uint64_t discontinuities;
    uint64_t segments;
    uint64_t parts;
    uint64_t forced_cuts; /* video segments cut at max_segment_ms without a keyframe */
} hls_stream_stats_t;

void hls_stream_get_stats(const hls_stream_t *s, hls_stream_stats_t *out);

/*
 * What the renderers read: plain data, so that a timeline can be rendered (and tested) without a
 * packager behind it. hls_stream_view() fills one from a live stream; it stays valid until the next
 * call that changes the stream.
 */
typedef struct hls_view {
    hls_stream_config_t cfg;
    const hls_track_t *tracks[HLS_NTRACKS]; /* NULL or codec HLS_CODEC_NONE: absent */
    int64_t origin_ms;                      /* wall clock of output time 0 */
} hls_view_t;

void hls_stream_view(const hls_stream_t *s, hls_view_t *out);

/*
 * Timed metadata (room events) rendered into the media playlists as
 *
 *   #EXT-X-DATERANGE:ID="<id>",CLASS="com.shortwave.commerce",START-DATE="<start>",
 *                    X-SW-TYPE="<type>",X-SW-DATA="<base64 of data>"
 *
 * and into the MPD as an EventStream (schemeIdUri "urn:shortwave:commerce:2026", timescale 1000)
 * whose Events hold `data` as XML text. A range is rendered when its start falls within the PDT
 * span of what the playlist (or Period) lists; one whose `id` or `type` is empty or holds a
 * character that an HLS quoted-string may not (`"`, CR, LF) or that is not printable ASCII is
 * left out of the playlists, and one whose `id` or `data` holds a control character that XML
 * cannot carry is left out of the MPD. The caller owns the strings; they need only outlive the
 * render call.
 */
#define HLS_DATERANGE_CLASS  "com.shortwave.commerce"
#define HLS_EVENT_SCHEME_URI "urn:shortwave:commerce:2026"

typedef struct hls_daterange {
    const char *id;   /* unique within the stream, e.g. a Redis stream entry id */
    int64_t start_ms; /* unix ms: START-DATE, and the MPD Event's time */
    const char *type; /* X-SW-TYPE */
    const char *data; /* the client's JSON message, not NULL: base64 in HLS, escaped in the MPD */
} hls_daterange_t;

/*
 * Renderers. They read a view's tracks and write a manifest into `out`. URIs are relative to the
 * stream's folder (/live/NAME/): media playlists "v.m3u8" and "a.m3u8", init segments
 * "v/init-GEN.mp4", segments "v/MSN.m4s", parts "v/MSN.PART.m4s" (audio under "a/").
 */
typedef struct hls_render_opts {
    int skip; /* _HLS_skip: 0 none, 1 YES (skip old segments), 2 v2 (answered like YES) */
    int dvr;  /* show the whole retained window instead of the live window */
    uint32_t window_segments;   /* segments in a live playlist, default 6 when 0 */
    int64_t now_ms;             /* for the MPD's publishTime */
    const char *utc_timing_url; /* for the MPD's UTCTiming (http-iso), may be NULL */
    /* Timed metadata, sorted by start_ms (ties in any order); may be NULL when n is 0. */
    const hls_daterange_t *dateranges;
    size_t ndateranges;
} hls_render_opts_t;

/** The multivariant playlist. Returns 0, HLS_ERR_NOMEM or HLS_ERR_AGAIN (no track known yet). */
int hls_render_multivariant(const hls_view_t *v, const hls_render_opts_t *o, sw_str_t *out);
/**
 * The media playlist of track `kind`, with LL-HLS tags (EXT-X-PART-INF, EXT-X-SERVER-CONTROL,
 * EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-RENDITION-REPORT, EXT-X-SKIP when o->skip), EXT-X-GAP
 * before a gap segment's EXTINF, and an
 * EXT-X-DATERANGE for each of o->dateranges within its span, placed before the first segment
 * line at or after its start. A delta update (o->skip) keeps every EXT-X-DATERANGE of the span,
 * those of skipped segments right after EXT-X-SKIP: the server does not offer
 * CAN-SKIP-DATERANGES, so _HLS_skip=v2 is answered like YES.
 * Returns 0, HLS_ERR_NOMEM, HLS_ERR_NOT_FOUND or HLS_ERR_AGAIN (nothing to list yet).
 */
int hls_render_media(const hls_view_t *v, int kind, const hls_render_opts_t *o, sw_str_t *out);
/**
 * A clip's media playlist (a short's instant clip): segments `first` to `last` of track `kind`,
 * as a VOD playlist (EXT-X-PLAYLIST-TYPE:VOD, EXT-X-ENDLIST), without LL-HLS tags, with the live
 * playlists' segment and init names so that a folder holding those files serves it. A
 * discontinuity inside the range keeps its tag. Returns 0, HLS_ERR_NOMEM, HLS_ERR_NOT_FOUND (no
 * such track, an empty range, or a segment outside the timeline) or HLS_ERR_AGAIN (`last` not
 * complete yet).
 */
int hls_render_clip(const hls_view_t *v, int kind, uint64_t first, uint64_t last, sw_str_t *out);

/**
 * The dynamic MPD: a SegmentTimeline per track and Period (a new Period at each discontinuity),
 * low-latency: while the first track has a segment in progress, each track's timeline also lists
 * its segment in progress and the segments up to one past the first track's, at their expected
 * durations (the server holds a request for the next segment and streams one in progress), with
 * availabilityTimeOffset one part short of the segment target, availabilityTimeComplete="false",
 * a ServiceDescription latency target of three parts and half a second, UTCTiming and an
 * EventStream for o->dateranges. Returns 0, HLS_ERR_NOMEM or HLS_ERR_AGAIN (no complete segment).
 */
int hls_render_mpd(const hls_view_t *v, const hls_render_opts_t *o, sw_str_t *out);

/* A playlist request's LL-HLS query (_HLS_msn, _HLS_part, _HLS_skip). */
typedef struct hls_query {
    int has_msn;
    uint64_t msn;
    int has_part;
    uint32_t part;
    int skip; /* 0, 1 (YES) or 2 (v2) */
} hls_query_t;

/**
 * Parses a query string (without '?'). Unknown parameters are ignored. Returns 0, or
 * HLS_ERR_INVAL with *err_desc naming the fault (_HLS_part without _HLS_msn, a value that is not a
 * decimal number or out of range, a parameter given twice).
 */
int hls_query_parse(const char *query, size_t len, hls_query_t *out, const char **err_desc);

/** What a blocking request for (msn, part) should do, per the LL-HLS rules. */
enum hls_block {
    HLS_BLOCK_READY = 0, /* the playlist already holds it: answer now */
    HLS_BLOCK_WAIT = 1,  /* hold the request until a later part appears */
    HLS_BLOCK_BAD = 2,   /* too far in the future (more than two segments ahead): 400 */
};
int hls_track_block_state(const hls_track_t *t, const hls_query_t *q);

#endif
