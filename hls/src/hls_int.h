/*
 * hls/src/hls_int.h: internals shared by the packager's files. Never included from outside hls/
 * (except by hls's own unit tests and fuzz targets).
 *
 * Layers, bottom up: a byte writer (hls_buf_t) and a bit reader (hls_br_t); codec helpers that map
 * bytes to facts (hls_nal.c, hls_audio.c); the box writer (hls_cmaf.c) and reader (hls_mp4read.c);
 * the segmenter (hls_stream.c), the only one with state.
 */
#ifndef HLS_INT_H
#define HLS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "hls/hls.h"

#define HLS_MAX_SAMPLE (16u * 1024 * 1024) /* one access unit; above is HLS_ERR_TOO_BIG */
#define HLS_MAX_DIM    8192                /* widest and tallest picture we accept */
#define HLS_MAX_PS     4096                /* one parameter set NAL */
#define HLS_VIDEO_TS   90000
#define HLS_OPUS_RATE  48000

/* ---- byte writer: big-endian puts on a growable buffer; check `failed` once at the end ---- */

typedef struct hls_buf {
    uint8_t *p;
    size_t len;
    size_t cap;
    int failed; /* an allocation failed; later puts do nothing */
} hls_buf_t;

void hls__buf_init(hls_buf_t *b);
void hls__buf_dispose(hls_buf_t *b);
void hls__buf_reset(hls_buf_t *b);
int hls__buf_reserve(hls_buf_t *b, size_t extra);
void hls__put(hls_buf_t *b, const void *p, size_t len);
void hls__put8(hls_buf_t *b, uint32_t v);
void hls__put16(hls_buf_t *b, uint32_t v);
void hls__put24(hls_buf_t *b, uint32_t v);
void hls__put32(hls_buf_t *b, uint32_t v);
void hls__put64(hls_buf_t *b, uint64_t v);
void hls__putzero(hls_buf_t *b, size_t n);
/** Opens a box: writes a size placeholder and `type`; returns the offset for hls__box_end(). */
size_t hls__box_begin(hls_buf_t *b, const char type[4]);
/** A box with a full-box header (version, 24-bit flags). */
size_t hls__fullbox_begin(hls_buf_t *b, const char type[4], uint8_t version, uint32_t flags);
void hls__box_end(hls_buf_t *b, size_t at);

/* ---- bit reader over an RBSP (emulation prevention already removed) ---- */

typedef struct hls_br {
    const uint8_t *p;
    size_t len;  /* bytes */
    size_t pos;  /* bits */
    int overrun; /* a read went past the end; values read since are 0 */
} hls_br_t;

void hls__br_init(hls_br_t *br, const uint8_t *p, size_t len);
uint32_t hls__br_u(hls_br_t *br, unsigned n); /* n <= 32 */
void hls__br_skip(hls_br_t *br, size_t n);
/** Exp-Golomb; more than 31 leading zeros sets `overrun` and returns 0. */
uint32_t hls__br_ue(hls_br_t *br);
int32_t hls__br_se(hls_br_t *br);

/* ---- hls_nal.c: H.264 / HEVC ---- */

/**
 * Iterates the NAL units of an Annex-B buffer: start with *off = 0; each call stores the next NAL
 * (without start code and trailing zero bytes) and returns 1, or returns 0 at the end. Returns -1
 * when the buffer does not start with a start code.
 */
int hls__annexb_next(const uint8_t *p, size_t len, size_t *off, const uint8_t **nal,
                     size_t *nal_len);
/** Copies `src` into `dst` (at least `len` bytes) without emulation-prevention bytes. */
size_t hls__unescape(uint8_t *dst, const uint8_t *src, size_t len);

typedef struct hls_sps_info {
    uint32_t width, height;
    uint32_t chroma_format_idc;
    uint32_t bit_depth_luma, bit_depth_chroma; /* minus 8 */
    /* H.264 */
    uint8_t profile_idc, constraint_flags, level_idc;
    /* HEVC */
    uint8_t profile_space, tier_flag, max_sub_layers, temporal_id_nesting;
    uint32_t compat_flags;
    uint8_t constraint[6];
} hls_sps_info_t;

/** Parses an H.264 SPS NAL (with its header byte). Returns 0 or HLS_ERR_BITSTREAM. */
int hls__h264_sps_parse(const uint8_t *nal, size_t len, hls_sps_info_t *out, const char **err_desc);
/** Parses an HEVC SPS NAL (with its two header bytes). Returns 0 or HLS_ERR_BITSTREAM. */
int hls__hevc_sps_parse(const uint8_t *nal, size_t len, hls_sps_info_t *out, const char **err_desc);

/* The parameter sets of one video track, owned copies. */
typedef struct hls_psets {
    hls_codec_t codec;
    uint8_t *vps, *sps, *pps;
    size_t vps_len, sps_len, pps_len;
} hls_psets_t;

void hls__psets_dispose(hls_psets_t *ps);
/** Stores a copy of one parameter set NAL (type decides the slot). Returns 0, NOMEM or TOO_BIG. */
int hls__psets_set(hls_psets_t *ps, const uint8_t *nal, size_t len);
/** Whether all parameter sets the codec needs are there. */
int hls__psets_complete(const hls_psets_t *ps);
/**
 * Fills `ps` from extradata: Annex-B, avcC or hvcC. Returns 0, HLS_ERR_BITSTREAM, HLS_ERR_NOMEM or
 * HLS_ERR_TOO_BIG.
 */
int hls__psets_from_extradata(hls_psets_t *ps, hls_codec_t codec, const uint8_t *p, size_t len,
                              const char **err_desc);
/** Parses the SPS of `ps`. Returns 0 or HLS_ERR_BITSTREAM (also for a missing SPS). */
int hls__psets_info(const hls_psets_t *ps, hls_sps_info_t *out, const char **err_desc);
/** Appends the avcC / hvcC record (box payload, no box header). */
void hls__avcc_build(hls_buf_t *b, const hls_psets_t *ps, const hls_sps_info_t *si);
void hls__hvcc_build(hls_buf_t *b, const hls_psets_t *ps, const hls_sps_info_t *si);
/** RFC 6381 codec string into out (>= 48 bytes). */
void hls__codec_string(char *out, size_t cap, hls_codec_t codec, const hls_sps_info_t *si);

/* What hls__annexb_to_sample() saw besides the slices. */
typedef struct hls_au_info {
    int irap;                       /* an IDR (H.264) or IRAP (HEVC) slice */
    const uint8_t *vps, *sps, *pps; /* in-band parameter sets (point into the input), or NULL */
    size_t vps_len, sps_len, pps_len;
} hls_au_info_t;

/**
 * Converts one Annex-B access unit into 4-byte length-prefixed NALs appended to `out`, dropping
 * AUD, parameter sets and filler data (noted in `ai`). Returns 0, HLS_ERR_BITSTREAM (not Annex-B,
 * a bad NAL header, no NAL left) or HLS_ERR_NOMEM.
 */
int hls__annexb_to_sample(hls_codec_t codec, const uint8_t *p, size_t len, hls_buf_t *out,
                          hls_au_info_t *ai, const char **err_desc);

/* ---- hls_audio.c: AAC and Opus ---- */

typedef struct hls_adts {
    uint32_t aot; /* audio object type: profile + 1 */
    uint32_t sf_index;
    uint32_t sample_rate;
    uint32_t channels; /* channel configuration */
    size_t header_len; /* 7, or 9 with CRC */
    size_t frame_len;  /* header included */
} hls_adts_t;

/** Parses the ADTS header at p. Returns 0, HLS_ERR_AGAIN (fewer than 7 bytes), HLS_ERR_BITSTREAM
 * or HLS_ERR_UNSUPPORTED (several raw blocks, channel configuration 0). */
int hls__adts_parse(const uint8_t *p, size_t len, hls_adts_t *out, const char **err_desc);
uint32_t hls__aac_rate(uint32_t sf_index); /* 0 for a bad index */

typedef struct hls_asc {
    uint32_t aot, sf_index, sample_rate, channels;
} hls_asc_t;

/** Parses an AudioSpecificConfig. Returns 0 or HLS_ERR_BITSTREAM / HLS_ERR_UNSUPPORTED. */
int hls__asc_parse(const uint8_t *p, size_t len, hls_asc_t *out, const char **err_desc);
/** Writes a two-byte AudioSpecificConfig. */
void hls__asc_build(uint8_t out[2], uint32_t aot, uint32_t sf_index, uint32_t channels);
/** Appends an esds box for an AAC track carrying `asc`. */
void hls__esds_build(hls_buf_t *b, const uint8_t *asc, size_t asc_len, uint32_t bitrate);

typedef struct hls_opus_head {
    uint32_t channels, pre_skip, input_rate, mapping_family, stream_count, coupled_count;
    int32_t gain;
    uint8_t mapping[255];
} hls_opus_head_t;

/** Parses an OpusHead. Returns 0 or HLS_ERR_BITSTREAM. */
int hls__opus_head_parse(const uint8_t *p, size_t len, hls_opus_head_t *out, const char **err_desc);
/** Appends a dOps box. */
void hls__dops_build(hls_buf_t *b, const hls_opus_head_t *h);
/** Duration of an Opus packet in 48 kHz samples from its TOC. Returns 0 for a malformed packet. */
uint32_t hls__opus_duration(const uint8_t *p, size_t len);

/* ---- hls_cmaf.c: the box writer ---- */

typedef struct hls_init_desc {
    hls_codec_t codec;
    uint32_t track_id;
    uint32_t timescale;
    uint32_t width, height;
    uint32_t sample_rate, channels;
    const uint8_t *config; /* avcC/hvcC payload, AudioSpecificConfig, or NULL for Opus */
    size_t config_len;
    const hls_opus_head_t *opus;
} hls_init_desc_t;

/** Appends ftyp+moov. Check b->failed. */
void hls__cmaf_init(hls_buf_t *b, const hls_init_desc_t *d);

typedef struct hls_sample {
    uint32_t duration;
    uint32_t size;
    int32_t cto; /* composition time offset */
    uint8_t sync;
} hls_sample_t;

/** Appends moof+mdat for n samples whose bytes are mdat[0..sum of sizes). Check b->failed. */
void hls__cmaf_fragment(hls_buf_t *b, uint32_t seq, uint32_t track_id, uint64_t base_dts,
                        const hls_sample_t *s, size_t n, int with_cto, const uint8_t *mdat,
                        size_t mdat_len);

/* ---- hls_mp4read.c: a validating box reader (tests, fuzzing) ---- */

/** Called for every box; `depth` 0 for top-level. Return non-zero to stop the walk. */
typedef int (*hls_mp4_visit_cb)(void *ud, const char type[4], const uint8_t *payload, size_t len,
                                int depth);

/** Walks boxes, descending into known containers. Returns 0 or HLS_ERR_BITSTREAM. */
int hls__mp4_walk(const uint8_t *p, size_t len, hls_mp4_visit_cb cb, void *ud,
                  const char **err_desc);

typedef struct hls_mp4_init {
    uint32_t track_id, timescale;
    char handler[5];
    char entry[5];  /* sample entry type: avc1, hvc1, mp4a, Opus */
    char config[5]; /* avcC, hvcC, esds, dOps */
    uint32_t width, height, channels, sample_rate;
    int has_trex;
} hls_mp4_init_t;

int hls__mp4_read_init(const uint8_t *p, size_t len, hls_mp4_init_t *out, const char **err_desc);

typedef struct hls_mp4_frag {
    uint32_t seq, track_id, nsamples;
    uint64_t base_dts;
    uint64_t duration;    /* sum of sample durations */
    uint32_t first_flags; /* first sample's flags */
    int first_sync;
    size_t mdat_len; /* payload */
    size_t nboxes;   /* moof+mdat pairs; read_fragment requires exactly one */
} hls_mp4_frag_t;

/**
 * Reads one CMAF chunk (moof+mdat), checking that the trun's data offset and sizes land inside the
 * mdat. Returns 0 or HLS_ERR_BITSTREAM.
 */
int hls__mp4_read_fragment(const uint8_t *p, size_t len, hls_mp4_frag_t *out,
                           const char **err_desc);

/* hls_playlist.c, shared with hls_mpd.c: one past the last complete segment of a track, and its
 * peak bits/s (the packager's figure, else measured over recent segments, else a guess). */
uint64_t hls__complete_end(const hls_track_t *t);
/* The first segment a render may list: the track's first, or with `dvr` unset the first of the
 * current run (restored segments of an earlier run are a prefix of the timeline). */
uint64_t hls__list_from(const hls_track_t *t, int dvr);
uint64_t hls__peak_bandwidth(const hls_track_t *t);
/* The end of a renderer: 0, or HLS_ERR_NOMEM with `out` cut back to its `len0` bytes when an
 * append failed. */
int hls__render_done(sw_str_t *out, size_t len0);

#endif
