/*
 * tuple_cache.h - a worker's memo from an event's dimension values to its
 * value id in every grouping set.
 *
 * Without it every event costs one shared-interner lookup per grouping set
 * (join the values, hash, probe, compare: ~10% of a worker's time in perf
 * with the default three sets).  Real traffic repeats a small number of
 * dimension tuples, so each worker keeps a direct-mapped table from the raw
 * tuple to the ids of all sets: one hash and one compare per event.
 *
 * Exactness: an interned id never changes and the interner never forgets a
 * value; a value that got KPI_VALUE_OTHER (its set was full) gets it on every
 * later lookup too.  So the ids of a tuple are a fixed function of the tuple
 * and memoising them changes nothing.  The cache is private to one worker
 * thread: no atomics, no sharing.  A tuple too long for a slot bypasses it.
 */
#ifndef KPI_TUPLE_CACHE_H
#define KPI_TUPLE_CACHE_H

#include <stdint.h>

#include "engine/dims.h"
#include "engine/event.h"

#define KPI_TCACHE_SLOTS   2048 /* power of two */
#define KPI_TCACHE_KEY_MAX 60   /* bytes of encoded tuple a slot holds */

struct kpi_tcache_slot {
    uint64_t hash;
    uint32_t len; /* encoded tuple length + 1; 0: empty */
    uint32_t vids[KPI_MAX_SETS];
    unsigned char key[KPI_TCACHE_KEY_MAX];
};

struct kpi_tcache {
    struct kpi_tcache_slot *slots;
    uint64_t hits, misses, bypassed;
};

/* 0 or KPI_ERR_NOMEM. */
int kpi_tcache_init(struct kpi_tcache *c);
void kpi_tcache_fini(struct kpi_tcache *c);

/* vids[s] = kpi_dims_value_id(d, s, ev) for every set s of d. */
void kpi_tcache_value_ids(struct kpi_tcache *c, struct kpi_dims *d, const struct kpi_event *ev,
                          uint32_t *vids);

#endif
