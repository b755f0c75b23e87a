/*
 * edge_overlay.c: the overlay service: the upgrade check, libwebsockets on the overlay's loop,
 * rooms and their viewers, the per-connection send queues, fan-out of each room's Redis stream,
 * resume, add_to_cart and the metrics. Message formats are in edge_overlay_msg.c, the reconnecting
 * Redis connections in edge_overlay_redis.c.
 *
 * A room exists on this edge while it has viewers. Its first viewer makes the edge read the
 * room's state hash and the id it covers (one MULTI on the command connection); from that id on
 * the reader connection's XREAD delivers the room's events, in order, to every viewer that is
 * live, and the edge applies them to its copy of the room's state, which later joiners get. One
 * XREAD BLOCK covers every room; when a room is added, CLIENT UNBLOCK on the command connection
 * makes it return at once, so a new room waits one round trip, not the block timeout.
 *
 * A viewer sends hello first. Without last_event_id it gets the state at once; with one it gets
 * the missed events from XRANGE (exclusive start) up to the id the room has reached, then again
 * from there if the room moved on meanwhile, and only then goes live: live events are never
 * queued while it resumes, and the XRANGE ends exactly where live delivery takes over, so there
 * is no gap and no duplicate.
 *
 * Messages are built once per event and shared (refcounted, with libwebsockets' LWS_PRE headroom)
 * by every connection that queues them. A full queue first drops superseded state messages (an
 * older pin when a newer one is queued); if it is still full the viewer is closed with 1013.
 *
 * Abuse limits are decided here, on this loop, before a viewer joins (viewer_admit(), with the
 * pure edge__overlay_admit() of edge_overlay_limits.c): overlay_max_viewers for the process, and
 * overlay_max_rooms for rooms not open yet whose stream is missing from the copy of the origins'
 * registry (sw:streams) that on_tick() refreshes once a second, so a join never waits for Redis.
 *
 * The edge's workers run their own loops; the overlay runs on one loop for the whole process, so
 * that there is one Redis reader per edge. A worker checks an upgrade request on its own thread
 * (nothing there needs the overlay's state), takes the connection over and queues it; the
 * overlay's loop, woken by an async handle, adopts it. /metrics on a worker reads a copy of the
 * overlay's figures that this loop refreshes at the end of each of its iterations.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "edge/edge.h"
#include "edge/token.h"
#include "edge_overlay_int.h"
#include "edge_overlay_redis.h"
#include "sw/log.h"

#define HELLO_WAIT_US       (2 * LWS_USEC_PER_SEC) /* a silent client gets the state after this */
#define TICK_MS             1000                   /* viewer_count broadcast period */
#define XREAD_BLOCK_MS      5000 /* the fallback if CLIENT UNBLOCK cannot be sent */
#define XREAD_COUNT         1000
#define RESUME_COUNT        1000
#define MAX_BAD             10  /* bad messages before 1008 */
#define MAX_STRIKES         100 /* rate-limited add_to_cart before 1008 */
#define ROOM_LABELS         50  /* rooms named in the connections gauge; the rest are "_other" */
#define CLOSE_TRY_LATER     1013
#define WRITES_PER_CALLBACK 16
#define REFUSAL_LOG_MS      1000 /* at most one log line per second for each kind of refusal */

static const double fanout_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                        0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
#define NBUCKETS (sizeof(fanout_buckets) / sizeof(fanout_buckets[0]))

typedef struct ov_msg {
    unsigned refs;
    int slot;
    char sku[EDGE_OVERLAY_SKU_MAX + 1];
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes, then len bytes of JSON */
} ov_msg_t;

typedef struct room room_t;
typedef struct viewer viewer_t;

/* A connection a worker took over, waiting for the overlay's loop. */
typedef struct handoff {
    struct handoff *next;
    int fd;
    sw_str_t pre; /* bytes read past the request head */
    char room[65];
    char reject[96]; /* close 1008 with this reason once open */
} handoff_t;

enum { PHASE_HELLO = 0, PHASE_WAIT_ROOM, PHASE_RESUMING, PHASE_LIVE };

struct room {
    edge_overlay_t *ov;
    room_t *next, **pprev; /* ov->rooms while it has viewers */
    char name[65];
    char events_key[96];
    int live;       /* state read: in the XREAD set */
    int registered; /* the registry lists its stream (as of the last read of sw:streams) */
    int fetching;   /* state read in flight */
    int dead;       /* no viewers: freed once `pending` drops to 0 */
    unsigned pending;
    char last_id[48]; /* the last event delivered (or covered by the state) */
    ov_msg_t *pinned, *price, *stock, *flash;
    viewer_t *viewers;
    size_t nviewers;
    int count_dirty;
};

struct viewer {
    edge_overlay_t *ov;
    struct lws *wsi; /* NULL once the connection is gone */
    room_t *room;
    viewer_t *next, **pprev; /* room->viewers */
    unsigned pending;        /* Redis callbacks that point at this viewer */
    int phase;
    int gap; /* resume: the stream lost entries the client did not see */
    char id[96];
    char roomname[65];
    char reject[96]; /* set at upgrade: close 1008 with this reason */
    char cursor[48]; /* resume: the last id sent */
    ov_msg_t **q;    /* ring of ov->cfg.send_queue */
    size_t qhead, qlen;
    int close_code;
    int close_started; /* lws is sending the close frame */
    int close_drop;    /* closing without sending what is queued */
    uint8_t *rx;
    size_t rx_len;
    double tokens;
    uint64_t refill_ms;
    unsigned bad, strikes;
};

struct edge_overlay {
    uv_loop_t *loop;
    edge_overlay_config_t cfg;
    char *edge_name, *allowed_origins, *token_key, *token_kid;
    edge_token_key_t tkey;
    edge_token_config_t tcfg;
    edge__ov_redis_addr_t addr;
    edge__ov_redis_t cmd, rd;
    long long rd_client_id; /* the reader's CLIENT ID, 0 until known */
    int rd_busy;            /* an XREAD is in flight */
    struct lws_context *ctx;
    struct lws_vhost *vh;
    viewer_t *adopting; /* the viewer being handed to lws, for callbacks inside the adopt */
    int adopt_fd;       /* its socket */
    int adopt_gone;     /* it was destroyed inside the adopt */
    room_t *rooms;
    size_t nrooms;
    size_t nviewers;         /* in rooms, every room: what overlay_max_viewers bounds */
    size_t nrooms_unreg;     /* open rooms with `registered` 0: what overlay_max_rooms bounds */
    edge__ov_registry_t reg; /* SMEMBERS sw:streams, read once a second */
    int reg_busy;            /* a read is in flight */
    edge__ov_ratelog_t log_full, log_rooms;
    uint64_t viewer_seq;
    uv_timer_t tick, kick;
    atomic_int closing; /* also read by workers */
    int pending_close;
    void (*on_closed)(void *data);
    void *closed_data;
    /* connections handed over by workers, adopted on this loop */
    pthread_mutex_t mu; /* handoffs and snap */
    handoff_t *handoffs, *handoffs_tail;
    uv_async_t adopt;
    uv_check_t snapshot;
    sw_str_t snap; /* the metrics text as of this loop's last iteration, refused_total aside */
    /* metrics */
    atomic_uint_fast64_t refused; /* also counted by workers */
    uint64_t accepted, msgs_in, msgs_out, events, bad_events, coalesced, closes[4];
    uint64_t cart_acks, cart_errors, rate_limited, bad_messages;
    uint64_t viewers_refused, rooms_refused;
    uint64_t fanout_count, fanout_buckets[NBUCKETS];
    double fanout_sum;
};

enum { CLOSE_1003 = 0, CLOSE_1008, CLOSE_1009, CLOSE_1013 };

static void reader_kick(edge_overlay_t *ov);
static void room_fetch(room_t *r);
static void viewer_begin(viewer_t *v);

/* ---- messages and queues ----------------------------------------------------------------- */

static ov_msg_t *msg_new(const char *json, size_t len, int slot, const char *sku)
{
    ov_msg_t *m = malloc(sizeof(*m) + LWS_PRE + len + 1);
    if (m == NULL)
        return NULL;
    m->refs = 1;
    m->slot = slot;
    snprintf(m->sku, sizeof(m->sku), "%s", sku != NULL ? sku : "");
    m->len = len;
    memcpy(m->buf + LWS_PRE, json, len);
    m->buf[LWS_PRE + len] = '\0';
    return m;
}

static ov_msg_t *msg_ref(ov_msg_t *m)
{
    if (m != NULL)
        m->refs++;
    return m;
}

static void msg_unref(ov_msg_t *m)
{
    if (m != NULL && --m->refs == 0)
        free(m);
}

static ov_msg_t *msg_printf(int slot, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static ov_msg_t *msg_printf(int slot, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return NULL;
    return msg_new(buf, (size_t)n, slot, NULL);
}

/* Whether `b` supersedes `a`: any pin or unpin supersedes an older one, whatever the product;
 * price and stock updates only those of the same sku. */
static int same_slot(const ov_msg_t *a, const ov_msg_t *b)
{
    if (a->slot == EDGE__SLOT_NONE || a->slot != b->slot)
        return 0;
    return (a->slot != EDGE__SLOT_PRICE && a->slot != EDGE__SLOT_STOCK) ||
           strcmp(a->sku, b->sku) == 0;
}

static void queue_clear(viewer_t *v)
{
    while (v->qlen > 0) {
        msg_unref(v->q[v->qhead]);
        v->qhead = (v->qhead + 1) % v->ov->cfg.send_queue;
        v->qlen--;
    }
}

/* Closes after what is queued (the errors that explain a policy close), or at once with `drop`
 * (a viewer too slow to take its queue). Nothing is queued after this. */
static void viewer_close(viewer_t *v, int code, const char *reason, int drop)
{
    if (v->wsi == NULL || v->close_code != 0)
        return;
    v->close_code = code;
    v->close_drop = drop;
    if (drop)
        queue_clear(v);
    lws_close_reason(v->wsi, (enum lws_close_status)code, (unsigned char *)reason, strlen(reason));
    lws_callback_on_writable(v->wsi);
    /* A peer that does not read would never make the socket writable. */
    lws_set_timeout(v->wsi, PENDING_TIMEOUT_USER_OK, 5);
}

/* Removes the i-th queued message (0 is the oldest). */
static void queue_remove(viewer_t *v, size_t i)
{
    size_t cap = v->ov->cfg.send_queue;
    msg_unref(v->q[(v->qhead + i) % cap]);
    for (size_t j = i; j + 1 < v->qlen; j++)
        v->q[(v->qhead + j) % cap] = v->q[(v->qhead + j + 1) % cap];
    v->qlen--;
}

/* A full queue: drops the oldest message that a newer one of its slot supersedes (the incoming
 * one included). Returns 1 if room was made. */
static int queue_coalesce(viewer_t *v, const ov_msg_t *incoming)
{
    size_t cap = v->ov->cfg.send_queue;
    for (size_t i = 0; i < v->qlen; i++) {
        ov_msg_t *m = v->q[(v->qhead + i) % cap];
        if (m->slot == EDGE__SLOT_NONE)
            continue;
        int superseded = same_slot(m, incoming);
        for (size_t j = i + 1; j < v->qlen && !superseded; j++)
            superseded = same_slot(m, v->q[(v->qhead + j) % cap]);
        if (superseded) {
            queue_remove(v, i);
            v->ov->coalesced++;
            return 1;
        }
    }
    return 0;
}

/* Queues a reference on `m`. viewer_count always replaces a queued one; other state messages
 * coalesce only when the queue is full, so that a reader that keeps up sees every event. */
static void enqueue(viewer_t *v, ov_msg_t *m)
{
    size_t cap = v->ov->cfg.send_queue;
    /* A policy close still delivers the acks and errors already owed; a dropped viewer gets
     * nothing more. */
    if (v->wsi == NULL || v->close_started || v->close_drop || m == NULL)
        return;
    if (v->close_code != 0 && m->slot != EDGE__SLOT_NONE)
        return;
    if (m->slot == EDGE__SLOT_COUNT) {
        for (size_t i = 0; i < v->qlen; i++)
            if (v->q[(v->qhead + i) % cap]->slot == EDGE__SLOT_COUNT) {
                queue_remove(v, i);
                break;
            }
    }
    if (v->qlen == cap && !queue_coalesce(v, m)) {
        v->ov->closes[CLOSE_1013]++;
        viewer_close(v, CLOSE_TRY_LATER, "too slow: resume later", 1);
        return;
    }
    v->q[(v->qhead + v->qlen) % cap] = msg_ref(m);
    v->qlen++;
    lws_callback_on_writable(v->wsi);
}

/* Queues a message of our own (ack, error, count) made for this viewer only. */
static void send_own(viewer_t *v, ov_msg_t *m)
{
    enqueue(v, m);
    msg_unref(m);
}

static void send_error(viewer_t *v, const char *code, const char *req, const char *message)
{
    sw_str_t b;
    sw_str_init(&b);
    sw_str_printf(&b, "{\"type\":\"error\",\"code\":\"%s\",\"req\":%s,\"message\":\"", code,
                  req != NULL && req[0] != '\0' ? req : "null");
    sw_str_json_escape(&b, message);
    sw_str_puts(&b, "\"}");
    if (!b.failed)
        send_own(v, msg_new(b.p, b.len, EDGE__SLOT_NONE, NULL));
    sw_str_dispose(&b);
}

static void send_count(viewer_t *v)
{
    send_own(v, msg_printf(EDGE__SLOT_COUNT, "{\"type\":\"viewer_count\",\"count\":%zu}",
                           v->room->nviewers));
}

/* The room's state as this edge knows it, each message with its original id. */
static void send_state(viewer_t *v)
{
    room_t *r = v->room;
    enqueue(v, r->pinned);
    enqueue(v, r->price);
    enqueue(v, r->stock);
    enqueue(v, r->flash);
}

/* ---- rooms ------------------------------------------------------------------------------- */

static void room_free(room_t *r)
{
    msg_unref(r->pinned);
    msg_unref(r->price);
    msg_unref(r->stock);
    msg_unref(r->flash);
    free(r);
}

static void room_unpend(room_t *r)
{
    if (--r->pending == 0 && r->dead)
        room_free(r);
}

static room_t *room_find(edge_overlay_t *ov, const char *name)
{
    for (room_t *r = ov->rooms; r != NULL; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

static room_t *room_get(edge_overlay_t *ov, const char *name)
{
    room_t *r = room_find(ov, name);
    if (r != NULL)
        return r;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return NULL;
    r->ov = ov;
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->events_key, sizeof(r->events_key), "room:%s:events", name);
    snprintf(r->last_id, sizeof(r->last_id), "0-0");
    r->registered = edge__ov_registry_has(&ov->reg, name);
    if (!r->registered)
        ov->nrooms_unreg++;
    r->next = ov->rooms;
    if (r->next != NULL)
        r->next->pprev = &r->next;
    r->pprev = &ov->rooms;
    ov->rooms = r;
    ov->nrooms++;
    room_fetch(r);
    return r;
}

/* The last viewer left: the room leaves the XREAD set at the reader's next round. */
static void room_release(room_t *r)
{
    *r->pprev = r->next;
    if (r->next != NULL)
        r->next->pprev = r->pprev;
    r->ov->nrooms--;
    if (!r->registered)
        r->ov->nrooms_unreg--;
    r->dead = 1;
    if (r->pending == 0)
        room_free(r);
}

static void set_state(ov_msg_t **slot, ov_msg_t *m)
{
    msg_unref(*slot);
    *slot = msg_ref(m);
}

/* Applies an event to the room's state: what a viewer who joins later is sent. Price and stock
 * updates are kept only for the pinned product, and a new pin clears them. */
static void room_apply(room_t *r, const edge__ov_event_t *ev, ov_msg_t *m, const char *type)
{
    if (strcmp(type, "product_pinned") == 0) {
        set_state(&r->pinned, m);
        set_state(&r->price, NULL);
        set_state(&r->stock, NULL);
    } else if (strcmp(type, "product_unpinned") == 0) {
        /* As the origin's script does: only the pinned product's unpin clears it. */
        if (r->pinned == NULL || strcmp(r->pinned->sku, ev->sku) != 0)
            return;
        set_state(&r->pinned, NULL);
        set_state(&r->price, NULL);
        set_state(&r->stock, NULL);
    } else if (strcmp(type, "flash_sale") == 0) {
        set_state(&r->flash, m);
    } else if (r->pinned != NULL && strcmp(r->pinned->sku, ev->sku) == 0) {
        if (strcmp(type, "price_update") == 0)
            set_state(&r->price, m);
        else if (strcmp(type, "stock_update") == 0)
            set_state(&r->stock, m);
    }
}

/* Reads one stream entry reply ([id, [field, value, ...]]) into an event. Returns 0 or an error
 * (then the entry is skipped, but its id still counts as seen). */
#define NOT_FOR_VIEWERS 1 /* entry_event(): an entry viewers are not sent, and not an error */

/* One stream entry as a viewer message. Returns 0, NOT_FOR_VIEWERS or an EDGE_ERR_* (logged). */
static int entry_event(const redisReply *e, edge__ov_event_t *ev, const char **type_out,
                       const char **id_out)
{
    const char *why = "malformed entry";
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return EDGE_ERR_INVAL;
    *id_out = e->element[0]->str;
    const redisReply *f = e->element[1];
    const char *type = NULL, *data = NULL, *mt = NULL;
    size_t dlen = 0;
    if (f->type != REDIS_REPLY_ARRAY)
        return EDGE_ERR_INVAL;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *val = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "type") == 0)
            type = val->str;
        else if (strcmp(k->str, "data") == 0)
            data = val->str, dlen = val->len;
        else if (strcmp(k->str, "media_time") == 0)
            mt = val->str;
    }
    *type_out = type;
    /* The platform's chat rate goes to the origin's moment detector, not to viewers. */
    if (type != NULL && strcmp(type, "chat_rate") == 0)
        return NOT_FOR_VIEWERS;
    int rv = edge__overlay_event(*id_out, type, data, dlen, mt, ev, &why);
    if (rv != 0)
        sw_log(SW_LOG_WARN, "overlay", "skipping event %s: %s", *id_out, why);
    return rv;
}

/* Live delivery of the reader's entries for one room. */
static void room_deliver(room_t *r, const redisReply *entries, uint64_t t0)
{
    edge_overlay_t *ov = r->ov;
    edge__ov_event_t ev;
    sw_str_init(&ev.json);
    for (size_t i = 0; i < entries->elements; i++) {
        const char *type = NULL, *id = NULL;
        int rv = entry_event(entries->element[i], &ev, &type, &id);
        uint64_t ms, seq;
        if (id == NULL || edge_overlay_parse_id(id, strlen(id), &ms, &seq) != 0 ||
            strlen(id) >= sizeof(r->last_id))
            continue;
        if (edge__overlay_idcmp(id, r->last_id) <= 0)
            continue; /* already covered by the state or an earlier read */
        snprintf(r->last_id, sizeof(r->last_id), "%s", id);
        if (rv != 0) {
            ov->bad_events += rv != NOT_FOR_VIEWERS;
            continue;
        }
        ov->events++;
        ov_msg_t *m = msg_new(ev.json.p, ev.json.len, ev.slot, ev.sku);
        if (m == NULL)
            continue;
        room_apply(r, &ev, m, type);
        for (viewer_t *v = r->viewers; v != NULL; v = v->next)
            if (v->phase == PHASE_LIVE)
                enqueue(v, m);
        msg_unref(m);
        /* From reading the event to queueing it on every connection. */
        double dt = (double)(uv_hrtime() - t0) / 1e9;
        ov->fanout_count++;
        ov->fanout_sum += dt;
        for (size_t b = 0; b < NBUCKETS; b++)
            if (dt <= fanout_buckets[b])
                ov->fanout_buckets[b]++;
    }
    sw_str_dispose(&ev.json);
}

/* The reply to MULTI / HGETALL state / XREVRANGE events + - COUNT 1 / EXEC. */
static void on_room_state(redisAsyncContext *ac, void *reply, void *privdata)
{
    room_t *r = privdata;
    redisReply *rep = reply;
    r->fetching = 0;
    if (r->dead || r->ov->closing) {
        room_unpend(r);
        return;
    }
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        /* Redis went away or refused: the next connect fetches again. */
        room_unpend(r);
        return;
    }
    const redisReply *h = rep->element[0], *top = rep->element[1];
    if (top->type == REDIS_REPLY_ERROR) {
        /* room:{room}:events is not a stream: in the shared XREAD it would fail every room. */
        sw_log(SW_LOG_WARN, "overlay", "room %s: %s: %s; not reading it", r->name, r->events_key,
               top->str);
        room_unpend(r);
        return;
    }
    const char *last = NULL;
    edge__ov_event_t ev;
    sw_str_init(&ev.json);
    for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *val = h->element[i + 1];
        const char *why = NULL;
        if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
            continue;
        int is_pin = strcmp(k->str, "pinned") == 0, is_flash = strcmp(k->str, "flash_sale") == 0;
        if (strcmp(k->str, "last_id") == 0) {
            uint64_t ms, seq;
            if (edge_overlay_parse_id(val->str, val->len, &ms, &seq) == 0 &&
                val->len < sizeof(r->last_id))
                last = val->str;
        } else if (is_pin || is_flash) {
            if (edge__overlay_state(val->str, val->len, &ev, &why) != 0) {
                sw_log(SW_LOG_WARN, "overlay", "room %s: state field %s skipped: %s", r->name,
                       k->str, why);
                continue;
            }
            ov_msg_t *m = msg_new(ev.json.p, ev.json.len, ev.slot, ev.sku);
            set_state(is_pin ? &r->pinned : &r->flash, m);
            msg_unref(m);
        }
    }
    sw_str_dispose(&ev.json);
    /* Without last_id in the state, live starts after the newest event: history is not replayed
     * to viewers who did not ask for it. */
    if (last == NULL && top->type == REDIS_REPLY_ARRAY && top->elements == 1 &&
        top->element[0]->type == REDIS_REPLY_ARRAY && top->element[0]->elements == 2 &&
        top->element[0]->element[0]->type == REDIS_REPLY_STRING)
        last = top->element[0]->element[0]->str;
    if (last != NULL && edge__overlay_idcmp(last, r->last_id) > 0)
        snprintf(r->last_id, sizeof(r->last_id), "%s", last);
    r->live = 1;
    for (viewer_t *v = r->viewers, *n; v != NULL; v = n) {
        n = v->next;
        if (v->phase == PHASE_WAIT_ROOM)
            viewer_begin(v);
    }
    edge_overlay_t *ov = r->ov;
    room_unpend(r);
    /* A new stream for the reader: cut its current block short. */
    if (ov->rd_busy) {
        if (ov->cmd.connected && ov->rd_client_id > 0)
            redisAsyncCommand(ov->cmd.ac, NULL, NULL, "CLIENT UNBLOCK %lld", ov->rd_client_id);
    } else {
        reader_kick(ov);
    }
}

static void room_fetch(room_t *r)
{
    edge_overlay_t *ov = r->ov;
    if (r->live || r->fetching || r->dead || !ov->cmd.connected)
        return;
    redisAsyncContext *ac = ov->cmd.ac;
    redisAsyncCommand(ac, NULL, NULL, "MULTI");
    redisAsyncCommand(ac, NULL, NULL, "HGETALL room:%s:state", r->name);
    redisAsyncCommand(ac, NULL, NULL, "XREVRANGE %s + - COUNT 1", r->events_key);
    if (redisAsyncCommand(ac, on_room_state, r, "EXEC") == REDIS_OK) {
        r->fetching = 1;
        r->pending++;
    }
}

/* ---- the reader ---------------------------------------------------------------------------- */

static void on_kick(uv_timer_t *t)
{
    reader_kick(sw_container_of(t, edge_overlay_t, kick));
}

static void on_xread(redisAsyncContext *ac, void *reply, void *privdata)
{
    edge_overlay_t *ov = privdata;
    redisReply *rep = reply;
    uint64_t t0 = uv_hrtime();
    ov->rd_busy = 0;
    if (rep == NULL || ov->closing)
        return; /* disconnected: on_up starts again */
    if (rep->type == REDIS_REPLY_ERROR) {
        /* Not UNBLOCKED (that is a nil reply): a stream key of the wrong type, say. */
        sw_log(SW_LOG_WARN, "overlay", "XREAD: %s", rep->str);
        uv_timer_start(&ov->kick, on_kick, 1000, 0);
        return;
    }
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *s = rep->element[i];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
            s->element[0]->type != REDIS_REPLY_STRING || s->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        for (room_t *r = ov->rooms; r != NULL; r = r->next)
            if (r->live && strcmp(r->events_key, s->element[0]->str) == 0) {
                room_deliver(r, s->element[1], t0);
                break;
            }
    }
    reader_kick(ov);
}

static void reader_kick(edge_overlay_t *ov)
{
    if (ov->closing || !ov->rd.connected || ov->rd_busy || ov->rd_client_id == 0)
        return;
    size_t n = 0;
    for (room_t *r = ov->rooms; r != NULL; r = r->next)
        n += r->live;
    if (n == 0)
        return;
    size_t argc = 6 + 2 * n;
    const char **argv = calloc(argc, sizeof(*argv));
    if (argv == NULL) {
        uv_timer_start(&ov->kick, on_kick, 1000, 0);
        return;
    }
    char count[16], block[16];
    snprintf(count, sizeof(count), "%d", XREAD_COUNT);
    snprintf(block, sizeof(block), "%d", XREAD_BLOCK_MS);
    argv[0] = "XREAD";
    argv[1] = "COUNT";
    argv[2] = count;
    argv[3] = "BLOCK";
    argv[4] = block;
    argv[5] = "STREAMS";
    size_t i = 0;
    for (room_t *r = ov->rooms; r != NULL; r = r->next) {
        if (!r->live)
            continue;
        argv[6 + i] = r->events_key;
        argv[6 + n + i] = r->last_id;
        i++;
    }
    if (redisAsyncCommandArgv(ov->rd.ac, on_xread, ov, (int)argc, argv, NULL) == REDIS_OK) {
        ov->rd_busy = 1;
    }
    free(argv);
}

static void on_client_id(redisAsyncContext *ac, void *reply, void *privdata)
{
    edge_overlay_t *ov = privdata;
    redisReply *rep = reply;
    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER)
        return;
    ov->rd_client_id = rep->integer;
    reader_kick(ov);
}

static void on_reader_up(edge__ov_redis_t *rd)
{
    edge_overlay_t *ov = rd->data;
    ov->rd_client_id = 0;
    ov->rd_busy = 0;
    redisAsyncCommand(rd->ac, on_client_id, ov, "CLIENT ID");
}

static void on_reader_down(edge__ov_redis_t *rd)
{
    edge_overlay_t *ov = rd->data;
    ov->rd_client_id = 0;
    ov->rd_busy = 0;
}

/* ---- the registry ------------------------------------------------------------------------ */

/* The names the origins register while they ingest (README "Redis"): rooms of those streams are
 * not capped. Reading the whole set once a second costs one command per edge whatever the joins,
 * where a check per new room would cost a round trip in front of each (and would let a flood of
 * made-up names cost one each). Each open room's flag follows the registry: a room whose stream
 * ended counts against overlay_max_rooms from then on (its viewers stay; only new such rooms are
 * refused), and a lobby whose stream started stops counting. A set Redis cannot give (down, or
 * the key of another type) leaves the copy as it was. */
static void on_registry(redisAsyncContext *ac, void *reply, void *privdata)
{
    edge_overlay_t *ov = privdata;
    redisReply *rep = reply;
    ov->reg_busy = 0;
    if (rep == NULL || ov->closing || rep->type != REDIS_REPLY_ARRAY)
        return;
    size_t n = rep->elements, k = 0;
    const char **names = calloc(n > 0 ? n : 1, sizeof(*names));
    size_t *lens = calloc(n > 0 ? n : 1, sizeof(*lens));
    for (size_t i = 0; names != NULL && lens != NULL && i < n; i++) {
        const redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_STRING) {
            names[k] = e->str;
            lens[k++] = e->len;
        }
    }
    if (names != NULL && lens != NULL && edge__ov_registry_load(&ov->reg, names, lens, k) == 0) {
        ov->nrooms_unreg = 0;
        for (room_t *r = ov->rooms; r != NULL; r = r->next) {
            r->registered = edge__ov_registry_has(&ov->reg, r->name);
            ov->nrooms_unreg += !r->registered;
        }
    }
    free(names);
    free(lens);
}

static void registry_read(edge_overlay_t *ov)
{
    if (ov->closing || ov->reg_busy || !ov->cmd.connected)
        return;
    if (redisAsyncCommand(ov->cmd.ac, on_registry, ov, "SMEMBERS sw:streams") == REDIS_OK)
        ov->reg_busy = 1;
}

/* The command connection is back: rooms that never got their state fetch it now. Rooms already
 * live keep their cursor, and the reader resumes from it. */
static void on_cmd_up(edge__ov_redis_t *cmd)
{
    edge_overlay_t *ov = cmd->data;
    registry_read(ov);
    for (room_t *r = ov->rooms; r != NULL; r = r->next)
        room_fetch(r);
}

/* ---- viewers: resume, hello, add_to_cart ------------------------------------------------------
 */

static void viewer_unpend(viewer_t *v)
{
    /* A closing viewer waits for the replies it is owed (cart_ack) before its close frame. */
    if (v->pending == 1 && v->wsi != NULL && v->close_code != 0)
        lws_callback_on_writable(v->wsi);
    if (--v->pending == 0 && v->wsi == NULL) {
        free(v->q);
        free(v->rx);
        free(v);
    }
}

static void viewer_live(viewer_t *v)
{
    v->phase = PHASE_LIVE;
    send_count(v);
}

/* Lost entries (trimmed past the client's id), or no way to read them: the client drops what it
 * shows and takes the current state. */
static void viewer_resync(viewer_t *v, const char *reason)
{
    send_own(v, msg_printf(EDGE__SLOT_NONE, "{\"type\":\"resync\",\"reason\":\"%s\"}", reason));
    send_state(v);
    viewer_live(v);
}

static void resume_step(viewer_t *v, int first);

static void on_xinfo(redisAsyncContext *ac, void *reply, void *privdata)
{
    viewer_t *v = privdata;
    redisReply *rep = reply;
    /* recorded-first-entry-id: entries older than the first one were trimmed, and a client whose
     * id is older may have missed some of them (when only its own entry went, the resync is
     * harmless). max-deleted-entry-id (Redis 7) covers XDEL the same way. A missing stream (an
     * error reply) lost nothing. */
    if (v->wsi != NULL && rep != NULL && rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
            const redisReply *k = rep->element[i], *val = rep->element[i + 1];
            uint64_t ms, seq;
            if (k->type == REDIS_REPLY_STRING &&
                (strcmp(k->str, "max-deleted-entry-id") == 0 ||
                 strcmp(k->str, "recorded-first-entry-id") == 0) &&
                val->type == REDIS_REPLY_STRING &&
                edge_overlay_parse_id(val->str, val->len, &ms, &seq) == 0 &&
                edge__overlay_idcmp(v->cursor, val->str) < 0)
                v->gap = 1;
        }
    }
    viewer_unpend(v);
}

static void on_resume_range(redisAsyncContext *ac, void *reply, void *privdata)
{
    viewer_t *v = privdata;
    redisReply *rep = reply;
    if (v->wsi == NULL || v->ov->closing) {
        viewer_unpend(v);
        return;
    }
    room_t *r = v->room;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        viewer_resync(v, "redis_unavailable");
    } else if (v->gap) {
        viewer_resync(v, "trimmed");
    } else {
        edge__ov_event_t ev;
        sw_str_init(&ev.json);
        for (size_t i = 0; i < rep->elements; i++) {
            const char *type = NULL, *id = NULL;
            int rv = entry_event(rep->element[i], &ev, &type, &id);
            uint64_t ms, seq;
            if (id == NULL || strlen(id) >= sizeof(v->cursor) ||
                edge_overlay_parse_id(id, strlen(id), &ms, &seq) != 0)
                continue;
            /* Live delivery takes over after the room's cursor: never send past it. */
            if (edge__overlay_idcmp(id, r->last_id) > 0)
                break;
            snprintf(v->cursor, sizeof(v->cursor), "%s", id);
            if (rv == 0)
                send_own(v, msg_new(ev.json.p, ev.json.len, ev.slot, ev.sku));
        }
        sw_str_dispose(&ev.json);
        if (v->close_code == 0) {
            if (rep->elements >= RESUME_COUNT || edge__overlay_idcmp(v->cursor, r->last_id) < 0)
                resume_step(v, 0);
            else
                viewer_live(v);
        }
    }
    viewer_unpend(v);
}

/* XRANGE from the viewer's cursor (exclusive) to the id the room has reached. */
static void resume_step(viewer_t *v, int first)
{
    edge_overlay_t *ov = v->ov;
    room_t *r = v->room;
    if (!ov->cmd.connected) {
        viewer_resync(v, "redis_unavailable");
        return;
    }
    if (first &&
        redisAsyncCommand(ov->cmd.ac, on_xinfo, v, "XINFO STREAM %s", r->events_key) == REDIS_OK)
        v->pending++;
    if (redisAsyncCommand(ov->cmd.ac, on_resume_range, v, "XRANGE %s (%s %s COUNT %d",
                          r->events_key, v->cursor, r->last_id, RESUME_COUNT) == REDIS_OK)
        v->pending++;
    else
        viewer_resync(v, "redis_unavailable");
}

/* The room is live and the client said hello (or stayed silent): state or resume. */
static void viewer_begin(viewer_t *v)
{
    room_t *r = v->room;
    if (v->cursor[0] == '\0') {
        send_state(v);
        viewer_live(v);
    } else if (edge__overlay_idcmp(v->cursor, r->last_id) >= 0) {
        viewer_live(v); /* nothing missed */
    } else {
        v->phase = PHASE_RESUMING;
        resume_step(v, 1);
    }
}

static void viewer_hello(viewer_t *v, const char *last_event_id)
{
    if (v->phase != PHASE_HELLO)
        return;
    lws_set_timer_usecs(v->wsi, LWS_SET_TIMER_USEC_CANCEL);
    snprintf(v->cursor, sizeof(v->cursor), "%s", last_event_id != NULL ? last_event_id : "");
    v->phase = PHASE_WAIT_ROOM;
    if (v->room->live)
        viewer_begin(v);
}

typedef struct cart_ctx {
    viewer_t *v;
    char req[EDGE_OVERLAY_REQ_MAX + 3];
} cart_ctx_t;

static void on_cart(redisAsyncContext *ac, void *reply, void *privdata)
{
    cart_ctx_t *cc = privdata;
    viewer_t *v = cc->v;
    redisReply *rep = reply;
    const char *req = cc->req[0] ? cc->req : "null";
    if (v->wsi != NULL) {
        if (rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len < 48) {
            v->ov->cart_acks++;
            send_own(v,
                     msg_printf(EDGE__SLOT_NONE, "{\"type\":\"cart_ack\",\"req\":%s,\"id\":\"%s\"}",
                                req, rep->str));
        } else {
            v->ov->cart_errors++;
            send_error(v, "redis_unavailable", cc->req,
                       rep == NULL ? "the cart store is unreachable; nothing was added"
                                   : "the cart store refused the entry; nothing was added");
        }
    }
    free(cc);
    viewer_unpend(v);
}

/* Token bucket: cart_rate per second, cart_burst deep. */
static int take_token(viewer_t *v)
{
    const edge_overlay_config_t *c = &v->ov->cfg;
    uint64_t now = uv_now(v->ov->loop);
    v->tokens += (double)(now - v->refill_ms) * c->cart_rate / 1000.0;
    if (v->tokens > c->cart_burst)
        v->tokens = c->cart_burst;
    v->refill_ms = now;
    if (v->tokens < 1.0)
        return 0;
    v->tokens -= 1.0;
    return 1;
}

static void viewer_cart(viewer_t *v, const edge_overlay_msg_t *m)
{
    edge_overlay_t *ov = v->ov;
    if (!take_token(v)) {
        ov->rate_limited++;
        if (++v->strikes > MAX_STRIKES) {
            ov->closes[CLOSE_1008]++;
            viewer_close(v, LWS_CLOSE_STATUS_POLICY_VIOLATION, "add_to_cart flood", 0);
            return;
        }
        /* The errors are advice: a flood must not fill its own queue with them. */
        if (v->qlen < v->ov->cfg.send_queue / 2)
            send_error(v, "rate_limited", m->req, "too many add_to_cart; slow down");
        return;
    }
    if (!ov->cmd.connected) {
        ov->cart_errors++;
        send_error(v, "redis_unavailable", m->req,
                   "the cart store is unreachable; nothing was added");
        return;
    }
    cart_ctx_t *cc = calloc(1, sizeof(*cc));
    if (cc == NULL) {
        send_error(v, "internal", m->req, "out of memory");
        return;
    }
    cc->v = v;
    memcpy(cc->req, m->req, sizeof(cc->req));
    char qty[8], now[24];
    snprintf(qty, sizeof(qty), "%d", m->qty);
    snprintf(now, sizeof(now), "%lld", (long long)sw_now_ms());
    /* MAXLEN ~ bounds the stream that viewers fill: Redis trims whole nodes, so it keeps at
     * least cart_maxlen entries and a node's worth more at most. */
    if (redisAsyncCommand(
            ov->cmd.ac, on_cart, cc,
            "XADD room:%s:cart MAXLEN ~ %llu * viewer %s sku %s qty %s time %s edge %s",
            v->room->name, (unsigned long long)ov->cfg.cart_maxlen, v->id, m->sku, qty, now,
            ov->edge_name) != REDIS_OK) {
        free(cc);
        ov->cart_errors++;
        send_error(v, "redis_unavailable", m->req,
                   "the cart store is unreachable; nothing was added");
        return;
    }
    v->pending++;
}

static void viewer_message(viewer_t *v, const uint8_t *buf, size_t len)
{
    edge_overlay_msg_t m;
    const char *why = NULL;
    edge_overlay_t *ov = v->ov;
    ov->msgs_in++;
    if (edge_overlay_parse(buf, len, &m, &why) != 0) {
        ov->bad_messages++;
        if (++v->bad > MAX_BAD) {
            ov->closes[CLOSE_1008]++;
            viewer_close(v, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many bad messages", 0);
            return;
        }
        send_error(v, "bad_message", m.req, why);
        return;
    }
    if (m.type == EDGE_OVERLAY_HELLO) {
        viewer_hello(v, m.last_event_id[0] ? m.last_event_id : NULL);
        return;
    }
    /* Anything before hello counts as a hello without resume. */
    viewer_hello(v, NULL);
    viewer_cart(v, &m);
}

/* ---- libwebsockets --------------------------------------------------------------------------- */

static void viewer_attach(viewer_t *v)
{
    room_t *r = room_get(v->ov, v->roomname);
    if (r == NULL) {
        viewer_close(v, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", 1);
        return;
    }
    v->room = r;
    v->next = r->viewers;
    if (v->next != NULL)
        v->next->pprev = &v->next;
    v->pprev = &r->viewers;
    r->viewers = v;
    r->nviewers++;
    r->count_dirty = 1;
    v->ov->nviewers++;
}

/* Whether this viewer may join its room (edge__overlay_admit()): a refusal closes it with 1013
 * and the reason, is counted, and is logged at most once a second per kind, with the number
 * left unlogged meanwhile: a flood of joins would otherwise write a line each. */
static int viewer_admit(viewer_t *v)
{
    edge_overlay_t *ov = v->ov;
    edge__ov_load_t load = {ov->nviewers, ov->cfg.max_viewers, ov->nrooms_unreg, ov->cfg.max_rooms};
    edge__ov_admit_t a = edge__overlay_admit(&load, room_find(ov, v->roomname) != NULL,
                                             edge__ov_registry_has(&ov->reg, v->roomname));
    if (a == EDGE__ADMIT_OK)
        return 1;
    int full = a == EDGE__ADMIT_EDGE_FULL;
    uint64_t more = 0;
    if (full)
        ov->viewers_refused++;
    else
        ov->rooms_refused++;
    if (edge__ov_ratelog(full ? &ov->log_full : &ov->log_rooms, uv_now(ov->loop), REFUSAL_LOG_MS,
                         &more)) {
        if (full)
            sw_log(SW_LOG_WARN, "overlay",
                   "viewer refused (room %s): %zu viewers on this edge, overlay_max_viewers = %zu "
                   "(%llu more refused since the last line)",
                   v->roomname, ov->nviewers, ov->cfg.max_viewers, (unsigned long long)more);
        else
            sw_log(SW_LOG_WARN, "overlay",
                   "room %s refused: not in the registry (sw:streams) and %zu such rooms open, "
                   "overlay_max_rooms = %zu (%llu more refused since the last line)",
                   v->roomname, ov->nrooms_unreg, ov->cfg.max_rooms, (unsigned long long)more);
    }
    ov->closes[CLOSE_1013]++;
    viewer_close(v, CLOSE_TRY_LATER,
                 full ? "edge full: too many viewers; try again later"
                      : "room: not a live stream, and this edge has too many such rooms open; "
                        "try again later",
                 1);
    return 0;
}

/* The connection is gone: the viewer leaves its room; Redis callbacks may still point at it. */
static void viewer_gone(viewer_t *v)
{
    if (v->wsi == NULL)
        return;
    v->wsi = NULL;
    queue_clear(v);
    room_t *r = v->room;
    if (r != NULL) {
        *v->pprev = v->next;
        if (v->next != NULL)
            v->next->pprev = v->pprev;
        r->count_dirty = 1;
        v->ov->nviewers--;
        if (--r->nviewers == 0)
            room_release(r);
        v->room = NULL;
    }
    v->pending++;
    viewer_unpend(v);
}

static int on_writable(viewer_t *v, struct lws *wsi)
{
    if (v->close_started)
        return 0;
    if (v->close_code != 0 && v->qlen == 0 && v->pending == 0) {
        /* Returning -1 here (or a timeout) marks the socket unusable and skips the close frame;
         * a -1 from the timer callback closes through the websocket role, which sends the
         * reason viewer_close() set and waits for the peer's close. */
        lws_set_timer_usecs(wsi, 1);
        return 0;
    }
    /* Several messages per callback while the socket takes them: a partial write is kept by
     * lws (and reported as choked), so nothing is written behind it. */
    for (int i = 0; i < WRITES_PER_CALLBACK && v->qlen > 0; i++) {
        if (i > 0 && lws_send_pipe_choked(wsi))
            break;
        ov_msg_t *m = v->q[v->qhead];
        v->qhead = (v->qhead + 1) % v->ov->cfg.send_queue;
        v->qlen--;
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        msg_unref(m);
        if (n < 0)
            return -1;
        v->ov->msgs_out++;
    }
    if (v->qlen > 0 || v->close_code != 0)
        lws_callback_on_writable(wsi);
    return 0;
}

static int on_receive(viewer_t *v, struct lws *wsi, const uint8_t *in, size_t len)
{
    edge_overlay_t *ov = v->ov;
    if (v->close_code != 0)
        return 0;
    /* Closed like the others, from the timer: what the peer still sends is read and dropped
     * while the close frame goes out, so a flood does not turn the close into a reset. */
    if (lws_frame_is_binary(wsi)) {
        ov->closes[CLOSE_1003]++;
        viewer_close(v, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "text frames only", 1);
        return 0;
    }
    if (v->rx_len + len > ov->cfg.max_message) {
        ov->closes[CLOSE_1009]++;
        viewer_close(v, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "too big", 1);
        return 0;
    }
    int final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    if (final && v->rx_len == 0) {
        viewer_message(v, in, len);
        return 0;
    }
    if (v->rx == NULL && (v->rx = malloc(ov->cfg.max_message)) == NULL)
        return -1;
    memcpy(v->rx + v->rx_len, in, len);
    v->rx_len += len;
    if (final) {
        size_t n = v->rx_len;
        v->rx_len = 0;
        viewer_message(v, v->rx, n);
    }
    return 0;
}

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    edge_overlay_t *ov = ctx != NULL ? lws_context_user(ctx) : NULL;
    viewer_t *v = wsi != NULL ? lws_get_opaque_user_data(wsi) : NULL;

    /* The first callback of the wsi being adopted binds it to its viewer (lws may run the whole
     * handshake inside the adopt call). */
    if (v == NULL && wsi != NULL && ov != NULL && ov->adopting != NULL &&
        lws_get_socket_fd(wsi) == ov->adopt_fd) {
        v = ov->adopting;
        v->wsi = wsi;
        lws_set_opaque_user_data(wsi, v);
    }
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        if (v == NULL)
            return -1;
        ov->accepted++;
        if (v->reject[0] != '\0') {
            ov->closes[CLOSE_1008]++;
            viewer_close(v, LWS_CLOSE_STATUS_POLICY_VIOLATION, v->reject, 1);
            return 0;
        }
        if (!viewer_admit(v))
            return 0;
        v->refill_ms = uv_now(ov->loop);
        v->tokens = ov->cfg.cart_burst;
        viewer_attach(v);
        lws_set_timer_usecs(wsi, HELLO_WAIT_US);
        return 0;
    case LWS_CALLBACK_TIMER:
        if (v != NULL && v->close_code != 0) {
            /* Once: lws then sends the close frame and waits for the peer's; a second -1 would
             * drop the connection at once. */
            if (v->close_started)
                return 0;
            v->close_started = 1;
            return -1;
        }
        if (v != NULL && v->wsi != NULL && v->phase == PHASE_HELLO && v->room != NULL)
            viewer_hello(v, NULL);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return v != NULL && v->wsi != NULL ? on_writable(v, wsi) : -1;
    case LWS_CALLBACK_RECEIVE:
        return v != NULL && v->wsi != NULL ? on_receive(v, wsi, in, len) : -1;
    case LWS_CALLBACK_WSI_DESTROY:
        if (v != NULL) {
            lws_set_opaque_user_data(wsi, NULL);
            if (v == ov->adopting)
                ov->adopt_gone = 1;
            if (v->wsi == NULL) /* never bound */
                v->wsi = wsi;
            viewer_gone(v);
        }
        return 0;
    case LWS_CALLBACK_HTTP:
        /* Only upgrades are handed over; anything else ends here. */
        return -1;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* lws 4.1.6 logs every readbuf adoption ("calling service on readbuf ah") at error level:
 * its log goes to ours at debug, the rest as warnings. */
static void on_lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        n--;
    int quiet = strstr(line, "calling service") != NULL;
    sw_log(quiet ? SW_LOG_DEBUG : SW_LOG_WARN, "lws", "%.*s", (int)n, line);
}

static const struct lws_protocols protocols[] = {
    {"shortwave-overlay", on_lws, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Pings after 30 s without traffic, hangs up after 75 s: dead viewers do not pile up. */
static const lws_retry_bo_t keepalive = {
    .secs_since_valid_ping = 30,
    .secs_since_valid_hangup = 75,
};

/* ---- the upgrade --------------------------------------------------------------------------- */

static int header_has_token(const char *v, const char *token)
{
    size_t n = strlen(token);
    while (v != NULL && *v != '\0') {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e != '\0' && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == n && strncasecmp(v, token, n) == 0)
            return 1;
        v = e;
    }
    return 0;
}

static int origin_allowed(const edge_overlay_t *ov, const char *origin)
{
    if (ov->allowed_origins == NULL || ov->allowed_origins[0] == '\0')
        return 1;
    if (origin == NULL)
        return 1; /* not a browser: Origin protects browsers only, and others can forge it */
    return header_has_token(ov->allowed_origins, origin);
}

static void refuse(edge_overlay_t *ov, sw_http_req_t *req, int status, const char *msg)
{
    static const sw_http_header_t h[] = {{"cache-control", "no-store"}};
    ov->refused++;
    char body[256];
    int n = snprintf(body, sizeof(body), "%s\n", msg);
    sw_http_respond(req, status, h, 1, body, (size_t)n);
}

/* The client's address without the port, as a token binds it. */
static void peer_ip(const char *peer, char *out, size_t len)
{
    const char *s = peer, *e;
    if (*s == '[') {
        s++;
        e = strchr(s, ']');
    } else {
        e = strrchr(s, ':');
    }
    size_t n = e != NULL ? (size_t)(e - s) : strlen(s);
    if (n >= len)
        n = len - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

int edge_overlay_handoff(edge_overlay_t *ov, sw_http_req_t *req)
{
    static const char prefix[] = "/overlay/";
    if (strncmp(req->path, prefix, sizeof(prefix) - 1) != 0)
        return 0;
    const char *room = req->path + sizeof(prefix) - 1;
    if (!edge__overlay_room_ok(room, strlen(room))) {
        refuse(ov, req, 404, "no such room: a room id is 1 to 64 of A-Z a-z 0-9 _ - .");
        return 1;
    }
    if (ov->closing) {
        refuse(ov, req, 503, "shutting down");
        return 1;
    }
    if (req->version == 20) {
        refuse(ov, req, 426, "websockets need HTTP/1.1 here (no RFC 8441 on HTTP/2)");
        return 1;
    }
    if (strcmp(req->method, "GET") != 0 ||
        !header_has_token(sw_http_req_header(req, "upgrade"), "websocket") ||
        !header_has_token(sw_http_req_header(req, "connection"), "upgrade") ||
        sw_http_req_header(req, "sec-websocket-key") == NULL) {
        refuse(ov, req, 426, "a websocket upgrade (GET, Upgrade: websocket) is expected here");
        return 1;
    }
    if (!origin_allowed(ov, sw_http_req_header(req, "origin"))) {
        refuse(ov, req, 403, "origin not allowed");
        return 1;
    }
    handoff_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        refuse(ov, req, 503, "out of memory");
        return 1;
    }
    snprintf(h->room, sizeof(h->room), "%s", room);
    if (ov->token_key != NULL) {
        char path[96], ip[64];
        const char *why = "refused";
        snprintf(path, sizeof(path), "/live/%s/overlay", room);
        peer_ip(req->peer, ip, sizeof(ip));
        if (edge_token_verify(&ov->tcfg, path, req->query, strlen(req->query), ip,
                              sw_now_ms() / 1000, &why) != 0)
            snprintf(h->reject, sizeof(h->reject), "token: %s", why ? why : "refused");
    }
    sw_str_init(&h->pre);
    int rv = sw_http_takeover(req, &h->fd, &h->pre);
    if (rv != 0) {
        sw_str_dispose(&h->pre);
        free(h);
        refuse(ov, req, rv == SW_ERR_STATE ? 400 : 503,
               rv == SW_ERR_STATE ? "cannot upgrade this connection (pipelined or with a body)"
                                  : "cannot hand the connection over");
        return 1;
    }
    /* From here the request is gone and we own fd. */
    pthread_mutex_lock(&ov->mu);
    if (ov->handoffs_tail != NULL)
        ov->handoffs_tail->next = h;
    else
        ov->handoffs = h;
    ov->handoffs_tail = h;
    pthread_mutex_unlock(&ov->mu);
    uv_async_send(&ov->adopt);
    return 1;
}

static void handoff_free(handoff_t *h)
{
    sw_str_dispose(&h->pre);
    free(h);
}

/* On the overlay's loop: hands one connection to libwebsockets. */
static void adopt_one(edge_overlay_t *ov, handoff_t *h)
{
    viewer_t *v = NULL;
    if (ov->closing || (v = calloc(1, sizeof(*v))) == NULL ||
        (v->q = calloc(ov->cfg.send_queue, sizeof(*v->q))) == NULL) {
        /* Too late for an HTTP answer: the connection is no longer HTTP. */
        free(v);
        close(h->fd);
        ov->refused++;
        handoff_free(h);
        return;
    }
    v->ov = ov;
    snprintf(v->roomname, sizeof(v->roomname), "%s", h->room);
    snprintf(v->reject, sizeof(v->reject), "%s", h->reject);
    snprintf(v->id, sizeof(v->id), "%s-%llu", ov->edge_name, (unsigned long long)++ov->viewer_seq);
    /* lws owns fd from here (and closes it on failure). */
    ov->adopting = v;
    ov->adopt_fd = h->fd;
    ov->adopt_gone = 0;
    struct lws *wsi = lws_adopt_socket_vhost_readbuf(ov->vh, h->fd, h->pre.p, h->pre.len);
    ov->adopting = NULL;
    ov->adopt_fd = -1;
    handoff_free(h);
    if (ov->adopt_gone)
        return; /* destroyed inside the adopt; WSI_DESTROY freed the viewer */
    if (wsi == NULL) {
        if (v->wsi == NULL) {
            free(v->q);
            free(v);
        }
        return;
    }
    if (v->wsi == NULL) {
        v->wsi = wsi;
        lws_set_opaque_user_data(wsi, v);
    }
}

/* Wake-ups coalesce: take the whole list. */
static void on_adopt(uv_async_t *a)
{
    edge_overlay_t *ov = sw_container_of(a, edge_overlay_t, adopt);
    pthread_mutex_lock(&ov->mu);
    handoff_t *h = ov->handoffs;
    ov->handoffs = ov->handoffs_tail = NULL;
    pthread_mutex_unlock(&ov->mu);
    while (h != NULL) {
        handoff_t *next = h->next;
        adopt_one(ov, h);
        h = next;
    }
}

/* ---- lifecycle and metrics ------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    edge_overlay_t *ov = sw_container_of(t, edge_overlay_t, tick);
    registry_read(ov);
    for (room_t *r = ov->rooms; r != NULL; r = r->next) {
        if (!r->count_dirty)
            continue;
        r->count_dirty = 0;
        ov_msg_t *m =
            msg_printf(EDGE__SLOT_COUNT, "{\"type\":\"viewer_count\",\"count\":%zu}", r->nviewers);
        for (viewer_t *v = r->viewers; v != NULL; v = v->next)
            if (v->phase == PHASE_LIVE)
                enqueue(v, m);
        msg_unref(m);
    }
}

void edge_overlay_config_init(edge_overlay_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_message = 4096;
    cfg->send_queue = 256;
    cfg->cart_rate = 5;
    cfg->cart_burst = 10;
    cfg->cart_maxlen = 100000;
    cfg->max_viewers = 10000;
    cfg->max_rooms = 100;
}

static void close_step(edge_overlay_t *ov)
{
    if (--ov->pending_close == 0 && ov->on_closed != NULL)
        ov->on_closed(ov->closed_data);
}

static void on_redis_closed(edge__ov_redis_t *r)
{
    close_step(r->data);
}

static void on_timer_closed(uv_handle_t *h)
{
    close_step(h->data);
}

static void metrics_text(edge_overlay_t *ov, sw_str_t *b);

/* After each iteration of the overlay's loop: the copy that workers' /metrics read. */
static void on_snapshot(uv_check_t *c)
{
    edge_overlay_t *ov = sw_container_of(c, edge_overlay_t, snapshot);
    sw_str_t b;
    sw_str_init(&b);
    metrics_text(ov, &b);
    if (b.failed) {
        sw_str_dispose(&b);
        return;
    }
    pthread_mutex_lock(&ov->mu);
    sw_str_t old = ov->snap;
    ov->snap = b;
    pthread_mutex_unlock(&ov->mu);
    sw_str_dispose(&old);
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

int edge_overlay_new(edge_overlay_t **out, uv_loop_t *loop, const edge_overlay_config_t *cfg,
                     char *err, size_t errlen)
{
    edge_overlay_t *ov;
    int rv = EDGE_ERR_NOMEM;
    char host[64];

    snprintf(err, errlen, "out of memory");
    if ((ov = calloc(1, sizeof(*ov))) == NULL)
        goto fail;
    ov->loop = loop;
    ov->cfg = *cfg;
    if (ov->cfg.max_message < 64)
        ov->cfg.max_message = 64;
    if (ov->cfg.send_queue < 8)
        ov->cfg.send_queue = 8;
    if (ov->cfg.cart_rate == 0)
        ov->cfg.cart_rate = 1;
    if (ov->cfg.cart_burst == 0)
        ov->cfg.cart_burst = 1;
    if (ov->cfg.cart_maxlen == 0)
        ov->cfg.cart_maxlen = 1;
    if (ov->cfg.max_viewers == 0)
        ov->cfg.max_viewers = 1;
    if (edge__ov_redis_parse_url(&ov->addr, cfg->redis_url) != 0) {
        snprintf(err, errlen, "redis = %s: expected redis://[:PASSWORD@]HOST[:PORT][/DB]",
                 cfg->redis_url ? cfg->redis_url : "(none)");
        rv = EDGE_ERR_INVAL;
        goto fail_ov;
    }
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "edge");
    host[sizeof(host) - 1] = '\0';
    ov->edge_name = strdup(cfg->edge_name != NULL && cfg->edge_name[0] ? cfg->edge_name : host);
    ov->allowed_origins = dup_or_null(cfg->allowed_origins);
    ov->token_key = dup_or_null(cfg->token_key);
    ov->token_kid = dup_or_null(cfg->token_kid);
    if (ov->edge_name == NULL ||
        (cfg->allowed_origins && cfg->allowed_origins[0] && ov->allowed_origins == NULL))
        goto fail_strings;
    if ((cfg->token_key && cfg->token_key[0] && ov->token_key == NULL) ||
        (cfg->token_kid && cfg->token_kid[0] && ov->token_kid == NULL))
        goto fail_strings;
    if (ov->token_key != NULL) {
        ov->tkey.kid = ov->token_kid;
        ov->tkey.key = (const uint8_t *)ov->token_key;
        ov->tkey.key_len = strlen(ov->token_key);
        ov->tcfg.keys = &ov->tkey;
        ov->tcfg.nkeys = 1;
    }

    struct lws_context_creation_info info;
    void *loops[1] = {loop};
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
    info.foreign_loops = loops;
    info.user = ov;
    info.retry_and_idle_policy = &keepalive;
    info.timeout_secs = 10;
    lws_set_log_level(LLL_ERR | LLL_WARN, on_lws_log);
    if ((ov->ctx = lws_create_context(&info)) == NULL) {
        snprintf(err, errlen, "libwebsockets: cannot create a context on the loop");
        goto fail_strings;
    }
    if ((ov->vh = lws_get_vhost_by_name(ov->ctx, "default")) == NULL) {
        snprintf(err, errlen, "libwebsockets: no default vhost");
        goto fail_ctx;
    }
    if (pthread_mutex_init(&ov->mu, NULL) != 0) {
        snprintf(err, errlen, "cannot create a mutex");
        goto fail_ctx;
    }
    sw_str_init(&ov->snap);
    uv_timer_init(loop, &ov->tick);
    uv_timer_init(loop, &ov->kick);
    uv_async_init(loop, &ov->adopt, on_adopt);
    uv_check_init(loop, &ov->snapshot);
    ov->tick.data = ov->kick.data = ov->adopt.data = ov->snapshot.data = ov;
    uv_timer_start(&ov->tick, on_tick, TICK_MS, TICK_MS);
    uv_check_start(&ov->snapshot, on_snapshot);
    ov->cmd = (edge__ov_redis_t){.name = "command",
                                 .addr = &ov->addr,
                                 .data = ov,
                                 .on_up = on_cmd_up,
                                 .on_closed = on_redis_closed};
    ov->rd = (edge__ov_redis_t){.name = "reader",
                                .addr = &ov->addr,
                                .data = ov,
                                .on_up = on_reader_up,
                                .on_down = on_reader_down,
                                .on_closed = on_redis_closed};
    edge__ov_redis_start(&ov->cmd, loop);
    edge__ov_redis_start(&ov->rd, loop);
    on_snapshot(&ov->snapshot);
    *out = ov;
    return 0;
fail_ctx:
    lws_context_destroy(ov->ctx);
fail_strings:
    free(ov->edge_name);
    free(ov->allowed_origins);
    free(ov->token_key);
    free(ov->token_kid);
fail_ov:
    free(ov);
fail:
    return rv;
}

int edge__overlay_open(edge_overlay_t **out, uv_loop_t *loop, const edge_config_t *cfg, char *err,
                       size_t errlen)
{
    edge_overlay_config_t oc;
    char kid[40] = "";
    const char *key = cfg->overlay_token_key;
    edge_overlay_config_init(&oc);
    oc.redis_url = cfg->redis;
    oc.edge_name = cfg->edge_name;
    oc.allowed_origins = cfg->overlay_allowed_origins;
    /* "KID:SECRET", as [protect] keys are written, or a bare secret. */
    const char *colon = key != NULL ? strchr(key, ':') : NULL;
    if (colon != NULL && (size_t)(colon - key) < sizeof(kid) && colon > key) {
        memcpy(kid, key, (size_t)(colon - key));
        kid[colon - key] = '\0';
        key = colon + 1;
    }
    oc.token_key = key;
    oc.token_kid = kid[0] ? kid : NULL;
    oc.max_message = (size_t)cfg->overlay_max_message;
    oc.send_queue = (size_t)cfg->overlay_send_queue;
    oc.cart_rate = (uint32_t)cfg->overlay_cart_rate;
    oc.cart_burst = (uint32_t)cfg->overlay_cart_burst;
    oc.cart_maxlen = (uint64_t)cfg->overlay_cart_maxlen;
    oc.max_viewers = (size_t)cfg->overlay_max_viewers;
    oc.max_rooms = (size_t)cfg->overlay_max_rooms;
    return edge_overlay_new(out, loop, &oc, err, errlen);
}

void edge_overlay_close(edge_overlay_t *ov, void (*on_closed)(void *data), void *data)
{
    ov->closing = 1;
    ov->on_closed = on_closed;
    ov->closed_data = data;
    ov->pending_close = 6; /* two Redis connections, two timers, two more handles */
    /* Every wsi is destroyed here (WSI_DESTROY detaches the viewers); lws closes its own uv
     * handles over the next loop iterations. */
    lws_context_destroy(ov->ctx);
    edge__ov_redis_close(&ov->cmd);
    edge__ov_redis_close(&ov->rd);
    uv_close((uv_handle_t *)&ov->tick, on_timer_closed);
    uv_close((uv_handle_t *)&ov->kick, on_timer_closed);
    uv_close((uv_handle_t *)&ov->adopt, on_timer_closed);
    uv_close((uv_handle_t *)&ov->snapshot, on_timer_closed);
}

void edge_overlay_free(edge_overlay_t *ov)
{
    if (ov == NULL)
        return;
    /* With a foreign loop, the first call closes lws's handles; once the loop has run them
     * down, the second frees the context (lws 4.1). */
    lws_context_destroy(ov->ctx);
    /* Handed over after the close began (no worker does: they stop first) or never adopted. */
    for (handoff_t *h = ov->handoffs, *next; h != NULL; h = next) {
        next = h->next;
        close(h->fd);
        handoff_free(h);
    }
    sw_str_dispose(&ov->snap);
    edge__ov_registry_dispose(&ov->reg);
    pthread_mutex_destroy(&ov->mu);
    free(ov->edge_name);
    free(ov->allowed_origins);
    free(ov->token_key);
    free(ov->token_kid);
    free(ov);
}

void edge_overlay_metrics(edge_overlay_t *ov, sw_str_t *b)
{
    pthread_mutex_lock(&ov->mu);
    if (ov->snap.len > 0)
        sw_str_append(b, ov->snap.p, ov->snap.len);
    pthread_mutex_unlock(&ov->mu);
    /* Workers count refusals too, without waking this loop: read it live. */
    sw_str_printf(b,
                  "# TYPE shortwave_edge_overlay_refused_total counter\n"
                  "shortwave_edge_overlay_refused_total %llu\n",
                  (unsigned long long)atomic_load_explicit(&ov->refused, memory_order_relaxed));
}

static void metrics_text(edge_overlay_t *ov, sw_str_t *b)
{
    static const char *codes[4] = {"1003", "1008", "1009", "1013"};
    size_t viewers = 0, shown = 0, other = 0;
    sw_str_puts(b, "# TYPE shortwave_edge_overlay_connections gauge\n");
    for (room_t *r = ov->rooms; r != NULL; r = r->next) {
        viewers += r->nviewers;
        if (shown < ROOM_LABELS) {
            sw_str_printf(b, "shortwave_edge_overlay_connections{room=\"%s\"} %zu\n", r->name,
                          r->nviewers);
            shown++;
        } else {
            other += r->nviewers;
        }
    }
    if (other > 0)
        sw_str_printf(b, "shortwave_edge_overlay_connections{room=\"_other\"} %zu\n", other);
#define M(name, type, v)                                                                           \
    sw_str_printf(b,                                                                               \
                  "# TYPE shortwave_edge_overlay_" name " " type "\nshortwave_edge_overlay_" name  \
                  " %llu\n",                                                                       \
                  (unsigned long long)(v))
    M("viewers", "gauge", viewers);
    M("rooms", "gauge", ov->nrooms);
    M("accepted_total", "counter", ov->accepted);
    M("messages_in_total", "counter", ov->msgs_in);
    M("messages_out_total", "counter", ov->msgs_out);
    M("events_total", "counter", ov->events);
    M("events_skipped_total", "counter", ov->bad_events);
    M("dropped_coalesced_total", "counter", ov->coalesced);
    M("bad_messages_total", "counter", ov->bad_messages);
    M("rate_limited_total", "counter", ov->rate_limited);
    M("cart_acks_total", "counter", ov->cart_acks);
    M("cart_errors_total", "counter", ov->cart_errors);
    M("viewers_refused_total", "counter", ov->viewers_refused);
    M("rooms_refused_total", "counter", ov->rooms_refused);
    M("rooms_unregistered", "gauge", ov->nrooms_unreg);
    M("registry_streams", "gauge", ov->reg.n);
    M("redis_up", "gauge", ov->cmd.connected && ov->rd.connected);
#undef M
    sw_str_puts(b, "# TYPE shortwave_edge_overlay_closed_total counter\n");
    for (int i = 0; i < 4; i++)
        sw_str_printf(b, "shortwave_edge_overlay_closed_total{code=\"%s\"} %llu\n", codes[i],
                      (unsigned long long)ov->closes[i]);
    sw_str_printf(b,
                  "# TYPE shortwave_edge_overlay_redis_reconnects_total counter\n"
                  "shortwave_edge_overlay_redis_reconnects_total{conn=\"command\"} %llu\n"
                  "shortwave_edge_overlay_redis_reconnects_total{conn=\"reader\"} %llu\n",
                  (unsigned long long)ov->cmd.reconnects, (unsigned long long)ov->rd.reconnects);
    sw_str_puts(b, "# TYPE shortwave_edge_overlay_fanout_seconds histogram\n");
    for (size_t i = 0; i < NBUCKETS; i++)
        sw_str_printf(b, "shortwave_edge_overlay_fanout_seconds_bucket{le=\"%g\"} %llu\n",
                      fanout_buckets[i], (unsigned long long)ov->fanout_buckets[i]);
    sw_str_printf(b,
                  "shortwave_edge_overlay_fanout_seconds_bucket{le=\"+Inf\"} %llu\n"
                  "shortwave_edge_overlay_fanout_seconds_sum %.6f\n"
                  "shortwave_edge_overlay_fanout_seconds_count %llu\n",
                  (unsigned long long)ov->fanout_count, ov->fanout_sum,
                  (unsigned long long)ov->fanout_count);
}
