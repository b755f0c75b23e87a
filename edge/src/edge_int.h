/*
 * edge_int.h: internals shared by edge/src/ files. Never included from outside edge/ (tests may).
 */
#ifndef EDGE_INT_H
#define EDGE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/cache.h"

/* The cache's one mutex. Objects and wakers hold a reference, so the ones still in use when the
 * cache is freed keep their lock. */
typedef struct edge__lock {
    pthread_mutex_t mu;
    atomic_uint refs;
} edge__lock_t;

/* edge_sub_t._flags, under the lock. */
enum {
    EDGE__SUB_LINKED = 1, /* in its object's list */
    EDGE__SUB_QUEUED = 2, /* in its waker's queue */
    EDGE__SUB_DATA = 4,   /* on_data is owed */
    EDGE__SUB_DONE = 8,   /* on_done(_err) is owed; the sub has left the object's list */
};

struct edge_waker {
    edge__lock_t *lk; /* one reference */
    pthread_t thread; /* the thread that runs it */
    void (*kick)(void *data);
    void *kick_data;
    edge_sub_t *head, *tail; /* subs with a wake-up owed, oldest first (_wprev/_wnext) */
    size_t n;
    int kicked; /* kick() called since the last edge_waker_run() */
};

typedef struct edge__chunk {
    sw_rbuf_t *buf; /* one reference */
    size_t off;     /* into buf->data */
    size_t len;
    uint64_t at; /* offset of this chunk in the object */
} edge__chunk_t;

/* A FIFO/LRU queue of objects threaded through edge_obj_t.qprev/qnext; head is the newest. */
typedef struct edge__queue {
    edge_obj_t *head, *tail;
    size_t n;
    size_t bytes; /* sum of the members' charge */
} edge__queue_t;

/* The S3-FIFO ghost: a FIFO of key hashes with an open-addressing set for membership. */
typedef struct edge__ghost {
    uint64_t *ring;
    size_t cap, head, n; /* ring[head] is the oldest */
    uint64_t *set;       /* 0 marks an empty slot */
    size_t setmask;
} edge__ghost_t;

typedef struct edge__policy edge__policy_t;

typedef struct edge__policy_ops {
    const char *name;
    int (*init)(edge__policy_t *p, const edge_cache_config_t *cfg);
    void (*dispose)(edge__policy_t *p);
    void (*insert)(edge__policy_t *p, edge_obj_t *o); /* a new object entered the index */
    void (*hit)(edge__policy_t *p, edge_obj_t *o);    /* a lookup found it */
    void (*remove)(edge__policy_t *p, edge_obj_t *o); /* it left the index for any reason */
    edge_obj_t *(*victim)(edge__policy_t *p);         /* next to evict; NULL when empty */
} edge__policy_ops_t;

struct edge__policy {
    const edge__policy_ops_t *ops;
    size_t budget;
    edge__queue_t q[2]; /* LRU: q[0]. S3-FIFO: q[0] small, q[1] main */
    edge__ghost_t ghost;
};

extern const edge__policy_ops_t edge__policy_lru;
extern const edge__policy_ops_t edge__policy_s3fifo;

/* Every field but refs, hash, keylen and key (fixed at birth) is under lk->mu. */
struct edge_obj {
    atomic_uint refs;
    edge__lock_t *lk;    /* one reference */
    edge_cache_t *cache; /* non-NULL while indexed */
    edge_obj_t *hnext;   /* hash chain */
    uint64_t hash;
    edge_obj_t *qprev, *qnext; /* policy queue links */
    uint8_t queue;             /* 0: none, else 1 + index into policy q[] */
    uint8_t freq;              /* S3-FIFO 2-bit frequency */
    size_t charge;             /* bytes charged to the budget while indexed */

    edge_obj_state_t state;
    int err;
    int status;
    int has_response;
    int in_dispatch;
    int64_t content_length;
    uint64_t size;
    edge__chunk_t *chunks;
    size_t nchunks, chunks_cap;
    int64_t expires_ms, stale_until_ms;
    sw_rbuf_t *meta;
    edge_obj_t *stale; /* expired predecessor kept for stale-if-error (one reference) */
    edge_sub_t *subs;
    edge_sub_t *dispatch_next; /* next sub to visit during on_data dispatch */
    size_t keylen;
    char key[];
};

/* Queue helpers used by both policies. */
void edge__q_push_head(edge__policy_t *p, int qi, edge_obj_t *o);
void edge__q_unlink(edge__policy_t *p, edge_obj_t *o);

uint64_t edge__hash(const char *s, size_t len);

/* Percent-decoding helper shared by the key normalizer and the token parser. -1 if not hex. */
static inline int edge__hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
