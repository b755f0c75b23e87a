/*
 * hls_mp4read.c: a small validating ISO-BMFF reader. It walks boxes, refusing sizes that do not
 * fit their parent, and reads back the few fields our writer sets, so tests can check what
 * hls_cmaf.c produced and a fuzz target can hammer the walk. It is not a demuxer.
 */
#include <string.h>

#include "hls_int.h"

#define MAX_DEPTH 16

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

/* How many payload bytes precede the child boxes, or -1 when the box holds no boxes. */
static long children_at(const char t[4])
{
    static const char *plain[] = {"moov", "trak", "mdia", "minf", "stbl", "mvex",
                                  "moof", "traf", "dinf", "edts", "udta", "mfra"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (memcmp(t, plain[i], 4) == 0)
            return 0;
    if (memcmp(t, "stsd", 4) == 0 || memcmp(t, "dref", 4) == 0)
        return 8; /* full-box header, entry count */
    if (memcmp(t, "avc1", 4) == 0 || memcmp(t, "avc3", 4) == 0 || memcmp(t, "hvc1", 4) == 0 ||
        memcmp(t, "hev1", 4) == 0)
        return 78; /* VisualSampleEntry */
    if (memcmp(t, "mp4a", 4) == 0 || memcmp(t, "Opus", 4) == 0)
        return 28; /* AudioSampleEntry */
    return -1;
}

static int walk(const uint8_t *p, size_t len, int depth, hls_mp4_visit_cb cb, void *ud,
                const char **err_desc)
{
    if (depth > MAX_DEPTH) {
        *err_desc = "boxes nested too deep";
        return HLS_ERR_BITSTREAM;
    }
    size_t i = 0;
    while (i < len) {
        if (len - i < 8) {
            *err_desc = "box header truncated";
            return HLS_ERR_BITSTREAM;
        }
        uint64_t size = rd32(p + i);
        size_t hdr = 8;
        if (size == 1) {
            if (len - i < 16) {
                *err_desc = "large box header truncated";
                return HLS_ERR_BITSTREAM;
            }
            size = rd64(p + i + 8);
            hdr = 16;
        } else if (size == 0) {
            size = len - i; /* to the end of the enclosing data */
        }
        if (size < hdr || size > len - i) {
            *err_desc = "box size out of bounds";
            return HLS_ERR_BITSTREAM;
        }
        const char *type = (const char *)p + i + 4;
        const uint8_t *payload = p + i + hdr;
        size_t plen = (size_t)size - hdr;
        if (cb != NULL && cb(ud, type, payload, plen, depth) != 0)
            return 0;
        long skip = children_at(type);
        if (skip >= 0) {
            if ((size_t)skip > plen) {
                *err_desc = "container box shorter than its header";
                return HLS_ERR_BITSTREAM;
            }
            int rv = walk(payload + skip, plen - (size_t)skip, depth + 1, cb, ud, err_desc);
            if (rv != 0)
                return rv;
        }
        i += (size_t)size;
    }
    return 0;
}

int hls__mp4_walk(const uint8_t *p, size_t len, hls_mp4_visit_cb cb, void *ud,
                  const char **err_desc)
{
    return walk(p, len, 0, cb, ud, err_desc);
}

/* ---- init segments ---- */

typedef struct init_ctx {
    hls_mp4_init_t *out;
    int ntrak;
} init_ctx_t;

static int on_init_box(void *ud, const char type[4], const uint8_t *p, size_t len, int depth)
{
    init_ctx_t *c = ud;
    hls_mp4_init_t *o = c->out;

    if (memcmp(type, "trak", 4) == 0) {
        c->ntrak++;
    } else if (memcmp(type, "tkhd", 4) == 0 && len >= 16) {
        o->track_id = rd32(p + (p[0] == 1 ? 20 : 12));
    } else if (memcmp(type, "mdhd", 4) == 0 && len >= 16) {
        o->timescale = rd32(p + (p[0] == 1 ? 20 : 12));
    } else if (memcmp(type, "hdlr", 4) == 0 && len >= 12) {
        memcpy(o->handler, p + 8, 4);
    } else if (children_at(type) == 78 && len >= 28) {
        memcpy(o->entry, type, 4);
        o->width = (uint32_t)p[24] << 8 | p[25];
        o->height = (uint32_t)p[26] << 8 | p[27];
    } else if (children_at(type) == 28 && len >= 28) {
        memcpy(o->entry, type, 4);
        o->channels = (uint32_t)p[16] << 8 | p[17];
        o->sample_rate = rd32(p + 24) >> 16;
    } else if (memcmp(type, "avcC", 4) == 0 || memcmp(type, "hvcC", 4) == 0 ||
               memcmp(type, "esds", 4) == 0 || memcmp(type, "dOps", 4) == 0) {
        memcpy(o->config, type, 4);
    } else if (memcmp(type, "trex", 4) == 0 && len >= 24) {
        o->has_trex = 1;
    }
    return 0;
}

int hls__mp4_read_init(const uint8_t *p, size_t len, hls_mp4_init_t *out, const char **err_desc)
{
    init_ctx_t c = {out, 0};

    memset(out, 0, sizeof(*out));
    int rv = hls__mp4_walk(p, len, on_init_box, &c, err_desc);
    if (rv != 0)
        return rv;
    if (c.ntrak != 1 || out->timescale == 0 || out->entry[0] == 0 || out->config[0] == 0) {
        *err_desc = "init segment lacks a track, timescale, sample entry or codec config";
        return HLS_ERR_BITSTREAM;
    }
    return 0;
}

/* ---- fragments ---- */

typedef struct frag_ctx {
    hls_mp4_frag_t *out;
    const uint8_t *base;
    const uint8_t *moof, *mdat;
    size_t moof_size, mdat_size;
    int64_t data_offset;
    int ntrun, ntfdt, bad;
    uint64_t sizes;
} frag_ctx_t;

static int on_frag_box(void *ud, const char type[4], const uint8_t *p, size_t len, int depth)
{
    frag_ctx_t *c = ud;
    hls_mp4_frag_t *o = c->out;

    if (depth == 0) {
        if (memcmp(type, "moof", 4) == 0) {
            o->nboxes++;
            c->moof = p - 8;
            c->moof_size = len + 8;
        } else if (memcmp(type, "mdat", 4) == 0) {
            c->mdat = p;
            c->mdat_size = len;
            o->mdat_len = len;
        }
        return 0;
    }
    if (memcmp(type, "mfhd", 4) == 0 && len >= 8) {
        o->seq = rd32(p + 4);
    } else if (memcmp(type, "tfhd", 4) == 0 && len >= 8) {
        o->track_id = rd32(p + 4);
        if (!(p[1] & 0x02)) /* we only write default-base-is-moof */
            c->bad = 1;
    } else if (memcmp(type, "tfdt", 4) == 0 && len >= 8) {
        c->ntfdt++;
        o->base_dts = p[0] == 1 ? (len >= 12 ? rd64(p + 4) : 0) : rd32(p + 4);
    } else if (memcmp(type, "trun", 4) == 0 && len >= 8) {
        c->ntrun++;
        uint32_t flags = (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        uint32_t n = rd32(p + 4);
        size_t i = 8;
        if (flags & 0x1) {
            if (len < i + 4)
                return c->bad = 1;
            c->data_offset = (int32_t)rd32(p + i);
            i += 4;
        }
        if (flags & 0x4)
            i += 4; /* first_sample_flags */
        size_t per = 4 * (size_t)(!!(flags & 0x100) + !!(flags & 0x200) + !!(flags & 0x400) +
                                  !!(flags & 0x800));
        if (i > len || (per > 0 && n > (len - i) / per) || (per == 0 && n > 0)) {
            c->bad = 1;
            return 1;
        }
        o->nsamples = n;
        for (uint32_t k = 0; k < n; k++) {
            if (flags & 0x100) {
                o->duration += rd32(p + i);
                i += 4;
            }
            if (flags & 0x200) {
                c->sizes += rd32(p + i);
                i += 4;
            }
            if (flags & 0x400) {
                if (k == 0) {
                    o->first_flags = rd32(p + i);
                    o->first_sync = !(o->first_flags & 0x00010000);
                }
                i += 4;
            }
            if (flags & 0x800)
                i += 4;
        }
    }
    return 0;
}

int hls__mp4_read_fragment(const uint8_t *p, size_t len, hls_mp4_frag_t *out, const char **err_desc)
{
    frag_ctx_t c;

    memset(out, 0, sizeof(*out));
    memset(&c, 0, sizeof(c));
    c.out = out;
    c.base = p;
    int rv = hls__mp4_walk(p, len, on_frag_box, &c, err_desc);
    if (rv != 0)
        return rv;
    if (c.bad || out->nboxes != 1 || c.mdat == NULL || c.ntrun != 1 || c.ntfdt != 1) {
        *err_desc = "chunk is not one moof (one traf, tfdt, trun) and one mdat";
        return HLS_ERR_BITSTREAM;
    }
    /* The samples must lie inside the mdat: from moof start + data_offset, sizes back to back. */
    size_t mdat_off = (size_t)(c.mdat - p), moof_off = (size_t)(c.moof - p);
    if (c.data_offset < 0 || (uint64_t)moof_off + (uint64_t)c.data_offset < mdat_off ||
        (uint64_t)moof_off + (uint64_t)c.data_offset + c.sizes > (uint64_t)mdat_off + c.mdat_size) {
        *err_desc = "trun data lies outside the mdat";
        return HLS_ERR_BITSTREAM;
    }
    return 0;
}
