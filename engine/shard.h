/*
 * shard.h - a worker's aggregation state, double-buffered so the flusher can
 * take it without stopping the worker or taking a lock.
 *
 * Each worker thread owns one shard: two buffers, each an aggregation table
 * (aggregate.h) plus counters of good/bad events and the progress (next
 * offset, max event time) of every input the worker touched.  The worker
 * writes into one buffer; the flusher *retires* it with an epoch handshake and
 * reads it while the worker goes on in the other.  The handshake is the only
 * synchronisation between them: no atomics on the per-event path.
 *
 *      flusher                                 worker
 *      -------                                 ------
 *      reset buf[e & 1] (retired last time)
 *      store(epoch_req, e, release) ---------> at a checkpoint (between batches):
 *                                              load(epoch_req, acquire) == e
 *                                              write progress into buf[(e-1) & 1]
 *                                              cur = buf[e & 1]
 *      load(epoch_ack, acquire) == e  <------- store(epoch_ack, e, release)
 *      read buf[(e-1) & 1]: all of it          aggregate into buf[e & 1] only
 *
 * Why this is race-free.  (1) Every write the worker made to buf[(e-1)&1] is
 * sequenced before its release store of epoch_ack = e; the flusher's acquire
 * load that reads e synchronises with it, so the flusher sees the complete
 * buffer, and the worker never touches that buffer again until it observes
 * epoch_req = e + 1.  (2) The flusher resets buf[e&1] before its release store
 * of epoch_req = e; the worker's acquire load that reads e synchronises with
 * that, so the worker starts on a clean buffer.  (3) epoch_req and epoch_ack
 * each have exactly one writer, so there is no read-modify-write anywhere.
 *
 * A worker that has stopped for good *detaches* (after writing its progress,
 * store(detached, 1, release)); from then on the flusher performs both sides of
 * the handshake itself.
 */
#ifndef KPI_SHARD_H
#define KPI_SHARD_H

#include <stdatomic.h>
#include <stdint.h>

#include "engine/aggregate.h"
#include "engine/decode.h"
#include "engine/dims.h"

#define KPI_MAX_INPUTS 1024 /* partitions one engine instance can hold at once */

struct kpi_shard_stats {
    uint64_t good;
    uint64_t by_type[KPI_EV__COUNT];
    uint64_t bad[KPI_BAD__COUNT];    /* decoder reasons and too_late */
    uint64_t overflow[KPI_MAX_SETS]; /* events whose value folded into __other__ */
    uint64_t revoked;                /* events of revoked inputs, left to the new owner */
    uint64_t hll_nomem;              /* sketch could not turn dense (count underestimated) */
};

struct kpi_progress {
    uint32_t input;
    uint32_t gen;        /* the input's generation (see engine.c) */
    int64_t next_offset; /* offset after the last event taken (good, bad or late) */
    int64_t max_ts;      /* largest event time aggregated, or -1 */
};

struct kpi_shard_buf {
    struct kpi_agg agg;
    struct kpi_shard_stats stats;
    uint32_t n_progress;
    struct kpi_progress progress[KPI_MAX_INPUTS];
};

struct kpi_shard {
    struct kpi_shard_buf buf[2];
    _Atomic uint64_t epoch_req; /* written by the flusher only */
    _Atomic uint64_t epoch_ack; /* written by the worker only (or the flusher once detached) */
    _Atomic int detached;
    _Atomic int want_flip; /* worker -> flusher: my buffer is full, flip early */
    /* The flusher's own: the last epoch whose retired buffer it took.  Below
     * epoch_req while a flip it asked for is not acknowledged yet (a cycle
     * that gave up waiting: the next cycle waits for that flip instead of
     * asking for another, and never reads a buffer the worker may still
     * write). */
    uint64_t taken;
};

int kpi_shard_init(struct kpi_shard *s, uint32_t max_cells);
void kpi_shard_fini(struct kpi_shard *s);

/* Flusher side: ask for a flip.  Returns the epoch to wait for. */
uint64_t kpi_shard_request_flip(struct kpi_shard *s);
/* Flusher side: 1 once the worker acknowledged `epoch` (or is detached, in
 * which case the flusher completes the flip itself); then
 * kpi_shard_retired() is the flusher's to read and reset. */
int kpi_shard_flip_done(struct kpi_shard *s, uint64_t epoch);
struct kpi_shard_buf *kpi_shard_retired(struct kpi_shard *s, uint64_t epoch);

#endif
