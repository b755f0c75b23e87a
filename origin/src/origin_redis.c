/*
 * origin_redis.c: announces live streams in Redis so that edges and other services find them.
 *
 *   HSET sw:stream:NAME origin URL started MS video CODECS audio CODECS  (PEXPIRE ttl, refreshed)
 *   SADD sw:streams NAME / SREM on unpublish
 *   PUBLISH sw:streams "publish NAME URL" / "unpublish NAME"
 *
 * Redis is optional and never in the media path: while it is away the origin keeps ingesting and
 * serving, and reconnects every second; on reconnect it announces every live stream again, since a
 * restarted Redis may have lost them. hiredis runs on the origin's loop (redisLibuvAttach).
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

struct origin_redis {
    struct origin *o;
    redisAsyncContext *ac; /* NULL while disconnected */
    int connected;
    int closing;
    char host[256];
    int port;
    int db;
    char password[128];
    int64_t ttl_ms;
    int64_t last_refresh_ms;
    uint64_t reconnects;
    int timer_closed;
    int warned; /* the current outage was logged */
    uv_timer_t retry;
};

static void do_connect(origin_redis_t *r);

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

    if (!r->connected)
        return;
    const char *base = origin_url(r, url, sizeof(url));
    snprintf(key, sizeof(key), "sw:stream:%s", st->name);
    snprintf(started, sizeof(started), "%" PRId64, st->publish_ms);
    redisAsyncCommand(r->ac, NULL, NULL, "HSET %s origin %s started %s video %s audio %s", key,
                      base, started, v && v->codec ? v->codecs : "",
                      a && a->codec ? a->codecs : "");
    redisAsyncCommand(r->ac, NULL, NULL, "PEXPIRE %s %lld", key, (long long)r->ttl_ms);
    redisAsyncCommand(r->ac, NULL, NULL, "SADD sw:streams %s", st->name);
}

void origin__redis_announce(origin_redis_t *r, origin_stream_t *st)
{
    char msg[512], url[256];
    announce(r, st);
    if (r->connected) {
        snprintf(msg, sizeof(msg), "publish %s %s", st->name, origin_url(r, url, sizeof(url)));
        redisAsyncCommand(r->ac, NULL, NULL, "PUBLISH sw:streams %s", msg);
    }
}

void origin__redis_withdraw(origin_redis_t *r, origin_stream_t *st)
{
    char msg[128];
    if (!r->connected)
        return;
    redisAsyncCommand(r->ac, NULL, NULL, "DEL sw:stream:%s", st->name);
    redisAsyncCommand(r->ac, NULL, NULL, "SREM sw:streams %s", st->name);
    snprintf(msg, sizeof(msg), "unpublish %s", st->name);
    redisAsyncCommand(r->ac, NULL, NULL, "PUBLISH sw:streams %s", msg);
}

void origin__redis_tick(origin_redis_t *r)
{
    int64_t now = sw_now_ms();
    if (!r->connected || now - r->last_refresh_ms < r->ttl_ms / 3)
        return;
    r->last_refresh_ms = now;
    for (origin_stream_t *st = r->o->streams; st != NULL; st = st->next)
        if (st->pub != NULL)
            announce(r, st);
}

int origin__redis_connected(const origin_redis_t *r)
{
    return r->connected;
}

uint64_t origin__redis_reconnects(const origin_redis_t *r)
{
    return r->reconnects;
}

/*
 * The retry timer doubles as the connect deadline: hiredis 0.14's libuv adapter drops poll errors
 * (a refused connection reports UV_EBADF and is ignored), so an attempt that has not connected
 * when the timer fires is stuck and is freed here.
 */
static void on_retry(uv_timer_t *t)
{
    origin_redis_t *r = sw_container_of(t, origin_redis_t, retry);
    if (r->closing)
        return;
    if (r->ac != NULL && !r->connected) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
        r->reconnects++;
        if (!r->warned)
            sw_log(SW_LOG_WARN, "redis", "cannot connect to %s:%d; retrying every second", r->host,
                   r->port);
        r->warned = 1;
    }
    if (r->ac == NULL)
        do_connect(r);
}

static void schedule_retry(origin_redis_t *r)
{
    if (!r->closing)
        uv_timer_start(&r->retry, on_retry, 1000, 0);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    origin_redis_t *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (!r->warned)
            sw_log(SW_LOG_WARN, "redis", "cannot connect to %s:%d: %s; retrying every second",
                   r->host, r->port, ac->errstr);
        r->warned = 1;
        r->ac = NULL;
        r->reconnects++;
        schedule_retry(r);
        return;
    }
    uv_timer_stop(&r->retry);
    r->connected = 1;
    r->warned = 0;
    sw_log(SW_LOG_INFO, "redis", "connected to %s:%d", r->host, r->port);
    if (r->password[0] != '\0')
        redisAsyncCommand(r->ac, NULL, NULL, "AUTH %s", r->password);
    if (r->db != 0)
        redisAsyncCommand(r->ac, NULL, NULL, "SELECT %d", r->db);
    r->last_refresh_ms = sw_now_ms();
    for (origin_stream_t *st = r->o->streams; st != NULL; st = st->next)
        if (st->pub != NULL)
            announce(r, st);
}

static void on_timer_closed(uv_handle_t *h)
{
    origin_redis_t *r = sw_container_of(h, origin_redis_t, retry);
    struct origin *o = r->o;
    free(r);
    origin__closed_one(o);
}

static void close_timer(origin_redis_t *r)
{
    if (r->timer_closed)
        return;
    r->timer_closed = 1;
    uv_close((uv_handle_t *)&r->retry, on_timer_closed);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    origin_redis_t *r = ac->data;
    r->ac = NULL;
    r->connected = 0;
    if (r->closing) {
        close_timer(r);
        return;
    }
    sw_log(SW_LOG_WARN, "redis", "lost %s:%d: %s; media is unaffected, reconnecting", r->host,
           r->port, status == REDIS_OK ? "closed" : ac->errstr);
    r->warned = 1;
    r->reconnects++;
    schedule_retry(r);
}

static void do_connect(origin_redis_t *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (ac == NULL || ac->err) {
        sw_log(SW_LOG_WARN, "redis", "cannot connect to %s:%d: %s", r->host, r->port,
               ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        r->reconnects++;
        schedule_retry(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    redisLibuvAttach(ac, r->o->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&r->retry, on_retry, 2000, 0);
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
    uv_timer_init(o->loop, &r->retry);
    do_connect(r);
    *out = r;
    return 0;
}

void origin__redis_close(origin_redis_t *r)
{
    r->closing = 1;
    uv_timer_stop(&r->retry);
    if (r->ac != NULL) {
        /* Withdraw what we announced, then disconnect once the replies are in. */
        for (origin_stream_t *st = r->o->streams; st != NULL; st = st->next)
            if (st->pub != NULL)
                origin__redis_withdraw(r, st);
        if (r->connected) {
            redisAsyncDisconnect(r->ac);
            return; /* on_disconnect closes the timer */
        }
        /* Still connecting: hiredis calls on_connect with an error, then frees. */
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
    }
    close_timer(r);
}
