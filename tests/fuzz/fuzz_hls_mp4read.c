/*
 * tests/fuzz/fuzz_hls_mp4read.c: the box reader (hls_mp4read.c) on untrusted bytes: the walk,
 * and reading the input as an init segment and as a CMAF chunk.
 */
#include <stddef.h>
#include <stdint.h>

#include "hls_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *err = NULL;
    hls_mp4_init_t in;
    hls_mp4_frag_t f;

    (void)hls__mp4_walk(data, size, NULL, NULL, &err);
    (void)hls__mp4_read_init(data, size, &in, &err);
    (void)hls__mp4_read_fragment(data, size, &f, &err);
    return 0;
}
