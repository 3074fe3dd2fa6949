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

#include "engine.h"
#include "kafka_util.h"
#include "redis_server.h"

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

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* Start build/kpistream with the test's settings and `extra` more -X
 * settings (NULL-terminated, may be NULL); stdout to `out`, stderr to
 * `<out>.err`. */
static pid_t start_daemon_x(const char *topic, const char *group, int http_port, int exit_on_eof,
                            const char *out, const char *const *extra)
{
    char x[6][256];
    snprintf(x[0], sizeof(x[0]), "kafka.topics=%s", topic);
    snprintf(x[1], sizeof(x[1]), "kafka.group.id=%s", group);
    snprintf(x[2], sizeof(x[2]), "redis.url=redis://127.0.0.1:%d", srv.port);
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

static int64_t stored_offsets(const char *group)
{
    redisReply *r = redisCommand(rc, "HVALS kpi:{%s}:offsets", group);
    int64_t n = 0;
    if (r && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            n += atoll(r->element[i]->str);
    if (r)
        freeReplyObject(r);
    return n;
}

static int64_t kpi_field(const char *group, const char *field)
{
    redisReply *r = redisCommand(rc, "HGET kpi:{%s}:kpi:24h_1h:all:all %s", group, field);
    int64_t v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

static void wait_offsets(const char *group, int64_t n, int64_t timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    while (stored_offsets(group) < n && mono_ms() < deadline)
        poll_pause();
}

static int wait_exit(pid_t pid, int64_t timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    int st;
    while (mono_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        poll_pause();
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

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
    memset(truth, 0, sizeof(*truth));
    cr_assert_eq(kt_produce(topic, &gc, n, truth), 0);
}

Test(e2e, sigkill_mid_stream_then_restart_leaves_exact_totals)
{
    char topic[128], group[160], out[256];
    struct kpi_gen_truth truth;
    const uint64_t N = 400000;
    produce("e2e-kill", topic, sizeof(topic), group, sizeof(group), N, 0, &truth);
    snprintf(out, sizeof(out), "/tmp/kpi-e2e-%d.out", (int)getpid());

    pid_t pid = start_daemon(topic, group, 0, 0, out);
    wait_offsets(group, (int64_t)N / 4, 120000);
    int64_t before = stored_offsets(group);
    cr_assert_gt(before, 0, "the first run flushed something before the kill");
    cr_assert_lt(before, (int64_t)N, "and was killed mid-stream");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    pid = start_daemon(topic, group, 0, 1, out);
    cr_assert_eq(wait_exit(pid, 240000), 0, "the restart ran to the end and exited 0");
    cr_assert_eq(stored_offsets(group), (int64_t)N);
    cr_assert_eq(kpi_field(group, "events"), (int64_t)truth.good,
                 "Redis holds every event exactly once");
    cr_assert_eq(kpi_field(group, "revenue"), truth.revenue);
    cr_assert_eq(kpi_field(group, "churns"), (int64_t)truth.by_type[KPI_EV_CHURN]);
    cr_assert_eq(kpi_field(group, "activations"), (int64_t)truth.by_type[KPI_EV_ACTIVATION]);
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
    int64_t deadline = mono_ms() + timeout_ms;
    while (mono_ms() < deadline) {
        char *m = http_get(port, "/metrics");
        int found = m && strstr(m, needle);
        free(m);
        if (found)
            return 1;
        poll_pause();
    }
    return 0;
}

/* The sink cannot write (an ACL refuses EVALSHA: NOPERM, retried for ever)
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
    redis_do("ACL SETUSER default -evalsha");
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

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* A sink that keeps failing (EVALSHA denied: NOPERM) is retried many times;
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
    redis_do("ACL SETUSER default -evalsha");
    int port = free_port();
    static const char *const extra[] = {"engine.retry_max=100ms", NULL};
    pid_t pid = start_daemon_x(topic, group, port, 0, out, extra);
    double errors = 0;
    int64_t deadline = mono_ms() + 120000;
    while (errors < 5 && mono_ms() < deadline) {
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
    cr_assert_eq(count_of(log, "flushes failing (noperm)"), 1, "logged once: %s", log);
    cr_assert_eq(count_of(log, "NOPERM"), 1, "the cause is in that line: %s", log);
    cr_assert_eq(count_of(log, "flushes applied again"), 1, "and the recovery once: %s", log);
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
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        redisContext *c = redisConnect("127.0.0.1", port);
        if (c && !c->err)
            return c;
        if (c)
            redisFree(c);
        if (mono_ms() >= deadline)
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
    r = redisCommand(c, "HGET kpi:{%s}:kpi:24h_1h:all:all events", group);
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
    int64_t deadline = mono_ms() + 30000;
    while (mono_ms() < deadline && (secret || !seen_kpistream)) {
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
