/*
 * tests/fuzz/fuzz_hls_adts.c: audio parsing of untrusted bytes (hls_audio.c): a run of ADTS
 * frames, an AudioSpecificConfig, an OpusHead and an Opus TOC, and the boxes built from them.
 */
#include <stddef.h>
#include <stdint.h>

#include "hls_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *err = NULL;
    hls_adts_t h;
    size_t off = 0;

    while (off < size && hls__adts_parse(data + off, size - off, &h, &err) == 0 &&
           h.frame_len <= size - off)
        off += h.frame_len;

    hls_asc_t asc;
    hls_buf_t b;
    hls__buf_init(&b);
    if (hls__asc_parse(data, size, &asc, &err) == 0)
        hls__esds_build(&b, data, size, 0);
    hls_opus_head_t oh;
    if (hls__opus_head_parse(data, size, &oh, &err) == 0)
        hls__dops_build(&b, &oh);
    hls__buf_dispose(&b);
    (void)hls__opus_duration(data, size);
    return 0;
}
