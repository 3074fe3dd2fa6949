/*
 * End to end through the real program: generator -> Kafka (the broker of
 * scripts/services.sh) -> build/kpistream -> a private redis-server.
 *  - kill -9 mid-stream, start again: Redis holds exactly what was produced;
 *  - SIGTERM after catching up: exit 0, exact totals, and /metrics scraped
 *    during the run parses as Prometheus text with counters equal to the
 *    events fed.
 * The producer side keeps its own exact tally (kpi_gen_truth).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "cmd/lib/kpiread.h"
#include "engine/engine.h"
#include "engine/keygroup.h"
#include "gen/population.h"
#include "sinks/redis.h"
#include "sinks/redis/redis_int.h"
#include "support/kafka_util.h"
#include "support/redis_server.h"
#include "support/text.h"

static struct kpi_test_redis srv;
static redisContext *rc;

static void up(void)
{
    char err[256];
    cr_assert_eq(kpi_test_redis_start(&srv, err, sizeof(err)), 0, "%s", err);
    rc = kpi_test_redis_connect(&srv);
    cr_assert(rc && !rc->err);
}

static void down(void)
{
    redisFree(rc);
    kpi_test_redis_destroy(&srv);
}

TestSuite(e2e, .init = up, .fini = down, .timeout = 400);

static void poll_pause(void)
{
    struct timespec ts = {0, 20000000}; /* polling interval, not synchronisation */
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

/* Start build/kpistream against the Redis on redis_port with the test's
 * settings and `extra` more -X settings (NULL-terminated, may be NULL);
 * stdout to `out`, stderr to `<out>.err`. */
static pid_t start_daemon_full(int redis_port, const char *topic, const char *group, int http_port,
                               int exit_on_eof, const char *out, const char *const *extra)
{
    char x[6][256];
    snprintf(x[0], sizeof(x[0]), "kafka.topics=%s", topic);
    snprintf(x[1], sizeof(x[1]), "kafka.group.id=%s", group);
    snprintf(x[2], sizeof(x[2]), "redis.url=redis://127.0.0.1:%d", redis_port);
    snprintf(x[3], sizeof(x[3]), "http.port=%d", http_port);
    snprintf(x[4], sizeof(x[4]), "kafka.bootstrap.servers=%s", kt_brokers());
    snprintf(x[5], sizeof(x[5]), "engine.flush_interval=200ms");
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(out, "w", stdout);
        char errpath[300];
        snprintf(errpath, sizeof(errpath), "%s.err", out);
        f = freopen(errpath, "w", stderr);
        (void)f;
        const char *argv[64];
        int n = 0;
        argv[n++] = "kpistream";
        for (int i = 0; i < 6; i++) {
            argv[n++] = "-X";
            argv[n++] = x[i];
        }
        for (int i = 0; extra && extra[i] && n < 56; i++) {
            argv[n++] = "-X";
            argv[n++] = extra[i];
        }
        argv[n++] = "-X";
        argv[n++] = "alerts.enabled=false";
        if (exit_on_eof)
            argv[n++] = "--exit-on-eof";
        argv[n] = NULL;
        execv(KPI_BINARY_DIR "/kpistream", (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static pid_t start_daemon_x(const char *topic, const char *group, int http_port, int exit_on_eof,
                            const char *out, const char *const *extra)
{
    return start_daemon_full(srv.port, topic, group, http_port, exit_on_eof, out, extra);
}

static pid_t start_daemon_at(int redis_port, const char *topic, const char *group, int http_port,
                             int exit_on_eof, const char *out)
{
    return start_daemon_full(redis_port, topic, group, http_port, exit_on_eof, out, NULL);
}

static pid_t start_daemon(const char *topic, const char *group, int http_port, int exit_on_eof,
                          const char *out)
{
    return start_daemon_x(topic, group, http_port, exit_on_eof, out, NULL);
}

/* The whole of a file (caller frees), "" if absent. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += k;
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static void redis_do(const char *cmd)
{
    redisReply *r = redisCommand(rc, cmd);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s: %s", cmd, r ? r->str : rc->errstr);
    freeReplyObject(r);
}

#define KG KPI_REDIS_KEY_GROUPS_DEFAULT /* the daemon runs with the default key groups */

/* Sum of the stored offsets over partitions: the smallest over key groups
 * (all of them hold every event below it); *agree: every key group stores
 * the same offsets. */
static int64_t stored_offsets_kg(const char *group, int *agree)
{
    int64_t lo = INT64_MAX, hi = -1;
    for (uint32_t kg = 0; kg < KG; kg++) {
        char p[256];
        kpi_redis_kg_prefix(p, sizeof(p), "kpi", group, KG, kg);
        redisReply *r = redisCommand(rc, "HVALS %soffsets", p);
        int64_t n = 0;
        if (r && r->type == REDIS_REPLY_ARRAY)
            for (size_t i = 0; i < r->elements; i++)
                n += atoll(r->element[i]->str);
        if (r)
            freeReplyObject(r);
        lo = n < lo ? n : lo;
        hi = n > hi ? n : hi;
    }
    if (agree)
        *agree = lo == hi;
    return lo;
}

static int64_t stored_offsets(const char *group)
{
    return stored_offsets_kg(group, NULL);
}

static int64_t kpi_field(const char *group, const char *field)
{
    char p[256];
    kpi_redis_value_prefix(p, sizeof(p), "kpi", group, KG, "all", "all", 3);
    redisReply *r = redisCommand(rc, "HGET %skpi:24h_1h:all:all %s", p, field);
    int64_t v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

static void wait_offsets(const char *group, int64_t n, int64_t timeout_ms)
{
    int64_t deadline = kpi_mono_ms() + timeout_ms;
    while (stored_offsets(group) < n && kpi_mono_ms() < deadline)
        poll_pause();
}

static int wait_exit(pid_t pid, int64_t timeout_ms)
{
    int64_t deadline = kpi_mono_ms() + timeout_ms;
    int st;
    while (kpi_mono_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        poll_pause();
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static int64_t produce_base_every_ms; /* base snapshots in produce(): 0 none */

static void produce(const char *prefix, char *topic, size_t tsize, char *group, size_t gsize,
                    uint64_t n, double bad, struct kpi_gen_truth *truth)
{
    cr_assert_eq(kt_create_topic(topic, tsize, prefix, 8), 0,
                 "is the broker up? (bash scripts/services.sh up)");
    snprintf(group, gsize, "g-%s", topic);
    struct kpi_gen_conf gc;
    kpi_gen_conf_defaults(&gc);
    gc.seed = (uint64_t)n + 99;
    gc.bad_ratio = bad;
    gc.start_ts_ms = (kpi_now_ms() / 3600000 - 1) * 3600000; /* within the 24h window */
    gc.events_per_sec = 20000;
    gc.base_every_ms = produce_base_every_ms;
    memset(truth, 0, sizeof(*truth));
    cr_assert_eq(kt_produce(topic, &gc, n, truth), 0);
}

/* A value's field in the daemon's Redis (kpi_redis_value_prefix: the key
 * group of the value), as a string; "" when missing. */
static void value_field(const char *group, const char *kind, const char *set, const char *value,
                        const char *field, char *out, size_t cap)
{
    char p[256];
    kpi_redis_value_prefix(p, sizeof(p), "kpi", group, KG, set, value, strlen(value));
    redisReply *r = redisCommand(rc, "HGET %s%s%s:%s %s", p, kind, set, value, field);
    snprintf(out, cap, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r)
        freeReplyObject(r);
}

#define LATENESS_MS 30000 /* engine.lateness: the daemons run with the default */

/* The span a rolling window's monthly KPIs scale (docs/kpis.md), from its key
 * group's meta: from the window's start, its first bucket or the key group's
 * `since`, whichever is latest, to the clock (the watermark plus the
 * lateness) or the head bucket's end, whichever is first; at least a minute
 * (or the slide, when shorter). */
static double covered_span(const char *meta, const char *wid, int64_t size, int64_t slide)
{
    redisReply *m = redisCommand(rc, "HMGET %s head:%s first:%s since watermark", meta, wid, wid);
    cr_assert(m && m->type == REDIS_REPLY_ARRAY && m->elements == 4);
    for (size_t i = 0; i < 4; i++)
        cr_assert(m->element[i]->type == REDIS_REPLY_STRING, "%s has field %zu", meta, i);
    const int64_t head = atoll(m->element[0]->str), first = atoll(m->element[1]->str),
                  since = atoll(m->element[2]->str),
                  clock = atoll(m->element[3]->str) + LATENESS_MS;
    freeReplyObject(m);
    int64_t start = head - size + slide;
    start = first > start ? first : start;
    start = since > start ? since : start;
    const int64_t stop = clock < head + slide ? clock : head + slide;
    const int64_t floor = slide < 60000 ? slide : 60000;
    return (double)(stop - start > floor ? stop - start : floor);
}

/* Every value's base (P:base:<set>:<value>) is the generator's truth, and
 * the 24-hour window's monthly KPIs of `all` are the formulas on its own
 * fields, over the base at the start of its data (before any event: the
 * initial base) and the span its data covers. */
static int check_bases(const char *group, const struct kpi_gen_truth *truth)
{
    int checked = 0;
    char v[64], label[96];
    const char *sets[] = {"all", "region", "segment", "region+plan"};
    for (int si = 0; si < 4; si++) {
        int nv = si == 0   ? 1
                 : si == 1 ? KPI_GEN_NREG
                 : si == 2 ? KPI_GEN_NSEG
                           : KPI_GEN_NREG * KPI_GEN_NPLAN;
        for (int i = 0; i < nv; i++) {
            if (si == 0)
                snprintf(label, sizeof(label), "all");
            else if (si == 1)
                snprintf(label, sizeof(label), "%s", kpi_gen_regions[i]);
            else if (si == 2)
                snprintf(label, sizeof(label), "%s", kpi_gen_segments[i]);
            else
                snprintf(label, sizeof(label), "%s|%s", kpi_gen_regions[i / KPI_GEN_NPLAN],
                         kpi_gen_plans[i % KPI_GEN_NPLAN]);
            int64_t want;
            cr_assert_eq(kpi_gen_truth_base(truth, sets[si], label, &want), 0);
            value_field(group, "base:", sets[si], label, "base", v, sizeof(v));
            cr_assert(v[0], "%s:%s has a base", sets[si], label);
            cr_assert_eq(atoll(v), want, "base of %s:%s: %s, want %lld", sets[si], label, v,
                         (long long)want);
            checked++;
        }
    }
    int64_t init = 0;
    for (int r = 0; r < KPI_GEN_NREG; r++)
        for (int p = 0; p < KPI_GEN_NPLAN; p++)
            for (int s = 0; s < KPI_GEN_NSEG; s++)
                init += truth->base_init[r][p][s];
    value_field(group, "kpi:24h_1h:", "all", "all", "base", v, sizeof(v));
    cr_assert_eq(atoll(v), init, "the 24h window's base is the base at its start: %s", v);
    value_field(group, "kpi:24h_1h:", "all", "all", "base_source", v, sizeof(v));
    cr_assert_str_eq(v, "snapshot");
    char p[256], meta[300];
    kpi_redis_value_prefix(p, sizeof(p), "kpi", group, KG, "all", "all", 3);
    snprintf(meta, sizeof(meta), "%smeta", p);
    const double span = covered_span(meta, "24h_1h", 86400000, 3600000);
    value_field(group, "kpi:24h_1h:", "all", "all", "churn_rate_monthly", v, sizeof(v));
    double want = (double)kpi_field(group, "churns") * 2592000000.0 / span / (double)init;
    cr_assert_float_eq(strtod(v, NULL), want, want * 1e-9, "churn_rate_monthly %s", v);
    value_field(group, "kpi:24h_1h:", "all", "all", "arpu_monthly", v, sizeof(v));
    want = (double)kpi_field(group, "revenue") / 1e6 * 2592000000.0 / span / (double)init;
    cr_assert_float_eq(strtod(v, NULL), want, want * 1e-9, "arpu_monthly %s", v);
    return checked;
}

Test(e2e, sigkill_mid_stream_then_restart_leaves_exact_totals)
{
    char topic[128], group[160], out[256];
    struct kpi_gen_truth truth;
    const uint64_t N = 400000;
    produce_base_every_ms = 3600000; /* and base snapshots: every value's base exact too */
    produce("e2e-kill", topic, sizeof(topic), group, sizeof(group), N, 0, &truth);
    produce_base_every_ms = 0;
    snprintf(out, sizeof(out), "/tmp/kpi-e2e-%d.out", (int)getpid());

    /* Small worker buffers: the first run advances a few hundred events
     * per flush, so the kill lands mid-stream however fast the sink is. */
    static const char *const small[] = {"engine.max_cells=256", NULL};
    pid_t pid = start_daemon_x(topic, group, 0, 0, out, small);
    wait_offsets(group, (int64_t)N / 4, 120000);
    int64_t before = stored_offsets(group);
    cr_assert_gt(before, 0, "the first run flushed something before the kill");
    cr_assert_lt(before, (int64_t)N, "and was killed mid-stream");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    pid = start_daemon(topic, group, 0, 1, out);
    cr_assert_eq(wait_exit(pid, 240000), 0, "the restart ran to the end and exited 0");
    int agree = 0;
    cr_assert_eq(stored_offsets_kg(group, &agree), (int64_t)N);
    cr_assert(agree, "every key group stored the same offsets");
    cr_assert_gt(truth.by_type[KPI_EV_BASE], 0, "snapshots were sent");
    cr_assert_eq(kpi_field(group, "events"), (int64_t)(truth.good - truth.by_type[KPI_EV_BASE]),
                 "Redis holds every event exactly once (snapshots are not events)");
    cr_assert_eq(kpi_field(group, "revenue"), truth.revenue);
    cr_assert_eq(kpi_field(group, "churns"), (int64_t)truth.by_type[KPI_EV_CHURN]);
    cr_assert_eq(kpi_field(group, "activations"), (int64_t)truth.by_type[KPI_EV_ACTIVATION]);
    for (int i = 0; i < KPI_NCOUNTERS; i++)
        cr_assert_eq(kpi_field(group, kpi_counter_names[i]), truth.counters.v[i],
                     "%s: every counter of the schema exactly once", kpi_counter_names[i]);
    cr_assert_gt(check_bases(group, &truth), 60, "every value's base");
    FILE *f = fopen(out, "r");
    char line[256] = "", last[256] = "";
    while (f && fgets(line, sizeof(line), f))
        strcpy(last, line);
    if (f)
        fclose(f);
    cr_assert(strncmp(last, "consumed: ", 10) == 0, "summary line: %s", last);
    remove(out);
}

static char *http_get(int port, const char *path);

/* Poll /metrics until it contains `needle`; 1 if it did within timeout_ms. */
static int wait_metric(int port, const char *needle, int64_t timeout_ms)
{
    int64_t deadline = kpi_mono_ms() + timeout_ms;
    while (kpi_mono_ms() < deadline) {
        char *m = http_get(port, "/metrics");
        int found = m && strstr(m, needle);
        free(m);
        if (found)
            return 1;
        poll_pause();
    }
    return 0;
}

/* The sink cannot write (an ACL refuses FCALL: NOPERM, retried for ever)
 * and its tiny buffers are full, so the workers wait for room.  SIGTERM must
 * still end the process within engine.shutdown_timeout, acknowledging
 * nothing it could not flush; the next run reads it all again. */
Test(e2e, sigterm_ends_within_the_shutdown_timeout_while_the_sink_fails)
{
    char topic[128], group[160], out[256];
    struct kpi_gen_truth truth;
    const uint64_t N = 100000;
    produce("e2e-stop", topic, sizeof(topic), group, sizeof(group), N, 0, &truth);
    snprintf(out, sizeof(out), "/tmp/kpi-e2e-stop-%d.out", (int)getpid());
    redis_do("ACL SETUSER default -fcall");
    int port = free_port();
    static const char *const extra[] = {"engine.max_cells=64", "engine.shutdown_timeout=3s",
                                        "engine.retry_max=200ms", NULL};
    pid_t pid = start_daemon_x(topic, group, port, 0, out, extra);
    cr_assert(wait_metric(port, "\nkpistream_backpressured 1\n", 120000),
              "the failing sink backpressures the workers");
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid, 60000), 1, "SIGTERM ends the process, exit 1: unflushed");
    cr_assert_eq(stored_offsets(group), 0, "nothing was acknowledged");
    char errpath[300];
    snprintf(errpath, sizeof(errpath), "%s.err", out);
    char *log = slurp(errpath);
    cr_assert(strstr(log, "NOPERM"), "the log says why: %s", log);
    free(log);

    redis_do("ACL SETUSER default +@all");
    pid = start_daemon(topic, group, 0, 1, out);
    cr_assert_eq(wait_exit(pid, 240000), 0, "the next run reads everything again");
    cr_assert_eq(stored_offsets(group), (int64_t)N);
    cr_assert_eq(kpi_field(group, "events"), (int64_t)truth.good, "exactly once");
    cr_assert_eq(kpi_field(group, "revenue"), truth.revenue);
    remove(out);
    remove(errpath);
}

static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        close(fd);
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    ssize_t k;
    while ((k = read(fd, buf + len, cap - len - 1)) > 0)
        len += (size_t)k;
    buf[len] = '\0';
    close(fd);
    return buf;
}

/* Sum of a metric family's samples; -1 if absent.  Also checks that every
 * non-comment line is "name{labels} value" with a numeric value. */
static double metric_sum(const char *text, const char *family, int *well_formed)
{
    const char *body = strstr(text, "\r\n\r\n");
    body = body ? body + 4 : text;
    double sum = -1;
    char line[1024];
    for (const char *p = body; *p;) {
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof(line), "%.*s", (int)n, p);
        p += n + (p[n] == '\n');
        if (!line[0] || line[0] == '#')
            continue;
        char *sp = strrchr(line, ' ');
        char *end;
        if (!sp || (strtod(sp + 1, &end), *end != '\0'))
            *well_formed = 0;
        size_t fl = strlen(family);
        if (strncmp(line, family, fl) == 0 && (line[fl] == '{' || line[fl] == ' '))
            sum = (sum < 0 ? 0 : sum) + strtod(sp + 1, NULL);
    }
    return sum;
}

Test(e2e, sigterm_exits_zero_with_exact_totals_and_metrics_match)
{
    char topic[128], group[160], out[256];
    struct kpi_gen_truth truth;
    const uint64_t N = 200000;
    produce("e2e-term", topic, sizeof(topic), group, sizeof(group), N, 0.01, &truth);
    snprintf(out, sizeof(out), "/tmp/kpi-e2e-term-%d.out", (int)getpid());
    int port = free_port();
    pid_t pid = start_daemon(topic, group, port, 0, out);
    wait_offsets(group, (int64_t)N, 180000);
    cr_assert_eq(stored_offsets(group), (int64_t)N, "caught up");

    char *m = http_get(port, "/metrics");
    cr_assert_not_null(m, "/metrics answers");
    cr_assert(strstr(m, "200 OK"), "%.200s", m);
    int ok = 1;
    double good = metric_sum(m, "kpistream_events_total", &ok);
    double bad = metric_sum(m, "kpistream_bad_events_total", &ok);
    cr_assert(ok, "every sample line parses");
    cr_assert_eq((uint64_t)good, truth.good);
    cr_assert_eq((uint64_t)bad, truth.bad);
    cr_assert_geq(metric_sum(m, "kpistream_flush_duration_seconds_count", &ok), 1);
    /* The sink's own figures: its key groups, and every call in the
     * histogram of round trips (one snapshot, so they agree). */
    cr_assert_eq(metric_sum(m, "kpistream_redis_key_groups", &ok), KG);
    double calls = metric_sum(m, "kpistream_redis_calls_total", &ok);
    cr_assert_geq(calls, 1);
    cr_assert_eq(metric_sum(m, "kpistream_redis_call_duration_seconds_count", &ok), calls);
    cr_assert_geq(metric_sum(m, "kpistream_redis_cells_total", &ok), 1);
    cr_assert(ok, "every sample line parses");
    free(m);
    char *h = http_get(port, "/healthz");
    cr_assert(h && strstr(h, "200 OK"), "healthy while consuming: %.200s", h ? h : "");
    free(h);

    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid, 60000), 0, "SIGTERM: exit 0");
    cr_assert_eq(kpi_field(group, "events"), (int64_t)truth.good);
    cr_assert_eq(kpi_field(group, "revenue"), truth.revenue);
    remove(out);
}

Test(e2e, bad_configuration_exits_2_and_names_the_key)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "%s/kpistream -X engine.flush_interval=soon 2>&1 | grep -q "
             "engine.flush_interval; exit ${PIPESTATUS[0]}",
             KPI_BINARY_DIR);
    char full[700];
    snprintf(full, sizeof(full), "bash -c '%s'", cmd);
    int st = system(full);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
    snprintf(full, sizeof(full), "%s/kpistream --config /nonexistent.ini >/dev/null 2>&1",
             KPI_BINARY_DIR);
    st = system(full);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    /* kafka.* keys outside the table reach librdkafka, which refuses this
     * value; the message names the key and the exit code is 2. */
    snprintf(full, sizeof(full),
             "bash -c '%s/kpistream -X kafka.fetch.max.bytes=banana -X http.port=0 2>&1 | "
             "grep -q \"kafka.fetch.max.bytes: Invalid value\"; exit ${PIPESTATUS[0]}'",
             KPI_BINARY_DIR);
    st = system(full);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
}

/* ---- every field a reader sees is right at rest ---- */

static const struct {
    const char *id;
    int64_t size, slide;
} windows[] = {{"1m_5s", 60000, 5000}, {"1h_1m", 3600000, 60000}, {"24h_1h", 86400000, 3600000}};

static int64_t hget_i(const char *key, const char *field, int *present)
{
    redisReply *r = redisCommand(rc, "HGET %s %s", key, field);
    int ok = r && r->type == REDIS_REPLY_STRING;
    int64_t v = ok ? atoll(r->str) : 0;
    if (present)
        *present = ok;
    if (r)
        freeReplyObject(r);
    return v;
}

static void hget_s(const char *key, const char *field, char *out, size_t cap)
{
    redisReply *r = redisCommand(rc, "HGET %s %s", key, field);
    snprintf(out, cap, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "<missing>");
    if (r)
        freeReplyObject(r);
}

static void fmt10(char *out, size_t cap, int defined, double x)
{
    if (defined)
        snprintf(out, cap, "%.10g", x);
    else
        out[0] = '\0';
}

/* A rolling hash's every counter is the sum of that counter over the
 * bucket hashes of its window's instance (lo, head], the buckets
 * b:<window>:<member>:<bucket> of key group prefix p. */
static void check_sum_of_buckets(const char *p, const char *win, const char *member,
                                 const char *key, int64_t lo, int64_t head, int64_t slide)
{
    int64_t sum[KPI_NCOUNTERS] = {0};
    for (int64_t b = lo + slide; b <= head; b += slide) {
        char bk[600];
        snprintf(bk, sizeof(bk), "%sb:%s:%s:%lld", p, win, member, (long long)b);
        for (int k = 0; k < KPI_NCOUNTERS; k++)
            sum[k] += hget_i(bk, kpi_counter_names[k], NULL);
    }
    for (int k = 0; k < KPI_NCOUNTERS; k++) {
        int64_t got = hget_i(key, kpi_counter_names[k], NULL);
        cr_assert_eq(got, sum[k], "%s %s %lld, its window's buckets sum to %lld", key,
                     kpi_counter_names[k], (long long)got, (long long)sum[k]);
    }
}

/* A stream entry: its fields (in the XRANGE reply) and what sorts it. */
struct stream_entry {
    const redisReply *fields;
    char member[400];
    int64_t bucket, rev;
};

static int by_bucket_then_rev(const void *a, const void *b)
{
    const struct stream_entry *x = a, *y = b;
    int c = strcmp(x->member, y->member);
    if (c)
        return c;
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket ? -1 : 1;
    return x->rev > y->rev ? -1 : x->rev < y->rev; /* highest rev first */
}

static const char *entry_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1]->str;
    return NULL;
}

/* The closed-bucket streams (docs/redis-schema.md, "P:stream:<window>"):
 * for every (bucket, set, value), the entry with the highest `rev` holds
 * that bucket's counters as its bucket hash holds them, and its `active` is
 * PFCOUNT of the bucket's sketch.  Returns how many entries were checked. */
static int check_streams(const char *group)
{
    int checked = 0;
    for (uint32_t kg = 0; kg < KG; kg++) {
        char p[256];
        kpi_redis_kg_prefix(p, sizeof(p), "kpi", group, KG, kg);
        for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
            redisReply *r = redisCommand(rc, "XRANGE %sstream:%s - +", p, windows[w].id);
            cr_assert(r && r->type == REDIS_REPLY_ARRAY);
            struct stream_entry *e = calloc(r->elements + 1, sizeof(*e));
            cr_assert(e);
            for (size_t i = 0; i < r->elements; i++) {
                const redisReply *f = r->element[i]->element[1];
                const char *set = entry_field(f, "set"), *val = entry_field(f, "value");
                const char *bucket = entry_field(f, "bucket"), *rev = entry_field(f, "rev");
                cr_assert(set && val && bucket && rev,
                          "a stream entry has set, value, bucket, rev");
                e[i].fields = f;
                snprintf(e[i].member, sizeof(e[i].member), "%s:%s", set, val);
                e[i].bucket = atoll(bucket);
                e[i].rev = atoll(rev);
            }
            qsort(e, r->elements, sizeof(*e), by_bucket_then_rev);
            for (size_t i = 0; i < r->elements; i++) {
                if (i && strcmp(e[i].member, e[i - 1].member) == 0 &&
                    e[i].bucket == e[i - 1].bucket)
                    continue; /* superseded by a higher rev */
                const redisReply *f = e[i].fields;
                char bk[700];
                snprintf(bk, sizeof(bk), "%sb:%s:%s:%lld", p, windows[w].id, e[i].member,
                         (long long)e[i].bucket);
                for (int k = 0; k < KPI_NCOUNTERS; k++) {
                    const char *got = entry_field(f, kpi_counter_names[k]);
                    cr_assert(got, "%s entry rev %lld has %s", bk, (long long)e[i].rev,
                              kpi_counter_names[k]);
                    cr_assert_eq(atoll(got), hget_i(bk, kpi_counter_names[k], NULL),
                                 "%s: the stream's last entry (rev %lld) has %s %s", bk,
                                 (long long)e[i].rev, kpi_counter_names[k], got);
                }
                redisReply *pc = redisCommand(rc, "PFCOUNT %sh:%s:%s:%lld", p, windows[w].id,
                                              e[i].member, (long long)e[i].bucket);
                cr_assert(pc && pc->type == REDIS_REPLY_INTEGER);
                const char *active = entry_field(f, "active");
                cr_assert(active && atoll(active) == pc->integer,
                          "%s: the stream's active %s, PFCOUNT of the bucket's sketch %lld", bk,
                          active ? active : "(none)", (long long)pc->integer);
                freeReplyObject(pc);
                checked++;
            }
            free(e);
            freeReplyObject(r);
        }
    }
    return checked;
}

/* Every rolling hash of the group: `active` equals PFCOUNT of the union of
 * its current instance's bucket sketches, exactly, its counters sum its
 * buckets, its leaderboard score is its events, and its derived KPIs are
 * the formulas of docs/kpis.md on its own counters; fails on the first
 * difference.  With stale not NULL, only how many rolling hashes hold an
 * `active` other than PFCOUNT of their buckets, into *stale.  Returns how
 * many hashes were looked at. */
static int check_rolling_hashes(const char *group, int *stale)
{
    int checked = 0;
    for (uint32_t kg = 0; kg < KG; kg++) {
        char p[256], meta[300];
        kpi_redis_kg_prefix(p, sizeof(p), "kpi", group, KG, kg);
        snprintf(meta, sizeof(meta), "%smeta", p);
        for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
            char field[64];
            snprintf(field, sizeof(field), "head:%s", windows[w].id);
            int has_head = 0;
            int64_t head = hget_i(meta, field, &has_head);
            /* A key group with no value has a head (every call moves it) but
             * no first bucket: read the span only where a rolling hash is. */
            double span = -1;
            char pattern[400];
            snprintf(pattern, sizeof(pattern), "%skpi:%s:*", p, windows[w].id);
            char cursor[32] = "0";
            do {
                redisReply *r = redisCommand(rc, "SCAN %s MATCH %b COUNT 1000", cursor, pattern,
                                             strlen(pattern));
                cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
                snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
                for (size_t i = 0; i < r->element[1]->elements; i++) {
                    const char *key = r->element[1]->element[i]->str;
                    cr_assert(has_head, "%s exists, so %s has a head", key, meta);
                    const char *member = key + strlen(pattern) - 1; /* "<set>:<value>" */
                    /* PFCOUNT h:<w>:<member>:<b> over the current instance. */
                    const char *argv[64];
                    size_t lens[64];
                    char names[64][512];
                    int n = 0;
                    argv[n] = "PFCOUNT";
                    lens[n++] = 7;
                    for (int64_t b = head - windows[w].size + windows[w].slide; b <= head;
                         b += windows[w].slide) {
                        snprintf(names[n], sizeof(names[n]), "%sh:%s:%s:%lld", p, windows[w].id,
                                 member, (long long)b);
                        argv[n] = names[n];
                        lens[n] = strlen(names[n]);
                        n++;
                    }
                    redisReply *pc = redisCommandArgv(rc, n, argv, lens);
                    cr_assert(pc && pc->type == REDIS_REPLY_INTEGER);
                    if (stale) { /* only count the hashes whose active is not that yet */
                        *stale += hget_i(key, "active", NULL) != pc->integer;
                        freeReplyObject(pc);
                        checked++;
                        continue;
                    }
                    check_sum_of_buckets(p, windows[w].id, member, key, head - windows[w].size,
                                         head, windows[w].slide);
                    /* its leaderboard score is its events (docs/redis-schema.md,
                     * "P:values:<window>:<set>") */
                    const char *colon = strchr(member, ':');
                    cr_assert(colon, "%s: <set>:<value>", key);
                    redisReply *zs = redisCommand(rc, "ZSCORE %svalues:%s:%b %s", p, windows[w].id,
                                                  member, (size_t)(colon - member), colon + 1);
                    cr_assert(zs && zs->type == REDIS_REPLY_STRING, "%s is in its leaderboard",
                              key);
                    cr_assert_eq(atoll(zs->str), hget_i(key, "events", NULL),
                                 "%s: leaderboard score %s, events %lld", key, zs->str,
                                 (long long)hget_i(key, "events", NULL));
                    freeReplyObject(zs);
                    int64_t active = hget_i(key, "active", NULL);
                    cr_assert_eq(active, pc->integer,
                                 "%s: active %lld, PFCOUNT of its buckets %lld", key,
                                 (long long)active, (long long)pc->integer);
                    freeReplyObject(pc);
                    int64_t churns = hget_i(key, "churns", NULL);
                    int64_t revenue = hget_i(key, "revenue", NULL);
                    int64_t np = hget_i(key, "nps_network_promoters", NULL);
                    int64_t npa = hget_i(key, "nps_network_passives", NULL);
                    int64_t nd = hget_i(key, "nps_network_detractors", NULL);
                    char want[64], got[64];
                    fmt10(want, sizeof(want), active > 0, (double)churns / (double)active);
                    hget_s(key, "churn_rate", got, sizeof(got));
                    cr_assert_str_eq(got, want, "%s churn_rate", key);
                    fmt10(want, sizeof(want), active > 0, (double)revenue / 1e6 / (double)active);
                    hget_s(key, "arpu", got, sizeof(got));
                    cr_assert_str_eq(got, want, "%s arpu", key);
                    fmt10(want, sizeof(want), np + npa + nd > 0,
                          100.0 * (double)(np - nd) / (double)(np + npa + nd));
                    hget_s(key, "nps_network", got, sizeof(got));
                    cr_assert_str_eq(got, want, "%s nps_network", key);
                    /* and every KPI of the schema, as the engine derives it */
                    struct kpi_counters c;
                    for (int k = 0; k < KPI_NCOUNTERS; k++)
                        c.v[k] = hget_i(key, kpi_counter_names[k], NULL);
                    struct kpi_values v;
                    char base[64];
                    hget_s(key, "base", base, sizeof(base));
                    if (span < 0)
                        span = covered_span(meta, windows[w].id, windows[w].size, windows[w].slide);
                    kpi_values_compute_base(&v, &c, (uint64_t)active, base[0] != 0,
                                            strtod(base, NULL), (int64_t)span);
                    for (int k = 0; k < KPI_NDERIVED; k++) {
                        fmt10(want, sizeof(want), v.has[k], v.derived[k]);
                        hget_s(key, kpi_derived_defs[k].name, got, sizeof(got));
                        cr_assert_str_eq(got, want, "%s %s", key, kpi_derived_defs[k].name);
                    }
                    checked++;
                }
                freeReplyObject(r);
            } while (strcmp(cursor, "0") != 0);
        }
    }
    return checked;
}

/* Whether the instance's log (stderr, "<out>.err") has a line with needle. */
static int file_has(const char *out, const char *needle)
{
    char path[300];
    snprintf(path, sizeof(path), "%s.err", out);
    FILE *f = fopen(path, "r");
    char line[1024];
    int found = 0;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* The instance's summary line's "flushed: F". */
static long long flushed_of(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    long long v = -1;
    while (f && fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "flushed: ");
        if (strncmp(line, "consumed: ", 10) == 0 && p)
            v = atoll(p + 9);
    }
    if (f)
        fclose(f);
    return v;
}

Test(e2e, two_instances_leave_every_rolling_hash_exact_at_rest)
{
    char topic[128], group[160], out[2][256];
    struct kpi_gen_truth truth;
    const uint64_t N = 300000;
    cr_assert_eq(kt_create_topic(topic, sizeof(topic), "e2e-rest", 8), 0);
    snprintf(group, sizeof(group), "g-%s", topic);
    /* Both instances own partitions before any event exists, so both write
     * (the same values: every partition holds every segment). */
    pid_t pid[2];
    for (int i = 0; i < 2; i++) {
        snprintf(out[i], sizeof(out[i]), "/tmp/kpi-e2e-rest-%d-%d.out", (int)getpid(), i);
        pid[i] = start_daemon(topic, group, 0, 0, out[i]);
    }
    int64_t deadline = kpi_mono_ms() + 120000;
    /* "owns N" ends each rebalance line: with the cooperative protocol the
     * first instance is assigned 8 and then revoked 4. */
    while (!(file_has(out[0], "; owns 4") && file_has(out[1], "; owns 4")) &&
           kpi_mono_ms() < deadline)
        poll_pause();
    cr_assert(file_has(out[0], "; owns 4") && file_has(out[1], "; owns 4"),
              "the group split the 8 partitions 4 + 4");
    struct kpi_gen_conf gc;
    kpi_gen_conf_defaults(&gc);
    gc.seed = 4242;
    gc.start_ts_ms = (kpi_now_ms() / 3600000 - 1) * 3600000;
    /* 150 s of event time: past the 30 s lateness, buckets of the 1m_5s and
     * 1h_1m windows close (streams) and the 1m_5s window slides */
    gc.events_per_sec = 2000;
    gc.base_every_ms = 3600000; /* both instances write snapshots of the same values */
    memset(&truth, 0, sizeof(truth));
    cr_assert_eq(kt_produce(topic, &gc, N, &truth), 0);
    wait_offsets(group, (int64_t)N, 240000);
    /* While both still run, with no event left: their next flushes and idle
     * calls recount what the last writes left stale (docs/redis-schema.md,
     * "Exact at rest"), without the exit's flush. */
    int stale = -1, seen = 0;
    for (int64_t until = kpi_mono_ms() + 60000; stale != 0 && kpi_mono_ms() < until;) {
        if (stale > 0)
            poll_pause();
        stale = 0;
        seen = check_rolling_hashes(group, &stale);
    }
    cr_assert_eq(stale, 0, "%d of %d rolling hashes still have a stale active while running", stale,
                 seen);
    for (int i = 0; i < 2; i++) {
        kill(pid[i], SIGTERM);
        cr_assert_eq(wait_exit(pid[i], 60000), 0, "instance %d: SIGTERM, exit 0", i);
        cr_assert_gt(flushed_of(out[i]), 0, "instance %d wrote events", i);
    }
    int agree = 0;
    cr_assert_eq(stored_offsets_kg(group, &agree), (int64_t)N);
    cr_assert(agree, "every key group stored the same offsets");
    cr_assert_eq(kpi_field(group, "events"), (int64_t)(truth.good - truth.by_type[KPI_EV_BASE]));
    cr_assert_eq(kpi_field(group, "revenue"), truth.revenue);
    cr_assert_eq(kpi_field(group, "churns"), (int64_t)truth.by_type[KPI_EV_CHURN]);
    cr_assert_gt(check_bases(group, &truth), 60, "every value's base, with two writers");
    /* Both instances are gone: nothing will touch these hashes again, so
     * what a dashboard reads now is what it keeps reading. */
    int checked = check_rolling_hashes(group, NULL);
    cr_assert_gt(checked, 30, "every set value of every window was checked (%d)", checked);
    int entries = check_streams(group);
    cr_assert_gt(entries, 30, "closed buckets' stream entries were checked (%d)", entries);
    for (int i = 0; i < 2; i++)
        remove(out[i]);
}

/* ---- hostile quantities ---- */

/* A valid usage event (docs/events.md) with bytes = 2^63 - 1. */
static size_t huge_bytes_event(uint8_t *b, int64_t ts)
{
    size_t n = 0;
    static const uint8_t head[] = {0x85, 0xa4, 't', 'y', 'p',  'e', 0xa5, 'u',
                                   's',  'a',  'g', 'e', 0xa2, 't', 's',  0xcf};
    memcpy(b, head, sizeof(head));
    n = sizeof(head);
    for (int i = 7; i >= 0; i--)
        b[n++] = (uint8_t)((uint64_t)ts >> (8 * i));
    static const uint8_t tail[] = {0xa3, 's',  'u',  'b',  0x2a, 0xa6, 'a',  'm',  'o',  'u',
                                   'n',  't',  0xcd, 0x03, 0xe8, 0xa5, 'b',  'y',  't',  'e',
                                   's',  0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    memcpy(b + n, tail, sizeof(tail));
    return n + sizeof(tail);
}

Test(e2e, overflowing_volumes_are_dead_lettered_and_the_group_goes_on)
{
    char topic[128], group[160], out[256], dlq[160];
    struct kpi_gen_truth truth;
    const uint64_t N = 50000;
    produce("e2e-ovf", topic, sizeof(topic), group, sizeof(group), N, 0, &truth);
    snprintf(out, sizeof(out), "/tmp/kpi-e2e-ovf-%d.out", (int)getpid());
    snprintf(dlq, sizeof(dlq), "%s.dlq", topic);
    pid_t pid = start_daemon(topic, group, 0, 0, out);
    wait_offsets(group, (int64_t)N, 120000);
    cr_assert_eq(stored_offsets(group), (int64_t)N);
    /* Twice, in two flushes: the second one used to overflow Redis's HINCRBY
     * half-way through the flush script and wedge the group. */
    uint8_t ev[64];
    int64_t ts = (kpi_now_ms() / 3600000 - 1) * 3600000 + 1000;
    for (int i = 1; i <= 2; i++) {
        cr_assert_eq(kt_produce_raw(topic, 0, ev, huge_bytes_event(ev, ts)), 0);
        wait_offsets(group, (int64_t)N + i, 60000);
        cr_assert_eq(stored_offsets(group), (int64_t)N + i, "flush %d went through", i);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "the instance is still running");
    cr_assert_eq(kpi_field(group, "events"), (int64_t)truth.good);
    cr_assert_eq(kpi_field(group, "bytes"), truth.bytes, "the byte total is exact, not wrapped");
    cr_assert_eq(kpi_field(group, "revenue"), truth.revenue);
    uint64_t by_reason[KPI_BAD__COUNT] = {0};
    int headers_ok = 0;
    cr_assert_eq(kt_read_dlq(dlq, 2, 60000, by_reason, KPI_BAD__COUNT, &headers_ok), 2);
    cr_assert(headers_ok);
    cr_assert_eq(by_reason[KPI_BAD_VOLUME_OUT_OF_RANGE], 2, "dead-lettered with their reason");
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid, 60000), 0, "SIGTERM: exit 0");
    remove(out);
}

/* ---- a Redis Cluster (scripts/services.sh up redis-cluster) ---- */

static int cluster_port(void)
{
    const char *p = getenv("KPI_REDIS_CLUSTER_PORT");
    return p && *p ? atoi(p) : 7000;
}

/* A reader that follows MOVED like the sink does (sinks/redis/conn.c). */
static redisReply *cluster_cmd(struct kpi_redis_conn *c, const char *prefix, int argc,
                               const char **argv)
{
    const char *tag = strchr(prefix, '{') + 1;
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = NULL;
    int sent = 0;
    char err[256];
    int slot = kpi_crc16(tag, (size_t)(strchr(tag, '}') - tag)) & (KPI_REDIS_SLOTS - 1);
    cr_assert_eq(kpi_redis_conn_command(c, slot, argc, argv, lens, &r, &sent, err, sizeof(err)), 0,
                 "%s", err);
    return r;
}

static int64_t cluster_offsets(struct kpi_redis_conn *c, const char *group, int *agree)
{
    int64_t lo = INT64_MAX, hi = -1;
    for (uint32_t kg = 0; kg < KG; kg++) {
        char p[300], key[320];
        kpi_redis_kg_prefix(p, sizeof(p), "kpi", group, KG, kg);
        snprintf(key, sizeof(key), "%soffsets", p);
        const char *argv[] = {"HVALS", key};
        redisReply *r = cluster_cmd(c, p, 2, argv);
        int64_t n = 0;
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
            n += atoll(r->element[i]->str);
        freeReplyObject(r);
        lo = n < lo ? n : lo;
        hi = n > hi ? n : hi;
    }
    if (agree)
        *agree = lo == hi;
    return lo;
}

static int64_t cluster_field(struct kpi_redis_conn *c, const char *group, const char *field)
{
    char p[300], key[320];
    kpi_redis_value_prefix(p, sizeof(p), "kpi", group, KG, "all", "all", 3);
    snprintf(key, sizeof(key), "%skpi:24h_1h:all:all", p);
    const char *argv[] = {"HGET", key, field};
    redisReply *r = cluster_cmd(c, p, 3, argv);
    int64_t v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

/* PFCOUNT, on its master, of the 24h_1h bucket sketches of (set, value)
 * over the window's instance as of head: what its rolling hash's `active`
 * must be at rest. */
static int64_t cluster_window_pfcount(struct kpi_redis_conn *c, const char *group, const char *set,
                                      const char *value, int64_t head)
{
    char p[300], names[24][400], err[256];
    kpi_redis_value_prefix(p, sizeof(p), "kpi", group, KG, set, value, strlen(value));
    const char *argv[25] = {"PFCOUNT"};
    size_t lens[25] = {7};
    int n = 1;
    for (int64_t b = head - 23 * 3600000LL; b <= head; b += 3600000LL, n++) {
        snprintf(names[n - 1], sizeof(names[n - 1]), "%sh:24h_1h:%s:%s:%lld", p, set, value,
                 (long long)b);
        argv[n] = names[n - 1];
        lens[n] = strlen(names[n - 1]);
    }
    const char *tag = strchr(p, '{') + 1;
    int slot = kpi_crc16(tag, (size_t)(strchr(tag, '}') - tag)) & (KPI_REDIS_SLOTS - 1);
    redisReply *r = NULL;
    int sent = 0;
    cr_assert_eq(kpi_redis_conn_command(c, slot, n, argv, lens, &r, &sent, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    int64_t v = r->integer;
    freeReplyObject(r);
    return v;
}

/* What the API, the dashboard and the alerter read (cmd/lib/kpiread.c) on a
 * Redis Cluster: every key group's meta, the K leaderboards merged, a value's
 * rolling hash, a series and the alert log, each on its own master; then
 * the demo's wipe removes every key of the group from every master. */
static void readers_agree_on_the_cluster(struct kpi_redis_conn *c, const char *url,
                                         const char *group, const struct kpi_gen_truth *truth)
{
    char err[256];
    struct kpi_windows ws;
    struct kpi_dims dims;
    cr_assert_eq(kpi_windows_init(&ws, KPI_WINDOWS_DEFAULT, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(kpi_dims_init(&dims, "region,plan,segment", "region,region+plan,segment", 1000,
                               128, err, sizeof(err)),
                 0, "%s", err);
    struct kpiread_redis_conf kc = {url, "kpi", group, 5000, 2, KG};
    struct kpiread *r = kpiread_new_redis(&kc, &ws, &dims);
    cr_assert_not_null(r);
    const int day = ws.n - 1; /* 24h/1h: holds every event of the run */
    struct kpiread_meta m;
    cr_assert_eq(kpiread_meta(r, &m, err, sizeof(err)), 0, "meta: %s", err);
    cr_assert_geq(m.flushes, (uint64_t)KG, "every key group's flushes add up");
    cr_assert_neq(m.head[day], INT64_MIN);

    /* all/all: the fields a dashboard shows, as stored by the sinks */
    struct kpi_values v;
    int found = 0;
    cr_assert_eq(kpiread_hash(r, day, "all", "all", &v, &found, err, sizeof(err)), 0, "%s", err);
    cr_assert(found);
    cr_assert_eq(v.c.events, (int64_t)truth->good);
    cr_assert_eq(v.c.churns, (int64_t)truth->by_type[KPI_EV_CHURN]);
    cr_assert_eq((int64_t)v.active, cluster_field(c, group, "active"));
    cr_assert_gt(v.active, 0);
    cr_assert_eq((int64_t)v.active, cluster_window_pfcount(c, group, "all", "all", m.head[day]),
                 "all/all: active is PFCOUNT of its window's buckets, at rest");

    /* region: the K leaderboards merged, every row read from its master */
    struct kpiread_page p;
    memset(&p, 0, sizeof(p));
    cr_assert_eq(kpiread_values(r, day, "region", 0, 1000, NULL, &p, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_gt(p.n, 1, "regions spread over several key groups");
    cr_assert_eq(p.total, p.n);
    int64_t events = 0, churns = 0;
    for (size_t i = 0; i < p.n; i++) {
        events += p.rows[i].v.c.events;
        churns += p.rows[i].v.c.churns;
        cr_assert_gt(p.rows[i].v.active, 0, "%s has its active count", p.rows[i].value);
        int64_t pf = cluster_window_pfcount(c, group, "region", p.rows[i].value, m.head[day]);
        cr_assert_eq((int64_t)p.rows[i].v.active, pf,
                     "%s: active %llu, PFCOUNT of its window's buckets %lld, at rest",
                     p.rows[i].value, (unsigned long long)p.rows[i].v.active, (long long)pf);
        if (i > 0)
            cr_assert_geq(p.rows[i - 1].v.c.events, p.rows[i].v.c.events, "ranked by events");
    }
    cr_assert_eq(events, (int64_t)truth->good, "the regions' events add up to the truth");
    cr_assert_eq(churns, (int64_t)truth->by_type[KPI_EV_CHURN]);
    kpiread_page_free(&p);

    /* the series of the shortest window (the run spans ~10 s of event time,
     * inside the allowed lateness, so its buckets may not have closed), and
     * the alert log: both answer from their masters */
    struct kpiread_point pts[64];
    size_t n = 0;
    cr_assert_eq(kpiread_series(r, 0, "all", "all", pts, 64, &n, err, sizeof(err)), 0, "%s", err);
    int64_t closed = 0;
    for (size_t i = 0; i < n; i++)
        closed += pts[i].v.c.events;
    cr_assert_leq(closed, (int64_t)truth->good);
    struct kpiread_alert *alerts = NULL;
    size_t na = 7;
    cr_assert_eq(kpiread_alerts(r, NULL, 10, &alerts, &na, err, sizeof(err)), 0, "%s", err);
    free(alerts);
    cr_assert_eq(kpiread_ping(r, err, sizeof(err)), 0, "%s", err);

    cr_assert_eq(kpiread_wipe_group(r, err, sizeof(err)), 0, "%s", err);
    found = 1;
    cr_assert_eq(kpiread_hash(r, day, "all", "all", &v, &found, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(found, "the wipe removed all/all's hash");
    cr_assert_eq(cluster_offsets(c, group, NULL), 0, "the wipe removed every key group's offsets");
    kpiread_destroy(r);
    kpi_dims_fini(&dims);
}

/* The first of the cluster's six nodes from `port` that is a replica, or -1. */
static int first_replica(int port)
{
    for (int p = port; p <= port + 5; p++) {
        char q[128];
        snprintf(q, sizeof(q), "redis-cli -p %d role | head -1 | grep -qx slave", p);
        if (kt_sh(q) == 0)
            return p;
    }
    return -1;
}

Test(e2e, three_instances_share_a_redis_cluster_through_a_failover_with_exact_totals)
{
    const int port = cluster_port();
    char url[64], err[256];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    struct kpi_redis_conn c;
    memset(&c, 0, sizeof(c));
    kpi_redis_conn_init(&c, NULL);
    cr_assert_eq(kpi_redis_url_parse(url, &c.addr, err, sizeof(err)), 0, "%s", err);
    c.url = url;
    c.connect_timeout_ms = 2000;
    c.command_timeout_ms = 5000;
    char cmdline[256];
    snprintf(cmdline, sizeof(cmdline), "redis-cli -p %d cluster info | grep -q cluster_state:ok",
             port);
    cr_assert_eq(kt_sh(cmdline), 0,
                 "a Redis Cluster answers on port %d "
                 "(bash scripts/services.sh up redis-cluster)",
                 port);

    /* The third instance's seed is a replica (the address an operator
     * configured, after a failover demoted that node): it loads nothing
     * there (READONLY) and follows MOVED to the masters. */
    int seed_replica = first_replica(port);
    cr_assert_geq(seed_replica, 0, "the cluster has a replica");

    char topic[128], group[160], out[3][256];
    struct kpi_gen_truth truth;
    const uint64_t N = 200000;
    cr_assert_eq(kt_create_topic(topic, sizeof(topic), "e2e-cluster", 8), 0);
    snprintf(group, sizeof(group), "g-%s", topic);
    pid_t pid[3];
    for (int i = 0; i < 3; i++) {
        snprintf(out[i], sizeof(out[i]), "/tmp/kpi-e2e-cl-%d-%d.out", (int)getpid(), i);
        pid[i] = start_daemon_at(i == 2 ? seed_replica : port, topic, group, 0, 0, out[i]);
    }
    int64_t deadline = kpi_mono_ms() + 120000;
    while (!(file_has(out[0], "assigned") && file_has(out[1], "assigned") &&
             file_has(out[2], "assigned")) &&
           kpi_mono_ms() < deadline)
        poll_pause();
    struct kpi_gen_conf gc;
    kpi_gen_conf_defaults(&gc);
    gc.seed = 777;
    gc.start_ts_ms = (kpi_now_ms() / 3600000 - 1) * 3600000;
    gc.events_per_sec = 20000;
    memset(&truth, 0, sizeof(truth));
    cr_assert_eq(kt_produce(topic, &gc, N / 2, &truth), 0);
    deadline = kpi_mono_ms() + 120000;
    while (cluster_offsets(&c, group, NULL) < (int64_t)N / 4 && kpi_mono_ms() < deadline)
        poll_pause();

    /* A failover while they write: a replica takes over from its master
     * (CLUSTER FAILOVER waits until it has every write); the old master
     * becomes its replica and answers MOVED to what the sinks send it. */
    int replica = first_replica(port);
    cr_assert_geq(replica, 0, "the cluster has a replica");
    char q[160], promoted[160];
    snprintf(q, sizeof(q), "redis-cli -p %d cluster failover | grep -q OK", replica);
    cr_assert_eq(kt_sh(q), 0, "CLUSTER FAILOVER on port %d", replica);
    snprintf(promoted, sizeof(promoted), "redis-cli -p %d role | head -1 | grep -qx master",
             replica);
    deadline = kpi_mono_ms() + 60000;
    while (kt_sh(promoted) != 0 && kpi_mono_ms() < deadline)
        poll_pause();
    cr_assert_eq(kt_sh(promoted), 0, "port %d is a master now", replica);

    cr_assert_eq(kt_produce(topic, &gc, N - N / 2, &truth), 0);
    deadline = kpi_mono_ms() + 240000;
    while (cluster_offsets(&c, group, NULL) < (int64_t)N && kpi_mono_ms() < deadline)
        poll_pause();
    for (int i = 0; i < 3; i++) {
        kill(pid[i], SIGTERM);
        cr_assert_eq(wait_exit(pid[i], 60000), 0, "instance %d: SIGTERM, exit 0", i);
        cr_assert_gt(flushed_of(out[i]), 0, "instance %d wrote events", i);
    }
    int agree = 0;
    cr_assert_eq(cluster_offsets(&c, group, &agree), (int64_t)N);
    cr_assert(agree, "every key group stored the same offsets");
    cr_assert_eq(cluster_field(&c, group, "events"), (int64_t)truth.good);
    cr_assert_eq(cluster_field(&c, group, "revenue"), truth.revenue);
    cr_assert_eq(cluster_field(&c, group, "churns"), (int64_t)truth.by_type[KPI_EV_CHURN]);
    cr_assert_eq(cluster_field(&c, group, "activations"),
                 (int64_t)truth.by_type[KPI_EV_ACTIVATION]);
    readers_agree_on_the_cluster(&c, url, group, &truth);
    kpi_redis_conn_fini(&c);
    kpi_redis_addr_fini(&c.addr);
    for (int i = 0; i < 3; i++)
        remove(out[i]);
}

/* A sink that keeps failing (FCALL denied: NOPERM) is retried many times;
 * the cause is logged once when it starts and once when it ends, counted by
 * reason in /metrics, and given by /healthz. */
Test(e2e, flush_errors_are_logged_once_per_cause_and_counted_by_reason)
{
    char topic[128], group[160], out[256], errpath[300];
    struct kpi_gen_truth truth;
    const uint64_t N = 100000;
    produce("e2e-errs", topic, sizeof(topic), group, sizeof(group), N, 0, &truth);
    snprintf(out, sizeof(out), "/tmp/kpi-e2e-errs-%d.out", (int)getpid());
    snprintf(errpath, sizeof(errpath), "%s.err", out);
    redis_do("ACL SETUSER default -fcall");
    int port = free_port();
    static const char *const extra[] = {"engine.retry_max=100ms", NULL};
    pid_t pid = start_daemon_x(topic, group, port, 0, out, extra);
    double errors = 0;
    int64_t deadline = kpi_mono_ms() + 120000;
    while (errors < 5 && kpi_mono_ms() < deadline) {
        char *m = http_get(port, "/metrics");
        int ok = 1;
        if (m && strstr(m, "kpistream_flush_errors_total{reason=\"noperm\"} "))
            errors = metric_sum(m, "kpistream_flush_errors_total", &ok);
        free(m);
        poll_pause();
    }
    cr_assert_geq(errors, 5, "failed attempts are counted under reason=\"noperm\"");
    char *h = http_get(port, "/healthz");
    cr_assert(h && strstr(h, " 503 ") && strstr(h, "NOPERM"), "healthz says why: %s", h ? h : "");
    free(h);

    redis_do("ACL SETUSER default +@all");
    wait_offsets(group, (int64_t)N, 180000);
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid, 60000), 0);
    cr_assert_eq(kpi_field(group, "events"), (int64_t)truth.good);
    char *log = slurp(errpath);
    cr_assert_eq(kt_count_of(log, "flushes failing (noperm)"), 1, "logged once: %s", log);
    cr_assert_eq(kt_count_of(log, "NOPERM"), 1, "the cause is in that line: %s", log);
    cr_assert_eq(kt_count_of(log, "flushes applied again"), 1, "and the recovery once: %s", log);
    free(log);
    remove(out);
    remove(errpath);
}

static long long redis_int(const char *cmd, const char *key)
{
    redisReply *r = redisCommand(rc, cmd, key);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

/* `kpistream --demo --config prod.ini` used prod.ini's group id to wipe
 * "<prefix>:{<group>}:*" (offsets included), and a group id with glob
 * characters widened the match.  The demo touches only its own keys. */
Test(e2e, the_demo_never_touches_keys_outside_its_own_prefix_and_group)
{
    char ini[256], out[256];
    snprintf(ini, sizeof(ini), "/tmp/kpi-demo-prod-%d.ini", (int)getpid());
    snprintf(out, sizeof(out), "/tmp/kpi-demo-%d.out", (int)getpid());
    FILE *f = fopen(ini, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[kafka]\ngroup.id = prod*\n[redis]\nurl = redis://127.0.0.1:%d\nprefix = kpi\n"
            "[http]\nport = 0\n",
            srv.port);
    fclose(f);
    static const char *const prod[] = {"kpi:{prod*}:offsets", "kpi:{prod}:offsets",
                                       "kpi:{production}:kpi:1m_5s:all:all"};
    for (int i = 0; i < 3; i++)
        freeReplyObject(redisCommand(rc, "HSET %s events:0 12345", prod[i]));
    freeReplyObject(redisCommand(rc, "SET kpi-demo:{kpistream-demo}:stale 1"));

    pid_t pid = fork();
    if (pid == 0) {
        FILE *o = freopen(out, "w", stdout);
        (void)o;
        execl(KPI_BINARY_DIR "/kpistream", "kpistream", "--demo", "--duration", "2", "--config",
              ini, (char *)NULL);
        _exit(127);
    }
    cr_assert_eq(wait_exit(pid, 120000), 0, "the demo ran and stopped");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(redis_int("EXISTS %s", prod[i]), 1, "%s is untouched", prod[i]);
    cr_assert_eq(redis_int("EXISTS %s", "kpi-demo:{kpistream-demo}:stale"), 0,
                 "the demo's own stale keys are wiped");
    remove(ini);
    remove(out);
}

/* ---- secrets and the Redis ACL of docker-compose.yml ---- */

/* A redis-server of its own, started with `aclfile`; its pid. */
static pid_t start_acl_redis(int port, const char *aclfile, const char *dir)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen("/dev/null", "w", stdout);
        (void)f;
        execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--aclfile",
               aclfile, "--dir", dir, "--save", "", "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static redisContext *connect_until(int port, int64_t timeout_ms)
{
    int64_t deadline = kpi_mono_ms() + timeout_ms;
    for (;;) {
        redisContext *c = redisConnect("127.0.0.1", port);
        if (c && !c->err)
            return c;
        if (c)
            redisFree(c);
        if (kpi_mono_ms() >= deadline)
            return NULL;
        poll_pause();
    }
}

/* The ACL docker-compose.yml gives Redis (scripts/redis-acl.sh), on a real
 * redis-server: nobody gets in without the password, and kpistream, with
 * the user in redis.url and the password in redis.password_file, counts
 * exactly.  The password has characters a URL must escape. */
Test(e2e, the_compose_redis_acl_and_a_password_file_count_exactly)
{
    char topic[128], group[160], out[256], dir[128], pw[160], acl[160], cmd[512];
    struct kpi_gen_truth truth;
    const uint64_t N = 50000;
    produce("e2e-acl", topic, sizeof(topic), group, sizeof(group), N, 0, &truth);
    snprintf(dir, sizeof(dir), "/tmp/kpi-acl-%d", (int)getpid());
    snprintf(pw, sizeof(pw), "%s/redis_password", dir);
    snprintf(acl, sizeof(acl), "%s/users.acl", dir);
    snprintf(out, sizeof(out), "%s/kpistream.out", dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && printf 's3cr:et@/x%%%%\\n' > %s", dir, pw);
    cr_assert_eq(kt_sh(cmd), 0);
    snprintf(cmd, sizeof(cmd), "sh scripts/redis-acl.sh %s > %s", pw, acl);
    cr_assert_eq(kt_sh(cmd), 0);
    int port = free_port();
    pid_t redis = start_acl_redis(port, acl, dir);
    redisContext *c = connect_until(port, 30000);
    cr_assert_not_null(c, "the ACL'd redis-server answers");
    redisReply *r = redisCommand(c, "GET kpi:x");
    cr_assert(r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOAUTH"),
              "no password, no entry");
    freeReplyObject(r);
    r = redisCommand(c, "AUTH kpistream %s", "s3cr:et@/x%");
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "the user logs in with the file's password");
    freeReplyObject(r);
    r = redisCommand(c, "SET other:x 1");
    cr_assert(r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOPERM"), "keys outside kpi:*");
    freeReplyObject(r);
    r = redisCommand(c, "FLUSHALL");
    cr_assert(r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOPERM"),
              "no dangerous command");
    freeReplyObject(r);

    char url[128], pwx[200];
    snprintf(url, sizeof(url), "redis.url=redis://kpistream@127.0.0.1:%d", port);
    snprintf(pwx, sizeof(pwx), "redis.password_file=%s", pw);
    const char *extra[] = {url, pwx, NULL};
    pid_t pid = start_daemon_x(topic, group, 0, 1, out, extra);
    int rc_exit = wait_exit(pid, 240000);
    char vp[256];
    kpi_redis_value_prefix(vp, sizeof(vp), "kpi", group, KG, "all", "all", 3);
    r = redisCommand(c, "HGET %skpi:24h_1h:all:all events", vp);
    long long events = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    redisFree(c);
    kill(redis, SIGTERM);
    waitpid(redis, NULL, 0);
    cr_assert_eq(rc_exit, 0, "kpistream ran to the end through the ACL user");
    cr_assert_eq(events, (long long)truth.good, "exactly once");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    kt_sh(cmd);
}

/* A secret given with -X is blanked from /proc/<pid>/cmdline (what ps shows)
 * as soon as the configuration has its copy, with a warning. */
Test(e2e, a_secret_given_on_the_command_line_is_blanked_from_ps)
{
    char out[256], errpath[300], proc[64];
    snprintf(out, sizeof(out), "/tmp/kpi-e2e-argv-%d.out", (int)getpid());
    snprintf(errpath, sizeof(errpath), "%s.err", out);
    static const char *const extra[] = {"kafka.sasl.password=hunter2-secret", NULL};
    pid_t pid = start_daemon_x("argv-topic", "argv-group", 0, 0, out, extra);
    snprintf(proc, sizeof(proc), "/proc/%d/cmdline", (int)pid);
    int seen_kpistream = 0, secret = 1;
    int64_t deadline = kpi_mono_ms() + 30000;
    while (kpi_mono_ms() < deadline && (secret || !seen_kpistream)) {
        FILE *f = fopen(proc, "r");
        char buf[4096];
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        for (size_t i = 0; i < n; i++)
            buf[i] = buf[i] ? buf[i] : ' ';
        buf[n] = '\0';
        seen_kpistream = strstr(buf, "kafka.sasl.password=") != NULL;
        secret = strstr(buf, "hunter2") != NULL;
        if (secret || !seen_kpistream)
            poll_pause();
    }
    kill(pid, SIGTERM);
    wait_exit(pid, 60000);
    cr_assert(seen_kpistream, "the argument is still there");
    cr_assert_not(secret, "but not its value");
    char *log = slurp(errpath);
    cr_assert(strstr(log, "visible in ps"), "%s", log);
    free(log);
    remove(out);
    remove(errpath);
}

/* kpistream over the broker's SASL_SSL listener, the password read from a
 * file (kafka.sasl.password_file), never the command line: exact totals. */
Test(e2e, kafka_over_sasl_ssl_with_a_password_file_counts_exactly)
{
    char topic[128], group[160], out[256];
    struct kpi_gen_truth truth;
    const uint64_t N = 50000;
    produce("e2e-sasl", topic, sizeof(topic), group, sizeof(group), N, 0.01, &truth);
    snprintf(out, sizeof(out), "/tmp/kpi-e2e-sasl-%d.out", (int)getpid());
    char brokers[128], pwfile[600], ca[600];
    snprintf(brokers, sizeof(brokers), "kafka.bootstrap.servers=%s", kt_sasl_brokers());
    snprintf(pwfile, sizeof(pwfile), "kafka.sasl.password_file=%s", kt_tls_file("kafka_password"));
    snprintf(ca, sizeof(ca), "kafka.ssl.ca.location=%s", kt_tls_file("ca.pem"));
    const char *extra[] = {brokers,
                           "kafka.security.protocol=SASL_SSL",
                           "kafka.sasl.mechanisms=PLAIN",
                           "kafka.sasl.username=kpi",
                           pwfile,
                           ca,
                           NULL};
    pid_t pid = start_daemon_x(topic, group, 0, 1, out, extra);
    cr_assert_eq(wait_exit(pid, 240000), 0, "ran to the end over SASL_SSL");
    cr_assert_eq(stored_offsets(group), (int64_t)N);
    cr_assert_eq(kpi_field(group, "events"), (int64_t)truth.good, "exactly once");
    char errpath[300];
    snprintf(errpath, sizeof(errpath), "%s.err", out);
    remove(out);
    remove(errpath);
}
