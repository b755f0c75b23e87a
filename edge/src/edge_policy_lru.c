/*
 * edge_policy_lru.c: least recently used. One queue, newest at the head; a hit moves the object
 * back to the head and the victim is the tail. Also holds the queue helpers both policies use.
 */
#include <stddef.h>

#include "edge_int.h"

void edge__q_push_head(edge__policy_t *p, int qi, edge_obj_t *o)
{
    edge__queue_t *q = &p->q[qi];
    o->qprev = NULL;
    o->qnext = q->head;
    if (q->head != NULL)
        q->head->qprev = o;
    else
        q->tail = o;
    q->head = o;
    q->n++;
    q->bytes += o->charge;
    o->queue = (uint8_t)(qi + 1);
}

void edge__q_unlink(edge__policy_t *p, edge_obj_t *o)
{
    if (o->queue == 0)
        return;
    edge__queue_t *q = &p->q[o->queue - 1];
    if (o->qprev != NULL)
        o->qprev->qnext = o->qnext;
    else
        q->head = o->qnext;
    if (o->qnext != NULL)
        o->qnext->qprev = o->qprev;
    else
        q->tail = o->qprev;
    q->n--;
    q->bytes -= o->charge;
    o->qprev = o->qnext = NULL;
    o->queue = 0;
}

static int lru_init(edge__policy_t *p, const edge_cache_config_t *cfg)
{
    return 0;
}

static void lru_dispose(edge__policy_t *p)
{
}

static void lru_insert(edge__policy_t *p, edge_obj_t *o)
{
    edge__q_push_head(p, 0, o);
}

static void lru_hit(edge__policy_t *p, edge_obj_t *o)
{
    if (p->q[0].head == o)
        return;
    edge__q_unlink(p, o);
    edge__q_push_head(p, 0, o);
}

static void lru_remove(edge__policy_t *p, edge_obj_t *o)
{
    edge__q_unlink(p, o);
}

static edge_obj_t *lru_victim(edge__policy_t *p)
{
    return p->q[0].tail;
}

const edge__policy_ops_t edge__policy_lru = {
    "lru", lru_init, lru_dispose, lru_insert, lru_hit, lru_remove, lru_victim,
};
