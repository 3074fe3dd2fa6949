/*
 * worker_flush.h - a synchronous flush from a test that plays a worker.
 *
 * kpi_engine_flush_sync waits for the workers to reach a checkpoint (their
 * half of the double-buffer swap, engine/shard.h).  A test that drives a
 * worker by hand is that worker, so it cannot just call it: the flush runs
 * on another thread while the test keeps reaching checkpoints.
 */
#ifndef KPI_TEST_WORKER_FLUSH_H
#define KPI_TEST_WORKER_FLUSH_H

#include <stdint.h>

#include "engine/engine.h"

/* kpi_engine_flush_sync(e, timeout_ms) while w checkpoints; then one more
 * checkpoint, to pick up the watermark that cycle published.  Its return
 * code. */
int kt_flush_from_worker(struct kpi_engine *e, struct kpi_worker *w, int64_t timeout_ms);

#endif
