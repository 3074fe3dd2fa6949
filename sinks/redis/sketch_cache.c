/*
 * sketch_cache.c - the sketches this sink wrote last (redis_int.h).
 *
 * The bytes of every (window, set, value, bucket) sketch this sink wrote in
 * the last two flushes, with the token that write stored in the bucket hash
 * (_t).  Next time, the sink merges the delta into those bytes itself and
 * sends the result with the token; the script SETs it if the token is still
 * there, i.e. if nothing else wrote the sketch since.  Only sparse sketches
 * (at most KPI_REDIS_SPARSE_MAX bytes) are kept: a dense one would cost 12 KB
 * of network per flush, and Redis merges into a dense sketch in linear time.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "sinks/redis/redis_int.h"

static uint32_t kpi_skc_hash(const struct kpi_skc_key *k)
{
    uint64_t x = (uint64_t)k->bucket * 0x9e3779b97f4a7c15ULL ^
                 ((uint64_t)k->set << 40 | (uint64_t)k->win << 32 | k->vid);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return (uint32_t)x;
}

static int kpi_skc_key_eq(const struct kpi_skc_key *a, const struct kpi_skc_key *b)
{
    return a->bucket == b->bucket && a->set == b->set && a->vid == b->vid && a->win == b->win;
}

struct kpi_skc_entry *kpi_skc_find(struct kpi_skc *c, const struct kpi_skc_key *k)
{
    if (!c->index)
        return NULL;
    uint32_t h = kpi_skc_hash(k) & c->mask;
    while (c->index[h]) {
        struct kpi_skc_entry *e = &c->e[c->index[h] - 1];
        if (kpi_skc_key_eq(&e->key, k))
            return e;
        h = (h + 1) & c->mask;
    }
    return NULL;
}

static int kpi_skc_reindex(struct kpi_skc *c, uint32_t min_slots)
{
    uint32_t slots = 256;
    while (slots < min_slots * 2)
        slots <<= 1;
    uint32_t *ix = calloc(slots, sizeof(*ix));
    if (!ix)
        return KPI_ERR_NOMEM;
    for (uint32_t i = 0; i < c->n; i++) {
        uint32_t h = kpi_skc_hash(&c->e[i].key) & (slots - 1);
        while (ix[h])
            h = (h + 1) & (slots - 1);
        ix[h] = i + 1;
    }
    free(c->index);
    c->index = ix;
    c->mask = slots - 1;
    return 0;
}

void kpi_skc_drop(struct kpi_skc *c, const struct kpi_skc_key *k)
{
    struct kpi_skc_entry *e = kpi_skc_find(c, k);
    if (e && e->len) {
        c->bytes -= e->len;
        free(e->bytes);
        e->bytes = NULL;
        e->len = 0;
    }
}

void kpi_skc_put(struct kpi_skc *c, const struct kpi_skc_key *k, uint64_t token, uint64_t used,
                 const void *bytes, uint32_t len)
{
    struct kpi_skc_entry *e = kpi_skc_find(c, k);
    uint8_t *copy = malloc(len);
    if (!copy) {
        kpi_skc_drop(c, k);
        return;
    }
    memcpy(copy, bytes, len);
    if (!e) {
        if (c->n == c->cap) {
            uint32_t cap = c->cap ? c->cap * 2 : 1024;
            struct kpi_skc_entry *ne = realloc(c->e, cap * sizeof(*ne));
            if (!ne) {
                free(copy);
                return;
            }
            c->e = ne;
            c->cap = cap;
        }
        if ((c->n + 1) * 2 > (c->index ? c->mask + 1 : 0) && kpi_skc_reindex(c, c->n + 1)) {
            free(copy);
            return;
        }
        e = &c->e[c->n++];
        memset(e, 0, sizeof(*e));
        e->key = *k;
        uint32_t h = kpi_skc_hash(k) & c->mask;
        while (c->index[h])
            h = (h + 1) & c->mask;
        c->index[h] = c->n;
    }
    c->bytes -= e->len;
    free(e->bytes);
    e->bytes = copy;
    e->len = len;
    e->token = token;
    e->used = used;
    c->bytes += len;
}

/* Keep the entries written in the last two flushes, and at most max_bytes. */
void kpi_skc_evict(struct kpi_skc *c, uint64_t now, size_t max_bytes)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        struct kpi_skc_entry *e = &c->e[i];
        int keep = e->len && e->used + 2 > now && c->bytes <= max_bytes;
        if (!keep) {
            c->bytes -= e->len;
            free(e->bytes);
            continue;
        }
        c->e[j++] = *e;
    }
    c->n = j;
    if (c->e)
        kpi_skc_reindex(c, c->n);
}

void kpi_skc_clear(struct kpi_skc *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        free(c->e[i].bytes);
    c->n = 0;
    c->bytes = 0;
    if (c->index)
        memset(c->index, 0, ((size_t)c->mask + 1) * sizeof(*c->index));
}

void kpi_skc_free(struct kpi_skc *c)
{
    kpi_skc_clear(c);
    free(c->e);
    free(c->index);
    memset(c, 0, sizeof(*c));
}
