/*
 * kpistream - the streaming KPI engine as a service.
 *
 *   kpistream --config FILE [-X section.key=value]... [--exit-on-eof]
 *   kpistream --demo [--duration SECONDS] [-X ...]
 *   kpistream --check-config [--config FILE] [-X ...]
 *   kpistream --serve-only [--config FILE] [-X ...]
 *
 * Wires the pieces: configuration (cmd/lib/config.c) -> engine -> Redis or
 * stdout sink -> Kafka source, plus the HTTP server (cmd/lib/metrics.c:
 * /metrics, /healthz, the dashboard and the KPI API of cmd/lib/api.c, which
 * reads the store through cmd/lib/kpiread.c) and churn-spike alerts
 * (cmd/lib/alerter.c).  --serve-only runs the HTTP server over Redis without
 * consuming: a read-only dashboard and API for the whole group.  The demo
 * (cmd/demo.c) replaces the real cluster with librdkafka's embedded mock
 * cluster fed by the built-in traffic generator, and draws a live view every
 * second.
 *
 * main() makes the pieces in order (engine, sink, demo, source, HTTP server,
 * notifier, alerter) and undoes them through one cleanup ladder at its end,
 * which every exit after the engine goes through.
 *
 * Exit codes: 0 clean stop (SIGTERM/SIGINT, --exit-on-eof, --duration);
 * 1 runtime failure; 2 bad usage or configuration.
 */
#include <getopt.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/lib/alerter.h"
#include "cmd/lib/api.h"
#include "base/clock.h"
#include "cmd/lib/config.h"
#include "cmd/demo.h"
#include "engine/engine.h"
#include "engine/err.h"
#include "cmd/lib/flush_errors.h"
#include "sources/kafka.h"
#include "cmd/lib/kpiread.h"
#include "base/log.h"
#include "cmd/lib/metrics.h"
#include "cmd/lib/notify.h"
#include "sinks/redis.h"
#include "cmd/lib/redisconn.h"
#include "cmd/lib/sse.h"
#include "sinks/stdout.h"

static struct kpi_source g_src;
static atomic_int g_stop;

/* Shutdown watchdog.  The source stops within its share of
 * engine.shutdown_timeout (sources/kafka.c, "Stopping in time"), but a sink
 * call in progress or a broker that does not answer can still hold a thread.
 * So the first stop request also starts a watchdog: if the process has not
 * finished when engine.shutdown_timeout has passed, it exits with code 1
 * right there.  That is as safe as a kill -9: nothing unflushed was
 * acknowledged, and whoever consumes the partitions next reads it again. */
static sem_t g_stop_sem; /* posted once by the first stop request */
static sem_t g_done_sem; /* posted when main has finished its shutdown */
static atomic_int g_stop_requested;
static int64_t g_shutdown_timeout_ms = 30000;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, 1);
    if (g_src.ops)
        g_src.ops->stop(g_src.self); /* an atomic store: async-signal-safe */
    if (!atomic_exchange(&g_stop_requested, 1))
        sem_post(&g_stop_sem); /* async-signal-safe */
}

/* SIGTERM and SIGINT request the stop; a closed socket is an error return,
 * not a signal. */
static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    while (sem_wait(&g_stop_sem) != 0 && errno == EINTR)
        ;
    struct timespec dl;
    kpi_deadline_ts(&dl, CLOCK_MONOTONIC, g_shutdown_timeout_ms);
    int r;
    while ((r = sem_clockwait(&g_done_sem, CLOCK_MONOTONIC, &dl)) != 0 && errno == EINTR)
        ;
    if (r == 0)
        return NULL;
    kpi_log(KPI_LOG_ERROR, "kpistream",
            "shutdown did not finish within engine.shutdown_timeout (%lld ms): exiting now; "
            "what was not flushed is not acknowledged and will be consumed again",
            (long long)g_shutdown_timeout_ms);
    fflush(stdout);
    _exit(1);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: kpistream --config FILE [-X section.key=value]... [--exit-on-eof]\n"
                 "       kpistream --demo [--duration SECONDS] [-X section.key=value]...\n"
                 "       kpistream --check-config [--config FILE] [-X ...]\n"
                 "       kpistream --serve-only [--config FILE] [-X ...]\n"
                 "\n"
                 "Consumes subscriber events from Kafka, keeps rolling windows of churn rate,\n"
                 "ARPU and NPS per region, plan and segment, and writes them to Redis exactly\n"
                 "once.\n"
                 "\n"
                 "  -c, --config FILE     INI configuration file (keys below)\n"
                 "  -X section.key=value  set a key; wins over the file; any kafka.* key that is\n"
                 "                        not listed below goes to librdkafka untouched\n"
                 "      --check-config    validate the configuration and exit (0 ok, 2 bad)\n"
                 "      --serve-only      serve the dashboard and the API from Redis without\n"
                 "                        consuming (read-only, any number of these)\n"
                 "      --exit-on-eof     stop once every partition reached the end offset it had\n"
                 "                        when assigned; prints a summary line\n"
                 "      --demo            zero-setup demo: embedded mock Kafka cluster, built-in\n"
                 "                        traffic with a churn spike, live view every second\n"
                 "      --duration SECS   stop after this many seconds (with --demo)\n"
                 "      --help-config     print the configuration reference as Markdown\n"
                 "  -h, --help            this text\n"
                 "  -V, --version         version\n"
                 "\n"
                 "Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or configuration.\n"
                 "\n"
                 "Configuration keys:\n");
    kpi_config_print_reference(out, 0);
}

struct opts {
    const char *config;
    const char *xs[256];
    int n_x;
    int check, exit_on_eof, demo, serve_only;
    long duration;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"config", required_argument, 0, 'c'}, {"check-config", no_argument, 0, 1},
        {"exit-on-eof", no_argument, 0, 2},    {"demo", no_argument, 0, 3},
        {"duration", required_argument, 0, 4}, {"help-config", no_argument, 0, 5},
        {"serve-only", no_argument, 0, 6},     {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},      {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:X:hV", lo, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'X':
            if (o->n_x == 256) {
                fprintf(stderr, "kpistream: too many -X\n");
                return 2;
            }
            o->xs[o->n_x++] = optarg;
            break;
        case 1: o->check = 1; break;
        case 2: o->exit_on_eof = 1; break;
        case 3: o->demo = 1; break;
        case 4: {
            char *end;
            o->duration = strtol(optarg, &end, 10);
            if (*end || o->duration <= 0) {
                fprintf(stderr,
                        "kpistream: --duration: '%s' is not a positive number of "
                        "seconds\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 5: kpi_config_print_reference(stdout, 1); return 0;
        case 6: o->serve_only = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("kpistream %s\n", KPI_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kpistream: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    return -1; /* go on */
}

/* A secret given with -X is visible to every local user in ps until the
 * process overwrites it: the configuration has its copy by now, so the
 * argument's value is blanked, and a warning points to the right place. */
static void scrub_secret_args(struct opts *o)
{
    static const char *const secret_keys[] = {
        "kafka.sasl.password=",
        "kafka.ssl.key.password=",
        "kafka.ssl.keystore.password=",
        "kafka.ssl.truststore.password=",
        "kafka.sasl.oauthbearer.client.secret=",
        "kafka.ssl.key.pem=",
    };
    for (int i = 0; i < o->n_x; i++) {
        char *x = (char *)o->xs[i];
        char *value = NULL;
        for (size_t k = 0; k < sizeof(secret_keys) / sizeof(secret_keys[0]); k++)
            if (strncmp(x, secret_keys[k], strlen(secret_keys[k])) == 0)
                value = x + strlen(secret_keys[k]);
        if (!value && strncmp(x, "redis.url=redis://", 18) == 0) {
            /* the password: between the first ':' of the userinfo and its '@' */
            char *host = x + 18, *end = host + strcspn(host, "/?#"), *at = NULL;
            for (char *p = host; p < end; p++)
                if (*p == '@')
                    at = p;
            char *colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
            if (colon) {
                memset(colon + 1, '*', (size_t)(at - colon - 1));
                value = at; /* already blanked */
            }
        }
        if (!value)
            continue;
        if (value[0] && value[0] != '@')
            memset(value, '*', strlen(value));
        fprintf(stderr,
                "kpistream: warning: a secret on the command line (-X %.*s) is visible in ps; "
                "use redis.password_file, kafka.sasl.password_file or the environment "
                "(KPISTREAM_REDIS_PASSWORD, KPISTREAM_KAFKA_SASL_PASSWORD)\n",
                (int)strcspn(x, "="), x);
    }
}

/* ---- health ---- */

struct health {
    struct kpi_engine *e;
    void *src; /* the Kafka source */
    int64_t flush_ms;
};

static int healthy(void *opaque, char *why, size_t size)
{
    struct health *h = opaque;
    /* The source first: undelivered dead letters are why flushes fail then. */
    if (h->src && !kpi_source_kafka_health(h->src, why, size))
        return 0;
    struct kpi_engine_stats st;
    kpi_engine_get_stats(h->e, &st);
    if (st.fenced) {
        snprintf(why, size, "stopped: the sink refused a flush for good (%s): %s", st.last_reason,
                 st.last_error);
        return 0;
    }
    if (st.backpressured) {
        snprintf(why, size, "paused: flushes failing (%s, %llu errors): %s", st.last_reason,
                 (unsigned long long)st.flush_errors, st.last_error);
        return 0;
    }
    int64_t age = kpi_now_ms() - st.last_flush_ok_ms;
    if (st.last_flush_ok_ms && age > 3 * h->flush_ms + 5000) {
        snprintf(why, size, "no successful flush for %lld ms", (long long)age);
        return 0;
    }
    return 1;
}

/* Flush errors are logged once per change of state (engine.h:
 * kpi_flush_error_hooks), not once per retry. */
static void on_flush_state(void *opaque, int err, const char *reason, const char *errstr,
                           uint64_t failed)
{
    (void)opaque;
    if (err == 0)
        kpi_log(KPI_LOG_INFO, "flush", "flushes applied again after %llu failed attempt(s)",
                (unsigned long long)failed);
    else if (err == KPI_ERR_CONFLICT)
        kpi_log(KPI_LOG_ERROR, "flush", "the sink refused a flush for good (%s): %s", reason,
                errstr);
    else
        kpi_log(KPI_LOG_WARN, "flush",
                "flushes failing (%s): %s; retrying with backoff, consumption paused, nothing "
                "acknowledged",
                reason, errstr);
}

static void metrics_extra(void *opaque, FILE *out)
{
    kpi_source_kafka_write_metrics(opaque, out);
}

static void redis_metrics_extra(void *opaque, FILE *out)
{
    kpi_sink_redis_write_metrics(opaque, out);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* At exit: `flush latency: N flushes, p50 A ms, p90 B ms, p99 C ms, max D ms`
 * (the sink's time per flush attempt, the last KPI_FLUSH_LAT_KEEP of them);
 * bench/e2e.sh reads this line. */
static void log_flush_latencies(struct kpi_engine *e)
{
    static uint32_t lat[KPI_FLUSH_LAT_KEEP];
    size_t n = kpi_engine_flush_latencies(e, lat, KPI_FLUSH_LAT_KEEP);
    if (n == 0)
        return;
    qsort(lat, n, sizeof(lat[0]), cmp_u32);
#define PCT(p) ((double)lat[(size_t)((double)(n - 1) * (p) + 0.5)] / 1000.0)
    kpi_log(KPI_LOG_INFO, "kpistream",
            "flush latency: %zu flushes, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", n,
            PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0));
#undef PCT
}

/* ---- the HTTP side: store reader, event hub, API, server ---- */

struct web {
    struct kpiread *store;
    struct kpi_sse *hub;
    struct kpi_api *api;
    struct kpi_metrics *m;
    char url[128]; /* the dashboard's address, "" when the server is off */
};

static struct kpiread *store_new(const struct kpi_config *cfg, struct kpi_engine *e, int use_redis,
                                 const struct kpi_sink *sink)
{
    if (!use_redis)
        return kpiread_new_memory(sink, e, 256);
    struct kpiread_redis_conf rc = {
        cfg->redis_url,        cfg->redis_prefix,          cfg->group_id,
        cfg->redis_timeout_ms, (int)cfg->http_threads + 2, (uint32_t)cfg->redis_key_groups};
    return kpiread_new_redis(&rc, kpi_engine_windows(e), kpi_engine_dims(e));
}

/* Starts the server over `store` (w->store, owned by the caller).  0, or -1
 * with err set when the port cannot be had. */
static int web_start(struct web *w, const struct kpi_config *cfg, struct kpi_engine *e, char *err,
                     size_t errsz)
{
    struct kpi_http_conf hc = {
        cfg->http_bind, (int)cfg->http_port, (unsigned)cfg->http_max_connections,
        (unsigned)((cfg->http_connection_timeout_ms + 999) / 1000), (unsigned)cfg->http_threads};
    w->m = kpi_metrics_start(&hc, e, err, errsz);
    if (!w->m)
        return cfg->http_port ? -1 : 0;
    const struct kpi_windows *ws = kpi_engine_windows(e);
    const char *alerts_window = "";
    for (int i = 0; i < ws->n && cfg->alerts_enabled; i++)
        if (strcmp(ws->w[i].name, cfg->alerts_window) == 0)
            alerts_window = ws->w[i].id;
    /* Keepalive comments well inside the idle timeout, so a live stream is
     * never closed by it. */
    int64_t keepalive = cfg->http_connection_timeout_ms / 3;
    w->hub = kpi_sse_new(256, 4u << 20, (int)cfg->http_sse_max_clients,
                         keepalive < 15000 ? keepalive : 15000);
    struct kpi_api_conf ac = {cfg->group_id, alerts_window, cfg->flush_interval_ms, 500, 1000};
    w->api = w->store && w->hub ? kpi_api_new(&ac, w->store, ws, kpi_engine_dims(e), w->hub) : NULL;
    if (w->api && kpi_api_start(w->api) == 0)
        kpi_metrics_set_api(w->m, w->api, w->hub);
    const char *host = strcmp(cfg->http_bind, "0.0.0.0") == 0 ? "127.0.0.1" : cfg->http_bind;
    snprintf(w->url, sizeof(w->url), "http://%s:%d/", host, kpi_metrics_port(w->m));
    return 0;
}

static void web_stop(struct web *w)
{
    kpi_metrics_stop(w->m); /* ends the event streams first */
    kpi_api_destroy(w->api);
    kpi_sse_destroy(w->hub);
    w->m = NULL;
    w->api = NULL;
    w->hub = NULL;
}

static int store_healthy(void *opaque, char *why, size_t size)
{
    char err[256];
    if (kpiread_ping(opaque, err, sizeof(err)) == 0)
        return 1;
    snprintf(why, size, "store unreachable: %s", err);
    return 0;
}

/* --serve-only: the dashboard and the API over Redis, nothing consumed. */
static int serve_only(const struct kpi_config *cfg, struct kpi_engine *e)
{
    char err[512];
    struct web w;
    memset(&w, 0, sizeof(w));
    w.store = store_new(cfg, e, 1, NULL);
    if (!w.store)
        return 1;
    if (!cfg->http_port) {
        fprintf(stderr, "kpistream: --serve-only needs http.port\n");
        kpiread_destroy(w.store);
        return 2;
    }
    if (web_start(&w, cfg, e, err, sizeof(err))) {
        fprintf(stderr, "kpistream: %s\n", err);
        kpiread_destroy(w.store);
        return 1;
    }
    kpi_metrics_set_health(w.m, store_healthy, w.store);
    kpi_log(KPI_LOG_INFO, "kpistream", "serving group %s from %s: dashboard %s", cfg->group_id,
            cfg->redis_url, w.url);
    while (!atomic_load(&g_stop)) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL); /* waiting for SIGTERM/SIGINT */
    }
    web_stop(&w);
    kpiread_destroy(w.store);
    return 0;
}

/* The summary at exit: the `consumed:` line (README, "Running it"), the
 * outcome, the flush latencies and the Redis sink's counters. */
static void report(struct kpi_engine *e, const struct kpi_sink *sink, int use_redis, int rc,
                   const char *err)
{
    struct kpi_engine_stats st;
    kpi_engine_get_stats(e, &st);
    uint64_t bad = 0;
    for (int r = 1; r < KPI_BAD__COUNT; r++)
        if (r != KPI_BAD_TOO_LATE)
            bad += st.events.bad[r];
    uint64_t late = st.events.bad[KPI_BAD_TOO_LATE];
    printf("consumed: %llu events, bad: %llu, late: %llu, flushed: %llu\n",
           (unsigned long long)(st.events.good + bad + late), (unsigned long long)bad,
           (unsigned long long)late, (unsigned long long)st.flushed_events);
    if (rc)
        kpi_log(KPI_LOG_ERROR, "kpistream", "%s", err);
    else
        kpi_log(KPI_LOG_INFO, "kpistream", "stopped cleanly after %llu flushes",
                (unsigned long long)st.flushes);
    log_flush_latencies(e);
    if (use_redis && sink->ops) {
        struct kpi_redis_stats rs;
        kpi_sink_redis_get_stats(sink, &rs);
        kpi_log(KPI_LOG_INFO, "kpistream",
                "redis: %llu calls, %llu (window, bucket, value) cells written, %llu stale "
                "`active` recount calls, %llu redirects, %llu in doubt, %llu cells through the hot "
                "path, %llu transactions run again, %llu sketches read and merged here, %llu "
                "`active` recounted here",
                (unsigned long long)rs.calls,
                (unsigned long long)(rs.sketch_sets + rs.sketch_merges),
                (unsigned long long)rs.recount_calls, (unsigned long long)rs.redirects,
                (unsigned long long)rs.in_doubt, (unsigned long long)rs.hot_cells,
                (unsigned long long)rs.txn_retries, (unsigned long long)rs.sketch_reads,
                (unsigned long long)rs.hot_recounts);
    }
}

/* --duration: counts down in 100 ms steps, then requests the same stop as
 * SIGTERM. */
static void *timer_main(void *arg)
{
    long secs = *(long *)arg;
    for (long i = 0; i < secs * 10 && !atomic_load(&g_stop); i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    on_signal(SIGTERM);
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;

    struct kpi_config cfg;
    kpi_config_defaults(&cfg);
    char err[1024];
    if (o.demo)
        kpi_demo_config_defaults(&cfg); /* -X and a config file still win */
    if (o.config && kpi_config_load_file(&cfg, o.config, err, sizeof(err))) {
        fprintf(stderr, "kpistream: %s\n", err);
        return 2;
    }
    for (int i = 0; i < o.n_x; i++)
        if (kpi_config_set_x(&cfg, o.xs[i], err, sizeof(err))) {
            fprintf(stderr, "kpistream: %s\n", err);
            return 2;
        }
    scrub_secret_args(&o);
    if (kpi_config_validate(&cfg, err, sizeof(err)) ||
        kpi_config_load_secrets(&cfg, err, sizeof(err))) {
        fprintf(stderr, "kpistream: %s\n", err);
        return 2;
    }
    if (o.demo)
        kpi_demo_config_confine(&cfg);
    kpi_log_set_level(cfg.log_level);
    struct kpi_engine_conf ec;
    kpi_config_engine_conf(&cfg, &ec);
    struct kpi_engine *e = kpi_engine_new(&ec, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "kpistream: %s\n", err);
        return 2;
    }

    /* Everything below is undone by the one ladder at `out`, in this order:
     * each step there skips what was not made, so every exit goes through it. */
    struct kpi_sink sink = {NULL, NULL};
    struct kpi_demo *demo = NULL;
    struct web web;
    memset(&web, 0, sizeof(web));
    struct kpi_notify *notify = NULL;
    struct kpi_alerter *alerter = NULL;
    pthread_t timer;
    int has_timer = 0, watchdog_on = 0, ran = 0, use_redis = 0;
    rc = 0;

    if (o.check) {
        printf("kpistream: configuration ok\n");
        goto out;
    }
    if (o.serve_only) {
        catch_signals();
        rc = serve_only(&cfg, e);
        goto out;
    }

    /* The sink. */
    use_redis = strcmp(cfg.sink, "redis") == 0;
    if (use_redis && o.demo) {
        use_redis = kpi_demo_redis_answers(&cfg);
        if (use_redis) {
            struct kpiread *wipe = store_new(&cfg, e, 1, NULL);
            if (wipe && kpiread_wipe_group(wipe, err, sizeof(err)))
                fprintf(stderr, "kpistream: cannot wipe the demo group: %s\n", err);
            kpiread_destroy(wipe);
        }
    }
    if (use_redis) {
        struct kpi_redis_conf rcf;
        kpi_config_redis_conf(&cfg, &rcf);
        sink = kpi_sink_redis_new(&rcf, err, sizeof(err));
    } else {
        sink = kpi_sink_stdout_new(o.demo ? NULL : stdout, 0, 5, err, sizeof(err));
    }
    if (!sink.ops) {
        fprintf(stderr, "kpistream: sink: %s\n", err);
        rc = 2;
        goto out;
    }
    if (o.demo && !(demo = kpi_demo_start(err, sizeof(err)))) {
        fprintf(stderr, "kpistream: demo cluster: %s\n", err);
        rc = 1;
        goto out;
    }

    /* The source. */
    struct kpi_kafka_conf kc;
    kpi_kafka_conf_defaults(&kc);
    kc.brokers = demo ? kpi_demo_bootstraps(demo) : cfg.bootstrap_servers;
    kc.topics = demo ? "events" : cfg.topics;
    kc.group_id = cfg.group_id;
    kc.dlq_topic = cfg.dead_letter_topic;
    kc.exit_on_eof = o.exit_on_eof;
    /* The source's share of the shutdown budget: the rest is for tearing
     * down the engine, the alerter and the metrics server after it. */
    int64_t reserve = cfg.shutdown_timeout_ms / 5 < 2000 ? cfg.shutdown_timeout_ms / 5 : 2000;
    kc.shutdown_timeout_ms = cfg.shutdown_timeout_ms - reserve;
    const char *props[KPI_CONF_MAX_PASSTHROUGH][2];
    for (int i = 0; i < cfg.n_kafka_props; i++) {
        props[i][0] = cfg.kafka_props[i][0];
        props[i][1] = cfg.kafka_props[i][1];
    }
    kc.n_props = cfg.n_kafka_props;
    kc.props = (const char *const(*)[2])props;
    g_src = kpi_source_kafka_new(&kc, e, &sink, err, sizeof(err));
    if (!g_src.ops) {
        fprintf(stderr, "kpistream: %s\n", err);
        rc = 2;
        goto out;
    }

    g_shutdown_timeout_ms = cfg.shutdown_timeout_ms;
    sem_init(&g_stop_sem, 0, 0);
    sem_init(&g_done_sem, 0, 0);
    pthread_t watchdog;
    pthread_create(&watchdog, NULL, watchdog_main, NULL);
    pthread_detach(watchdog);
    watchdog_on = 1;
    catch_signals();

    web.store = store_new(&cfg, e, use_redis, &sink);
    if (web_start(&web, &cfg, e, err, sizeof(err))) {
        if (!demo) {
            fprintf(stderr, "kpistream: %s\n", err);
            rc = 1;
            goto out;
        }
        fprintf(stderr, "kpistream: %s (the demo goes on without it)\n", err);
    }
    struct kpi_metrics *m = web.m;
    struct health hl = {e, g_src.self, cfg.flush_interval_ms};
    kpi_metrics_set_health(m, healthy, &hl);
    kpi_metrics_set_extra(m, metrics_extra, g_src.self);
    if (use_redis && sink.ops)
        kpi_metrics_set_extra(m, redis_metrics_extra, &sink);
    if (web.url[0])
        kpi_log(KPI_LOG_INFO, "kpistream", "dashboard: %s  (API: %sapi/v1/, metrics: %smetrics)",
                web.url, web.url, web.url);

    const struct kpi_windows *ws = kpi_engine_windows(e);
    int alerts_w = -1;
    for (int i = 0; i < ws->n; i++)
        if (strcmp(ws->w[i].name, cfg.alerts_window) == 0)
            alerts_w = i;
    if (cfg.alerts_enabled && (cfg.alerts_alertmanager_url[0] || cfg.alerts_webhook_url[0])) {
        struct kpi_notify_conf nc = {cfg.alerts_alertmanager_url,
                                     cfg.alerts_webhook_url,
                                     cfg.group_id,
                                     web.url[0] ? web.url : NULL,
                                     cfg.alerts_delivery_timeout_ms,
                                     cfg.alerts_retry_min_ms,
                                     cfg.alerts_retry_max_ms,
                                     cfg.alerts_resend_interval_ms,
                                     (size_t)cfg.alerts_delivery_queue};
        notify = kpi_notify_new(&nc, err, sizeof(err));
        if (!notify) {
            fprintf(stderr, "kpistream: %s\n", err);
            rc = 2;
            goto out;
        }
        kpi_metrics_set_extra(m, kpi_notify_write_metrics, notify);
    }
    if (cfg.alerts_enabled && web.store && alerts_w >= 0) {
        struct kpi_alerter_conf ac;
        memset(&ac, 0, sizeof(ac));
        ac.store = web.store;
        ac.windows = ws;
        ac.window = alerts_w;
        ac.window_id = ws->w[alerts_w].id;
        ac.kpi = strcmp(cfg.alerts_kpi, "churn_rate_monthly") == 0 ? KPI_DI_churn_rate_monthly
                                                                   : KPI_DI_churn_rate;
        ac.channel = cfg.alerts_channel;
        ac.stream_maxlen = cfg.alerts_stream_maxlen;
        ac.poll_ms = cfg.flush_interval_ms;
        kpi_config_alert_conf(&cfg, &ac.detector);
        ac.notify = notify;
        alerter = kpi_alerter_start(&ac, kpi_engine_dims(e), err, sizeof(err));
    }

    struct kpi_flush_error_hooks hooks = {NULL, kpi_flush_error_classify, on_flush_state};
    kpi_engine_set_error_hooks(e, &hooks);
    if (kpi_engine_start(e, err, sizeof(err))) {
        fprintf(stderr, "kpistream: %s\n", err);
        rc = 1;
        goto out;
    }
    if (demo)
        kpi_demo_view_start(demo, e, web.store, use_redis, alerter, web.url);
    static long timer_secs;
    if (o.duration > 0) {
        timer_secs = o.duration;
        has_timer = pthread_create(&timer, NULL, timer_main, &timer_secs) == 0;
    }

    ran = 1;
    rc = g_src.ops->run(g_src.self, err, sizeof(err));

out:
    atomic_store(&g_stop, 1);
    /* The flusher calls into the source (its flush target wraps the sink's,
     * and it wakes the source's workers): it stops first. */
    kpi_engine_stop(e);
    /* The HTTP server's /healthz and /metrics call into the source and the
     * notifier (their callbacks hold pointers to them): it stops before
     * either is destroyed. */
    web_stop(&web);
    /* The consumer goes before the demo's embedded cluster does. */
    if (g_src.ops) {
        g_src.ops->destroy(g_src.self);
        g_src.ops = NULL;
    }
    kpi_demo_stop(demo);
    if (has_timer)
        pthread_join(timer, NULL);
    kpi_engine_stop(e);
    /* The final flush leaves values whose `active` was not due for a
     * recount; recount them now, so what stays in Redis is exact at rest. */
    if (ran && rc == 0 && sink.ops && sink.ops->idle) {
        char ierr[256] = "";
        if (sink.ops->idle(sink.self, ierr, sizeof(ierr)))
            kpi_log(KPI_LOG_WARN, "kpistream", "final recount of active subscribers: %s", ierr);
    }
    kpi_alerter_stop(alerter);
    /* What is still queued gets a few seconds to reach Alertmanager. */
    kpi_notify_destroy(notify, cfg.alerts_delivery_timeout_ms);
    if (ran)
        report(e, &sink, use_redis, rc, err);
    kpiread_destroy(web.store);
    kpi_sink_destroy(&sink);
    kpi_engine_destroy(e);
    if (watchdog_on)
        sem_post(&g_done_sem);
    /* After a run, any failure is a runtime one (1); before, rc says why. */
    return ran ? (rc ? 1 : 0) : rc;
}
