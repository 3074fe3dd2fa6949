/*
 * flusher.c - the flusher thread: retire every shard, merge, hand the delta
 * to the sink, retry on failure.
 *
 * One cycle:
 *   1. Request a flip of every shard whose last retired buffer was merged,
 *      wake the workers, wait for their acknowledgements (shard.h).  The
 *      wait ends early only when the engine is stopping (kpi_engine_stop):
 *      the cycle is then given up, and shard->taken keeps the flip it asked
 *      for outstanding, so a later cycle waits for that same flip.
 *   2. Merge each retired buffer into the pending delta (kpi_agg_merge),
 *      fold its event counters into the totals and its progress into the
 *      inputs' taken_to / max_ts, then reset it for reuse.  If the pending
 *      table has no room (the sink has been failing for a while), the buffer
 *      stays retired and that shard is not flipped again until there is room:
 *      its worker fills its other buffer and then waits.  That is the
 *      engine's backpressure; memory stays bounded.
 *   3. Advance the watermark (monotonic): min over open inputs of their max
 *      event time, minus the allowed lateness.
 *   4. Offer the pending delta, with the offset range [flushed_to, taken_to)
 *      of every input it covers, to the sink.  On success those ranges
 *      become flushed and the pending table is emptied.  On failure the
 *      delta is kept as is (later cycles only add to it, and the ranges only
 *      extend), and the next attempt waits with capped exponential backoff.
 *
 * The delta a sink sees is therefore always "every event of these inputs
 * between these offsets", the unit the sink's exactly-once check needs.
 */
#include "engine/engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/err.h"

static void add_stats(struct kpi_shard_stats *dst, const struct kpi_shard_stats *src)
{
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *s = (const uint64_t *)src;
    for (size_t i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++)
        d[i] += s[i];
}

/* Step 2 for one retired buffer; with mu held.  0 or KPI_ERR_FULL. */
static int absorb(struct kpi_engine *e, struct kpi_shard_buf *b)
{
    int err = kpi_agg_merge(&e->pending, &b->agg);
    if (err)
        return err;
    add_stats(&e->stats.events, &b->stats);
    for (uint32_t i = 0; i < b->n_progress; i++) {
        const struct kpi_progress *p = &b->progress[i];
        struct kpi_input *in = &e->inputs[p->input];
        if (in->gen != p->gen || p->next_offset < 0)
            continue; /* an earlier life of a reused input slot */
        if (p->next_offset > in->taken_to) {
            in->taken_to = p->next_offset;
            in->active_at = kpi_mono_ms();
        }
        if (p->max_ts > in->max_ts)
            in->max_ts = p->max_ts;
    }
    kpi_agg_reset(&b->agg);
    memset(&b->stats, 0, sizeof(b->stats));
    b->n_progress = 0;
    return 0;
}

struct range_owner {
    int input;
    uint32_t gen;
};

/* Count a failed attempt under its cause; with mu held.  Returns 1 if the
 * flush state changed (ok -> failing, or another cause). */
static int note_failure(struct kpi_engine *e, int err, const char *errstr)
{
    char reason[KPI_FLUSH_REASON_MAX] = "";
    if (e->err_hooks.classify)
        e->err_hooks.classify(e->err_hooks.opaque, err, errstr, reason, sizeof(reason));
    if (!reason[0])
        snprintf(reason, sizeof(reason), "%s", kpi_err_name(err));
    struct kpi_engine_stats *st = &e->stats;
    int k = 0;
    while (k < st->n_flush_error_reasons && strcmp(st->flush_error_reasons[k].name, reason) != 0)
        k++;
    if (k == st->n_flush_error_reasons) {
        if (k == KPI_FLUSH_REASONS) {
            k = KPI_FLUSH_REASONS - 1; /* the last slot becomes "other" */
            snprintf(st->flush_error_reasons[k].name, KPI_FLUSH_REASON_MAX, "other");
        } else {
            snprintf(st->flush_error_reasons[k].name, KPI_FLUSH_REASON_MAX, "%s", reason);
            st->n_flush_error_reasons++;
        }
    }
    st->flush_error_reasons[k].count++;
    int changed = st->last_err == 0 || strcmp(st->last_reason, reason) != 0;
    st->last_err = err;
    snprintf(st->last_reason, sizeof(st->last_reason), "%s", reason);
    snprintf(st->last_error, sizeof(st->last_error), "%s", errstr[0] ? errstr : reason);
    e->failed_in_a_row++;
    return changed;
}

int kpi_flusher_cycle(struct kpi_engine *e, char *errstr, size_t errsz)
{
    char local[256];
    if (!errstr || errsz == 0) {
        errstr = local;
        errsz = sizeof(local);
    }
    errstr[0] = '\0';
    const int n = e->n_workers;
    uint64_t epoch[256];
    int held[256];

    /* 1. flip */
    for (int i = 0; i < n; i++) {
        struct kpi_shard *s = &e->workers[i]->shard;
        uint64_t cur = atomic_load_explicit(&s->epoch_req, memory_order_relaxed);
        if (s->taken != cur) {
            /* An earlier cycle asked for this flip and stopped waiting for
             * it: wait for that one; its buffer may still be written. */
            held[i] = 0;
            epoch[i] = cur;
        } else {
            /* A shard whose retired buffer (ours since we took it) is still
             * unmerged is "held": the pending table had no room for it.
             * Merge it first, without a new flip. */
            struct kpi_shard_buf *last = cur ? kpi_shard_retired(s, cur) : NULL;
            held[i] = last && (last->agg.n || last->n_progress);
            epoch[i] = held[i] ? cur : kpi_shard_request_flip(s);
        }
        atomic_store_explicit(&s->want_flip, 0, memory_order_relaxed);
    }
    pthread_mutex_lock(&e->mu);
    void (*wake)(void *, int) = e->wake;
    void *wake_opaque = e->wake_opaque;
    struct kpi_flush_target target = e->target;
    pthread_mutex_unlock(&e->mu);
    if (wake)
        for (int i = 0; i < n; i++)
            if (!held[i])
                wake(wake_opaque, i);
    for (int i = 0; i < n; i++) {
        struct kpi_shard *s = &e->workers[i]->shard;
        for (unsigned spins = 0; !kpi_shard_flip_done(s, epoch[i]); spins++) {
            /* A worker that never reaches a checkpoint must not keep
             * kpi_engine_stop waiting: give the cycle up (nothing is taken
             * or offered; shard->taken remembers the outstanding flip). */
            if (atomic_load_explicit(&e->quit, memory_order_relaxed))
                return kpi_seterr(errstr, errsz, KPI_ERR_STATE,
                                  "stopping: worker %d has not reached a checkpoint", i);
            struct timespec ts = {0, spins < 20 ? 50000 : 1000000};
            nanosleep(&ts, NULL);
        }
    }

    /* 2, 3 */
    pthread_mutex_lock(&e->mu);
    /* Complete (kpi_engine_flush_sync) only if every shard flipped in this
     * cycle and every retired buffer found room. */
    e->cycle_left_some = 0;
    for (int i = 0; i < n; i++) {
        e->workers[i]->shard.taken = epoch[i];
        int no_room = absorb(e, kpi_shard_retired(&e->workers[i]->shard, epoch[i]));
        if (held[i] || no_room)
            e->cycle_left_some = 1; /* merged, or flipped, by a later cycle */
    }
    /* The watermark's clock per input: its largest event time, but never
     * ahead of the wall clock (one event from a fast producer clock must
     * not make minutes of correct events late), and inputs that took nothing
     * for idle_timeout do not hold it back (if all are idle, it stays). */
    int64_t min_ts = INT64_MAX;
    const int64_t wall = kpi_now_ms(), mono = kpi_mono_ms();
    for (int i = 0; i < KPI_MAX_INPUTS; i++) {
        const struct kpi_input *in = &e->inputs[i];
        if (!in->open || in->max_ts < 0)
            continue;
        if (e->conf.idle_timeout_ms > 0 && mono - in->active_at >= e->conf.idle_timeout_ms)
            continue;
        int64_t t = in->max_ts < wall ? in->max_ts : wall;
        if (t < min_ts)
            min_ts = t;
    }
    int64_t wm = atomic_load_explicit(&e->watermark, memory_order_relaxed);
    if (min_ts != INT64_MAX && kpi_watermark_from(&e->windows, min_ts) > wm) {
        wm = kpi_watermark_from(&e->windows, min_ts);
        /* relaxed: see kpi_worker_checkpoint. */
        atomic_store_explicit(&e->watermark, wm, memory_order_relaxed);
    }
    struct range_owner owners[KPI_MAX_INPUTS];
    e->n_ranges = 0;
    for (int i = 0; i < KPI_MAX_INPUTS; i++) {
        struct kpi_input *in = &e->inputs[i];
        if (in->taken_to <= in->flushed_to)
            continue;
        struct kpi_offset_range *r = &e->ranges[e->n_ranges];
        strcpy(r->topic, in->topic);
        r->partition = in->partition;
        r->from = in->flushed_to;
        r->to = in->taken_to;
        owners[e->n_ranges].input = i;
        owners[e->n_ranges].gen = in->gen;
        e->n_ranges++;
    }
    e->stats.pending_cells = e->pending.n;
    pthread_mutex_unlock(&e->mu);

    if (e->pending.n == 0 && e->n_ranges == 0 && wm == e->applied_watermark) {
        /* Nothing to write: the sink may finish deferred work.  Its failure
         * is not a flush failure (no data waits on it): it is retried at the
         * next idle cycle. */
        if (target.idle)
            target.idle(target.opaque, errstr, errsz);
        pthread_mutex_lock(&e->mu);
        e->stats.last_flush_ok_ms = kpi_now_ms(); /* nothing to write is healthy too */
        pthread_mutex_unlock(&e->mu);
        return 0;
    }

    /* 4. offer */
    struct kpi_delta d = {
        .seq = e->seq + 1,
        .dims = &e->dims,
        .windows = &e->windows,
        .cells = &e->pending,
        .ranges = e->ranges,
        .n_ranges = e->n_ranges,
        .watermark = wm,
        .prev_watermark = e->applied_watermark,
    };
    int64_t t0 = kpi_mono_us();
    int err = target.flush ? target.flush(target.opaque, &d, errstr, errsz) : 0;
    uint64_t lat = (uint64_t)(kpi_mono_us() - t0);

    pthread_mutex_lock(&e->mu);
    struct kpi_flush_error_hooks hooks = e->err_hooks;
    int changed = 0;
    uint64_t failed = e->failed_in_a_row;
    int bin = 0;
    while (bin < 15 && lat >= (1000ULL << bin))
        bin++;
    e->stats.flush_lat_hist[bin]++;
    e->stats.flush_lat_us_sum += lat;
    e->flush_lat_us[e->n_flush_lat++ % KPI_FLUSH_LAT_KEEP] =
        lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
    if (err == 0) {
        for (size_t i = 0; i < e->n_ranges; i++) {
            struct kpi_input *in = &e->inputs[owners[i].input];
            if (in->gen == owners[i].gen && e->ranges[i].to > in->flushed_to)
                in->flushed_to = e->ranges[i].to;
        }
        e->seq++;
        e->applied_watermark = wm;
        e->stats.flushes++;
        e->stats.last_flush_ok_ms = kpi_now_ms();
        for (uint32_t i = 0; i < e->pending.n; i++)
            if (e->pending.cells[i].set == 0)
                e->stats.flushed_events +=
                    (uint64_t)(e->pending.cells[i].c.events +
                               e->pending.cells[i].snaps); /* base: no events */
        kpi_agg_reset(&e->pending);
        e->stats.pending_cells = 0;
        atomic_store_explicit(&e->backpressured, 0, memory_order_relaxed);
        changed = e->stats.last_err != 0;
        e->stats.last_err = 0;
        e->stats.last_reason[0] = '\0';
        e->stats.last_error[0] = '\0';
        e->failed_in_a_row = 0;
    } else {
        e->stats.flush_errors++;
        changed = note_failure(e, err, errstr);
        failed = e->failed_in_a_row;
        if (err == KPI_ERR_CONFLICT)
            atomic_store_explicit(&e->fenced, 1, memory_order_relaxed);
        else
            atomic_store_explicit(&e->backpressured, 1, memory_order_relaxed);
    }
    /* Only retired buffers are ours to read; a worker's live buffer has the
     * same capacity and keeps its sketches' memory across resets just the
     * same, so twice the retired size is the shard's size as of its last
     * flip. */
    size_t bytes = kpi_agg_memory(&e->pending);
    for (int i = 0; i < n; i++)
        bytes += 2 * kpi_agg_memory(&kpi_shard_retired(&e->workers[i]->shard, epoch[i])->agg);
    e->stats.state_bytes = bytes;
    char reason[KPI_FLUSH_REASON_MAX], msg[256];
    snprintf(reason, sizeof(reason), "%s", e->stats.last_reason);
    snprintf(msg, sizeof(msg), "%s", e->stats.last_error);
    pthread_mutex_unlock(&e->mu);
    if (changed && hooks.on_change)
        hooks.on_change(hooks.opaque, err, reason, msg, failed);
    return err;
}

static int any_want_flip(struct kpi_engine *e)
{
    for (int i = 0; i < e->n_workers; i++)
        if (atomic_load_explicit(&e->workers[i]->shard.want_flip, memory_order_relaxed))
            return 1;
    return 0;
}

void *kpi_flusher_main(void *arg)
{
    struct kpi_engine *e = arg;
    int64_t backoff = 0;
    int64_t next = kpi_mono_ms() + e->conf.flush_interval_ms;
    char errstr[256];

    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        int64_t now = kpi_mono_ms();
        int due = now >= next || e->wanted_cycle > e->cycles_started || any_want_flip(e);
        if (!due) {
            struct timespec ts;
            /* Wake at the deadline, and poll the workers' want_flip flags at
             * least every 10 ms (they also broadcast cv when they set it). */
            kpi_deadline_ts(&ts, CLOCK_MONOTONIC, next - now < 10 ? next - now : 10);
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
            continue;
        }
        uint64_t my = ++e->cycles_started;
        pthread_mutex_unlock(&e->mu);
        errstr[0] = '\0';
        int err = kpi_flusher_cycle(e, errstr, sizeof(errstr));
        pthread_mutex_lock(&e->mu);
        e->cycles_done = my;
        e->last_err = err;
        if (err == 0) {
            e->last_ok_cycle = my;
            if (!e->cycle_left_some)
                e->last_complete_cycle = my;
            backoff = 0;
            next = kpi_mono_ms() + e->conf.flush_interval_ms;
        } else {
            snprintf(e->last_errstr, sizeof(e->last_errstr), "%s",
                     errstr[0] ? errstr : kpi_err_name(err));
            backoff = backoff ? backoff * 2 : e->conf.retry_min_ms;
            if (backoff > e->conf.retry_max_ms)
                backoff = e->conf.retry_max_ms;
            next = kpi_mono_ms() + backoff;
        }
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int kpi_engine_start(struct kpi_engine *e, char *errstr, size_t errsz)
{
    pthread_mutex_lock(&e->mu);
    if (e->running) {
        pthread_mutex_unlock(&e->mu);
        return kpi_seterr(errstr, errsz, KPI_ERR_STATE, "engine already started");
    }
    e->stopping = 0;
    atomic_store_explicit(&e->quit, 0, memory_order_relaxed);
    int rc = pthread_create(&e->thread, NULL, kpi_flusher_main, e);
    if (rc == 0)
        e->running = 1;
    pthread_mutex_unlock(&e->mu);
    return rc ? kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "cannot start the flusher thread") : 0;
}

void kpi_engine_stop(struct kpi_engine *e)
{
    pthread_mutex_lock(&e->mu);
    if (!e->running) {
        pthread_mutex_unlock(&e->mu);
        return;
    }
    e->stopping = 1;
    atomic_store_explicit(&e->quit, 1, memory_order_relaxed);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    /* Cycles run inline from now on (kpi_engine_flush_sync) wait again. */
    atomic_store_explicit(&e->quit, 0, memory_order_relaxed);
    pthread_mutex_lock(&e->mu);
    e->running = 0;
    pthread_mutex_unlock(&e->mu);
}

int kpi_engine_flush_sync(struct kpi_engine *e, int64_t timeout_ms, char *errstr, size_t errsz)
{
    int64_t deadline = kpi_mono_ms() + timeout_ms;
    pthread_mutex_lock(&e->mu);
    if (!e->running) {
        /* No flusher thread: run cycles here (single caller only). */
        pthread_mutex_unlock(&e->mu);
        int64_t backoff = e->conf.retry_min_ms;
        for (;;) {
            int err = kpi_flusher_cycle(e, errstr, errsz);
            if (err == 0 && e->cycle_left_some)
                continue; /* applied, but a retired buffer is still to merge */
            if (err == 0 || err == KPI_ERR_CONFLICT || kpi_mono_ms() >= deadline)
                return err;
            struct timespec ts = {backoff / 1000, (backoff % 1000) * 1000000};
            nanosleep(&ts, NULL);
            if ((backoff *= 2) > e->conf.retry_max_ms)
                backoff = e->conf.retry_max_ms;
        }
    }
    uint64_t want = e->cycles_started + 1;
    int err = 0;
    for (;;) {
        if (e->wanted_cycle < want)
            e->wanted_cycle = want;
        pthread_cond_broadcast(&e->cv);
        while (e->cycles_done < want && !e->stopping && kpi_mono_ms() < deadline) {
            struct timespec ts;
            kpi_deadline_ts(&ts, CLOCK_MONOTONIC, 50);
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
        }
        if (e->last_complete_cycle >= want) {
            err = 0;
            break;
        }
        /* Applied but incomplete (a retired buffer had no room in the
         * pending delta): the next cycle merges it; wait for that one. */
        if (e->cycles_done < want) {
            /* No cycle ended in time (one may be waiting for a worker, or
             * for the sink). */
            err = kpi_seterr(errstr, errsz, KPI_ERR_STATE, "no flush completed within %lld ms%s%s",
                             (long long)timeout_ms, e->last_err ? "; last error: " : "",
                             e->last_err ? e->last_errstr : "");
            break;
        }
        err = e->last_ok_cycle >= want ? 0 : (e->last_err ? e->last_err : KPI_ERR_STATE);
        if (err == 0 && !e->stopping && kpi_mono_ms() < deadline) {
            want = e->cycles_done + 1;
            continue;
        }
        if (err == 0)
            err = KPI_ERR_STATE;
        if (e->stopping || err == KPI_ERR_CONFLICT || kpi_mono_ms() >= deadline) {
            kpi_seterr(errstr, errsz, err, "%s",
                       e->last_err ? e->last_errstr : "no flush completed in time");
            break;
        }
        want = e->cycles_done + 1;
    }
    pthread_mutex_unlock(&e->mu);
    return err;
}
