/*
 * hll.h - HyperLogLog sketches that are byte-compatible with Redis.
 *
 * Same parameters as Redis (p = 14: 16384 registers of 6 bits, MurmurHash64A
 * with seed 0xadc83b19 over the element's bytes, the same cardinality
 * estimator), so a sketch the engine serializes can be SET into Redis and read
 * with PFCOUNT / PFMERGE, and a sketch read back from Redis can be merged here.
 * See the comment at the top of hll.c for the in-memory representation.
 */
#ifndef KPI_HLL_H
#define KPI_HLL_H

#include <stddef.h>
#include <stdint.h>

#define KPI_HLL_P          14
#define KPI_HLL_REGISTERS  (1u << KPI_HLL_P)                      /* 16384 */
#define KPI_HLL_DENSE_SIZE (16 + (KPI_HLL_REGISTERS * 6 + 7) / 8) /* 12304 */

#include "engine/hash.h"

#define KPI_HLL_SEED 0xadc83b19ULL

/* Redis's hash of an element: MurmurHash64A(data, len, 0xadc83b19). */
static inline uint64_t kpi_hll_hash(const void *data, size_t len)
{
    return kpi_murmur64a(data, len, KPI_HLL_SEED);
}

/* The sketch.  Public so it can be embedded in aggregation cells; its fields
 * are private to hll.c.  (Defined by the HLL implementation.) */
struct kpi_hll {
    uint8_t *regs; /* dense: one byte per register, KPI_HLL_REGISTERS of them; or NULL */
    uint32_t *tab; /* sparse: open-addressing set of (index << 8 | rank); or NULL */
    uint32_t nz;   /* registers that are not zero */
    uint16_t tab_cap;
    uint8_t dense;
};

/* Start loading the register kpi_hll_add_hash(h, hash) will touch.  The
 * engine adds each event to one sketch per grouping set, each a random byte
 * of a 16 KiB array; prefetching them all first overlaps those cache misses
 * instead of paying them one after another. */
static inline void kpi_hll_prefetch(const struct kpi_hll *h, uint64_t hash)
{
    if (h->dense)
        __builtin_prefetch(&h->regs[hash & (KPI_HLL_REGISTERS - 1)], 1);
}

/* Initialise an empty sketch (caller-owned storage). Never fails. */
void kpi_hll_init(struct kpi_hll *h);
/* Release what the sketch allocated; the sketch may be re-initialised. */
void kpi_hll_fini(struct kpi_hll *h);
/* Empty the sketch, keeping memory it may reuse. */
void kpi_hll_reset(struct kpi_hll *h);

/* Add an element by its kpi_hll_hash(). Returns 1 if a register changed,
 * 0 if not, KPI_ERR_NOMEM if turning dense failed (the sketch is unchanged). */
int kpi_hll_add_hash(struct kpi_hll *h, uint64_t hash);

/* dst := dst ∪ src.  0 or KPI_ERR_NOMEM. */
int kpi_hll_merge(struct kpi_hll *dst, const struct kpi_hll *src);

/* Cardinality estimate, exactly what Redis's PFCOUNT returns for the same
 * registers. */
uint64_t kpi_hll_count(const struct kpi_hll *h);

/* 1 when no element was ever added. */
int kpi_hll_is_empty(const struct kpi_hll *h);

/* Serialize in Redis's string format: sparse when it fits in `sparse_max`
 * bytes (Redis's hll-sparse-max-bytes, default 3000), dense otherwise.  The
 * cached-cardinality field is marked invalid so Redis recomputes it.  Returns
 * the number of bytes written, or 0 if `cap` is too small (KPI_HLL_DENSE_SIZE
 * always suffices). */
size_t kpi_hll_serialize(const struct kpi_hll *h, uint8_t *out, size_t cap, size_t sparse_max);

/* Parse a Redis HLL string (dense or sparse) into h (previous content
 * replaced).  0, KPI_ERR_PARSE for a malformed string (h untouched),
 * KPI_ERR_NOMEM. */
int kpi_hll_deserialize(struct kpi_hll *h, const uint8_t *in, size_t len);

/* h := h ∪ the Redis HLL string in[0, len): kpi_hll_deserialize into a
 * scratch sketch and kpi_hll_merge, in one pass and without the scratch.
 * 0, KPI_ERR_PARSE (h untouched), KPI_ERR_NOMEM. */
int kpi_hll_merge_bytes(struct kpi_hll *h, const uint8_t *in, size_t len);

/* Heap bytes the sketch holds (for the state-size metric). */
size_t kpi_hll_memory(const struct kpi_hll *h);

#endif
