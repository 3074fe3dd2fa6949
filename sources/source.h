/*
 * source.h - the interface every source implements.
 *
 * A source feeds the engine: it owns the threads that call
 * kpi_worker_process (one per engine worker), registers its partitions as
 * engine inputs (kpi_engine_input_open/revoke/close), asks the sink where each
 * resumes, pauses while the engine is backpressured, and hands rejected
 * messages to a dead-letter destination.
 */
#ifndef KPI_SOURCE_H
#define KPI_SOURCE_H

#include <stdint.h>

#include "engine/engine.h"

struct kpi_source_ops {
    const char *name;
    /* Consume until stopped (kpi_source_stop, from any thread or a signal
     * handler) or, in exit-on-EOF mode, until every input is drained; then
     * flush through the engine and return 0, or a negative kpi_err. */
    int (*run)(void *self, char *errstr, size_t errstr_size);
    /* Async-signal-safe request to stop. */
    void (*stop)(void *self);
    void (*destroy)(void *self);
};

struct kpi_source {
    const struct kpi_source_ops *ops;
    void *self;
};

#endif
