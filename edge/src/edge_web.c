/*
 * The viewers' pages and bundles, served from memory (see edge/web.h). Loading reads a handful of
 * small files once before the loop runs, so plain stdio is fine there; routing is a lookup in a
 * short array and never touches the disk.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "edge/http_util.h"
#include "edge/web.h"
#include "sw/log.h"

#define NAME_MAX_LEN 128

typedef struct asset {
    char name[NAME_MAX_LEN]; /* "watch.html" or the file name under assets/ */
    const char *ctype;
    const char *cc;
    char etag[24]; /* "\"" 16 hex digits "\"" */
    uint8_t *data;
    size_t len;
} asset_t;

struct edge_web {
    asset_t *pages;  /* watch.html, shorts.html */
    asset_t *assets; /* assets/ */
    size_t n_assets;
    size_t bytes;
};

enum { PAGE_WATCH, PAGE_SHORTS, PAGE_N };
static const char *const page_names[PAGE_N] = {"watch.html", "shorts.html"};

static const char cc_page[] = "no-cache";
static const char cc_asset[] = "public, max-age=31536000, immutable";

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *ctype;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".map", "application/json"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".webp", "image/webp"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    if (dot != NULL)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcmp(dot, types[i].ext) == 0)
                return types[i].ctype;
    return "application/octet-stream";
}

/* Names we load and serve: no '/', no leading '.', nothing a URL would need to escape. */
static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= NAME_MAX_LEN || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Room ids as docs/overlay-protocol.md defines them, except "." and "..": the page puts the id
 * into /live/{room}/ URLs, where those would climb out of the stream's folder. */
static int room_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > EDGE_WEB_ROOM_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* FNV-1a, 64 bits: the ETag only has to change when the bytes do. */
static void etag_of(asset_t *a)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < a->len; i++) {
        h ^= a->data[i];
        h *= 0x100000001b3ULL;
    }
    snprintf(a->etag, sizeof(a->etag), "\"%016llx\"", (unsigned long long)h);
}

static int read_file(edge_web_t *w, const char *dir, const char *name, int is_page, asset_t *a,
                     char *err, size_t errlen)
{
    char path[4096];
    struct stat st;
    FILE *f;

    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        snprintf(err, errlen, "web_root: path too long");
        return EDGE_ERR_TOO_BIG;
    }
    if ((f = fopen(path, "rb")) == NULL || fstat(fileno(f), &st) != 0) {
        snprintf(err, errlen, "web_root: %s: %s", path, strerror(errno));
        if (f != NULL)
            fclose(f);
        return EDGE_ERR_INVAL;
    }
    if ((uint64_t)st.st_size > EDGE_WEB_MAX_FILE_BYTES ||
        w->bytes + (uint64_t)st.st_size > EDGE_WEB_MAX_BYTES) {
        snprintf(err, errlen, "web_root: %s: over the %u MiB per file or %u MiB in all", path,
                 EDGE_WEB_MAX_FILE_BYTES >> 20, EDGE_WEB_MAX_BYTES >> 20);
        fclose(f);
        return EDGE_ERR_TOO_BIG;
    }
    a->len = (size_t)st.st_size;
    /* One spare byte, so that an empty file still has a buffer and a body pointer. */
    if ((a->data = malloc(a->len + 1)) == NULL) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return EDGE_ERR_NOMEM;
    }
    size_t got = fread(a->data, 1, a->len, f);
    fclose(f);
    if (got != a->len) {
        snprintf(err, errlen, "web_root: %s: short read", path);
        return EDGE_ERR_INVAL;
    }
    snprintf(a->name, sizeof(a->name), "%s", name);
    a->ctype = content_type(name);
    a->cc = is_page ? cc_page : cc_asset;
    etag_of(a);
    w->bytes += a->len;
    return 0;
}

static int load_assets(edge_web_t *w, const char *root, char *err, size_t errlen)
{
    char dir[4096];
    DIR *d;
    struct dirent *de;
    int rv = 0;

    int n = snprintf(dir, sizeof(dir), "%s/assets", root);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        snprintf(err, errlen, "web_root: path too long");
        return EDGE_ERR_INVAL;
    }
    if ((d = opendir(dir)) == NULL) {
        snprintf(err, errlen, "web_root: %s: %s", dir, strerror(errno));
        return EDGE_ERR_INVAL;
    }
    if ((w->assets = calloc(EDGE_WEB_MAX_FILES, sizeof(*w->assets))) == NULL) {
        closedir(d);
        snprintf(err, errlen, "out of memory");
        return EDGE_ERR_NOMEM;
    }
    while (rv == 0 && (de = readdir(d)) != NULL) {
        char path[sizeof(dir) + sizeof(de->d_name) + 1];
        struct stat st;
        if (!name_ok(de->d_name, strlen(de->d_name)))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (w->n_assets == EDGE_WEB_MAX_FILES) {
            snprintf(err, errlen, "web_root: more than %d files in %s", EDGE_WEB_MAX_FILES, dir);
            rv = EDGE_ERR_TOO_BIG;
            break;
        }
        rv = read_file(w, dir, de->d_name, 0, &w->assets[w->n_assets], err, errlen);
        w->n_assets++; /* counted even on failure, so that edge_web_free() frees its buffer */
    }
    closedir(d);
    return rv;
}

int edge_web_default_root(char *buf, size_t len)
{
    char exe[4096];
    size_t n = sizeof(exe);
    if (uv_exepath(exe, &n) != 0 || n == 0)
        return EDGE_ERR_TOO_BIG;
    /* Up two levels: the binary's name, then its folder (bin/). */
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(exe, '/');
        if (slash == NULL)
            return EDGE_ERR_TOO_BIG;
        *slash = '\0';
    }
    if (snprintf(buf, len, "%s/web", exe) >= (int)len)
        return EDGE_ERR_TOO_BIG;
    return 0;
}

int edge_web_open(edge_web_t **out, const char *root, char *err, size_t errlen)
{
    char def[4096], probe[4096 + 16];
    edge_web_t *w;
    int rv = EDGE_ERR_NOMEM;

    *out = NULL;
    if (root == NULL) {
        struct stat st;
        if (edge_web_default_root(def, sizeof(def)) != 0)
            return 0;
        snprintf(probe, sizeof(probe), "%s/%s", def, page_names[PAGE_WATCH]);
        if (stat(probe, &st) != 0) {
            sw_log(SW_LOG_INFO, "edge", "no viewer pages in %s (set web_root to serve them)", def);
            return 0;
        }
        root = def;
    }
    if ((w = calloc(1, sizeof(*w))) == NULL ||
        (w->pages = calloc(PAGE_N, sizeof(*w->pages))) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < PAGE_N; i++)
        if ((rv = read_file(w, root, page_names[i], 1, &w->pages[i], err, errlen)) != 0)
            goto fail;
    if ((rv = load_assets(w, root, err, errlen)) != 0)
        goto fail;
    sw_log(SW_LOG_INFO, "edge", "viewer pages from %s: %zu assets, %zu bytes", root, w->n_assets,
           w->bytes);
    *out = w;
    return 0;
fail:
    edge_web_free(w);
    return rv;
}

void edge_web_free(edge_web_t *w)
{
    if (w == NULL)
        return;
    if (w->pages != NULL)
        for (int i = 0; i < PAGE_N; i++)
            free(w->pages[i].data);
    for (size_t i = 0; i < w->n_assets; i++)
        free(w->assets[i].data);
    free(w->pages);
    free(w->assets);
    free(w);
}

static void answer(const asset_t *a, const char *if_none_match, edge_web_resp_t *r)
{
    size_t n = 0;
    r->headers[n++] = (sw_http_header_t){"content-type", a->ctype};
    r->headers[n++] = (sw_http_header_t){"cache-control", a->cc};
    r->headers[n++] = (sw_http_header_t){"etag", a->etag};
    r->headers[n++] = (sw_http_header_t){"x-content-type-options", "nosniff"};
    r->n_headers = n;
    /* A malformed If-None-Match (EDGE_ERR_INVAL) is ignored, as RFC 9110 allows. */
    if (if_none_match != NULL &&
        edge_etag_match(if_none_match, strlen(if_none_match), a->etag) == 1) {
        r->status = 304;
        r->body = NULL;
        r->len = 0;
        return;
    }
    r->status = 200;
    r->body = a->data;
    r->len = a->len;
}

static void not_found(edge_web_resp_t *r, const char *msg)
{
    r->status = 404;
    r->headers[0] = (sw_http_header_t){"content-type", "text/plain; charset=utf-8"};
    r->headers[1] = (sw_http_header_t){"cache-control", "no-store"};
    r->n_headers = 2;
    r->body = msg;
    r->len = strlen(msg);
}

int edge_web_route(const edge_web_t *w, const char *path, const char *if_none_match,
                   edge_web_resp_t *resp)
{
    if (w == NULL)
        return 0;
    if (strncmp(path, "/watch/", 7) == 0) {
        if (!room_ok(path + 7))
            not_found(resp, "no such room: a room id is 1 to 64 of A-Z a-z 0-9 _ - .\n");
        else
            answer(&w->pages[PAGE_WATCH], if_none_match, resp);
        return 1;
    }
    if (strcmp(path, "/shorts") == 0) {
        answer(&w->pages[PAGE_SHORTS], if_none_match, resp);
        return 1;
    }
    if (strncmp(path, "/assets/", 8) == 0) {
        const char *name = path + 8;
        size_t n = strlen(name);
        if (name_ok(name, n))
            for (size_t i = 0; i < w->n_assets; i++)
                if (strcmp(w->assets[i].name, name) == 0) {
                    answer(&w->assets[i], if_none_match, resp);
                    return 1;
                }
        not_found(resp, "no such asset\n");
        return 1;
    }
    return 0;
}
