/*
 * kpistream-bench - in-process benchmarks of the engine.
 *
 *   kpistream-bench core --events N --threads T [--subscribers S] [--seed X]
 *                        [--runs R] [--flush-ms F] [--sites C[,C...]]
 *
 * `core` pre-encodes N realistic events in memory with the built-in
 * generator (gen/gen.h: Zipf-skewed subscriber activity, a realistic mix
 * of types), then, alternating R times on the same buffers:
 *
 *   baseline  one thread unpacks every message with msgpack-c's
 *             msgpack_unpack_next (reused msgpack_unpacked), and nothing else;
 *   engine    T worker threads decode + validate + aggregate their share of
 *             the messages into their shards (3 grouping sets + all, the
 *             default windows, HLL on), while the flusher snapshots the shards
 *             every F ms (default 100) into a sink that only counts;
 *   engine/1  the same with one worker (when T > 1), for the scaling figure.
 *
 * and prints the medians, the ratios, and the state memory per grouping-set
 * value and window.  --sites adds the dimension `site` (C cell sites,
 * kpistream-gen --sites) and its grouping set, as bench/scale.sh does; with
 * several counts, each is a corpus of its own and the runs alternate over
 * them (the engine alone, no Kafka, no sink work: the part of
 * bench/scale.sh's high-cardinality ratio that is the engine's).  Its last
 * line is
 *
 *   core: <events/s> events/s, <ratio> x msgpack-c unpack, <T> threads
 *
 * where events/s is the engine's median with T threads and ratio is that over
 * the baseline's median (one thread).  Figures, not verdicts: nothing here
 * asserts a speed.
 */
#include <getopt.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "engine/err.h"
#include "gen/gen.h"

struct corpus {
    uint8_t *data;
    size_t *off; /* message i is data[off[i], off[i+1]) */
    size_t n;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_RUNS        50 /* --runs */
#define MAX_SITE_COUNTS 8  /* counts in --sites */

/* ---- the corpus ---- */

static int build_corpus(struct corpus *c, size_t n, uint64_t subscribers, uint64_t seed,
                        uint32_t sites);

/* ---- baseline: msgpack-c unpack only ---- */

static double run_baseline(const struct corpus *c)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t maps = 0;
    double t0 = kpi_mono_s();
    for (size_t i = 0; i < c->n; i++) {
        size_t pos = 0;
        if (msgpack_unpack_next(&u, (const char *)c->data + c->off[i], c->off[i + 1] - c->off[i],
                                &pos) == MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_MAP)
            maps++;
    }
    double dt = kpi_mono_s() - t0;
    msgpack_unpacked_destroy(&u);
    if (maps == 0)
        fprintf(stderr, "baseline: no map unpacked?\n");
    return (double)c->n / dt;
}

/* ---- engine ---- */

static atomic_ullong sink_events;

static int count_flush(void *opaque, const struct kpi_delta *d, char *errstr, size_t errsz)
{
    (void)opaque;
    (void)errstr;
    (void)errsz;
    unsigned long long n = 0;
    for (uint32_t i = 0; i < d->cells->n; i++)
        if (d->cells->cells[i].set == 0)
            n += (unsigned long long)d->cells->cells[i].c.events;
    atomic_fetch_add(&sink_events, n);
    return 0;
}

struct worker_arg {
    struct kpi_engine *e;
    const struct corpus *c;
    int idx, n_workers, input;
    int64_t now_ms;
    uint64_t bad;
};

static void *worker_main(void *arg)
{
    struct worker_arg *a = arg;
    struct kpi_worker *w = kpi_engine_worker(a->e, a->idx);
    /* Contiguous slices, as a worker gets whole partitions. */
    size_t lo = a->c->n * (size_t)a->idx / (size_t)a->n_workers;
    size_t hi = a->c->n * (size_t)(a->idx + 1) / (size_t)a->n_workers;
    for (size_t i = lo; i < hi; i++) {
        if (kpi_worker_process(w, a->input, (int64_t)(i - lo), a->c->data + a->c->off[i],
                               a->c->off[i + 1] - a->c->off[i], a->now_ms, NULL) != KPI_BAD_NONE)
            a->bad++;
        if ((i & 1023) == 1023)
            kpi_worker_checkpoint(w);
    }
    kpi_worker_detach(w);
    return NULL;
}

struct engine_result {
    double rate;
    size_t state_bytes;
    uint32_t values[KPI_MAX_SETS];
    int n_sets;
    uint64_t flushes;
};

static int run_engine(const struct corpus *c, int threads, int64_t flush_ms, int sites,
                      struct engine_result *res)
{
    struct kpi_engine_conf conf;
    kpi_engine_conf_defaults(&conf);
    if (sites) { /* bench/scale.sh's dimensions and sets */
        conf.dims = "region,plan,segment,site";
        conf.sets = "region,region+plan,segment,site";
    }
    conf.n_workers = threads;
    conf.flush_interval_ms = flush_ms;
    conf.lateness_ms = 365LL * 86400000; /* a replayed corpus: nothing is late */
    char err[256];
    struct kpi_engine *e = kpi_engine_new(&conf, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "engine: %s\n", err);
        return -1;
    }
    struct kpi_flush_target t = {NULL, count_flush};
    kpi_engine_set_target(e, &t);
    atomic_store(&sink_events, 0);
    struct worker_arg args[64];
    pthread_t th[64];
    for (int i = 0; i < threads; i++) {
        args[i] = (struct worker_arg){e, c, i, threads, 0, INT64_MAX / 2, 0};
        args[i].input = kpi_engine_input_open(e, "bench", i, i, 0);
    }
    if (kpi_engine_start(e, err, sizeof(err))) {
        fprintf(stderr, "engine: %s\n", err);
        return -1;
    }
    double t0 = kpi_mono_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, worker_main, &args[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double dt = kpi_mono_s() - t0;
    kpi_engine_flush_sync(e, 60000, err, sizeof(err));
    struct kpi_engine_stats st;
    kpi_engine_get_stats(e, &st);
    uint64_t bad = 0;
    for (int i = 0; i < threads; i++)
        bad += args[i].bad;
    if (atomic_load(&sink_events) + bad != c->n)
        fprintf(stderr, "engine: sink saw %llu good + %llu bad of %zu events\n",
                (unsigned long long)atomic_load(&sink_events), (unsigned long long)bad, c->n);
    res->rate = (double)c->n / dt;
    res->state_bytes = st.state_bytes;
    res->flushes = st.flushes;
    const struct kpi_dims *d = kpi_engine_dims(e);
    res->n_sets = d->n_sets;
    for (int s = 0; s < d->n_sets; s++)
        res->values[s] = kpi_dims_value_count(d, s);
    kpi_engine_destroy(e);
    return 0;
}

/* The engine alone at several cardinalities of the set `site`, alternating
 * in one run: the engine's share of bench/scale.sh's high-cardinality
 * ratio (no Kafka, no sink work). */
static int bench_sites(size_t n, int threads, uint64_t subs, uint64_t seed, int runs,
                       int64_t flush_ms, const uint32_t *sites, int n_sites)
{
    struct corpus c[MAX_SITE_COUNTS];
    double rate[MAX_SITE_COUNTS][MAX_RUNS];
    struct engine_result r[MAX_SITE_COUNTS];
    for (int k = 0; k < n_sites; k++) {
        double t0 = kpi_mono_s();
        if (build_corpus(&c[k], n, subs, seed, sites[k]))
            return 1;
        printf("corpus: %zu events, %u sites, %llu subscribers, encoded in %.2f s\n", c[k].n,
               sites[k], (unsigned long long)subs, kpi_mono_s() - t0);
    }
    for (int i = 0; i < runs; i++) {
        printf("run %d:", i + 1);
        for (int k = 0; k < n_sites; k++) {
            if (run_engine(&c[k], threads, flush_ms, 1, &r[k]))
                return 1;
            rate[k][i] = r[k].rate;
            printf(" %u sites %.0f ev/s%s", sites[k], r[k].rate, k + 1 < n_sites ? "," : "\n");
        }
    }
    double m0 = median(rate[0], runs);
    for (int k = 0; k < n_sites; k++) {
        double m = median(rate[k], runs);
        uint32_t vals = r[k].n_sets > 0 ? r[k].values[r[k].n_sets - 1] : 0;
        printf("sites: %u (%u values of `site`), engine %d threads median %.0f events/s, %.2f x "
               "%u sites, state %zu bytes\n",
               sites[k], vals, threads, m, m / m0, sites[0], r[k].state_bytes);
        free(c[k].data);
        free(c[k].off);
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kpistream-bench core [--events N] [--threads T] [--subscribers S]\n"
            "                            [--seed X] [--runs R] [--flush-ms F] [--sites C,...]\n"
            "  Decode + aggregate N pre-encoded events on T worker threads with a concurrent\n"
            "  flusher, against msgpack-c's plain unpack of the same buffers on one thread.\n"
            "  Defaults: N=2000000 T=2 S=1000000 X=1 R=3 F=100.  With --sites, the engine\n"
            "  alone on one corpus per count of cell sites (dimension and set `site`),\n"
            "  alternating, and each count's median against the first's.\n"
            "usage: kpistream-bench raw [--brokers B] [--topic T] [--group G]\n"
            "  Consume a topic with librdkafka alone (kpistream's consumer settings) to\n"
            "  the end offsets seen at assignment: the end-to-end baseline.\n"
            "usage: kpistream-bench measure -- COMMAND [ARGS...]\n"
            "  Run COMMAND; print its wall time, CPU time and peak RSS on stderr.\n"
            "usage: kpistream-bench latency --timestamps FILE [--topic T] [--group G]\n"
            "                               [--redis-host H] [--redis-port P] [--prefix X] "
            "[--key-groups K]\n"
            "                               [--duration S] [--warmup W] [--poll-ms M]\n"
            "  For S seconds, poll group G's stored offsets in Redis every M ms; then print\n"
            "  the production-to-Redis latency percentiles of the messages in FILE\n"
            "  (kpistream-gen --timestamps) produced after the first W seconds.\n"
            "  Defaults: S=60 W=10 M=5.\n");
}

int bench_raw(int argc, char **argv);
int bench_measure(int argc, char **argv);
int bench_latency(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "raw") == 0)
        return bench_raw(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "measure") == 0)
        return bench_measure(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "latency") == 0)
        return bench_latency(argc, argv);
    if (argc < 2 || strcmp(argv[1], "core") != 0) {
        usage(argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout
                                                                                  : stderr);
        return argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? 0 : 2;
    }
    size_t n = 2000000;
    int threads = 2, runs = 3;
    uint64_t subs = 1000000, seed = 1;
    int64_t flush_ms = 100;
    uint32_t sites[MAX_SITE_COUNTS];
    int n_sites = 0;
    static const struct option opts[] = {{"events", required_argument, 0, 'n'},
                                         {"threads", required_argument, 0, 't'},
                                         {"subscribers", required_argument, 0, 's'},
                                         {"seed", required_argument, 0, 'x'},
                                         {"runs", required_argument, 0, 'r'},
                                         {"flush-ms", required_argument, 0, 'f'},
                                         {"sites", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "n:t:s:x:r:f:c:h", opts, NULL)) != -1) {
        char *end = NULL;
        long long v = optarg ? strtoll(optarg, &end, 10) : 0;
        int bad = optarg && o != 'c' && (*end || v <= 0);
        switch (o) {
        case 'c': /* a comma-separated list of counts */
            for (const char *p = optarg; !bad; p = end + 1) {
                v = strtoll(p, &end, 10);
                bad = end == p || v <= 0 || v > 1000000 || n_sites == MAX_SITE_COUNTS ||
                      (*end && *end != ',');
                if (!bad)
                    sites[n_sites++] = (uint32_t)v;
                if (!*end)
                    break;
            }
            break;
        case 'n': n = (size_t)v; break;
        case 't':
            threads = (int)v;
            bad |= v > 64;
            break;
        case 's': subs = (uint64_t)v; break;
        case 'x': seed = (uint64_t)v; break;
        case 'r':
            runs = (int)v;
            bad |= v > MAX_RUNS;
            break;
        case 'f': flush_ms = v; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "kpistream-bench: bad value '%s' for --%s\n", optarg,
                    opts[o == 'n'   ? 0
                         : o == 't' ? 1
                         : o == 's' ? 2
                         : o == 'x' ? 3
                         : o == 'r' ? 4
                         : o == 'f' ? 5
                                    : 6]
                        .name);
            return 2;
        }
    }

    if (n_sites)
        return bench_sites(n, threads, subs, seed, runs, flush_ms, sites, n_sites);
    struct corpus c;
    double t0 = kpi_mono_s();
    if (build_corpus(&c, n, subs, seed, 0))
        return 1;
    printf(
        "corpus: %zu events, %zu bytes (%.1f bytes/event), %llu subscribers, encoded in %.2f s\n",
        c.n, c.off[c.n], (double)c.off[c.n] / (double)c.n, (unsigned long long)subs,
        kpi_mono_s() - t0);

    double base[MAX_RUNS], eng[MAX_RUNS], eng1[MAX_RUNS];
    struct engine_result r = {0}, r1 = {0};
    for (int i = 0; i < runs; i++) {
        base[i] = run_baseline(&c);
        if (run_engine(&c, threads, flush_ms, 0, &r))
            return 1;
        eng[i] = r.rate;
        if (threads > 1) {
            if (run_engine(&c, 1, flush_ms, 0, &r1))
                return 1;
            eng1[i] = r1.rate;
        }
        printf("run %d: msgpack-c unpack %.0f ev/s, engine %d thr %.0f ev/s", i + 1, base[i],
               threads, eng[i]);
        if (threads > 1)
            printf(", engine 1 thr %.0f ev/s", eng1[i]);
        printf("\n");
    }
    double mb = median(base, runs), me = median(eng, runs);
    printf("median msgpack-c unpack (1 thread): %.0f events/s\n", mb);
    if (threads > 1) {
        double m1 = median(eng1, runs);
        printf("median engine, 1 thread:  %.0f events/s (%.2f x msgpack-c unpack)\n", m1, m1 / mb);
        printf("median engine, %d threads: %.0f events/s (%.2f x one thread)\n", threads, me,
               me / m1);
    }
    printf("state: %zu bytes after the run, %llu flushes\n", r.state_bytes,
           (unsigned long long)r.flushes);
    for (int s = 0; s < r.n_sets; s++)
        printf("  grouping set %d: %u values\n", s, r.values[s]);
    printf("core: %.0f events/s, %.2f x msgpack-c unpack, %d threads\n", me, me / mb, threads);
    free(c.data);
    free(c.off);
    return 0;
}

static int build_corpus(struct corpus *c, size_t n, uint64_t subscribers, uint64_t seed,
                        uint32_t sites)
{
    struct kpi_gen_conf gc;
    kpi_gen_conf_defaults(&gc);
    gc.seed = seed;
    gc.subscribers = subscribers;
    gc.sites = sites;
    gc.events_per_sec = 50000; /* event time: a busy operator's hour fits in the corpus */
    struct kpi_gen *g = kpi_gen_new(&gc);
    size_t cap = n * 96 + 4096;
    c->data = malloc(cap);
    c->off = malloc((n + 1) * sizeof(*c->off));
    if (!g || !c->data || !c->off) {
        fprintf(stderr, "corpus: out of memory\n");
        return -1;
    }
    size_t used = 0;
    struct kpi_gen_info info;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        if (cap - used < 512) {
            cap *= 2;
            uint8_t *d = realloc(c->data, cap);
            if (!d)
                return -1;
            c->data = d;
        }
        c->off[i] = used;
        if (kpi_gen_next(g, c->data + used, cap - used, &len, &info))
            return -1;
        used += len;
    }
    c->off[n] = used;
    c->n = n;
    kpi_gen_destroy(g);
    return 0;
}
