/*
 * kpistream-gen - produce realistic subscriber traffic to Kafka, and write down
 * exactly what was produced.
 *
 * Events come from the built-in generator (gen/gen.h): same seed, same
 * events.  The topic is created with --partitions partitions if it does not
 * exist.  Messages are keyed by subscriber id (the id the event carries, as
 * decimal digits) unless --no-key, so each subscriber lives in one partition.
 * Every delivery is confirmed: the producer is idempotent by default (no
 * duplicates on retries, so the truth file stays exact), and any failed
 * delivery makes the exit status 1.  usage() below is the documentation.
 *
 * Event time: paced (--rate R), event time follows the wall clock from now at
 * --event-rate (default R) events per second of event time.  Unpaced, event
 * time advances at --event-rate (default 1000000/s) and ends about now, so no
 * event is in the future and the first are not hours late.
 */
#include <errno.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/err.h"
#include "gen/truth.h"
#include "engine/window.h"

#ifndef KPI_VERSION
#define KPI_VERSION "dev"
#endif

#define PROG "kpistream-gen"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " [options]\n"
            "Produce realistic subscriber events (msgpack, docs/events.md) to a Kafka topic.\n"
            "\n"
            "  -b, --brokers LIST       bootstrap servers (127.0.0.1:9092)\n"
            "  -t, --topic NAME         topic (events)\n"
            "      --partitions P       create the topic with P partitions if missing (8)\n"
            "      --replication R      replication factor of a created topic; -1: the\n"
            "                           broker's default (-1)\n"
            "      --events N           how many events (1000000)\n"
            "      --rate R             events per second, paced (default: as fast as possible)\n"
            "      --event-rate E       events per second of event time (default: R when\n"
            "                           paced, else 1000000); unpaced, event times end about now\n"
            "      --subscribers S      subscriber population (1000000); 8 bytes of memory each\n"
            "      --zipf S             activity skew: the k-th busiest subscriber is k^-S as\n"
            "                           active as the busiest (1.1)\n"
            "      --seed X             same seed, same events (1)\n"
            "      --jitter MS          events arrive up to MS ms out of event-time order (2000)\n"
            "      --churn-rate F       base share of churn events (0.005)\n"
            "      --base-every DUR     also send `base` snapshots (docs/events.md) of every\n"
            "                           region+plan+segment every DUR (a multiple of 1h: 1h,\n"
            "                           24h); the base is sized for a monthly churn of\n"
            "                           --base-churn at --churn-rate (off)\n"
            "      --base-churn F       that monthly churn (0.02)\n"
            "      --sites N            add a `site` dimension: each subscriber's home cell\n"
            "                           site, one of N values \"site-<n>\" (0: none)\n"
            "      --bad-ratio F        share of malformed events, 0..1, rotating through every\n"
            "                           decoder reason (0)\n"
            "      --max-string N       the engine's engine.max_string, so that oversized-string\n"
            "                           bad events exceed it (128)\n"
            "      --spike NAME:FACTOR:FROM_S:TO_S\n"
            "                           multiply the churn of segment (or region) NAME by FACTOR\n"
            "                           from FROM_S to TO_S seconds of event time after the\n"
            "                           first event (e.g. youth:5:600:900)\n"
            "      --truth FILE         write the exact totals produced as JSON: overall, and per\n"
            "                           grouping-set value and bucket with exact distinct\n"
            "                           subscribers (see gen/truth.h)\n"
            "      --truth-bucket DUR   bucket width of the truth's cells (5s)\n"
            "      --timestamps FILE    write `partition offset create_time_ms` of every 100th\n"
            "                           delivered message (by offset) to FILE, for\n"
            "                           `kpistream-bench latency`\n"
            "      --truth-sets SETS    grouping sets of the truth's cells\n"
            "                           (region,region+plan,segment; 'all' is always there)\n"
            "      --key-by-sub         key messages by subscriber id (the default)\n"
            "      --no-key             no key: the partitioner spreads messages\n"
            "  -X key=value             librdkafka producer property, passed untouched; applied\n"
            "                           after this program's defaults (linger.ms=5,\n"
            "                           batch.size=1000000, compression.codec=lz4,\n"
            "                           enable.idempotence=true, ...)\n"
            "  -h, --help               this text\n"
            "  -V, --version            the version\n"
            "\n"
            "Exit status: 0 when every event was delivered, 1 when some were not (or Kafka\n"
            "failed), 2 for a bad option, 130/143 when interrupted (after flushing and writing\n"
            "the truth of what was produced).  The last line on stdout is\n"
            "  produced: <N> events (<B> bad) in <S> s\n");
}

/* ---- option values ---- */

static int bad_value(const char *opt, const char *v, const char *want)
{
    fprintf(stderr, PROG ": %s: bad value '%s' (%s)\n", opt, v, want);
    return 2;
}

static int parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *s == '+' || *end || errno || v < lo || v > hi) {
        char want[96];
        snprintf(want, sizeof(want), "an integer in %llu..%llu", (unsigned long long)lo,
                 (unsigned long long)hi);
        return bad_value(opt, s, want);
    }
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo && v <= hi)) {
        char want[96];
        snprintf(want, sizeof(want), "a number in %g..%g", lo, hi);
        return bad_value(opt, s, want);
    }
    *out = v;
    return 0;
}

/* NAME:FACTOR:FROM_S:TO_S; NAME a segment or a region. */
static int parse_spike(const char *s, struct kpi_gen_conf *gc)
{
    char name[KPI_GEN_NAME_MAX], tail;
    double f, a, b;
    if (sscanf(s, "%31[^:]:%lf:%lf:%lf%c", name, &f, &a, &b, &tail) != 4 || !(f >= 0) ||
        !(a >= 0) || !(b > a) || b > 1e9)
        return bad_value("--spike", s, "NAME:FACTOR:FROM_S:TO_S, e.g. youth:5:600:900");
    if (kpi_gen_segment_index(name) >= 0) {
        snprintf(gc->spike_segment, sizeof(gc->spike_segment), "%s", name);
    } else if (kpi_gen_region_index(name) >= 0) {
        snprintf(gc->spike_region, sizeof(gc->spike_region), "%s", name);
    } else {
        char want[512];
        int n = snprintf(want, sizeof(want), "no segment or region '%s'; segments:", name);
        for (int i = 0; i < kpi_gen_n_segments() && n < (int)sizeof(want); i++)
            n += snprintf(want + n, sizeof(want) - (size_t)n, " %s", kpi_gen_segment_name(i));
        for (int i = 0; i < kpi_gen_n_regions() && n < (int)sizeof(want); i++)
            n += snprintf(want + n, sizeof(want) - (size_t)n, "%s %s",
                          i ? "" : "; regions:", kpi_gen_region_name(i));
        return bad_value("--spike", s, want);
    }
    gc->spike_factor = f;
    gc->spike_start_ms = (int64_t)(a * 1000);
    gc->spike_end_ms = (int64_t)(b * 1000);
    return 0;
}

static int conf_set(rd_kafka_conf_t *conf, const char *opt, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, PROG ": %s %s=%s: %s\n", opt, k, v, err);
        return 2;
    }
    return 0;
}

/* ---- delivery, signals, time ---- */

static unsigned long long failed;
static char first_failure[256];

static FILE *timestamps_file; /* --timestamps */

/* Called from rd_kafka_poll/flush on this thread only. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err && failed++ == 0)
        snprintf(first_failure, sizeof(first_failure), "%s", rd_kafka_err2str(m->err));
    if (!m->err && timestamps_file && m->offset % 100 == 0) {
        rd_kafka_timestamp_type_t tt;
        fprintf(timestamps_file, "%d %lld %lld\n", (int)m->partition, (long long)m->offset,
                (long long)rd_kafka_message_timestamp(m, &tt));
    }
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* ---- the topic ---- */

/* Create the topic unless it exists.  0 or -1. */
static int ensure_topic(rd_kafka_t *rk, const char *topic, int partitions, int replication)
{
    char err[512];
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(rk);
    if (mc) { /* -X test.mock.num.brokers=N: librdkafka's mock has no controller */
        rd_kafka_resp_err_t e =
            rd_kafka_mock_topic_create(mc, topic, partitions, replication < 1 ? 1 : replication);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            fprintf(stderr, PROG ": creating topic %s in the mock cluster: %s\n", topic,
                    rd_kafka_err2str(e));
            return -1;
        }
        return 0;
    }
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, replication, err, sizeof(err));
    if (!nt) {
        fprintf(stderr, PROG ": topic %s: %s\n", topic, err);
        return -1;
    }
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 30000, err, sizeof(err));
    rd_kafka_AdminOptions_set_request_timeout(ao, 30000, err, sizeof(err));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
    int rc = 0;
    if (!ev) {
        fprintf(stderr, PROG ": creating topic %s: no answer from the brokers\n", topic);
        rc = -1;
    } else if (rd_kafka_event_error(ev)) {
        fprintf(stderr, PROG ": creating topic %s: %s\n", topic, rd_kafka_event_error_string(ev));
        rc = -1;
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(tr[0]) : 0;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, PROG ": created topic %s with %d partitions\n", topic, partitions);
        } else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            fprintf(stderr, PROG ": creating topic %s: %s\n", topic,
                    rd_kafka_topic_result_error_string(tr[0]));
            rc = -1;
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

/* ---- main ---- */

enum {
    O_EVENTS = 256,
    O_RATE,
    O_EVENT_RATE,
    O_PARTITIONS,
    O_REPLICATION,
    O_SUBSCRIBERS,
    O_ZIPF,
    O_SEED,
    O_JITTER,
    O_CHURN_RATE,
    O_BASE_EVERY,
    O_BASE_CHURN,
    O_SITES,
    O_BAD_RATIO,
    O_MAX_STRING,
    O_SPIKE,
    O_TRUTH,
    O_TIMESTAMPS,
    O_TRUTH_BUCKET,
    O_TRUTH_SETS,
    O_KEY_BY_SUB,
    O_NO_KEY,
};

static const struct option long_opts[] = {
    {"brokers", required_argument, NULL, 'b'},
    {"topic", required_argument, NULL, 't'},
    {"events", required_argument, NULL, O_EVENTS},
    {"rate", required_argument, NULL, O_RATE},
    {"event-rate", required_argument, NULL, O_EVENT_RATE},
    {"partitions", required_argument, NULL, O_PARTITIONS},
    {"replication", required_argument, NULL, O_REPLICATION},
    {"subscribers", required_argument, NULL, O_SUBSCRIBERS},
    {"zipf", required_argument, NULL, O_ZIPF},
    {"seed", required_argument, NULL, O_SEED},
    {"jitter", required_argument, NULL, O_JITTER},
    {"churn-rate", required_argument, NULL, O_CHURN_RATE},
    {"base-every", required_argument, NULL, O_BASE_EVERY},
    {"base-churn", required_argument, NULL, O_BASE_CHURN},
    {"sites", required_argument, NULL, O_SITES},
    {"bad-ratio", required_argument, NULL, O_BAD_RATIO},
    {"max-string", required_argument, NULL, O_MAX_STRING},
    {"spike", required_argument, NULL, O_SPIKE},
    {"truth", required_argument, NULL, O_TRUTH},
    {"timestamps", required_argument, NULL, O_TIMESTAMPS},
    {"truth-bucket", required_argument, NULL, O_TRUTH_BUCKET},
    {"truth-sets", required_argument, NULL, O_TRUTH_SETS},
    {"key-by-sub", no_argument, NULL, O_KEY_BY_SUB},
    {"no-key", no_argument, NULL, O_NO_KEY},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

struct opts {
    const char *topic, *truth_path, *truth_sets, *timestamps_path;
    uint64_t events;
    double rate, event_rate;
    int partitions, replication, keyed;
    int64_t truth_bucket_ms;
    struct kpi_gen_conf gc;
};

/* Parse argv into *o and conf; 0, 1 (--help/--version done) or 2. */
static int parse_args(int argc, char **argv, struct opts *o, rd_kafka_conf_t *conf)
{
    int c;
    uint64_t u;
    while ((c = getopt_long(argc, argv, "b:t:X:hV", long_opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'b': rc = conf_set(conf, "--brokers", "bootstrap.servers", optarg); break;
        case 't':
            if (!*optarg)
                return bad_value("--topic", optarg, "a topic name");
            o->topic = optarg;
            break;
        case O_EVENTS: rc = parse_u64("--events", optarg, 1, UINT64_MAX / 2, &o->events); break;
        case O_RATE: rc = parse_double("--rate", optarg, 1e-3, 1e9, &o->rate); break;
        case O_EVENT_RATE:
            rc = parse_double("--event-rate", optarg, 1e-3, 1e12, &o->event_rate);
            break;
        case O_PARTITIONS:
            if (!(rc = parse_u64("--partitions", optarg, 1, 100000, &u)))
                o->partitions = (int)u;
            break;
        case O_REPLICATION:
            if (strcmp(optarg, "-1") == 0)
                o->replication = -1;
            else if (!(rc = parse_u64("--replication", optarg, 1, 32, &u)))
                o->replication = (int)u;
            break;
        case O_SUBSCRIBERS:
            rc = parse_u64("--subscribers", optarg, 1, KPI_GEN_MAX_SUBSCRIBERS, &o->gc.subscribers);
            break;
        case O_ZIPF: rc = parse_double("--zipf", optarg, 0.01, 9.99, &o->gc.zipf_s); break;
        case O_SEED: rc = parse_u64("--seed", optarg, 0, UINT64_MAX, &o->gc.seed); break;
        case O_JITTER:
            if (!(rc = parse_u64("--jitter", optarg, 0, 86400000, &u)))
                o->gc.jitter_ms = (int64_t)u;
            break;
        case O_SITES: {
            uint64_t v = 0;
            rc = parse_u64("--sites", optarg, 0, 10000000, &v);
            o->gc.sites = (uint32_t)v;
            break;
        }
        case O_CHURN_RATE:
            rc = parse_double("--churn-rate", optarg, 0, 0.5, &o->gc.churn_rate);
            break;
        case O_BAD_RATIO: rc = parse_double("--bad-ratio", optarg, 0, 1, &o->gc.bad_ratio); break;
        case O_MAX_STRING:
            if (!(rc = parse_u64("--max-string", optarg, 1, 65535, &u)))
                o->gc.max_str_len = (uint32_t)u;
            break;
        case O_SPIKE: rc = parse_spike(optarg, &o->gc); break;
        case O_TRUTH: o->truth_path = optarg; break;
        case O_TIMESTAMPS: o->timestamps_path = optarg; break;
        case O_BASE_EVERY:
            if (kpi_duration_parse(optarg, &o->gc.base_every_ms) || o->gc.base_every_ms <= 0 ||
                o->gc.base_every_ms % 3600000)
                return bad_value("--base-every", optarg, "a multiple of 1h, such as 1h or 24h");
            break;
        case O_BASE_CHURN: {
            char *end;
            double f = strtod(optarg, &end);
            if (!*optarg || *end || !(f > 0 && f <= 1))
                return bad_value("--base-churn", optarg, "a fraction in (0, 1]");
            o->gc.base_monthly_churn = f;
            break;
        }
        case O_TRUTH_BUCKET:
            if (kpi_duration_parse(optarg, &o->truth_bucket_ms) || o->truth_bucket_ms <= 0)
                return bad_value("--truth-bucket", optarg, "a duration such as 5s or 1m");
            break;
        case O_TRUTH_SETS: o->truth_sets = optarg; break;
        case O_KEY_BY_SUB: o->keyed = 1; break;
        case O_NO_KEY: o->keyed = 0; break;
        case 'X': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return bad_value("-X", optarg, "key=value");
            *eq = '\0';
            rc = conf_set(conf, "-X", optarg, eq + 1);
            *eq = '=';
            break;
        }
        case 'h': usage(stdout); return 1;
        case 'V':
            printf(PROG " %s (librdkafka %s)\n", KPI_VERSION, rd_kafka_version_str());
            return 1;
        default: fprintf(stderr, "Try '" PROG " --help'.\n"); return 2;
        }
        if (rc)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'; try '" PROG " --help'\n", argv[optind]);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.topic = "events",
                     .events = 1000000,
                     .partitions = 8,
                     .replication = -1,
                     .keyed = 1,
                     .truth_bucket_ms = 5000};
    kpi_gen_conf_defaults(&o.gc);
    o.gc.subscribers = 1000000;

    /* Throughput defaults; -X overrides them, as it is applied after.  On a
     * 2-core box with the broker on it, lz4 beat no compression (0.6-0.8 M
     * vs 0.4-0.7 M keyed events/s: ~110-byte msgpack events compress well
     * and the broker writes less), and a longer linger or larger batches
     * did not help (the CPU is the limit).  Idempotence keeps retries from
     * duplicating events, which would make the truth file wrong. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *const defaults[][2] = {
        {"bootstrap.servers", "127.0.0.1:9092"},
        {"client.id", PROG},
        {"linger.ms", "5"},
        {"batch.size", "1000000"},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
        {"compression.codec", "lz4"},
        {"enable.idempotence", "true"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (conf_set(conf, "default", defaults[i][0], defaults[i][1]))
            return 1;
    int rc = parse_args(argc, argv, &o, conf);
    if (rc) {
        rd_kafka_conf_destroy(conf);
        return rc == 1 ? 0 : rc;
    }

    struct kpi_gen_conf *gc = &o.gc;
    gc->events_per_sec = o.event_rate > 0 ? o.event_rate : o.rate > 0 ? o.rate : 1000000;
    gc->start_ts_ms = (int64_t)time(NULL) * 1000;
    if (o.rate <= 0)
        gc->start_ts_ms -= (int64_t)((double)o.events / gc->events_per_sec * 1000.0);
    char err[512];
    if (kpi_gen_conf_validate(gc, err, sizeof(err))) {
        fprintf(stderr, PROG ": %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 2;
    }

    struct kpi_gen_truth truth;
    memset(&truth, 0, sizeof(truth));
    FILE *truth_file = NULL;
    if (o.truth_path) {
        struct kpi_gen_truth_conf tc;
        kpi_gen_truth_conf_defaults(&tc);
        tc.subscribers = gc->subscribers;
        tc.bucket_ms = o.truth_bucket_ms;
        tc.sets = o.truth_sets;
        /* Bound the per-bucket bitmaps to about 1 GiB. */
        uint64_t per_bucket = gc->subscribers / 8 + 16384;
        uint64_t max_buckets = (1ULL << 30) / per_bucket;
        tc.max_buckets = (uint32_t)(max_buckets < 1       ? 1
                                    : max_buckets > 65536 ? 65536
                                                          : max_buckets);
        if ((rc = kpi_gen_truth_init(&truth, &tc, err, sizeof(err)))) {
            const char *why = strncmp(err, "sets: ", 6) == 0 ? err + 6 : err;
            fprintf(stderr, PROG ": --truth-sets: %s\n", why);
            rd_kafka_conf_destroy(conf);
            return rc == KPI_ERR_INVAL ? 2 : 1;
        }
        if (!(truth_file = fopen(o.truth_path, "w"))) {
            fprintf(stderr, PROG ": --truth: cannot write %s: %s\n", o.truth_path, strerror(errno));
            kpi_gen_truth_fini(&truth);
            rd_kafka_conf_destroy(conf);
            return 2;
        }
    }

    if (o.timestamps_path && !(timestamps_file = fopen(o.timestamps_path, "w"))) {
        fprintf(stderr, PROG ": --timestamps: cannot write %s: %s\n", o.timestamps_path,
                strerror(errno));
        rd_kafka_conf_destroy(conf);
        if (truth_file)
            fclose(truth_file);
        kpi_gen_truth_fini(&truth);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, PROG ": %s\n", err); /* an inconsistent -X combination */
        rd_kafka_conf_destroy(conf);
        if (truth_file)
            fclose(truth_file);
        kpi_gen_truth_fini(&truth);
        return 2;
    }
    struct kpi_gen *g = NULL;
    uint8_t *buf = NULL;
    int status = 0;
    double t0 = kpi_mono_s(), dt = 0;
    if (ensure_topic(rk, o.topic, o.partitions, o.replication)) {
        status = 1;
        goto out;
    }
    g = kpi_gen_new(gc);
    buf = g ? malloc(kpi_gen_event_max(g)) : NULL;
    if (!g || !buf) {
        fprintf(stderr, PROG ": out of memory for %llu subscribers\n",
                (unsigned long long)gc->subscribers);
        status = 1;
        goto out;
    }
    size_t cap = kpi_gen_event_max(g);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    /* Paced: check the clock every `chunk` events (about each millisecond). */
    uint64_t chunk = o.rate > 0 ? (uint64_t)(o.rate / 1000) + 1 : 0;
    double next_report = 10;
    t0 = kpi_mono_s();
    uint64_t i = 0;
    for (; i < o.events && !stop_signal; i++) {
        if (chunk && i % chunk == 0) {
            double due = t0 + (double)i / o.rate, now;
            while ((now = kpi_mono_s()) < due && !stop_signal)
                rd_kafka_poll(rk, (int)((due - now) * 1000) + 1);
        }
        size_t len;
        struct kpi_gen_info in;
        if (kpi_gen_next(g, buf, cap, &len, &in))
            abort(); /* cap is kpi_gen_event_max: cannot happen */
        char key[24];
        int kl = o.keyed ? snprintf(key, sizeof(key), "%llu", (unsigned long long)in.sub_id) : 0;
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o.topic), RD_KAFKA_V_VALUE(buf, len),
                                      RD_KAFKA_V_KEY(o.keyed ? key : NULL, (size_t)kl),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 5); /* backpressure: wait for deliveries */
        if (e) {
            fprintf(stderr, PROG ": produce: %s\n", rd_kafka_err2str(e));
            status = 1;
            break;
        }
        kpi_gen_truth_add(&truth, &in);
        if (i % 1024 == 0) {
            rd_kafka_poll(rk, 0);
            if (kpi_mono_s() - t0 >= next_report) {
                double el = kpi_mono_s() - t0;
                fprintf(stderr, PROG ": %llu events in %.0f s (%.0f/s), %llu failed\n",
                        (unsigned long long)i, el, (double)i / el, failed);
                next_report = el + 10;
            }
        }
    }
    if (stop_signal)
        fprintf(stderr, PROG ": interrupted after %llu events; flushing\n",
                (unsigned long long)truth.events);
    /* Every message ends in a delivery report within message.timeout.ms;
     * a second signal gives up on the rest (they count as failed). */
    int sig = stop_signal;
    while (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_flush(rk, 1000);
        if (stop_signal != sig) {
            rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            sig = stop_signal;
        }
    }
    dt = kpi_mono_s() - t0;
    if (failed) {
        fprintf(stderr, PROG ": %llu of %llu events were not delivered (first: %s)\n", failed,
                (unsigned long long)truth.events, first_failure);
        status = 1;
    }

out:
    if (truth_file) {
        int wrc = kpi_gen_truth_write_json(truth_file, &truth);
        if (fclose(truth_file) || wrc) {
            fprintf(stderr, PROG ": --truth: writing %s failed\n", o.truth_path);
            status = 1;
        }
    }
    rd_kafka_destroy(rk);
    if (timestamps_file && fclose(timestamps_file)) {
        fprintf(stderr, PROG ": --timestamps: writing %s failed\n", o.timestamps_path);
        status = 1;
    }
    kpi_gen_destroy(g);
    free(buf);
    printf("produced: %llu events (%llu bad) in %.2f s\n", (unsigned long long)truth.events,
           (unsigned long long)truth.bad, dt);
    kpi_gen_truth_fini(&truth);
    if (!status && stop_signal)
        status = 128 + stop_signal;
    return status;
}
