/*
 * tuple_cache.c - see tuple_cache.h.
 *
 * The encoded tuple is, for each configured dimension in order, one length
 * byte then the value's bytes; an absent dimension is the byte 0xff alone.
 * The encoding is unambiguous, so equal encodings mean equal tuples, and
 * equal tuples have equal ids in every set (an absent value and a literal
 * "__none__" encode differently but map to the same ids: that only costs a
 * second slot).
 */
#include "engine/tuple_cache.h"

#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "engine/hash.h"

#define TCACHE_SEED 0x7475706c65ULL

int kpi_tcache_init(struct kpi_tcache *c)
{
    memset(c, 0, sizeof(*c));
    c->slots = calloc(KPI_TCACHE_SLOTS, sizeof(*c->slots));
    return c->slots ? 0 : KPI_ERR_NOMEM;
}

void kpi_tcache_fini(struct kpi_tcache *c)
{
    free(c->slots);
    c->slots = NULL;
}

static void all_ids(struct kpi_dims *d, const struct kpi_event *ev, uint32_t *vids)
{
    for (int s = 0; s < d->n_sets; s++)
        vids[s] = kpi_dims_value_id(d, s, ev);
}

void kpi_tcache_value_ids(struct kpi_tcache *c, struct kpi_dims *d, const struct kpi_event *ev,
                          uint32_t *vids)
{
    unsigned char key[KPI_TCACHE_KEY_MAX];
    size_t n = 0;
    for (int i = 0; i < d->n_dims; i++) {
        const struct kpi_strref *v = &ev->dims[i];
        if (!v->ptr) {
            if (n + 1 > sizeof(key))
                goto bypass;
            key[n++] = 0xff;
            continue;
        }
        if (v->len >= 0xff || n + 1 + v->len > sizeof(key))
            goto bypass;
        key[n++] = (unsigned char)v->len;
        memcpy(key + n, v->ptr, v->len);
        n += v->len;
    }
    uint64_t h = kpi_murmur64a(key, n, TCACHE_SEED);
    struct kpi_tcache_slot *sl = &c->slots[h & (KPI_TCACHE_SLOTS - 1)];
    if (sl->len == n + 1 && sl->hash == h && memcmp(sl->key, key, n) == 0) {
        memcpy(vids, sl->vids, sizeof(uint32_t) * (size_t)d->n_sets);
        c->hits++;
        return;
    }
    all_ids(d, ev, vids);
    /* Replace whatever held the slot: direct-mapped, the newest tuple wins. */
    sl->hash = h;
    sl->len = (uint32_t)n + 1;
    memcpy(sl->key, key, n);
    memcpy(sl->vids, vids, sizeof(uint32_t) * (size_t)d->n_sets);
    c->misses++;
    return;
bypass:
    c->bypassed++;
    all_ids(d, ev, vids);
}
