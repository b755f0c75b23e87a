/*
 * tests/unit/hls/hls_clip.h: the test clip (hls_testdata.h) split into access units at each AUD,
 * shared by the packager tests.
 */
#ifndef HLS_CLIP_H
#define HLS_CLIP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hls_int.h"

typedef struct au {
    const uint8_t *p;
    size_t len;
    int key;
} au_t;

static inline size_t split_clip(const uint8_t *data, size_t len, au_t *out, size_t cap)
{
    size_t off = 0, n, start = 0, count = 0;
    const uint8_t *nal;

    memset(out, 0, cap * sizeof(*out));
    while (hls__annexb_next(data, len, &off, &nal, &n) == 1) {
        /* Back from the NAL to its 4-byte start code. */
        size_t at = (size_t)(nal - data) - 4;
        if ((nal[0] & 0x1f) == 9 && at > 0 && count + 1 < cap) {
            out[count].p = data + start;
            out[count].len = at - start;
            count++;
            start = at;
        }
        if ((nal[0] & 0x1f) == 5)
            out[count].key = 1;
    }
    out[count].p = data + start;
    out[count].len = len - start;
    return count + 1;
}

#endif
