/*
 * origin_redis.c: the origin's two Redis connections, both hiredis on the origin's loop
 * (redisLibuvAttach), each reconnecting every second by itself.
 *
 * The command link announces live streams so that edges and other services find them:
 *
 *   HSET sw:stream:NAME origin URL started MS video CODECS audio CODECS  (PEXPIRE ttl, refreshed)
 *   SADD sw:streams NAME / SREM on unpublish
 *   PUBLISH sw:streams "publish NAME URL" / "unpublish NAME"
 *
 * and carries room events (docs/overlay-protocol.md): the API's writes, one EVAL each (XADD to
 * room:ROOM:events and the state hash in one script, so that no reader sees one without the
 * other), and the reads of a stream's DVR window of events (XREVRANGE) when the link comes up and
 * when the stream goes live.
 *
 * The reader link runs one XREAD BLOCK at a time over room:ROOM:events of every live room, from
 * the newest id each has seen, so that events a backend XADDs straight to Redis reach the
 * playlists too: one connection for all rooms, never one per request. A room that goes live joins
 * at the next round, within READ_BLOCK_MS (1 s); it misses nothing, since its window was read
 * first.
 *
 * Redis is optional and never in the media path: while it is away the origin keeps ingesting and
 * serving; on reconnect it announces every live stream again, since a restarted Redis may have
 * lost them, and reads the rooms' events again.
 */
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "origin_int.h"
#include "sw/log.h"

/* XREAD's arguments: wait at most this many ms, return at most this many entries per room. */
#define READ_BLOCK_MS "1000"
#define READ_COUNT    "100"

/* One connection with its reconnect timer. */
typedef struct link {
    origin_redis_t *r;
    const char *what;
    redisAsyncContext *ac; /* NULL while disconnected */
    int connected;
    int warned; /* the current outage was logged */
    int timer_closed;
    uv_timer_t retry;
    void (*on_up)(struct link *l);
} link_t;

struct origin_redis {
    struct origin *o;
    link_t cmd, reader;
    int closing;
    int closes_left; /* handles still to close: the two retry timers and `pause` */
    char host[256];
    int port;
    int db;
    char password[128];
    int64_t ttl_ms;
    int64_t last_refresh_ms;
    uint64_t reconnects;
    int reading; /* an XREAD is in flight */
    int read_error_logged;
    uv_timer_t pause; /* the next XREAD after one that failed */
};

static void do_connect(link_t *l);
static void on_retry(uv_timer_t *t);

static int parse_url(origin_redis_t *r, const char *url)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0)
        return -1;
    p += 8;
    const char *at = strchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if ((size_t)(at - pw) >= sizeof(r->password))
            return -1;
        memcpy(r->password, pw, (size_t)(at - pw));
        r->password[at - pw] = '\0';
        p = at + 1;
    }
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    const char *host_end = colon ? colon : slash ? slash : p + strlen(p);
    if (host_end == p || (size_t)(host_end - p) >= sizeof(r->host))
        return -1;
    memcpy(r->host, p, (size_t)(host_end - p));
    r->host[host_end - p] = '\0';
    r->port = 6379;
    if (colon != NULL) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || port <= 0 || port > 65535 || (*end != '\0' && *end != '/'))
            return -1;
        r->port = (int)port;
    }
    if (slash != NULL && slash[1] != '\0') {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end != '\0' || db < 0 || db > 1000)
            return -1;
        r->db = (int)db;
    }
    return 0;
}

static const char *origin_url(origin_redis_t *r, char *buf, size_t len)
{
    if (r->o->public_url != NULL)
        return r->o->public_url;
    snprintf(buf, len, "http://%s", r->o->http_addr);
    return buf;
}

static void announce(origin_redis_t *r, origin_stream_t *st)
{
    char url[256], key[128], started[32];
    const hls_track_t *v = hls_stream_track(st->hls, HLS_VIDEO);
    const hls_track_t *a = hls_stream_track(st->hls, HLS_AUDIO);

    if (!r->cmd.connected)
        return;
    const char *base = origin_url(r, url, sizeof(url));
    snprintf(key, sizeof(key), "sw:stream:%s", st->name);
    snprintf(started, sizeof(started), "%" PRId64, st->publish_ms);
    redisAsyncCommand(r->cmd.ac, NULL, NULL, "HSET %s origin %s started %s video %s audio %s", key,
                      base, started, v && v->codec ? v->codecs : "",
                      a && a->codec ? a->codecs : "");
    redisAsyncCommand(r->cmd.ac, NULL, NULL, "PEXPIRE %s %lld", key, (long long)r->ttl_ms);
    redisAsyncCommand(r->cmd.ac, NULL, NULL, "SADD sw:streams %s", st->name);
}

void origin__redis_announce(origin_redis_t *r, origin_stream_t *st)
{
    char msg[512], url[256];
    announce(r, st);
    if (r->cmd.connected) {
        snprintf(msg, sizeof(msg), "publish %s %s", st->name, origin_url(r, url, sizeof(url)));
        redisAsyncCommand(r->cmd.ac, NULL, NULL, "PUBLISH sw:streams %s", msg);
    }
    origin__redis_load_room(r, st);
}

void origin__redis_withdraw(origin_redis_t *r, origin_stream_t *st)
{
    char msg[128];
    if (!r->cmd.connected)
        return;
    redisAsyncCommand(r->cmd.ac, NULL, NULL, "DEL sw:stream:%s", st->name);
    redisAsyncCommand(r->cmd.ac, NULL, NULL, "SREM sw:streams %s", st->name);
    snprintf(msg, sizeof(msg), "unpublish %s", st->name);
    redisAsyncCommand(r->cmd.ac, NULL, NULL, "PUBLISH sw:streams %s", msg);
}

void origin__redis_tick(origin_redis_t *r)
{
    int64_t now = sw_now_ms();
    if (!r->cmd.connected || now - r->last_refresh_ms < r->ttl_ms / 3)
        return;
    r->last_refresh_ms = now;
    for (origin_stream_t *st = r->o->streams; st != NULL; st = st->next)
        if (st->pub != NULL)
            announce(r, st);
}

int origin__redis_connected(const origin_redis_t *r)
{
    return r->cmd.connected;
}

int origin__redis_reader_connected(const origin_redis_t *r)
{
    return r->reader.connected;
}

uint64_t origin__redis_reconnects(const origin_redis_t *r)
{
    return r->reconnects;
}

/* Room events: the write. */

/*
 * KEYS: room:ROOM:events, room:ROOM:state. ARGV: MAXLEN, type, data, media_time, the client
 * message before and after its id, the sku (or ""). The state keeps the current pin and flash
 * sale as client messages; an unpin clears the pin only when it names the pinned sku. A key of
 * the wrong type fails the script before anything is written.
 */
static const char publish_script[] =
    /* Redis does not undo a script's writes when a later command fails: check first. */
    "local t = redis.call('TYPE', KEYS[2]).ok\n"
    "if t ~= 'hash' and t ~= 'none' then\n"
    "  return redis.error_reply(KEYS[2] .. ' is a ' .. t .. ', not a hash')\n"
    "end\n"
    "local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[2],\n"
    "  'data', ARGV[3], 'media_time', ARGV[4])\n"
    "local msg = ARGV[5] .. id .. ARGV[6]\n"
    "if ARGV[2] == 'product_pinned' then\n"
    "  redis.call('HSET', KEYS[2], 'pinned', msg)\n"
    "elseif ARGV[2] == 'product_unpinned' then\n"
    "  local cur = redis.call('HGET', KEYS[2], 'pinned')\n"
    "  if cur then\n"
    "    local ok, p = pcall(cjson.decode, cur)\n"
    "    if ok and type(p) == 'table' and p.sku == ARGV[7] then\n"
    "      redis.call('HDEL', KEYS[2], 'pinned')\n"
    "    end\n"
    "  end\n"
    "elseif ARGV[2] == 'flash_sale' then\n"
    "  redis.call('HSET', KEYS[2], 'flash_sale', msg)\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'last_id', id)\n"
    "return id\n";

typedef struct publish_ctx {
    void (*cb)(void *data, const char *id, const char *err);
    void *data;
} publish_ctx_t;

static void on_eval(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redisReply *reply = reply_;
    publish_ctx_t *c = privdata;

    if (reply == NULL)
        c->cb(c->data, NULL, ac->errstr[0] ? ac->errstr : "connection lost");
    else if (reply->type == REDIS_REPLY_STRING)
        c->cb(c->data, reply->str, NULL);
    else
        c->cb(c->data, NULL, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    free(c);
}

int origin__redis_publish(origin_redis_t *r, const char *room, const origin_event_in_t *ev,
                          const char *media_time, const char *msg_prefix, const char *msg_suffix,
                          void (*cb)(void *data, const char *id, const char *err), void *data)
{
    char events[96], state[96], maxlen[24];
    publish_ctx_t *c;

    if (r->closing || !r->cmd.connected || (c = malloc(sizeof(*c))) == NULL)
        return -1;
    c->cb = cb;
    c->data = data;
    snprintf(events, sizeof(events), "room:%s:events", room);
    snprintf(state, sizeof(state), "room:%s:state", room);
    snprintf(maxlen, sizeof(maxlen), "%d", ORIGIN_EVENTS_MAXLEN);
    const char *argv[] = {"EVAL",     publish_script, "2",        events,
                          state,      maxlen,         ev->type,   ev->data,
                          media_time, msg_prefix,     msg_suffix, ev->sku != NULL ? ev->sku : ""};
    int argc = (int)SW_ARRAY_SIZE(argv);
    if (redisAsyncCommandArgv(r->cmd.ac, on_eval, c, argc, argv, NULL) != REDIS_OK) {
        free(c);
        return -1;
    }
    return 0;
}

/* Room events: the reads. */

/* Hands one stream entry [id, [field, value, ...]] to the stream. */
static void take_entry(origin_stream_t *st, const redisReply *e)
{
    const char *type = NULL, *data = NULL, *media_time = NULL;
    size_t data_len = 0;

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "type") == 0)
            type = v->str;
        else if (strcmp(k->str, "data") == 0) {
            data = v->str;
            data_len = v->len;
        } else if (strcmp(k->str, "media_time") == 0)
            media_time = v->str;
    }
    origin__room_entry(st, e->element[0]->str, type, data, data_len, media_time);
}

static void on_range(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redisReply *reply = reply_;
    link_t *l = ac->data;
    origin_stream_t *st = privdata;

    st->redis_pending--;
    if (reply == NULL || l->r->closing)
        return;
    if (reply->type != REDIS_REPLY_ARRAY) {
        sw_log(SW_LOG_WARN, "redis", "%s: cannot read room:%s:events: %s", st->name, st->name,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        return;
    }
    /* XREVRANGE answers newest first. */
    for (size_t i = reply->elements; i > 0; i--)
        take_entry(st, reply->element[i - 1]);
    st->room.loaded = 1;
    origin__redis_reader_kick(l->r);
}

void origin__redis_load_room(origin_redis_t *r, origin_stream_t *st)
{
    char key[96], from[40], count[16];

    if (r->closing || !r->cmd.connected)
        return;
    /* From the window's first PDT: an event's id (when Redis took it) is never before its media
     * time, so nothing the window shows is missed. */
    int64_t from_ms = origin__room_window_ms(st);
    if (from_ms == 0)
        from_ms = sw_now_ms() - (int64_t)r->o->hls_cfg.window_ms;
    snprintf(key, sizeof(key), "room:%s:events", st->name);
    snprintf(from, sizeof(from), "%lld-0", (long long)(from_ms > 0 ? from_ms : 0));
    snprintf(count, sizeof(count), "%d", ORIGIN_ROOM_MAX_EVENTS);
    if (st->room.last_id[0] == '\0')
        snprintf(st->room.last_id, sizeof(st->room.last_id), "%s", from);
    const char *argv[] = {"XREVRANGE", key, "+", from, "COUNT", count};
    if (redisAsyncCommandArgv(r->cmd.ac, on_range, st, (int)SW_ARRAY_SIZE(argv), argv, NULL) ==
        REDIS_OK)
        st->redis_pending++;
}

static void on_read(redisAsyncContext *ac, void *reply_, void *privdata);
static void on_pause(uv_timer_t *t);

void origin__redis_reader_kick(origin_redis_t *r)
{
    size_t n = 0, i = 0;

    if (r->closing || !r->reader.connected || r->reading)
        return;
    for (origin_stream_t *st = r->o->streams; st != NULL; st = st->next)
        n += st->pub != NULL && st->room.loaded;
    if (n == 0)
        return; /* the next room to load kicks again */
    const char **argv = malloc((6 + 2 * n) * sizeof(*argv));
    char(*keys)[96] = malloc(n * sizeof(*keys));
    if (argv == NULL || keys == NULL) {
        free(argv);
        free(keys);
        uv_timer_start(&r->pause, on_pause, 1000, 0);
        return;
    }
    argv[0] = "XREAD";
    argv[1] = "COUNT";
    argv[2] = READ_COUNT;
    argv[3] = "BLOCK";
    argv[4] = READ_BLOCK_MS;
    argv[5] = "STREAMS";
    for (origin_stream_t *st = r->o->streams; st != NULL; st = st->next) {
        if (st->pub == NULL || !st->room.loaded)
            continue;
        snprintf(keys[i], sizeof(keys[i]), "room:%s:events", st->name);
        argv[6 + i] = keys[i];
        argv[6 + n + i] = st->room.last_id;
        i++;
    }
    if (redisAsyncCommandArgv(r->reader.ac, on_read, NULL, (int)(6 + 2 * n), argv, NULL) ==
        REDIS_OK)
        r->reading = 1;
    free(argv);
    free(keys);
}

static void on_pause(uv_timer_t *t)
{
    origin__redis_reader_kick(sw_container_of(t, origin_redis_t, pause));
}

static void on_read(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redisReply *reply = reply_;
    link_t *l = ac->data;
    origin_redis_t *r = l->r;

    r->reading = 0;
    if (reply == NULL || r->closing)
        return; /* disconnected: the reader starts again once it is back */
    if (reply->type == REDIS_REPLY_ERROR) {
        /* A key of another type, say: try again in a while rather than in a loop. */
        if (!r->read_error_logged)
            sw_log(SW_LOG_WARN, "redis", "XREAD of room events failed: %s; retrying every second",
                   reply->str);
        r->read_error_logged = 1;
        uv_timer_start(&r->pause, on_pause, 1000, 0);
        return;
    }
    r->read_error_logged = 0;
    /* [[key, [entry, ...]], ...], or nil when BLOCK ran out. */
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        const redisReply *s = reply->element[i];
        char name[72];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
            s->element[0]->type != REDIS_REPLY_STRING || s->element[1]->type != REDIS_REPLY_ARRAY ||
            sscanf(s->element[0]->str, "room:%71[^:]:events", name) != 1)
            continue;
        origin_stream_t *st = origin__stream_find(r->o, name);
        for (size_t j = 0; st != NULL && j < s->element[1]->elements; j++)
            take_entry(st, s->element[1]->element[j]);
    }
    origin__redis_reader_kick(r);
}

/* The links. */

static void schedule_retry(link_t *l)
{
    if (!l->r->closing)
        uv_timer_start(&l->retry, on_retry, 1000, 0);
}

/*
 * The retry timer doubles as the connect deadline: hiredis 0.14's libuv adapter drops poll errors
 * (a refused connection reports UV_EBADF and is ignored), so an attempt that has not connected
 * when the timer fires is stuck and is freed here.
 */
static void on_retry(uv_timer_t *t)
{
    link_t *l = sw_container_of(t, link_t, retry);
    origin_redis_t *r = l->r;
    if (r->closing)
        return;
    if (l->ac != NULL && !l->connected) {
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        redisAsyncFree(ac);
        r->reconnects++;
        if (!l->warned)
            sw_log(SW_LOG_WARN, "redis", "%s: cannot connect to %s:%d; retrying every second",
                   l->what, r->host, r->port);
        l->warned = 1;
    }
    if (l->ac == NULL)
        do_connect(l);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    link_t *l = ac->data;
    origin_redis_t *r = l->r;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (!l->warned)
            sw_log(SW_LOG_WARN, "redis", "%s: cannot connect to %s:%d: %s; retrying every second",
                   l->what, r->host, r->port, ac->errstr);
        l->warned = 1;
        l->ac = NULL;
        r->reconnects++;
        schedule_retry(l);
        return;
    }
    uv_timer_stop(&l->retry);
    l->connected = 1;
    l->warned = 0;
    sw_log(SW_LOG_INFO, "redis", "%s: connected to %s:%d", l->what, r->host, r->port);
    if (r->password[0] != '\0')
        redisAsyncCommand(l->ac, NULL, NULL, "AUTH %s", r->password);
    if (r->db != 0)
        redisAsyncCommand(l->ac, NULL, NULL, "SELECT %d", r->db);
    l->on_up(l);
}

static void on_cmd_up(link_t *l)
{
    origin_redis_t *r = l->r;
    r->last_refresh_ms = sw_now_ms();
    for (origin_stream_t *st = r->o->streams; st != NULL; st = st->next) {
        if (st->pub != NULL)
            announce(r, st);
        /* Offline streams too: their DVR playlists still show their events. */
        origin__redis_load_room(r, st);
    }
}

static void on_reader_up(link_t *l)
{
    origin__redis_reader_kick(l->r);
}

static void on_handle_closed(uv_handle_t *h)
{
    origin_redis_t *r = h->data;
    struct origin *o = r->o;
    if (--r->closes_left > 0)
        return;
    free(r);
    origin__closed_one(o);
}

static void close_timer(link_t *l)
{
    if (l->timer_closed)
        return;
    l->timer_closed = 1;
    uv_close((uv_handle_t *)&l->retry, on_handle_closed);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    link_t *l = ac->data;
    origin_redis_t *r = l->r;
    l->ac = NULL;
    l->connected = 0;
    if (r->closing) {
        close_timer(l);
        return;
    }
    sw_log(SW_LOG_WARN, "redis", "%s: lost %s:%d: %s; media is unaffected, reconnecting", l->what,
           r->host, r->port, status == REDIS_OK ? "closed" : ac->errstr);
    l->warned = 1;
    r->reconnects++;
    schedule_retry(l);
}

static void do_connect(link_t *l)
{
    origin_redis_t *r = l->r;
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (ac == NULL || ac->err) {
        sw_log(SW_LOG_WARN, "redis", "%s: cannot connect to %s:%d: %s", l->what, r->host, r->port,
               ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        r->reconnects++;
        schedule_retry(l);
        return;
    }
    ac->data = l;
    l->ac = ac;
    redisLibuvAttach(ac, r->o->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&l->retry, on_retry, 2000, 0);
}

static void link_init(link_t *l, origin_redis_t *r, const char *what, void (*on_up)(link_t *l))
{
    l->r = r;
    l->what = what;
    l->on_up = on_up;
    uv_timer_init(r->o->loop, &l->retry);
    l->retry.data = r;
    do_connect(l);
}

int origin__redis_new(origin_redis_t **out, struct origin *o, const char *url, int64_t ttl_ms,
                      char *err, size_t errlen)
{
    origin_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->o = o;
    r->ttl_ms = ttl_ms;
    if (parse_url(r, url) != 0) {
        snprintf(err, errlen, "redis = %s: expected redis://[:PASSWORD@]HOST[:PORT][/DB]", url);
        free(r);
        return -1;
    }
    r->closes_left = 3;
    uv_timer_init(o->loop, &r->pause);
    r->pause.data = r;
    link_init(&r->cmd, r, "registry and events", on_cmd_up);
    link_init(&r->reader, r, "events reader", on_reader_up);
    *out = r;
    return 0;
}

static void link_close(link_t *l)
{
    uv_timer_stop(&l->retry);
    if (l->ac != NULL && l->connected && l == &l->r->cmd) {
        /* Let the withdrawals and writes in flight be answered, then disconnect. */
        redisAsyncDisconnect(l->ac);
        return; /* on_disconnect closes the timer */
    }
    if (l->ac != NULL) {
        /* The reader's XREAD may block for a second: drop it (its callback gets no reply). A link
         * still connecting is freed without callbacks. */
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        redisAsyncFree(ac);
    }
    close_timer(l);
}

void origin__redis_close(origin_redis_t *r)
{
    r->closing = 1;
    if (r->cmd.ac != NULL && r->cmd.connected)
        for (origin_stream_t *st = r->o->streams; st != NULL; st = st->next)
            if (st->pub != NULL)
                origin__redis_withdraw(r, st);
    uv_timer_stop(&r->pause);
    uv_close((uv_handle_t *)&r->pause, on_handle_closed);
    link_close(&r->cmd);
    link_close(&r->reader);
}
