/*
 * test_cache_threads.c: one edge_cache_t shared by four threads, each running its own uv loop, as
 * the edge's workers do. A filler thread fetches objects (appends chunks of a known pattern on a
 * 1 ms timer, then finishes or fails them) while three reader threads look the same keys up and
 * subscribe through their own waker, read while the filler appends, unsubscribe at random moments
 * (from their timer and from inside on_data) and hit or miss objects that the small budget keeps
 * evicting. The filler subscribes too, through its own waker and with none, for the direct path.
 *
 * Every subscriber checks that each of its callbacks runs on its own thread, that it reads every
 * byte of the object exactly once and in order (the pattern is a function of key and offset), and
 * that on_done comes exactly once and last. ASan finds leaks and use-after-free; TSan (in
 * scripts/test.sh) finds races. Failures in the threads abort: cmocka's asserts only work on the
 * test's own thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "edge/cache.h"

#define READERS        3
#define ROUNDS         150 /* objects the filler fetches */
#define IN_FLIGHT      3   /* objects filling at once */
#define SUBS_PER_VISIT 3
#define WATCHDOG_MS    60000

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static edge_cache_t *cache;
static atomic_int published; /* keys 0..published-1 exist (or existed) */
static atomic_int filler_done;

typedef struct reader_sub reader_sub_t;

typedef struct worker {
    uv_thread_t tid;  /* written by the main thread */
    uv_thread_t self; /* written by the worker */
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t tick, watchdog;
    edge_waker_t *waker;
    uint64_t rng;
    int next_key;
    reader_sub_t *subs_head; /* subscribers not yet done nor cancelled */
    int live;
    int closing;
    /* counters, read by the main thread after the join */
    unsigned subs, done_ok, done_err, cancelled, in_callback_cancels, hits, misses, remote_data;
    uint64_t bytes;
} worker_t;

struct reader_sub {
    edge_sub_t sub;
    worker_t *w;
    reader_sub_t *prev, *next; /* in w->subs_head */
    edge_obj_t *obj;           /* our reference */
    int key;
    uint64_t off;
    int done;
};

static worker_t filler;

static uint64_t rnd(worker_t *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

static uint8_t pattern(int key, uint64_t i)
{
    return (uint8_t)(key * 131 + i * 7 + (i >> 9));
}

static uint64_t total_of(int key)
{
    return 2000 + (uint64_t)(key * 7919) % 14000;
}

static void key_of(int key, char *buf, size_t len)
{
    snprintf(buf, len, "/live/t/%d.m4s", key);
}

static int verify_piece(void *data, sw_rbuf_t *b, size_t boff, size_t len)
{
    reader_sub_t *s = data;
    for (size_t i = 0; i < len; i++)
        CHECK(b->data[boff + i] == pattern(s->key, s->off + i));
    s->off += len;
    s->w->bytes += len;
    return 0;
}

/* Reads from the subscriber's offset to what has arrived; returns the state seen with that size. */
static edge_obj_state_t drain(reader_sub_t *s)
{
    uint64_t size;
    edge_obj_state_t st = edge_obj_progress(s->obj, &size);
    CHECK(size >= s->off);
    CHECK(edge_obj_chunks(s->obj, s->off, size - s->off, verify_piece, s) == 0);
    CHECK(s->off == size);
    return st;
}

static void sub_release(reader_sub_t *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        s->w->subs_head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->w->live--;
    edge_obj_unref(s->obj);
    free(s);
}

static void on_data(edge_sub_t *sub, edge_obj_t *o)
{
    reader_sub_t *s = sub->data;
    uv_thread_t self = uv_thread_self();
    CHECK(uv_thread_equal(&self, &s->w->self));
    CHECK(o == s->obj && !s->done);
    drain(s);
    if (s->w != &filler)
        s->w->remote_data++;
    /* Leave in the middle of a delivery, as a client that hangs up does. */
    if (rnd(s->w) % 40 == 0) {
        edge_obj_unsubscribe(sub);
        s->w->cancelled++;
        s->w->in_callback_cancels++;
        sub_release(s);
    }
}

static void on_done(edge_sub_t *sub, edge_obj_t *o, int err)
{
    reader_sub_t *s = sub->data;
    uv_thread_t self = uv_thread_self();
    CHECK(uv_thread_equal(&self, &s->w->self));
    CHECK(o == s->obj && !s->done);
    s->done = 1;
    edge_obj_state_t st = drain(s);
    if (err == 0) {
        CHECK(st == EDGE_OBJ_COMPLETE);
        CHECK(s->off == total_of(s->key));
        s->w->done_ok++;
    } else {
        CHECK(st == EDGE_OBJ_FAILED);
        CHECK(err == EDGE_ERR_UPSTREAM || err == EDGE_ERR_TRUNCATED);
        s->w->done_err++;
    }
    sub_release(s);
}

/* Subscribes to `o` (a reference of ours is taken) and reads what already arrived. */
static void add_sub(worker_t *w, edge_obj_t *o, int key, int with_waker)
{
    reader_sub_t *s = calloc(1, sizeof(*s));
    CHECK(s != NULL);
    s->w = w;
    s->obj = edge_obj_ref(o);
    s->key = key;
    s->sub.on_data = on_data;
    s->sub.on_done = on_done;
    s->sub.data = s;
    s->sub.waker = with_waker ? w->waker : NULL;
    w->subs++;
    w->live++;
    s->next = w->subs_head;
    if (s->next != NULL)
        s->next->prev = s;
    w->subs_head = s;
    int rv = edge_obj_subscribe(o, &s->sub);
    if (rv == EDGE_ERR_STATE) {
        /* It ended between the lookup and now: what a late request does is read it whole. */
        s->sub.on_done(&s->sub, o, edge_obj_error(o));
        return;
    }
    CHECK(rv == 0);
    drain(s);
}

/* ---- the loops --------------------------------------------------------------------------- */

static void kick(void *data)
{
    uv_async_send(data);
}

static void on_async(uv_async_t *a)
{
    worker_t *w = a->data;
    edge_waker_run(w->waker);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "test_cache_threads: not done after %d ms\n", WATCHDOG_MS);
    abort();
}

static void worker_close(worker_t *w)
{
    w->closing = 1;
    edge_waker_free(w->waker);
    uv_close((uv_handle_t *)&w->async, NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->watchdog, NULL);
}

static void worker_run(worker_t *w, uv_timer_cb on_tick)
{
    w->self = uv_thread_self();
    CHECK(uv_loop_init(&w->loop) == 0);
    CHECK(uv_async_init(&w->loop, &w->async, on_async) == 0);
    w->async.data = w;
    CHECK(edge_waker_new(&w->waker, cache, kick, &w->async) == 0);
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 1, 1);
    uv_timer_init(&w->loop, &w->watchdog);
    uv_timer_start(&w->watchdog, on_watchdog, WATCHDOG_MS, 0);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&w->loop) == 0);
}

/* The filler: up to IN_FLIGHT objects at once, one chunk each per tick. */
typedef struct filling {
    edge_obj_t *o;
    int key;
    int fail_at; /* chunk index at which to fail, or -1 */
    int chunks;
} filling_t;

static filling_t active[IN_FLIGHT];
static int started;

static void fill_start(worker_t *w, filling_t *f)
{
    char key[64];
    edge_obj_t *o;
    edge_ttl_t ttl = {1, 0, 0, 60000, 0};
    f->key = started++;
    key_of(f->key, key, sizeof(key));
    CHECK(edge_cache_get(cache, key, 0, &o) == EDGE_CACHE_MISS);
    f->o = o;
    f->chunks = 0;
    f->fail_at = rnd(w) % 8 == 0 ? (int)(rnd(w) % 6) : -1;
    /* Half announce their length, half are "chunked". */
    int64_t clen = f->key % 2 ? (int64_t)total_of(f->key) : -1;
    CHECK(edge_obj_set_response(o, 200, clen, &ttl, NULL, 0) == 0);
    add_sub(w, o, f->key, 1);
    add_sub(w, o, f->key, 0);
    atomic_store(&published, started);
}

static void fill_step(worker_t *w, filling_t *f)
{
    uint64_t size, total = total_of(f->key);
    edge_obj_state_t st = edge_obj_progress(f->o, &size);
    CHECK(st == EDGE_OBJ_FILLING);
    if (f->chunks == f->fail_at) {
        CHECK(edge_obj_fail(f->o, EDGE_ERR_UPSTREAM, 0) == 0);
        goto ended;
    }
    if (size == total) {
        CHECK(edge_obj_finish(f->o, 0) == 0);
        goto ended;
    }
    /* A chunk sits at a random offset inside a bigger buffer, as a body piece in a read buffer. */
    size_t len = 1 + rnd(w) % 1500, pad = rnd(w) % 64;
    if (len > total - size)
        len = (size_t)(total - size);
    sw_rbuf_t *b = sw_rbuf_new(pad + len);
    CHECK(b != NULL);
    for (size_t i = 0; i < len; i++)
        b->data[pad + i] = pattern(f->key, size + i);
    b->len = pad + len;
    CHECK(edge_obj_append(f->o, b, pad, len) == 0);
    sw_rbuf_unref(b);
    f->chunks++;
    return;
ended:
    edge_obj_unref(f->o);
    f->o = NULL;
}

static void on_filler_tick(uv_timer_t *t)
{
    worker_t *w = t->data;
    int busy = 0;
    for (int i = 0; i < IN_FLIGHT; i++) {
        if (active[i].o == NULL && started < ROUNDS)
            fill_start(w, &active[i]);
        if (active[i].o != NULL) {
            fill_step(w, &active[i]);
            busy = 1;
        }
    }
    if (!busy && started == ROUNDS)
        atomic_store(&filler_done, 1);
    if (!busy && started == ROUNDS && w->live == 0 && !w->closing)
        worker_close(w);
}

static void filler_main(void *arg)
{
    worker_t *w = arg;
    worker_run(w, on_filler_tick);
}

/* A reader visits every published key once, and recent ones again: a hit is read whole, a filling
 * object gets a few subscribers, a miss (the object was evicted or failed) makes this thread a
 * fetcher that fails at once. Each tick also drops a random subscriber now and then. */
static worker_t readers[READERS];

static void visit(worker_t *w, int k)
{
    char key[64];
    edge_obj_t *o;
    key_of(k, key, sizeof(key));
    int rv = edge_cache_get(cache, key, 0, &o);
    CHECK(rv > 0);
    if (rv == EDGE_CACHE_MISS) {
        w->misses++;
        CHECK(edge_obj_fail(o, EDGE_ERR_UPSTREAM, 0) == 0);
    } else if (rv == EDGE_CACHE_HIT) {
        reader_sub_t s = {.w = w, .obj = o, .key = k};
        w->hits++;
        CHECK(drain(&s) == EDGE_OBJ_COMPLETE);
        CHECK(s.off == total_of(k));
    } else {
        for (int i = 0; i < SUBS_PER_VISIT; i++)
            add_sub(w, o, k, 1);
    }
    edge_obj_unref(o);
}

static void on_reader_tick(uv_timer_t *t)
{
    worker_t *w = t->data;
    int upto = atomic_load(&published);
    for (int n = 0; n < 2 && w->next_key < upto; n++)
        visit(w, w->next_key++);
    /* And a recent key again: complete by now, evicted, or still filling. */
    if (upto > 0 && rnd(w) % 2 == 0)
        visit(w, upto - 1 - (int)(rnd(w) % (upto < 8 ? (uint64_t)upto : 8)));
    /* A client that goes away between two deliveries, maybe while the filler appends. */
    if (w->live > 0 && rnd(w) % 4 == 0) {
        reader_sub_t *s = w->subs_head;
        for (uint64_t n = rnd(w) % (uint64_t)w->live; n > 0; n--)
            s = s->next;
        edge_obj_unsubscribe(&s->sub);
        w->cancelled++;
        sub_release(s);
    }
    if (atomic_load(&filler_done) && w->next_key == atomic_load(&published) && w->live == 0 &&
        !w->closing)
        worker_close(w);
}

static void reader_main(void *arg)
{
    worker_t *w = arg;
    worker_run(w, on_reader_tick);
}

static void test_threads(void **state)
{
    edge_cache_config_t cfg;
    edge_cache_stats_t st;
    (void)state;

    edge_cache_config_init(&cfg);
    cfg.budget_bytes = 40 << 10; /* about four objects: evictions all the time */
    cfg.max_object_bytes = 14 << 10;
    assert_int_equal(edge_cache_new(&cache, &cfg), 0);

    filler.rng = 0x9e3779b97f4a7c15ull;
    assert_int_equal(uv_thread_create(&filler.tid, filler_main, &filler), 0);
    for (int i = 0; i < READERS; i++) {
        readers[i].rng = 0x2545f4914f6cdd1dull * (uint64_t)(i + 1);
        assert_int_equal(uv_thread_create(&readers[i].tid, reader_main, &readers[i]), 0);
    }
    assert_int_equal(uv_thread_join(&filler.tid), 0);
    for (int i = 0; i < READERS; i++)
        assert_int_equal(uv_thread_join(&readers[i].tid), 0);

    unsigned subs = filler.subs, ok = filler.done_ok, err = filler.done_err;
    unsigned cancelled = filler.cancelled, hits = 0, misses = 0, remote = 0;
    for (int i = 0; i < READERS; i++) {
        worker_t *w = &readers[i];
        printf("reader %d: %u subs, %u complete, %u failed, %u cancelled (%u in on_data), %u hits, "
               "%u misses, %u woken on_data, %llu bytes checked\n",
               i, w->subs, w->done_ok, w->done_err, w->cancelled, w->in_callback_cancels, w->hits,
               w->misses, w->remote_data, (unsigned long long)w->bytes);
        subs += w->subs;
        ok += w->done_ok;
        err += w->done_err;
        cancelled += w->cancelled;
        hits += w->hits;
        misses += w->misses;
        remote += w->remote_data;
    }
    edge_cache_stats(cache, &st);
    printf("filler: %u subs, %u complete, %u failed; cache: %llu evictions, %llu too big\n",
           filler.subs, filler.done_ok, filler.done_err, (unsigned long long)st.evictions,
           (unsigned long long)st.too_big);
    /* Every subscriber ended exactly one way. */
    assert_int_equal(subs, ok + err + cancelled);
    assert_true(ok > 0 && err > 0 && cancelled > 0);
    assert_true(hits > 0 && misses > 0 && remote > 0);
    assert_true(st.evictions > 0 && st.too_big > 0);
    edge_cache_free(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
