/*
 * sw/rbuf.h: a refcounted, immutable-once-shared byte buffer.
 *
 * Media parts are made once and sent to many viewers; each response holds a reference instead of
 * a copy. The refcount is atomic, so a buffer filled on one thread may be released on another.
 * A buffer must not be written after it has been shared.
 */
#ifndef SW_RBUF_H
#define SW_RBUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sw_rbuf {
    atomic_uint _refs;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated in data[] */
    uint8_t data[];
} sw_rbuf_t;

/** Allocates a buffer of `cap` bytes with len 0 and one reference. Returns NULL when out of memory.
 */
sw_rbuf_t *sw_rbuf_new(size_t cap);
/** Allocates a buffer holding a copy of p[0..len). Returns NULL when out of memory. */
sw_rbuf_t *sw_rbuf_copy(const void *p, size_t len);
/** Adds a reference and returns `b`. */
sw_rbuf_t *sw_rbuf_ref(sw_rbuf_t *b);
/** Drops a reference; the last one frees. NULL does nothing. */
void sw_rbuf_unref(sw_rbuf_t *b);

#endif
