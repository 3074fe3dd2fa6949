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

#endif
