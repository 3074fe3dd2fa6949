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

#include "base/clock.h"
#include "engine/engine.h"
#include "engine/err.h"
#include "sources/kafka.h"
#include "support/kafka_util.h"
#include "support/kafka_instance.h"
#include "support/mem_sink.h"

/* Polling interval while waiting for a condition (not a synchronisation). */
static void poll_pause(void)
{
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
}

static void start_instance_with(struct kt_instance *in, struct mem_sink *ms, const char *topic,
                                const char *group, int exit_on_eof, const char *brokers,
                                const char *const (*props)[2], int n_props)
{
    struct kpi_engine_conf ec;
    kt_engine_conf_replay(&ec, 200);
    struct kpi_kafka_conf kc;
    kpi_kafka_conf_defaults(&kc);
    kc.brokers = brokers;
    kc.topics = topic;
    kc.group_id = group;
    kc.exit_on_eof = exit_on_eof;
    kc.props = props;
    kc.n_props = n_props;
    char err[256];
    cr_assert_eq(kt_instance_start(in, &ec, &kc, ms, err, sizeof(err)), 0, "%s", err);
}

static void start_instance(struct kt_instance *in, struct mem_sink *ms, const char *topic,
                           const char *group, int exit_on_eof)
{
    start_instance_with(in, ms, topic, group, exit_on_eof, kt_brokers(), NULL, 0);
}

static void wait_until_events(struct mem_sink *ms, int64_t n, int64_t timeout_ms)
{
    int64_t deadline = kpi_mono_ms() + timeout_ms;
    while (mem_sink_events(ms) < n && kpi_mono_ms() < deadline)
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

/* A fresh topic with its group (g-<topic>) and dead-letter topic
 * (<topic>.dlq), and the generator's events produced to it. */
struct stream {
    char topic[128], group[160], dlq[160];
    struct kpi_gen_truth truth;
};

static void produce_stream(struct stream *st, const char *prefix, int partitions, uint64_t seed,
                           double bad, uint64_t events)
{
    cr_assert_eq(kt_create_topic(st->topic, sizeof(st->topic), prefix, partitions), 0);
    snprintf(st->group, sizeof(st->group), "g-%s", st->topic);
    snprintf(st->dlq, sizeof(st->dlq), "%s.dlq", st->topic);
    struct kpi_gen_conf gc = gen_conf(seed, bad);
    memset(&st->truth, 0, sizeof(st->truth));
    cr_assert_eq(kt_produce(st->topic, &gc, events, &st->truth), 0);
}

/* The dead-letter topic holds exactly the stream's bad events, each with
 * its kpi.* headers, as many per reason as the generator made. */
static void expect_dead_letters(const struct stream *st)
{
    uint64_t by_reason[KPI_BAD__COUNT] = {0};
    int headers_ok = 0;
    cr_assert_eq(
        kt_read_dlq(st->dlq, (int64_t)st->truth.bad, 60000, by_reason, KPI_BAD__COUNT, &headers_ok),
        (int64_t)st->truth.bad);
    cr_assert(headers_ok, "every dead letter has kpi.reason/topic/partition/offset");
    for (int r = 1; r < KPI_BAD__COUNT; r++)
        cr_assert_eq(by_reason[r], st->truth.bad_by_reason[r], "reason %s",
                     kpi_bad_reason_name((enum kpi_bad_reason)r));
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
    struct kt_instance a;
    start_instance(&a, &ms, topic, group, 1);
    kt_instance_join(&a);
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
    struct kt_instance a, b;
    start_instance(&a, &ms, topic, group, 0);
    wait_until_events(&ms, (int64_t)truth.good / 10, 60000);
    start_instance(&b, &ms, topic, group, 0); /* the group rebalances under A */
    struct kpi_kafka_stats sa, sb;
    int64_t deadline = kpi_mono_ms() + 60000;
    do {
        poll_pause();
        kpi_source_kafka_get_stats(&a.src, &sa);
        kpi_source_kafka_get_stats(&b.src, &sb);
    } while ((sb.assigned == 0 || sa.assigned + sb.assigned != 8) && kpi_mono_ms() < deadline);
    cr_assert_gt(sb.assigned, 0, "B was given partitions");
    cr_assert_eq(sa.assigned + sb.assigned, 8, "A released what B took");
    cr_assert_eq(kt_produce(topic, &second, N / 2, &truth), 0);
    deadline = kpi_mono_ms() + 120000;
    while (mem_sink_offsets_total(&ms) < (int64_t)N && kpi_mono_ms() < deadline)
        poll_pause();
    struct kpi_engine_stats eb;
    kpi_engine_get_stats(b.e, &eb);
    kt_instance_stop2(&a, &b);
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
    struct stream st;
    produce_stream(&st, "it-dlq", 4, 13, 0.05, 40000);
    cr_assert_gt(st.truth.bad, 1000);

    struct mem_sink ms;
    mem_sink_init(&ms, st.topic);
    struct kt_instance a;
    start_instance(&a, &ms, st.topic, st.group, 1);
    kt_instance_join(&a);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(ms.total.events, (int64_t)st.truth.good, "good events around bad ones all count");
    expect_dead_letters(&st);
}

Test(kafka, survives_a_broker_restart_mid_stream, .timeout = 400)
{
    const uint64_t N = 300000;
    struct stream st;
    produce_stream(&st, "it-restart", 8, 14, 0, N);

    struct mem_sink ms;
    mem_sink_init(&ms, st.topic);
    struct kt_instance a;
    start_instance(&a, &ms, st.topic, st.group, 0);
    wait_until_events(&ms, (int64_t)st.truth.good / 20, 60000);
    cr_assert_eq(kt_sh("bash scripts/services.sh stop kafka"), 0);
    cr_assert_eq(kt_sh("bash scripts/services.sh start kafka"), 0);
    int64_t deadline = kpi_mono_ms() + 240000;
    while (mem_sink_offsets_total(&ms) < (int64_t)N && kpi_mono_ms() < deadline)
        poll_pause();
    kt_instance_stop(&a);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(mem_sink_offsets_total(&ms), (int64_t)N);
    cr_assert_eq(ms.total.events, (int64_t)st.truth.good);
}

/* ---- SASL over TLS: the broker's SASL_SSL listener ---- */

/* Consumer and dead-letter producer both over SASL_SSL (TLS with the test CA
 * of scripts/services.sh, SASL/PLAIN: see kt_sasl_props): exact counts, and
 * the dead letters arrive (the producer gets the consumer's kafka.*
 * settings; before, it connected in plaintext and delivered nothing). */
Test(kafka, sasl_over_tls_counts_exactly_and_its_dead_letters_arrive, .timeout = 300)
{
    struct stream st;
    produce_stream(&st, "it-sasl", 4, 16, 0.02, 40000);
    cr_assert_gt(st.truth.bad, 100);
    cr_assert_neq(kt_sasl_password()[0], '\0', "the services' SASL password (services.sh up)");

    const char *props[KT_SASL_PROPS][2];
    kt_sasl_props(props, kt_sasl_password());
    struct mem_sink ms;
    mem_sink_init(&ms, st.topic);
    struct kt_instance a;
    start_instance_with(&a, &ms, st.topic, st.group, 1, kt_sasl_brokers(),
                        (const char *const(*)[2])props, KT_SASL_PROPS);
    kt_instance_join(&a);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(mem_sink_offsets_total(&ms), 40000);
    cr_assert_eq(ms.total.events, (int64_t)st.truth.good);
    cr_assert_eq(ms.total.revenue, st.truth.revenue);
    expect_dead_letters(&st); /* every dead letter went through SASL_SSL */
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
    int64_t deadline = kpi_mono_ms() + 60000;
    while (!refused && kpi_mono_ms() < deadline)
        rd_kafka_poll(rk, 100);
    rd_kafka_destroy(rk);
    cr_assert(refused, "authentication failed");
}
