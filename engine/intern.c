/*
 * intern.c - lock-free bounded interning (see intern.h for why).
 *
 * Representation
 *
 *   slots[]   (power of two, linear probing)      keys[id] / key_lens[id]
 *   +----------------------+                      +--------------------+
 *   | 0                    |  empty               | (unused: id 0)     |
 *   | h32 << 32 | id=1  ---+--------------------->| "eu-west|prepaid"  |
 *   | 0                    |                      | "us-east|postpaid" |
 *   | h32 << 32 | id=2  ---+--------------------->| ...                |
 *   +----------------------+                      +--------------------+
 *
 * Insert protocol.  A thread that misses allocates a fresh id from next_id
 * (CAS loop, so it never exceeds limit), writes the key bytes into keys[id],
 * and only then publishes the slot with a CAS (memory_order_release).  A
 * reader loads a slot with memory_order_acquire, so if it sees the id it also
 * sees the complete key: the release CAS pairs with that acquire load.  Keys
 * are written once, before publication, and never change, so no reader ever
 * sees a torn key.
 *
 * Races.  Two threads inserting the same new key may both allocate an id.
 * Only one CAS on a given empty slot wins; the loser reloads that slot (its
 * failed CAS is an acquire), finds the winner's equal key and returns the
 * winner's id, abandoning its own.  The abandoned id is never published, so
 * no shard can hold it; it only costs one unit of the limit.  Probing order is
 * the same for both (same hash), so the loser always meets the winner's slot
 * before any empty slot further along: one key never gets two published ids.
 *
 * Slots are never cleared, and there are at least 2 * limit of them while at
 * most limit ids are published, so a probe sequence always ends at an empty
 * slot or the key.
 */
#include "engine/intern.h"

#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

static uint32_t next_pow2(uint32_t v)
{
    uint32_t p = 16;
    while (p < v)
        p <<= 1;
    return p;
}

int kpi_intern_init(struct kpi_intern *t, uint32_t limit, uint32_t max_key)
{
    memset(t, 0, sizeof(*t));
    if (limit == 0 || limit > (1u << 24) || max_key == 0)
        return KPI_ERR_INVAL;
    t->limit = limit;
    t->max_key = max_key;
    t->mask = next_pow2(limit * 2) - 1;
    t->slots = calloc((size_t)t->mask + 1, sizeof(*t->slots));
    t->key_lens = calloc((size_t)limit + 1, sizeof(*t->key_lens));
    t->keys = malloc(((size_t)limit + 1) * max_key);
    if (!t->slots || !t->key_lens || !t->keys) {
        kpi_intern_fini(t);
        return KPI_ERR_NOMEM;
    }
    atomic_init(&t->next_id, 1);
    return 0;
}

void kpi_intern_fini(struct kpi_intern *t)
{
    free(t->slots);
    free(t->key_lens);
    free(t->keys);
    memset(t, 0, sizeof(*t));
}

static uint32_t alloc_id(struct kpi_intern *t)
{
    /* relaxed: the id itself carries no data; the key written under it is
     * published by the slot CAS (release). */
    uint32_t id = atomic_load_explicit(&t->next_id, memory_order_relaxed);
    while (id <= t->limit) {
        if (atomic_compare_exchange_weak_explicit(&t->next_id, &id, id + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return id;
    }
    return KPI_INTERN_FULL;
}

static int key_equals(const struct kpi_intern *t, uint32_t id, const void *key, uint32_t len)
{
    return t->key_lens[id] == len && memcmp(t->keys + (size_t)id * t->max_key, key, len) == 0;
}

uint32_t kpi_intern_get(struct kpi_intern *t, const void *key, uint32_t len, uint64_t hash)
{
    if (len > t->max_key)
        return KPI_INTERN_FULL;
    const uint64_t tag = hash & 0xffffffff00000000ULL;
    uint32_t mine = KPI_INTERN_FULL; /* an id we allocated but have not published */
    uint32_t i = (uint32_t)hash & t->mask;

    for (uint32_t probes = 0; probes <= t->mask; probes++, i = (i + 1) & t->mask) {
        /* acquire: pairs with the release CAS that published the slot, making
         * keys[id] visible before we compare it. */
        uint64_t s = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (s == 0) {
            if (mine == KPI_INTERN_FULL) {
                mine = alloc_id(t);
                if (mine == KPI_INTERN_FULL)
                    return KPI_INTERN_FULL;
                memcpy(t->keys + (size_t)mine * t->max_key, key, len);
                t->key_lens[mine] = len;
            }
            /* release on success: publishes keys[mine]; acquire on failure:
             * we are about to read the winner's key. */
            if (atomic_compare_exchange_strong_explicit(&t->slots[i], &s, tag | mine,
                                                        memory_order_release, memory_order_acquire))
                return mine;
        }
        if ((s & 0xffffffff00000000ULL) == tag) {
            uint32_t id = (uint32_t)s;
            if (key_equals(t, id, key, len))
                return id; /* `mine`, if any, is abandoned (see top comment) */
        }
    }
    return KPI_INTERN_FULL;
}

const char *kpi_intern_key(const struct kpi_intern *t, uint32_t id, uint32_t *len)
{
    if (id == KPI_INTERN_FULL || id > t->limit) {
        *len = 0;
        return "";
    }
    *len = t->key_lens[id];
    return t->keys + (size_t)id * t->max_key;
}

uint32_t kpi_intern_size(const struct kpi_intern *t)
{
    uint32_t n = atomic_load_explicit(&t->next_id, memory_order_relaxed);
    return n > t->limit ? t->limit : n - 1;
}
