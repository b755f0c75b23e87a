/*
 * edge_overlay_redis.c: one hiredis async connection on the loop that keeps itself up. The overlay
 * has two: commands (state, XRANGE, XADD, CLIENT UNBLOCK) and the reader (XREAD BLOCK), since a
 * blocked XREAD holds its connection.
 *
 * As in origin_redis.c, the retry timer doubles as the connect deadline: hiredis 0.14's libuv
 * adapter drops poll errors (a refused connection reports UV_EBADF and is ignored), so an attempt
 * that has not connected when the timer fires is freed there and counted as a reconnect.
 */
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_overlay_redis.h"
#include "sw/log.h"

#define RETRY_MS   1000
#define CONNECT_MS 2000

int edge__ov_redis_parse_url(edge__ov_redis_addr_t *a, const char *url)
{
    memset(a, 0, sizeof(*a));
    const char *p = url;
    if (url == NULL || strncmp(p, "redis://", 8) != 0)
        return EDGE_ERR_INVAL;
    p += 8;
    const char *at = strchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if ((size_t)(at - pw) >= sizeof(a->password))
            return EDGE_ERR_INVAL;
        memcpy(a->password, pw, (size_t)(at - pw));
        p = at + 1;
    }
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    const char *host_end = colon ? colon : slash ? slash : p + strlen(p);
    if (host_end == p || (size_t)(host_end - p) >= sizeof(a->host))
        return EDGE_ERR_INVAL;
    memcpy(a->host, p, (size_t)(host_end - p));
    a->port = 6379;
    if (colon != NULL) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || port <= 0 || port > 65535 || (*end != '\0' && *end != '/'))
            return EDGE_ERR_INVAL;
        a->port = (int)port;
    }
    if (slash != NULL && slash[1] != '\0') {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end != '\0' || db < 0 || db > 1000)
            return EDGE_ERR_INVAL;
        a->db = (int)db;
    }
    return 0;
}

static void do_connect(edge__ov_redis_t *r);

static void on_retry(uv_timer_t *t)
{
    edge__ov_redis_t *r = sw_container_of(t, edge__ov_redis_t, retry);
    if (r->closing)
        return;
    if (r->ac != NULL && !r->connected) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
        r->reconnects++;
        if (!r->warned)
            sw_log(SW_LOG_WARN, "overlay", "redis %s: cannot connect to %s:%d; retrying", r->name,
                   r->addr->host, r->addr->port);
        r->warned = 1;
    }
    if (r->ac == NULL)
        do_connect(r);
}

static void schedule_retry(edge__ov_redis_t *r)
{
    if (!r->closing)
        uv_timer_start(&r->retry, on_retry, RETRY_MS, 0);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    edge__ov_redis_t *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (!r->warned)
            sw_log(SW_LOG_WARN, "overlay", "redis %s: cannot connect to %s:%d: %s; retrying",
                   r->name, r->addr->host, r->addr->port, ac->errstr);
        r->warned = 1;
        r->ac = NULL;
        r->reconnects++;
        schedule_retry(r);
        return;
    }
    uv_timer_stop(&r->retry);
    r->connected = 1;
    r->warned = 0;
    sw_log(SW_LOG_INFO, "overlay", "redis %s: connected to %s:%d", r->name, r->addr->host,
           r->addr->port);
    if (r->addr->password[0] != '\0')
        redisAsyncCommand(r->ac, NULL, NULL, "AUTH %s", r->addr->password);
    if (r->addr->db != 0)
        redisAsyncCommand(r->ac, NULL, NULL, "SELECT %d", r->addr->db);
    r->on_up(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    edge__ov_redis_t *r = sw_container_of(h, edge__ov_redis_t, retry);
    r->on_closed(r);
}

static void close_timer(edge__ov_redis_t *r)
{
    if (r->timer_closed)
        return;
    r->timer_closed = 1;
    uv_close((uv_handle_t *)&r->retry, on_timer_closed);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    edge__ov_redis_t *r = ac->data;
    r->ac = NULL;
    r->connected = 0;
    if (r->closing) {
        close_timer(r);
        return;
    }
    sw_log(SW_LOG_WARN, "overlay", "redis %s: lost %s:%d: %s; reconnecting", r->name, r->addr->host,
           r->addr->port, status == REDIS_OK ? "closed" : ac->errstr);
    r->warned = 1;
    r->reconnects++;
    if (r->on_down != NULL)
        r->on_down(r);
    schedule_retry(r);
}

static void do_connect(edge__ov_redis_t *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->addr->host, r->addr->port);
    if (ac == NULL || ac->err) {
        sw_log(SW_LOG_WARN, "overlay", "redis %s: cannot connect to %s:%d: %s", r->name,
               r->addr->host, r->addr->port, ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        r->reconnects++;
        schedule_retry(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    redisLibuvAttach(ac, r->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&r->retry, on_retry, CONNECT_MS, 0);
}

void edge__ov_redis_start(edge__ov_redis_t *r, uv_loop_t *loop)
{
    r->loop = loop;
    uv_timer_init(loop, &r->retry);
    do_connect(r);
}

void edge__ov_redis_close(edge__ov_redis_t *r)
{
    r->closing = 1;
    uv_timer_stop(&r->retry);
    if (r->ac != NULL) {
        if (r->connected) {
            /* Pending callbacks get a NULL reply; on_disconnect then closes the timer. A blocked
             * XREAD would hold a graceful disconnect, so free at once. */
            redisAsyncContext *ac = r->ac;
            redisAsyncFree(ac);
            if (r->ac == NULL)
                return;
        }
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
    }
    close_timer(r);
}
