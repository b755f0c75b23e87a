/*
 * origin_ingest.c: the ingest object on the loop side. It copies the config, starts the SRT
 * thread (origin_srt.c) and turns the events that the SRT and demux threads post into callbacks:
 * the threads append to one locked list and wake the loop with a uv_async_t; wake-ups coalesce,
 * so each wake-up drains the whole list, in order. A demux thread appends the events of one read
 * of its socket together (origin__post_list()), so that a publisher costs one lock and one
 * uv_async_send() per read rather than per frame.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw/log.h"
#include "sw/sw.h"

#include "origin_ingest_int.h"

void origin_packet_free(origin_packet_t *p)
{
    /* The payload lives in the same allocation (see origin_demux.c). */
    free(p);
}

void origin__post(origin_ingest_t *in, origin__event_t *ev)
{
    ev->next = NULL;
    origin__post_list(in, ev, ev);
}

void origin__post_list(origin_ingest_t *in, origin__event_t *head, origin__event_t *tail)
{
    assert(head != NULL && tail != NULL && tail->next == NULL);
    pthread_mutex_lock(&in->mutex);
    if (in->ev_tail != NULL)
        in->ev_tail->next = head;
    else
        in->ev_head = head;
    in->ev_tail = tail;
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->mutex);
    atomic_fetch_add_explicit(&in->handoffs, 1, memory_order_relaxed);
    uv_async_send(&in->async);
}

int origin__cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mutex, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(cond, mutex, &ts);
}

void origin__pub_set_reason(origin_pub_t *pub, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&pub->mutex);
    if (pub->reason[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(pub->reason, sizeof(pub->reason), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&pub->mutex);
}

void origin__pub_stop(origin_pub_t *pub, const char *reason)
{
    pthread_mutex_lock(&pub->mutex);
    pub->stop = 1;
    if (pub->reason[0] == '\0')
        snprintf(pub->reason, sizeof(pub->reason), "%s", reason);
    pthread_mutex_unlock(&pub->mutex);
}

void origin__pub_close_later(origin_ingest_t *in, origin_pub_t *pub)
{
    pthread_mutex_lock(&in->mutex);
    pub->close_next = in->close_list;
    in->close_list = pub;
    pthread_cond_signal(&in->srt_cond);
    pthread_mutex_unlock(&in->mutex);
}

void origin__pub_free(origin_pub_t *pub)
{
    pthread_mutex_destroy(&pub->mutex);
    free(pub);
}

static void free_event(origin__event_t *ev)
{
    if (ev->type == ORIGIN__EV_PACKET && ev->pkt != NULL)
        origin_packet_free(ev->pkt);
    free(ev);
}

/* The publisher's last event: its demux thread has returned or is returning, the SRT thread has
 * closed its socket. */
static void finish_pub(origin_ingest_t *in, origin_pub_t *pub)
{
    if (pub->thread_started)
        pthread_join(pub->thread, NULL);
    pthread_mutex_lock(&pub->mutex);
    const char *reason = pub->reason[0] != '\0' ? pub->reason : "ended";
    pthread_mutex_unlock(&pub->mutex);
    sw_log(SW_LOG_INFO, "srt", "unpublish %s from %s: %s (%llu bytes in)", pub->name, pub->peer,
           reason, (unsigned long long)pub->bytes_in);
    if (in->cbs.on_unpublish != NULL)
        in->cbs.on_unpublish(in->data, pub, reason);
    origin__names_release(in, pub->name, pub->sock);

    pthread_mutex_lock(&in->mutex);
    if (pub->prev != NULL)
        pub->prev->next = pub->next;
    else
        in->pubs = pub->next;
    if (pub->next != NULL)
        pub->next->prev = pub->prev;
    in->npubs--;
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->mutex);
    origin__pub_free(pub);
}

static void dispatch(origin_ingest_t *in, origin__event_t *ev)
{
    origin_pub_t *pub = ev->pub;

    switch (ev->type) {
    case ORIGIN__EV_PUBLISH:
        if (in->cbs.on_publish != NULL)
            in->cbs.on_publish(in->data, pub, pub->name, pub->peer);
        break;
    case ORIGIN__EV_TRACK:
        if (in->cbs.on_track != NULL)
            in->cbs.on_track(in->data, pub, ev->kind, &ev->info);
        break;
    case ORIGIN__EV_PACKET:
        if (in->cbs.on_packet != NULL) {
            in->cbs.on_packet(in->data, pub, ev->pkt);
            ev->pkt = NULL;
        }
        break;
    case ORIGIN__EV_UNPUBLISH:
        finish_pub(in, pub);
        break;
    }
    free_event(ev);
}

/* Drains the whole list: returns how many events ran. */
static size_t drain(origin_ingest_t *in)
{
    size_t n = 0;

    pthread_mutex_lock(&in->mutex);
    origin__event_t *ev = in->ev_head;
    in->ev_head = in->ev_tail = NULL;
    pthread_mutex_unlock(&in->mutex);
    while (ev != NULL) {
        origin__event_t *next = ev->next;
        dispatch(in, ev);
        ev = next;
        n++;
    }
    in->events += n;
    return n;
}

static void on_async(uv_async_t *h)
{
    origin_ingest_t *in = sw_container_of(h, origin_ingest_t, async);

    in->wakeups++;
    drain(in);
}

static void on_close_free(uv_handle_t *h)
{
    free(sw_container_of((uv_async_t *)h, origin_ingest_t, async));
}

void origin__access_dispose(origin__access_t *a)
{
    for (size_t i = 0; i < a->nrules; i++) {
        free(a->rules[i].prefix);
        free(a->rules[i].passphrase);
    }
    free(a->rules);
    for (size_t i = 0; i < a->nallow; i++)
        free(a->allow[i]);
    free(a->allow);
    for (size_t i = 0; i < a->npull_names; i++)
        free(a->pull_names[i]);
    free(a->pull_names);
    memset(a, 0, sizeof(*a));
}

void origin__pulls_free(origin__pull_t *pulls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(pulls[i].cfg.name);
        free(pulls[i].cfg.url);
    }
    free(pulls);
}

static void free_config(origin_ingest_t *in)
{
    origin__access_dispose(&in->access);
    origin__pulls_free(in->pulls, in->npulls);
    origin__pulls_free(in->new_pulls, in->nnew_pulls);
    free(in->listen);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s != NULL ? s : "");
}

/* A prefix in its matching form (origin_rule_prefix()), newly allocated; NULL with err filled. */
static char *match_prefix(const char *what, const char *prefix, char *err, size_t errlen)
{
    char buf[ORIGIN__RESOURCE_MAX];
    const char *why;
    char *out;

    if (origin_rule_prefix(prefix != NULL ? prefix : "", buf, sizeof(buf), &why) != 0) {
        snprintf(err, errlen, "%s \"%s\": %s", what, prefix, why);
        return NULL;
    }
    if ((out = strdup(buf)) == NULL)
        snprintf(err, errlen, "out of memory");
    return out;
}

int origin__access_init(origin__access_t *a, const origin_ingest_config_t *cfg, char *err,
                        size_t errlen)
{
    memset(a, 0, sizeof(*a));
    a->max_publishers = cfg->max_publishers;
    a->max_per_source = cfg->max_per_source;
    a->require_passphrase = cfg->require_passphrase;
    if (cfg->nrules > 0 && (a->rules = calloc(cfg->nrules, sizeof(*a->rules))) == NULL)
        goto nomem;
    for (size_t i = 0; i < cfg->nrules; i++) {
        const origin_srt_rule_t *r = &cfg->rules[i];
        size_t plen = r->passphrase != NULL ? strlen(r->passphrase) : 0;
        a->nrules++;
        if ((a->rules[i].prefix = match_prefix("srt rule", r->prefix, err, errlen)) == NULL)
            goto fail;
        if ((a->rules[i].passphrase = dup_or_empty(r->passphrase)) == NULL)
            goto nomem;
        a->rules[i].pbkeylen = r->pbkeylen;
        if (plen != 0 && (plen < 10 || plen > 79)) {
            snprintf(err, errlen, "srt rule \"%s\": passphrase must have 10..79 characters",
                     r->prefix);
            goto fail;
        }
        if (r->pbkeylen != 0 && r->pbkeylen != 16 && r->pbkeylen != 24 && r->pbkeylen != 32) {
            snprintf(err, errlen, "srt rule \"%s\": pbkeylen must be 0, 16, 24 or 32", r->prefix);
            goto fail;
        }
    }
    if (cfg->nallow > 0 && (a->allow = calloc(cfg->nallow, sizeof(*a->allow))) == NULL)
        goto nomem;
    for (size_t i = 0; i < cfg->nallow; i++) {
        a->nallow++;
        if ((a->allow[i] = match_prefix("srt allow", cfg->allow[i], err, errlen)) == NULL)
            goto fail;
    }
    if (cfg->npulls > 0 && (a->pull_names = calloc(cfg->npulls, sizeof(char *))) == NULL)
        goto nomem;
    for (size_t i = 0; i < cfg->npulls; i++) {
        a->npull_names++;
        if ((a->pull_names[i] = dup_or_empty(cfg->pulls[i].name)) == NULL)
            goto nomem;
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    origin__access_dispose(a);
    return -1;
}

/* Copies and resolves the pulls of `cfg` into a new array. Returns 0, or -1 with err filled (the
 * array, possibly partly filled, is in *out then too). */
static int copy_pulls(const origin_ingest_config_t *cfg, int latency_ms, origin__pull_t **out,
                      size_t *nout, char *err, size_t errlen)
{
    origin__pull_t *p = NULL;

    *out = NULL;
    *nout = 0;
    if (cfg->npulls > 0 && (p = calloc(cfg->npulls, sizeof(*p))) == NULL)
        goto nomem;
    *out = p;
    for (size_t i = 0; i < cfg->npulls; i++) {
        (*nout)++;
        p[i].sock = SRT_INVALID_SOCK;
        if ((p[i].cfg.name = dup_or_empty(cfg->pulls[i].name)) == NULL ||
            (p[i].cfg.url = dup_or_empty(cfg->pulls[i].url)) == NULL)
            goto nomem;
        if (origin__pull_parse(&p[i], latency_ms, err, errlen) != 0)
            return -1;
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static int copy_config(origin_ingest_t *in, const origin_ingest_config_t *cfg, char *err,
                       size_t errlen)
{
    in->latency_ms = cfg->latency_ms > 0 ? cfg->latency_ms : 120;
    in->tsbpd = !cfg->no_tsbpd;
    in->stall_ms = cfg->stall_ms > 0 ? cfg->stall_ms : 10000;
    in->probe_ms = cfg->probe_ms > 0 ? cfg->probe_ms : 5000;
    in->queue_bytes = cfg->queue_bytes; /* unused; kept for the config struct's sake */
    if (cfg->listen != NULL && cfg->listen[0] != '\0' && (in->listen = strdup(cfg->listen)) == NULL)
        goto nomem;
    if (origin__access_init(&in->access, cfg, err, errlen) != 0)
        return -1;
    return copy_pulls(cfg, in->latency_ms, &in->pulls, &in->npulls, err, errlen);
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

const char *origin_refuse_name(int reason)
{
    static const char *const names[ORIGIN_REFUSE__N] = {
        "bad_request",  "bad_mode", "conflict", "forbidden",
        "unauthorized", "overload", "down",     "handshake",
    };
    return reason >= 0 && reason < ORIGIN_REFUSE__N ? names[reason] : "?";
}

uint64_t origin_ingest_refused(origin_ingest_t *in, int reason)
{
    if (reason < 0 || reason >= ORIGIN_REFUSE__N)
        return 0;
    return atomic_load(&in->refused[reason]);
}

void origin_ingest_get_counts(origin_ingest_t *in, origin_ingest_counts_t *out)
{
    out->events = in->events;
    out->handoffs = atomic_load_explicit(&in->handoffs, memory_order_relaxed);
    out->wakeups = in->wakeups;
}

int origin_ingest_new(origin_ingest_t **out, uv_loop_t *loop, const origin_ingest_config_t *cfg,
                      const origin_ingest_cbs_t *cbs, void *data, char *err, size_t errlen)
{
    origin_ingest_t *in;

    if ((in = calloc(1, sizeof(*in))) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    in->loop = loop;
    in->cbs = *cbs;
    in->data = data;
    in->listener = SRT_INVALID_SOCK;
    if (copy_config(in, cfg, err, errlen) != 0)
        goto fail_config;
    pthread_mutex_init(&in->mutex, NULL);
    pthread_mutex_init(&in->names_mutex, NULL);
    pthread_mutex_init(&in->refuse_mutex, NULL);
    pthread_cond_init(&in->cond, NULL);
    pthread_cond_init(&in->srt_cond, NULL);
    if (uv_async_init(loop, &in->async, on_async) != 0) {
        snprintf(err, errlen, "uv_async_init failed");
        goto fail_locks;
    }
    if (origin__srt_start(in, err, errlen) != 0)
        goto fail_async;
    *out = in;
    return 0;
fail_async:
    /* The handle's memory must outlive its close; free `in` in the close callback. */
    pthread_cond_destroy(&in->cond);
    pthread_cond_destroy(&in->srt_cond);
    pthread_mutex_destroy(&in->names_mutex);
    pthread_mutex_destroy(&in->refuse_mutex);
    pthread_mutex_destroy(&in->mutex);
    free_config(in);
    uv_close((uv_handle_t *)&in->async, on_close_free);
    return -1;
fail_locks:
    pthread_cond_destroy(&in->cond);
    pthread_cond_destroy(&in->srt_cond);
    pthread_mutex_destroy(&in->names_mutex);
    pthread_mutex_destroy(&in->refuse_mutex);
    pthread_mutex_destroy(&in->mutex);
fail_config:
    free_config(in);
    free(in);
fail:
    return -1;
}

int origin_ingest_reload(origin_ingest_t *in, const origin_ingest_config_t *cfg, char *err,
                         size_t errlen)
{
    origin__access_t a, old;
    origin__pull_t *pulls, *stale;
    size_t npulls, nstale;

    if (origin__access_init(&a, cfg, err, errlen) != 0)
        return -1;
    if (copy_pulls(cfg, in->latency_ms, &pulls, &npulls, err, errlen) != 0) {
        origin__pulls_free(pulls, npulls);
        origin__access_dispose(&a);
        return -1;
    }
    pthread_mutex_lock(&in->names_mutex);
    old = in->access;
    in->access = a;
    pthread_mutex_unlock(&in->names_mutex);
    origin__access_dispose(&old);

    /* The SRT thread owns the running pulls: it compares and applies the new list between two
     * rounds (origin_srt.c). A list it has not taken yet is replaced. */
    pthread_mutex_lock(&in->mutex);
    stale = in->new_pulls;
    nstale = in->nnew_pulls;
    in->new_pulls = pulls;
    in->nnew_pulls = npulls;
    in->new_pulls_ready = 1;
    pthread_cond_signal(&in->srt_cond);
    pthread_mutex_unlock(&in->mutex);
    origin__pulls_free(stale, nstale);
    return 0;
}

void origin_ingest_drop(origin_ingest_t *in, origin_pub_t *pub, const char *reason)
{
    (void)in;
    pthread_mutex_lock(&pub->mutex);
    pub->stop = 1;
    pthread_mutex_unlock(&pub->mutex);
    origin__pub_set_reason(pub, "dropped by API: %s", reason != NULL ? reason : "no reason given");
}

void origin_ingest_free(origin_ingest_t *in)
{
    if (in == NULL)
        return;

    /* Stop every publisher; new handshakes are refused from now on. */
    pthread_mutex_lock(&in->mutex);
    in->shutting_down = 1;
    for (origin_pub_t *p = in->pubs; p != NULL; p = p->next)
        origin__pub_stop(p, "origin shutting down");
    pthread_mutex_unlock(&in->mutex);

    /* Deliver what the threads post until every publisher has had its on_unpublish. The demux
     * threads see `stop` within their 100 ms receive timeout and wake the SRT thread for
     * their close. */
    for (int i = 0; i < 600; i++) {
        drain(in);
        pthread_mutex_lock(&in->mutex);
        size_t left = in->npubs;
        if (left > 0 && in->ev_head == NULL)
            origin__cond_wait_ms(&in->cond, &in->mutex, 50);
        pthread_mutex_unlock(&in->mutex);
        if (left == 0)
            break;
    }
    if (in->npubs > 0) {
        /* A demux thread is stuck: freeing what it uses would be worse than leaking. */
        sw_log(SW_LOG_ERROR, "srt", "%zu publishers did not stop within 30 s; leaking the ingest",
               in->npubs);
        return;
    }

    origin__srt_stop(in);
    drain(in);
    free(in->names);
    free_config(in);
    pthread_cond_destroy(&in->cond);
    pthread_cond_destroy(&in->srt_cond);
    pthread_mutex_destroy(&in->names_mutex);
    pthread_mutex_destroy(&in->refuse_mutex);
    pthread_mutex_destroy(&in->mutex);
    uv_close((uv_handle_t *)&in->async, on_close_free);
}
