/*
 * edge_policy_s3fifo.c: S3-FIFO (Yang et al., SOSP 2023). New objects enter a small FIFO sized at
 * 10% of the budget; most one-hit wonders (a DVR viewer's old segment, a stream nobody else
 * watches) leave from there without disturbing the main FIFO. An object hit while in the small
 * FIFO moves to the main FIFO when it reaches the tail; in the main FIFO a hit object is
 * reinserted with its 2-bit frequency decremented instead of being evicted. Keys evicted from the
 * small FIFO are remembered in a ghost FIFO (hashes only): if one comes back it goes straight to
 * main. Hits only bump a counter, so lookups never reorder a queue.
 */
#include <stdlib.h>

#include "edge_int.h"

enum { Q_SMALL = 0, Q_MAIN = 1 };

#define S3_MAX_FREQ 3

/* ---- ghost FIFO -------------------------------------------------------------------------- */

static uint64_t ghost_h(uint64_t h)
{
    return h != 0 ? h : 1; /* 0 marks an empty set slot */
}

static int ghost_init(edge__ghost_t *g, size_t cap)
{
    size_t setsz = 1;
    while (setsz < cap * 2)
        setsz <<= 1;
    if ((g->ring = calloc(cap, sizeof(*g->ring))) == NULL)
        return EDGE_ERR_NOMEM;
    if ((g->set = calloc(setsz, sizeof(*g->set))) == NULL) {
        free(g->ring);
        return EDGE_ERR_NOMEM;
    }
    g->cap = cap;
    g->setmask = setsz - 1;
    return 0;
}

static size_t ghost_find(const edge__ghost_t *g, uint64_t h)
{
    size_t i = h & g->setmask;
    while (g->set[i] != 0 && g->set[i] != h)
        i = (i + 1) & g->setmask;
    return i;
}

static int ghost_contains(const edge__ghost_t *g, uint64_t h)
{
    h = ghost_h(h);
    return g->set[ghost_find(g, h)] == h;
}

/* Deletes from the linear-probing set by shifting back the entries that follow (no tombstones). */
static void ghost_set_del(edge__ghost_t *g, uint64_t h)
{
    size_t i = ghost_find(g, h);
    if (g->set[i] == 0)
        return;
    for (size_t j = i;;) {
        g->set[i] = 0;
        for (;;) {
            j = (j + 1) & g->setmask;
            if (g->set[j] == 0)
                return;
            size_t home = g->set[j] & g->setmask;
            /* Move set[j] into the hole at i unless its home lies cyclically in (i, j]. */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
                break;
        }
        g->set[i] = g->set[j];
        i = j;
    }
}

static void ghost_add(edge__ghost_t *g, uint64_t h)
{
    h = ghost_h(h);
    size_t i = ghost_find(g, h);
    if (g->set[i] == h)
        return;
    if (g->n == g->cap) {
        ghost_set_del(g, g->ring[g->head]);
        g->head = (g->head + 1) % g->cap;
        g->n--;
        i = ghost_find(g, h);
    }
    g->set[i] = h;
    g->ring[(g->head + g->n) % g->cap] = h;
    g->n++;
}

/* ---- policy ------------------------------------------------------------------------------ */

static int s3_init(edge__policy_t *p, const edge_cache_config_t *cfg)
{
    size_t cap = cfg->ghost_entries;
    if (cap == 0) {
        cap = cfg->budget_bytes / (16 * 1024);
        cap = cap < 256 ? 256 : cap > ((size_t)1 << 20) ? (size_t)1 << 20 : cap;
    }
    return ghost_init(&p->ghost, cap);
}

static void s3_dispose(edge__policy_t *p)
{
    free(p->ghost.ring);
    free(p->ghost.set);
}

static void s3_insert(edge__policy_t *p, edge_obj_t *o)
{
    o->freq = 0;
    edge__q_push_head(p, ghost_contains(&p->ghost, o->hash) ? Q_MAIN : Q_SMALL, o);
}

static void s3_hit(edge__policy_t *p, edge_obj_t *o)
{
    if (o->freq < S3_MAX_FREQ)
        o->freq++;
}

static void s3_remove(edge__policy_t *p, edge_obj_t *o)
{
    edge__q_unlink(p, o);
}

static edge_obj_t *s3_victim(edge__policy_t *p)
{
    edge__queue_t *small = &p->q[Q_SMALL], *main_q = &p->q[Q_MAIN];

    /* Each pass either returns a victim or moves one object (to main, or back to main's head with
     * a lower frequency), and frequencies only go down here, so the loop ends. */
    for (;;) {
        if (small->tail != NULL && (small->bytes >= p->budget / 10 || main_q->tail == NULL)) {
            edge_obj_t *o = small->tail;
            if (o->freq == 0) {
                ghost_add(&p->ghost, o->hash);
                return o;
            }
            edge__q_unlink(p, o);
            o->freq = 0;
            edge__q_push_head(p, Q_MAIN, o);
            continue;
        }
        edge_obj_t *o = main_q->tail;
        if (o == NULL)
            return NULL;
        if (o->freq == 0)
            return o;
        edge__q_unlink(p, o);
        o->freq--;
        edge__q_push_head(p, Q_MAIN, o);
    }
}

const edge__policy_ops_t edge__policy_s3fifo = {
    "s3fifo", s3_init, s3_dispose, s3_insert, s3_hit, s3_remove, s3_victim,
};
