/*
 * hash.h - the one 64-bit hash the engine uses.
 *
 * MurmurHash64A (Austin Appleby's public-domain algorithm), because Redis's
 * HyperLogLog hashes elements with it (seed 0xadc83b19): hashing subscriber
 * ids the same way is what makes our sketches PFCOUNT-compatible.  The value
 * interner uses it too, with another seed.
 */
#ifndef KPI_HASH_H
#define KPI_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t kpi_murmur64a(const void *data, size_t len, uint64_t seed);

/* Rebuilds an open-addressing index over items 0..n-1, for linear probing:
 * `slots` cells (a power of two, more than n), each 0 when empty or an
 * item's number + 1, item i placed from hash(ctx, i) & (slots - 1).  On
 * success *index (freed) is replaced and *mask is slots - 1: 0; else -1
 * (memory is short) and both are left as they were.  The sinks' lookup
 * tables rebuild theirs with it when they grow. */
int kpi_hash_index_rebuild(uint32_t **index, uint32_t *mask, uint32_t slots, uint32_t n,
                           uint32_t (*hash)(const void *ctx, uint32_t i), const void *ctx);

#endif
