/*
 * The Kafka source on librdkafka's mock cluster: broker errors and a
 * rebalance that are hard to provoke on a real broker, each ending with the
 * in-memory fenced store holding exactly what was produced.  (The real
 * broker is tests/test_it_kafka.c.)
 */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "gen/truth.h"
#include "sources/kafka.h"
#include "support/kafka_instance.h"
#include "support/kafka_util.h"
#include "support/mem_sink.h"

/* Kafka protocol API keys (not in librdkafka's public headers). */
#define API_PRODUCE       0
#define API_FETCH         1
#define API_OFFSET_COMMIT 8
#define API_HEARTBEAT     12
#define API_SYNC_GROUP    14

static rd_kafka_t *prod;
static rd_kafka_mock_cluster_t *mc;
static const char *bootstraps;
static struct kpi_gen_truth truth;
#define N 40000

static void produce_all(const char *topic)
{
    struct kpi_gen_conf gc;
    kpi_gen_conf_defaults(&gc);
    gc.subscribers = 5000;
    memset(&truth, 0, sizeof(truth));
    cr_assert_eq(kt_produce_with(prod, topic, &gc, N, &truth), 0);
}

static void setup(void)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(c, "test.mock.num.brokers", "3", err, sizeof(err)), 0);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    cr_assert_not_null(prod, "%s", err);
    mc = rd_kafka_handle_mock_cluster(prod);
    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_mock_topic_create(mc, "events", 4, 3);
    produce_all("events");
}

static void teardown(void)
{
    rd_kafka_destroy(prod);
}

TestSuite(kafka_mock, .init = setup, .fini = teardown, .timeout = 180);

static void poll_pause(void)
{
    struct timespec ts = {0, 10000000}; /* polling interval, not synchronisation */
    nanosleep(&ts, NULL);
}

static void start_in_group(struct kt_instance *in, struct mem_sink *ms, int exit_on_eof,
                           const char *group)
{
    struct kpi_engine_conf ec;
    kt_engine_conf_replay(&ec, 100);
    struct kpi_kafka_conf kc;
    kpi_kafka_conf_defaults(&kc);
    kc.brokers = bootstraps;
    kc.topics = "events";
    kc.group_id = group;
    kc.dlq_topic = "-";
    kc.exit_on_eof = exit_on_eof;
    static const char *const props[][2] = {{"session.timeout.ms", "6000"},
                                           {"heartbeat.interval.ms", "500"}};
    kc.props = props;
    kc.n_props = 2;
    char err[256];
    cr_assert_eq(kt_instance_start(in, &ec, &kc, ms, err, sizeof(err)), 0, "%s", err);
}

static void start(struct kt_instance *in, struct mem_sink *ms, int exit_on_eof)
{
    start_in_group(in, ms, exit_on_eof, "mock-group");
}

/* A fresh sink for topic "events", and an instance of group "mock-group"
 * writing to it. */
static void start_fresh(struct kt_instance *in, struct mem_sink *ms, int exit_on_eof)
{
    mem_sink_init(ms, "events");
    start(in, ms, exit_on_eof);
}

/* The instance ran to its end (join: it exits on EOF; stop: asked to) with
 * no error. */
static void join_ok(struct kt_instance *in)
{
    kt_instance_join(in);
    cr_assert_eq(in->rc, 0, "%s", in->err);
}

static void stop_ok(struct kt_instance *in)
{
    kt_instance_stop(in);
    cr_assert_eq(in->rc, 0, "%s", in->err);
}

/* ---- dead letters ---- */

#define BIG_LEN (1500 * 1000) /* over librdkafka's default message.max.bytes (1 MB) */

/* Topic "big" (2 partitions): at offset 0 of partition 0 a bad event larger
 * than 1 MB, then `good` generator events spread over both partitions.  The
 * producer allows 2 MB messages; the mock broker takes them. */
static void produce_big(int good, struct kpi_gen_truth *t)
{
    rd_kafka_mock_topic_create(mc, "big", 2, 1);
    rd_kafka_mock_topic_create(mc, "big.dlq", 1, 1);
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(c, "bootstrap.servers", bootstraps, err, sizeof(err)), 0);
    cr_assert_eq(rd_kafka_conf_set(c, "message.max.bytes", "2000000", err, sizeof(err)), 0);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    char *big = malloc(BIG_LEN);
    memset(big, 0xc1, BIG_LEN); /* 0xc1: never used in msgpack */
    cr_assert_eq(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("big"), RD_KAFKA_V_PARTITION(0),
                                   RD_KAFKA_V_VALUE(big, BIG_LEN),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                 0);
    cr_assert_eq(rd_kafka_flush(p, 30000), 0, "the bad event is in partition 0 first");
    free(big);
    struct kpi_gen_conf gc;
    kpi_gen_conf_defaults(&gc);
    memset(t, 0, sizeof(*t));
    struct kpi_gen *g = kpi_gen_new(&gc);
    uint8_t buf[512];
    for (int i = 0; i < good; i++) {
        size_t len;
        struct kpi_gen_info in;
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        kpi_gen_truth_add(t, &in);
        cr_assert_eq(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("big"), RD_KAFKA_V_PARTITION(i % 2),
                                       RD_KAFKA_V_VALUE(buf, len),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
    }
    cr_assert_eq(rd_kafka_flush(p, 30000), 0);
    kpi_gen_destroy(g);
    rd_kafka_destroy(p);
}

/* A consumer (of group, for its client id only) assigned partition 0 of
 * topic from its first message. */
static rd_kafka_t *read_from_start(const char *topic, const char *group)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", bootstraps, err, sizeof(err));
    rd_kafka_conf_set(c, "group.id", group, err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
    cr_assert_not_null(rk, "%s", err);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

/* Messages in the one partition of `topic`, read from the start until
 * `expect` arrived or timeout_ms passed. */
static int count_topic(const char *topic, int expect, int64_t timeout_ms)
{
    rd_kafka_t *rk = read_from_start(topic, "dlq-reader");
    int n = 0;
    int64_t deadline = kpi_mono_ms() + timeout_ms;
    while (n < expect && kpi_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && !m->err)
            n++;
        if (m)
            rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

static void start_big(struct kt_instance *in, struct mem_sink *ms, int exit_on_eof,
                      const char *const (*props)[2], int n_props)
{
    struct kpi_engine_conf ec;
    kt_engine_conf_replay(&ec, 100);
    ec.retry_max_ms = 200;
    struct kpi_kafka_conf kc;
    kpi_kafka_conf_defaults(&kc);
    kc.brokers = bootstraps;
    kc.topics = "big";
    kc.group_id = "big-group";
    kc.exit_on_eof = exit_on_eof;
    kc.props = props;
    kc.n_props = n_props;
    kc.shutdown_timeout_ms = 3000;
    char err[256];
    cr_assert_eq(kt_instance_start(in, &ec, &kc, ms, err, sizeof(err)), 0, "%s", err);
}

/* The dead-letter producer talks to the same cluster as the consumer, so it
 * needs the same kafka.* settings; here message.max.bytes, without which it
 * refuses the 1.5 MB dead letter (on a real cluster: security.protocol and
 * sasl.*, without which it cannot connect at all). */
Test(kafka_mock, dead_letters_are_produced_with_the_consumers_kafka_settings)
{
    struct kpi_gen_truth t;
    produce_big(1000, &t);
    static const char *const props[][2] = {{"message.max.bytes", "2000000"}};
    struct mem_sink ms;
    mem_sink_init(&ms, "big");
    struct kt_instance a;
    start_big(&a, &ms, 1, props, 1);
    join_ok(&a);
    cr_assert_eq(count_topic("big.dlq", 1, 20000), 1, "the bad event is in big.dlq");
    cr_assert_eq(mem_sink_offsets_total(&ms), 1001, "every offset stored once");
    cr_assert_eq(ms.total.events, (int64_t)t.good);
}

/* A dead letter larger than the producer may send (a hostile 1 MB value)
 * would hold every offset back forever: it goes out truncated, with the
 * original length in kpi.truncated, and the group goes on. */
Test(kafka_mock, an_oversized_dead_letter_is_truncated_and_delivered)
{
    struct kpi_gen_truth t;
    produce_big(1000, &t);
    struct mem_sink ms;
    mem_sink_init(&ms, "big");
    struct kt_instance a;
    start_big(&a, &ms, 1, NULL, 0); /* the producer's default message.max.bytes: 1 000 000 */
    join_ok(&a);
    cr_assert_eq(mem_sink_offsets_total(&ms), 1001, "every offset stored once");
    cr_assert_eq(ms.total.events, (int64_t)t.good);
    rd_kafka_t *rk = read_from_start("big.dlq", "dlq-truncated");
    rd_kafka_message_t *m = NULL;
    int64_t deadline = kpi_mono_ms() + 20000;
    while (!m && kpi_mono_ms() < deadline) {
        m = rd_kafka_consumer_poll(rk, 100);
        if (m && m->err) {
            rd_kafka_message_destroy(m);
            m = NULL;
        }
    }
    cr_assert_not_null(m, "the dead letter was delivered");
    cr_assert_leq(m->len, 1000000 - 4096);
    cr_assert_gt(m->len, 0);
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t vl = 0;
    cr_assert_eq(rd_kafka_message_headers(m, &h), 0);
    cr_assert_eq(rd_kafka_header_get_last(h, "kpi.truncated", &v, &vl), 0);
    cr_assert(vl == 7 && memcmp(v, "1500000", 7) == 0, "the original length");
    cr_assert_eq(rd_kafka_header_get_last(h, "kpi.reason", &v, &vl), 0);
    rd_kafka_message_destroy(m);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* A dead letter the broker refuses is never dropped: no offset moves past
 * it, /healthz says why, /metrics shows it. */
Test(kafka_mock, an_undeliverable_dead_letter_holds_every_offset_back_and_says_why)
{
    struct kpi_gen_truth t;
    produce_big(1000, &t);
    /* Every produce request from here on (the dead-letter producer's) is
     * refused, as a topic the user may not write would be. */
    rd_kafka_resp_err_t refusals[2000];
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
        refusals[i] = RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
    rd_kafka_mock_push_request_errors_array(mc, API_PRODUCE, 2000, refusals);
    struct mem_sink ms;
    mem_sink_init(&ms, "big");
    struct kt_instance a;
    start_big(&a, &ms, 0, NULL, 0);
    struct kpi_kafka_stats st;
    struct kpi_engine_stats es;
    int64_t deadline = kpi_mono_ms() + 60000;
    do {
        poll_pause();
        kpi_source_kafka_get_stats(&a.src, &st);
        kpi_engine_get_stats(a.e, &es);
    } while ((!st.dlq_blocked || es.flush_errors < 3) && kpi_mono_ms() < deadline);
    cr_assert(st.dlq_blocked, "the flushes are held back by the dead letter");
    cr_assert_eq(st.dlq_undelivered, 1);
    cr_assert_geq(es.flush_errors, 3, "and retried");
    char why[512] = "";
    cr_assert_eq(kpi_source_kafka_health(a.src.self, why, sizeof(why)), 0);
    cr_assert(strstr(why, "big.dlq") && strstr(why, "cannot be written") &&
                  strstr(why, "authorization"),
              "%s", why);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    kpi_source_kafka_write_metrics(a.src.self, f);
    fclose(f);
    cr_assert(strstr(text, "kpistream_dead_letters_blocked 1\n"), "%s", text);
    cr_assert(strstr(text, "kpistream_dead_letters_undelivered 1\n"), "%s", text);
    free(text);
    pthread_mutex_lock(&ms.mu);
    int64_t p0 = ms.stored[0];
    pthread_mutex_unlock(&ms.mu);
    cr_assert_leq(p0, 0, "partition 0 never moved past its dead letter (stored %lld)",
                  (long long)p0);

    kt_instance_stop(&a);
    cr_assert_neq(a.rc, 0, "the final flush could not store offsets past the dead letter");
    cr_assert(strstr(a.err, "dead-letter"), "%s", a.err);
    cr_assert_leq(ms.stored[0], 0, "nor at the end: it is read again on restart");
    cr_assert_eq(count_topic("big.dlq", 1, 2000), 0);
}

static void wait_for(struct mem_sink *ms, int64_t offsets, int64_t timeout_ms)
{
    int64_t deadline = kpi_mono_ms() + timeout_ms;
    while (mem_sink_offsets_total(ms) < offsets && kpi_mono_ms() < deadline)
        poll_pause();
}

static void assert_exact(struct mem_sink *ms)
{
    cr_assert_eq(mem_sink_offsets_total(ms), N, "every offset stored once");
    cr_assert_eq(ms->total.events, (int64_t)truth.good,
                 "counted %lld, produced %llu good (applied %llu, replays %llu)",
                 (long long)ms->total.events, (unsigned long long)truth.good,
                 (unsigned long long)ms->applied, (unsigned long long)ms->replays);
    cr_assert_eq(ms->total.revenue, truth.revenue);
    cr_assert_eq(ms->total.churns, (int64_t)truth.by_type[KPI_EV_CHURN]);
    cr_assert_eq(ms->conflicts, 0);
}

Test(kafka_mock, fetch_and_commit_errors_do_not_change_the_counts)
{
    rd_kafka_mock_push_request_errors(mc, API_FETCH, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    rd_kafka_mock_push_request_errors(mc, API_OFFSET_COMMIT, 2,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    struct mem_sink ms;
    struct kt_instance a;
    start_fresh(&a, &ms, 1);
    join_ok(&a);
    assert_exact(&ms);
}

Test(kafka_mock, a_forced_rebalance_mid_stream_keeps_counts_exact)
{
    struct mem_sink ms;
    struct kt_instance a;
    start_fresh(&a, &ms, 0);
    wait_for(&ms, N / 10, 60000);
    /* The coordinator says the group is rebalancing: the consumer revokes
     * (flushing first) and rejoins. */
    rd_kafka_mock_push_request_errors(mc, API_HEARTBEAT, 2, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
                                      RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
    wait_for(&ms, N, 120000);
    stop_ok(&a);
    assert_exact(&ms);
}

Test(kafka_mock, a_second_instance_joining_shares_the_partitions_exactly)
{
    struct mem_sink ms;
    mem_sink_init(&ms, "events");
    struct kt_instance a, b;
    start(&a, &ms, 0);
    wait_for(&ms, N / 10, 60000);
    start(&b, &ms, 0);
    wait_for(&ms, N, 120000);
    kt_instance_stop2(&a, &b);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(b.rc, 0, "%s", b.err);
    assert_exact(&ms);
}

Test(kafka_mock, a_broker_going_down_and_up_loses_nothing)
{
    struct mem_sink ms;
    mem_sink_init(&ms, "events");
    /* Two of three brokers are down before consumption starts: partitions
     * they lead cannot be read until they come back, so the stream stalls
     * part-way whatever the machine's speed. */
    rd_kafka_mock_broker_set_down(mc, 1);
    rd_kafka_mock_broker_set_down(mc, 2);
    struct kt_instance a;
    start(&a, &ms, 0);
    wait_for(&ms, N / 10, 20000);
    int64_t mid = mem_sink_offsets_total(&ms);
    rd_kafka_mock_broker_set_up(mc, 1);
    rd_kafka_mock_broker_set_up(mc, 2);
    wait_for(&ms, N, 120000);
    stop_ok(&a);
    cr_assert_lt(mid, N, "the stream stalled while the brokers were down");
    assert_exact(&ms);
}

Test(kafka_mock, the_sink_failing_pauses_and_resumes_without_loss)
{
    struct mem_sink ms;
    mem_sink_init(&ms, "events");
    ms.fail_io = 8; /* eight flushes fail: the engine keeps the delta and retries */
    struct kt_instance a;
    start(&a, &ms, 1);
    join_ok(&a);
    assert_exact(&ms);
    cr_assert_geq(ms.fail_io, 0);
}

/* librdkafka 2.0.x aborts destroying a cooperative-sticky consumer that is
 * between a successful JoinGroup and its first SyncGroup (sources/kafka.c,
 * "Leaving mid-join").  The coordinator holds the SyncGroup response back
 * for 5 s, and the instance is stopped inside that window. */
Test(kafka_mock, stopping_between_join_and_sync_exits_cleanly)
{
    rd_kafka_mock_coordinator_set(mc, "group", "mock-join-stop", 1);
    rd_kafka_mock_broker_push_request_error_rtts(mc, 1, API_SYNC_GROUP, 1,
                                                 RD_KAFKA_RESP_ERR_NO_ERROR, 5000);
    struct mem_sink ms;
    mem_sink_init(&ms, "events");
    struct kt_instance a;
    start_in_group(&a, &ms, 0, "mock-join-stop");
    struct kpi_kafka_stats st;
    int64_t deadline = kpi_mono_ms() + 30000;
    do {
        poll_pause();
        kpi_source_kafka_get_stats(&a.src, &st);
    } while (!st.joined && kpi_mono_ms() < deadline);
    cr_assert(st.joined, "the JoinGroup succeeded");
    cr_assert_eq(st.rebalances, 0, "the SyncGroup is still held back: no assignment yet");
    stop_ok(&a);
    cr_assert_eq(mem_sink_offsets_total(&ms), 0, "an instance that is leaving consumes nothing");
}

/* A sink that refuses a flush for a reason other than an offsets conflict
 * (here a script error) stops the instance; the message says the real cause,
 * not that another consumer owns a partition. */
Test(kafka_mock, a_flush_refused_for_good_stops_with_the_sinks_own_reason)
{
    struct mem_sink ms;
    mem_sink_init(&ms, "events");
    ms.refuse = "redis redis://127.0.0.1:6379: the flush script failed: WRONGTYPE Operation "
                "against a key holding the wrong kind of value";
    struct kt_instance a;
    start(&a, &ms, 0);
    kt_instance_join(&a);
    cr_assert_neq(a.rc, 0);
    cr_assert(strstr(a.err, "WRONGTYPE"), "%s", a.err);
    cr_assert_null(strstr(a.err, "another consumer"), "%s", a.err);
    cr_assert_eq(mem_sink_offsets_total(&ms), 0);
}
