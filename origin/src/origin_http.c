/*
 * origin_http.c: the origin's URL space and its held requests.
 *
 *   /live/NAME/index.m3u8        multivariant playlist (?dvr=1: the whole DVR window)
 *   /live/NAME/v.m3u8, a.m3u8    media playlists; _HLS_msn/_HLS_part block until that part exists
 *   /live/NAME/manifest.mpd      DASH
 *   /live/NAME/{v,a}/init-G.mp4  init segments
 *   /live/NAME/{v,a}/M.m4s       segments: from memory, from disk, or streamed while being written
 *   /live/NAME/{v,a}/M.P.m4s     LL-HLS parts: a preload-hinted part is held until written
 *   /api/..., /metrics, /healthz
 *
 * A held request is an origin_waiter_t on its stream's per-track list. Every new part walks that
 * list once (there are rarely more than a few dozen: an edge collapses its viewers into one), and
 * a 250 ms sweep answers those past their deadline with 503, as LL-HLS asks.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "origin_int.h"
#include "origin_url.h"
#include "sw/log.h"

#define CT_M3U8 "application/vnd.apple.mpegurl"
#define CT_MPD  "application/dash+xml"
#define CT_MP4V "video/mp4"
#define CT_MP4A "audio/mp4"

/* Playlists change every part; a blocking request names a playlist that will never change, so a
 * CDN may keep it longer. Media bytes never change once written (ORIGIN__CC_MEDIA).
 *
 * Playlists and the MPD say stale-if-error=0, so that a cache whose own default would let it
 * serve them stale (the edge's stale_if_error) does not. A player cannot tell a stale live
 * playlist from a stream that stopped: it reloads it, finds no new segment, and sits at the same
 * live point until its buffer runs dry, whereas a 502 makes it retry at once, or switch to a
 * redundant stream, while it still has a buffer to play from. */
#define CC_LIVE     "public, max-age=1, stale-if-error=0"
#define CC_BLOCKING "public, max-age=6, stale-if-error=0"
#define CC_MEDIA    ORIGIN__CC_MEDIA
#define CC_NOT_YET  "no-cache"

static const char *media_type(int kind)
{
    return kind == HLS_VIDEO ? CT_MP4V : CT_MP4A;
}

static void respond_text(sw_http_req_t *req, int status, const char *ct, const char *cc,
                         const char *body, size_t len)
{
    sw_http_header_t h[] = {
        {"content-type", ct},
        {"cache-control", cc},
        {"access-control-allow-origin", "*"},
        {"access-control-expose-headers", "age, date, content-length"},
    };
    sw_http_respond(req, status, h, SW_ARRAY_SIZE(h), body, len);
}

static void respond_error(sw_http_req_t *req, int status, const char *msg)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "%s\n", msg);
    respond_text(req, status, "text/plain; charset=utf-8", CC_NOT_YET, body,
                 (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1);
}

static int query_flag(const char *query, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = query; p != NULL && *p != '\0';) {
        if (strncmp(p, name, n) == 0 && p[n] == '=' && p[n + 1] == '1')
            return 1;
        p = strchr(p, '&');
        if (p != NULL)
            p++;
    }
    return 0;
}

/* Playlists. */

static void render_and_send(origin_stream_t *st, sw_http_req_t *req, int kind,
                            const hls_render_opts_t *opts, int blocking)
{
    hls_view_t v;
    sw_str_t out;
    int rv;
    /* The room's events as they are now: a held request's copy of the options must not keep a
     * pointer into an array that may have grown since. */
    hls_render_opts_t o = *opts;
    o.dateranges = st->room.ev;
    o.ndateranges = st->room.n;

    hls_stream_view(st->hls, &v);
    sw_str_init(&out);
    if (kind < 0)
        rv = hls_render_multivariant(&v, &o, &out);
    else
        rv = hls_render_media(&v, kind, &o, &out);
    if (rv == 0 && !out.failed && kind >= 0) {
        char ready[32];
        snprintf(ready, sizeof(ready), "%" PRId64, st->part_ready_us[kind]);
        sw_http_header_t h[] = {
            {"content-type", CT_M3U8},
            {"cache-control", blocking ? CC_BLOCKING : CC_LIVE},
            {"access-control-allow-origin", "*"},
            {"access-control-expose-headers", "age, date, x-sw-part-ready-us"},
            {"x-sw-part-ready-us", ready},
        };
        sw_http_respond(req, 200, h, SW_ARRAY_SIZE(h), out.p, out.len);
    } else if (rv == 0 && !out.failed)
        respond_text(req, 200, CT_M3U8, CC_LIVE, out.p, out.len);
    else if (rv == HLS_ERR_AGAIN || rv == HLS_ERR_NOT_FOUND)
        respond_error(req, 404, "stream has no media yet");
    else
        respond_error(req, 500, "cannot render the playlist");
    sw_str_dispose(&out);
}

static void waiter_unlink(origin_waiter_t *w)
{
    origin_wait_list_t *l = &w->st->waiters[w->kind];
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    l->n--;
}

static void on_waiter_abort(sw_http_req_t *req, void *data)
{
    origin_waiter_t *w = data;
    waiter_unlink(w);
    free(w);
}

static origin_waiter_t *waiter_add(origin_stream_t *st, sw_http_req_t *req, int type, int kind)
{
    origin_waiter_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->st = st;
    w->req = req;
    w->type = type;
    w->kind = kind;
    w->deadline_ms = (uint64_t)sw_now_ms() + st->o->block_timeout_ms;
    origin_wait_list_t *l = &st->waiters[kind];
    w->next = l->head;
    if (l->head != NULL)
        l->head->prev = w;
    l->head = w;
    l->n++;
    st->o->waiters_total++;
    sw_http_req_on_abort(req, on_waiter_abort, w);
    return w;
}

/* Ends a waiter after its request was answered. */
static void waiter_done(origin_waiter_t *w)
{
    waiter_unlink(w);
    free(w);
}

static void serve_media_playlist(origin_stream_t *st, sw_http_req_t *req, int kind)
{
    hls_query_t q;
    const char *why = NULL;
    hls_render_opts_t opts = {
        .dvr = query_flag(req->query, "dvr"),
        .window_segments = st->o->live_segments,
        .now_ms = sw_now_ms(),
    };

    if (hls_query_parse(req->query, strlen(req->query), &q, &why) != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "bad playlist request: %s", why ? why : "invalid query");
        respond_error(req, 400, msg);
        return;
    }
    opts.skip = q.skip;
    const hls_track_t *t = hls_stream_track(st->hls, kind);
    if (t == NULL || t->codec == HLS_CODEC_NONE) {
        respond_error(req, 404, kind == HLS_VIDEO ? "stream has no video" : "stream has no audio");
        return;
    }
    switch (hls_track_block_state(t, &q)) {
    case HLS_BLOCK_READY:
        render_and_send(st, req, kind, &opts, q.has_msn);
        return;
    case HLS_BLOCK_BAD:
        respond_error(req, 400, "_HLS_msn is more than two segments ahead of the live edge");
        return;
    }
    origin_waiter_t *w = waiter_add(st, req, ORIGIN_WAIT_PLAYLIST, kind);
    if (w == NULL) {
        respond_error(req, 503, "out of memory");
        return;
    }
    w->q = q;
    w->opts = opts;
}

/* Media bytes. */

static void send_part(sw_http_req_t *req, int kind, const hls_part_t *p)
{
    sw_http_header_t h[] = {
        {"content-type", media_type(kind)},
        {"cache-control", CC_MEDIA},
        {"access-control-allow-origin", "*"},
    };
    sw_http_start(req, 200, h, SW_ARRAY_SIZE(h), (int64_t)p->data->len);
    sw_http_write_rbuf(req, p->data, 0, p->data->len);
    sw_http_end(req);
}

static int segment_in_memory(const hls_segment_t *seg)
{
    if (seg->nparts == 0)
        return 0; /* restored from an earlier run: on disk only */
    for (uint32_t i = 0; i < seg->nparts; i++)
        if (seg->parts[i].data == NULL)
            return 0;
    return 1;
}

/* Writes the parts of `seg` from `from` on; returns how many parts have been sent in all. */
static uint32_t write_parts(sw_http_req_t *req, const hls_segment_t *seg, uint32_t from)
{
    for (uint32_t i = from; i < seg->nparts; i++)
        if (seg->parts[i].data != NULL)
            sw_http_write_rbuf(req, seg->parts[i].data, 0, seg->parts[i].data->len);
    return seg->nparts;
}

static void serve_segment(origin_stream_t *st, sw_http_req_t *req, int kind, uint64_t msn,
                          const char *file)
{
    const hls_track_t *t = hls_stream_track(st->hls, kind);
    const hls_segment_t *seg = hls_track_segment(t, msn);
    sw_http_header_t h[] = {
        {"content-type", media_type(kind)},
        {"cache-control", CC_MEDIA},
        {"access-control-allow-origin", "*"},
    };

    if (seg != NULL && seg->complete && segment_in_memory(seg)) {
        sw_http_start(req, 200, h, SW_ARRAY_SIZE(h), (int64_t)seg->bytes);
        write_parts(req, seg, 0);
        sw_http_end(req);
        return;
    }
    if (seg != NULL && !seg->complete && st->pub != NULL) {
        /* Being written: stream what exists and every part as it comes (DASH low latency). */
        origin_waiter_t *w = waiter_add(st, req, ORIGIN_WAIT_SEGMENT, kind);
        if (w == NULL) {
            respond_error(req, 503, "out of memory");
            return;
        }
        w->q.msn = msn;
        sw_http_start(req, 200, h, SW_ARRAY_SIZE(h), -1);
        w->sent_parts = write_parts(req, seg, 0);
        return;
    }
    if (t != NULL && msn >= t->next_msn && msn <= t->next_msn + 1 && st->pub != NULL) {
        /* Not begun yet: a low-latency DASH client asks for a segment one part after its expected
         * start, which can come before the packager opens it; and while audio has not reached
         * video's latest cut, the MPD lists the audio segment after the next one too. Held until
         * it begins, then streamed. */
        origin_waiter_t *w = waiter_add(st, req, ORIGIN_WAIT_SEGMENT, kind);
        if (w == NULL) {
            respond_error(req, 503, "out of memory");
            return;
        }
        w->q.msn = msn;
        w->sent_parts = UINT32_MAX; /* headers not sent yet */
        return;
    }
    origin__dvr_serve(st, req, kind, file, media_type(kind));
}

static void serve_part(origin_stream_t *st, sw_http_req_t *req, int kind, uint64_t msn,
                       uint32_t part)
{
    const hls_track_t *t = hls_stream_track(st->hls, kind);
    const hls_segment_t *seg = hls_track_segment(t, msn);

    if (seg != NULL && part < seg->nparts) {
        if (seg->parts[part].data == NULL) {
            respond_error(req, 404, "part no longer in memory; ask for the whole segment");
            return;
        }
        send_part(req, kind, &seg->parts[part]);
        return;
    }
    /* Not written yet: hold a request for the next part or two (preload hint); refuse others. */
    int soon = st->pub != NULL && t != NULL &&
               ((seg != NULL && !seg->complete && part <= seg->nparts + 1) ||
                (msn == t->next_msn && part <= 1) ||
                (seg != NULL && seg->complete && msn + 1 == t->next_msn && part == 0));
    if (!soon) {
        respond_error(req, 404, "no such part");
        return;
    }
    origin_waiter_t *w = waiter_add(st, req, ORIGIN_WAIT_PART, kind);
    if (w == NULL) {
        respond_error(req, 503, "out of memory");
        return;
    }
    w->q.msn = msn;
    w->q.part = part;
}

/* Wakes what a new part of `kind` satisfies. */
void origin__waiters_on_part(origin_stream_t *st, int kind)
{
    const hls_track_t *t = hls_stream_track(st->hls, kind);
    origin_waiter_t *w = st->waiters[kind].head;

    while (w != NULL) {
        origin_waiter_t *next = w->next;
        const hls_segment_t *seg = hls_track_segment(t, w->q.msn);
        switch (w->type) {
        case ORIGIN_WAIT_PLAYLIST:
            if (hls_track_block_state(t, &w->q) == HLS_BLOCK_READY) {
                sw_http_req_on_abort(w->req, NULL, NULL);
                render_and_send(st, w->req, kind, &w->opts, 1);
                waiter_done(w);
            }
            break;
        case ORIGIN_WAIT_PART:
            if (seg != NULL && w->q.part < seg->nparts) {
                sw_http_req_on_abort(w->req, NULL, NULL);
                if (seg->parts[w->q.part].data != NULL)
                    send_part(w->req, kind, &seg->parts[w->q.part]);
                else
                    respond_error(w->req, 404, "part no longer in memory");
                waiter_done(w);
            } else if ((seg == NULL && t->next_msn > w->q.msn + 1) ||
                       (seg != NULL && seg->complete)) {
                /* A preload hint names the next part before the packager knows whether a
                 * keyframe will end the segment first; if it did, that part never comes. */
                sw_http_req_on_abort(w->req, NULL, NULL);
                respond_error(w->req, 404, "no such part: its segment ended before it");
                waiter_done(w);
            }
            break;
        case ORIGIN_WAIT_SEGMENT:
            if (seg == NULL)
                break;
            if (w->sent_parts == UINT32_MAX) {
                sw_http_header_t h[] = {
                    {"content-type", media_type(kind)},
                    {"cache-control", CC_MEDIA},
                    {"access-control-allow-origin", "*"},
                };
                sw_http_start(w->req, 200, h, SW_ARRAY_SIZE(h), -1);
                w->sent_parts = 0;
            }
            w->sent_parts = write_parts(w->req, seg, w->sent_parts);
            break;
        }
        w = next;
    }
}

void origin__waiters_on_segment(origin_stream_t *st, int kind, const hls_segment_t *seg)
{
    origin_waiter_t *w = st->waiters[kind].head;
    while (w != NULL) {
        origin_waiter_t *next = w->next;
        if (w->type == ORIGIN_WAIT_SEGMENT && w->q.msn == seg->msn && seg->gap) {
            /* Held for a segment that came out a gap (no media): it will never have bytes. */
            sw_http_req_on_abort(w->req, NULL, NULL);
            respond_error(w->req, 404, "no such segment: a gap in this track");
            waiter_done(w);
        } else if (w->type == ORIGIN_WAIT_SEGMENT && w->q.msn == seg->msn &&
                   w->sent_parts != UINT32_MAX) {
            write_parts(w->req, seg, w->sent_parts);
            sw_http_req_on_abort(w->req, NULL, NULL);
            sw_http_end(w->req);
            waiter_done(w);
        }
        w = next;
    }
    /* A completed segment may also satisfy a playlist request for "segment msn, no part". */
    origin__waiters_on_part(st, kind);
}

void origin__waiters_sweep(origin_stream_t *st, int64_t now_ms)
{
    for (int k = 0; k < HLS_NTRACKS; k++) {
        origin_waiter_t *w = st->waiters[k].head;
        while (w != NULL) {
            origin_waiter_t *next = w->next;
            if ((uint64_t)now_ms >= w->deadline_ms) {
                st->o->waiters_timed_out++;
                sw_http_req_on_abort(w->req, NULL, NULL);
                if (w->type == ORIGIN_WAIT_SEGMENT && w->sent_parts != UINT32_MAX)
                    sw_http_end(w->req); /* the segment stopped growing: end what was sent */
                else
                    respond_error(w->req, 503, "the requested part did not appear in time");
                waiter_done(w);
            }
            w = next;
        }
    }
}

void origin__waiters_on_unpublish(origin_stream_t *st)
{
    for (int k = 0; k < HLS_NTRACKS; k++) {
        origin_waiter_t *w = st->waiters[k].head;
        while (w != NULL) {
            origin_waiter_t *next = w->next;
            if (w->type == ORIGIN_WAIT_SEGMENT && w->sent_parts == UINT32_MAX) {
                sw_http_req_on_abort(w->req, NULL, NULL);
                respond_error(w->req, 404, "no such segment: the publisher left before it began");
                waiter_done(w);
            }
            w = next;
        }
    }
}

void origin__waiters_abort_all(origin_stream_t *st)
{
    for (int k = 0; k < HLS_NTRACKS; k++) {
        while (st->waiters[k].head != NULL) {
            origin_waiter_t *w = st->waiters[k].head;
            sw_http_req_on_abort(w->req, NULL, NULL);
            if (w->type == ORIGIN_WAIT_SEGMENT && w->sent_parts != UINT32_MAX)
                sw_http_end(w->req);
            else
                respond_error(w->req, 503, "origin shutting down");
            waiter_done(w);
        }
    }
}

static void serve_mpd(origin_stream_t *st, sw_http_req_t *req)
{
    hls_view_t v;
    sw_str_t out;
    hls_render_opts_t opts = {
        .dvr = query_flag(req->query, "dvr"),
        .window_segments = st->o->live_segments,
        .now_ms = sw_now_ms(),
        .utc_timing_url = "/api/time",
        .dateranges = st->room.ev,
        .ndateranges = st->room.n,
    };

    hls_stream_view(st->hls, &v);
    sw_str_init(&out);
    int rv = hls_render_mpd(&v, &opts, &out);
    if (rv == 0 && !out.failed)
        respond_text(req, 200, CT_MPD, CC_LIVE, out.p, out.len);
    else if (rv == HLS_ERR_AGAIN)
        respond_error(req, 404, "stream has no media yet");
    else
        respond_error(req, 500, "cannot render the MPD");
    sw_str_dispose(&out);
}

static void serve_live(struct origin *o, sw_http_req_t *req, const char *rest)
{
    origin_media_url_t u;
    const char *why;
    int rv = origin_media_url_parse(rest, &u, &why);
    origin_stream_t *st = rv == ORIGIN_URL_ERR_NAME ? NULL : origin__stream_find(o, u.name);

    if (st == NULL) {
        respond_error(req, 404, "no such stream");
        return;
    }
    if (rv != 0) {
        respond_error(req, 404, why);
        return;
    }
    switch (u.type) {
    case ORIGIN_URL_MULTIVARIANT: {
        hls_render_opts_t opts = {.dvr = query_flag(req->query, "dvr"), .now_ms = sw_now_ms()};
        render_and_send(st, req, -1, &opts, 0);
        return;
    }
    case ORIGIN_URL_PLAYLIST:
        serve_media_playlist(st, req, u.kind);
        return;
    case ORIGIN_URL_MPD:
        serve_mpd(st, req);
        return;
    case ORIGIN_URL_INIT: {
        const hls_track_t *t = hls_stream_track(st->hls, u.kind);
        if (t != NULL && t->init != NULL && t->init_gen == u.num) {
            sw_http_header_t h[] = {
                {"content-type", media_type(u.kind)},
                {"cache-control", CC_MEDIA},
                {"access-control-allow-origin", "*"},
            };
            sw_http_start(req, 200, h, SW_ARRAY_SIZE(h), (int64_t)t->init->len);
            sw_http_write_rbuf(req, t->init, 0, t->init->len);
            sw_http_end(req);
        } else {
            origin__dvr_serve(st, req, u.kind, u.file, media_type(u.kind));
        }
        return;
    }
    case ORIGIN_URL_SEGMENT:
        serve_segment(st, req, u.kind, u.num, u.file);
        return;
    case ORIGIN_URL_PART:
        serve_part(st, req, u.kind, u.num, u.part);
        return;
    }
    respond_error(req, 404, "not found");
}

void origin__http_handle(void *data, sw_http_req_t *req)
{
    struct origin *o = data;
    const char *path = req->path;

    /* A preflight for the control API is not granted (origin_api.c): a browser then sends a
     * page's non-simple request (a JSON POST, a DELETE) nowhere. /api/time is the players'. */
    if (strcmp(req->method, "OPTIONS") == 0 && strncmp(path, "/api/", 5) == 0 &&
        strcmp(path, "/api/time") != 0) {
        sw_http_header_t h[] = {{"allow", "GET, HEAD, POST, DELETE"}};
        sw_http_respond(req, 204, h, SW_ARRAY_SIZE(h), NULL, 0);
        return;
    }
    if (strcmp(req->method, "OPTIONS") == 0) {
        sw_http_header_t h[] = {
            {"access-control-allow-origin", "*"},
            {"access-control-allow-methods", "GET, HEAD, OPTIONS"},
            {"access-control-allow-headers", "*"},
            {"access-control-max-age", "86400"},
        };
        sw_http_respond(req, 204, h, SW_ARRAY_SIZE(h), NULL, 0);
        return;
    }
    if (strncmp(path, "/api/", 5) == 0) {
        origin__api_handle(o, req, path + 5);
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        respond_error(req, 405, "method not allowed");
        return;
    }
    if (strncmp(path, "/live/", 6) == 0) {
        serve_live(o, req, path + 6);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        origin__metrics_handle(o, req);
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        respond_text(req, 200, "text/plain", "no-store", "ok\n", 3);
        return;
    }
    respond_error(req, 404, "not found");
}
