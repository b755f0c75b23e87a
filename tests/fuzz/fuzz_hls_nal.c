/*
 * tests/fuzz/fuzz_hls_nal.c: H.264/HEVC parsing of untrusted bytes (hls_nal.c). The first byte
 * picks the codec; the rest goes through the SPS parsers, avcC/hvcC extradata parsing (and, when
 * that yields a parsable SPS, record building and codec strings) and Annex-B conversion.
 */
#include <stddef.h>
#include <stdint.h>

#include "hls_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    hls_codec_t codec = (data[0] & 1) ? HLS_CODEC_HEVC : HLS_CODEC_H264;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    const char *err = NULL;
    hls_sps_info_t si;

    (void)hls__h264_sps_parse(p, len, &si, &err);
    (void)hls__hevc_sps_parse(p, len, &si, &err);

    hls_psets_t ps = {.codec = codec};
    if (hls__psets_from_extradata(&ps, codec, p, len, &err) == 0 && hls__psets_complete(&ps) &&
        hls__psets_info(&ps, &si, &err) == 0) {
        hls_buf_t b;
        char codecs[48];
        hls__buf_init(&b);
        if (codec == HLS_CODEC_HEVC)
            hls__hvcc_build(&b, &ps, &si);
        else
            hls__avcc_build(&b, &ps, &si);
        hls__codec_string(codecs, sizeof(codecs), codec, &si);
        hls__buf_dispose(&b);
    }
    hls__psets_dispose(&ps);

    hls_buf_t out;
    hls_au_info_t ai;
    hls__buf_init(&out);
    (void)hls__annexb_to_sample(codec, p, len, &out, &ai, &err);
    hls__buf_dispose(&out);
    return 0;
}
