/* demo.c - the zero-setup demo: an embedded Kafka cluster fed by the traffic
 * generator, and a live view in the terminal (see demo.h). */
#include "cmd/demo.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "gen/gen.h"
#include "cmd/lib/redisconn.h"

struct kpi_demo {
    rd_kafka_t *producer;
    const char *bootstraps;
    pthread_t th;
    atomic_int stop;
    atomic_ullong produced;
    double rate;
    struct view {
        struct kpi_engine *e;
        struct kpiread *store;
        int redis;
        char url[128];
        struct kpi_alerter *alerter;
        atomic_int stop;
        pthread_t th;
        int started;
    } view;
};

void kpi_demo_config_defaults(struct kpi_config *cfg)
{
    kpi_config_set(cfg, "kafka", "group.id", KPI_DEMO_GROUP, NULL, 0);
    kpi_config_set(cfg, "redis", "prefix", KPI_DEMO_PREFIX, NULL, 0);
    kpi_config_set(cfg, "alerts", "window", "1m/5s", NULL, 0);
    kpi_config_set(cfg, "alerts", "warmup", "6", NULL, 0);
    /* a young group's rolling rate still drifts up: a wider deviation
     * scale lets the spike resolve once it is over */
    kpi_config_set(cfg, "alerts", "rel_floor", "0.3", NULL, 0);
    kpi_config_set(cfg, "engine", "lateness", "5s", NULL, 0);
}

void kpi_demo_config_confine(struct kpi_config *cfg)
{
    if (strcmp(cfg->redis_prefix, KPI_DEMO_PREFIX) != 0 ||
        strcmp(cfg->group_id, KPI_DEMO_GROUP) != 0) {
        fprintf(stderr,
                "kpistream: the demo writes only under %s:{%s}: ignoring redis.prefix '%s' and "
                "kafka.group.id '%s'\n",
                KPI_DEMO_PREFIX, KPI_DEMO_GROUP, cfg->redis_prefix, cfg->group_id);
    }
    kpi_config_set(cfg, "redis", "prefix", KPI_DEMO_PREFIX, NULL, 0);
    kpi_config_set(cfg, "kafka", "group.id", KPI_DEMO_GROUP, NULL, 0);
}

int kpi_demo_redis_answers(const struct kpi_config *cfg)
{
    char err[512];
    redisContext *probe = kpi_redis_connect_url(kpi_config_redis_url(cfg), 1000, err, sizeof(err));
    if (probe) {
        redisFree(probe);
        return 1;
    }
    fprintf(stderr,
            "kpistream: no Redis answers (%s).\n"
            "  Start one with:  bash scripts/services.sh up redis\n"
            "  The demo goes on with KPIs kept in memory and shown here only.\n",
            err); /* err names the url, its password hidden */
    sleep(3);
    return 0;
}

/* ---- the embedded cluster and the generator ---- */

static void *demo_produce(void *arg)
{
    struct kpi_demo *d = arg;
    struct kpi_gen_conf gc;
    kpi_gen_conf_defaults(&gc);
    gc.seed = (uint64_t)time(NULL);
    gc.subscribers = 200000;
    gc.start_ts_ms = kpi_now_ms();
    gc.events_per_sec = d->rate; /* event time follows the wall clock */
    gc.jitter_ms = 1000;
    gc.bad_ratio = 0.001;
    gc.churn_rate = 0.004;
    strcpy(gc.spike_segment, "youth");
    gc.spike_factor = 12;
    /* after the 1m window filled (60 s) and the baseline's warmup (30 s) */
    gc.spike_start_ms = 100000;
    gc.spike_end_ms = 150000;
    /* Hourly base snapshots, as a BSS would send: the headline churn is
     * monthly over the base, about 2 % at this churn rate (gen.h). */
    gc.base_every_ms = 3600000;
    struct kpi_gen *g = kpi_gen_new(&gc);
    uint8_t buf[512];
    const int64_t t0 = kpi_mono_us();
    uint64_t n = 0;
    while (!atomic_load(&d->stop)) {
        double el = (double)(kpi_mono_us() - t0) / 1e6;
        uint64_t due = (uint64_t)(el * d->rate);
        for (; n < due; n++) {
            size_t len;
            struct kpi_gen_info in;
            kpi_gen_next(g, buf, sizeof(buf), &len, &in);
            char key[24];
            int kl = snprintf(key, sizeof(key), "%llu", (unsigned long long)in.sub);
            while (rd_kafka_producev(d->producer, RD_KAFKA_V_TOPIC("events"),
                                     RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_KEY(key, (size_t)kl),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(d->producer, 10);
        }
        atomic_store(&d->produced, n);
        rd_kafka_poll(d->producer, 20); /* pacing tick */
    }
    kpi_gen_destroy(g);
    return NULL;
}

struct kpi_demo *kpi_demo_start(char *err, size_t errsz)
{
    struct kpi_demo *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "test.mock.num.brokers", "1", err, errsz) ||
        rd_kafka_conf_set(c, "linger.ms", "5", err, errsz)) {
        rd_kafka_conf_destroy(c);
        free(d);
        return NULL;
    }
    d->producer = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, errsz);
    if (!d->producer) {
        free(d);
        return NULL;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(d->producer);
    rd_kafka_mock_topic_create(mc, "events", 4, 1);
    d->bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    d->rate = 20000;
    if (pthread_create(&d->th, NULL, demo_produce, d)) {
        snprintf(err, errsz, "cannot start the traffic thread");
        rd_kafka_destroy(d->producer);
        free(d);
        return NULL;
    }
    return d;
}

const char *kpi_demo_bootstraps(const struct kpi_demo *d)
{
    return d->bootstraps;
}

/* ---- the live view ---- */

static int read_kpis(struct view *v, int w, const char *set, const char *value,
                     struct kpi_values *out)
{
    int found;
    char err[256];
    return kpiread_hash(v->store, w, set, value, out, &found, err, sizeof(err));
}

/* The headline: monthly churn and ARPU over the base (docs/kpis.md); the
 * window's own churn over its active subscribers as detail. */
static void print_row(const char *label, const struct kpi_values *k)
{
    char monthly[16] = "-", churn[16] = "-", arpu[16] = "-", nps[16] = "-";
    if (k->has_churn_rate_monthly)
        snprintf(monthly, sizeof(monthly), "%.2f%%%s", k->churn_rate_monthly * 100,
                 k->base_source == KPI_BASE_ACTIVE ? "*" : "");
    if (k->has_churn_rate)
        snprintf(churn, sizeof(churn), "%.2f%%", k->churn_rate * 100);
    if (k->has_arpu_monthly)
        snprintf(arpu, sizeof(arpu), "%.4f", k->arpu_monthly);
    if (k->has_nps_network)
        snprintf(nps, sizeof(nps), "%.1f", k->nps_network);
    printf("  %-24s %10lld %9llu %9s %8s %9s %7s\n", label, (long long)k->c.events,
           (unsigned long long)k->active, monthly, churn, arpu, nps);
}

static void *view_main(void *arg)
{
    struct view *v = arg;
    const struct kpi_windows *ws = kpi_engine_windows(v->e);
    /* Engine counters move at flushes, so the rate is taken over the last
     * five seconds, not from one refresh to the next. */
    uint64_t hist_n[6] = {0};
    int64_t hist_t[6];
    for (int i = 0; i < 6; i++)
        hist_t[i] = kpi_now_ms();
    int tick = 0;
    const int64_t t_start = kpi_now_ms();
    while (!atomic_load(&v->stop)) {
        for (int i = 0; i < 10 && !atomic_load(&v->stop); i++) {
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL); /* the view refreshes once a second */
        }
        struct kpi_engine_stats st;
        kpi_engine_get_stats(v->e, &st);
        uint64_t bad = 0;
        for (int r = 1; r < KPI_BAD__COUNT; r++)
            if (r != KPI_BAD_TOO_LATE)
                bad += st.events.bad[r];
        int64_t now = kpi_now_ms();
        int cur = tick % 6, old = (tick + 1) % 6;
        hist_n[cur] = st.events.good;
        hist_t[cur] = now;
        tick++;
        double rate = tick < 6 ? (double)st.events.good * 1000.0 / (double)(now - t_start + 1)
                               : (double)(hist_n[cur] - hist_n[old]) * 1000.0 /
                                     (double)(now - hist_t[old] + 1);
        printf("\033[H\033[2J");
        printf("kpistream demo  |  %.0f events/s  |  %llu events, %llu bad, %llu late  |  "
               "%llu flushes to %s\n",
               rate, (unsigned long long)st.events.good, (unsigned long long)bad,
               (unsigned long long)st.events.bad[KPI_BAD_TOO_LATE], (unsigned long long)st.flushes,
               v->redis ? "Redis" : "memory (no Redis)");
        if (v->url[0])
            printf("dashboard: %s\n", v->url);
        printf("\n  %-24s %10s %9s %9s %8s %9s %7s\n", "window / value", "events", "active",
               "churn/mo", "window", "ARPU/mo", "NPS");
        for (int w = 0; w < ws->n; w++) {
            struct kpi_values k;
            read_kpis(v, w, "all", "all", &k);
            char label[64];
            snprintf(label, sizeof(label), "%s  all", ws->w[w].name);
            print_row(label, &k);
        }
        /* Segments over the shortest window: it is full within a minute (a
         * longer one's monthly figures are understated until its data covers
         * it, docs/kpis.md), and the youth spike stands out most there. */
        const int wid = 0;
        printf("\n  segments over %s:\n", ws->w[0].name);
        for (int s = 0; s < kpi_gen_n_segments(); s++) {
            struct kpi_values k;
            read_kpis(v, wid, "segment", kpi_gen_segment_name(s), &k);
            print_row(kpi_gen_segment_name(s), &k);
        }
        if (v->alerter) {
            uint64_t ra, re;
            char last[256];
            kpi_alerter_counts(v->alerter, &ra, &re);
            kpi_alerter_last(v->alerter, last, sizeof(last));
            printf("\n  churn-spike alerts: %llu raised, %llu resolved  %s\n",
                   (unsigned long long)ra, (unsigned long long)re, last);
        }
        printf(
            "\n  churn/mo: churns per subscriber of the base per 30 days (* over the active base);"
            "\n  window: churns / the window's active subscribers\n");
        printf("\n  (the youth segment's churn spikes about 100 s in; Ctrl-C stops)\n");
        fflush(stdout);
    }
    return NULL;
}

void kpi_demo_view_start(struct kpi_demo *d, struct kpi_engine *e, struct kpiread *store, int redis,
                         struct kpi_alerter *alerter, const char *url)
{
    struct view *v = &d->view;
    v->e = e;
    v->store = store;
    v->redis = redis;
    v->alerter = alerter;
    /* The dashboard opens on the shortest window: a demo's data covers it
     * within a minute, while a 1-hour window's monthly figures stay
     * understated for the demo's first hour (docs/kpis.md, "span"). */
    if (url && url[0])
        snprintf(v->url, sizeof(v->url), "%s?window=%s", url, kpi_engine_windows(e)->w[0].id);
    else
        v->url[0] = '\0';
    v->started = pthread_create(&v->th, NULL, view_main, v) == 0;
}

void kpi_demo_stop(struct kpi_demo *d)
{
    if (!d)
        return;
    if (d->view.started) {
        atomic_store(&d->view.stop, 1);
        pthread_join(d->view.th, NULL);
    }
    atomic_store(&d->stop, 1);
    pthread_join(d->th, NULL);
    rd_kafka_destroy(d->producer);
    free(d);
}
