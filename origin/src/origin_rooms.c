/*
 * origin_rooms.c: room events at the origin (docs/overlay-protocol.md).
 *
 *   GET  /api/rooms/ROOM/events   the events the origin holds for the room's playlists
 *   POST /api/rooms/ROOM/events   {"type": ..., "data": {...}}
 *        201 {"id", "media_time"}  written to Redis (XADD + state hash, one script)
 *        400 bad JSON, type or field; bad room name   413 body over ORIGIN_EVENT_MAX_BODY
 *        401/403 token or loopback rule   409 the room's stream is not live   503 Redis
 *        415 a Content-Type other than application/json
 *
 * The origin stamps media_time with the program date time of the room's live edge (the newest
 * frame packaged), so the event lands in the playlists at the frame the host saw. A room that is
 * not live has no such frame: a wall-clock stamp would name media that exists nowhere, and no
 * playlist would ever carry the event, so the API answers 409 and a backend that wants an event
 * outside a live show writes it to Redis itself.
 *
 * Every event the origin learns (its own, and those a backend XADDed, through origin_redis.c's
 * reader) lands in its stream's origin_room_t, which the playlist and MPD renderers read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "origin_int.h"
#include "sw/log.h"

/* A POST whose script Redis has not answered by then gets 503 (the outcome is then unknown). */
#define ORIGIN_PUBLISH_TIMEOUT_MS 3000

typedef struct origin_publish {
    struct origin_publish *prev, *next;
    struct origin *o;
    origin_stream_t *st;
    sw_http_req_t *req; /* NULL once answered or aborted */
    int64_t deadline_ms;
    int64_t media_ms;
    const char *type;
    char *inner;
    char media_time[40];
} origin_publish_t;

int origin__api_allowed(struct origin *o, sw_http_req_t *req)
{
    if (o->api_token == NULL)
        return strncmp(req->peer, "127.", 4) == 0 || strncmp(req->peer, "[::1]:", 6) == 0 ||
               strncmp(req->peer, "[::ffff:127.", 12) == 0;
    const char *h = sw_http_req_header(req, "authorization");
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    /* Compare in constant time, so that the reply time says nothing about the token. */
    size_t n = strlen(o->api_token), m = strlen(h);
    unsigned char diff = n != m;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(o->api_token[i] ^ (i < m ? h[i] : 0));
    return diff == 0;
}

/* Entry ids "MS-SEQ" compare as two numbers. */
static int id_parse(const char *id, uint64_t *ms, uint64_t *seq)
{
    char *end;
    if (id[0] < '0' || id[0] > '9')
        return -1;
    *ms = strtoull(id, &end, 10);
    if (*end != '-' || end[1] < '0' || end[1] > '9')
        return -1;
    *seq = strtoull(end + 1, &end, 10);
    return *end == '\0' && strlen(id) < ORIGIN_EVENT_ID_MAX ? 0 : -1;
}

static int id_newer(const char *a, const char *b)
{
    uint64_t am, as, bm, bs;
    if (id_parse(a, &am, &as) != 0)
        return 0;
    if (id_parse(b, &bm, &bs) != 0)
        return 1;
    return am > bm || (am == bm && as > bs);
}

int64_t origin__room_window_ms(const origin_stream_t *st)
{
    int64_t from = 0;
    for (int k = 0; k < HLS_NTRACKS; k++) {
        const hls_track_t *t = hls_stream_track(st->hls, k);
        const hls_segment_t *seg = hls_track_segment(t, t != NULL ? t->first_msn : 0);
        if (t != NULL && t->codec != HLS_CODEC_NONE && seg != NULL &&
            (from == 0 || seg->pdt_ms < from))
            from = seg->pdt_ms;
    }
    return from;
}

static void event_free(hls_daterange_t *e)
{
    free((void *)e->id);
    free((void *)e->data);
}

/* Drops the events that left the DVR window, oldest first. */
static void room_prune(origin_stream_t *st)
{
    origin_room_t *rm = &st->room;
    int64_t from = origin__room_window_ms(st);
    size_t k = 0;
    while (from != 0 && k < rm->n && rm->ev[k].start_ms < from)
        event_free(&rm->ev[k++]);
    if (k > 0) {
        memmove(rm->ev, rm->ev + k, (rm->n - k) * sizeof(*rm->ev));
        rm->n -= k;
    }
}

/*
 * Adds one event (ignoring one already there, and one of a type that stays out of the media),
 * kept in media-time order.
 */
static int room_add(origin_stream_t *st, const char *id, const char *type, int64_t media_ms,
                    const char *inner)
{
    origin_room_t *rm = &st->room;
    sw_str_t msg;

    if (id_newer(id, rm->last_id))
        snprintf(rm->last_id, sizeof(rm->last_id), "%s", id);
    /* chat_rate is read like any event (the shorts detector wants it), but no player does. */
    if (!origin__event_in_media(type))
        return 0;
    for (size_t i = 0; i < rm->n; i++)
        if (strcmp(rm->ev[i].id, id) == 0)
            return 0;
    int64_t from = origin__room_window_ms(st);
    if (from != 0 && media_ms < from)
        return 0; /* before the DVR window: no playlist would show it */
    room_prune(st);
    if (rm->n == ORIGIN_ROOM_MAX_EVENTS) {
        event_free(&rm->ev[0]);
        memmove(rm->ev, rm->ev + 1, (rm->n - 1) * sizeof(*rm->ev));
        rm->n--;
    }
    if (rm->n == rm->cap) {
        size_t cap = rm->cap ? rm->cap * 2 : 16;
        hls_daterange_t *ev = realloc(rm->ev, cap * sizeof(*ev));
        if (ev == NULL)
            return ORIGIN_ERR_NOMEM;
        rm->ev = ev;
        rm->cap = cap;
    }
    sw_str_init(&msg);
    char *idc = strdup(id);
    if (idc == NULL || origin__event_message(&msg, type, id, media_ms, inner) != 0) {
        free(idc);
        sw_str_dispose(&msg);
        return ORIGIN_ERR_NOMEM;
    }
    size_t at = rm->n;
    while (at > 0 && rm->ev[at - 1].start_ms > media_ms)
        at--;
    memmove(rm->ev + at + 1, rm->ev + at, (rm->n - at) * sizeof(*rm->ev));
    rm->ev[at] = (hls_daterange_t){
        .id = idc, .start_ms = media_ms, .type = type, .data = sw_str_steal(&msg, NULL)};
    rm->n++;
    return 0;
}

void origin__room_entry(origin_stream_t *st, const char *id, const char *type, const char *data,
                        size_t data_len, const char *media_time)
{
    uint64_t ms, seq;
    const char *t;
    char *inner;

    if (id_parse(id, &ms, &seq) != 0)
        return;
    int rv = origin__event_from_entry(type ? type : "", data ? data : "", data ? data_len : 0, &t,
                                      &inner);
    int64_t media_ms = media_time != NULL ? origin__parse_utc_ms(media_time) : (int64_t)ms;
    if (rv == 0 && media_ms < 0)
        rv = -1;
    if (rv != 0) {
        st->o->events_skipped++;
        sw_log(SW_LOG_WARN, "rooms", "%s: entry %s skipped: %s", st->name, id,
               rv == ORIGIN_ERR_NOMEM ? "out of memory"
                                      : "unknown type, data not a JSON object or bad media_time");
        if (id_newer(id, st->room.last_id))
            snprintf(st->room.last_id, sizeof(st->room.last_id), "%s", id);
        free(inner);
        return;
    }
    st->o->events_read++;
    if (room_add(st, id, t, media_ms, inner) != 0)
        sw_log(SW_LOG_WARN, "rooms", "%s: out of memory: event %s not shown in playlists", st->name,
               id);
    free(inner);
}

void origin__room_dispose(origin_room_t *rm)
{
    for (size_t i = 0; i < rm->n; i++)
        event_free(&rm->ev[i]);
    free(rm->ev);
    memset(rm, 0, sizeof(*rm));
}

/* POST. */

static void publish_unlink(origin_publish_t *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        p->o->publishing = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
}

static void on_publish_abort(sw_http_req_t *req, void *data)
{
    origin_publish_t *p = data;
    p->req = NULL;
}

static void on_published(void *data, const char *id, const char *err)
{
    origin_publish_t *p = data;
    struct origin *o = p->o;

    p->st->redis_pending--;
    publish_unlink(p);
    if (id != NULL) {
        o->events_posted++;
        if (room_add(p->st, id, p->type, p->media_ms, p->inner) != 0)
            sw_log(SW_LOG_WARN, "rooms", "%s: out of memory: event %s not shown in playlists",
                   p->st->name, id);
    } else {
        o->events_redis_errors++;
        sw_log(SW_LOG_WARN, "rooms", "%s: %s event not written: %s", p->st->name, p->type, err);
    }
    if (p->req != NULL) {
        sw_http_req_on_abort(p->req, NULL, NULL);
        if (id != NULL) {
            sw_str_t s;
            sw_str_init(&s);
            sw_str_printf(&s, "{\"id\":\"%s\",\"media_time\":\"%s\"}\n", id, p->media_time);
            origin__send_json(p->req, 201, &s);
            sw_str_dispose(&s);
        } else {
            char msg[300];
            snprintf(msg, sizeof(msg), "redis: %s", err);
            origin__json_error(p->req, 503, msg);
        }
    }
    free(p->inner);
    free(p);
}

void origin__rooms_sweep(struct origin *o, int64_t now_ms)
{
    for (origin_publish_t *p = o->publishing; p != NULL; p = p->next) {
        if (p->req == NULL || now_ms < p->deadline_ms)
            continue;
        sw_http_req_on_abort(p->req, NULL, NULL);
        origin__json_error(
            p->req, 503,
            "redis did not answer in time: the event may or may not have been written");
        p->req = NULL;
    }
}

static void post_event(struct origin *o, sw_http_req_t *req, const char *room)
{
    origin_event_in_t ev;
    char err[256];

    if (req->body_len > ORIGIN_EVENT_MAX_BODY) {
        o->events_rejected++;
        snprintf(err, sizeof(err), "body over %d bytes", ORIGIN_EVENT_MAX_BODY);
        origin__json_error(req, 413, err);
        return;
    }
    int rv = origin__event_parse(req->body, req->body_len, &ev, err, sizeof(err));
    if (rv != 0) {
        o->events_rejected += rv == -1;
        origin__json_error(req, rv == -1 ? 400 : 500, err);
        return;
    }
    origin_stream_t *st = origin__stream_find(o, room);
    int64_t edge = st != NULL && st->pub != NULL ? hls_stream_edge_ms(st->hls) : 0;
    if (edge <= 0) {
        o->events_not_live++;
        snprintf(err, sizeof(err),
                 "room %s is not live: there is no live edge to stamp media_time with", room);
        origin__json_error(req, 409, err);
        goto out;
    }
    if (o->redis == NULL) {
        o->events_redis_errors++;
        origin__json_error(req, 503, "redis is not configured (the origin's redis key)");
        goto out;
    }

    origin_publish_t *p = calloc(1, sizeof(*p));
    sw_str_t prefix, suffix;
    sw_str_init(&prefix);
    sw_str_init(&suffix);
    if (p == NULL)
        goto nomem;
    p->o = o;
    p->st = st;
    p->req = req;
    p->type = ev.type;
    p->media_ms = edge;
    p->deadline_ms = sw_now_ms() + ORIGIN_PUBLISH_TIMEOUT_MS;
    sw_iso8601(edge, p->media_time, sizeof(p->media_time));
    p->inner = ev.inner;
    ev.inner = NULL;
    /* The script stores the client message in the state hash; only the id is unknown here. */
    sw_str_printf(&prefix, "{\"type\":\"%s\",\"id\":\"", ev.type);
    sw_str_printf(&suffix, "\",\"media_time\":\"%s\"%s%s}", p->media_time,
                  p->inner[0] != '\0' ? "," : "", p->inner);
    if (prefix.failed || suffix.failed)
        goto nomem;
    if (origin__redis_publish(o->redis, room, &ev, p->media_time, prefix.p, suffix.p, on_published,
                              p) != 0) {
        o->events_redis_errors++;
        origin__json_error(req, 503, "redis is not reachable; the event was not written");
        free(p->inner);
        free(p);
        goto strs;
    }
    st->redis_pending++;
    p->next = o->publishing;
    if (p->next != NULL)
        p->next->prev = p;
    o->publishing = p;
    sw_http_req_on_abort(req, on_publish_abort, p);
    goto strs;
nomem:
    if (p != NULL)
        free(p->inner);
    free(p);
    origin__json_error(req, 500, "out of memory");
strs:
    sw_str_dispose(&prefix);
    sw_str_dispose(&suffix);
out:
    origin__event_in_dispose(&ev);
}

/* GET: the events the origin holds for the room's playlists (what it learned from Redis). */
static void list_events(struct origin *o, sw_http_req_t *req, const char *room, size_t len)
{
    char name[72];
    char iso[40];
    sw_str_t s;

    if (!origin__room_name_valid(room, len)) {
        origin__json_error(req, 400, "bad room name: 1 to 64 characters of A-Z a-z 0-9 _ - .");
        return;
    }
    memcpy(name, room, len);
    name[len] = '\0';
    origin_stream_t *st = origin__stream_find(o, name);
    if (st == NULL) {
        origin__json_error(req, 404, "no stream of that name");
        return;
    }
    sw_str_init(&s);
    sw_str_printf(&s, "{\"room\":\"%s\",\"live\":%s,\"loaded\":%s,\"events\":[", st->name,
                  st->pub != NULL ? "true" : "false", st->room.loaded ? "true" : "false");
    for (size_t i = 0; i < st->room.n; i++) {
        const hls_daterange_t *e = &st->room.ev[i];
        sw_str_printf(&s, "%s{\"id\":\"%s\",\"type\":\"%s\",\"media_time\":\"%s\"}", i ? "," : "",
                      e->id, e->type, sw_iso8601(e->start_ms, iso, sizeof(iso)));
    }
    sw_str_puts(&s, "]}\n");
    origin__send_json(req, 200, &s);
    sw_str_dispose(&s);
}

void origin__rooms_api(struct origin *o, sw_http_req_t *req, const char *rest)
{
    const char *slash = strchr(rest, '/');
    char room[72];

    if (slash == NULL || strcmp(slash, "/events") != 0) {
        origin__json_error(req, 404, "no such API: POST /api/rooms/ROOM/events");
        return;
    }
    if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0) {
        list_events(o, req, rest, (size_t)(slash - rest));
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        origin__json_error(req, 405, "method not allowed: GET or POST /api/rooms/ROOM/events");
        return;
    }
    if (!origin__api_allowed(o, req)) {
        o->events_unauthorized++;
        if (o->api_token != NULL)
            origin__json_error(req, 401,
                               "missing or wrong Authorization: Bearer token (api_token)");
        else
            origin__json_error(req, 403, "only from loopback while the origin has no api_token");
        return;
    }
    /* Not a type a cross-site form or a simple fetch() can send without a preflight, which the
     * control API does not answer: a web page open on a trusted host cannot pin products. */
    const char *ct = sw_http_req_header(req, "content-type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
        o->events_rejected++;
        origin__json_error(req, 415, "Content-Type must be application/json");
        return;
    }
    if (!origin__room_name_valid(rest, (size_t)(slash - rest))) {
        o->events_rejected++;
        origin__json_error(req, 400, "bad room name: 1 to 64 characters of A-Z a-z 0-9 _ - .");
        return;
    }
    memcpy(room, rest, (size_t)(slash - rest));
    room[slash - rest] = '\0';
    post_event(o, req, room);
}
