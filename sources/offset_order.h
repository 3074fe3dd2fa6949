/*
 * offset_order.h - what a worker does with a partition's message whose
 * offset is not the next one it expects.
 *
 * A partition's messages must reach the engine in offset order, each once:
 * the flushed range [from, to) claims every offset in it.  librdkafka 2.0.x
 * (Debian 12's) can break that around broker restarts, seeks and rebalances
 * (its batch API skips offsets across a fetch restart, PR #4235 upstream):
 * the chaos campaign (tests/chaos/chaos.sh) lost events after a broker
 * restart, their offsets inside a stored range.  So each message is checked:
 *
 *  - below the expected offset: a redelivery of what was taken already:
 *    skipped (counting it again would be a double count);
 *  - above it: a gap.  The worker seeks the partition back to the expected
 *    offset and drops what follows until the re-fetch arrives.  If the
 *    re-fetch starts at the same offset past the gap, the missing offsets do
 *    not exist in the log (a transaction marker, compaction): accepted and
 *    counted.  If it starts elsewhere, the worker seeks again, at most
 *    KPI_GAP_MAX_SEEKS times, then accepts what the broker serves.
 *
 * The state is per partition and only its worker touches it; the decision is
 * a pure function so tests/test_offset_order.c checks it without a broker.
 */
#ifndef KPI_OFFSET_ORDER_H
#define KPI_OFFSET_ORDER_H

#include <stdint.h>

#define KPI_GAP_MAX_SEEKS 3

struct kpi_offset_gap {
    int64_t at;     /* the expected offset a seek went back to; -1: none */
    int64_t seen;   /* the first offset past it that was seen */
    uint64_t batch; /* the worker's batch in which the seek was made */
    int seeks;      /* seeks made for `at` */
};

enum kpi_offset_verdict {
    KPI_OFFSET_TAKE,       /* the expected offset: process it */
    KPI_OFFSET_REDELIVERY, /* below it: skip */
    KPI_OFFSET_SEEK,       /* a gap: seek back to the expected offset, skip this one */
    KPI_OFFSET_WAIT,       /* after a seek, still the old stream: skip */
    KPI_OFFSET_GAP_REAL    /* the re-fetch confirmed the gap: process it */
};

static inline void kpi_offset_gap_reset(struct kpi_offset_gap *g)
{
    g->at = -1;
    g->seen = -1;
    g->batch = 0;
    g->seeks = 0;
}

/* The verdict for a message at `offset` when `expect` is next, in the
 * worker's batch number `batch` (increasing). */
static inline enum kpi_offset_verdict kpi_offset_check(struct kpi_offset_gap *g, int64_t expect,
                                                       int64_t offset, uint64_t batch)
{
    if (offset == expect) {
        kpi_offset_gap_reset(g);
        return KPI_OFFSET_TAKE;
    }
    if (offset < expect)
        return KPI_OFFSET_REDELIVERY;
    if (g->at != expect) {
        g->at = expect;
        g->seen = offset;
        g->batch = batch;
        g->seeks = 1;
        return KPI_OFFSET_SEEK;
    }
    if (batch == g->batch)
        return KPI_OFFSET_WAIT; /* the rest of the batch that showed the gap */
    if (offset == g->seen || g->seeks >= KPI_GAP_MAX_SEEKS) {
        kpi_offset_gap_reset(g);
        return KPI_OFFSET_GAP_REAL;
    }
    g->seen = offset;
    g->batch = batch;
    g->seeks++;
    return KPI_OFFSET_SEEK;
}

#endif
