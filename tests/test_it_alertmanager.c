/*
 * Churn-spike alert delivery (cmd/lib/notify.c) against the real Debian
 * prometheus-alertmanager that scripts/services.sh runs
 * (KPI_ALERTMANAGER_PORT), and against a webhook served by this test:
 *  - a raise is listed by GET /api/v2/alerts with its labels, a resolve
 *    removes it;
 *  - while Alertmanager is down, delivery fails, is counted and retried, and
 *    succeeds once it is back, with nothing lost;
 *  - the webhook gets the same JSON with a stable Idempotency-Key, retried
 *    through failures.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "support/kafka_util.h"
#include "support/text.h"
#include "cmd/lib/notify.h"

static void poll_pause(void)
{
    struct timespec ts = {0, 50000000}; /* polling interval, not synchronisation */
    nanosleep(&ts, NULL);
}

/* Polls n's stats into *st until the counter *field (one of st's) reaches
 * at_least, or timeout_ms passes. */
static void wait_stats(struct kpi_notify *n, struct kpi_notify_stats *st, const uint64_t *field,
                       uint64_t at_least, int64_t timeout_ms)
{
    int64_t deadline = kpi_mono_ms() + timeout_ms;
    do {
        poll_pause();
        kpi_notify_get_stats(n, st);
    } while (*field < at_least && kpi_mono_ms() < deadline);
}

static const char *am_port(void)
{
    const char *p = getenv("KPI_ALERTMANAGER_PORT");
    return p && *p ? p : "9095";
}

struct buf {
    char *p;
    size_t n;
};

static size_t on_data(char *d, size_t s, size_t m, void *u)
{
    struct buf *b = u;
    b->p = realloc(b->p, b->n + s * m + 1);
    memcpy(b->p + b->n, d, s * m);
    b->n += s * m;
    b->p[b->n] = '\0';
    return s * m;
}

/* Alertmanager's active alerts whose value label is `value` (body). */
static char *am_alerts(const char *value)
{
    CURL *c = curl_easy_init();
    char *filter = curl_easy_escape(c, value, 0);
    char url[512];
    snprintf(url, sizeof(url),
             "http://127.0.0.1:%s/api/v2/alerts?filter=alertname%%3D%%22ChurnSpike%%22&filter="
             "value%%3D%%22%s%%22",
             am_port(), filter);
    curl_free(filter);
    struct buf b = {calloc(1, 1), 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* Poll until value is listed (want = 1) or not (want = 0). */
static int wait_listed(const char *value, int want, int64_t ms)
{
    int64_t deadline = kpi_mono_ms() + ms;
    while (kpi_mono_ms() < deadline) {
        char *b = am_alerts(value);
        int listed = b && strstr(b, "\"state\":\"active\"") != NULL;
        free(b);
        if (b && listed == want)
            return 1;
        poll_pause();
    }
    return 0;
}

static void unique(char *buf, size_t size, const char *what)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "%s-%d-%ld%03ld", what, (int)getpid(), (long)ts.tv_sec % 100000,
             ts.tv_nsec / 1000000);
}

static struct kpiread_alert alert(const char *value, int raised, int64_t bucket_end)
{
    struct kpiread_alert a;
    memset(&a, 0, sizeof(a));
    snprintf(a.window, sizeof(a.window), "1m_5s");
    snprintf(a.set, sizeof(a.set), "segment");
    snprintf(a.value, sizeof(a.value), "%s", value);
    a.raised = raised;
    a.rate = 0.031;
    a.baseline = 0.004;
    a.threshold = 0.006;
    a.active = 15183;
    a.bucket_end = bucket_end;
    return a;
}

static struct kpi_notify *notifier(const char *am, const char *hook)
{
    struct kpi_notify_conf c = {
        am, hook, "kpistream-test", "http://127.0.0.1:1/", 2000, 100, 400, 60000, 100};
    char err[256];
    struct kpi_notify *n = kpi_notify_new(&c, err, sizeof(err));
    cr_assert_not_null(n, "%s", err);
    return n;
}

TestSuite(alertmanager, .timeout = 180);

Test(alertmanager, a_raise_is_listed_with_its_labels_and_a_resolve_removes_it)
{
    char am[64], value[64];
    snprintf(am, sizeof(am), "http://127.0.0.1:%s", am_port());
    unique(value, sizeof(value), "youth");
    struct kpi_notify *n = notifier(am, NULL);
    struct kpiread_alert a = alert(value, 1, 1764012360000);
    kpi_notify_alert(n, &a);
    cr_assert(wait_listed(value, 1, 30000), "the raise is not listed by Alertmanager");
    char *b = am_alerts(value);
    KT_ASSERT_CONTAINS(b, "\"alertname\":\"ChurnSpike\"", "\"set\":\"segment\"",
                       "\"group\":\"kpistream-test\"", "\"window\":\"1m_5s\"",
                       "\"severity\":\"warning\"", "\"rate\":\"0.031000\"",
                       "\"baseline\":\"0.004000\"", "\"threshold\":\"0.006000\"");
    free(b);
    a = alert(value, 0, 1764012420000);
    kpi_notify_alert(n, &a);
    cr_assert(wait_listed(value, 0, 30000), "the resolve did not reach Alertmanager");
    /* Alertmanager may list the resolve before the notifier has read its
     * reply and counted it: poll for the count. */
    struct kpi_notify_stats st;
    wait_stats(n, &st, &st.sent[0], 2, 20000);
    cr_assert_eq(st.sent[0], 2);
    kpi_notify_destroy(n, 0);
}

Test(alertmanager, delivery_is_retried_while_alertmanager_is_down_and_nothing_is_lost)
{
    char am[64], v1[64], v2[64];
    snprintf(am, sizeof(am), "http://127.0.0.1:%s", am_port());
    unique(v1, sizeof(v1), "down-a");
    unique(v2, sizeof(v2), "down-b");
    struct kpi_notify *n = notifier(am, NULL);
    cr_assert_eq(kt_sh("bash scripts/services.sh stop alertmanager"), 0);
    /* While it is down: raise a, raise b, resolve a. */
    struct kpiread_alert a = alert(v1, 1, 1764012360000);
    kpi_notify_alert(n, &a);
    a = alert(v2, 1, 1764012360000);
    kpi_notify_alert(n, &a);
    a = alert(v1, 0, 1764012420000);
    kpi_notify_alert(n, &a);
    struct kpi_notify_stats st;
    wait_stats(n, &st, &st.failures[0], 3, 20000);
    cr_assert_geq(st.failures[0], 3, "failed attempts are counted and retried");
    cr_assert_eq(st.queued[0], 3);
    cr_assert_eq(st.sent[0], 0);
    cr_assert_eq(kt_sh("bash scripts/services.sh start alertmanager"), 0);
    cr_assert(wait_listed(v2, 1, 30000), "b is not listed once Alertmanager is back");
    wait_stats(n, &st, &st.sent[0], 3, 20000);
    cr_assert_eq(st.sent[0], 3, "all three were delivered");
    cr_assert_eq(st.queued[0], 0);
    cr_assert_eq(st.dropped[0], 0);
    cr_assert(wait_listed(v1, 0, 10000), "a's resolve was applied after its raise");
    a = alert(v2, 0, 1764012420000);
    kpi_notify_alert(n, &a);
    cr_assert(wait_listed(v2, 0, 30000));
    kpi_notify_destroy(n, 5000);
}

/* ---- a webhook that fails its first `fail` requests ---- */

struct hook {
    int fd, port, fail;
    atomic_int requests;
    char keys[8][256];
    char body[4096];
};

static void *hook_main(void *arg)
{
    struct hook *h = arg;
    for (;;) {
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[8192];
        size_t len = 0;
        ssize_t r;
        /* headers, then Content-Length bytes of body */
        while ((r = read(c, req + len, sizeof(req) - len - 1)) > 0) {
            len += (size_t)r;
            req[len] = '\0';
            char *hdr_end = strstr(req, "\r\n\r\n");
            char *cl = strcasestr(req, "Content-Length:");
            if (hdr_end && cl && len >= (size_t)(hdr_end + 4 - req) + (size_t)atoi(cl + 15))
                break;
        }
        int i = atomic_fetch_add(&h->requests, 1);
        char *k = strcasestr(req, "Idempotency-Key: ");
        if (k && i < 8)
            sscanf(k + 17, "%255[^\r]", h->keys[i]);
        char *b = strstr(req, "\r\n\r\n");
        if (b)
            snprintf(h->body, sizeof(h->body), "%s", b + 4);
        const char *resp = i < h->fail ? "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"
                                       : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        if (write(c, resp, strlen(resp)) < 0)
            h->fail = h->fail; /* the client went away: it retries */
        close(c);
    }
}

Test(alertmanager, the_webhook_gets_the_same_json_with_a_stable_dedup_key_through_retries)
{
    static struct hook h;
    memset(&h, 0, sizeof(h));
    h.fail = 2;
    h.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(a);
    cr_assert_eq(bind(h.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(h.fd, 8), 0);
    getsockname(h.fd, (struct sockaddr *)&a, &l);
    h.port = ntohs(a.sin_port);
    pthread_t th;
    pthread_create(&th, NULL, hook_main, &h);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", h.port);
    struct kpi_notify *n = notifier(NULL, url);
    struct kpiread_alert al = alert("youth", 1, 1764012360000);
    kpi_notify_alert(n, &al);
    struct kpi_notify_stats st;
    wait_stats(n, &st, &st.sent[1], 1, 20000);
    cr_assert_eq(st.sent[1], 1);
    cr_assert_eq(st.failures[1], 2);
    cr_assert_eq(atomic_load(&h.requests), 3);
    cr_assert_str_eq(h.keys[0], "kpistream-test/1m_5s/segment/youth/1764012360000/raised");
    cr_assert_str_eq(h.keys[1], h.keys[0]);
    cr_assert_str_eq(h.keys[2], h.keys[0]);
    cr_assert(strstr(h.body, "[{\"labels\":{\"alertname\":\"ChurnSpike\""), "%s", h.body);
    cr_assert(strstr(h.body, "\"dedup_key\":\"kpistream-test/1m_5s/segment/youth/"), "%s", h.body);
    cr_assert(strstr(h.body, "\"startsAt\":\"") && strstr(h.body, "\"endsAt\":\""), "%s", h.body);
    kpi_notify_destroy(n, 0);
    shutdown(h.fd, SHUT_RDWR);
    close(h.fd);
    pthread_join(th, NULL);
}
