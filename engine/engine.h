/*
 * engine.h - the kpistream engine: workers aggregate, a flusher hands deltas
 * to a sink.
 *
 *   source threads (one per worker)            flusher thread
 *   -------------------------------            --------------
 *   kpi_worker_process(msg) per message        every flush interval, or on demand:
 *   kpi_worker_checkpoint() between batches      retire every shard (shard.h)
 *                                                merge them into the pending delta
 *                                                advance the watermark
 *                                                target->flush(delta)  (the sink)
 *
 * The engine knows nothing of Kafka or Redis.  A source registers *inputs*
 * (partitions) and feeds their messages with offsets; a sink receives deltas
 * (struct kpi_delta) carrying the counters, sketches and the offset range of
 * every input they cover, and applies them atomically.  If the sink fails the
 * delta is kept (and grows only within its bounded table) and retried with
 * backoff; kpi_engine_is_backpressured() tells the source to pause meanwhile.
 */
#ifndef KPI_ENGINE_H
#define KPI_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/aggregate.h"
#include "engine/decode.h"
#include "engine/dims.h"
#include "engine/shard.h"
#include "engine/window.h"

#define KPI_TOPIC_MAX 250

struct kpi_engine_conf {
    const char *dims;     /* dimension fields, "region,plan,segment" */
    const char *sets;     /* grouping sets, "region,region+plan,segment" */
    uint32_t card_limit;  /* values per grouping set before __other__ */
    const char *windows;  /* "1m/5s,1h/1m,24h/1h" */
    int64_t lateness_ms;  /* allowed lateness behind the max event time */
    int64_t max_skew_ms;  /* how far in the future an event time may be */
    uint32_t max_str_len; /* longest accepted string value */
    int n_workers;
    int64_t flush_interval_ms;
    uint32_t max_cells;   /* per shard buffer: bucket x value cells between flushes */
    int64_t retry_min_ms; /* sink retry backoff: first wait ... */
    int64_t retry_max_ms; /* ... doubling up to this */
    /* An input that took no message for this long (processing time) stops
     * holding the watermark back (Flink's withIdleness); 0: never.  Default
     * 60000. */
    int64_t idle_timeout_ms;
};

void kpi_engine_conf_defaults(struct kpi_engine_conf *c);

/* One input's part of a delta: the delta holds exactly the events at offsets
 * [from, to) of this partition.  A sink applies a delta only if, for every
 * range, the offset it stored last is `from` (see docs/exactly-once.md). */
struct kpi_offset_range {
    char topic[KPI_TOPIC_MAX + 1];
    int32_t partition;
    int64_t from;
    int64_t to;
};

struct kpi_delta {
    uint64_t seq; /* 1, 2, ... per engine */
    const struct kpi_dims *dims;
    const struct kpi_windows *windows;
    const struct kpi_agg *cells; /* base-bucket cells */
    const struct kpi_offset_range *ranges;
    size_t n_ranges;
    int64_t watermark;      /* INT64_MIN while unknown */
    int64_t prev_watermark; /* watermark of the last applied delta */
};

/* What the flusher calls.  Return 0 when the delta is durably applied (or
 * was already: a replay), KPI_ERR_IO to have it retried later, or
 * KPI_ERR_CONFLICT when the sink's offsets show another instance owns an
 * input: the engine is then fenced (kpi_engine_is_fenced) and stops. */
struct kpi_flush_target {
    void *opaque;
    int (*flush)(void *opaque, const struct kpi_delta *d, char *errstr, size_t errstr_size);
    /* Optional: called instead of flush when a cycle has nothing to write. */
    int (*idle)(void *opaque, char *errstr, size_t errstr_size);
};

/* Failed flush attempts by cause (the `reason` label of
 * kpistream_flush_errors_total); see kpi_flush_error_hooks. */
#define KPI_FLUSH_REASONS    16 /* distinct causes kept; more fold into "other" */
#define KPI_FLUSH_REASON_MAX 24
struct kpi_flush_reason {
    char name[KPI_FLUSH_REASON_MAX];
    uint64_t count;
};

struct kpi_engine_stats {
    struct kpi_shard_stats events; /* totals over all workers */
    uint64_t flushes;              /* deltas applied */
    uint64_t flushed_events;       /* valid events in applied deltas */
    int64_t last_flush_ok_ms;      /* wall clock of the last applied delta, 0 if none */
    uint64_t flush_errors;         /* failed attempts */
    struct kpi_flush_reason flush_error_reasons[KPI_FLUSH_REASONS];
    int n_flush_error_reasons;
    int last_err;                           /* the last attempt's error, 0 if it was applied */
    char last_reason[KPI_FLUSH_REASON_MAX]; /* its cause, "" if none */
    char last_error[256];                   /* its message, "" if none */
    uint64_t flush_lat_us_sum;
    uint64_t flush_lat_hist[16]; /* attempts by latency: < 1ms * 2^i (last: the rest) */
    uint64_t pending_cells;
    size_t state_bytes; /* aggregation memory of shards + pending */
    int64_t watermark;
    int backpressured;
    int fenced;
};

struct kpi_engine;
struct kpi_worker;

struct kpi_engine *kpi_engine_new(const struct kpi_engine_conf *conf, char *errstr,
                                  size_t errstr_size);
/* Stops the flusher if running (without a final flush) and frees everything. */
void kpi_engine_destroy(struct kpi_engine *e);

const struct kpi_dims *kpi_engine_dims(const struct kpi_engine *e);
const struct kpi_windows *kpi_engine_windows(const struct kpi_engine *e);
const struct kpi_engine_conf *kpi_engine_conf(const struct kpi_engine *e);

void kpi_engine_set_target(struct kpi_engine *e, const struct kpi_flush_target *t);

/* Flush errors, for the operator.  Both callbacks run on the flusher's
 * thread (or kpi_engine_flush_sync's, when the flusher is not running).
 *  - classify: names the cause of a failed attempt from the error and the
 *    sink's message (a short lower-case word: the metric label); without it,
 *    kpi_err_name(err).
 *  - on_change: called once per change of the flush state: when flushes
 *    start failing, when the cause changes, and (err == 0) when one is applied
 *    again after failures.  failed counts the attempts that failed in the
 *    state being left (on recovery) or so far. */
struct kpi_flush_error_hooks {
    void *opaque;
    void (*classify)(void *opaque, int err, const char *errstr, char *reason, size_t size);
    void (*on_change)(void *opaque, int err, const char *reason, const char *errstr,
                      uint64_t failed);
};
void kpi_engine_set_error_hooks(struct kpi_engine *e, const struct kpi_flush_error_hooks *h);
/* Called by the flusher when it wants worker `w` to reach a checkpoint soon
 * (e.g. rd_kafka_queue_yield on that worker's queue). */
void kpi_engine_set_wake(struct kpi_engine *e, void (*wake)(void *opaque, int worker),
                         void *opaque);

/* Start the flusher thread. */
int kpi_engine_start(struct kpi_engine *e, char *errstr, size_t errstr_size);
/* Run flush cycles until one started after this call has been applied and
 * left nothing behind: everything the workers took before their first
 * checkpoint after this call is then applied.  Returns 0, or the last error
 * after `timeout_ms` of failed retries. */
int kpi_engine_flush_sync(struct kpi_engine *e, int64_t timeout_ms, char *errstr,
                          size_t errstr_size);
/* Stop the flusher thread (no final flush: call kpi_engine_flush_sync first).
 * Returns once the cycle in progress, if any, ends: at once if it is waiting
 * for a worker's checkpoint, else when the sink's call returns. */
void kpi_engine_stop(struct kpi_engine *e);

/* Inputs.  Called from a control thread (e.g. a rebalance callback).
 * open: the worker that will feed it and the offset it resumes from; returns
 * the input id (>= 0) or a negative kpi_err. */
int kpi_engine_input_open(struct kpi_engine *e, const char *topic, int32_t partition, int worker,
                          int64_t start_offset);
/* The same, for a sink with key groups (keygroup.h) whose stored offsets for
 * this partition differ: start_offset is the smallest, floors[k] (k < n_floors,
 * n_floors = the sink's K) the offset key group k stored.  An event at offset
 * o then counts only for the values whose key group has floors[kg] <= o, so a
 * key group that is ahead never gets an event twice. */
int kpi_engine_input_open_floors(struct kpi_engine *e, const char *topic, int32_t partition,
                                 int worker, int64_t start_offset, const int64_t *floors,
                                 uint32_t n_floors);
/* Where the consumer of an input just opened must resume: start_offset, or
 * further on when the partition comes back to this instance while the events
 * it took before losing it are still in the pending delta (the revocation
 * flush failed).  The input then continues that range instead of opening a
 * second one over the same offsets, which would count them twice. */
int64_t kpi_engine_input_resume_at(struct kpi_engine *e, int input);
/* The id of an open input, or -1. */
int kpi_engine_input_find(struct kpi_engine *e, const char *topic, int32_t partition);
/* From now on the input's events are dropped by its worker (the partition is
 * leaving); call kpi_engine_flush_sync next, then kpi_engine_input_close. */
void kpi_engine_input_revoke(struct kpi_engine *e, int input);
void kpi_engine_input_close(struct kpi_engine *e, int input);

/* Offsets below this are applied by the sink (for advisory commits), or -1. */
int64_t kpi_engine_input_flushed(struct kpi_engine *e, int input);

int kpi_engine_is_backpressured(const struct kpi_engine *e);
int kpi_engine_is_fenced(const struct kpi_engine *e);
int64_t kpi_engine_watermark(const struct kpi_engine *e);
void kpi_engine_get_stats(struct kpi_engine *e, struct kpi_engine_stats *out);

/* The sink latencies of the last (up to) KPI_FLUSH_LAT_KEEP flush attempts,
 * in microseconds, oldest first; returns how many were written to out[max].
 * For exact percentiles at exit (the /metrics histogram is coarser). */
#define KPI_FLUSH_LAT_KEEP 4096
size_t kpi_engine_flush_latencies(struct kpi_engine *e, uint32_t *out, size_t max);

/* Workers.  Each worker's functions are called from one thread at a time. */
struct kpi_worker *kpi_engine_worker(struct kpi_engine *e, int idx);

/* Decode and aggregate one message of `input` at `offset`.  Returns
 * KPI_BAD_NONE when aggregated, or the reason it was not (bad input or
 * too_late: the caller dead-letters it).  Either way the offset is consumed.
 * Events that are not taken return KPI_BAD_NONE with *dropped = 1 (when
 * dropped is non-NULL) and their offset is not consumed: events of a revoked
 * input (left to the new owner), and every event once the worker is stopped
 * (kpi_worker_stopped). */
enum kpi_bad_reason kpi_worker_process(struct kpi_worker *w, int input, int64_t offset,
                                       const void *msg, size_t len, int64_t now_ms, int *dropped);
/* Same, for an already decoded event. */
enum kpi_bad_reason kpi_worker_add(struct kpi_worker *w, int input, int64_t offset,
                                   const struct kpi_event *ev);
/* Shutdown: a worker waiting for room in its buffer (the sink is failing)
 * gives up instead of waiting for ever.  The event it was adding is not
 * taken and the worker is *stopped*: it takes nothing more, so no offset is
 * consumed past one that was not.  Call before joining the workers' threads;
 * what they took before is flushed as usual (kpi_engine_flush_sync). */
void kpi_engine_release_workers(struct kpi_engine *e);
/* 1 once the worker refused an event because the workers were released: its
 * feeder should stop (and leave the rest of its batch unconsumed). */
int kpi_worker_stopped(const struct kpi_worker *w);

/* Between batches and when idle: lets the flusher retire the shard. */
void kpi_worker_checkpoint(struct kpi_worker *w);
/* The worker will not be called again (its thread is ending). */
void kpi_worker_detach(struct kpi_worker *w);

#endif
