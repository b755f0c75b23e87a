/*
 * Fuzz target for the SRT streamid parser (origin_streamid.c): any bytes, any length. Whatever is
 * accepted must be a valid resource whose name passes origin_stream_name() or is refused with a
 * reason, and nothing may read outside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "origin_ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char res[256], mode[16], name[65];
    const char *err = NULL;
    /* A copy of exactly `size` bytes, so that ASan sees any read past the end. */
    char *sid = malloc(size ? size : 1);

    if (sid == NULL)
        return 0;
    memcpy(sid, data, size);
    if (origin_streamid_parse(sid, size, res, sizeof(res), mode, sizeof(mode), &err) == 0) {
        if (strlen(res) == 0 || strlen(mode) == 0)
            abort();
        if (origin_stream_name(res, name, sizeof(name), &err) == 0 && strlen(name) > 64)
            abort();
    } else if (err == NULL) {
        abort();
    }
    free(sid);
    return 0;
}
