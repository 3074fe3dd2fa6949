/*
 * aggregate.h - aggregation state: one cell per (base bucket, grouping-set
 * value), holding exact counters and a distinct-subscriber sketch.
 *
 * A kpi_agg is a bounded table of such cells: a dense array (cells are
 * appended, so iterating a flush's cells is a linear scan) plus an
 * open-addressing index from key to cell.  It is single-writer: each worker
 * owns the tables of its shard (shard.h); the flusher owns the one it merges
 * them into.  Bounded: at most `cap` cells; kpi_agg_get returns NULL when
 * full and the caller flushes before going on (backpressure, never growth).
 * Reset keeps each cell's sketch memory, so a steady state allocates nothing.
 */
#ifndef KPI_AGGREGATE_H
#define KPI_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/hll.h"
#include "engine/kpi.h"

struct kpi_agg_cell {
    int64_t bucket; /* start of the base bucket, ms */
    uint32_t set;   /* grouping set index */
    uint32_t vid;   /* value id in that set */
    struct kpi_counters c;
    struct kpi_hll hll; /* distinct subscribers */
    /* Sum of the counts of the base snapshots (docs/events.md) in the
     * bucket: not a counter of the schema (snapshots are a gauge, kept by
     * the sink), but additive within a bucket like one, so merges, retries
     * and key-group floors treat it like the counters. */
    int64_t snap;
    int64_t snaps; /* how many snapshots (a snapshot may count 0) */
};

struct kpi_agg {
    struct kpi_agg_cell *cells; /* [cap]; [0, n) in use */
    uint32_t *index;            /* [mask + 1]: 0 = empty, else cell index + 1 */
    uint32_t mask;
    uint32_t n;
    uint32_t cap;
    uint32_t n_touched; /* cells ever initialised (their sketches may hold memory) */
};

int kpi_agg_init(struct kpi_agg *a, uint32_t cap);
void kpi_agg_fini(struct kpi_agg *a);
void kpi_agg_reset(struct kpi_agg *a);

/* The cell for a key, created empty if new; NULL when the table is full. */
struct kpi_agg_cell *kpi_agg_get(struct kpi_agg *a, int64_t bucket, uint32_t set, uint32_t vid);

/* The cell for a key, or NULL. */
const struct kpi_agg_cell *kpi_agg_find(const struct kpi_agg *a, int64_t bucket, uint32_t set,
                                        uint32_t vid);

/* Cells of src that dst lacks: dst must have that much room to merge. */
uint32_t kpi_agg_missing(const struct kpi_agg *dst, const struct kpi_agg *src);

/* dst += src (counters added, sketches merged).  0, KPI_ERR_FULL (dst
 * unchanged: checked first) or KPI_ERR_NOMEM. */
int kpi_agg_merge(struct kpi_agg *dst, const struct kpi_agg *src);

/* Heap bytes held, sketches included. */
size_t kpi_agg_memory(const struct kpi_agg *a);

#endif
