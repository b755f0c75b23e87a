#include <stdlib.h>
#include <string.h>

#include "sw/rbuf.h"

sw_rbuf_t *sw_rbuf_new(size_t cap)
{
    sw_rbuf_t *b = malloc(sizeof(*b) + (cap ? cap : 1));
    if (b == NULL)
        return NULL;
    atomic_init(&b->_refs, 1);
    b->len = 0;
    b->cap = cap;
    return b;
}

sw_rbuf_t *sw_rbuf_copy(const void *p, size_t len)
{
    sw_rbuf_t *b = sw_rbuf_new(len);
    if (b == NULL)
        return NULL;
    if (len > 0)
        memcpy(b->data, p, len);
    b->len = len;
    return b;
}

sw_rbuf_t *sw_rbuf_ref(sw_rbuf_t *b)
{
    atomic_fetch_add_explicit(&b->_refs, 1, memory_order_relaxed);
    return b;
}

void sw_rbuf_unref(sw_rbuf_t *b)
{
    if (b == NULL)
        return;
    /* Release on drop, acquire before free: the last owner sees every write of the others. */
    if (atomic_fetch_sub_explicit(&b->_refs, 1, memory_order_acq_rel) == 1)
        free(b);
}
