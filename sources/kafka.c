/*
 * kafka.c - the Kafka source (see kafka.h).
 *
 * Threads.  The run() thread owns the consumer handle: it polls the consumer
 * queue, which carries only rebalance events, errors and statistics, because
 * every assigned partition's queue is forwarded (rd_kafka_queue_forward) to
 * one worker's queue before the partition is assigned.  Each worker thread
 * consumes its queue in batches (rd_kafka_consume_batch_queue), feeds every
 * message to kpi_worker_process and calls kpi_worker_checkpoint between
 * batches; the engine's flusher wakes it with rd_kafka_queue_yield.
 *
 * Exactly once, on this side (docs/exactly-once.md has the sink's side):
 *  - Assignment: every partition resumes at the offset the sink stored with
 *    the data (retrying while the sink is unreachable: never from a guess).
 *    Only when the sink has none does it start at the partition's low
 *    watermark.  The engine input is opened with that offset, so the first
 *    delta's range starts exactly where the sink's stored offset is.
 *  - Revocation: (1) kpi_engine_input_revoke sets the input's revoked bit,
 *    (2) kpi_engine_flush_sync runs a flush cycle that starts after it: each
 *    worker acknowledges the flip at a batch boundary, so everything it took
 *    from the partition before is in the flushed delta with its offsets and
 *    everything after is dropped (engine_int.h has the memory-order
 *    argument), (3) the input is closed and the partition's queue
 *    unforwarded, (4) only then is the partition released to the group.  A
 *    message of a revoked partition still in a worker's queue finds no input
 *    (the map says -1) and is skipped: the new owner reads it again from the
 *    offset this flush stored.
 *  - Dead letters: the engine's flush target is wrapped so that no offset
 *    moves past a dead letter that was not delivered.  A worker produces a
 *    message's dead letter before its next checkpoint, so by the time a
 *    flush cycle has the worker's events, each of their dead letters is
 *    either in the producer's queue or, if producing it failed, in the
 *    source's list of undelivered dead letters (a copy).  A failed delivery
 *    report puts a copy in that list too.  The flush target first produces
 *    that list again, then flushes the producer (bounded wait), and refuses
 *    the flush (KPI_ERR_IO: retried with backoff, consumption paused) while
 *    anything is left in the list or in flight.  A dead-letter topic that
 *    cannot be written therefore holds every offset back, and says so:
 *    /healthz (kpi_source_kafka_health) and kpistream_dead_letters_blocked.
 *    The producer gets the same kafka.* properties as the consumer
 *    (security.protocol, sasl.*, ssl.* ...).
 *  - Kafka's own committed offsets are advisory (lag monitoring): committed
 *    asynchronously from what the sink has applied.
 *
 * Backpressure without pause/resume.  While the engine is backpressured (the
 * sink is failing) the workers stop taking messages; librdkafka stops
 * fetching once its local queue reaches queued.max.messages.kbytes, so memory
 * stays bounded and nothing is dropped.  We do not use
 * rd_kafka_pause_partitions: in librdkafka 2.0.x (Debian 12's),
 * rd_kafka_consume_batch_queue intermittently skips offsets across a pause
 * and resume (fixed upstream in 2.1.0, librdkafka PR #4235), and a skipped
 * offset inside a flushed range would be an event silently lost.
 * tests/test_kafka_mock.c (the_sink_failing...) caught it.  A broker restart
 * restarts fetching the same way, and the fault campaign lost events there;
 * so each worker checks that a partition's offsets arrive contiguously
 * (offset_order.h): a redelivery is skipped, a gap makes it seek back and
 * read the missing offsets (kpistream_offset_seeks_total), and only a gap
 * the re-fetch confirms is accepted (kpistream_offset_gaps_total: compacted
 * or transactional topics have them).
 *
 * Stopping in time.  From the moment the run loop sees the stop request,
 * everything the source waits for shares one budget, conf.shutdown_timeout_ms
 * (budget_ms()): workers are released (a worker waiting for room in a full
 * buffer gives up and leaves its event unconsumed, kpi_engine_release_workers),
 * the final flush, the mid-join settle below, the revocations while leaving
 * the group (rd_kafka_consumer_close_queue, served with a deadline) and the
 * dead-letter producer's last flush.  Whatever could not be flushed in time
 * is not acknowledged: its offsets are not stored and whoever consumes the
 * partition next reads it again.  A revocation during a rebalance waits
 * conf.shutdown_timeout_ms for its flush, too.
 *
 * Leaving mid-join.  librdkafka 2.0.x aborts in rd_kafka_destroy
 * (rd_kafka_sticky_assignor_state_destroy: Assertion `assignor_state'
 * failed) when a cooperative-sticky consumer is destroyed after a JoinGroup
 * succeeded but before its first SyncGroup delivered an assignment: the
 * group remembers the assignor, whose state only the first assignment
 * creates (librdkafka issue #4312, fixed in 2.3.0 by PR #4381).  An instance
 * stopped while it joins a busy group is exactly that.  So on the way out,
 * an instance that has a member id but has not yet seen its first
 * assignment callback keeps serving the consumer queue until that callback
 * arrives (librdkafka calls it even for an empty assignment) and takes the
 * assignment without opening inputs; only then does it close.  If the
 * assignment does not come within JOIN_SETTLE_MS (the coordinator is gone),
 * the handle is left to the exit instead of destroyed: a leak at shutdown,
 * not an abort.  tests/test_kafka_mock.c (stopping_between_join_and_sync...)
 * holds a SyncGroup back to stop in exactly that window.
 */
#include "sources/kafka.h"
#include "engine/keygroup.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/list.h"
#include "base/log.h"
#include "engine/err.h"
#include "sources/offset_order.h"

#define MAX_TOPICS     16
#define MAX_PARTS      1024 /* partitions per topic this source maps */
#define BATCH          1024
#define JOIN_SETTLE_MS 30000 /* how long leaving waits for a pending first assignment */
#define DLQ_FLUSH_MS   2000  /* how long one flush waits for dead letters in flight */
#define DLQ_HEADROOM   4096  /* bytes of a dead letter kept for headers and framing */

struct part {
    int used;
    int topic; /* index into topics */
    int32_t partition;
    int input;
    int worker;
    rd_kafka_queue_t *q;
    int64_t eof_target; /* high watermark at assignment */
    int64_t lag;        /* from the last statistics pass */
};

/* A dead letter that could not be produced or delivered: a copy, produced
 * again by the flush target.  Owns its buffers and headers. */
struct dead_letter {
    struct dead_letter *next;
    void *payload;
    size_t len;
    void *key;
    size_t key_len;
    rd_kafka_headers_t *headers;
};

struct kafka_src {
    struct kpi_kafka_conf conf;
    struct kpi_engine *e;
    struct kpi_sink *store;
    rd_kafka_t *rk;
    rd_kafka_t *dlq;
    char dlq_topic[KPI_TOPIC_MAX + 1];
    int n_topics;
    char topics[MAX_TOPICS][KPI_TOPIC_MAX + 1];
    _Atomic int input_of[MAX_TOPICS][MAX_PARTS];        /* -1: not assigned here */
    _Atomic int64_t next_offset[MAX_TOPICS][MAX_PARTS]; /* progress, for EOF detection */
    /* Out-of-order deliveries (offset_order.h); only the partition's worker
     * touches its entry, reset by assign() before the queue is forwarded. */
    struct kpi_offset_gap gap[MAX_TOPICS][MAX_PARTS];
    int n_workers;
    rd_kafka_queue_t **wq;
    pthread_t *threads;
    int next_worker;
    pthread_mutex_t mu; /* parts[] and stats, control plane only */
    struct part parts[KPI_MAX_INPUTS];
    struct kpi_flush_target inner;
    _Atomic int stop;
    _Atomic int workers_stop;
    int paused;
    int closing;            /* leaving: assignments are taken without opening inputs */
    int64_t stop_deadline;  /* run thread: monotonic ms by which stopping must end; 0 running */
    int close_timed_out;    /* the consumer did not finish leaving the group in time */
    int final_flush_failed; /* then revocations while leaving do not try again */
    int ever_assigned;      /* an assignment callback was served (the assignor has state) */
    int leak_on_destroy;    /* left mid-join: rd_kafka_destroy would abort (top comment) */
    struct kpi_kafka_stats stats;
    _Atomic uint64_t dlq_produced, dlq_retried, dlq_errors, offset_gaps, offset_seeks,
        offset_redeliveries;
    /* Undelivered dead letters (top comment); workers, delivery reports and
     * the flusher touch them, on the dead-letter path only. */
    pthread_mutex_t dlq_mu;
    struct dead_letter *dlq_pending;
    size_t dlq_n_pending;
    char dlq_why[256];    /* last produce or delivery error */
    size_t dlq_max_bytes; /* the producer's message.max.bytes */
    int dlq_blocked;      /* the last flush was refused for undelivered dead letters */
    char errstr[512];
    int fatal;
};

void kpi_kafka_conf_defaults(struct kpi_kafka_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->brokers = "127.0.0.1:9092";
    c->topics = "events";
    c->group_id = "kpistream";
    c->offset_retry_ms = 60000;
    c->shutdown_timeout_ms = 30000;
}

/* How long a wait may last: `normal` while running, what is left of the
 * shutdown budget once stopping (top comment). */
static int64_t budget_ms(const struct kafka_src *s, int64_t normal)
{
    if (!s->stop_deadline)
        return normal;
    int64_t left = s->stop_deadline - kpi_mono_ms();
    left = left > 0 ? left : 0;
    return left < normal ? left : normal;
}

static void nap_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int topic_index(struct kafka_src *s, const char *name)
{
    for (int i = 0; i < s->n_topics; i++)
        if (strcmp(s->topics[i], name) == 0)
            return i;
    return -1;
}

/* ---- dead letters ---- */

/* Why the dead-letter producer refused a message: err, and for a fatal
 * error the producer's own reason. */
static void produce_failure(struct kafka_src *s, rd_kafka_resp_err_t err, char *why, size_t size)
{
    char fatal[200] = "";
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        rd_kafka_fatal_error(s->dlq, fatal, sizeof(fatal));
    snprintf(why, size, "produce failed: %s%s%s", rd_kafka_err2str(err), fatal[0] ? ": " : "",
             fatal);
}

/* Parks d (taken) in the list of dead letters still to produce, with the
 * reason the last attempt failed. */
static void dlq_park(struct kafka_src *s, struct dead_letter *d, const char *why)
{
    pthread_mutex_lock(&s->dlq_mu);
    d->next = s->dlq_pending;
    s->dlq_pending = d;
    s->dlq_n_pending++;
    snprintf(s->dlq_why, sizeof(s->dlq_why), "%s", why);
    pthread_mutex_unlock(&s->dlq_mu);
    atomic_fetch_add(&s->dlq_errors, 1);
}

/* Keep a copy of a dead letter that is not on its way (top comment).  Takes
 * ownership of `h` (may be NULL). */
static void dlq_keep(struct kafka_src *s, const void *payload, size_t len, const void *key,
                     size_t key_len, rd_kafka_headers_t *h, const char *why)
{
    struct dead_letter *d = calloc(1, sizeof(*d));
    if (d) {
        d->payload = len ? malloc(len) : NULL;
        d->key = key_len ? malloc(key_len) : NULL;
    }
    if (!d || (len && !d->payload) || (key_len && !d->key)) {
        /* Without memory for the copy the dead letter would be lost: stop
         * rather than move offsets past it. */
        kpi_log(KPI_LOG_ERROR, "kafka", "out of memory keeping an undelivered dead letter");
        abort();
    }
    if (len)
        memcpy(d->payload, payload, len);
    if (key_len)
        memcpy(d->key, key, key_len);
    d->len = len;
    d->key_len = key_len;
    d->headers = h;
    dlq_park(s, d, why);
}

static void dead_letter_free(struct dead_letter *d)
{
    free(d->payload);
    free(d->key);
    if (d->headers)
        rd_kafka_headers_destroy(d->headers);
    free(d);
}

static void dlq_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)opaque;
    if (!m->err)
        return;
    /* Not delivered even after librdkafka's own retries: keep a copy; the
     * next flush produces it again and waits for it. */
    struct kafka_src *s = rd_kafka_opaque(rk);
    rd_kafka_headers_t *h = NULL;
    rd_kafka_headers_t *orig = NULL;
    if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
        h = rd_kafka_headers_copy(orig);
    char why[256];
    snprintf(why, sizeof(why), "delivery failed: %s", rd_kafka_err2str(m->err));
    dlq_keep(s, m->payload, m->len, m->key, m->key_len, h, why);
}

/* Produce one dead letter; on success librdkafka owns the headers. */
static rd_kafka_resp_err_t dlq_produce(struct kafka_src *s, const void *payload, size_t len,
                                       const void *key, size_t key_len, rd_kafka_headers_t *h)
{
    return rd_kafka_producev(s->dlq, RD_KAFKA_V_TOPIC(s->dlq_topic),
                             RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_KEY(key, key_len),
                             RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_END);
}

static void dead_letter(struct kafka_src *s, const rd_kafka_message_t *m, enum kpi_bad_reason r)
{
    if (!s->dlq)
        return;
    char part[16], off[24];
    snprintf(part, sizeof(part), "%d", (int)m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "kpi.reason", -1, kpi_bad_reason_name(r), -1);
    rd_kafka_header_add(h, "kpi.topic", -1, rd_kafka_topic_name(m->rkt), -1);
    rd_kafka_header_add(h, "kpi.partition", -1, part, -1);
    rd_kafka_header_add(h, "kpi.offset", -1, off, -1);
    /* A message the producer could never send (a 1 MB value is a hostile
     * event, and an oversized_string one) would hold every offset back
     * forever: its dead letter carries the head of the payload and, in
     * kpi.truncated, the original length. */
    size_t len = m->len, key_len = m->key_len;
    const size_t room = s->dlq_max_bytes > DLQ_HEADROOM * 2 ? s->dlq_max_bytes - DLQ_HEADROOM : 0;
    if (key_len > room / 2)
        key_len = room / 2;
    if (len + key_len > room) {
        char orig[24];
        snprintf(orig, sizeof(orig), "%zu", m->len);
        rd_kafka_header_add(h, "kpi.truncated", -1, orig, -1);
        len = room - key_len;
    }
    for (;;) {
        rd_kafka_resp_err_t err = dlq_produce(s, m->payload, len, m->key, key_len, h);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
            atomic_load_explicit(&s->workers_stop, memory_order_relaxed)) {
            /* Refused (too large, unknown topic, fatal producer error...),
             * or full while the worker is stopping: keep it for the flush,
             * which will not store offsets past it until it is delivered. */
            char why[256];
            produce_failure(s, err, why, sizeof(why));
            dlq_keep(s, m->payload, len, m->key, key_len, h, why);
            return;
        }
        rd_kafka_poll(s->dlq, 10); /* queue full: serve delivery reports, retry */
    }
    atomic_fetch_add(&s->dlq_produced, 1);
    rd_kafka_poll(s->dlq, 0);
}

/* Produce the undelivered dead letters again, wait (bounded) for everything
 * in flight, and say whether anything is still undelivered.  The flusher's
 * thread only. */
static int dlq_settle(struct kafka_src *s, char *errstr, size_t errsz)
{
    pthread_mutex_lock(&s->dlq_mu);
    struct dead_letter *list = s->dlq_pending;
    s->dlq_pending = NULL;
    s->dlq_n_pending = 0;
    pthread_mutex_unlock(&s->dlq_mu);
    while (list) {
        struct dead_letter *d = list;
        list = d->next;
        rd_kafka_resp_err_t err =
            dlq_produce(s, d->payload, d->len, d->key, d->key_len, d->headers);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            d->headers = NULL; /* librdkafka's now */
            dead_letter_free(d);
            atomic_fetch_add(&s->dlq_retried, 1);
            continue;
        }
        char why[256];
        produce_failure(s, err, why, sizeof(why));
        dlq_park(s, d, why);
    }
    /* Serves the delivery reports too: a failed one lands in the list. */
    rd_kafka_flush(s->dlq, DLQ_FLUSH_MS);
    int in_flight = rd_kafka_outq_len(s->dlq);
    pthread_mutex_lock(&s->dlq_mu);
    size_t kept = s->dlq_n_pending;
    s->dlq_blocked = kept > 0 || in_flight > 0;
    int err = 0;
    if (kept)
        err = kpi_seterr(errstr, errsz, KPI_ERR_IO,
                         "dead-letter topic %s cannot be written: %zu dead letter(s) undelivered "
                         "(%s); offsets are held until they are",
                         s->dlq_topic, kept, s->dlq_why);
    else if (in_flight)
        err = kpi_seterr(errstr, errsz, KPI_ERR_IO,
                         "dead-letter topic %s: %d dead letter(s) not yet delivered; offsets are "
                         "held until they are",
                         s->dlq_topic, in_flight);
    pthread_mutex_unlock(&s->dlq_mu);
    return err;
}

/* The engine's flush target: dead letters first, then the sink. */
static int flush_target(void *opaque, const struct kpi_delta *d, char *errstr, size_t errsz)
{
    struct kafka_src *s = opaque;
    if (s->dlq) {
        int err = dlq_settle(s, errstr, errsz);
        if (err)
            return err;
    }
    return s->inner.flush ? s->inner.flush(s->inner.opaque, d, errstr, errsz) : 0;
}

static int idle_target(void *opaque, char *errstr, size_t errsz)
{
    struct kafka_src *s = opaque;
    return s->inner.idle ? s->inner.idle(s->inner.opaque, errstr, errsz) : 0;
}

/* ---- workers ---- */

struct worker_arg {
    struct kafka_src *s;
    int idx;
};

/* The fetcher thread wrote every message on another core, so the decoder's
 * first touch of a payload, and the loop's of a message header, are cache
 * misses (perf: decode was a third of a worker's time end to end, twice its
 * share in the in-memory core benchmark).  Ask for them a few messages
 * ahead so the misses overlap the work on the current one. */
#define PREFETCH_PAYLOAD 4 /* messages ahead whose payload is requested */
#define PREFETCH_HEADER  8 /* messages ahead whose rd_kafka_message_t is */

static inline void prefetch_ahead(rd_kafka_message_t **msgs, ssize_t i, ssize_t n)
{
    if (i + PREFETCH_HEADER < n)
        __builtin_prefetch(msgs[i + PREFETCH_HEADER]);
    if (i + PREFETCH_PAYLOAD < n) {
        const rd_kafka_message_t *a = msgs[i + PREFETCH_PAYLOAD];
        __builtin_prefetch(a->payload);
        if (a->len > 64)
            __builtin_prefetch((const char *)a->payload + 64);
    }
}

/* A message whose offset is not the next expected one (offset_order.h):
 * whether to process it; otherwise it is skipped, after a seek back for a
 * gap.  The partition's worker only. */
static int in_order(struct kafka_src *s, int t, const rd_kafka_message_t *m, int64_t expect,
                    uint64_t batch)
{
    switch (kpi_offset_check(&s->gap[t][m->partition], expect, m->offset, batch)) {
    case KPI_OFFSET_TAKE: return 1;
    case KPI_OFFSET_REDELIVERY: atomic_fetch_add(&s->offset_redeliveries, 1); return 0;
    case KPI_OFFSET_WAIT: return 0;
    case KPI_OFFSET_GAP_REAL:
        atomic_fetch_add(&s->offset_gaps, 1);
        kpi_log(KPI_LOG_WARN, "kafka",
                "%s:%d: offsets [%lld, %lld) are not in the log (read twice): going on at %lld",
                rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)expect,
                (long long)m->offset, (long long)m->offset);
        return 1;
    case KPI_OFFSET_SEEK: break;
    }
    atomic_fetch_add(&s->offset_seeks, 1);
    rd_kafka_resp_err_t err = rd_kafka_seek(m->rkt, m->partition, expect, 0);
    kpi_log(KPI_LOG_WARN, "kafka",
            "%s:%d: the consumer delivered offset %lld where %lld was next: reading from %lld "
            "again%s%s",
            rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, (long long)expect,
            (long long)expect, err ? ": seek failed: " : "", err ? rd_kafka_err2str(err) : "");
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker_arg *a = arg;
    struct kafka_src *s = a->s;
    struct kpi_worker *w = kpi_engine_worker(s->e, a->idx);
    rd_kafka_message_t *msgs[BATCH];
    uint64_t batch = 0;
    while (!atomic_load_explicit(&s->workers_stop, memory_order_relaxed)) {
        batch++;
        if (kpi_engine_is_backpressured(s->e)) {
            /* Take nothing while the sink fails (see the top comment); keep
             * acknowledging flips so the flusher can retry. */
            kpi_worker_checkpoint(w);
            nap_ms(10);
            continue;
        }
        ssize_t n = rd_kafka_consume_batch_queue(s->wq[a->idx], 100, msgs, BATCH);
        int64_t now = kpi_now_ms();
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            prefetch_ahead(msgs, i, n);
            if (!m->err) {
                /* One topic (the usual case): no name lookup per message. */
                int t = s->n_topics == 1 ? 0 : topic_index(s, rd_kafka_topic_name(m->rkt));
                int input =
                    t >= 0 && m->partition >= 0 && m->partition < MAX_PARTS
                        ? atomic_load_explicit(&s->input_of[t][m->partition], memory_order_acquire)
                        : -1;
                if (input >= 0) {
                    int64_t expect = atomic_load_explicit(&s->next_offset[t][m->partition],
                                                          memory_order_relaxed);
                    if (m->offset != expect && !in_order(s, t, m, expect, batch))
                        continue;
                    int dropped = 0;
                    enum kpi_bad_reason r =
                        kpi_worker_process(w, input, m->offset, m->payload, m->len, now, &dropped);
                    if (r != KPI_BAD_NONE)
                        dead_letter(s, m, r);
                    if (!dropped)
                        atomic_store_explicit(&s->next_offset[t][m->partition], m->offset + 1,
                                              memory_order_relaxed);
                    else if (kpi_worker_stopped(w))
                        break; /* released while stopping: the rest stays unconsumed */
                }
            }
        }
        /* Destroy the batch after processing it, not message by message:
         * each destroy drops references (partition, fetch buffer) that the
         * fetcher thread is busy taking on other messages; done in a burst
         * the cache lines move between cores once per batch instead of once
         * per message.  perf showed this refcount line at ~20% of the
         * fetcher thread's time when destroys were interleaved. */
        for (ssize_t i = 0; i < n; i++)
            rd_kafka_message_destroy(msgs[i]);
        kpi_worker_checkpoint(w);
    }
    kpi_worker_detach(w);
    return NULL;
}

static void wake_worker(void *opaque, int worker)
{
    struct kafka_src *s = opaque;
    rd_kafka_queue_yield(s->wq[worker]);
}

/* ---- rebalancing ---- */

static int64_t resume_offset(struct kafka_src *s, const char *topic, int32_t partition)
{
    int64_t deadline = kpi_now_ms() + s->conf.offset_retry_ms, backoff = 100;
    if (s->store && s->store->ops->load_offset) {
        for (;;) {
            int64_t off = -1;
            char err[256];
            int rc = s->store->ops->load_offset(s->store->self, topic, partition, &off, err,
                                                sizeof(err));
            if (rc == 0) {
                if (off >= 0)
                    return off;
                break;
            }
            if (atomic_load(&s->stop))
                return -3; /* stopping: this partition is not opened */
            /* KPI_ERR_INVAL is a setting the store refuses (a key layout
             * that is not the group's): waiting will not change it. */
            if (rc == KPI_ERR_INVAL || kpi_now_ms() >= deadline) {
                snprintf(s->errstr, sizeof(s->errstr), "cannot read the stored offset of %s:%d: %s",
                         topic, (int)partition, err);
                return -2;
            }
            nap_ms(backoff);
            backoff = backoff < 2000 ? backoff * 2 : 2000;
        }
    }
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(s->rk, topic, partition, &lo, &hi, 10000))
        return 0;
    return lo;
}

static void assign(struct kafka_src *s, rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &list->elems[i];
        int t = topic_index(s, tp->topic);
        if (t < 0 || tp->partition < 0 || tp->partition >= MAX_PARTS) {
            snprintf(s->errstr, sizeof(s->errstr), "partition %s:%d is out of range", tp->topic,
                     (int)tp->partition);
            s->fatal = 1;
            continue;
        }
        int64_t start = resume_offset(s, tp->topic, tp->partition);
        if (start == -3)
            continue;
        if (start < 0) {
            s->fatal = 1;
            continue;
        }
        int64_t lo = 0, hi = 0;
        rd_kafka_query_watermark_offsets(s->rk, tp->topic, tp->partition, &lo, &hi, 10000);
        int worker = s->next_worker++ % s->n_workers;
        /* Key groups of the store that hold more of this partition than
         * `start` (a flush cut short by a crash): the engine skips for them
         * what they hold (engine/keygroup.h). */
        int64_t floors[KPI_MAX_KEY_GROUPS];
        uint32_t n_floors = 0;
        if (s->store && s->store->ops->load_floors)
            s->store->ops->load_floors(s->store->self, tp->topic, tp->partition, floors,
                                       KPI_MAX_KEY_GROUPS, &n_floors);
        int input = kpi_engine_input_open_floors(s->e, tp->topic, tp->partition, worker, start,
                                                 floors, n_floors);
        if (input < 0) {
            snprintf(s->errstr, sizeof(s->errstr), "engine cannot open input %s:%d: %s", tp->topic,
                     (int)tp->partition, kpi_err_name(input));
            s->fatal = 1;
            continue;
        }
        int64_t resume = kpi_engine_input_resume_at(s->e, input);
        if (resume > start) {
            kpi_log(KPI_LOG_INFO, "kafka",
                    "%s:%d comes back with offsets [%lld, %lld) still pending here: resuming "
                    "after them",
                    tp->topic, (int)tp->partition, (long long)start, (long long)resume);
            start = resume;
        }
        pthread_mutex_lock(&s->mu);
        struct part *p = &s->parts[input];
        memset(p, 0, sizeof(*p));
        p->used = 1;
        p->topic = t;
        p->partition = tp->partition;
        p->input = input;
        p->worker = worker;
        p->eof_target = hi;
        p->q = rd_kafka_queue_get_partition(s->rk, tp->topic, tp->partition);
        rd_kafka_queue_forward(p->q, s->wq[worker]);
        s->stats.assigned++;
        pthread_mutex_unlock(&s->mu);
        atomic_store_explicit(&s->next_offset[t][tp->partition], start, memory_order_relaxed);
        kpi_offset_gap_reset(&s->gap[t][tp->partition]);
        /* release: the worker that reads this id (acquire) sees the open input. */
        atomic_store_explicit(&s->input_of[t][tp->partition], input, memory_order_release);
        tp->offset = start;
    }
}

static void revoke(struct kafka_src *s, rd_kafka_topic_partition_list_t *list)
{
    int inputs[KPI_MAX_INPUTS], n = 0;
    for (int i = 0; i < list->cnt; i++) {
        int t = topic_index(s, list->elems[i].topic);
        int32_t p = list->elems[i].partition;
        if (t < 0 || p < 0 || p >= MAX_PARTS)
            continue;
        int input = atomic_load(&s->input_of[t][p]);
        if (input < 0)
            continue;
        kpi_engine_input_revoke(s->e, input);
        inputs[n++] = input;
    }
    if (n == 0)
        return;
    char err[256];
    if (s->final_flush_failed)
        kpi_log(KPI_LOG_WARN, "kafka",
                "leaving without the final flush: what these partitions produced since the last "
                "flush is read again by their next owner");
    else if (kpi_engine_flush_sync(s->e, budget_ms(s, s->conf.shutdown_timeout_ms), err,
                                   sizeof(err)))
        kpi_log(KPI_LOG_WARN, "kafka",
                "revocation flush failed (%s); the delta is kept and its offsets fence any "
                "double count",
                err);
    for (int k = 0; k < n; k++) {
        pthread_mutex_lock(&s->mu);
        struct part *p = &s->parts[inputs[k]];
        atomic_store(&s->input_of[p->topic][p->partition], -1);
        kpi_engine_input_close(s->e, inputs[k]);
        if (p->q) {
            rd_kafka_queue_forward(p->q, NULL);
            rd_kafka_queue_destroy(p->q);
        }
        p->used = 0;
        s->stats.assigned--;
        pthread_mutex_unlock(&s->mu);
    }
}

/* The partitions this instance consumes now (the log says it after each
 * rebalance: with the cooperative protocol an assignment is only the
 * increment). */
static int owned(struct kafka_src *s)
{
    pthread_mutex_lock(&s->mu);
    int n = (int)s->stats.assigned;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_src *s = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    pthread_mutex_lock(&s->mu);
    s->stats.rebalances++;
    pthread_mutex_unlock(&s->mu);
    int assigning = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    if (assigning) {
        s->ever_assigned = 1;
        if (!s->closing)
            assign(s, parts);
        kpi_log(KPI_LOG_INFO, "kafka", "assigned %d partition(s)%s; owns %d", parts->cnt,
                s->closing ? " while leaving: not consumed" : ", resuming at the stored offsets",
                owned(s));
    } else {
        revoke(s, parts);
        kpi_log(KPI_LOG_INFO, "kafka", "revoked %d partition(s)%s; owns %d", parts->cnt,
                s->final_flush_failed ? "" : " after flushing what they produced", owned(s));
    }
    if (cooperative)
        rd_kafka_error_destroy(assigning ? rd_kafka_incremental_assign(rk, parts)
                                         : rd_kafka_incremental_unassign(rk, parts));
    else
        rd_kafka_assign(rk, assigning ? parts : NULL);
}

/* ---- run ---- */

static int all_at_eof(struct kafka_src *s)
{
    int any = 0, done = 1;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < KPI_MAX_INPUTS; i++) {
        struct part *p = &s->parts[i];
        if (!p->used)
            continue;
        any = 1;
        if (atomic_load_explicit(&s->next_offset[p->topic][p->partition], memory_order_relaxed) <
            p->eof_target)
            done = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return any && done;
}

static void commit_advisory(struct kafka_src *s)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < KPI_MAX_INPUTS; i++) {
        struct part *p = &s->parts[i];
        if (!p->used)
            continue;
        int64_t off = kpi_engine_input_flushed(s->e, p->input);
        if (off >= 0)
            rd_kafka_topic_partition_list_add(l, s->topics[p->topic], p->partition)->offset = off;
    }
    pthread_mutex_unlock(&s->mu);
    if (l->cnt)
        rd_kafka_commit(s->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

static void update_lag(struct kafka_src *s)
{
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < KPI_MAX_INPUTS; i++) {
        struct part *p = &s->parts[i];
        if (!p->used)
            continue;
        int64_t lo = 0, hi = 0;
        if (rd_kafka_get_watermark_offsets(s->rk, s->topics[p->topic], p->partition, &lo, &hi) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            int64_t pos =
                atomic_load_explicit(&s->next_offset[p->topic][p->partition], memory_order_relaxed);
            p->lag = hi > pos ? hi - pos : 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* Whether the consumer holds a group member id (a round trip to
 * librdkafka's main thread). */
static int has_member_id(struct kafka_src *s)
{
    char *member = rd_kafka_memberid(s->rk);
    int joined = member && *member;
    rd_kafka_mem_free(s->rk, member);
    return joined;
}

/* Leaving mid-join (top comment): wait for the first assignment, if a
 * JoinGroup may have succeeded, before the consumer may be destroyed. */
static void settle_join(struct kafka_src *s)
{
    s->closing = 1;
    if (s->ever_assigned)
        return;
    if (!has_member_id(s))
        return; /* never joined: the group holds no assignor yet */
    kpi_log(KPI_LOG_INFO, "kafka", "leaving during a group join: waiting for its assignment");
    int64_t deadline = kpi_mono_ms() + budget_ms(s, JOIN_SETTLE_MS);
    while (!s->ever_assigned && kpi_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
    }
    if (!s->ever_assigned) {
        s->leak_on_destroy = 1;
        kpi_log(KPI_LOG_WARN, "kafka",
                "no assignment in time after leaving mid-join: the consumer handle is left to "
                "the exit (librdkafka 2.0.x aborts destroying it)");
    }
}

/* rd_kafka_consumer_close, but within the shutdown budget: the revocation
 * callbacks are served here, and a consumer that has not left the group in
 * time is destroyed without waiting for it (the group notices at its session
 * timeout; nothing it held is acknowledged past what was flushed). */
static void close_consumer(struct kafka_src *s)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(s->rk);
    rd_kafka_error_t *error = rd_kafka_consumer_close_queue(s->rk, q);
    if (error) {
        kpi_log(KPI_LOG_WARN, "kafka", "leaving the group: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    while (!rd_kafka_consumer_closed(s->rk) && budget_ms(s, INT64_MAX) > 0)
        rd_kafka_queue_poll_callback(q, 100);
    if (!rd_kafka_consumer_closed(s->rk)) {
        s->close_timed_out = 1;
        kpi_log(KPI_LOG_WARN, "kafka",
                "the consumer did not leave the group within the shutdown timeout: closing "
                "without it");
    }
    rd_kafka_queue_destroy(q);
}

static int src_run(void *self, char *errstr, size_t errsz)
{
    struct kafka_src *s = self;
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(s->n_topics);
    for (int i = 0; i < s->n_topics; i++)
        rd_kafka_topic_partition_list_add(subs, s->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(s->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (err)
        return kpi_seterr(errstr, errsz, KPI_ERR_IO, "subscribe: %s", rd_kafka_err2str(err));

    struct worker_arg *args = calloc((size_t)s->n_workers, sizeof(*args));
    for (int i = 0; i < s->n_workers; i++) {
        args[i].s = s;
        args[i].idx = i;
        pthread_create(&s->threads[i], NULL, worker_main, &args[i]);
    }
    int64_t next_commit = kpi_now_ms() + 5000;
    int rc = 0;
    while (!atomic_load(&s->stop) && !s->fatal) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, 100);
        if (m) {
            if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                kpi_log(KPI_LOG_WARN, "kafka", "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
        }
        int bp = kpi_engine_is_backpressured(s->e);
        if (bp && !s->paused) {
            pthread_mutex_lock(&s->mu);
            s->stats.paused_times++;
            pthread_mutex_unlock(&s->mu);
        }
        s->paused = bp;
        if (!s->ever_assigned && !s->stats.joined) {
            /* Until the first assignment only (each call is a round trip to
             * librdkafka's main thread): settle_join() and tests read it. */
            int joined = has_member_id(s);
            pthread_mutex_lock(&s->mu);
            s->stats.joined = joined;
            pthread_mutex_unlock(&s->mu);
        }
        if (kpi_engine_is_fenced(s->e)) {
            /* The sink's own words: an offsets conflict (another consumer
             * owns a partition) is one cause, a script error another. */
            struct kpi_engine_stats es;
            kpi_engine_get_stats(s->e, &es);
            snprintf(s->errstr, sizeof(s->errstr),
                     "stopped: the sink refused a flush that cannot be retried (%s): %s",
                     es.last_reason, es.last_error);
            s->fatal = 1;
        }
        if (s->conf.exit_on_eof && all_at_eof(s))
            break;
        if (kpi_now_ms() >= next_commit) {
            commit_advisory(s);
            update_lag(s);
            next_commit = kpi_now_ms() + 5000;
        }
    }
    /* Stop, within the shutdown budget (top comment): workers first (their
     * last messages are in the engine), then one final flush of everything,
     * then leave the group cleanly. */
    s->stop_deadline = kpi_mono_ms() + s->conf.shutdown_timeout_ms;
    s->closing = 1; /* an assignment from here on opens nothing */
    atomic_store(&s->workers_stop, 1);
    kpi_engine_release_workers(s->e);
    for (int i = 0; i < s->n_workers; i++)
        pthread_join(s->threads[i], NULL);
    free(args);
    /* Two thirds of the budget for the final flush: a sink that keeps
     * failing must not leave no time to leave the group cleanly. */
    char ferr[256] = "";
    int ferr_rc = s->fatal ? 0
                           : kpi_engine_flush_sync(s->e, s->conf.shutdown_timeout_ms * 2 / 3, ferr,
                                                   sizeof(ferr));
    s->final_flush_failed = s->fatal || ferr_rc != 0;
    if (!s->fatal)
        commit_advisory(s);
    settle_join(s);
    close_consumer(s);
    if (s->fatal)
        rc = kpi_seterr(errstr, errsz, KPI_ERR_IO, "%s", s->errstr);
    else if (ferr_rc)
        rc = kpi_seterr(errstr, errsz, ferr_rc, "final flush failed: %s", ferr);
    return rc;
}

static void src_stop(void *self)
{
    struct kafka_src *s = self;
    atomic_store(&s->stop, 1);
}

static void src_destroy(void *self)
{
    struct kafka_src *s = self;
    if (!s)
        return;
    if (s->rk && !s->leak_on_destroy) {
        for (int i = 0; i < s->n_workers; i++)
            if (s->wq && s->wq[i])
                rd_kafka_queue_destroy(s->wq[i]);
        if (s->close_timed_out)
            rd_kafka_destroy_flags(s->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        else
            rd_kafka_destroy(s->rk);
    }
    if (s->dlq) {
        rd_kafka_flush(s->dlq, (int)budget_ms(s, 10000));
        rd_kafka_destroy(s->dlq);
    }
    while (s->dlq_pending) {
        struct dead_letter *d = s->dlq_pending;
        s->dlq_pending = d->next;
        dead_letter_free(d);
    }
    free(s->wq);
    free(s->threads);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->dlq_mu);
    free(s);
}

/* librdkafka's own log lines, through ours (syslog levels). */
static void rdkafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    enum kpi_log_level l = level <= 3   ? KPI_LOG_ERROR
                           : level == 4 ? KPI_LOG_WARN
                           : level <= 6 ? KPI_LOG_INFO
                                        : KPI_LOG_DEBUG;
    kpi_log(l, "rdkafka", "%s: %s", fac, buf);
}

/* The dead-letter producer gets the consumer's kafka.* properties, so
 * librdkafka warns about every consumer-only one it ignores: not news. */
static void rdkafka_log_dlq(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "consumer property"))
        level = 7;
    rdkafka_log(rk, level, fac, buf);
}

static const struct kpi_source_ops kafka_ops = {"kafka", src_run, src_stop, src_destroy};

static int conf_set(rd_kafka_conf_t *c, const char *k, const char *v, char *errstr, size_t errsz)
{
    char why[256];
    if (rd_kafka_conf_set(c, k, v, why, sizeof(why)) != RD_KAFKA_CONF_OK)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "kafka.%s: %s", k, why);
    return 0;
}

/* The kafka.* properties passed through, over the defaults set before. */
static int conf_set_props(rd_kafka_conf_t *c, const struct kpi_kafka_conf *conf, char *errstr,
                          size_t errsz)
{
    for (int i = 0; i < conf->n_props; i++)
        if (conf_set(c, conf->props[i][0], conf->props[i][1], errstr, errsz))
            return KPI_ERR_INVAL;
    return 0;
}

/* A librdkafka client of `type` over c (which it takes), logging through
 * log_cb with s as its opaque; NULL with errstr naming `what` on failure. */
static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *c,
                              void (*log_cb)(const rd_kafka_t *, int, const char *, const char *),
                              struct kafka_src *s, const char *what, char *errstr, size_t errsz)
{
    rd_kafka_conf_set_log_cb(c, log_cb);
    rd_kafka_conf_set_opaque(c, s);
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, c, why, sizeof(why));
    if (!rk)
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s: %s", what, why);
    return rk;
}

struct kpi_source kpi_source_kafka_new(const struct kpi_kafka_conf *conf, struct kpi_engine *e,
                                       struct kpi_sink *store, char *errstr, size_t errsz)
{
    struct kpi_source out = {NULL, NULL};
    struct kafka_src *s = calloc(1, sizeof(*s));
    if (!s)
        return out;
    s->conf = *conf;
    s->e = e;
    s->store = store;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->dlq_mu, NULL);
    for (int t = 0; t < MAX_TOPICS; t++)
        for (int p = 0; p < MAX_PARTS; p++)
            atomic_init(&s->input_of[t][p], -1);
    const char *p = conf->topics ? conf->topics : "", *topic;
    size_t len;
    while ((topic = kpi_list_next(&p, ", ", &len))) {
        if (s->n_topics == MAX_TOPICS || len > KPI_TOPIC_MAX) {
            kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "kafka.topics: too many or too long");
            goto fail;
        }
        memcpy(s->topics[s->n_topics], topic, len);
        s->n_topics++;
    }
    if (s->n_topics == 0) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "kafka.topics: no topic given");
        goto fail;
    }
    if (conf->dlq_topic && strcmp(conf->dlq_topic, "-") == 0)
        s->dlq_topic[0] = '\0';
    else if (conf->dlq_topic && *conf->dlq_topic)
        snprintf(s->dlq_topic, sizeof(s->dlq_topic), "%s", conf->dlq_topic);
    else
        snprintf(s->dlq_topic, sizeof(s->dlq_topic), "%.*s.dlq", KPI_TOPIC_MAX - 4, s->topics[0]);

    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (conf_set(c, "bootstrap.servers", conf->brokers, errstr, errsz) ||
        conf_set(c, "group.id", conf->group_id, errstr, errsz) ||
        conf_set(c, "enable.auto.commit", "false", errstr, errsz) ||
        conf_set(c, "enable.auto.offset.store", "false", errstr, errsz) ||
        conf_set(c, "auto.offset.reset", "earliest", errstr, errsz) ||
        conf_set(c, "partition.assignment.strategy", "cooperative-sticky", errstr, errsz) ||
        /* Local queue limits.  Each partition's queue is forwarded to its
         * worker's queue, and librdkafka 2.0.x measures a partition's
         * "queued" messages on the queue it forwards to: the worker's, which
         * holds several partitions.  Once that reaches queued.min.messages
         * (or queued.max.messages.kbytes) the partition's fetching backs off
         * for a fixed second (configurable only from 2.3.0 on, as
         * fetch.queue.backoff.ms), and the worker drains its queue in tens of
         * milliseconds and then idles.  Measured on 10M events, 8 partitions,
         * 2 workers: 4.4 s at the old 100000, 3.0 s at 10000000.  So the
         * count limit is set out of the way and memory is bounded by bytes:
         * at most queued.max.messages.kbytes per worker queue.  32 MiB holds
         * ~0.1 s of a worker's work and measured as fast as 64 MiB (3.09 s
         * both, medians of 4), with less peak RSS. */
        conf_set(c, "queued.min.messages", "10000000", errstr, errsz) ||
        conf_set(c, "queued.max.messages.kbytes", "32768", errstr, errsz) ||
        conf_set(c, "fetch.wait.max.ms", "50", errstr, errsz) ||
        conf_set_props(c, conf, errstr, errsz)) {
        rd_kafka_conf_destroy(c);
        goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(c, rebalance_cb);
    s->rk = client_new(RD_KAFKA_CONSUMER, c, rdkafka_log, s, "kafka consumer", errstr, errsz);
    if (!s->rk)
        goto fail;
    rd_kafka_poll_set_consumer(s->rk);

    if (s->dlq_topic[0]) {
        rd_kafka_conf_t *pc = rd_kafka_conf_new();
        if (conf_set(pc, "bootstrap.servers", conf->brokers, errstr, errsz) ||
            conf_set(pc, "enable.idempotence", "true", errstr, errsz) ||
            conf_set(pc, "linger.ms", "5", errstr, errsz) ||
            /* The same cluster, so the same kafka.* settings as the consumer
             * (security.protocol, sasl.*, ssl.*, message.max.bytes...); they
             * win over the defaults above, as they do for the consumer. */
            conf_set_props(pc, conf, errstr, errsz)) {
            rd_kafka_conf_destroy(pc);
            goto fail;
        }
        char mmb[32];
        size_t mmb_len = sizeof(mmb);
        s->dlq_max_bytes = 1000000;
        if (rd_kafka_conf_get(pc, "message.max.bytes", mmb, &mmb_len) == RD_KAFKA_CONF_OK)
            s->dlq_max_bytes = (size_t)strtoull(mmb, NULL, 10);
        rd_kafka_conf_set_dr_msg_cb(pc, dlq_dr);
        s->dlq = client_new(RD_KAFKA_PRODUCER, pc, rdkafka_log_dlq, s, "dead-letter producer",
                            errstr, errsz);
        if (!s->dlq)
            goto fail;
    }

    s->n_workers = kpi_engine_conf(e)->n_workers;
    s->wq = calloc((size_t)s->n_workers, sizeof(*s->wq));
    s->threads = calloc((size_t)s->n_workers, sizeof(*s->threads));
    for (int i = 0; i < s->n_workers; i++)
        s->wq[i] = rd_kafka_queue_new(s->rk);

    /* Wrap the engine's flush target: dead letters before offsets. */
    s->inner = store ? kpi_sink_target(store) : (struct kpi_flush_target){NULL, NULL};
    struct kpi_flush_target t = {s, flush_target, idle_target};
    kpi_engine_set_target(e, &t);
    kpi_engine_set_wake(e, wake_worker, s);
    out.ops = &kafka_ops;
    out.self = s;
    return out;
fail:
    src_destroy(s);
    return out;
}

void kpi_source_kafka_get_stats(const struct kpi_source *src, struct kpi_kafka_stats *out)
{
    struct kafka_src *s = src->self;
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
    out->dlq_produced = atomic_load(&s->dlq_produced);
    out->dlq_retried = atomic_load(&s->dlq_retried);
    out->dlq_errors = atomic_load(&s->dlq_errors);
    pthread_mutex_lock(&s->dlq_mu);
    out->dlq_undelivered = s->dlq_n_pending;
    out->dlq_blocked = s->dlq_blocked;
    pthread_mutex_unlock(&s->dlq_mu);
}

int kpi_source_kafka_health(void *self, char *why, size_t size)
{
    struct kafka_src *s = self;
    int ok = 1;
    pthread_mutex_lock(&s->dlq_mu);
    if (s->dlq_blocked || s->dlq_n_pending) {
        ok = 0;
        if (s->dlq_n_pending)
            snprintf(why, size,
                     "dead letters: topic %s cannot be written (%zu undelivered: %s); offsets "
                     "are held",
                     s->dlq_topic, s->dlq_n_pending, s->dlq_why);
        else
            snprintf(why, size, "dead letters: topic %s: deliveries pending; offsets are held",
                     s->dlq_topic);
    }
    pthread_mutex_unlock(&s->dlq_mu);
    return ok;
}

void kpi_source_kafka_write_metrics(void *self, FILE *out)
{
    struct kafka_src *s = self;
    fprintf(out, "# HELP kpistream_consumer_lag Messages behind the partition's end.\n"
                 "# TYPE kpistream_consumer_lag gauge\n");
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < KPI_MAX_INPUTS; i++)
        if (s->parts[i].used)
            fprintf(out, "kpistream_consumer_lag{topic=\"%s\",partition=\"%d\"} %lld\n",
                    s->topics[s->parts[i].topic], (int)s->parts[i].partition,
                    (long long)s->parts[i].lag);
    fprintf(out,
            "# HELP kpistream_rebalances_total Rebalance callbacks served.\n"
            "# TYPE kpistream_rebalances_total counter\n"
            "kpistream_rebalances_total %llu\n"
            "# HELP kpistream_paused_total Times consumption stopped for backpressure.\n"
            "# TYPE kpistream_paused_total counter\n"
            "kpistream_paused_total %llu\n",
            (unsigned long long)s->stats.rebalances, (unsigned long long)s->stats.paused_times);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->dlq_mu);
    size_t undelivered = s->dlq_n_pending;
    int blocked = s->dlq_blocked || undelivered;
    pthread_mutex_unlock(&s->dlq_mu);
    fprintf(out,
            "# HELP kpistream_dead_letters_blocked 1 while undelivered dead letters hold the "
            "offsets back.\n"
            "# TYPE kpistream_dead_letters_blocked gauge\n"
            "kpistream_dead_letters_blocked %d\n"
            "# HELP kpistream_dead_letters_undelivered Dead letters refused by the producer or "
            "the broker, waiting to be produced again.\n"
            "# TYPE kpistream_dead_letters_undelivered gauge\n"
            "kpistream_dead_letters_undelivered %zu\n"
            "# HELP kpistream_dead_letter_errors_total Failed dead-letter produce or delivery "
            "attempts (each is retried).\n"
            "# TYPE kpistream_dead_letter_errors_total counter\n"
            "kpistream_dead_letter_errors_total %llu\n",
            blocked, undelivered, (unsigned long long)atomic_load(&s->dlq_errors));
    fprintf(out,
            "# HELP kpistream_dead_letters_total Messages produced to the dead-letter topic.\n"
            "# TYPE kpistream_dead_letters_total counter\n"
            "kpistream_dead_letters_total %llu\n"
            "# HELP kpistream_offset_gaps_total Gaps between a partition's offsets that a "
            "re-fetch confirmed (transaction markers, compaction).\n"
            "# TYPE kpistream_offset_gaps_total counter\n"
            "kpistream_offset_gaps_total %llu\n"
            "# HELP kpistream_offset_seeks_total Seeks back after the consumer skipped offsets.\n"
            "# TYPE kpistream_offset_seeks_total counter\n"
            "kpistream_offset_seeks_total %llu\n"
            "# HELP kpistream_offset_redeliveries_total Messages delivered again below the next "
            "expected offset, skipped.\n"
            "# TYPE kpistream_offset_redeliveries_total counter\n"
            "kpistream_offset_redeliveries_total %llu\n",
            (unsigned long long)atomic_load(&s->dlq_produced),
            (unsigned long long)atomic_load(&s->offset_gaps),
            (unsigned long long)atomic_load(&s->offset_seeks),
            (unsigned long long)atomic_load(&s->offset_redeliveries));
}
