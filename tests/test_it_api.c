/*
 * The KPI HTTP API (docs/api.md) over a private redis-server, written by the
 * real Redis sink through the engine (so this test does not depend on the
 * key layout), served by the real HTTP server on a free port:
 *  - every endpoint, and every bad parameter answered 400 naming it;
 *  - 1 000 values page through limit/offset with nothing lost or repeated;
 *  - 503 when Redis is down;
 *  - the event stream reaches 50 concurrent clients, refuses the 51st, and
 *    a client that never reads is disconnected without holding memory or
 *    stalling a client that reads.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cmd/lib/api.h"
#include "base/clock.h"
#include "engine/engine.h"
#include "engine/hll.h"
#include "cmd/lib/kpiread.h"
#include "cmd/lib/metrics.h"
#include "sinks/redis.h"
#include "support/http_client.h"
#include "support/redis_server.h"
#include "support/text.h"
#include "support/worker_flush.h"
#include "cmd/lib/sse.h"

#define T0      1700000040000LL /* a whole minute */
#define N_SITES 1000

static struct kpi_test_redis srv;
static struct kpi_engine *eng;
static struct kpi_sink sink;
static struct kpiread *store;
static struct kpi_sse *hub;
static struct kpi_api *api;
static struct kpi_metrics *http;
static int port;

static void poll_pause(void)
{
    struct timespec ts = {0, 10000000}; /* polling interval, not synchronisation */
    nanosleep(&ts, NULL);
}

/* ---- the server under test ---- */

static void start_server(int sse_max_clients, unsigned timeout_s)
{
    char err[256], url[64];
    cr_assert_eq(kpi_test_redis_start(&srv, err, sizeof(err)), 0, "%s", err);
    struct kpi_engine_conf c;
    kpi_engine_conf_defaults(&c);
    c.dims = "site,segment";
    c.sets = "site,segment";
    c.windows = "1m/5s,1h/1m";
    c.n_workers = 1;
    c.lateness_ms = 0;
    c.retry_min_ms = 5;
    c.retry_max_ms = 50;
    eng = kpi_engine_new(&c, err, sizeof(err));
    cr_assert_not_null(eng, "%s", err);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", srv.port);
    struct kpi_redis_conf rc;
    kpi_redis_conf_defaults(&rc);
    rc.url = url;
    rc.active_refresh_ms = 0;
    sink = kpi_sink_redis_new(&rc, err, sizeof(err));
    cr_assert_not_null(sink.ops, "%s", err);
    struct kpi_flush_target t = kpi_sink_target(&sink);
    kpi_engine_set_target(eng, &t);
    struct kpiread_redis_conf kc = {url, "kpi", "kpistream", 1000, 4};
    store = kpiread_new_redis(&kc, kpi_engine_windows(eng), kpi_engine_dims(eng));
    hub = kpi_sse_new(64, 256 * 1024, sse_max_clients, 60000);
    struct kpi_api_conf ac = {"kpistream", "1m_5s", 1000, 50, 50};
    api = kpi_api_new(&ac, store, kpi_engine_windows(eng), kpi_engine_dims(eng), hub);
    cr_assert(store && hub && api);
    cr_assert_eq(kpi_api_start(api), 0);
    struct kpi_http_conf hc = {"127.0.0.1", -1, 512, timeout_s, 2};
    http = kpi_metrics_start(&hc, eng, err, sizeof(err));
    cr_assert_not_null(http, "%s", err);
    kpi_metrics_set_api(http, api, hub);
    port = kpi_metrics_port(http);
    cr_assert_gt(port, 0);
}

static void up(void)
{
    start_server(50, 2);
}

static void down(void)
{
    kpi_metrics_stop(http);
    kpi_api_destroy(api);
    kpi_sse_destroy(hub);
    kpiread_destroy(store);
    kpi_engine_destroy(eng);
    kpi_sink_destroy(&sink);
    kpi_test_redis_destroy(&srv);
}

TestSuite(api, .init = up, .fini = down, .timeout = 240);

/* ---- data: through the engine and the real sink ---- */

static const char *segments[] = {"youth", "consumer", "quiet"};

static void flush_from_worker(struct kpi_worker *w)
{
    cr_assert_eq(kt_flush_from_worker(eng, w, 60000), 0, "flush failed");
}

/* Site s<i> gets 1 + i % 5 usage events (subscriber i) at T0 + (i % 12) * 5 s.
 * Segment youth: usage and churns; consumer: usage and NPS answers of both
 * surveys; quiet: usage only (so its NPS are undefined).  A last event at
 * T0 + 70 s closes the 1m/5s buckets before it. */
static void load_data(void)
{
    struct kpi_worker *w = kpi_engine_worker(eng, 0);
    int in = kpi_engine_input_open(eng, "events", 0, 0, 0);
    cr_assert_geq(in, 0);
    int64_t off = 0;
    for (int i = 0; i < N_SITES; i++) {
        char site[16], sub[16];
        snprintf(site, sizeof(site), "s%04d", i);
        int sl = snprintf(sub, sizeof(sub), "%d", i);
        const char *seg = segments[i % 3];
        for (int k = 0; k < 1 + i % 5; k++) {
            struct kpi_event ev;
            memset(&ev, 0, sizeof(ev));
            ev.type = KPI_EV_USAGE;
            if (i % 3 == 0 && k == 1)
                ev.type = KPI_EV_CHURN;
            if (i % 3 == 1 && k >= 1) {
                ev.type = KPI_EV_NPS;
                ev.score = (uint8_t)(k * 3);
                ev.survey = (uint8_t)(k % 2);
            }
            ev.ts_ms = T0 + (i % 12) * 5000 + k;
            ev.sub_hash = kpi_hll_hash(sub, (size_t)sl);
            ev.amount_micros = ev.type == KPI_EV_USAGE ? 1000000 : 0;
            ev.dims[0].ptr = site;
            ev.dims[0].len = (uint32_t)strlen(site);
            ev.dims[1].ptr = seg;
            ev.dims[1].len = (uint32_t)strlen(seg);
            cr_assert_eq(kpi_worker_add(w, in, off++, &ev), KPI_BAD_NONE);
        }
    }
    struct kpi_event last;
    memset(&last, 0, sizeof(last));
    last.type = KPI_EV_ACTIVATION;
    last.ts_ms = T0 + 70000;
    last.sub_hash = kpi_hll_hash("x", 1);
    last.dims[0].ptr = "s9999";
    last.dims[0].len = 5;
    last.dims[1].ptr = "quiet";
    last.dims[1].len = 5;
    cr_assert_eq(kpi_worker_add(w, in, off++, &last), KPI_BAD_NONE);
    kpi_worker_checkpoint(w);
    flush_from_worker(w);
}

/* GET path from the server under test; the status, *body malloc'd. */
static int get(const char *path, char **body)
{
    int status = kt_http_get(port, path, body);
    cr_assert_neq(status, -1, "GET %s: no connection", path);
    return status;
}

static long long json_int(const char *body, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(body, pat);
    cr_assert_not_null(p, "no %s in %s", key, body);
    return strtoll(p + strlen(pat), NULL, 10);
}

/* ---- endpoints ---- */

Test(api, meta_names_the_windows_sets_and_group_clock)
{
    load_data();
    char *b;
    cr_assert_eq(get("/api/v1/meta", &b), 200, "%s", b);
    KT_ASSERT_CONTAINS(b, "\"store\":\"redis\"", "\"id\":\"1m_5s\",\"name\":\"1m/5s\"",
                       "\"sets\":[\"all\",\"site\",\"segment\"]");
    cr_assert_eq(json_int(b, "watermark_ms"), T0 + 70000);
    cr_assert_gt(json_int(b, "flushes"), 0);
    free(b);
}

Test(api, kpis_are_sorted_by_events_with_undefined_kpis_as_null)
{
    load_data();
    char *b;
    cr_assert_eq(get("/api/v1/kpis?window=1h_1m&set=segment", &b), 200, "%s", b);
    cr_assert_eq(json_int(b, "total"), 3, "%s", b); /* youth, consumer, quiet */
    free(b);
    cr_assert_eq(get("/api/v1/kpis?window=1h/1m&set=segment&q=QUI", &b), 200, "%s", b);
    cr_assert_eq(json_int(b, "total"), 1, "%s", b);
    KT_ASSERT_CONTAINS(b, "\"value\":\"quiet\"", "\"nps_network\":null,\"nps_brand\":null",
                       "\"churn_rate\":0,");
    /* every counter and KPI of engine/kpi_schema.h reaches the API */
    KT_ASSERT_CONTAINS(b, "\"provisioned\":0,", "\"time_to_provision_ms\":null");
    free(b);
    /* consumer: 1000/3 sites, answers of both surveys; youth: churns. */
    cr_assert_eq(get("/api/v1/kpis?window=1h_1m&set=segment&q=youth", &b), 200, "%s", b);
    long long events = 0, churns = 0;
    for (int i = 0; i < N_SITES; i += 3) {
        events += 1 + i % 5;
        churns += (1 + i % 5) >= 2;
    }
    cr_assert_eq(json_int(b, "events"), events, "%s", b);
    cr_assert_eq(json_int(b, "churns"), churns, "%s", b);
    double rate = strtod(strstr(b, "\"churn_rate\":") + 13, NULL);
    double active = (double)json_int(b, "active");
    cr_assert_float_eq(rate, (double)churns / active, 1e-9, "%s", b);
    free(b);
    cr_assert_eq(get("/api/v1/kpis?window=1h_1m&set=all", &b), 200, "%s", b);
    cr_assert(strstr(b, "\"values\":[{\"value\":\"all\",\"events\":"), "%s", b);
    free(b);
}

Test(api, one_thousand_values_page_through_without_loss_or_repeat)
{
    load_data();
    static char seen[N_SITES + 1];
    memset(seen, 0, sizeof(seen));
    long long prev_events = 1LL << 62;
    int rows = 0;
    for (int off = 0; off < N_SITES + 1; off += 97) {
        char path[128], *b;
        snprintf(path, sizeof(path), "/api/v1/kpis?window=1h_1m&set=site&limit=97&offset=%d", off);
        cr_assert_eq(get(path, &b), 200, "%s", b);
        cr_assert_eq(json_int(b, "total"), N_SITES + 1, "%s", b);
        for (const char *p = strstr(b, "{\"value\":\""); p; p = strstr(p + 1, "{\"value\":\"")) {
            int idx;
            cr_assert_eq(sscanf(p, "{\"value\":\"s%d\"", &idx), 1);
            long long ev = json_int(p, "events");
            cr_assert_leq(ev, prev_events, "not sorted by events at %d", idx);
            prev_events = ev;
            if (idx == 9999)
                idx = N_SITES;
            else
                cr_assert_eq(ev, 1 + idx % 5, "s%04d", idx);
            cr_assert_eq(seen[idx], 0, "s%04d twice", idx);
            seen[idx] = 1;
            rows++;
        }
        free(b);
    }
    cr_assert_eq(rows, N_SITES + 1);
}

Test(api, series_gives_closed_buckets_oldest_first)
{
    load_data();
    char *b;
    cr_assert_eq(get("/api/v1/series?window=1m_5s&set=all&points=5", &b), 200, "%s", b);
    /* buckets T0 .. T0+55s have data and are closed by T0+70s; the last 5 */
    long long want = T0 + 35000;
    int n = 0;
    for (const char *p = strstr(b, "{\"bucket\":"); p; p = strstr(p + 1, "{\"bucket\":")) {
        cr_assert_eq(json_int(p, "bucket"), want, "%s", b);
        cr_assert_eq(json_int(p, "end"), want + 5000);
        want += 5000;
        n++;
    }
    cr_assert_eq(n, 5, "%s", b);
    free(b);
    cr_assert_eq(get("/api/v1/series?window=1m_5s&set=site&value=s0013", &b), 200, "%s", b);
    /* s0013: 4 events at T0 + 5 s (13 % 12 = 1) */
    cr_assert_eq(json_int(b, "bucket"), T0 + 5000, "%s", b);
    cr_assert_eq(json_int(b, "events"), 4, "%s", b);
    cr_assert_null(strstr(strstr(b, "\"bucket\":") + 1, "\"bucket\":"), "%s", b);
    free(b);
    cr_assert_eq(get("/api/v1/series?window=1h_1m&set=site&value=nowhere", &b), 200, "%s", b);
    cr_assert(strstr(b, "\"points\":[]}"), "a value without data has no point: %s", b);
    free(b);
    cr_assert_eq(get("/api/v1/kpis?window=1h_1m&set=segment&q=zzz", &b), 200, "%s", b);
    cr_assert(strstr(b, "\"total\":0,") && strstr(b, "\"values\":[]}"), "%s", b);
    free(b);
}

/* A raise for segment=youth over 1m/5s. */
static struct kpiread_alert youth_raised(void)
{
    struct kpiread_alert a;
    memset(&a, 0, sizeof(a));
    snprintf(a.window, sizeof(a.window), "1m_5s");
    snprintf(a.set, sizeof(a.set), "segment");
    snprintf(a.value, sizeof(a.value), "youth");
    a.raised = 1;
    return a;
}

Test(api, alerts_list_newest_first)
{
    load_data();
    struct kpiread_alert a = youth_raised();
    a.rate = 0.25;
    a.bucket_end = T0 + 60000;
    char err[256];
    cr_assert_eq(kpiread_alert_record(store, &a, "{}", "alerts", 1000, err, sizeof(err)), 1);
    /* Another instance of the group: already recorded. */
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", srv.port);
    struct kpiread_redis_conf kc = {url, "kpi", "kpistream", 1000, 1};
    struct kpiread *other = kpiread_new_redis(&kc, kpi_engine_windows(eng), kpi_engine_dims(eng));
    cr_assert_eq(kpiread_alert_record(other, &a, "{}", "alerts", 1000, err, sizeof(err)), 0,
                 "an alert is recorded once per group");
    kpiread_destroy(other);
    /* This instance again (a retry after a lost reply): its own mark, so it
     * delivers, but the log keeps one entry (checked below: one raised). */
    cr_assert_eq(kpiread_alert_record(store, &a, "{}", "alerts", 1000, err, sizeof(err)), 1);
    a.raised = 0;
    a.bucket_end = T0 + 65000;
    cr_assert_eq(kpiread_alert_record(store, &a, "{}", "alerts", 1000, err, sizeof(err)), 1);
    char *b;
    cr_assert_eq(get("/api/v1/alerts?limit=50", &b), 200, "%s", b);
    const char *r1 = strstr(b, "\"state\":\"resolved\""), *r2 = strstr(b, "\"state\":\"raised\"");
    cr_assert(r1 && r2 && r1 < r2, "%s", b);
    cr_assert_null(strstr(r2 + 1, "\"state\":\"raised\""), "one raised entry: %s", b);
    cr_assert(strstr(b, "\"value\":\"youth\""), "%s", b);
    free(b);
    cr_assert_eq(get("/api/v1/alerts?limit=1", &b), 200, "%s", b);
    cr_assert_null(strstr(b, "\"state\":\"raised\""), "%s", b);
    free(b);
}

Test(api, every_bad_parameter_is_400_naming_it)
{
    static const struct {
        const char *path, *param;
    } cases[] = {
        {"/api/v1/kpis", "window"},
        {"/api/v1/kpis?window=2h_1m", "window"},
        {"/api/v1/kpis?window=1h_1m&set=planet", "set"},
        {"/api/v1/kpis?window=1h_1m&limit=0", "limit"},
        {"/api/v1/kpis?window=1h_1m&limit=1001", "limit"},
        {"/api/v1/kpis?window=1h_1m&limit=ten", "limit"},
        {"/api/v1/kpis?window=1h_1m&limit=-5", "limit"},
        {"/api/v1/kpis?window=1h_1m&offset=-1", "offset"},
        {"/api/v1/kpis?window=1h_1m&offset=1x", "offset"},
        {"/api/v1/"
         "kpis?window=1h_1m&q=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "q"},
        {"/api/v1/kpis?window=1h_1m&colour=red", "colour"},
        {"/api/v1/kpis?window=1h_1m&window=1m_5s", "window"},
        {"/api/v1/series?set=site&value=s0001", "window"},
        {"/api/v1/series?window=1m_5s&set=site", "value"},
        {"/api/v1/series?window=1m_5s&set=nope&value=x", "set"},
        {"/api/v1/series?window=1m_5s&points=0", "points"},
        {"/api/v1/series?window=1m_5s&points=5000", "points"},
        {"/api/v1/series?window=1m_5s&from=3", "from"},
        {"/api/v1/alerts?limit=0", "limit"},
        {"/api/v1/alerts?limit=x", "limit"},
        {"/api/v1/alerts?since=1", "since"},
        {"/api/v1/meta?x=1", "x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *b, want[64];
        int st = get(cases[i].path, &b);
        cr_assert_eq(st, 400, "%s: %d %s", cases[i].path, st, b);
        snprintf(want, sizeof(want), "\"parameter\":\"%s\"", cases[i].param);
        cr_assert(strstr(b, want), "%s: %s", cases[i].path, b);
        cr_assert(strstr(b, "\"error\":\""), "%s", b);
        free(b);
    }
    char *b;
    cr_assert_eq(get("/api/v1/nothing", &b), 404, "%s", b);
    free(b);
}

Test(api, redis_down_is_503_and_recovers)
{
    load_data();
    char *b;
    cr_assert_eq(get("/api/v1/kpis?window=1h_1m&set=segment", &b), 200, "%s", b);
    free(b);
    kpi_test_redis_stop(&srv);
    cr_assert_eq(get("/api/v1/kpis?window=1h_1m&set=segment", &b), 503, "%s", b);
    cr_assert(strstr(b, "\"error\":\"redis"), "%s", b);
    free(b);
    cr_assert_eq(get("/api/v1/meta", &b), 503, "%s", b);
    free(b);
    char err[256];
    cr_assert_eq(kpi_test_redis_start_again(&srv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(get("/api/v1/kpis?window=1h_1m&set=segment", &b), 200, "%s", b);
    free(b);
}

Test(api, the_page_and_metrics_are_served_beside_the_api)
{
    char *b;
    cr_assert_eq(get("/", &b), 200);
    KT_ASSERT_CONTAINS(b, "<html", "/app.js");
    free(b);
    cr_assert_eq(get("/app.js", &b), 200);
    cr_assert(strstr(b, "/api/v1/events"), "the page listens to the event stream");
    free(b);
    cr_assert_eq(get("/style.css", &b), 200);
    free(b);
    cr_assert_eq(get("/nothing.js", &b), 404);
    free(b);
    cr_assert_eq(get("/metrics", &b), 200);
    KT_ASSERT_CONTAINS(b, "kpistream_api_requests_total", "kpistream_sse_clients 0");
    free(b);
}

/* ---- the event stream ---- */

struct stream {
    int fd;
    char buf[65536];
    size_t len;
};

static void stream_open(struct stream *s)
{
    s->fd = kt_http_connect(port);
    cr_assert_geq(s->fd, 0);
    s->len = 0;
    cr_assert_eq(kt_http_send_get(s->fd, "/api/v1/events"), 0);
}

/* Read what is there; 0 when the peer closed. */
static int stream_read(struct stream *s)
{
    if (s->len + 1 >= sizeof(s->buf)) /* keep the tail: events are found at the end */
    {
        memmove(s->buf, s->buf + sizeof(s->buf) / 2, s->len - sizeof(s->buf) / 2);
        s->len -= sizeof(s->buf) / 2;
    }
    ssize_t n = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len - 1, MSG_DONTWAIT);
    if (n == 0)
        return 0;
    if (n > 0) {
        s->len += (size_t)n;
        s->buf[s->len] = '\0';
    }
    return 1;
}

static int stream_has(struct stream *s, const char *what)
{
    s->buf[s->len] = '\0';
    return strstr(s->buf, what) != NULL;
}

static uint64_t sse_clients(void)
{
    struct kpi_sse_stats st;
    kpi_sse_get_stats(hub, &st);
    return st.clients;
}

Test(api, events_reach_fifty_clients_and_the_fifty_first_is_refused)
{
    static struct stream s[50];
    for (int i = 0; i < 50; i++)
        stream_open(&s[i]);
    int64_t deadline = kpi_mono_ms() + 20000;
    while (sse_clients() < 50 && kpi_mono_ms() < deadline)
        poll_pause();
    cr_assert_eq(sse_clients(), 50);
    char *b;
    cr_assert_eq(get("/api/v1/events", &b), 503, "%s", b);
    cr_assert(strstr(b, "sse_max_clients"), "%s", b);
    free(b);
    kpi_sse_publish(hub, "marker", "{\"n\":1}");
    int got = 0;
    deadline = kpi_mono_ms() + 20000;
    while (got < 50 && kpi_mono_ms() < deadline) {
        got = 0;
        for (int i = 0; i < 50; i++) {
            stream_read(&s[i]);
            got += stream_has(&s[i], "event: marker\ndata: {\"n\":1}\n\n");
        }
        if (got < 50)
            poll_pause();
    }
    cr_assert_eq(got, 50, "only %d of 50 clients got the event", got);
    for (int i = 0; i < 50; i++) {
        cr_assert(stream_has(&s[i], "text/event-stream"));
        close(s[i].fd);
    }
}

Test(api, the_watcher_sends_kpis_after_a_flush_and_each_new_alert)
{
    struct stream s;
    stream_open(&s);
    int64_t deadline = kpi_mono_ms() + 20000;
    while (sse_clients() < 1 && kpi_mono_ms() < deadline)
        poll_pause();
    load_data();
    while (!stream_has(&s, "event: kpis\n") && kpi_mono_ms() < deadline) {
        stream_read(&s);
        poll_pause();
    }
    cr_assert(stream_has(&s, "event: kpis\n"), "%s", s.buf);
    cr_assert(stream_has(&s, "\"watermark_ms\":1700000110000"), "%s", s.buf);
    struct kpiread_alert a = youth_raised();
    char err[256];
    cr_assert_eq(kpiread_alert_record(store, &a, "{}", "alerts", 1000, err, sizeof(err)), 1);
    while (!stream_has(&s, "event: alert\n") && kpi_mono_ms() < deadline) {
        stream_read(&s);
        poll_pause();
    }
    cr_assert(stream_has(&s, "event: alert\ndata: {\"id\":"), "%s", s.buf);
    cr_assert(stream_has(&s, "\"state\":\"raised\""), "%s", s.buf);
    close(s.fd);
}

Test(api, a_client_that_never_reads_is_dropped_without_stalling_a_reader)
{
    /* The slow one: a tiny receive buffer, and it never reads. */
    int slow = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(slow, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(kt_http_send_get(slow, "/api/v1/events"), 0);
    struct stream fast;
    stream_open(&fast);
    int64_t deadline = kpi_mono_ms() + 20000;
    while (sse_clients() < 2 && kpi_mono_ms() < deadline)
        poll_pause();
    cr_assert_eq(sse_clients(), 2);
    /* 8 MiB of events through a ring of 256 KiB: far more than the slow
     * client's socket buffers hold. */
    static char data[8192];
    memset(data, 'x', sizeof(data) - 1);
    data[sizeof(data) - 1] = '\0';
    int received = 0;
    for (int i = 0; i < 1024; i++) {
        char name[32];
        snprintf(name, sizeof(name), "bulk%d", i);
        kpi_sse_publish(hub, name, data);
        /* The fast client keeps up: it reads each event before the next. */
        char want[48];
        snprintf(want, sizeof(want), "event: %s\n", name);
        int64_t d = kpi_mono_ms() + 10000;
        while (!stream_has(&fast, want) && kpi_mono_ms() < d) {
            cr_assert(stream_read(&fast), "the reader was disconnected at event %d", i);
            if (!stream_has(&fast, want))
                sched_yield();
        }
        cr_assert(stream_has(&fast, want), "event %d did not reach the reader", i);
        received++;
        struct kpi_sse_stats st;
        kpi_sse_get_stats(hub, &st);
        cr_assert_leq(st.ring_bytes, 256 * 1024, "the ring holds %llu bytes",
                      (unsigned long long)st.ring_bytes);
    }
    cr_assert_eq(received, 1024);
    /* The slow client is disconnected (it fell behind, or its socket stayed
     * full past the idle timeout); the reader is still there. */
    deadline = kpi_mono_ms() + 30000;
    while (sse_clients() > 1 && kpi_mono_ms() < deadline)
        poll_pause();
    cr_assert_eq(sse_clients(), 1, "the slow client is still held");
    kpi_sse_publish(hub, "after", "{}");
    deadline = kpi_mono_ms() + 10000;
    while (!stream_has(&fast, "event: after\n") && kpi_mono_ms() < deadline) {
        cr_assert(stream_read(&fast));
        poll_pause();
    }
    cr_assert(stream_has(&fast, "event: after\n"));
    close(fast.fd);
    close(slow);
}
