/*
 * hls_audio.c: AAC and Opus facts. ADTS headers (ISO 14496-3 1.A.2), AudioSpecificConfig, the esds
 * box (ISO 14496-1 descriptors), OpusHead (RFC 7845 5.1) and its dOps form, and Opus packet
 * durations from the TOC byte (RFC 6716 3.1).
 */
#include <string.h>

#include "hls_int.h"

static const uint32_t aac_rates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                       22050, 16000, 12000, 11025, 8000,  7350};

uint32_t hls__aac_rate(uint32_t sf_index)
{
    return sf_index < 13 ? aac_rates[sf_index] : 0;
}

int hls__adts_parse(const uint8_t *p, size_t len, hls_adts_t *out, const char **err_desc)
{
    if (len < 7) {
        *err_desc = "ADTS header truncated";
        return HLS_ERR_AGAIN;
    }
    if (p[0] != 0xff || (p[1] & 0xf0) != 0xf0 || (p[1] & 0x06) != 0) {
        *err_desc = "no ADTS sync word";
        return HLS_ERR_BITSTREAM;
    }
    int crc = !(p[1] & 1);
    out->aot = (uint32_t)(p[2] >> 6) + 1;
    out->sf_index = (p[2] >> 2) & 0xf;
    out->sample_rate = hls__aac_rate(out->sf_index);
    out->channels = (uint32_t)((p[2] & 1) << 2) | (p[3] >> 6);
    out->frame_len = ((size_t)(p[3] & 3) << 11) | ((size_t)p[4] << 3) | (p[5] >> 5);
    out->header_len = crc ? 9 : 7;
    if (out->sample_rate == 0) {
        *err_desc = "ADTS sampling frequency index out of range";
        return HLS_ERR_BITSTREAM;
    }
    if (out->frame_len <= out->header_len) {
        *err_desc = "ADTS frame length shorter than its header";
        return HLS_ERR_BITSTREAM;
    }
    if ((p[6] & 3) != 0) {
        *err_desc = "ADTS frame with several raw data blocks";
        return HLS_ERR_UNSUPPORTED;
    }
    if (out->channels == 0) {
        *err_desc = "ADTS channel configuration 0 (program config element)";
        return HLS_ERR_UNSUPPORTED;
    }
    return 0;
}

int hls__asc_parse(const uint8_t *p, size_t len, hls_asc_t *out, const char **err_desc)
{
    hls_br_t br;

    hls__br_init(&br, p, len);
    out->aot = hls__br_u(&br, 5);
    if (out->aot == 31)
        out->aot = 32 + hls__br_u(&br, 6);
    out->sf_index = hls__br_u(&br, 4);
    if (out->sf_index == 15)
        out->sample_rate = hls__br_u(&br, 24);
    else
        out->sample_rate = hls__aac_rate(out->sf_index);
    out->channels = hls__br_u(&br, 4);
    if (br.overrun || len < 2) {
        *err_desc = "AudioSpecificConfig truncated";
        return HLS_ERR_BITSTREAM;
    }
    if (out->aot == 0 || out->sample_rate == 0 || out->sample_rate > 192000) {
        *err_desc = "AudioSpecificConfig with a bad object type or rate";
        return HLS_ERR_BITSTREAM;
    }
    if (out->channels == 0) {
        *err_desc = "AudioSpecificConfig channel configuration 0";
        return HLS_ERR_UNSUPPORTED;
    }
    return 0;
}

void hls__asc_build(uint8_t out[2], uint32_t aot, uint32_t sf_index, uint32_t channels)
{
    uint32_t v = (aot & 0x1f) << 11 | (sf_index & 0xf) << 7 | (channels & 0xf) << 3;
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)v;
}

/* Descriptor headers use one length byte: everything we write is under 128 bytes. */
static void descr(hls_buf_t *b, uint8_t tag, size_t len)
{
    hls__put8(b, tag);
    hls__put8(b, (uint32_t)len);
}

void hls__esds_build(hls_buf_t *b, const uint8_t *asc, size_t asc_len, uint32_t bitrate)
{
    if (asc_len > 64)
        asc_len = 64;
    size_t at = hls__fullbox_begin(b, "esds", 0, 0);
    size_t dsi = 2 + asc_len, dcd = 13 + dsi, es = 3 + 2 + dcd + 3;
    descr(b, 3, es);
    hls__put16(b, 1); /* ES_ID */
    hls__put8(b, 0);  /* no dependency, URL or OCR stream */
    descr(b, 4, dcd);
    hls__put8(b, 0x40); /* Audio ISO/IEC 14496-3 */
    hls__put8(b, 0x15); /* AudioStream, upstream 0, reserved 1 */
    hls__put24(b, 0);   /* bufferSizeDB */
    hls__put32(b, bitrate);
    hls__put32(b, bitrate);
    descr(b, 5, asc_len);
    hls__put(b, asc, asc_len);
    descr(b, 6, 1);
    hls__put8(b, 2); /* SLConfig predefined: MP4 */
    hls__box_end(b, at);
}

int hls__opus_head_parse(const uint8_t *p, size_t len, hls_opus_head_t *out, const char **err_desc)
{
    memset(out, 0, sizeof(*out));
    if (len < 19 || memcmp(p, "OpusHead", 8) != 0) {
        *err_desc = "not an OpusHead";
        return HLS_ERR_BITSTREAM;
    }
    if ((p[8] & 0xf0) != 0) {
        *err_desc = "OpusHead major version not 0";
        return HLS_ERR_BITSTREAM;
    }
    out->channels = p[9];
    out->pre_skip = (uint32_t)p[10] | (uint32_t)p[11] << 8;
    out->input_rate =
        (uint32_t)p[12] | (uint32_t)p[13] << 8 | (uint32_t)p[14] << 16 | (uint32_t)p[15] << 24;
    out->gain = (int16_t)((uint16_t)p[16] | (uint16_t)(p[17] << 8));
    out->mapping_family = p[18];
    if (out->channels == 0) {
        *err_desc = "OpusHead with no channels";
        return HLS_ERR_BITSTREAM;
    }
    if (out->mapping_family == 0) {
        if (out->channels > 2) {
            *err_desc = "OpusHead family 0 with more than two channels";
            return HLS_ERR_BITSTREAM;
        }
        return 0;
    }
    if (len < 21 + (size_t)out->channels) {
        *err_desc = "OpusHead channel mapping truncated";
        return HLS_ERR_BITSTREAM;
    }
    out->stream_count = p[19];
    out->coupled_count = p[20];
    if (out->stream_count == 0 || out->coupled_count > out->stream_count) {
        *err_desc = "OpusHead stream counts inconsistent";
        return HLS_ERR_BITSTREAM;
    }
    memcpy(out->mapping, p + 21, out->channels);
    return 0;
}

void hls__dops_build(hls_buf_t *b, const hls_opus_head_t *h)
{
    /* dOps is OpusHead without the magic, big-endian, version 0 (Opus in ISOBMFF 4.3.2). */
    size_t at = hls__box_begin(b, "dOps");
    hls__put8(b, 0);
    hls__put8(b, h->channels);
    hls__put16(b, h->pre_skip);
    hls__put32(b, h->input_rate);
    hls__put16(b, (uint16_t)(int16_t)h->gain);
    hls__put8(b, h->mapping_family);
    if (h->mapping_family != 0) {
        hls__put8(b, h->stream_count);
        hls__put8(b, h->coupled_count);
        hls__put(b, h->mapping, h->channels);
    }
    hls__box_end(b, at);
}

uint32_t hls__opus_duration(const uint8_t *p, size_t len)
{
    static const uint32_t silk[4] = {480, 960, 1920, 2880}, celt[4] = {120, 240, 480, 960};

    if (len < 1)
        return 0;
    uint32_t config = p[0] >> 3, frame, count;
    if (config < 12)
        frame = silk[config & 3];
    else if (config < 16)
        frame = (config & 1) ? 960 : 480;
    else
        frame = celt[config & 3];
    switch (p[0] & 3) {
    case 0:
        count = 1;
        break;
    case 1:
    case 2:
        count = 2;
        break;
    default:
        if (len < 2)
            return 0;
        count = p[1] & 0x3f;
        break;
    }
    uint32_t d = frame * count;
    return d > 5760 ? 0 : d; /* a packet holds at most 120 ms */
}
