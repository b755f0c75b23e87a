/*
 * origin_url.h (internal to origin/): the media URL space, parsed without I/O (fuzzed by
 * tests/fuzz/fuzz_origin_url.c).
 *
 *   NAME/index.m3u8         the multivariant playlist
 *   NAME/v.m3u8, a.m3u8     media playlists
 *   NAME/manifest.mpd       DASH
 *   NAME/{v,a}/init-G.mp4   init segment of generation G
 *   NAME/{v,a}/M.m4s        segment M
 *   NAME/{v,a}/M.P.m4s      part P of segment M
 *
 * NAME is 1 to 64 of [A-Za-z0-9_-]. Numbers are decimal without leading zeros (one spelling per
 * object, so that "007.m4s" cannot be a cache miss of its own at every edge) and fit their type.
 */
#ifndef ORIGIN_URL_H
#define ORIGIN_URL_H

#include <stddef.h>
#include <stdint.h>

enum {
    ORIGIN_URL_MULTIVARIANT,
    ORIGIN_URL_PLAYLIST,
    ORIGIN_URL_MPD,
    ORIGIN_URL_INIT,
    ORIGIN_URL_SEGMENT,
    ORIGIN_URL_PART,
};

enum {
    ORIGIN_URL_ERR_NAME = -1, /* not a stream name */
    ORIGIN_URL_ERR_FILE = -2, /* a name, but no file of a stream */
};

typedef struct origin_media_url {
    char name[65];
    int type;         /* ORIGIN_URL_* */
    int kind;         /* HLS_VIDEO or HLS_AUDIO; -1 for the multivariant playlist and the MPD */
    uint64_t num;     /* INIT: the generation; SEGMENT, PART: the media sequence number */
    uint32_t part;    /* PART */
    const char *file; /* INIT, SEGMENT, PART: the file name within the track's folder, in `path` */
} origin_media_url_t;

/**
 * Parses `path`, the part of a URL path after "/live/" (NUL-terminated; no query). Returns 0,
 * ORIGIN_URL_ERR_NAME or ORIGIN_URL_ERR_FILE, with *err_desc naming the fault.
 */
int origin_media_url_parse(const char *path, origin_media_url_t *out, const char **err_desc);

#endif
