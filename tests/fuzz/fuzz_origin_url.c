/*
 * Fuzz target for the media URL parser (origin_url.c): any bytes as the path after "/live/".
 * What is accepted must print back to the same path (one spelling per object), and a refusal
 * must say why; nothing may read outside the input.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hls/hls.h"
#include "origin_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    origin_media_url_t u;
    const char *err = NULL;
    char back[256];
    /* NUL-terminated copy of exactly `size` bytes (the parser reads up to the NUL). */
    char *path = malloc(size + 1);

    if (path == NULL)
        return 0;
    memcpy(path, data, size);
    path[size] = '\0';
    int rv = origin_media_url_parse(path, &u, &err);
    if (rv != 0) {
        if (err == NULL || (rv != ORIGIN_URL_ERR_NAME && rv != ORIGIN_URL_ERR_FILE))
            abort();
        free(path);
        return 0;
    }
    size_t n = strlen(u.name);
    if (n == 0 || n > 64)
        abort();
    const char *t = u.kind == HLS_VIDEO ? "v" : "a";
    switch (u.type) {
    case ORIGIN_URL_MULTIVARIANT:
        snprintf(back, sizeof(back), "%s/index.m3u8", u.name);
        break;
    case ORIGIN_URL_MPD:
        snprintf(back, sizeof(back), "%s/manifest.mpd", u.name);
        break;
    case ORIGIN_URL_PLAYLIST:
        snprintf(back, sizeof(back), "%s/%s.m3u8", u.name, t);
        break;
    case ORIGIN_URL_INIT:
        snprintf(back, sizeof(back), "%s/%s/init-%" PRIu64 ".mp4", u.name, t, u.num);
        break;
    case ORIGIN_URL_SEGMENT:
        snprintf(back, sizeof(back), "%s/%s/%" PRIu64 ".m4s", u.name, t, u.num);
        break;
    case ORIGIN_URL_PART:
        snprintf(back, sizeof(back), "%s/%s/%" PRIu64 ".%" PRIu32 ".m4s", u.name, t, u.num, u.part);
        break;
    default:
        abort();
    }
    if (strcmp(back, path) != 0)
        abort();
    if (u.type >= ORIGIN_URL_INIT && strcmp(u.file, strchr(strchr(path, '/') + 1, '/') + 1) != 0)
        abort();
    free(path);
    return 0;
}
