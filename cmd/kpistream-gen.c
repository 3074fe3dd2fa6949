/*
 * kpistream-gen - produce realistic subscriber traffic to Kafka.
 *
 *   kpistream-gen [-b BROKERS] [-t TOPIC] [--events N] [--rate R] [--partitions P]
 *                 [--subscribers S] [--seed X] [--bad-ratio F] [--spike SEG:FACTOR:FROM_S:TO_S]
 *                 [--truth FILE] [--no-key] [-X key=value]...
 *
 * Events come from the built-in generator (sources/gen.h).  Every delivery is
 * confirmed; a failed one makes the exit status 1.  The last line is
 *   produced: <N> events (<B> bad) in <S> s
 */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen.h"

static atomic_ullong failed;

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        atomic_fetch_add(&failed, 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kpistream-gen [options]\n"
            "  -b, --brokers LIST     Kafka bootstrap servers (127.0.0.1:9092)\n"
            "  -t, --topic NAME       topic (events)\n"
            "      --events N         how many events (1000000)\n"
            "      --rate R           events per second, paced (default: as fast as possible)\n"
            "      --event-rate E     events per second of event time (default: R if paced,\n"
            "                         else 1000000); event times end about now\n"
            "      --partitions P     create the topic with P partitions if missing (8)\n"
            "      --subscribers S    subscriber population (1000000)\n"
            "      --seed X           seed: same seed, same events (1)\n"
            "      --bad-ratio F      share of malformed events of every kind, 0..1 (0)\n"
            "      --spike SEG:FACTOR:FROM_S:TO_S\n"
            "                         multiply segment SEG's churn by FACTOR between FROM_S and\n"
            "                         TO_S seconds of event time (e.g. youth:5:600:900)\n"
            "      --truth FILE       write the exact totals produced as JSON\n"
            "      --no-key           no message key (default: keyed by subscriber)\n"
            "  -X key=value           librdkafka producer property, passed untouched\n"
            "  -h, --help, -V, --version\n"
            "Last line: produced: <N> events (<B> bad) in <S> s\n");
}

static int bad_opt(const char *opt, const char *v)
{
    fprintf(stderr, "kpistream-gen: --%s: bad value '%s'\n", opt, v);
    return 2;
}

static int create_topic(rd_kafka_t *rk, const char *topic, int partitions)
{
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof(err));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = 0;
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            fprintf(stderr, "kpistream-gen: creating %s: %s\n", topic,
                    rd_kafka_topic_result_error_string(tr[0]));
            rc = -1;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    return rc;
}

int main(int argc, char **argv)
{
    const char *brokers = "127.0.0.1:9092", *topic = "events", *truth_path = NULL;
    unsigned long long n = 1000000;
    double rate = 0, event_rate = 0;
    int partitions = 8, keyed = 1;
    struct kpi_gen_conf gc;
    kpi_gen_conf_defaults(&gc);
    gc.subscribers = 1000000;
    gc.start_ts_ms = (long long)time(NULL) * 1000;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    rd_kafka_conf_set(conf, "batch.num.messages", "10000", err, sizeof(err));
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof(err));
    rd_kafka_conf_set(conf, "compression.codec", "lz4", err, sizeof(err));
    static const struct option lo[] = {{"brokers", 1, 0, 'b'},    {"topic", 1, 0, 't'},
                                       {"events", 1, 0, 'n'},     {"rate", 1, 0, 'r'},
                                       {"partitions", 1, 0, 'p'}, {"subscribers", 1, 0, 's'},
                                       {"seed", 1, 0, 'x'},       {"bad-ratio", 1, 0, 'B'},
                                       {"spike", 1, 0, 'S'},      {"truth", 1, 0, 'T'},
                                       {"no-key", 0, 0, 'K'},     {"help", 0, 0, 'h'},
                                       {"version", 0, 0, 'V'},    {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "b:t:X:hV", lo, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        case 'n':
            n = strtoull(optarg, &end, 10);
            if (*end || n == 0)
                return bad_opt("events", optarg);
            break;
        case 'r':
            rate = strtod(optarg, &end);
            if (*end || rate <= 0)
                return bad_opt("rate", optarg);
            break;
        case 'p':
            partitions = (int)strtol(optarg, &end, 10);
            if (*end || partitions < 1 || partitions > 1024)
                return bad_opt("partitions", optarg);
            break;
        case 's':
            gc.subscribers = strtoull(optarg, &end, 10);
            if (*end || gc.subscribers == 0)
                return bad_opt("subscribers", optarg);
            break;
        case 'x':
            gc.seed = strtoull(optarg, &end, 10);
            if (*end)
                return bad_opt("seed", optarg);
            break;
        case 'B':
            gc.bad_ratio = strtod(optarg, &end);
            if (*end || gc.bad_ratio < 0 || gc.bad_ratio > 1)
                return bad_opt("bad-ratio", optarg);
            break;
        case 'S': {
            char seg[32];
            double f, a, b;
            if (sscanf(optarg, "%31[^:]:%lf:%lf:%lf", seg, &f, &a, &b) != 4 || f <= 0 || b <= a)
                return bad_opt("spike", optarg);
            snprintf(gc.spike_segment, sizeof(gc.spike_segment), "%s", seg);
            gc.spike_factor = f;
            gc.spike_start_ms = (int64_t)(a * 1000);
            gc.spike_end_ms = (int64_t)(b * 1000);
            break;
        }
        case 'E':
            event_rate = strtod(optarg, &end);
            if (*end || event_rate <= 0)
                return bad_opt("event-rate", optarg);
            break;
        case 'T': truth_path = optarg; break;
        case 'K': keyed = 0; break;
        case 'X': {
            char *eq = strchr(optarg, '=');
            if (!eq) {
                fprintf(stderr, "kpistream-gen: -X %s: expected key=value\n", optarg);
                return 2;
            }
            *eq = '\0';
            if (rd_kafka_conf_set(conf, optarg, eq + 1, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "kpistream-gen: -X %s: %s\n", optarg, err);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("kpistream-gen %s\n", KPI_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    /* Event time advances at the event rate and ends about now, so nothing
     * is in the future (ts_in_future) and nothing starts out too late. */
    gc.events_per_sec = event_rate > 0 ? event_rate : rate > 0 ? rate : 1000000;
    if (rate <= 0)
        gc.start_ts_ms -= (int64_t)((double)n / gc.events_per_sec * 1000.0);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err))) {
        fprintf(stderr, "kpistream-gen: --brokers: %s\n", err);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "kpistream-gen: %s\n", err);
        return 2;
    }
    if (create_topic(rk, topic, partitions))
        return 1;
    struct kpi_gen *g = kpi_gen_new(&gc);
    if (!g) {
        fprintf(stderr, "kpistream-gen: bad generator settings\n");
        return 2;
    }
    struct kpi_gen_truth truth;
    memset(&truth, 0, sizeof(truth));
    uint8_t buf[512];
    double t0 = now_s();
    for (unsigned long long i = 0; i < n; i++) {
        if (rate > 0 && i % 100 == 0) {
            double due = t0 + (double)i / rate, now;
            while ((now = now_s()) < due)
                rd_kafka_poll(rk, (int)((due - now) * 1000) + 1); /* pacing */
        }
        size_t len;
        struct kpi_gen_info in;
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        kpi_gen_truth_add(&truth, &in);
        char key[24];
        int kl = snprintf(key, sizeof(key), "%llu", (unsigned long long)kpi_gen_sub_id(g, in.sub));
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(buf, len),
                                 RD_KAFKA_V_KEY(keyed ? key : NULL, keyed ? (size_t)kl : 0),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 5);
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 120000);
    double dt = now_s() - t0;
    int outstanding = rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    kpi_gen_destroy(g);
    if (truth_path) {
        FILE *f = fopen(truth_path, "w");
        if (!f) {
            fprintf(stderr, "kpistream-gen: --truth: cannot write %s\n", truth_path);
            return 1;
        }
        kpi_gen_truth_write_json(f, &truth);
        fclose(f);
    }
    unsigned long long lost = atomic_load(&failed) + (unsigned long long)outstanding;
    if (lost)
        fprintf(stderr, "kpistream-gen: %llu events were not delivered\n", lost);
    printf("produced: %llu events (%llu bad) in %.2f s\n", (unsigned long long)truth.events,
           (unsigned long long)truth.bad, dt);
    return lost ? 1 : 0;
}
