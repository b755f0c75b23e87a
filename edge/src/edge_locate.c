/*
 * edge_locate.c: stream location from the origins' Redis registry (edge_locate.h).
 *
 * Each worker has its own locator, so the request path takes no lock and a slow Redis delays
 * only the fetches waiting on it. A miss in the small cache sends one HGET; the fetch waits for
 * the answer at most EDGE__LOCATE_WAIT_MS (one timer for all pending lookups, which are answered
 * in the order they were sent), then goes to the configured origins, so that the registry can
 * make an edge find more origins but never fail one. The connection (edge_overlay_redis.c)
 * reconnects by itself; while it is down every lookup is answered NULL at once.
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_int.h"
#include "edge_locate.h"
#include "edge_overlay_redis.h"
#include "sw/log.h"

#define SLOTS           256  /* cache entries, direct-mapped by a hash of the name */
#define STREAM_NAME_MAX 96   /* longer stream names are not looked up */
#define URL_MAX         160  /* longer registry values are ignored */
#define TTL_MS          3000 /* how long an answer (found or not) is kept */

typedef struct slot {
    char name[STREAM_NAME_MAX];
    char url[URL_MAX]; /* "": not registered */
    uint64_t expires;  /* uv_now(); 0: empty */
} slot_t;

typedef struct lookup {
    edge__locate_t *l;
    edge__located_cb cb; /* NULL once answered (by the timer): the reply is only cached */
    void *data;
    uint64_t t0;
    struct lookup *prev, *next; /* the pending list, while cb is set */
    char name[STREAM_NAME_MAX];
} lookup_t;

struct edge__locate {
    uv_loop_t *loop;
    edge__ov_redis_addr_t addr;
    edge__ov_redis_t redis;
    uv_timer_t timer; /* answers lookups older than EDGE__LOCATE_WAIT_MS */
    lookup_t *head, *tail;
    int open_handles; /* the timer and the connection's */
    void (*on_closed)(void *data);
    void *closed_data;
    slot_t slots[SLOTS];
};

static slot_t *slot_for(edge__locate_t *l, const char *name)
{
    return &l->slots[edge__hash(name, strlen(name)) % SLOTS];
}

/* A registry value we will fetch from: http(s)://HOST[:PORT] with a plain host or [v6], at most
 * one trailing slash. Anything else (it comes from the network) is ignored. */
static int url_ok(const char *u, size_t len)
{
    size_t p;
    if (len >= URL_MAX)
        return 0;
    if (len > 7 && strncmp(u, "http://", 7) == 0)
        p = 7;
    else if (len > 8 && strncmp(u, "https://", 8) == 0)
        p = 8;
    else
        return 0;
    if (u[len - 1] == '/')
        len--;
    if (p == len)
        return 0;
    for (; p < len; p++) {
        char c = u[p];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
            return 0;
    }
    return 1;
}

static void unlink_lookup(edge__locate_t *l, lookup_t *q)
{
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    q->prev = q->next = NULL;
}

/* Gives a pending lookup its answer. The callback may start a fetch, nothing that reenters us. */
static void answer(lookup_t *q, const char *url)
{
    edge__located_cb cb = q->cb;
    unlink_lookup(q->l, q);
    q->cb = NULL;
    cb(q->data, url);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *rep = r;
    lookup_t *q = privdata;
    edge__locate_t *l = q->l;
    const char *url = NULL;
    (void)ac;
    /* NULL: the connection went away (or is being closed); an error reply: nothing to cache. */
    if (rep != NULL && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_NIL)) {
        slot_t *s = slot_for(l, q->name);
        int found = rep->type == REDIS_REPLY_STRING && url_ok(rep->str, (size_t)rep->len);
        if (rep->type == REDIS_REPLY_STRING && !found)
            sw_log(SW_LOG_WARN, "edge", "registry: sw:stream:%s has a bad origin URL; ignored",
                   q->name);
        snprintf(s->name, sizeof(s->name), "%s", q->name);
        snprintf(s->url, sizeof(s->url), "%.*s", found ? (int)rep->len : 0, found ? rep->str : "");
        s->expires = uv_now(l->loop) + TTL_MS;
        if (found)
            url = s->url;
    }
    if (q->cb != NULL)
        answer(q, url);
    free(q);
}

static void on_timer(uv_timer_t *t)
{
    edge__locate_t *l = sw_container_of(t, edge__locate_t, timer);
    uint64_t now = uv_now(l->loop);
    while (l->head != NULL && now - l->head->t0 >= EDGE__LOCATE_WAIT_MS) {
        answer(l->head, NULL); /* the HGET's reply still comes, and is cached */
    }
    if (l->head != NULL)
        uv_timer_start(&l->timer, on_timer, l->head->t0 + EDGE__LOCATE_WAIT_MS - now, 0);
}

int edge__locate(edge__locate_t *l, const char *name, edge__located_cb cb, void *data,
                 const char **url)
{
    uint64_t now = uv_now(l->loop);
    size_t len = strlen(name);
    *url = NULL;
    if (len == 0 || len >= STREAM_NAME_MAX)
        return 0;
    slot_t *s = slot_for(l, name);
    if (s->expires > now && strcmp(s->name, name) == 0) {
        *url = s->url[0] ? s->url : NULL;
        return 0;
    }
    lookup_t *q;
    if (!l->redis.connected || (q = calloc(1, sizeof(*q))) == NULL)
        return 0;
    q->l = l;
    q->cb = cb;
    q->data = data;
    q->t0 = now;
    memcpy(q->name, name, len + 1);
    if (redisAsyncCommand(l->redis.ac, on_reply, q, "HGET sw:stream:%s origin", name) != REDIS_OK) {
        free(q);
        return 0;
    }
    if ((q->prev = l->tail) != NULL)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
    if (!uv_is_active((uv_handle_t *)&l->timer))
        uv_timer_start(&l->timer, on_timer, EDGE__LOCATE_WAIT_MS, 0);
    return 1;
}

/* Nothing to do on connecting: lookups check `connected` as they come. */
static void on_up(edge__ov_redis_t *r)
{
    (void)r;
}

static void close_step(edge__locate_t *l)
{
    if (--l->open_handles > 0)
        return;
    if (l->on_closed != NULL)
        l->on_closed(l->closed_data);
    free(l);
}

static void on_redis_closed(edge__ov_redis_t *r)
{
    close_step(sw_container_of(r, edge__locate_t, redis));
}

static void on_timer_closed(uv_handle_t *h)
{
    close_step(sw_container_of((uv_timer_t *)h, edge__locate_t, timer));
}

int edge__locate_new(edge__locate_t **out, uv_loop_t *loop, const char *redis_url, char *err,
                     size_t errlen)
{
    edge__locate_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return EDGE_ERR_NOMEM;
    }
    if (edge__ov_redis_parse_url(&l->addr, redis_url) != 0) {
        snprintf(err, errlen, "bad redis URL (redis://[:PASSWORD@]HOST[:PORT][/DB])");
        free(l);
        return EDGE_ERR_INVAL;
    }
    l->loop = loop;
    l->redis.name = "registry";
    l->redis.addr = &l->addr;
    l->redis.on_up = on_up;
    l->redis.on_closed = on_redis_closed;
    uv_timer_init(loop, &l->timer);
    l->open_handles = 2;
    edge__ov_redis_start(&l->redis, loop);
    *out = l;
    return 0;
}

void edge__locate_close(edge__locate_t *l, void (*on_closed)(void *data), void *data)
{
    l->on_closed = on_closed;
    l->closed_data = data;
    /* Pending lookups first, so that their fetches start before the fetcher closes. Closing the
     * connection then hands the replies still awaited to on_reply() with NULL, which frees them. */
    while (l->head != NULL)
        answer(l->head, NULL);
    uv_close((uv_handle_t *)&l->timer, on_timer_closed);
    edge__ov_redis_close(&l->redis);
}
