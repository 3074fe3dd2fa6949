/*
 * mem_sink.h - an in-memory sink with the Redis sink's fencing rule, for
 * tests that exercise sources and rebalances without Redis.
 *
 * flush applies a delta only if, for every range, the stored offset equals
 * `from` (or none is stored); a delta whose ranges all end where the stored
 * offsets are is a replay (no-op, success); anything else is a conflict.
 * Several sources may share one mem_sink (two instances of a group).
 */
#ifndef KPI_TEST_MEM_SINK_H
#define KPI_TEST_MEM_SINK_H

#include <pthread.h>
#include <stdint.h>

#include "engine/kpi.h"
#include "sinks/sink.h"

#define MEM_SINK_PARTS 64

struct mem_sink {
    pthread_mutex_t mu;
    struct kpi_counters total;      /* set 0 ("all") */
    int64_t stored[MEM_SINK_PARTS]; /* next offset by partition, -1 if none */
    char topic[256];                /* the one topic it tracks */
    uint64_t applied, replays, conflicts;
    int fail_io;        /* >0: fail this many flushes with KPI_ERR_IO */
    const char *refuse; /* non-NULL: refuse every flush for good (KPI_ERR_CONFLICT) with this */
};

void mem_sink_init(struct mem_sink *m, const char *topic);
struct kpi_sink mem_sink_as_sink(struct mem_sink *m);
/* Events counted so far (thread-safe). */
int64_t mem_sink_events(struct mem_sink *m);
/* Sum of stored next offsets over partitions (thread-safe). */
int64_t mem_sink_offsets_total(struct mem_sink *m);

#endif
