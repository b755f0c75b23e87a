/*
 * edge_upstream_int.h: the fetcher's pure helpers, exposed for tests/unit/edge/.
 * Internal to edge/; never included from outside it (except its unit tests).
 */
#ifndef EDGE_UPSTREAM_INT_H
#define EDGE_UPSTREAM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "edge/upstream.h"

/** A 64-bit hash of s[0..len) (FNV-1a then a murmur3 finalizer); stable across runs and hosts. */
uint64_t edge__hrw_hash(const char *s, size_t len);

/** The rendezvous score of a key on a node, both given by their edge__hrw_hash(). */
uint64_t edge__hrw_score(uint64_t key_hash, uint64_t node_hash);

/**
 * Rendezvous (highest random weight) choice: the index of the node with the highest score for
 * `key` among nodes[i] with usable == NULL or usable[i] != 0; ties go to the lower hash. Returns
 * -1 when no node is usable. The result does not depend on the order of nodes[].
 */
int edge__hrw_pick(const char *key, const uint64_t *node_hashes, const unsigned char *usable,
                   size_t n);

/** Marks upstream i up (1) or down (0) as a health check would, logging the transition. */
void edge__upstream_set_healthy(edge_upstream_t *u, size_t i, int healthy);

#endif
