/* aggregate.c - the bounded cell table behind shards and flushes (see aggregate.h). */
#include "engine/aggregate.h"

#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

static inline uint32_t key_hash(int64_t bucket, uint32_t set, uint32_t vid)
{
    /* A 64-bit mix (splitmix64's finaliser) of the packed key: buckets are
     * consecutive multiples of the base width, so they need mixing. */
    uint64_t x = (uint64_t)bucket * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)set << 32 | vid);
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (uint32_t)x;
}

int kpi_agg_init(struct kpi_agg *a, uint32_t cap)
{
    memset(a, 0, sizeof(*a));
    if (cap == 0 || cap > (1u << 26))
        return KPI_ERR_INVAL;
    uint32_t slots = 16;
    while (slots < cap * 2)
        slots <<= 1;
    a->cap = cap;
    a->mask = slots - 1;
    a->cells = calloc(cap, sizeof(*a->cells));
    a->index = calloc(slots, sizeof(*a->index));
    if (!a->cells || !a->index) {
        kpi_agg_fini(a);
        return KPI_ERR_NOMEM;
    }
    return 0;
}

void kpi_agg_fini(struct kpi_agg *a)
{
    if (a->cells)
        for (uint32_t i = 0; i < a->n_touched; i++)
            kpi_hll_fini(&a->cells[i].hll);
    free(a->cells);
    free(a->index);
    memset(a, 0, sizeof(*a));
}

void kpi_agg_reset(struct kpi_agg *a)
{
    if (a->n == 0)
        return;
    /* Clearing the index costs O(slots); clearing only used slots would need
     * their positions.  Sparse tables (n small vs. slots) clear by probing. */
    if ((size_t)a->n * 8 < (size_t)a->mask + 1) {
        for (uint32_t i = 0; i < a->n; i++) {
            const struct kpi_agg_cell *c = &a->cells[i];
            uint32_t h = key_hash(c->bucket, c->set, c->vid) & a->mask;
            while (a->index[h] != i + 1)
                h = (h + 1) & a->mask;
            a->index[h] = 0;
        }
    } else {
        memset(a->index, 0, ((size_t)a->mask + 1) * sizeof(*a->index));
    }
    for (uint32_t i = 0; i < a->n; i++) {
        memset(&a->cells[i].c, 0, sizeof(a->cells[i].c));
        a->cells[i].snap = a->cells[i].snaps = 0;
        kpi_hll_reset(&a->cells[i].hll);
    }
    a->n = 0;
}

static inline uint32_t *slot_for(const struct kpi_agg *a, int64_t bucket, uint32_t set,
                                 uint32_t vid)
{
    uint32_t h = key_hash(bucket, set, vid) & a->mask;
    for (;;) {
        uint32_t ix = a->index[h];
        if (ix == 0)
            return &a->index[h];
        const struct kpi_agg_cell *c = &a->cells[ix - 1];
        if (c->bucket == bucket && c->vid == vid && c->set == set)
            return &a->index[h];
        h = (h + 1) & a->mask;
    }
}

struct kpi_agg_cell *kpi_agg_get(struct kpi_agg *a, int64_t bucket, uint32_t set, uint32_t vid)
{
    uint32_t *slot = slot_for(a, bucket, set, vid);
    if (*slot)
        return &a->cells[*slot - 1];
    if (a->n == a->cap)
        return NULL;
    struct kpi_agg_cell *c = &a->cells[a->n];
    if (a->n == a->n_touched) {
        kpi_hll_init(&c->hll);
        a->n_touched++;
    }
    c->bucket = bucket;
    c->set = set;
    c->vid = vid;
    *slot = ++a->n;
    return c;
}

const struct kpi_agg_cell *kpi_agg_find(const struct kpi_agg *a, int64_t bucket, uint32_t set,
                                        uint32_t vid)
{
    const uint32_t *slot = slot_for(a, bucket, set, vid);
    return *slot ? &a->cells[*slot - 1] : NULL;
}

uint32_t kpi_agg_missing(const struct kpi_agg *dst, const struct kpi_agg *src)
{
    uint32_t missing = 0;
    for (uint32_t i = 0; i < src->n; i++) {
        const struct kpi_agg_cell *s = &src->cells[i];
        if (!kpi_agg_find(dst, s->bucket, s->set, s->vid))
            missing++;
    }
    return missing;
}

int kpi_agg_merge(struct kpi_agg *dst, const struct kpi_agg *src)
{
    if (kpi_agg_missing(dst, src) > dst->cap - dst->n)
        return KPI_ERR_FULL;
    for (uint32_t i = 0; i < src->n; i++) {
        const struct kpi_agg_cell *s = &src->cells[i];
        struct kpi_agg_cell *d = kpi_agg_get(dst, s->bucket, s->set, s->vid);
        kpi_counters_add(&d->c, &s->c);
        d->snap = kpi_sat_add(d->snap, s->snap);
        d->snaps = kpi_sat_add(d->snaps, s->snaps);
        int err = kpi_hll_merge(&d->hll, &s->hll);
        if (err)
            return err;
    }
    return 0;
}

size_t kpi_agg_memory(const struct kpi_agg *a)
{
    size_t m = (size_t)a->cap * sizeof(*a->cells) + ((size_t)a->mask + 1) * sizeof(*a->index);
    for (uint32_t i = 0; i < a->n_touched; i++)
        m += kpi_hll_memory(&a->cells[i].hll);
    return m;
}
