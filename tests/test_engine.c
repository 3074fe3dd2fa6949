/*
 * The engine end to end without Kafka or Redis: worker threads aggregate while
 * the flusher snapshots them concurrently; an in-memory target checks that the
 * totals equal what was fed and that every input's offset ranges chain.
 * Label "concurrency": CI runs this under ThreadSanitizer.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "engine/err.h"
#include "engine/hash.h"
#include "support/worker_flush.h"

/* ---- an in-memory flush target ---- */

#define MAXV 64

struct mem_target {
    pthread_mutex_t mu;
    struct kpi_counters per_set_total[KPI_MAX_SETS];
    struct kpi_counters region[MAXV]; /* set 1 by label */
    char region_label[MAXV][32];
    int n_region;
    int64_t next_from[KPI_MAX_INPUTS]; /* by partition number */
    int ranges_broken;
    int fail_next;        /* fail this many flushes with KPI_ERR_IO */
    const char *fail_msg; /* their message (default "injected failure") */
    int conflict;
    uint64_t applied;
};

static int mem_flush(void *opaque, const struct kpi_delta *d, char *errstr, size_t errsz)
{
    struct mem_target *t = opaque;
    pthread_mutex_lock(&t->mu);
    if (t->conflict) {
        pthread_mutex_unlock(&t->mu);
        return kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT, "fenced");
    }
    if (t->fail_next > 0) {
        t->fail_next--;
        pthread_mutex_unlock(&t->mu);
        return kpi_seterr(errstr, errsz, KPI_ERR_IO, "%s",
                          t->fail_msg ? t->fail_msg : "injected failure");
    }
    for (size_t i = 0; i < d->n_ranges; i++) {
        const struct kpi_offset_range *r = &d->ranges[i];
        if (r->from != t->next_from[r->partition] || r->to <= r->from)
            t->ranges_broken++;
        t->next_from[r->partition] = r->to;
    }
    for (uint32_t i = 0; i < d->cells->n; i++) {
        const struct kpi_agg_cell *c = &d->cells->cells[i];
        kpi_counters_add(&t->per_set_total[c->set], &c->c);
        if (c->set == 1) {
            uint32_t len;
            const char *l = kpi_dims_value_label(d->dims, 1, c->vid, &len);
            int k = 0;
            while (k < t->n_region &&
                   !(strlen(t->region_label[k]) == len && !memcmp(t->region_label[k], l, len)))
                k++;
            if (k == t->n_region) {
                memcpy(t->region_label[k], l, len);
                t->region_label[k][len] = '\0';
                t->n_region++;
            }
            kpi_counters_add(&t->region[k], &c->c);
        }
    }
    t->applied++;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static struct mem_target target_state;

/* The defaults, but retries after 1-2 ms. */
static struct kpi_engine_conf quick_retries(void)
{
    struct kpi_engine_conf c;
    kpi_engine_conf_defaults(&c);
    c.retry_min_ms = 1;
    c.retry_max_ms = 2;
    return c;
}

/* An engine over c flushing into target_state, which starts empty. */
static struct kpi_engine *engine_into_target_state(const struct kpi_engine_conf *c)
{
    memset(&target_state, 0, sizeof(target_state));
    pthread_mutex_init(&target_state.mu, NULL);
    char err[256];
    struct kpi_engine *e = kpi_engine_new(c, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    struct kpi_flush_target t = {&target_state, mem_flush};
    kpi_engine_set_target(e, &t);
    return e;
}

static struct kpi_engine *make_engine(int workers, uint32_t max_cells, int64_t flush_ms)
{
    struct kpi_engine_conf c = quick_retries();
    c.n_workers = workers;
    c.max_cells = max_cells;
    c.flush_interval_ms = flush_ms;
    return engine_into_target_state(&c);
}

static const char *regions[] = {"eu-west", "eu-north", "us-east", "apac"};
static const char *plans[] = {"prepaid", "postpaid"};

/* A deterministic event n of a stream. */
static struct kpi_event event_n(uint64_t n, int64_t t0)
{
    struct kpi_event e;
    memset(&e, 0, sizeof(e));
    e.type = (enum kpi_event_type)(n % 10 < 7 ? KPI_EV_USAGE : n % 10 - 6);
    e.ts_ms = t0 + (int64_t)(n * 37 % 20000); /* spread over four base buckets */
    char sub[24];
    int len = snprintf(sub, sizeof(sub), "%llu", (unsigned long long)(n % 5000));
    e.sub_hash = kpi_murmur64a(sub, (size_t)len, 0xadc83b19ULL);
    e.amount_micros = e.type == KPI_EV_USAGE ? (int64_t)(n % 1000) * 1000 : 0;
    e.score = (uint8_t)(n % 11);
    e.survey = (uint8_t)(n % 2);
    const char *r = regions[n % 4], *p = plans[n % 2];
    e.dims[0].ptr = r;
    e.dims[0].len = (uint32_t)strlen(r);
    e.dims[1].ptr = p;
    e.dims[1].len = (uint32_t)strlen(p);
    return e;
}

struct feeder {
    struct kpi_engine *e;
    int worker;
    int inputs[4];
    int n_inputs;
    uint64_t events;
    struct kpi_counters fed;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    struct kpi_worker *w = kpi_engine_worker(f->e, f->worker);
    int64_t off[4] = {0};
    for (uint64_t n = 0; n < f->events; n++) {
        struct kpi_event ev = event_n(n * 7 + (uint64_t)f->worker, 1700000000000);
        int k = (int)(n % (uint64_t)f->n_inputs);
        cr_assert_eq(kpi_worker_add(w, f->inputs[k], off[k]++, &ev), KPI_BAD_NONE);
        kpi_counters_count(&f->fed, &ev);
        if (n % 64 == 63)
            kpi_worker_checkpoint(w);
    }
    kpi_worker_detach(w);
    return NULL;
}

static void run_feeders(struct kpi_engine *e, int workers, uint64_t per_worker,
                        struct kpi_counters *fed)
{
    struct feeder f[8];
    pthread_t th[8];
    memset(f, 0, sizeof(f));
    for (int i = 0; i < workers; i++) {
        f[i].e = e;
        f[i].worker = i;
        f[i].events = per_worker;
        f[i].n_inputs = 2;
        for (int k = 0; k < 2; k++) {
            f[i].inputs[k] = kpi_engine_input_open(e, "events", i * 2 + k, i, 0);
            cr_assert_geq(f[i].inputs[k], 0);
        }
    }
    for (int i = 0; i < workers; i++)
        pthread_create(&th[i], NULL, feed, &f[i]);
    for (int i = 0; i < workers; i++) {
        pthread_join(th[i], NULL);
        kpi_counters_add(fed, &f[i].fed);
    }
}

static void assert_counters_eq(const struct kpi_counters *a, const struct kpi_counters *b)
{
    cr_assert_eq(memcmp(a, b, sizeof(*a)), 0,
                 "events %lld vs %lld, revenue %lld vs %lld, churns %lld vs %lld",
                 (long long)a->events, (long long)b->events, (long long)a->revenue,
                 (long long)b->revenue, (long long)a->churns, (long long)b->churns);
}

Test(engine, totals_equal_events_fed_with_concurrent_snapshots)
{
    const int W = 3;
    const uint64_t N = 60000;
    struct kpi_engine *e = make_engine(W, 4096, 1);
    cr_assert_eq(kpi_engine_start(e, NULL, 0), 0);
    struct kpi_counters fed = {0};
    run_feeders(e, W, N, &fed);
    cr_assert_eq(kpi_engine_flush_sync(e, 10000, NULL, 0), 0);
    kpi_engine_stop(e);

    cr_assert_eq(fed.events, (int64_t)(W * N));
    for (int s = 0; s < 4; s++)
        assert_counters_eq(&target_state.per_set_total[s], &fed);
    cr_assert_gt(target_state.applied, 1, "the flusher ran while workers wrote");
    cr_assert_eq(target_state.ranges_broken, 0, "offset ranges chain without gaps or overlap");
    for (int p = 0; p < W * 2; p++)
        cr_assert_eq(target_state.next_from[p], (int64_t)(N / 2), "partition %d fully flushed", p);
    struct kpi_engine_stats st;
    kpi_engine_get_stats(e, &st);
    cr_assert_eq(st.events.good, W * N);
    kpi_engine_destroy(e);
}

Test(engine, region_breakdown_adds_up_to_the_total)
{
    struct kpi_engine *e = make_engine(2, 4096, 2);
    cr_assert_eq(kpi_engine_start(e, NULL, 0), 0);
    struct kpi_counters fed = {0};
    run_feeders(e, 2, 20000, &fed);
    cr_assert_eq(kpi_engine_flush_sync(e, 10000, NULL, 0), 0);
    kpi_engine_stop(e);
    cr_assert_eq(target_state.n_region, 4);
    struct kpi_counters sum = {0};
    for (int k = 0; k < target_state.n_region; k++)
        kpi_counters_add(&sum, &target_state.region[k]);
    assert_counters_eq(&sum, &fed);
    kpi_engine_destroy(e);
}

Test(engine, tiny_buffers_apply_backpressure_and_lose_nothing)
{
    /* 64 cells per buffer cannot hold one flush interval's cells: workers
     * must wait for early flips, and still every event is counted once. */
    struct kpi_engine *e = make_engine(2, 64, 1000);
    cr_assert_eq(kpi_engine_start(e, NULL, 0), 0);
    struct kpi_counters fed = {0};
    run_feeders(e, 2, 20000, &fed);
    cr_assert_eq(kpi_engine_flush_sync(e, 10000, NULL, 0), 0);
    kpi_engine_stop(e);
    assert_counters_eq(&target_state.per_set_total[0], &fed);
    cr_assert_eq(target_state.ranges_broken, 0);
    kpi_engine_destroy(e);
}

Test(engine, failing_sink_keeps_the_delta_and_retries)
{
    struct kpi_engine *e = make_engine(2, 4096, 1);
    target_state.fail_next = 5;
    cr_assert_eq(kpi_engine_start(e, NULL, 0), 0);
    struct kpi_counters fed = {0};
    run_feeders(e, 2, 10000, &fed);
    cr_assert_eq(kpi_engine_flush_sync(e, 10000, NULL, 0), 0);
    kpi_engine_stop(e);
    struct kpi_engine_stats st;
    kpi_engine_get_stats(e, &st);
    cr_assert_geq(st.flush_errors, 5);
    cr_assert_not(st.backpressured, "cleared once a flush went through");
    assert_counters_eq(&target_state.per_set_total[0], &fed);
    cr_assert_eq(target_state.ranges_broken, 0);
    kpi_engine_destroy(e);
}

Test(engine, sink_conflict_fences_the_engine)
{
    struct kpi_engine *e = make_engine(1, 4096, 1000);
    target_state.conflict = 1;
    struct kpi_counters fed = {0};
    run_feeders(e, 1, 100, &fed);
    cr_assert_eq(kpi_engine_flush_sync(e, 1000, NULL, 0), KPI_ERR_CONFLICT);
    cr_assert(kpi_engine_is_fenced(e));
    kpi_engine_destroy(e);
}

/* ---- single-worker edges: the test thread is the worker, a helper thread
 * runs the flush and the worker keeps checkpointing until it is done. ---- */

static int flush_from_worker_within(struct kpi_engine *e, struct kpi_worker *w, int64_t timeout_ms)
{
    return kt_flush_from_worker(e, w, timeout_ms);
}

static int flush_from_worker(struct kpi_engine *e, struct kpi_worker *w)
{
    return flush_from_worker_within(e, w, 10000);
}

/* The engine most tests below use: one worker, 4096 cells, 1 s flushes
 * (lateness 30 s, base bucket 5 s); its worker in *w. */
static struct kpi_engine *single_worker_engine(struct kpi_worker **w)
{
    struct kpi_engine *e = make_engine(1, 4096, 1000);
    *w = kpi_engine_worker(e, 0);
    return e;
}

/* Partition `partition` of topic "events", read by worker 0 from offset;
 * the input's id. */
static int open_input(struct kpi_engine *e, int32_t partition, int64_t offset)
{
    int in = kpi_engine_input_open(e, "events", partition, 0, offset);
    cr_assert_geq(in, 0, "input for partition %d", (int)partition);
    return in;
}

/* The worker takes ev at offset off of input in, as a good event. */
static void add_ok(struct kpi_worker *w, int in, int64_t off, const struct kpi_event *ev)
{
    cr_assert_eq(kpi_worker_add(w, in, off, ev), KPI_BAD_NONE, "offset %lld", (long long)off);
}

/* Input `in` is revoked while the sink is down (Redis, say): its revocation
 * flush fails, and it is closed with its events still pending. */
static void revoke_while_the_sink_is_down(struct kpi_engine *e, struct kpi_worker *w, int in)
{
    kpi_engine_input_revoke(e, in);
    target_state.fail_next = 1000000;
    cr_assert_neq(flush_from_worker_within(e, w, 100), 0, "the revocation flush fails");
    kpi_engine_input_close(e, in);
    target_state.fail_next = 0;
}

static struct kpi_event at(int64_t ts)
{
    struct kpi_event e = event_n(1, 0);
    e.type = KPI_EV_ACTIVATION;
    e.ts_ms = ts;
    return e;
}

Test(engine, event_behind_the_watermark_is_too_late_but_consumed)
{
    struct kpi_worker *w;
    struct kpi_engine *e = single_worker_engine(&w); /* lateness 30 s, base 5 s */
    int in = open_input(e, 0, 0);
    struct kpi_event ev = at(1000000);
    add_ok(w, in, 0, &ev);
    cr_assert_eq(flush_from_worker(e, w), 0);
    cr_assert_eq(kpi_engine_watermark(e), 970000);
    cr_assert_eq(flush_from_worker(e, w), 0);

    ev = at(969999); /* its bucket [965000, 970000) is closed */
    cr_assert_eq(kpi_worker_add(w, in, 1, &ev), KPI_BAD_TOO_LATE);
    ev = at(970000); /* within the allowed lateness: counts */
    add_ok(w, in, 2, &ev);
    cr_assert_eq(flush_from_worker(e, w), 0);

    struct kpi_engine_stats st;
    kpi_engine_get_stats(e, &st);
    cr_assert_eq(st.events.bad[KPI_BAD_TOO_LATE], 1);
    cr_assert_eq(st.events.good, 2);
    cr_assert_eq(target_state.per_set_total[0].activations, 2);
    cr_assert_eq(target_state.next_from[0], 3, "the late event's offset is consumed too");
    kpi_engine_destroy(e);
}

Test(engine, watermark_is_the_minimum_over_inputs)
{
    struct kpi_worker *w;
    struct kpi_engine *e = single_worker_engine(&w);
    int a = open_input(e, 0, 0);
    int b = open_input(e, 1, 0);
    struct kpi_event ev = at(1000000);
    kpi_worker_add(w, a, 0, &ev);
    ev = at(500000);
    kpi_worker_add(w, b, 0, &ev);
    cr_assert_eq(flush_from_worker(e, w), 0);
    cr_assert_eq(kpi_engine_watermark(e), 470000);
    kpi_engine_destroy(e);
}

Test(engine, watermark_never_moves_back)
{
    struct kpi_worker *w;
    struct kpi_engine *e = single_worker_engine(&w);
    int a = open_input(e, 0, 0);
    struct kpi_event ev = at(1000000);
    kpi_worker_add(w, a, 0, &ev);
    cr_assert_eq(flush_from_worker(e, w), 0);
    /* A newly assigned partition far behind must not reopen closed buckets. */
    int b = open_input(e, 1, 0);
    ev = at(990000);
    kpi_worker_add(w, b, 0, &ev);
    cr_assert_eq(flush_from_worker(e, w), 0);
    cr_assert_eq(kpi_engine_watermark(e), 970000);
    kpi_engine_destroy(e);
}

Test(engine, revoked_input_events_are_left_to_the_new_owner)
{
    struct kpi_worker *w;
    struct kpi_engine *e = single_worker_engine(&w);
    int in = open_input(e, 0, 100);
    struct kpi_event ev = at(1000000);
    add_ok(w, in, 100, &ev);
    add_ok(w, in, 101, &ev);
    kpi_engine_input_revoke(e, in);
    cr_assert_eq(flush_from_worker(e, w), 0);
    /* After the revocation flush, a late-arriving message of that partition
     * is not counted and its offset not consumed. */
    add_ok(w, in, 102, &ev);
    kpi_engine_input_close(e, in);
    cr_assert_eq(flush_from_worker(e, w), 0);
    cr_assert_eq(target_state.per_set_total[0].activations, 2);
    cr_assert_eq(target_state.next_from[0], 102);
    struct kpi_engine_stats st;
    kpi_engine_get_stats(e, &st);
    cr_assert_eq(st.events.revoked, 1);
    kpi_engine_destroy(e);
}

Test(engine, reopened_input_starts_from_its_new_offset)
{
    struct kpi_worker *w;
    struct kpi_engine *e = single_worker_engine(&w);
    int in = open_input(e, 0, 0);
    struct kpi_event ev = at(1000000);
    kpi_worker_add(w, in, 0, &ev);
    kpi_engine_input_revoke(e, in);
    cr_assert_eq(flush_from_worker(e, w), 0);
    kpi_engine_input_close(e, in);
    target_state.next_from[0] = 50; /* someone else consumed up to 50 meanwhile */
    int again = open_input(e, 0, 50);
    kpi_worker_add(w, again, 50, &ev);
    cr_assert_eq(flush_from_worker(e, w), 0);
    cr_assert_eq(target_state.ranges_broken, 0);
    cr_assert_eq(target_state.next_from[0], 51);
    kpi_engine_destroy(e);
}

/* The chaos campaign's double count: a partition revoked while Redis was
 * down (its revocation flush failed) comes back to the same instance with
 * its events still pending.  Reopened at the stored offset as a second input,
 * the next delta carried [100, 102) twice and counted those events twice. */
Test(engine, a_partition_back_before_its_pending_range_is_flushed_continues_that_range)
{
    struct kpi_worker *w;
    struct kpi_engine *e = single_worker_engine(&w);
    int in = open_input(e, 0, 100);
    struct kpi_event ev = at(1000000);
    add_ok(w, in, 100, &ev);
    add_ok(w, in, 101, &ev);
    target_state.next_from[0] = 100;
    revoke_while_the_sink_is_down(e, w, in);
    /* Back, at the offset Redis still holds. */
    int again = open_input(e, 0, 100);
    cr_assert_eq(kpi_engine_input_resume_at(e, again), 102, "resume after the pending events");
    add_ok(w, again, 102, &ev);
    cr_assert_eq(flush_from_worker(e, w), 0);
    cr_assert_eq(target_state.per_set_total[0].activations, 3);
    cr_assert_eq(target_state.ranges_broken, 0);
    cr_assert_eq(target_state.next_from[0], 103);
    kpi_engine_destroy(e);
}

/* If another instance stored past the pending range meanwhile, that range
 * must not be continued: a fresh input starts at the stored offset (and the
 * stale range is the sink's to fence). */
Test(engine, a_partition_back_after_someone_else_advanced_it_starts_fresh)
{
    struct kpi_worker *w;
    struct kpi_engine *e = single_worker_engine(&w);
    int in = open_input(e, 0, 100);
    struct kpi_event ev = at(1000000);
    add_ok(w, in, 100, &ev);
    revoke_while_the_sink_is_down(e, w, in);
    int again = open_input(e, 0, 150);
    cr_assert_neq(again, in);
    cr_assert_eq(kpi_engine_input_resume_at(e, again), 150);
    kpi_engine_destroy(e);
}

Test(engine, rejects_bad_configuration_with_a_message)
{
    struct kpi_engine_conf c;
    kpi_engine_conf_defaults(&c);
    c.windows = "1h/7m";
    char err[256] = "";
    cr_assert_null(kpi_engine_new(&c, err, sizeof(err)));
    cr_assert(strstr(err, "1h/7m"), "%s", err);
    kpi_engine_conf_defaults(&c);
    c.n_workers = 0;
    cr_assert_null(kpi_engine_new(&c, err, sizeof(err)));
    cr_assert(strstr(err, "workers"), "%s", err);
}

/* ---- shutdown ---- */

struct refusing_feeder {
    struct kpi_engine *e;
    int input;
    int64_t refused_at; /* offset of the first event the worker did not take */
};

static void *feed_until_refused(void *arg)
{
    struct refusing_feeder *f = arg;
    struct kpi_worker *w = kpi_engine_worker(f->e, 0);
    f->refused_at = -1;
    for (int64_t n = 0; n < 1000000; n++) {
        /* A new base bucket per event: 4 cells each, so buffers fill fast. */
        struct kpi_event ev = at(1700000000000 + n * 5000);
        cr_assert_eq(kpi_worker_add(w, f->input, n, &ev), KPI_BAD_NONE);
        if (kpi_worker_stopped(w)) {
            f->refused_at = n;
            break;
        }
        if (n % 8 == 7)
            kpi_worker_checkpoint(w);
    }
    kpi_worker_detach(w);
    return NULL;
}

/* The sink is down, so the worker's buffers and the pending delta fill and
 * the worker waits for room.  Shutdown must not wait with it: released, the
 * worker refuses the event it was adding (its offset is not consumed) and
 * everything after it; what it took before is flushed once the sink is back. */
Test(engine, released_workers_stop_waiting_for_room_and_consume_nothing_more)
{
    struct kpi_engine *e = make_engine(1, 64, 1);
    target_state.fail_next = 1 << 30;
    cr_assert_eq(kpi_engine_start(e, NULL, 0), 0);
    struct refusing_feeder f = {e, open_input(e, 0, 0), -1};
    pthread_t th;
    pthread_create(&th, NULL, feed_until_refused, &f);
    struct kpi_engine_stats st;
    for (int i = 0; i < 10000; i++) { /* polling (bounded) until the pipeline is full */
        kpi_engine_get_stats(e, &st);
        if (st.backpressured && st.pending_cells >= 64)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert(st.backpressured, "the sink's failures filled the pipeline");
    kpi_engine_release_workers(e);
    pthread_join(th, NULL); /* hangs for ever if the worker kept waiting */
    cr_assert_gt(f.refused_at, 0, "the worker took events, then refused one");
    pthread_mutex_lock(&target_state.mu);
    target_state.fail_next = 0;
    pthread_mutex_unlock(&target_state.mu);
    cr_assert_eq(kpi_engine_flush_sync(e, 10000, NULL, 0), 0);
    kpi_engine_stop(e);
    cr_assert_eq(target_state.next_from[0], f.refused_at,
                 "offsets end exactly before the refused event (%lld, flushed to %lld)",
                 (long long)f.refused_at, (long long)target_state.next_from[0]);
    cr_assert_eq(target_state.per_set_total[0].activations, f.refused_at);
    cr_assert_eq(target_state.ranges_broken, 0);
    kpi_engine_destroy(e);
}

/* A worker that never reaches a checkpoint (stuck in a call) keeps a flush
 * cycle waiting for its acknowledgement; stopping the engine must not. */
Test(engine, stop_returns_while_a_worker_never_reaches_a_checkpoint)
{
    struct kpi_engine *e = make_engine(1, 4096, 1);
    cr_assert_eq(kpi_engine_start(e, NULL, 0), 0);
    int in = open_input(e, 0, 0);
    struct kpi_event ev = at(1000000);
    cr_assert_eq(kpi_worker_add(kpi_engine_worker(e, 0), in, 0, &ev), KPI_BAD_NONE);
    cr_assert_neq(kpi_engine_flush_sync(e, 100, NULL, 0), 0, "no checkpoint, no flush");
    kpi_engine_stop(e); /* hangs for ever if the flusher keeps waiting */
    cr_assert_eq(target_state.applied, 0);
    kpi_engine_destroy(e);
}

/* ---- flush errors: counted by cause, reported once per change ---- */

struct change_log {
    int n;
    int err[8];
    char reason[8][KPI_FLUSH_REASON_MAX];
    uint64_t failed[8];
};

static void classify_first_word(void *opaque, int err, const char *errstr, char *reason,
                                size_t size)
{
    (void)opaque;
    (void)err;
    snprintf(reason, size, "%.*s", (int)strcspn(errstr, " "), errstr);
}

static void record_change(void *opaque, int err, const char *reason, const char *errstr,
                          uint64_t failed)
{
    struct change_log *l = opaque;
    (void)errstr;
    if (l->n < 8) {
        l->err[l->n] = err;
        snprintf(l->reason[l->n], KPI_FLUSH_REASON_MAX, "%s", reason);
        l->failed[l->n] = failed;
        l->n++;
    }
}

static int one_flush(struct kpi_engine *e, struct kpi_worker *w, int in, int64_t off)
{
    struct kpi_event ev = at(1000000);
    kpi_worker_add(w, in, off, &ev);
    return flush_from_worker(e, w);
}

Test(engine, flush_errors_are_counted_by_cause_and_reported_once_per_change)
{
    struct kpi_engine *e = make_engine(1, 4096, 1000);
    struct change_log log;
    memset(&log, 0, sizeof(log));
    struct kpi_flush_error_hooks h = {&log, classify_first_word, record_change};
    kpi_engine_set_error_hooks(e, &h);
    struct kpi_worker *w = kpi_engine_worker(e, 0);
    int in = open_input(e, 0, 0);
    target_state.fail_msg = "noperm no permissions";
    target_state.fail_next = 3;
    cr_assert_eq(one_flush(e, w, in, 0), 0, "retried until applied");
    target_state.fail_msg = "wrongpass bad password";
    target_state.fail_next = 2;
    cr_assert_eq(one_flush(e, w, in, 1), 0);
    target_state.fail_next = 2;
    cr_assert_eq(one_flush(e, w, in, 2), 0);
    target_state.fail_msg = "noperm again";
    target_state.fail_next = 1;
    cr_assert_eq(one_flush(e, w, in, 3), 0);

    /* noperm, ok, wrongpass, ok, wrongpass, ok, noperm, ok */
    cr_assert_eq(log.n, 8, "one report per change, not per attempt (%d)", log.n);
    cr_assert_str_eq(log.reason[0], "noperm");
    cr_assert_eq(log.err[0], KPI_ERR_IO);
    cr_assert_eq(log.err[1], 0);
    cr_assert_eq(log.failed[1], 3, "the recovery says how many attempts failed");
    cr_assert_str_eq(log.reason[2], "wrongpass");
    struct kpi_engine_stats st;
    kpi_engine_get_stats(e, &st);
    cr_assert_eq(st.n_flush_error_reasons, 2);
    cr_assert_str_eq(st.flush_error_reasons[0].name, "noperm");
    cr_assert_eq(st.flush_error_reasons[0].count, 4);
    cr_assert_str_eq(st.flush_error_reasons[1].name, "wrongpass");
    cr_assert_eq(st.flush_error_reasons[1].count, 4);
    cr_assert_eq(st.flush_errors, 8);
    cr_assert_eq(st.last_err, 0, "applied last");
    kpi_engine_destroy(e);
}

Test(engine, without_a_classifier_the_cause_is_the_error_name_and_the_message_is_kept)
{
    struct kpi_engine *e = make_engine(1, 4096, 1000);
    struct change_log log;
    memset(&log, 0, sizeof(log));
    struct kpi_flush_error_hooks h = {&log, NULL, record_change};
    kpi_engine_set_error_hooks(e, &h);
    struct kpi_worker *w = kpi_engine_worker(e, 0);
    int in = open_input(e, 0, 0);
    target_state.conflict = 1;
    struct kpi_event ev = at(1000000);
    kpi_worker_add(w, in, 0, &ev);
    cr_assert_eq(flush_from_worker(e, w), KPI_ERR_CONFLICT);
    cr_assert_eq(log.n, 1);
    cr_assert_str_eq(log.reason[0], "conflict", "without a classifier: the error's name");
    struct kpi_engine_stats st;
    kpi_engine_get_stats(e, &st);
    cr_assert_str_eq(st.last_error, "fenced", "the sink's own message is kept");
    kpi_engine_destroy(e);
}

/* ---- the watermark's clock ---- */

/* One event stamped by a producer whose clock runs 4 minutes fast (within
 * engine.max_skew) must not make the next minutes of correct events late. */
Test(engine, an_event_from_the_future_moves_the_watermark_no_further_than_the_wall_clock)
{
    struct kpi_worker *w;
    struct kpi_engine *e = single_worker_engine(&w); /* lateness 30 s */
    int in = open_input(e, 0, 0);
    struct kpi_event ev = at(kpi_now_ms() + 240000);
    add_ok(w, in, 0, &ev);
    cr_assert_eq(flush_from_worker(e, w), 0);
    cr_assert_leq(kpi_engine_watermark(e), kpi_now_ms() - 30000,
                  "the watermark follows the wall clock, not the future event");
    ev = at(kpi_now_ms() - 1000); /* a correct event, a second old */
    cr_assert_eq(kpi_worker_add(w, in, 1, &ev), KPI_BAD_NONE, "is not late");
    cr_assert_eq(flush_from_worker(e, w), 0);
    cr_assert_eq(target_state.per_set_total[0].activations, 2);
    kpi_engine_destroy(e);
}

static struct kpi_engine *make_engine_idle(int64_t idle_ms)
{
    struct kpi_engine_conf c = quick_retries();
    c.n_workers = 1;
    c.idle_timeout_ms = idle_ms;
    return engine_into_target_state(&c);
}

/* Partition 1 goes quiet while partition 0 keeps going: feed partition 0
 * (and flush) until the watermark passes partition 1's last event time, or
 * give up at `deadline_ms` of wall time.  Returns the watermark reached. */
static int64_t run_one_quiet_partition(struct kpi_engine *e, int64_t t0, int64_t deadline_ms)
{
    struct kpi_worker *w = kpi_engine_worker(e, 0);
    int busy = open_input(e, 0, 0);
    int quiet = open_input(e, 1, 0);
    struct kpi_event ev = at(t0);
    kpi_worker_add(w, busy, 0, &ev);
    kpi_worker_add(w, quiet, 0, &ev);
    cr_assert_eq(flush_from_worker(e, w), 0);
    cr_assert_eq(kpi_engine_watermark(e), t0 - 30000);
    int64_t end = kpi_now_ms() + deadline_ms;
    for (int64_t k = 1; kpi_engine_watermark(e) <= t0 && kpi_now_ms() < end; k++) {
        ev = at(t0 + k * 1000);
        kpi_worker_add(w, busy, k, &ev);
        cr_assert_eq(flush_from_worker(e, w), 0);
    }
    return kpi_engine_watermark(e);
}

Test(engine, an_idle_partition_stops_holding_the_watermark_back)
{
    struct kpi_engine *e = make_engine_idle(200);
    const int64_t t0 = 1700000000000;
    int64_t wm = run_one_quiet_partition(e, t0, 60000);
    cr_assert_gt(wm, t0, "the busy partition's clock moves the watermark on");
    const struct kpi_windows *ws = kpi_engine_windows(e);
    cr_assert(kpi_window_bucket_closed(&ws->w[0], kpi_bucket_start(t0, ws->w[0].slide_ms), wm),
              "and the buckets of the quiet partition's last events close");
    kpi_engine_destroy(e);
}

Test(engine, without_an_idle_timeout_a_quiet_partition_holds_the_watermark)
{
    struct kpi_engine *e = make_engine_idle(0);
    const int64_t t0 = 1700000000000;
    cr_assert_eq(run_one_quiet_partition(e, t0, 1000), t0 - 30000);
    kpi_engine_destroy(e);
}
