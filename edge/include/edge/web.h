/*
 * edge/web.h: the viewers' pages (`/watch/{room}`, `/shorts`) and their bundles (under `/assets/`),
 * loaded from a folder into memory once at startup and answered from there.
 *
 * The folder is what web/build.mjs writes (`${CMAKE_BINARY_DIR}/web`): `watch.html`,
 * `shorts.html` and `assets/` with content-hashed names. Assets go out with a year-long
 * `immutable` lifetime (a new build makes new names), the pages with `no-cache` (revalidated by
 * ETag, so a new build reaches viewers at once). Everything here is pure: no loop, no sockets;
 * only edge_web_open() touches the file system, and only before the loop runs.
 */
#ifndef EDGE_WEB_H
#define EDGE_WEB_H

#include <stddef.h>

#include "edge/err.h"
#include "sw/http.h"

typedef struct edge_web edge_web_t;

/* Bounds on what edge_web_open() loads: the folder is ours, but a wrong web_root must not make
 * the edge read a whole disk into memory. */
#define EDGE_WEB_MAX_FILES      256
#define EDGE_WEB_MAX_FILE_BYTES (8u << 20)
#define EDGE_WEB_MAX_BYTES      (32u << 20)

/** The longest room id a page is served for (docs/overlay-protocol.md). */
#define EDGE_WEB_ROOM_MAX 64

/**
 * Loads `root`/watch.html, `root`/shorts.html and every regular file in `root`/assets/ (names of
 * A-Z a-z 0-9 . _ - not starting with '.') into memory. With `root` NULL, loads the default
 * folder (edge_web_default_root()) if it holds a watch.html, and otherwise sets *out to NULL and
 * returns 0: an edge without pages still serves video. On failure writes a reason into
 * err[0..errlen). Returns 0, EDGE_ERR_INVAL (a page is missing or a file cannot be read),
 * EDGE_ERR_TOO_BIG (over the EDGE_WEB_MAX_* bounds) or EDGE_ERR_NOMEM.
 */
int edge_web_open(edge_web_t **out, const char *root, char *err, size_t errlen);

/**
 * Writes the default web root into buf: the `web` folder beside the binary's folder
 * (`build/bin/shortwave-edge` -> `build/web`). Returns 0 or EDGE_ERR_TOO_BIG (no room, or the
 * binary's path is unknown).
 */
int edge_web_default_root(char *buf, size_t len);

/** Frees what edge_web_open() loaded. NULL does nothing. */
void edge_web_free(edge_web_t *w);

/* A response to send as is with sw_http_respond(); every pointer lives as long as the edge_web_t.
 */
typedef struct edge_web_resp {
    int status; /* 200, 304 or 404 */
    sw_http_header_t headers[5];
    size_t n_headers;
    const void *body;
    size_t len;
} edge_web_resp_t;

/**
 * Routes one GET or HEAD: `path` is the request path without its query, `if_none_match` the
 * header's value or NULL. Returns 1 and fills `resp` if the path is one of ours (`/watch/{room}`
 * with a valid room id other than "." and "..", `/shorts`, anything under `/assets/`), with 404 for
 * an unknown asset or a malformed room id under `/watch/`; returns 0 for every other path, which
 * the caller serves as usual. `w` NULL (no pages loaded) returns 0. Any thread, as long as `w`
 * lives.
 */
int edge_web_route(const edge_web_t *w, const char *path, const char *if_none_match,
                   edge_web_resp_t *resp);

#endif
