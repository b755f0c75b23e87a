/*
 * edge_cache.c: the index (a chained hash table), the byte budget, objects, subscribers, wakers,
 * and the request-collapsing lookup. Which object to evict is asked of the policy
 * (edge_policy_*.c).
 *
 * One mutex guards it all (see Threading in edge/cache.h): every operation is a few pointer moves,
 * so finer locks would buy nothing but lock-order rules. It is never held while a subscriber's
 * callback runs, so callbacks may call back into the cache.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "edge_int.h"

struct edge_cache {
    edge__lock_t *lk; /* one reference */
    edge_cache_config_t cfg;
    edge_obj_t **buckets;
    size_t nbuckets; /* power of two */
    size_t nobjs;
    size_t used; /* bytes charged */
    edge__policy_t policy;
    edge_cache_stats_t st;
};

enum { REASON_EVICT, REASON_EXPIRE, REASON_PURGE, REASON_TOO_BIG, REASON_OTHER };

const char *edge_strerror(int rv)
{
    switch (rv) {
    case EDGE_OK:
        return "success";
    case EDGE_ERR_NOMEM:
        return "out of memory";
    case EDGE_ERR_INVAL:
        return "invalid argument or malformed input";
    case EDGE_ERR_STATE:
        return "not allowed in the current state";
    case EDGE_ERR_TOO_BIG:
        return "over a limit";
    case EDGE_ERR_TRUNCATED:
        return "object shorter than its Content-Length";
    case EDGE_ERR_UPSTREAM:
        return "origin fetch failed";
    case EDGE_ERR_UNCACHEABLE:
        return "private response, not shared";
    case EDGE_ERR_TOKEN_MALFORMED:
        return "signed URL malformed";
    case EDGE_ERR_TOKEN_EXPIRED:
        return "signed URL expired";
    case EDGE_ERR_TOKEN_BAD_SIG:
        return "signed URL signature invalid";
    case EDGE_ERR_TOKEN_PREFIX:
        return "path outside the signed prefix";
    }
    return "unknown error";
}

static edge__lock_t *lock_new(void)
{
    edge__lock_t *lk = malloc(sizeof(*lk));
    if (lk == NULL)
        return NULL;
    if (pthread_mutex_init(&lk->mu, NULL) != 0) {
        free(lk);
        return NULL;
    }
    atomic_init(&lk->refs, 1);
    return lk;
}

static edge__lock_t *lock_ref(edge__lock_t *lk)
{
    atomic_fetch_add_explicit(&lk->refs, 1, memory_order_relaxed);
    return lk;
}

static void lock_unref(edge__lock_t *lk)
{
    if (atomic_fetch_sub_explicit(&lk->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&lk->mu);
    free(lk);
}

static void lock(edge__lock_t *lk)
{
    pthread_mutex_lock(&lk->mu);
}

static void unlock(edge__lock_t *lk)
{
    pthread_mutex_unlock(&lk->mu);
}

uint64_t edge__hash(const char *s, size_t len)
{
    /* FNV-1a: keys are short paths; good enough spread, and no seed to manage. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void edge_cache_config_init(edge_cache_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    /* LRU: on the live-viewer trace of bench/live_trace.c it beats S3-FIFO at every budget
     * (bench/policy_bench.c; tests/unit/edge/test_policy_trace.c asserts it). */
    cfg->policy = EDGE_POLICY_LRU;
    cfg->budget_bytes = (size_t)256 << 20;
    cfg->max_object_bytes = (size_t)32 << 20;
}

int edge_cache_new(edge_cache_t **out, const edge_cache_config_t *cfg)
{
    edge_cache_t *c;
    int rv = EDGE_ERR_INVAL;

    if (cfg->budget_bytes == 0 ||
        (cfg->policy != EDGE_POLICY_LRU && cfg->policy != EDGE_POLICY_S3FIFO))
        goto fail;
    rv = EDGE_ERR_NOMEM;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        goto fail;
    if ((c->lk = lock_new()) == NULL)
        goto fail_cache;
    c->cfg = *cfg;
    if (c->cfg.max_object_bytes == 0)
        c->cfg.max_object_bytes = cfg->budget_bytes;
    c->nbuckets = 64;
    if ((c->buckets = calloc(c->nbuckets, sizeof(*c->buckets))) == NULL)
        goto fail_lock;
    c->policy.ops = cfg->policy == EDGE_POLICY_LRU ? &edge__policy_lru : &edge__policy_s3fifo;
    c->policy.budget = cfg->budget_bytes;
    if ((rv = c->policy.ops->init(&c->policy, &c->cfg)) != 0)
        goto fail_buckets;
    *out = c;
    return 0;
fail_buckets:
    free(c->buckets);
fail_lock:
    lock_unref(c->lk);
fail_cache:
    free(c);
fail:
    return rv;
}

/* ---- index ------------------------------------------------------------------------------- */

static edge_obj_t **find_slot(edge_cache_t *c, const char *key, size_t keylen, uint64_t h)
{
    edge_obj_t **pp = &c->buckets[h & (c->nbuckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->hnext) {
        if ((*pp)->hash == h && (*pp)->keylen == keylen && memcmp((*pp)->key, key, keylen) == 0)
            break;
    }
    return pp;
}

static void grow_index(edge_cache_t *c)
{
    size_t nb = c->nbuckets * 2;
    edge_obj_t **b = calloc(nb, sizeof(*b));
    /* Out of memory here only costs longer chains; the index stays correct. */
    if (b == NULL)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        edge_obj_t *o = c->buckets[i], *next;
        for (; o != NULL; o = next) {
            next = o->hnext;
            o->hnext = b[o->hash & (nb - 1)];
            b[o->hash & (nb - 1)] = o;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

static void index_add(edge_cache_t *c, edge_obj_t *o)
{
    if (c->nobjs >= c->nbuckets)
        grow_index(c);
    edge_obj_t **slot = &c->buckets[o->hash & (c->nbuckets - 1)];
    o->hnext = *slot;
    *slot = o;
    o->cache = c;
    edge_obj_ref(o);
    o->charge = sizeof(*o) + o->keylen + o->size;
    c->used += o->charge;
    c->nobjs++;
    c->policy.ops->insert(&c->policy, o);
}

/* Takes `o` out of the index and drops the cache's reference; it may free `o`. The lock stays
 * alive: the caller reached it through the cache or another live object. */
static void index_remove(edge_cache_t *c, edge_obj_t *o, int reason)
{
    edge_obj_t **pp = find_slot(c, o->key, o->keylen, o->hash);
    assert(*pp == o);
    *pp = o->hnext;
    o->hnext = NULL;
    c->policy.ops->remove(&c->policy, o);
    c->used -= o->charge;
    c->nobjs--;
    switch (reason) {
    case REASON_EVICT:
        c->st.evictions++;
        c->st.evicted_bytes += o->charge;
        break;
    case REASON_EXPIRE:
        c->st.expired++;
        break;
    case REASON_PURGE:
        c->st.purged++;
        break;
    case REASON_TOO_BIG:
        c->st.too_big++;
        break;
    }
    o->charge = 0;
    o->cache = NULL;
    edge_obj_unref(o);
}

static void evict_to_budget(edge_cache_t *c)
{
    edge_obj_t *v;
    while (c->used > c->cfg.budget_bytes && (v = c->policy.ops->victim(&c->policy)) != NULL)
        index_remove(c, v, REASON_EVICT);
}

void edge_cache_free(edge_cache_t *c)
{
    if (c == NULL)
        return;
    /* Objects still referenced elsewhere may be read by other threads until they let go. */
    lock(c->lk);
    for (size_t i = 0; i < c->nbuckets; i++) {
        while (c->buckets[i] != NULL)
            index_remove(c, c->buckets[i], REASON_OTHER);
    }
    c->policy.ops->dispose(&c->policy);
    unlock(c->lk);
    lock_unref(c->lk);
    free(c->buckets);
    free(c);
}

/* ---- lookup ------------------------------------------------------------------------------ */

static edge_obj_t *obj_new(edge_cache_t *c, const char *key, size_t keylen, uint64_t h)
{
    edge_obj_t *o = calloc(1, sizeof(*o) + keylen + 1);
    if (o == NULL)
        return NULL;
    atomic_init(&o->refs, 1);
    o->lk = lock_ref(c->lk);
    o->hash = h;
    o->state = EDGE_OBJ_FILLING;
    o->content_length = -1;
    o->keylen = keylen;
    memcpy(o->key, key, keylen);
    return o;
}

int edge_cache_get(edge_cache_t *c, const char *key, int64_t now_ms, edge_obj_t **out)
{
    size_t keylen = strlen(key);
    if (keylen == 0)
        return EDGE_ERR_INVAL;
    uint64_t h = edge__hash(key, keylen);
    int rv;

    lock(c->lk);
    edge_obj_t *o = *find_slot(c, key, keylen, h), *stale = NULL;
    if (o != NULL) {
        if (o->state == EDGE_OBJ_FILLING) {
            c->policy.ops->hit(&c->policy, o);
            c->st.collapsed++;
            *out = edge_obj_ref(o);
            rv = EDGE_CACHE_FILLING;
            goto out;
        }
        if (o->state == EDGE_OBJ_COMPLETE && now_ms < o->expires_ms) {
            c->policy.ops->hit(&c->policy, o);
            c->st.hits++;
            *out = edge_obj_ref(o);
            rv = EDGE_CACHE_HIT;
            goto out;
        }
        /* Expired. Keep it aside as a fallback while it may still stand in for a failed fetch. */
        if (o->state == EDGE_OBJ_COMPLETE && now_ms < o->stale_until_ms)
            stale = edge_obj_ref(o);
    }
    edge_obj_t *n = obj_new(c, key, keylen, h);
    if (n == NULL) {
        edge_obj_unref(stale);
        rv = EDGE_ERR_NOMEM;
        goto out;
    }
    if (o != NULL)
        index_remove(c, o, REASON_EXPIRE);
    n->stale = stale;
    index_add(c, n);
    c->st.misses++;
    evict_to_budget(c);
    *out = n;
    rv = EDGE_CACHE_MISS;
out:
    unlock(c->lk);
    return rv;
}

int edge_cache_purge(edge_cache_t *c, const char *key)
{
    size_t keylen = strlen(key);
    lock(c->lk);
    edge_obj_t *o = *find_slot(c, key, keylen, edge__hash(key, keylen));
    if (o != NULL)
        index_remove(c, o, REASON_PURGE);
    unlock(c->lk);
    return o != NULL;
}

size_t edge_cache_purge_prefix(edge_cache_t *c, const char *prefix)
{
    size_t plen = strlen(prefix), n = 0;
    lock(c->lk);
    for (size_t i = 0; i < c->nbuckets; i++) {
        edge_obj_t **pp = &c->buckets[i];
        while (*pp != NULL) {
            edge_obj_t *o = *pp;
            if (o->keylen >= plen && memcmp(o->key, prefix, plen) == 0) {
                index_remove(c, o, REASON_PURGE); /* unlinks *pp */
                n++;
            } else {
                pp = &o->hnext;
            }
        }
    }
    unlock(c->lk);
    return n;
}

size_t edge_cache_sweep(edge_cache_t *c, int64_t now_ms)
{
    size_t n = 0;
    lock(c->lk);
    for (size_t i = 0; i < c->nbuckets; i++) {
        edge_obj_t **pp = &c->buckets[i];
        while (*pp != NULL) {
            edge_obj_t *o = *pp;
            if (o->state == EDGE_OBJ_COMPLETE && now_ms >= o->expires_ms &&
                now_ms >= o->stale_until_ms) {
                index_remove(c, o, REASON_EXPIRE);
                n++;
            } else {
                pp = &o->hnext;
            }
        }
    }
    unlock(c->lk);
    return n;
}

edge_policy_kind_t edge_cache_policy(const edge_cache_t *c)
{
    return c->cfg.policy; /* set at creation, never changed */
}

void edge_cache_stats(const edge_cache_t *c, edge_cache_stats_t *out)
{
    lock(c->lk);
    *out = c->st;
    out->objects = c->nobjs;
    out->bytes = c->used;
    unlock(c->lk);
}

/* ---- objects ----------------------------------------------------------------------------- */

edge_obj_t *edge_obj_ref(edge_obj_t *o)
{
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    return o;
}

void edge_obj_unref(edge_obj_t *o)
{
    /* acq_rel: whoever frees sees every write other threads made before dropping theirs. */
    if (o == NULL || atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1)
        return;
    assert(o->cache == NULL && o->subs == NULL);
    for (size_t i = 0; i < o->nchunks; i++)
        sw_rbuf_unref(o->chunks[i].buf);
    free(o->chunks);
    sw_rbuf_unref(o->meta);
    edge_obj_unref(o->stale);
    lock_unref(o->lk);
    free(o);
}

const char *edge_obj_key(const edge_obj_t *o)
{
    return o->key;
}

/* The getters each read one field under the lock; edge_obj_progress() reads two at one instant. */
#define GETTER(type, name, expr)                                                                   \
    type name(const edge_obj_t *o)                                                                 \
    {                                                                                              \
        lock(o->lk);                                                                               \
        type v = (expr);                                                                           \
        unlock(o->lk);                                                                             \
        return v;                                                                                  \
    }
GETTER(edge_obj_state_t, edge_obj_state, o->state)
GETTER(int, edge_obj_error, o->err)
GETTER(int, edge_obj_status, o->status)
GETTER(uint64_t, edge_obj_size, o->size)
GETTER(int64_t, edge_obj_content_length, o->content_length)
GETTER(sw_rbuf_t *, edge_obj_meta, o->meta)
GETTER(int64_t, edge_obj_expires_ms, o->expires_ms)
GETTER(int, edge_obj_cached, o->cache != NULL)
#undef GETTER

edge_obj_state_t edge_obj_progress(const edge_obj_t *o, uint64_t *size)
{
    edge_obj_view_t v;
    edge_obj_view(o, &v);
    *size = v.size;
    return v.state;
}

void edge_obj_view(const edge_obj_t *o, edge_obj_view_t *v)
{
    lock(o->lk);
    v->state = o->state;
    v->err = o->err;
    v->status = o->status;
    v->content_length = o->content_length;
    v->size = o->size;
    v->meta = o->meta;
    unlock(o->lk);
}

/* ---- subscribers ------------------------------------------------------------------------- */

static void unlink_sub(edge_obj_t *o, edge_sub_t *sub)
{
    if (o->dispatch_next == sub)
        o->dispatch_next = sub->_next;
    if (sub->_prev != NULL)
        sub->_prev->_next = sub->_next;
    else
        o->subs = sub->_next;
    if (sub->_next != NULL)
        sub->_next->_prev = sub->_prev;
    sub->_prev = sub->_next = NULL;
    sub->_flags &= ~(unsigned)EDGE__SUB_LINKED;
}

static void wq_unlink(edge_waker_t *w, edge_sub_t *s)
{
    if (s->_wprev != NULL)
        s->_wprev->_wnext = s->_wnext;
    else
        w->head = s->_wnext;
    if (s->_wnext != NULL)
        s->_wnext->_wprev = s->_wprev;
    else
        w->tail = s->_wprev;
    s->_wprev = s->_wnext = NULL;
    s->_flags &= ~(unsigned)EDGE__SUB_QUEUED;
    w->n--;
}

/* Whether `s` is called right here, on the filler's thread, rather than woken on its own loop. */
static int is_local(const edge_sub_t *s, pthread_t self)
{
    return s->waker == NULL || pthread_equal(s->waker->thread, self);
}

/* Records that `s` is owed `what` (EDGE__SUB_DATA or _DONE with `err`) and wakes its loop. */
static void owe(edge_sub_t *s, unsigned what, int err)
{
    edge_waker_t *w = s->waker;
    s->_flags |= what;
    if (what & EDGE__SUB_DONE)
        s->_err = err;
    if (!(s->_flags & EDGE__SUB_QUEUED)) {
        s->_wprev = w->tail;
        s->_wnext = NULL;
        if (w->tail != NULL)
            w->tail->_wnext = s;
        else
            w->head = s;
        w->tail = s;
        w->n++;
        s->_flags |= EDGE__SUB_QUEUED;
    }
    /* uv_async_send() coalesces too, but this spares the syscall per append and subscriber. */
    if (!w->kicked) {
        w->kicked = 1;
        w->kick(w->kick_data);
    }
}

/* Tells every subscriber that bytes arrived. Called with the lock held; returns with it released.
 * The lock is dropped around each local callback, which may unsubscribe any local sub, while other
 * threads may unsubscribe theirs: so the next sub to visit lives in the object, and unlink_sub()
 * moves it on. */
static void dispatch_data(edge_obj_t *o)
{
    pthread_t self = pthread_self();
    edge_obj_ref(o);
    o->in_dispatch++;
    for (edge_sub_t *s = o->subs; s != NULL; s = o->dispatch_next) {
        o->dispatch_next = s->_next;
        if (!is_local(s, self)) {
            owe(s, EDGE__SUB_DATA, 0);
            continue;
        }
        unlock(o->lk);
        s->on_data(s, o);
        lock(o->lk);
    }
    o->dispatch_next = NULL;
    o->in_dispatch--;
    unlock(o->lk);
    edge_obj_unref(o);
}

/* Calls on_done on every subscriber, each unsubscribed first; `o` stays alive throughout. Called
 * with the lock held; returns with it released. */
static void notify_done(edge_obj_t *o, int err)
{
    pthread_t self = pthread_self();
    edge_sub_t *s;
    edge_obj_ref(o);
    o->in_dispatch++;
    while ((s = o->subs) != NULL) {
        unlink_sub(o, s);
        if (!is_local(s, self)) {
            /* A DATA still owed is folded into this: on_done reads to the end anyway. */
            owe(s, EDGE__SUB_DONE, err);
            continue;
        }
        unlock(o->lk);
        s->_obj = NULL;
        s->on_done(s, o, err);
        lock(o->lk);
    }
    o->in_dispatch--;
    unlock(o->lk);
    edge_obj_unref(o);
}

int edge_obj_subscribe(edge_obj_t *o, edge_sub_t *sub)
{
    if (sub->_obj != NULL)
        return EDGE_ERR_STATE;
    if (sub->waker != NULL && sub->waker->lk != o->lk)
        return EDGE_ERR_INVAL;
    lock(o->lk);
    if (o->state != EDGE_OBJ_FILLING) {
        unlock(o->lk);
        return EDGE_ERR_STATE;
    }
    sub->_prev = NULL;
    sub->_next = o->subs;
    if (o->subs != NULL)
        o->subs->_prev = sub;
    o->subs = sub;
    sub->_flags = EDGE__SUB_LINKED;
    sub->_wprev = sub->_wnext = NULL;
    sub->_obj = o;
    unlock(o->lk);
    return 0;
}

void edge_obj_unsubscribe(edge_sub_t *sub)
{
    edge_obj_t *o = sub->_obj;
    if (o == NULL)
        return;
    lock(o->lk);
    if (sub->_flags & EDGE__SUB_LINKED)
        unlink_sub(o, sub);
    if (sub->_flags & EDGE__SUB_QUEUED)
        wq_unlink(sub->waker, sub);
    sub->_flags = 0;
    unlock(o->lk);
    sub->_obj = NULL;
}

/* ---- filling ----------------------------------------------------------------------------- */

/* Fails a FILLING object. Called with the lock held; returns with it released. */
static void fail_locked(edge_obj_t *o, int err, int64_t now_ms)
{
    o->state = EDGE_OBJ_FAILED;
    o->err = err < 0 ? err : EDGE_ERR_UPSTREAM;
    edge_cache_t *c = o->cache;
    if (c != NULL) {
        index_remove(c, o, REASON_OTHER);
        edge_obj_t *s = o->stale;
        /* Put the stale copy back so the next lookup can fall back again, unless a newer object
         * already took the key. */
        if (s != NULL && s->cache == NULL && now_ms < s->stale_until_ms &&
            *find_slot(c, s->key, s->keylen, s->hash) == NULL) {
            index_add(c, s);
            evict_to_budget(c);
        }
    }
    notify_done(o, o->err);
}

int edge_obj_set_response(edge_obj_t *o, int status, int64_t content_length, const edge_ttl_t *ttl,
                          sw_rbuf_t *meta, int64_t now_ms)
{
    lock(o->lk);
    if (o->state != EDGE_OBJ_FILLING || o->has_response || o->in_dispatch) {
        unlock(o->lk);
        return EDGE_ERR_STATE;
    }
    o->has_response = 1;
    o->status = status;
    o->content_length = content_length;
    if (meta != NULL)
        o->meta = sw_rbuf_ref(meta);
    o->expires_ms = now_ms + (ttl->fresh_ms > 0 ? ttl->fresh_ms : 0);
    o->stale_until_ms = o->expires_ms + (ttl->stale_if_error_ms > 0 ? ttl->stale_if_error_ms : 0);

    /* The caller holds a reference, so index_remove() cannot free `o` here. */
    edge_cache_t *c = o->cache;
    if (!ttl->cacheable || ttl->is_private || ttl->fresh_ms <= 0) {
        if (c != NULL)
            index_remove(c, o, REASON_OTHER);
        /* A private answer is for the fetcher alone: the collapsed waiters must ask for their own.
         */
        if (ttl->is_private) {
            notify_done(o, EDGE_ERR_UNCACHEABLE);
            return 0;
        }
    } else if (c != NULL && content_length > 0 &&
               (uint64_t)content_length > c->cfg.max_object_bytes) {
        index_remove(c, o, REASON_TOO_BIG);
    }
    unlock(o->lk);
    return 0;
}

int edge_obj_append(edge_obj_t *o, sw_rbuf_t *b, size_t off, size_t len)
{
    int rv = 0;
    lock(o->lk);
    if (o->state != EDGE_OBJ_FILLING || !o->has_response || o->in_dispatch) {
        rv = EDGE_ERR_STATE;
        goto out;
    }
    if (len == 0)
        goto out;
    if (o->content_length >= 0 && o->size + len > (uint64_t)o->content_length) {
        rv = EDGE_ERR_TOO_BIG;
        goto out;
    }
    if (o->nchunks == o->chunks_cap) {
        size_t cap = o->chunks_cap ? o->chunks_cap * 2 : 8;
        edge__chunk_t *nc = realloc(o->chunks, cap * sizeof(*nc));
        if (nc == NULL) {
            rv = EDGE_ERR_NOMEM;
            goto out;
        }
        o->chunks = nc;
        o->chunks_cap = cap;
    }
    o->chunks[o->nchunks++] = (edge__chunk_t){sw_rbuf_ref(b), off, len, o->size};
    o->size += len;

    edge_cache_t *c = o->cache;
    if (c != NULL) {
        if (o->size > c->cfg.max_object_bytes) {
            index_remove(c, o, REASON_TOO_BIG);
        } else {
            c->used += len;
            o->charge += len;
            if (o->queue != 0)
                c->policy.q[o->queue - 1].bytes += len;
            evict_to_budget(c);
        }
    }
    dispatch_data(o);
    return 0;
out:
    unlock(o->lk);
    return rv;
}

int edge_obj_finish(edge_obj_t *o, int64_t now_ms)
{
    lock(o->lk);
    if (o->state != EDGE_OBJ_FILLING || o->in_dispatch) {
        unlock(o->lk);
        return EDGE_ERR_STATE;
    }
    if (!o->has_response || (o->content_length >= 0 && o->size != (uint64_t)o->content_length)) {
        fail_locked(o, EDGE_ERR_TRUNCATED, now_ms);
        return EDGE_ERR_TRUNCATED;
    }
    o->state = EDGE_OBJ_COMPLETE;
    o->content_length = (int64_t)o->size;
    /* Once complete, the predecessor is no longer needed as a fallback. */
    edge_obj_unref(o->stale);
    o->stale = NULL;
    notify_done(o, 0);
    return 0;
}

int edge_obj_fail(edge_obj_t *o, int err, int64_t now_ms)
{
    lock(o->lk);
    if (o->state != EDGE_OBJ_FILLING || o->in_dispatch) {
        unlock(o->lk);
        return EDGE_ERR_STATE;
    }
    fail_locked(o, err, now_ms);
    return 0;
}

edge_obj_t *edge_obj_stale(edge_obj_t *o, int64_t now_ms)
{
    edge_obj_t *r = NULL;
    lock(o->lk);
    edge_obj_t *s = o->stale;
    if (s != NULL && s->state == EDGE_OBJ_COMPLETE && now_ms < s->stale_until_ms)
        r = edge_obj_ref(s);
    unlock(o->lk);
    return r;
}

/* ---- reading ----------------------------------------------------------------------------- */

/* Under the lock. The rbuf it yields outlives the lock: chunks are only added until the object is
 * freed, and a realloc of the array moves the entries, not the buffers. */
static int read_locked(const edge_obj_t *o, uint64_t off, sw_rbuf_t **b, size_t *boff, size_t *len)
{
    if (off >= o->size)
        return 0;
    /* The last chunk whose start is <= off. */
    size_t lo = 0, hi = o->nchunks;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->chunks[mid].at <= off)
            lo = mid;
        else
            hi = mid;
    }
    const edge__chunk_t *ch = &o->chunks[lo];
    size_t skip = (size_t)(off - ch->at);
    *b = ch->buf;
    *boff = ch->off + skip;
    *len = ch->len - skip;
    return 1;
}

int edge_obj_read(const edge_obj_t *o, uint64_t off, sw_rbuf_t **b, size_t *boff, size_t *len)
{
    lock(o->lk);
    int rv = read_locked(o, off, b, boff, len);
    unlock(o->lk);
    return rv;
}

int edge_obj_chunks(const edge_obj_t *o, uint64_t off, uint64_t len,
                    int (*cb)(void *data, sw_rbuf_t *b, size_t boff, size_t len), void *data)
{
    uint64_t size;
    edge_obj_progress(o, &size);
    if (off >= size)
        return 0;
    /* The walk ends at what had arrived on entry; `cb` runs unlocked. */
    uint64_t end = len >= size - off ? size : off + len;
    sw_rbuf_t *b;
    size_t boff, n;
    while (off < end && edge_obj_read(o, off, &b, &boff, &n)) {
        if (n > end - off)
            n = (size_t)(end - off);
        int rv = cb(data, b, boff, n);
        if (rv != 0)
            return rv;
        off += n;
    }
    return 0;
}

/* ---- wakers ------------------------------------------------------------------------------ */

int edge_waker_new(edge_waker_t **out, edge_cache_t *c, void (*kick)(void *data), void *kick_data)
{
    edge_waker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return EDGE_ERR_NOMEM;
    w->lk = lock_ref(c->lk);
    w->thread = pthread_self();
    w->kick = kick;
    w->kick_data = kick_data;
    *out = w;
    return 0;
}

void edge_waker_run(edge_waker_t *w)
{
    edge__lock_t *lk = w->lk;
    lock(lk);
    w->kicked = 0;
    for (size_t n = w->n; n > 0 && w->head != NULL; n--) {
        edge_sub_t *s = w->head;
        wq_unlink(w, s);
        unsigned f = s->_flags;
        int err = s->_err;
        s->_flags &= ~(unsigned)(EDGE__SUB_DATA | EDGE__SUB_DONE);
        /* The subscriber's own reference keeps the object alive, but its callback may drop it. */
        edge_obj_t *o = edge_obj_ref(s->_obj);
        unlock(lk);
        if (f & EDGE__SUB_DONE) {
            s->_obj = NULL;
            s->on_done(s, o, err);
        } else {
            s->on_data(s, o);
        }
        edge_obj_unref(o);
        lock(lk);
    }
    if (w->head != NULL && !w->kicked) {
        w->kicked = 1;
        w->kick(w->kick_data);
    }
    unlock(lk);
}

void edge_waker_free(edge_waker_t *w)
{
    if (w == NULL)
        return;
    lock(w->lk);
    assert(w->head == NULL);
    unlock(w->lk);
    lock_unref(w->lk);
    free(w);
}
