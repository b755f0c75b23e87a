/*
 * hls_cmaf.c: the ISO-BMFF writer. An init segment is ftyp+moov with one track, empty sample
 * tables and an mvex/trex (ISO 23000-19 7.3.2); a CMAF chunk is moof+mdat with one traf whose tfhd
 * says default-base-is-moof, a version-1 tfdt and a trun carrying every sample's duration, size,
 * flags and (video) composition offset, so no defaults need to line up with the trex.
 */
#include <stdlib.h>
#include <string.h>

#include "hls_int.h"

/* ---- byte writer ---- */

void hls__buf_init(hls_buf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void hls__buf_dispose(hls_buf_t *b)
{
    free(b->p);
    hls__buf_init(b);
}

void hls__buf_reset(hls_buf_t *b)
{
    b->len = 0;
    b->failed = 0;
}

int hls__buf_reserve(hls_buf_t *b, size_t extra)
{
    if (b->failed)
        return HLS_ERR_NOMEM;
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            goto fail;
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL)
        goto fail;
    b->p = p;
    b->cap = cap;
    return 0;
fail:
    b->failed = 1;
    return HLS_ERR_NOMEM;
}

void hls__put(hls_buf_t *b, const void *p, size_t len)
{
    if (len == 0 || hls__buf_reserve(b, len) != 0)
        return;
    memcpy(b->p + b->len, p, len);
    b->len += len;
}

void hls__put8(hls_buf_t *b, uint32_t v)
{
    uint8_t x = (uint8_t)v;
    hls__put(b, &x, 1);
}

void hls__put16(hls_buf_t *b, uint32_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    hls__put(b, x, 2);
}

void hls__put24(hls_buf_t *b, uint32_t v)
{
    uint8_t x[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    hls__put(b, x, 3);
}

void hls__put32(hls_buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    hls__put(b, x, 4);
}

void hls__put64(hls_buf_t *b, uint64_t v)
{
    hls__put32(b, (uint32_t)(v >> 32));
    hls__put32(b, (uint32_t)v);
}

void hls__putzero(hls_buf_t *b, size_t n)
{
    if (n == 0 || hls__buf_reserve(b, n) != 0)
        return;
    memset(b->p + b->len, 0, n);
    b->len += n;
}

size_t hls__box_begin(hls_buf_t *b, const char type[4])
{
    size_t at = b->len;
    hls__put32(b, 0);
    hls__put(b, type, 4);
    return at;
}

size_t hls__fullbox_begin(hls_buf_t *b, const char type[4], uint8_t version, uint32_t flags)
{
    size_t at = hls__box_begin(b, type);
    hls__put8(b, version);
    hls__put24(b, flags);
    return at;
}

void hls__box_end(hls_buf_t *b, size_t at)
{
    if (b->failed)
        return;
    uint32_t size = (uint32_t)(b->len - at);
    b->p[at] = (uint8_t)(size >> 24);
    b->p[at + 1] = (uint8_t)(size >> 16);
    b->p[at + 2] = (uint8_t)(size >> 8);
    b->p[at + 3] = (uint8_t)size;
}

/* ---- init segment ---- */

static void matrix(hls_buf_t *b)
{
    static const uint32_t m[9] = {0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000};
    for (int i = 0; i < 9; i++)
        hls__put32(b, m[i]);
}

static int is_video(hls_codec_t c)
{
    return c == HLS_CODEC_H264 || c == HLS_CODEC_HEVC;
}

static void visual_entry(hls_buf_t *b, const hls_init_desc_t *d)
{
    size_t at = hls__box_begin(b, d->codec == HLS_CODEC_HEVC ? "hvc1" : "avc1");
    hls__putzero(b, 6);
    hls__put16(b, 1); /* data_reference_index */
    hls__putzero(b, 16);
    hls__put16(b, d->width);
    hls__put16(b, d->height);
    hls__put32(b, 0x00480000); /* 72 dpi */
    hls__put32(b, 0x00480000);
    hls__put32(b, 0);
    hls__put16(b, 1);      /* frame_count */
    hls__putzero(b, 32);   /* compressorname */
    hls__put16(b, 0x18);   /* depth */
    hls__put16(b, 0xffff); /* pre_defined = -1 */
    size_t cfg = hls__box_begin(b, d->codec == HLS_CODEC_HEVC ? "hvcC" : "avcC");
    hls__put(b, d->config, d->config_len);
    hls__box_end(b, cfg);
    hls__box_end(b, at);
}

static void audio_entry(hls_buf_t *b, const hls_init_desc_t *d)
{
    size_t at = hls__box_begin(b, d->codec == HLS_CODEC_OPUS ? "Opus" : "mp4a");
    hls__putzero(b, 6);
    hls__put16(b, 1);
    hls__putzero(b, 8);
    hls__put16(b, d->channels);
    hls__put16(b, 16);
    hls__put32(b, 0);
    /* 16.16 rate; rates above 65535 (88.2/96 kHz) do not fit and the esds is what counts. */
    hls__put32(b, (d->sample_rate > 0xffff ? 0 : d->sample_rate) << 16);
    if (d->codec == HLS_CODEC_OPUS)
        hls__dops_build(b, d->opus);
    else
        hls__esds_build(b, d->config, d->config_len, 0);
    hls__box_end(b, at);
}

static void stbl(hls_buf_t *b, const hls_init_desc_t *d)
{
    size_t at = hls__box_begin(b, "stbl");
    size_t stsd = hls__fullbox_begin(b, "stsd", 0, 0);
    hls__put32(b, 1);
    if (is_video(d->codec))
        visual_entry(b, d);
    else
        audio_entry(b, d);
    hls__box_end(b, stsd);
    static const char *empty[3] = {"stts", "stsc", "stco"};
    for (int i = 0; i < 3; i++) {
        size_t e = hls__fullbox_begin(b, empty[i], 0, 0);
        hls__put32(b, 0);
        hls__box_end(b, e);
    }
    size_t stsz = hls__fullbox_begin(b, "stsz", 0, 0);
    hls__put32(b, 0);
    hls__put32(b, 0);
    hls__box_end(b, stsz);
    hls__box_end(b, at);
}

static void trak(hls_buf_t *b, const hls_init_desc_t *d)
{
    int video = is_video(d->codec);
    size_t at = hls__box_begin(b, "trak");

    size_t tkhd = hls__fullbox_begin(b, "tkhd", 0, 3); /* enabled, in movie */
    hls__put32(b, 0);
    hls__put32(b, 0);
    hls__put32(b, d->track_id);
    hls__put32(b, 0);
    hls__put32(b, 0); /* duration: unknown, fragmented */
    hls__putzero(b, 8);
    hls__put16(b, 0); /* layer */
    hls__put16(b, 0); /* alternate_group */
    hls__put16(b, video ? 0 : 0x0100);
    hls__put16(b, 0);
    matrix(b);
    hls__put32(b, video ? d->width << 16 : 0);
    hls__put32(b, video ? d->height << 16 : 0);
    hls__box_end(b, tkhd);

    size_t mdia = hls__box_begin(b, "mdia");
    size_t mdhd = hls__fullbox_begin(b, "mdhd", 0, 0);
    hls__put32(b, 0);
    hls__put32(b, 0);
    hls__put32(b, d->timescale);
    hls__put32(b, 0);
    hls__put16(b, 0x55c4); /* "und" */
    hls__put16(b, 0);
    hls__box_end(b, mdhd);
    size_t hdlr = hls__fullbox_begin(b, "hdlr", 0, 0);
    hls__put32(b, 0);
    hls__put(b, video ? "vide" : "soun", 4);
    hls__putzero(b, 12);
    const char *name = video ? "Shortwave video" : "Shortwave audio";
    hls__put(b, name, strlen(name) + 1);
    hls__box_end(b, hdlr);

    size_t minf = hls__box_begin(b, "minf");
    if (video) {
        size_t vmhd = hls__fullbox_begin(b, "vmhd", 0, 1);
        hls__putzero(b, 8);
        hls__box_end(b, vmhd);
    } else {
        size_t smhd = hls__fullbox_begin(b, "smhd", 0, 0);
        hls__putzero(b, 4);
        hls__box_end(b, smhd);
    }
    size_t dinf = hls__box_begin(b, "dinf");
    size_t dref = hls__fullbox_begin(b, "dref", 0, 0);
    hls__put32(b, 1);
    size_t url = hls__fullbox_begin(b, "url ", 0, 1); /* media in the same file */
    hls__box_end(b, url);
    hls__box_end(b, dref);
    hls__box_end(b, dinf);
    stbl(b, d);
    hls__box_end(b, minf);
    hls__box_end(b, mdia);
    hls__box_end(b, at);
}

void hls__cmaf_init(hls_buf_t *b, const hls_init_desc_t *d)
{
    size_t ftyp = hls__box_begin(b, "ftyp");
    hls__put(b, "iso6", 4);
    hls__put32(b, 0);
    hls__put(b, "iso6cmfcmp41dash", 16);
    hls__box_end(b, ftyp);

    size_t moov = hls__box_begin(b, "moov");
    size_t mvhd = hls__fullbox_begin(b, "mvhd", 0, 0);
    hls__put32(b, 0);
    hls__put32(b, 0);
    hls__put32(b, 1000);
    hls__put32(b, 0);
    hls__put32(b, 0x00010000); /* rate 1.0 */
    hls__put16(b, 0x0100);     /* volume 1.0 */
    hls__putzero(b, 10);
    matrix(b);
    hls__putzero(b, 24);
    hls__put32(b, d->track_id + 1); /* next_track_ID */
    hls__box_end(b, mvhd);
    trak(b, d);
    size_t mvex = hls__box_begin(b, "mvex");
    size_t trex = hls__fullbox_begin(b, "trex", 0, 0);
    hls__put32(b, d->track_id);
    hls__put32(b, 1); /* default_sample_description_index */
    hls__put32(b, 0);
    hls__put32(b, 0);
    hls__put32(b, 0);
    hls__box_end(b, trex);
    hls__box_end(b, mvex);
    hls__box_end(b, moov);
}

/* ---- fragments ---- */

#define SAMPLE_SYNC     0x02000000u /* sample_depends_on = 2: depends on no other sample */
#define SAMPLE_NON_SYNC 0x01010000u /* depends on others, is_non_sync_sample */

void hls__cmaf_fragment(hls_buf_t *b, uint32_t seq, uint32_t track_id, uint64_t base_dts,
                        const hls_sample_t *s, size_t n, int with_cto, const uint8_t *mdat,
                        size_t mdat_len)
{
    size_t moof = hls__box_begin(b, "moof");
    size_t mfhd = hls__fullbox_begin(b, "mfhd", 0, 0);
    hls__put32(b, seq);
    hls__box_end(b, mfhd);

    size_t traf = hls__box_begin(b, "traf");
    size_t tfhd = hls__fullbox_begin(b, "tfhd", 0, 0x020000); /* default-base-is-moof */
    hls__put32(b, track_id);
    hls__box_end(b, tfhd);
    size_t tfdt = hls__fullbox_begin(b, "tfdt", 1, 0);
    hls__put64(b, base_dts);
    hls__box_end(b, tfdt);

    uint32_t flags = 0x000001 | 0x000100 | 0x000200 | 0x000400 | (with_cto ? 0x000800 : 0);
    size_t trun = hls__fullbox_begin(b, "trun", 1, flags);
    hls__put32(b, (uint32_t)n);
    size_t offset_at = b->len;
    hls__put32(b, 0); /* data_offset, patched below */
    for (size_t i = 0; i < n; i++) {
        hls__put32(b, s[i].duration);
        hls__put32(b, s[i].size);
        hls__put32(b, s[i].sync ? SAMPLE_SYNC : SAMPLE_NON_SYNC);
        if (with_cto)
            hls__put32(b, (uint32_t)s[i].cto);
    }
    hls__box_end(b, trun);
    hls__box_end(b, traf);
    hls__box_end(b, moof);

    if (!b->failed) {
        /* The offset counts from the moof's first byte to the first sample, past mdat's header. */
        uint32_t off = (uint32_t)(b->len - moof + 8);
        b->p[offset_at] = (uint8_t)(off >> 24);
        b->p[offset_at + 1] = (uint8_t)(off >> 16);
        b->p[offset_at + 2] = (uint8_t)(off >> 8);
        b->p[offset_at + 3] = (uint8_t)off;
    }
    hls__put32(b, (uint32_t)(8 + mdat_len));
    hls__put(b, "mdat", 4);
    hls__put(b, mdat, mdat_len);
}
