/*
 * hls_nal.c: H.264 and HEVC bitstream facts. Splits Annex-B, removes emulation prevention, parses
 * just enough of an SPS for the sample entry (size, profile, level), builds avcC/hvcC records and
 * RFC 6381 codec strings, and turns an Annex-B access unit into the length-prefixed form of ISO
 * 14496-15. Every input is untrusted: all reads are bounded and faults come back as err_desc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hls_int.h"

/* ---- bit reader ---- */

void hls__br_init(hls_br_t *br, const uint8_t *p, size_t len)
{
    br->p = p;
    br->len = len;
    br->pos = 0;
    br->overrun = 0;
}

uint32_t hls__br_u(hls_br_t *br, unsigned n)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        if (br->pos >= br->len * 8) {
            br->overrun = 1;
            return 0;
        }
        v = (v << 1) | ((br->p[br->pos >> 3] >> (7 - (br->pos & 7))) & 1);
        br->pos++;
    }
    return v;
}

void hls__br_skip(hls_br_t *br, size_t n)
{
    if (n > br->len * 8 - br->pos) {
        br->overrun = 1;
        br->pos = br->len * 8;
        return;
    }
    br->pos += n;
}

uint32_t hls__br_ue(hls_br_t *br)
{
    unsigned zeros = 0;
    while (hls__br_u(br, 1) == 0) {
        /* Past the end every bit reads 0; also stop values that do not fit 32 bits. */
        if (br->overrun || ++zeros > 31) {
            br->overrun = 1;
            return 0;
        }
    }
    if (zeros == 0)
        return 0;
    return (uint32_t)(((uint64_t)1 << zeros) - 1 + hls__br_u(br, zeros));
}

int32_t hls__br_se(hls_br_t *br)
{
    uint32_t k = hls__br_ue(br);
    return (k & 1) ? (int32_t)((k + 1) / 2) : -(int32_t)(k / 2);
}

/* ---- Annex-B ---- */

/*
 * Offset of the next 00 00 01 at or after `i`, or len. Every byte of every video frame passes
 * here, so it looks for the rare 01 byte with memchr (vectorised by the C library) and only then
 * checks the two zeros before it.
 */
static size_t find_start(const uint8_t *p, size_t len, size_t i)
{
    while (i + 3 <= len) {
        const uint8_t *one = memchr(p + i + 2, 1, len - i - 2);
        if (one == NULL)
            return len;
        size_t k = (size_t)(one - p);
        if (p[k - 1] == 0 && p[k - 2] == 0)
            return k - 2;
        i = k - 1; /* the next 01 must be past this one */
    }
    return len;
}

int hls__annexb_next(const uint8_t *p, size_t len, size_t *off, const uint8_t **nal,
                     size_t *nal_len)
{
    size_t i = *off;

    if (i == 0) {
        size_t s = find_start(p, len, 0);
        /* Only zero bytes may come before the first start code. */
        for (size_t k = 0; k < s; k++)
            if (p[k] != 0)
                return -1;
        if (s == len)
            return -1;
        i = s + 3;
    }
    while (i < len) {
        size_t next = find_start(p, len, i);
        size_t end = next;
        while (end > i && p[end - 1] == 0)
            end--;
        *off = next == len ? len : next + 3;
        if (end > i) {
            *nal = p + i;
            *nal_len = end - i;
            return 1;
        }
        i = *off; /* an empty NAL between two start codes */
    }
    *off = len;
    return 0;
}

size_t hls__unescape(uint8_t *dst, const uint8_t *src, size_t len)
{
    size_t n = 0, zeros = 0;
    for (size_t i = 0; i < len; i++) {
        if (zeros >= 2 && src[i] == 3) {
            zeros = 0;
            continue;
        }
        zeros = src[i] == 0 ? zeros + 1 : 0;
        dst[n++] = src[i];
    }
    return n;
}

/* ---- SPS ---- */

/* Unescapes at most the first 512 bytes: everything we read sits well before that. */
#define SPS_PREFIX 512

static void skip_scaling_list(hls_br_t *br, int size)
{
    int last = 8, next = 8;
    for (int j = 0; j < size && !br->overrun; j++) {
        if (next != 0) {
            int32_t delta = hls__br_se(br);
            if (delta < -128 || delta > 127) {
                br->overrun = 1; /* delta_scale out of range: treat as unparsable */
                return;
            }
            next = (last + delta + 256) % 256;
        }
        last = next == 0 ? last : next;
    }
}

static int crop_size(hls_sps_info_t *out, uint32_t w, uint32_t h, uint32_t cx, uint32_t cy,
                     const uint32_t crop[4], const char **err_desc)
{
    uint64_t cw = (uint64_t)cx * ((uint64_t)crop[0] + crop[1]);
    uint64_t ch = (uint64_t)cy * ((uint64_t)crop[2] + crop[3]);
    if (cw >= w || ch >= h) {
        *err_desc = "SPS cropping exceeds the picture";
        return HLS_ERR_BITSTREAM;
    }
    out->width = (uint32_t)(w - cw);
    out->height = (uint32_t)(h - ch);
    if (out->width == 0 || out->height == 0 || out->width > HLS_MAX_DIM ||
        out->height > HLS_MAX_DIM) {
        *err_desc = "SPS picture size out of range";
        return HLS_ERR_BITSTREAM;
    }
    return 0;
}

int hls__h264_sps_parse(const uint8_t *nal, size_t len, hls_sps_info_t *out, const char **err_desc)
{
    uint8_t rbsp[SPS_PREFIX];
    hls_br_t br;

    memset(out, 0, sizeof(*out));
    if (len < 4 || (nal[0] & 0x80) || (nal[0] & 0x1f) != 7) {
        *err_desc = "not an H.264 SPS";
        return HLS_ERR_BITSTREAM;
    }
    size_t n = hls__unescape(rbsp, nal + 1, len - 1 < SPS_PREFIX ? len - 1 : SPS_PREFIX);
    hls__br_init(&br, rbsp, n);
    out->profile_idc = (uint8_t)hls__br_u(&br, 8);
    out->constraint_flags = (uint8_t)hls__br_u(&br, 8);
    out->level_idc = (uint8_t)hls__br_u(&br, 8);
    if (hls__br_ue(&br) > 31) {
        *err_desc = "H.264 SPS id out of range";
        return HLS_ERR_BITSTREAM;
    }
    out->chroma_format_idc = 1;
    switch (out->profile_idc) {
    case 100:
    case 110:
    case 122:
    case 244:
    case 44:
    case 83:
    case 86:
    case 118:
    case 128:
    case 138:
    case 139:
    case 134:
    case 135:
        out->chroma_format_idc = hls__br_ue(&br);
        if (out->chroma_format_idc > 3) {
            *err_desc = "H.264 SPS chroma_format_idc out of range";
            return HLS_ERR_BITSTREAM;
        }
        if (out->chroma_format_idc == 3 && hls__br_u(&br, 1))
            out->chroma_format_idc = 0; /* separate colour planes crop like monochrome */
        out->bit_depth_luma = hls__br_ue(&br);
        out->bit_depth_chroma = hls__br_ue(&br);
        if (out->bit_depth_luma > 6 || out->bit_depth_chroma > 6) {
            *err_desc = "H.264 SPS bit depth out of range";
            return HLS_ERR_BITSTREAM;
        }
        hls__br_u(&br, 1); /* qpprime_y_zero_transform_bypass_flag */
        if (hls__br_u(&br, 1)) {
            int lists = out->chroma_format_idc == 3 ? 12 : 8;
            for (int i = 0; i < lists; i++)
                if (hls__br_u(&br, 1))
                    skip_scaling_list(&br, i < 6 ? 16 : 64);
        }
        break;
    default:
        break;
    }
    if (hls__br_ue(&br) > 12) {
        *err_desc = "H.264 SPS log2_max_frame_num out of range";
        return HLS_ERR_BITSTREAM;
    }
    uint32_t poc_type = hls__br_ue(&br);
    if (poc_type == 0) {
        if (hls__br_ue(&br) > 12) {
            *err_desc = "H.264 SPS log2_max_poc_lsb out of range";
            return HLS_ERR_BITSTREAM;
        }
    } else if (poc_type == 1) {
        hls__br_u(&br, 1);
        hls__br_se(&br);
        hls__br_se(&br);
        uint32_t cycle = hls__br_ue(&br);
        if (cycle > 255) {
            *err_desc = "H.264 SPS POC cycle too long";
            return HLS_ERR_BITSTREAM;
        }
        for (uint32_t i = 0; i < cycle && !br.overrun; i++)
            hls__br_se(&br);
    } else if (poc_type != 2) {
        *err_desc = "H.264 SPS pic_order_cnt_type out of range";
        return HLS_ERR_BITSTREAM;
    }
    hls__br_ue(&br); /* max_num_ref_frames */
    hls__br_u(&br, 1);
    uint32_t w_mbs = hls__br_ue(&br) + 1;
    uint32_t h_units = hls__br_ue(&br) + 1;
    uint32_t frame_mbs_only = hls__br_u(&br, 1);
    if (!frame_mbs_only)
        hls__br_u(&br, 1);
    hls__br_u(&br, 1); /* direct_8x8_inference_flag */
    uint32_t crop[4] = {0, 0, 0, 0};
    if (hls__br_u(&br, 1))
        for (int i = 0; i < 4; i++)
            crop[i] = hls__br_ue(&br);
    if (br.overrun) {
        *err_desc = "H.264 SPS truncated";
        return HLS_ERR_BITSTREAM;
    }
    if (w_mbs > HLS_MAX_DIM / 16 || h_units > HLS_MAX_DIM / 16) {
        *err_desc = "SPS picture size out of range";
        return HLS_ERR_BITSTREAM;
    }
    uint32_t cx = 1, cy = 2 - frame_mbs_only;
    if (out->chroma_format_idc == 1) {
        cx = 2;
        cy *= 2;
    } else if (out->chroma_format_idc == 2) {
        cx = 2;
    }
    return crop_size(out, w_mbs * 16, h_units * 16 * (2 - frame_mbs_only), cx, cy, crop, err_desc);
}

int hls__hevc_sps_parse(const uint8_t *nal, size_t len, hls_sps_info_t *out, const char **err_desc)
{
    uint8_t rbsp[SPS_PREFIX];
    hls_br_t br;

    memset(out, 0, sizeof(*out));
    if (len < 4 || (nal[0] & 0x80) || ((nal[0] >> 1) & 0x3f) != 33) {
        *err_desc = "not an HEVC SPS";
        return HLS_ERR_BITSTREAM;
    }
    size_t n = hls__unescape(rbsp, nal + 2, len - 2 < SPS_PREFIX ? len - 2 : SPS_PREFIX);
    hls__br_init(&br, rbsp, n);
    hls__br_u(&br, 4); /* sps_video_parameter_set_id */
    uint32_t sub = hls__br_u(&br, 3);
    if (sub > 6) {
        *err_desc = "HEVC SPS max_sub_layers out of range";
        return HLS_ERR_BITSTREAM;
    }
    out->max_sub_layers = (uint8_t)(sub + 1);
    out->temporal_id_nesting = (uint8_t)hls__br_u(&br, 1);
    /* profile_tier_level(1, sub) */
    out->profile_space = (uint8_t)hls__br_u(&br, 2);
    out->tier_flag = (uint8_t)hls__br_u(&br, 1);
    out->profile_idc = (uint8_t)hls__br_u(&br, 5);
    out->compat_flags = hls__br_u(&br, 32);
    for (int i = 0; i < 6; i++)
        out->constraint[i] = (uint8_t)hls__br_u(&br, 8);
    out->level_idc = (uint8_t)hls__br_u(&br, 8);
    uint32_t prof_present[8] = {0}, level_present[8] = {0};
    for (uint32_t i = 0; i < sub; i++) {
        prof_present[i] = hls__br_u(&br, 1);
        level_present[i] = hls__br_u(&br, 1);
    }
    if (sub > 0)
        for (uint32_t i = sub; i < 8; i++)
            hls__br_u(&br, 2);
    for (uint32_t i = 0; i < sub; i++) {
        if (prof_present[i])
            hls__br_skip(&br, 88);
        if (level_present[i])
            hls__br_skip(&br, 8);
    }
    if (hls__br_ue(&br) > 15) {
        *err_desc = "HEVC SPS id out of range";
        return HLS_ERR_BITSTREAM;
    }
    out->chroma_format_idc = hls__br_ue(&br);
    if (out->chroma_format_idc > 3) {
        *err_desc = "HEVC SPS chroma_format_idc out of range";
        return HLS_ERR_BITSTREAM;
    }
    uint32_t chroma_for_crop = out->chroma_format_idc;
    if (out->chroma_format_idc == 3 && hls__br_u(&br, 1))
        chroma_for_crop = 0;
    uint32_t w = hls__br_ue(&br);
    uint32_t h = hls__br_ue(&br);
    uint32_t crop[4] = {0, 0, 0, 0};
    if (hls__br_u(&br, 1))
        for (int i = 0; i < 4; i++)
            crop[i] = hls__br_ue(&br);
    out->bit_depth_luma = hls__br_ue(&br);
    out->bit_depth_chroma = hls__br_ue(&br);
    if (br.overrun) {
        *err_desc = "HEVC SPS truncated";
        return HLS_ERR_BITSTREAM;
    }
    if (out->bit_depth_luma > 8 || out->bit_depth_chroma > 8) {
        *err_desc = "HEVC SPS bit depth out of range";
        return HLS_ERR_BITSTREAM;
    }
    if (w == 0 || h == 0 || w > HLS_MAX_DIM || h > HLS_MAX_DIM) {
        *err_desc = "SPS picture size out of range";
        return HLS_ERR_BITSTREAM;
    }
    uint32_t cx = chroma_for_crop == 1 || chroma_for_crop == 2 ? 2 : 1;
    uint32_t cy = chroma_for_crop == 1 ? 2 : 1;
    return crop_size(out, w, h, cx, cy, crop, err_desc);
}

/* ---- parameter sets ---- */

static int nal_type(hls_codec_t codec, const uint8_t *nal)
{
    return codec == HLS_CODEC_HEVC ? (nal[0] >> 1) & 0x3f : nal[0] & 0x1f;
}

void hls__psets_dispose(hls_psets_t *ps)
{
    free(ps->vps);
    free(ps->sps);
    free(ps->pps);
    hls_codec_t codec = ps->codec;
    memset(ps, 0, sizeof(*ps));
    ps->codec = codec;
}

static int set_one(uint8_t **slot, size_t *slot_len, const uint8_t *nal, size_t len)
{
    if (len > HLS_MAX_PS)
        return HLS_ERR_TOO_BIG;
    uint8_t *p = malloc(len);
    if (p == NULL)
        return HLS_ERR_NOMEM;
    memcpy(p, nal, len);
    free(*slot);
    *slot = p;
    *slot_len = len;
    return 0;
}

int hls__psets_set(hls_psets_t *ps, const uint8_t *nal, size_t len)
{
    if (len < 2)
        return HLS_ERR_BITSTREAM;
    int t = nal_type(ps->codec, nal);
    if (ps->codec == HLS_CODEC_HEVC) {
        if (t == 32)
            return set_one(&ps->vps, &ps->vps_len, nal, len);
        if (t == 33)
            return set_one(&ps->sps, &ps->sps_len, nal, len);
        if (t == 34)
            return set_one(&ps->pps, &ps->pps_len, nal, len);
    } else {
        if (t == 7)
            return set_one(&ps->sps, &ps->sps_len, nal, len);
        if (t == 8)
            return set_one(&ps->pps, &ps->pps_len, nal, len);
    }
    return 0;
}

int hls__psets_complete(const hls_psets_t *ps)
{
    if (ps->sps == NULL || ps->pps == NULL)
        return 0;
    return ps->codec != HLS_CODEC_HEVC || ps->vps != NULL;
}

static int psets_from_avcc(hls_psets_t *ps, const uint8_t *p, size_t len, const char **err_desc)
{
    if (len < 7 || p[0] != 1) {
        *err_desc = "avcC too short or bad version";
        return HLS_ERR_BITSTREAM;
    }
    size_t i = 5;
    for (int kind = 0; kind < 2; kind++) {
        if (i >= len)
            goto truncated;
        unsigned count = kind == 0 ? p[i] & 0x1f : p[i];
        i++;
        for (unsigned k = 0; k < count; k++) {
            if (i + 2 > len)
                goto truncated;
            size_t n = ((size_t)p[i] << 8) | p[i + 1];
            i += 2;
            if (n > len - i || n < 2)
                goto truncated;
            int rv = hls__psets_set(ps, p + i, n);
            if (rv != 0)
                return rv;
            i += n;
        }
    }
    return 0;
truncated:
    *err_desc = "avcC truncated";
    return HLS_ERR_BITSTREAM;
}

static int psets_from_hvcc(hls_psets_t *ps, const uint8_t *p, size_t len, const char **err_desc)
{
    if (len < 23 || p[0] != 1) {
        *err_desc = "hvcC too short or bad version";
        return HLS_ERR_BITSTREAM;
    }
    unsigned arrays = p[22];
    size_t i = 23;
    for (unsigned a = 0; a < arrays; a++) {
        if (i + 3 > len)
            goto truncated;
        unsigned count = ((unsigned)p[i + 1] << 8) | p[i + 2];
        i += 3;
        for (unsigned k = 0; k < count; k++) {
            if (i + 2 > len)
                goto truncated;
            size_t n = ((size_t)p[i] << 8) | p[i + 1];
            i += 2;
            if (n > len - i || n < 2)
                goto truncated;
            int rv = hls__psets_set(ps, p + i, n);
            if (rv != 0)
                return rv;
            i += n;
        }
    }
    return 0;
truncated:
    *err_desc = "hvcC truncated";
    return HLS_ERR_BITSTREAM;
}

int hls__psets_from_extradata(hls_psets_t *ps, hls_codec_t codec, const uint8_t *p, size_t len,
                              const char **err_desc)
{
    ps->codec = codec;
    if (len >= 3 && p[0] == 0 && p[1] == 0 && (p[2] == 1 || (len >= 4 && p[2] == 0 && p[3] == 1))) {
        size_t off = 0, n;
        const uint8_t *nal;
        int r;
        while ((r = hls__annexb_next(p, len, &off, &nal, &n)) == 1) {
            if (nal[0] & 0x80) {
                *err_desc = "forbidden_zero_bit set in a parameter set";
                return HLS_ERR_BITSTREAM;
            }
            int rv = hls__psets_set(ps, nal, n);
            if (rv != 0) {
                *err_desc = "bad parameter set in extradata";
                return rv;
            }
        }
        if (r < 0) {
            *err_desc = "extradata is not Annex-B";
            return HLS_ERR_BITSTREAM;
        }
        return 0;
    }
    if (codec == HLS_CODEC_HEVC)
        return psets_from_hvcc(ps, p, len, err_desc);
    return psets_from_avcc(ps, p, len, err_desc);
}

int hls__psets_info(const hls_psets_t *ps, hls_sps_info_t *out, const char **err_desc)
{
    if (ps->sps == NULL) {
        *err_desc = "no SPS";
        return HLS_ERR_BITSTREAM;
    }
    if (ps->codec == HLS_CODEC_HEVC)
        return hls__hevc_sps_parse(ps->sps, ps->sps_len, out, err_desc);
    return hls__h264_sps_parse(ps->sps, ps->sps_len, out, err_desc);
}

void hls__avcc_build(hls_buf_t *b, const hls_psets_t *ps, const hls_sps_info_t *si)
{
    hls__put8(b, 1);
    hls__put(b, ps->sps + 1, 3); /* profile, constraint flags, level as coded in the SPS */
    hls__put8(b, 0xff);          /* 4-byte NAL lengths */
    hls__put8(b, 0xe1);
    hls__put16(b, (uint32_t)ps->sps_len);
    hls__put(b, ps->sps, ps->sps_len);
    hls__put8(b, 1);
    hls__put16(b, (uint32_t)ps->pps_len);
    hls__put(b, ps->pps, ps->pps_len);
    /* ISO 14496-15 wants the chroma and bit-depth extension for the high profiles. */
    if (si->profile_idc == 100 || si->profile_idc == 110 || si->profile_idc == 122 ||
        si->profile_idc == 144) {
        hls__put8(b, 0xfc | (si->chroma_format_idc & 3));
        hls__put8(b, 0xf8 | (si->bit_depth_luma & 7));
        hls__put8(b, 0xf8 | (si->bit_depth_chroma & 7));
        hls__put8(b, 0);
    }
}

static void hvcc_array(hls_buf_t *b, int type, const uint8_t *nal, size_t len)
{
    hls__put8(b, 0x80 | type); /* array_completeness: every set is here, none in-band */
    hls__put16(b, 1);
    hls__put16(b, (uint32_t)len);
    hls__put(b, nal, len);
}

void hls__hvcc_build(hls_buf_t *b, const hls_psets_t *ps, const hls_sps_info_t *si)
{
    hls__put8(b, 1);
    hls__put8(b, (uint32_t)(si->profile_space << 6) | (uint32_t)(si->tier_flag << 5) |
                     (si->profile_idc & 0x1f));
    hls__put32(b, si->compat_flags);
    hls__put(b, si->constraint, 6);
    hls__put8(b, si->level_idc);
    hls__put16(b, 0xf000); /* min_spatial_segmentation_idc 0 */
    hls__put8(b, 0xfc);    /* parallelismType unknown */
    hls__put8(b, 0xfc | (si->chroma_format_idc & 3));
    hls__put8(b, 0xf8 | (si->bit_depth_luma & 7));
    hls__put8(b, 0xf8 | (si->bit_depth_chroma & 7));
    hls__put16(b, 0); /* avgFrameRate */
    hls__put8(b, (uint32_t)((si->max_sub_layers & 7) << 3) |
                     (uint32_t)((si->temporal_id_nesting & 1) << 2) | 3);
    hls__put8(b, 3);
    hvcc_array(b, 32, ps->vps, ps->vps_len);
    hvcc_array(b, 33, ps->sps, ps->sps_len);
    hvcc_array(b, 34, ps->pps, ps->pps_len);
}

static uint32_t reverse32(uint32_t v)
{
    uint32_t r = 0;
    for (int i = 0; i < 32; i++, v >>= 1)
        r = (r << 1) | (v & 1);
    return r;
}

void hls__codec_string(char *out, size_t cap, hls_codec_t codec, const hls_sps_info_t *si)
{
    if (codec == HLS_CODEC_H264) {
        snprintf(out, cap, "avc1.%02x%02x%02x", si->profile_idc, si->constraint_flags,
                 si->level_idc);
        return;
    }
    /* ISO 14496-15 annex E: hvc1.[A-C]?profile.compat(reversed, hex).[LH]level(.constraint)* with
     * trailing zero constraint bytes left out. */
    static const char *space[4] = {"", "A", "B", "C"};
    int n = snprintf(out, cap, "hvc1.%s%u.%x.%c%u", space[si->profile_space & 3], si->profile_idc,
                     reverse32(si->compat_flags), si->tier_flag ? 'H' : 'L', si->level_idc);
    int last = 5;
    while (last >= 0 && si->constraint[last] == 0)
        last--;
    for (int i = 0; i <= last && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, ".%X", si->constraint[i]);
}

/* ---- access units ---- */

static void note_ps(const uint8_t **slot, size_t *slot_len, const uint8_t *nal, size_t len)
{
    *slot = nal;
    *slot_len = len;
}

int hls__annexb_to_sample(hls_codec_t codec, const uint8_t *p, size_t len, hls_buf_t *out,
                          hls_au_info_t *ai, const char **err_desc)
{
    size_t off = 0, n, start = out->len;
    const uint8_t *nal;
    int r, kept = 0;

    memset(ai, 0, sizeof(*ai));
    while ((r = hls__annexb_next(p, len, &off, &nal, &n)) == 1) {
        if ((nal[0] & 0x80) || (codec == HLS_CODEC_HEVC && n < 2)) {
            *err_desc = "bad NAL unit header";
            goto bad;
        }
        int t = nal_type(codec, nal);
        if (codec == HLS_CODEC_HEVC) {
            if (t == 32) {
                note_ps(&ai->vps, &ai->vps_len, nal, n);
                continue;
            }
            if (t == 33) {
                note_ps(&ai->sps, &ai->sps_len, nal, n);
                continue;
            }
            if (t == 34) {
                note_ps(&ai->pps, &ai->pps_len, nal, n);
                continue;
            }
            if (t == 35 || t == 38)
                continue; /* AUD, filler data */
            if (t >= 16 && t <= 23)
                ai->irap = 1;
        } else {
            if (t == 7) {
                note_ps(&ai->sps, &ai->sps_len, nal, n);
                continue;
            }
            if (t == 8) {
                note_ps(&ai->pps, &ai->pps_len, nal, n);
                continue;
            }
            if (t == 9 || t == 12 || t == 13)
                continue; /* AUD, filler data, SPS extension */
            if (t == 5)
                ai->irap = 1;
        }
        hls__put32(out, (uint32_t)n);
        hls__put(out, nal, n);
        kept++;
    }
    if (r < 0) {
        *err_desc = "access unit is not Annex-B";
        goto bad;
    }
    if (out->failed)
        return HLS_ERR_NOMEM;
    if (kept == 0) {
        *err_desc = "access unit holds no picture data";
        goto bad;
    }
    return 0;
bad:
    out->len = start;
    return HLS_ERR_BITSTREAM;
}
