/*
 * The Kafka source against the real broker started by scripts/services.sh:
 * exact counts across 8 partitions and 2 workers, a second instance joining
 * mid-stream, dead letters with their reason headers, and the broker
 * restarted under the consumer.  Waits are on conditions with deadlines.
 */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/err.h"
#include "sources/kafka.h"
#include "support/kafka_util.h"
#include "support/mem_sink.h"

/* Polling interval while waiting for a condition (not a synchronisation). */
static void poll_pause(void)
{
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct instance {
    struct kpi_engine *e;
    struct kpi_source src;
    struct kpi_sink store;
    pthread_t th;
    int rc;
    char err[512];
};

static void *run_instance(void *arg)
{
    struct instance *in = arg;
    in->rc = in->src.ops->run(in->src.self, in->err, sizeof(in->err));
    return NULL;
}

static void start_instance_with(struct instance *in, struct mem_sink *ms, const char *topic,
                                const char *group, int exit_on_eof, const char *brokers,
                                const char *const (*props)[2], int n_props);

static void start_instance(struct instance *in, struct mem_sink *ms, const char *topic,
                           const char *group, int exit_on_eof)
{
    start_instance_with(in, ms, topic, group, exit_on_eof, kt_brokers(), NULL, 0);
}

static void start_instance_with(struct instance *in, struct mem_sink *ms, const char *topic,
                                const char *group, int exit_on_eof, const char *brokers,
                                const char *const (*props)[2], int n_props)
{
    memset(in, 0, sizeof(*in));
    struct kpi_engine_conf ec;
    kpi_engine_conf_defaults(&ec);
    ec.n_workers = 2;
    ec.flush_interval_ms = 200;
    ec.lateness_ms = 365LL * 86400000; /* replayed history: nothing is late here */
    ec.max_skew_ms = 365LL * 86400000 * 50;
    char err[256];
    in->e = kpi_engine_new(&ec, err, sizeof(err));
    cr_assert_not_null(in->e, "%s", err);
    in->store = mem_sink_as_sink(ms);
    struct kpi_kafka_conf kc;
    kpi_kafka_conf_defaults(&kc);
    kc.brokers = brokers;
    kc.topics = topic;
    kc.group_id = group;
    kc.exit_on_eof = exit_on_eof;
    kc.props = props;
    kc.n_props = n_props;
    in->src = kpi_source_kafka_new(&kc, in->e, &in->store, err, sizeof(err));
    cr_assert_not_null(in->src.ops, "%s", err);
    cr_assert_eq(kpi_engine_start(in->e, err, sizeof(err)), 0);
    pthread_create(&in->th, NULL, run_instance, in);
}

static void join_instance(struct instance *in)
{
    pthread_join(in->th, NULL);
    kpi_engine_stop(in->e);
    in->src.ops->destroy(in->src.self);
    kpi_engine_destroy(in->e);
}

static void wait_until_events(struct mem_sink *ms, int64_t n, int64_t timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    while (mem_sink_events(ms) < n && mono_ms() < deadline)
        poll_pause();
}

static struct kpi_gen_conf gen_conf(uint64_t seed, double bad)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.seed = seed;
    c.bad_ratio = bad;
    c.subscribers = 50000;
    return c;
}

Test(kafka, eight_partitions_two_workers_count_exactly, .timeout = 300)
{
    char topic[128], group[160];
    cr_assert_eq(kt_create_topic(topic, sizeof(topic), "it-exact", 8), 0,
                 "is the broker up? (bash scripts/services.sh up)");
    snprintf(group, sizeof(group), "g-%s", topic);
    struct kpi_gen_conf gc = gen_conf(11, 0);
    struct kpi_gen_truth truth;
    memset(&truth, 0, sizeof(truth));
    cr_assert_eq(kt_produce(topic, &gc, 200000, &truth), 0);

    struct mem_sink ms;
    mem_sink_init(&ms, topic);
    struct instance a;
    start_instance(&a, &ms, topic, group, 1);
    join_instance(&a);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(ms.total.events, (int64_t)truth.good);
    cr_assert_eq(ms.total.usage, (int64_t)truth.by_type[KPI_EV_USAGE]);
    cr_assert_eq(ms.total.churns, (int64_t)truth.by_type[KPI_EV_CHURN]);
    cr_assert_eq(ms.total.revenue, truth.revenue);
    cr_assert_eq(mem_sink_offsets_total(&ms), 200000, "every offset stored once");
    cr_assert_eq(ms.conflicts, 0);
}

/* B joins while A consumes; the second half of the stream is produced only
 * once B owns partitions, so both instances really share the stream (on a
 * fast machine A could otherwise finish before B's join completes). */
Test(kafka, second_consumer_joining_mid_stream_keeps_counts_exact, .timeout = 300)
{
    char topic[128], group[160];
    cr_assert_eq(kt_create_topic(topic, sizeof(topic), "it-join", 8), 0);
    snprintf(group, sizeof(group), "g-%s", topic);
    struct kpi_gen_conf first = gen_conf(12, 0), second = gen_conf(15, 0);
    struct kpi_gen_truth truth;
    memset(&truth, 0, sizeof(truth));
    const uint64_t N = 300000;
    cr_assert_eq(kt_produce(topic, &first, N / 2, &truth), 0);

    struct mem_sink ms;
    mem_sink_init(&ms, topic);
    struct instance a, b;
    start_instance(&a, &ms, topic, group, 0);
    wait_until_events(&ms, (int64_t)truth.good / 10, 60000);
    start_instance(&b, &ms, topic, group, 0); /* the group rebalances under A */
    struct kpi_kafka_stats sa, sb;
    int64_t deadline = mono_ms() + 60000;
    do {
        poll_pause();
        kpi_source_kafka_get_stats(&a.src, &sa);
        kpi_source_kafka_get_stats(&b.src, &sb);
    } while ((sb.assigned == 0 || sa.assigned + sb.assigned != 8) && mono_ms() < deadline);
    cr_assert_gt(sb.assigned, 0, "B was given partitions");
    cr_assert_eq(sa.assigned + sb.assigned, 8, "A released what B took");
    cr_assert_eq(kt_produce(topic, &second, N / 2, &truth), 0);
    deadline = mono_ms() + 120000;
    while (mem_sink_offsets_total(&ms) < (int64_t)N && mono_ms() < deadline)
        poll_pause();
    struct kpi_engine_stats eb;
    kpi_engine_get_stats(b.e, &eb);
    a.src.ops->stop(a.src.self);
    b.src.ops->stop(b.src.self);
    join_instance(&a);
    join_instance(&b);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(b.rc, 0, "%s", b.err);
    cr_assert_gt(eb.events.good, 0, "B counted part of the stream");
    cr_assert_eq(mem_sink_offsets_total(&ms), (int64_t)N);
    cr_assert_eq(ms.total.events, (int64_t)truth.good, "no event lost or counted twice");
    cr_assert_eq(ms.total.revenue, truth.revenue);
    cr_assert_eq(ms.conflicts, 0);
}

Test(kafka, bad_events_go_to_the_dead_letter_topic_with_reasons, .timeout = 300)
{
    char topic[128], group[160], dlq[160];
    cr_assert_eq(kt_create_topic(topic, sizeof(topic), "it-dlq", 4), 0);
    snprintf(group, sizeof(group), "g-%s", topic);
    snprintf(dlq, sizeof(dlq), "%s.dlq", topic);
    struct kpi_gen_conf gc = gen_conf(13, 0.05);
    struct kpi_gen_truth truth;
    memset(&truth, 0, sizeof(truth));
    cr_assert_eq(kt_produce(topic, &gc, 40000, &truth), 0);
    cr_assert_gt(truth.bad, 1000);

    struct mem_sink ms;
    mem_sink_init(&ms, topic);
    struct instance a;
    start_instance(&a, &ms, topic, group, 1);
    join_instance(&a);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(ms.total.events, (int64_t)truth.good, "good events around bad ones all count");

    uint64_t by_reason[KPI_BAD__COUNT] = {0};
    int headers_ok = 0;
    int64_t got =
        kt_read_dlq(dlq, (int64_t)truth.bad, 60000, by_reason, KPI_BAD__COUNT, &headers_ok);
    cr_assert_eq(got, (int64_t)truth.bad);
    cr_assert(headers_ok, "every dead letter has kpi.reason/topic/partition/offset");
    for (int r = 1; r < KPI_BAD__COUNT; r++)
        cr_assert_eq(by_reason[r], truth.bad_by_reason[r], "reason %s",
                     kpi_bad_reason_name((enum kpi_bad_reason)r));
}

Test(kafka, survives_a_broker_restart_mid_stream, .timeout = 400)
{
    char topic[128], group[160];
    cr_assert_eq(kt_create_topic(topic, sizeof(topic), "it-restart", 8), 0);
    snprintf(group, sizeof(group), "g-%s", topic);
    struct kpi_gen_conf gc = gen_conf(14, 0);
    struct kpi_gen_truth truth;
    memset(&truth, 0, sizeof(truth));
    const uint64_t N = 300000;
    cr_assert_eq(kt_produce(topic, &gc, N, &truth), 0);

    struct mem_sink ms;
    mem_sink_init(&ms, topic);
    struct instance a;
    start_instance(&a, &ms, topic, group, 0);
    wait_until_events(&ms, (int64_t)truth.good / 20, 60000);
    cr_assert_eq(kt_sh("bash scripts/services.sh stop kafka"), 0);
    cr_assert_eq(kt_sh("bash scripts/services.sh start kafka"), 0);
    int64_t deadline = mono_ms() + 240000;
    while (mem_sink_offsets_total(&ms) < (int64_t)N && mono_ms() < deadline)
        poll_pause();
    a.src.ops->stop(a.src.self);
    join_instance(&a);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(mem_sink_offsets_total(&ms), (int64_t)N);
    cr_assert_eq(ms.total.events, (int64_t)truth.good);
}

/* ---- SASL over TLS: the broker's SASL_SSL listener ---- */

/* Consumer and dead-letter producer both over SASL_SSL (TLS with the test CA
 * of scripts/services.sh, SASL/PLAIN: see kt_sasl_props): exact counts, and
 * the dead letters arrive (the producer gets the consumer's kafka.*
 * settings; before, it connected in plaintext and delivered nothing). */
Test(kafka, sasl_over_tls_counts_exactly_and_its_dead_letters_arrive, .timeout = 300)
{
    char topic[128], group[160], dlq[160];
    cr_assert_eq(kt_create_topic(topic, sizeof(topic), "it-sasl", 4), 0);
    snprintf(group, sizeof(group), "g-%s", topic);
    snprintf(dlq, sizeof(dlq), "%s.dlq", topic);
    struct kpi_gen_conf gc = gen_conf(16, 0.02);
    struct kpi_gen_truth truth;
    memset(&truth, 0, sizeof(truth));
    cr_assert_eq(kt_produce(topic, &gc, 40000, &truth), 0);
    cr_assert_gt(truth.bad, 100);
    cr_assert_neq(kt_sasl_password()[0], '\0', "the services' SASL password (services.sh up)");

    const char *props[KT_SASL_PROPS][2];
    kt_sasl_props(props, kt_sasl_password());
    struct mem_sink ms;
    mem_sink_init(&ms, topic);
    struct instance a;
    start_instance_with(&a, &ms, topic, group, 1, kt_sasl_brokers(), (const char *const(*)[2])props,
                        KT_SASL_PROPS);
    join_instance(&a);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(mem_sink_offsets_total(&ms), 40000);
    cr_assert_eq(ms.total.events, (int64_t)truth.good);
    cr_assert_eq(ms.total.revenue, truth.revenue);
    uint64_t by_reason[KPI_BAD__COUNT] = {0};
    int headers_ok = 0;
    cr_assert_eq(
        kt_read_dlq(dlq, (int64_t)truth.bad, 60000, by_reason, KPI_BAD__COUNT, &headers_ok),
        (int64_t)truth.bad, "every dead letter went through SASL_SSL");
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)reason;
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
        *(volatile int *)opaque = 1;
}

/* The listener really authenticates: a wrong password is refused. */
Test(kafka, the_sasl_listener_refuses_a_wrong_password, .timeout = 120)
{
    const char *props[KT_SASL_PROPS][2];
    kt_sasl_props(props, "not-the-password");
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(c, "bootstrap.servers", kt_sasl_brokers(), err, sizeof(err)), 0);
    for (int i = 0; i < KT_SASL_PROPS; i++)
        cr_assert_eq(rd_kafka_conf_set(c, props[i][0], props[i][1], err, sizeof(err)), 0, "%s",
                     err);
    volatile int refused = 0;
    rd_kafka_conf_set_error_cb(c, on_error);
    rd_kafka_conf_set_opaque(c, (void *)&refused);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    cr_assert_not_null(rk, "%s", err);
    int64_t deadline = mono_ms() + 60000;
    while (!refused && mono_ms() < deadline)
        rd_kafka_poll(rk, 100);
    rd_kafka_destroy(rk);
    cr_assert(refused, "authentication failed");
}
