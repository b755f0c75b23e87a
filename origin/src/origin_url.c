/*
 * origin_url.c: the media URL parser (origin_url.h). Pure code: no allocation, no I/O.
 */
#include <string.h>

#include "hls/hls.h"
#include "origin_url.h"

#define NAME_MAX_LEN 64

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/*
 * Reads a decimal number at *p, without leading zeros, at most `max`. Advances *p past it.
 * Returns 0 or -1.
 */
static int number(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    *p = s;
    return 0;
}

/* "init-G.mp4", "M.m4s" or "M.P.m4s" inside a track's folder. */
static int media_file(const char *f, origin_media_url_t *out, const char **err_desc)
{
    const char *p = f;
    uint64_t part;

    out->file = f;
    if (strncmp(p, "init-", 5) == 0) {
        p += 5;
        out->type = ORIGIN_URL_INIT;
        if (number(&p, UINT32_MAX, &out->num) != 0 || strcmp(p, ".mp4") != 0) {
            *err_desc = "init segment is init-G.mp4 (G a generation number)";
            return ORIGIN_URL_ERR_FILE;
        }
        return 0;
    }
    if (number(&p, UINT64_MAX, &out->num) != 0) {
        *err_desc = "segment is M.m4s, part M.P.m4s (numbers without leading zeros)";
        return ORIGIN_URL_ERR_FILE;
    }
    if (strcmp(p, ".m4s") == 0) {
        out->type = ORIGIN_URL_SEGMENT;
        return 0;
    }
    if (*p++ != '.' || number(&p, UINT32_MAX, &part) != 0 || strcmp(p, ".m4s") != 0) {
        *err_desc = "segment is M.m4s, part M.P.m4s (numbers without leading zeros)";
        return ORIGIN_URL_ERR_FILE;
    }
    out->type = ORIGIN_URL_PART;
    out->part = (uint32_t)part;
    return 0;
}

int origin_media_url_parse(const char *path, origin_media_url_t *out, const char **err_desc)
{
    const char *e;
    size_t n = 0;

    if (err_desc == NULL)
        err_desc = &e;
    memset(out, 0, sizeof(*out));
    out->kind = -1;
    while (path[n] != '\0' && path[n] != '/') {
        if (!name_char((unsigned char)path[n]) || n == NAME_MAX_LEN) {
            *err_desc = "stream name is 1 to 64 of A-Za-z0-9_-";
            return ORIGIN_URL_ERR_NAME;
        }
        n++;
    }
    if (n == 0 || path[n] != '/') {
        *err_desc = n == 0 ? "empty stream name" : "no file after the stream name";
        return ORIGIN_URL_ERR_NAME;
    }
    memcpy(out->name, path, n);
    out->name[n] = '\0';

    const char *f = path + n + 1;
    if (strcmp(f, "index.m3u8") == 0) {
        out->type = ORIGIN_URL_MULTIVARIANT;
        return 0;
    }
    if (strcmp(f, "manifest.mpd") == 0) {
        out->type = ORIGIN_URL_MPD;
        return 0;
    }
    if ((f[0] == 'v' || f[0] == 'a') && strcmp(f + 1, ".m3u8") == 0) {
        out->type = ORIGIN_URL_PLAYLIST;
        out->kind = f[0] == 'v' ? HLS_VIDEO : HLS_AUDIO;
        return 0;
    }
    if ((f[0] == 'v' || f[0] == 'a') && f[1] == '/') {
        out->kind = f[0] == 'v' ? HLS_VIDEO : HLS_AUDIO;
        return media_file(f + 2, out, err_desc);
    }
    *err_desc = "no such file of a stream";
    return ORIGIN_URL_ERR_FILE;
}
