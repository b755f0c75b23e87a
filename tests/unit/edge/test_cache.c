/*
 * test_cache.c: edge/cache.h. Eviction orders of both policies, the byte budget with FILLING
 * objects, references outliving eviction, collapsing and read-while-write callbacks, failures,
 * TTL and stale-if-error on a fake clock, purge, the object size limit, and wakers (subscribers of
 * another loop).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "edge/cache.h"
#include "edge_int.h"

#define BODY 1000

static sw_rbuf_t *body;

static int setup(void **state)
{
    body = sw_rbuf_new(BODY);
    for (size_t i = 0; i < BODY; i++)
        body->data[i] = (uint8_t)i;
    body->len = BODY;
    return 0;
}

static int teardown(void **state)
{
    sw_rbuf_unref(body);
    return 0;
}

static edge_ttl_t fresh(int64_t ms, int64_t stale_ms)
{
    edge_ttl_t t = {1, 0, 0, ms, stale_ms};
    return t;
}

/* What one object of a 2-character key and BODY bytes costs in the budget. */
static size_t charge(void)
{
    return sizeof(edge_obj_t) + 2 + BODY;
}

static edge_cache_t *mk(edge_policy_kind_t kind, size_t budget)
{
    edge_cache_config_t cfg;
    edge_cache_t *c = NULL;
    edge_cache_config_init(&cfg);
    cfg.policy = kind;
    cfg.budget_bytes = budget;
    assert_int_equal(edge_cache_new(&c, &cfg), 0);
    return c;
}

/* A complete miss-fetch-finish cycle; returns the object with the caller's reference. */
static edge_obj_t *fill(edge_cache_t *c, const char *key, int64_t now, int64_t ttl_ms)
{
    edge_obj_t *o;
    edge_ttl_t t = fresh(ttl_ms, 0);
    assert_int_equal(edge_cache_get(c, key, now, &o), EDGE_CACHE_MISS);
    assert_int_equal(edge_obj_set_response(o, 200, BODY, &t, NULL, now), 0);
    assert_int_equal(edge_obj_append(o, body, 0, BODY), 0);
    assert_int_equal(edge_obj_finish(o, now), 0);
    return o;
}

static int get(edge_cache_t *c, const char *key, int64_t now)
{
    edge_obj_t *o;
    int rv = edge_cache_get(c, key, now, &o);
    if (rv == EDGE_CACHE_MISS) { /* do not leave a FILLING object behind */
        edge_ttl_t t = fresh(60000, 0);
        edge_obj_set_response(o, 200, BODY, &t, NULL, now);
        edge_obj_append(o, body, 0, BODY);
        edge_obj_finish(o, now);
    }
    edge_obj_unref(o);
    return rv;
}

static void test_config(void **state)
{
    edge_cache_config_t cfg;
    edge_cache_t *c = NULL;
    edge_cache_config_init(&cfg);
    assert_int_equal(cfg.policy, EDGE_POLICY_LRU);
    cfg.budget_bytes = 0;
    assert_int_equal(edge_cache_new(&c, &cfg), EDGE_ERR_INVAL);
    cfg.budget_bytes = 1000;
    cfg.policy = (edge_policy_kind_t)7;
    assert_int_equal(edge_cache_new(&c, &cfg), EDGE_ERR_INVAL);
    edge_cache_free(NULL);
    assert_string_equal(edge_strerror(EDGE_ERR_TOKEN_EXPIRED), "signed URL expired");
    assert_string_equal(edge_strerror(12345), "unknown error");
}

static void test_lru_order(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_LRU, 3 * charge());
    edge_obj_t *a = fill(c, "/a", 0, 60000), *b = fill(c, "/b", 0, 60000);
    edge_obj_t *d = fill(c, "/c", 0, 60000);
    edge_obj_unref(d);
    assert_int_equal(get(c, "/a", 1), EDGE_CACHE_HIT); /* a is now the most recent */
    d = fill(c, "/d", 2, 60000);                       /* evicts b, the least recent */
    assert_true(edge_obj_cached(a));
    assert_false(edge_obj_cached(b));
    edge_cache_stats_t st;
    edge_cache_stats(c, &st);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.objects, 3);
    assert_true(st.bytes <= 3 * charge());
    assert_int_equal(get(c, "/c", 3), EDGE_CACHE_HIT);
    assert_int_equal(get(c, "/b", 3), EDGE_CACHE_MISS); /* refills b, evicts a */
    assert_false(edge_obj_cached(a));
    edge_obj_unref(a);
    edge_obj_unref(b);
    edge_obj_unref(d);
    edge_cache_free(c);
}

/* Ten objects fit; the small FIFO holds one. Objects hit while in the small FIFO move to main,
 * a key coming back from the ghost goes straight to main, and a scan of one-hit objects passes
 * through the small FIFO without touching main. LRU loses all three to the same scan. */
static void run_scan(edge_policy_kind_t kind, int *survivors)
{
    edge_cache_t *c = mk(kind, 10 * charge());
    char key[3] = "/0";
    for (int i = 0; i < 10; i++) {
        key[1] = (char)('0' + i);
        assert_int_equal(get(c, key, 0), EDGE_CACHE_MISS);
    }
    assert_int_equal(get(c, "/1", 1), EDGE_CACHE_HIT);
    assert_int_equal(get(c, "/2", 1), EDGE_CACHE_HIT);
    assert_int_equal(get(c, "/a", 2), EDGE_CACHE_MISS); /* evicts /0: freq 0, to the ghost */
    assert_int_equal(get(c, "/b", 2), EDGE_CACHE_MISS);
    assert_int_equal(get(c, "/0", 3), EDGE_CACHE_MISS); /* back from the ghost */
    for (int i = 0; i < 26; i++) {                      /* a scan of one-hit wonders */
        key[1] = (char)('A' + i);
        assert_int_equal(get(c, key, 4), EDGE_CACHE_MISS);
    }
    *survivors = 0;
    const char *hot[] = {"/0", "/1", "/2"};
    for (int i = 0; i < 3; i++)
        *survivors += get(c, hot[i], 5) == EDGE_CACHE_HIT;
    edge_cache_free(c);
}

static void test_s3fifo_order(void **state)
{
    int s3, lru;
    run_scan(EDGE_POLICY_S3FIFO, &s3);
    run_scan(EDGE_POLICY_LRU, &lru);
    assert_int_equal(s3, 3);
    assert_int_equal(lru, 0);

    /* Frequency in main: with main full, the entry hit most survives the longest. */
    edge_cache_t *c = mk(EDGE_POLICY_S3FIFO, 4 * charge());
    assert_int_equal(get(c, "/x", 0), EDGE_CACHE_MISS);
    assert_int_equal(get(c, "/x", 0), EDGE_CACHE_HIT);
    for (int i = 0; i < 20; i++) {
        char key[3] = {'/', (char)('a' + i), 0};
        get(c, key, 1);
        get(c, "/x", 1);
    }
    assert_int_equal(get(c, "/x", 2), EDGE_CACHE_HIT);
    edge_cache_free(c);
}

/* ---- budget, FILLING objects, references ---- */

static void test_budget_filling(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_LRU, 3 * charge());
    edge_obj_t *a = fill(c, "/a", 0, 60000), *b = fill(c, "/b", 0, 60000), *f;
    edge_ttl_t t = fresh(60000, 0);
    edge_cache_stats_t st;

    assert_int_equal(edge_cache_get(c, "/f", 1, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_obj_set_response(f, 200, -1, &t, NULL, 1), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(edge_obj_append(f, body, 0, BODY), 0);
        edge_cache_stats(c, &st);
        assert_true(st.bytes <= 3 * charge()); /* FILLING bytes count as they grow */
    }
    /* 3 KB of f plus its overhead leave room for nothing else. */
    assert_false(edge_obj_cached(a));
    assert_false(edge_obj_cached(b));
    assert_true(edge_obj_cached(f));
    assert_int_equal(edge_obj_size(f), 3 * BODY);

    /* The evicted objects are still whole for the readers that hold them. */
    sw_rbuf_t *rb;
    size_t off, len;
    assert_int_equal(edge_obj_read(a, 10, &rb, &off, &len), 1);
    assert_ptr_equal(rb, body);
    assert_int_equal(off, 10);
    assert_int_equal(len, BODY - 10);
    assert_int_equal(rb->data[off], 10);
    edge_obj_unref(a);
    edge_obj_unref(b);

    assert_int_equal(edge_obj_finish(f, 2), 0);
    assert_int_equal(edge_obj_content_length(f), 3 * BODY);
    edge_cache_free(c); /* f outlives its cache */
    assert_false(edge_obj_cached(f));
    assert_int_equal(edge_obj_read(f, 2 * BODY + 5, &rb, &off, &len), 1);
    assert_int_equal(off, 5);
    assert_int_equal(edge_obj_read(f, 3 * BODY, &rb, &off, &len), 0);
    edge_obj_unref(f);
}

typedef struct pieces {
    uint64_t total;
    int n;
    size_t first_off;
} pieces_t;

static int on_piece(void *data, sw_rbuf_t *b, size_t boff, size_t len)
{
    pieces_t *p = data;
    if (p->n++ == 0)
        p->first_off = boff;
    p->total += len;
    return p->n == 100 ? 7 : 0;
}

static void test_chunks(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_LRU, 1 << 20);
    edge_obj_t *o;
    edge_ttl_t t = fresh(1000, 0);
    assert_int_equal(edge_cache_get(c, "/k", 0, &o), EDGE_CACHE_MISS);
    assert_int_equal(edge_obj_append(o, body, 0, 10), EDGE_ERR_STATE); /* no response yet */
    assert_int_equal(edge_obj_set_response(o, 200, 250, &t, NULL, 0), 0);
    assert_int_equal(edge_obj_set_response(o, 200, 250, &t, NULL, 0), EDGE_ERR_STATE);
    for (int i = 0; i < 5; i++)
        assert_int_equal(edge_obj_append(o, body, (size_t)i * 100, 50), 0);
    assert_int_equal(edge_obj_append(o, body, 0, 0), 0);
    assert_int_equal(edge_obj_append(o, body, 0, 1), EDGE_ERR_TOO_BIG);

    pieces_t p = {0};
    assert_int_equal(edge_obj_chunks(o, 75, 100, on_piece, &p), 0);
    assert_int_equal(p.total, 100);
    assert_int_equal(p.n, 3); /* 75..99, 100..149, 150..174 */
    assert_int_equal(p.first_off, 125);
    memset(&p, 0, sizeof(p));
    assert_int_equal(edge_obj_chunks(o, 0, UINT64_MAX, on_piece, &p), 0);
    assert_int_equal(p.total, 250);
    memset(&p, 0, sizeof(p));
    assert_int_equal(edge_obj_chunks(o, 250, UINT64_MAX, on_piece, &p), 0);
    assert_int_equal(p.n, 0);

    /* Many small chunks: the walk can stop early and says so. */
    edge_obj_t *m;
    edge_ttl_t u = fresh(1000, 0);
    assert_int_equal(edge_cache_get(c, "/m", 0, &m), EDGE_CACHE_MISS);
    assert_int_equal(edge_obj_set_response(m, 200, -1, &u, body, 0), 0);
    assert_ptr_equal(edge_obj_meta(m), body);
    for (int i = 0; i < 300; i++)
        assert_int_equal(edge_obj_append(m, body, (size_t)i % BODY, 1), 0);
    memset(&p, 0, sizeof(p));
    assert_int_equal(edge_obj_chunks(m, 0, UINT64_MAX, on_piece, &p), 7);
    sw_rbuf_t *rb;
    size_t off, len;
    assert_int_equal(edge_obj_read(m, 299, &rb, &off, &len), 1);
    assert_int_equal(off, 299);
    assert_int_equal(len, 1);
    assert_int_equal(edge_obj_finish(m, 1), 0);
    assert_int_equal(edge_obj_finish(m, 1), EDGE_ERR_STATE);

    assert_int_equal(edge_obj_finish(o, 1), 0);
    edge_obj_unref(o);
    edge_obj_unref(m);
    edge_cache_free(c);
}

/* ---- collapsing and read-while-write ---- */

typedef struct waiter {
    edge_sub_t sub;
    char log[64];
    uint64_t seen; /* bytes read so far */
    int done, err;
    edge_sub_t *victim; /* unsubscribed from on_data, if set */
} waiter_t;

static void w_log(waiter_t *w, char ch)
{
    size_t n = strlen(w->log);
    if (n + 1 < sizeof(w->log))
        w->log[n] = ch;
}

static void w_drain(waiter_t *w, edge_obj_t *o)
{
    sw_rbuf_t *b;
    size_t off, len;
    while (edge_obj_read(o, w->seen, &b, &off, &len))
        w->seen += len;
}

static void on_data(edge_sub_t *sub, edge_obj_t *o)
{
    waiter_t *w = sub->data;
    w_drain(w, o);
    w_log(w, 'd');
    if (w->victim != NULL)
        edge_obj_unsubscribe(w->victim);
}

static void on_done(edge_sub_t *sub, edge_obj_t *o, int err)
{
    waiter_t *w = sub->data;
    w_drain(w, o);
    w_log(w, err == 0 ? 'D' : 'F');
    w->done++;
    w->err = err;
    assert_null(sub->_obj);
}

static void waiter_init(waiter_t *w)
{
    memset(w, 0, sizeof(*w));
    w->sub.on_data = on_data;
    w->sub.on_done = on_done;
    w->sub.data = w;
}

static void test_collapse(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_S3FIFO, 1 << 20);
    edge_obj_t *f, *o1, *o2;
    waiter_t w1, w2, w3;
    edge_ttl_t t = fresh(2000, 0);
    edge_cache_stats_t st;

    waiter_init(&w1);
    waiter_init(&w2);
    waiter_init(&w3);
    assert_int_equal(edge_cache_get(c, "/seg", 0, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_cache_get(c, "/seg", 1, &o1), EDGE_CACHE_FILLING);
    assert_ptr_equal(o1, f);
    assert_int_equal(edge_obj_subscribe(o1, &w1.sub), 0);
    assert_int_equal(edge_obj_subscribe(o1, &w1.sub), EDGE_ERR_STATE);
    assert_int_equal(edge_obj_set_response(f, 200, -1, &t, NULL, 1), 0);
    assert_int_equal(edge_obj_append(f, body, 0, 100), 0);
    assert_int_equal(w1.seen, 100);

    /* A late subscriber finds the first chunk already there. */
    assert_int_equal(edge_cache_get(c, "/seg", 2, &o2), EDGE_CACHE_FILLING);
    assert_int_equal(edge_obj_subscribe(o2, &w2.sub), 0);
    w_drain(&w2, o2);
    assert_int_equal(w2.seen, 100);
    assert_int_equal(edge_obj_subscribe(o2, &w3.sub), 0);
    edge_obj_unsubscribe(&w3.sub); /* its client went away */
    edge_obj_unsubscribe(&w3.sub);

    assert_int_equal(edge_obj_append(f, body, 100, 200), 0);
    assert_int_equal(edge_obj_append(f, body, 300, 300), 0);
    assert_int_equal(edge_obj_finish(f, 3), 0);
    assert_string_equal(w1.log, "dddD");
    assert_string_equal(w2.log, "ddD");
    assert_string_equal(w3.log, "");
    assert_int_equal(w1.seen, 600);
    assert_int_equal(w2.seen, 600);
    assert_int_equal(edge_obj_subscribe(o2, &w3.sub), EDGE_ERR_STATE);

    edge_cache_stats(c, &st);
    assert_int_equal(st.misses, 1); /* one upstream fetch for three requests */
    assert_int_equal(st.collapsed, 2);
    assert_int_equal(get(c, "/seg", 4), EDGE_CACHE_HIT);
    edge_obj_unref(f);
    edge_obj_unref(o1);
    edge_obj_unref(o2);
    edge_cache_free(c);
}

static void test_unsubscribe_in_callback(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_LRU, 1 << 20);
    edge_obj_t *f;
    waiter_t a, b;
    edge_ttl_t t = fresh(2000, 0);

    waiter_init(&a);
    waiter_init(&b);
    assert_int_equal(edge_cache_get(c, "/p", 0, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_obj_set_response(f, 200, -1, &t, NULL, 0), 0);
    assert_int_equal(edge_obj_subscribe(f, &b.sub), 0);
    assert_int_equal(edge_obj_subscribe(f, &a.sub), 0); /* called first */
    a.victim = &b.sub;
    assert_int_equal(edge_obj_append(f, body, 0, 10), 0);
    assert_string_equal(a.log, "d");
    assert_string_equal(b.log, "");
    a.victim = NULL;
    assert_int_equal(edge_obj_finish(f, 1), 0);
    assert_string_equal(a.log, "dD");
    edge_obj_unref(f);
    edge_cache_free(c);
}

/* ---- wakers: subscribers of another loop ---- */

static int kicks;

static void count_kick(void *data)
{
    (void)data;
    kicks++;
}

static edge_waker_t *new_waker_result;
static edge_cache_t *new_waker_cache;

static void *make_waker(void *arg)
{
    (void)arg;
    assert_int_equal(edge_waker_new(&new_waker_result, new_waker_cache, count_kick, NULL), 0);
    return NULL;
}

/* A waker made on another thread: this thread is then the filler of another loop, and every
 * callback waits for edge_waker_run(). Running it here keeps the test deterministic; the real
 * cross-thread case is test_cache_threads.c. */
static edge_waker_t *foreign_waker(edge_cache_t *c)
{
    pthread_t t;
    new_waker_cache = c;
    assert_int_equal(pthread_create(&t, NULL, make_waker, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    return new_waker_result;
}

static void test_waker(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_LRU, 1 << 20), *c2 = mk(EDGE_POLICY_LRU, 1 << 20);
    edge_waker_t *w = foreign_waker(c), *local = NULL;
    edge_obj_t *f;
    waiter_t a, b, d, l;
    edge_ttl_t t = fresh(2000, 0);
    uint64_t size;

    kicks = 0;
    waiter_init(&a);
    waiter_init(&b);
    waiter_init(&d);
    waiter_init(&l);
    a.sub.waker = b.sub.waker = d.sub.waker = w;
    assert_int_equal(edge_waker_new(&local, c, count_kick, NULL), 0);
    l.sub.waker = local; /* this thread's own waker: called directly, as without one */
    assert_int_equal(edge_cache_get(c, "/w", 0, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_obj_set_response(f, 200, -1, &t, NULL, 0), 0);
    assert_int_equal(edge_obj_subscribe(f, &a.sub), 0);
    assert_int_equal(edge_obj_subscribe(f, &b.sub), 0);
    assert_int_equal(edge_obj_subscribe(f, &d.sub), 0);
    assert_int_equal(edge_obj_subscribe(f, &l.sub), 0);

    /* Three appends: the local sub is called three times, the others are owed one call, and the
     * waker is kicked once. */
    assert_int_equal(edge_obj_append(f, body, 0, 10), 0);
    assert_int_equal(edge_obj_append(f, body, 10, 20), 0);
    assert_int_equal(edge_obj_append(f, body, 30, 30), 0);
    assert_string_equal(l.log, "ddd");
    assert_string_equal(a.log, "");
    assert_int_equal(kicks, 1);
    edge_obj_unsubscribe(&d.sub); /* its wake-up is dropped with it */
    edge_waker_run(w);
    assert_string_equal(a.log, "d");
    assert_string_equal(b.log, "d");
    assert_string_equal(d.log, "");
    assert_int_equal(a.seen, 60);
    edge_waker_run(w); /* nothing more is owed */
    assert_string_equal(a.log, "d");

    /* An append then the end: one on_done, which reads the bytes its folded on_data would have. */
    assert_int_equal(edge_obj_append(f, body, 60, 40), 0);
    assert_int_equal(kicks, 2);
    assert_int_equal(edge_obj_finish(f, 1), 0);
    assert_int_equal(kicks, 2); /* still owed since the last kick: no new one */
    assert_string_equal(l.log, "ddddD");
    assert_non_null(a.sub._obj);  /* until on_done is delivered */
    edge_obj_unsubscribe(&b.sub); /* gone before its on_done: never called */
    edge_waker_run(w);
    assert_string_equal(a.log, "dD");
    assert_string_equal(b.log, "d");
    assert_int_equal(a.seen, 100);
    assert_int_equal(a.done, 1);
    assert_null(a.sub._obj);
    assert_int_equal(edge_obj_progress(f, &size), EDGE_OBJ_COMPLETE);
    assert_int_equal(size, 100);
    edge_waker_run(w);
    assert_int_equal(a.done, 1);

    /* A waker of another cache is refused. */
    edge_obj_t *g;
    waiter_t x;
    waiter_init(&x);
    x.sub.waker = w;
    assert_int_equal(edge_cache_get(c2, "/w", 0, &g), EDGE_CACHE_MISS);
    assert_int_equal(edge_obj_subscribe(g, &x.sub), EDGE_ERR_INVAL);
    assert_int_equal(edge_obj_fail(g, EDGE_ERR_UPSTREAM, 0), 0);
    edge_obj_unref(g);

    edge_obj_unref(f);
    edge_cache_free(c);
    edge_cache_free(c2);
    /* Wakers may outlive their cache. */
    edge_waker_free(w);
    edge_waker_free(local);
}

static void test_failure(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_S3FIFO, 1 << 20);
    edge_obj_t *f, *o;
    waiter_t w;
    edge_ttl_t t = fresh(2000, 0);

    waiter_init(&w);
    assert_int_equal(edge_cache_get(c, "/x", 0, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_cache_get(c, "/x", 0, &o), EDGE_CACHE_FILLING);
    assert_int_equal(edge_obj_subscribe(o, &w.sub), 0);
    assert_int_equal(edge_obj_set_response(f, 200, 500, &t, NULL, 0), 0);
    assert_int_equal(edge_obj_append(f, body, 0, 200), 0);
    assert_int_equal(edge_obj_fail(f, EDGE_ERR_UPSTREAM, 1), 0);
    assert_int_equal(edge_obj_fail(f, EDGE_ERR_UPSTREAM, 1), EDGE_ERR_STATE);
    assert_string_equal(w.log, "dF");
    assert_int_equal(w.err, EDGE_ERR_UPSTREAM);
    assert_int_equal(edge_obj_state(f), EDGE_OBJ_FAILED);
    assert_int_equal(edge_obj_error(f), EDGE_ERR_UPSTREAM);
    assert_false(edge_obj_cached(f));
    assert_null(edge_obj_stale(f, 1));
    edge_obj_unref(f);
    edge_obj_unref(o);
    assert_int_equal(get(c, "/x", 2), EDGE_CACHE_MISS); /* retried, not a cached failure */

    /* Fewer bytes than announced. */
    waiter_init(&w);
    assert_int_equal(edge_cache_get(c, "/y", 0, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_obj_subscribe(f, &w.sub), 0);
    assert_int_equal(edge_obj_set_response(f, 200, 500, &t, NULL, 0), 0);
    assert_int_equal(edge_obj_append(f, body, 0, 200), 0);
    assert_int_equal(edge_obj_finish(f, 1), EDGE_ERR_TRUNCATED);
    assert_int_equal(w.err, EDGE_ERR_TRUNCATED);
    assert_int_equal(edge_obj_append(f, body, 0, 1), EDGE_ERR_STATE);
    edge_obj_unref(f);
    edge_cache_free(c);
}

static void test_uncacheable(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_S3FIFO, 1 << 20);
    edge_obj_t *f, *o;
    waiter_t w;
    edge_ttl_t nostore = {0}, priv = {0};
    priv.is_private = 1;

    /* no-store: the collapsed waiters still get the bytes, nothing is kept. */
    waiter_init(&w);
    assert_int_equal(edge_cache_get(c, "/n", 0, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_cache_get(c, "/n", 0, &o), EDGE_CACHE_FILLING);
    assert_int_equal(edge_obj_subscribe(o, &w.sub), 0);
    assert_int_equal(edge_obj_set_response(f, 200, -1, &nostore, NULL, 0), 0);
    assert_false(edge_obj_cached(f));
    assert_int_equal(edge_obj_append(f, body, 0, 10), 0);
    assert_int_equal(edge_obj_finish(f, 0), 0);
    assert_string_equal(w.log, "dD");
    edge_obj_unref(f);
    edge_obj_unref(o);
    assert_int_equal(get(c, "/n", 1), EDGE_CACHE_MISS);

    /* private: the waiters are sent away before any byte is shared. */
    waiter_init(&w);
    assert_int_equal(edge_cache_get(c, "/p", 0, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_cache_get(c, "/p", 0, &o), EDGE_CACHE_FILLING);
    assert_int_equal(edge_obj_subscribe(o, &w.sub), 0);
    assert_int_equal(edge_obj_set_response(f, 200, -1, &priv, NULL, 0), 0);
    assert_string_equal(w.log, "F");
    assert_int_equal(w.err, EDGE_ERR_UNCACHEABLE);
    assert_int_equal(edge_obj_append(f, body, 0, 10), 0);
    assert_int_equal(edge_obj_finish(f, 0), 0);
    assert_int_equal(w.seen, 0);
    edge_obj_unref(f);
    edge_obj_unref(o);
    edge_cache_free(c);
}

/* ---- time ---- */

static void test_ttl(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_LRU, 1 << 20);
    edge_obj_t *o = fill(c, "/pl.m3u8", 1000, 1000);
    assert_int_equal(edge_obj_expires_ms(o), 2000);
    edge_obj_unref(o);
    assert_int_equal(get(c, "/pl.m3u8", 1999), EDGE_CACHE_HIT);
    assert_int_equal(get(c, "/pl.m3u8", 2000), EDGE_CACHE_MISS);
    assert_int_equal(get(c, "/pl.m3u8", 2001), EDGE_CACHE_HIT); /* refilled at 2000 for 60 s */

    o = fill(c, "/s1", 0, 500);
    edge_obj_unref(o);
    edge_cache_stats_t st;
    edge_cache_stats(c, &st);
    assert_int_equal(st.objects, 2);
    assert_int_equal(edge_cache_sweep(c, 499), 0);
    assert_int_equal(edge_cache_sweep(c, 500), 1);
    edge_cache_stats(c, &st);
    assert_int_equal(st.objects, 1);
    assert_int_equal(st.expired, 2);
    edge_cache_free(c);
}

static void test_stale_if_error(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_S3FIFO, 1 << 20);
    edge_obj_t *old, *f, *o, *s;
    edge_ttl_t t = fresh(1000, 5000); /* fresh until 1000, stale window until 6000 */
    waiter_t w;

    assert_int_equal(edge_cache_get(c, "/seg", 0, &old), EDGE_CACHE_MISS);
    assert_int_equal(edge_obj_set_response(old, 200, BODY, &t, NULL, 0), 0);
    assert_int_equal(edge_obj_append(old, body, 0, BODY), 0);
    assert_int_equal(edge_obj_finish(old, 0), 0);

    /* Expired: a refetch starts, with the old copy aside. The origin fails. */
    waiter_init(&w);
    assert_int_equal(edge_cache_get(c, "/seg", 2000, &f), EDGE_CACHE_MISS);
    assert_ptr_not_equal(f, old);
    assert_false(edge_obj_cached(old));
    assert_int_equal(edge_cache_get(c, "/seg", 2000, &o), EDGE_CACHE_FILLING);
    assert_int_equal(edge_obj_subscribe(o, &w.sub), 0);
    assert_int_equal(edge_obj_fail(f, EDGE_ERR_UPSTREAM, 2100), 0);
    assert_int_equal(w.err, EDGE_ERR_UPSTREAM);
    s = edge_obj_stale(o, 2100);
    assert_ptr_equal(s, old);
    assert_int_equal(edge_obj_size(s), BODY);
    assert_null(edge_obj_stale(o, 6000));
    edge_obj_unref(s);
    edge_obj_unref(f);
    edge_obj_unref(o);
    assert_true(edge_obj_cached(old)); /* back in the index for the next failure */

    /* The next lookup retries the origin, again with the fallback; this time it works. */
    assert_int_equal(edge_cache_get(c, "/seg", 3000, &f), EDGE_CACHE_MISS);
    s = edge_obj_stale(f, 3000);
    assert_ptr_equal(s, old);
    edge_obj_unref(s);
    t = fresh(1000, 0);
    assert_int_equal(edge_obj_set_response(f, 200, 10, &t, NULL, 3000), 0);
    assert_int_equal(edge_obj_append(f, body, 0, 10), 0);
    assert_int_equal(edge_obj_finish(f, 3000), 0);
    assert_null(edge_obj_stale(f, 3000)); /* complete: no fallback kept */
    edge_obj_unref(f);
    assert_int_equal(get(c, "/seg", 3500), EDGE_CACHE_HIT);

    /* Past the stale window there is nothing to fall back on. */
    assert_int_equal(get(c, "/seg", 10000), EDGE_CACHE_MISS); /* now fresh until 70000, no SIE */
    assert_int_equal(edge_cache_get(c, "/seg", 80000, &f), EDGE_CACHE_MISS);
    assert_null(edge_obj_stale(f, 80000));
    assert_int_equal(edge_obj_fail(f, EDGE_ERR_UPSTREAM, 80000), 0);
    edge_obj_unref(f);
    edge_obj_unref(old);
    edge_cache_free(c);
}

/* ---- purge and size limit ---- */

static void test_purge(void **state)
{
    edge_cache_t *c = mk(EDGE_POLICY_S3FIFO, 1 << 20);
    const char *keys[] = {"/live/a/1.m4s", "/live/a/2.m4s", "/live/ab/1.m4s", "/live/b/1.m4s"};
    for (int i = 0; i < 4; i++)
        edge_obj_unref(fill(c, keys[i], 0, 60000));
    edge_obj_t *held;
    assert_int_equal(edge_cache_get(c, "/live/a/1.m4s", 1, &held), EDGE_CACHE_HIT);

    assert_int_equal(edge_cache_purge(c, "/live/a/1.m4s"), 1);
    assert_int_equal(edge_cache_purge(c, "/live/a/1.m4s"), 0);
    assert_int_equal(edge_cache_purge(c, "/live/a/"), 0); /* exact only */
    assert_false(edge_obj_cached(held));
    assert_int_equal(edge_obj_size(held), BODY); /* still readable */
    edge_obj_unref(held);

    assert_int_equal(edge_cache_purge_prefix(c, "/live/a/"), 1);
    assert_int_equal(get(c, "/live/ab/1.m4s", 2), EDGE_CACHE_HIT);
    assert_int_equal(edge_cache_purge_prefix(c, "/live/"), 2);
    assert_int_equal(edge_cache_purge_prefix(c, ""), 0);
    edge_cache_stats_t st;
    edge_cache_stats(c, &st);
    assert_int_equal(st.purged, 4);
    assert_int_equal(st.objects, 0);
    assert_int_equal(st.bytes, 0);

    /* A FILLING object can be purged; its fetch and its readers carry on. */
    edge_obj_t *f;
    edge_ttl_t t = fresh(1000, 0);
    assert_int_equal(edge_cache_get(c, "/live/c/9.m4s", 3, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_cache_purge_prefix(c, "/live/c/"), 1);
    assert_int_equal(edge_obj_set_response(f, 200, -1, &t, NULL, 3), 0);
    assert_int_equal(edge_obj_append(f, body, 0, 5), 0);
    assert_int_equal(edge_obj_finish(f, 3), 0);
    edge_obj_unref(f);

    /* Many keys: the index grows and purge_prefix still finds them all. */
    char key[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "/many/%d", i);
        edge_obj_unref(fill(c, key, 0, 60000));
    }
    assert_int_equal(edge_cache_purge_prefix(c, "/many/"), 500);
    edge_cache_free(c);
}

static void test_max_object(void **state)
{
    edge_cache_config_t cfg;
    edge_cache_t *c = NULL;
    edge_obj_t *f, *o;
    edge_ttl_t t = fresh(60000, 0);
    waiter_t w;

    edge_cache_config_init(&cfg);
    cfg.budget_bytes = 1 << 20;
    cfg.max_object_bytes = 2 * BODY;
    assert_int_equal(edge_cache_new(&c, &cfg), 0);

    /* Announced too big: dropped from the index at once, streamed through. */
    assert_int_equal(edge_cache_get(c, "/big", 0, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_obj_set_response(f, 200, 3 * BODY, &t, NULL, 0), 0);
    assert_false(edge_obj_cached(f));
    for (int i = 0; i < 3; i++)
        assert_int_equal(edge_obj_append(f, body, 0, BODY), 0);
    assert_int_equal(edge_obj_finish(f, 0), 0);
    edge_obj_unref(f);

    /* Unknown length that grows past the limit: dropped when it does; waiters keep streaming. */
    waiter_init(&w);
    assert_int_equal(edge_cache_get(c, "/grow", 0, &f), EDGE_CACHE_MISS);
    assert_int_equal(edge_cache_get(c, "/grow", 0, &o), EDGE_CACHE_FILLING);
    assert_int_equal(edge_obj_subscribe(o, &w.sub), 0);
    assert_int_equal(edge_obj_set_response(f, 200, -1, &t, NULL, 0), 0);
    assert_int_equal(edge_obj_append(f, body, 0, BODY), 0);
    assert_int_equal(edge_obj_append(f, body, 0, BODY), 0);
    assert_true(edge_obj_cached(f));
    assert_int_equal(edge_obj_append(f, body, 0, 1), 0);
    assert_false(edge_obj_cached(f));
    assert_int_equal(edge_obj_finish(f, 0), 0);
    assert_string_equal(w.log, "dddD");
    assert_int_equal(w.seen, 2 * BODY + 1);
    edge_obj_unref(f);
    edge_obj_unref(o);

    edge_cache_stats_t st;
    edge_cache_stats(c, &st);
    assert_int_equal(st.too_big, 2);
    assert_int_equal(st.objects, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(get(c, "/grow", 1), EDGE_CACHE_MISS);
    edge_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_lru_order),
        cmocka_unit_test(test_s3fifo_order),
        cmocka_unit_test(test_budget_filling),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_collapse),
        cmocka_unit_test(test_unsubscribe_in_callback),
        cmocka_unit_test(test_waker),
        cmocka_unit_test(test_failure),
        cmocka_unit_test(test_uncacheable),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_stale_if_error),
        cmocka_unit_test(test_purge),
        cmocka_unit_test(test_max_object),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
