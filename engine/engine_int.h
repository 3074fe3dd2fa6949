/*
 * engine_int.h - the engine's private structures, shared by engine.c (workers,
 * inputs) and flusher.c (the flusher thread).  Not for sources or sinks.
 */
#ifndef KPI_ENGINE_INT_H
#define KPI_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine.h"
#include "engine/tuple_cache.h"

/*
 * An input is a partition assigned to this instance.  `state` packs the
 * input's generation (bumped at every open, so a worker notices a reused id)
 * and a revoked bit; it is written by the control thread and read by the
 * owning worker once per event (acquire; a plain load on x86).
 *
 * Revocation argument: kpi_engine_input_revoke stores the revoked bit, then
 * kpi_engine_flush_sync takes the flusher mutex and waits for a cycle that
 * *starts* after it.  That cycle's release store of epoch_req happens after
 * the revoked store (mutex, then program order), and the worker's acquire load
 * of epoch_req at its checkpoint synchronises with it; so every event the
 * worker takes after acknowledging that flip sees the bit and is dropped, and
 * every event it took before is in the retired buffer that the cycle flushes
 * together with the input's offsets.  Nothing of a revoked partition is
 * counted after its final flush, and nothing before it is lost.
 */
struct kpi_input {
    _Atomic uint32_t state; /* gen << 1 | revoked */
    /* Below: the flusher's, under e->mu. */
    int open;
    char topic[KPI_TOPIC_MAX + 1];
    int32_t partition;
    int worker;
    uint32_t gen;
    int64_t flushed_to; /* offsets below this are applied by the sink */
    int64_t taken_to;   /* offsets below this are in the pending delta */
    int64_t max_ts;     /* largest event time seen, -1 if none */
    /* Key-group floors (keygroup.h), set by input_open before the release
     * store of `state`; the worker reads them after its acquire load of the
     * new generation.  kg_floor is allocated once per slot and freed only by
     * kpi_engine_destroy, so a worker never reads freed memory. */
    int64_t *kg_floor; /* [KPI_MAX_KEY_GROUPS] */
    uint32_t kg_n;     /* 0: no floors */
    int64_t floor_max; /* events below it may be skipped for some key groups */
    int64_t active_at; /* monotonic ms when it last took a message (or opened) */
};

/* Worker-private view of an input. */
struct kpi_worker_input {
    uint32_t gen;
    uint32_t touched_epoch_plus1; /* epoch + 1 when last added to progress */
    int64_t next_offset;
    int64_t max_ts;
    int64_t floor_max;       /* copied from the input at a new generation */
    const int64_t *kg_floor; /* the input's floors (immutable for this generation) */
    uint32_t kg_n;
};

struct kpi_worker {
    struct kpi_engine *e;
    int idx;
    struct kpi_shard shard;
    /* worker-private */
    int stopped; /* refused an event because the workers were released: takes no more */
    uint64_t epoch;
    struct kpi_shard_buf *cur;
    int64_t watermark;
    uint32_t n_touched;
    uint32_t touched[KPI_MAX_INPUTS];
    struct kpi_worker_input in[KPI_MAX_INPUTS];
    struct kpi_tcache tcache; /* dimension tuple -> value ids (tuple_cache.h) */
};

struct kpi_engine {
    struct kpi_engine_conf conf;
    char *conf_strs[3];
    struct kpi_dims dims;
    struct kpi_windows windows;
    struct kpi_decoder decoder;
    int n_workers;
    struct kpi_worker **workers;
    struct kpi_input inputs[KPI_MAX_INPUTS];

    struct kpi_flush_target target;
    struct kpi_flush_error_hooks err_hooks; /* under mu */
    uint64_t failed_in_a_row; /* flusher-owned: attempts failed since the last applied */
    uint32_t flush_lat_us[KPI_FLUSH_LAT_KEEP]; /* ring, with mu; see kpi_engine_flush_latencies */
    uint64_t n_flush_lat;
    void (*wake)(void *opaque, int worker);
    void *wake_opaque;

    /* Published by the flusher, read by workers at checkpoints. */
    _Atomic int64_t watermark;
    _Atomic int backpressured;
    _Atomic int fenced;
    /* Shutdown.  workers_released: a worker waiting for room gives up
     * (kpi_engine_release_workers).  quit: the flusher stops waiting for
     * workers' acknowledgements (kpi_engine_stop).  Both are flags with no
     * data behind them: relaxed. */
    _Atomic int workers_released;
    _Atomic int quit;

    /* Flusher control plane: never touched on the per-event path. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* flusher waits for work, callers for cycles */
    pthread_t thread;
    int running;
    int stopping;
    uint64_t cycles_started;
    uint64_t cycles_done;
    uint64_t last_ok_cycle;
    uint64_t last_complete_cycle; /* applied, and left no retired buffer unmerged */
    int cycle_left_some;          /* the last cycle left a retired buffer unmerged */
    int last_err;
    char last_errstr[256];
    uint64_t wanted_cycle; /* a flush_sync caller needs this cycle */

    /* Flusher-owned state (the flusher thread, or a caller holding mu while
     * the flusher is not running). */
    struct kpi_agg pending;
    struct kpi_offset_range *ranges;
    size_t n_ranges;
    int64_t applied_watermark;
    uint64_t seq;
    struct kpi_engine_stats stats; /* under mu */
};

/* One flush cycle; called with mu NOT held.  Returns 0 or an error. */
int kpi_flusher_cycle(struct kpi_engine *e, char *errstr, size_t errstr_size);
void *kpi_flusher_main(void *arg);

#endif
