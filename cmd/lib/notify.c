/* notify.c - see notify.h. */
#include "cmd/lib/notify.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "engine/err.h"
#include "cmd/lib/json.h"
#include "base/log.h"

enum { T_AM = 0, T_HOOK = 1, N_TARGETS = 2 };
static const char *const target_names[N_TARGETS] = {"alertmanager", "webhook"};

#define MAX_ACTIVE 1024 /* alerts re-posted while active */

struct item {
    char *body;
    char key[700]; /* dedup key */
    struct item *next;
};

struct queue {
    struct item *head, *tail;
    size_t n;
    int64_t next_try_ms; /* the head's next attempt */
    int64_t backoff_ms;
};

struct active {
    char key[600]; /* window/set/value */
    struct kpiread_alert a;
    int64_t starts_ms;
};

struct kpi_notify {
    struct kpi_notify_conf c;
    char url[N_TARGETS][600];
    char group[256], generator[256];
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int64_t drain_until;
    struct queue q[N_TARGETS];
    struct active *act;
    size_t n_act;
    int64_t next_resend_ms;
    struct kpi_notify_stats st;
    CURL *curl;
};

static void iso8601(char *buf, size_t size, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(ms % 1000));
}

static void active_key(const struct kpiread_alert *a, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%.200s/%.300s", a->window, a->set, a->value);
}

/* The JSON body of one alert; ends_ms: its endsAt. */
static char *alert_body(struct kpi_notify *n, const struct kpiread_alert *a, int64_t starts_ms,
                        int64_t ends_ms, const char *dedup)
{
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    if (!f)
        return NULL;
    char starts[40], ends[40], num[64], summary[900];
    iso8601(starts, sizeof(starts), starts_ms);
    iso8601(ends, sizeof(ends), ends_ms);
    fputs("[{\"labels\":{\"alertname\":\"ChurnSpike\",\"group\":", f);
    kpi_json_str(f, n->group);
    fputs(",\"window\":", f);
    kpi_json_str(f, a->window);
    fputs(",\"set\":", f);
    kpi_json_str(f, a->set);
    fputs(",\"value\":", f);
    kpi_json_str(f, a->value);
    fputs(",\"severity\":\"warning\"},\"annotations\":{\"summary\":", f);
    snprintf(summary, sizeof(summary),
             "Churn spike in %s=%s: %.2f%% churn over %s (baseline %.2f%%)", a->set, a->value,
             a->rate * 100, a->window, a->baseline * 100);
    kpi_json_str(f, summary);
    snprintf(num, sizeof(num), "%.6f", a->rate);
    fputs(",\"rate\":", f);
    kpi_json_str(f, num);
    snprintf(num, sizeof(num), "%.6f", a->baseline);
    fputs(",\"baseline\":", f);
    kpi_json_str(f, num);
    snprintf(num, sizeof(num), "%.6f", a->threshold);
    fputs(",\"threshold\":", f);
    kpi_json_str(f, num);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)a->active);
    fputs(",\"active\":", f);
    kpi_json_str(f, num);
    fprintf(f, ",\"state\":\"%s\",\"dedup_key\":", a->raised ? "raised" : "resolved");
    kpi_json_str(f, dedup);
    fprintf(f, "},\"startsAt\":\"%s\",\"endsAt\":\"%s\"", starts, ends);
    if (n->generator[0]) {
        fputs(",\"generatorURL\":", f);
        kpi_json_str(f, n->generator);
    }
    fputs("}]", f);
    fclose(f);
    return body;
}

static void enqueue_locked(struct kpi_notify *n, int t, char *body, const char *key)
{
    struct queue *q = &n->q[t];
    if (q->n >= n->c.queue_max) {
        n->st.dropped[t]++;
        kpi_log(KPI_LOG_ERROR, "notify", "%s: queue full (%zu): alert %s dropped", target_names[t],
                q->n, key);
        free(body);
        return;
    }
    struct item *it = calloc(1, sizeof(*it));
    if (!it) {
        n->st.dropped[t]++;
        free(body);
        return;
    }
    it->body = body;
    snprintf(it->key, sizeof(it->key), "%s", key);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->n++;
}

void kpi_notify_alert(struct kpi_notify *n, const struct kpiread_alert *a)
{
    if (!n || (!n->url[T_AM][0] && !n->url[T_HOOK][0]))
        return;
    int64_t now = kpi_now_ms();
    char dedup[700], k[600];
    snprintf(dedup, sizeof(dedup), "%.100s/%s/%.200s/%.200s/%lld/%s", n->group, a->window, a->set,
             a->value, (long long)a->bucket_end, a->raised ? "raised" : "resolved");
    active_key(a, k, sizeof(k));
    pthread_mutex_lock(&n->mu);
    int64_t starts = now;
    size_t i;
    for (i = 0; i < n->n_act && strcmp(n->act[i].key, k) != 0; i++)
        ;
    if (i < n->n_act)
        starts = n->act[i].starts_ms;
    if (a->raised) {
        if (i == n->n_act && n->n_act < MAX_ACTIVE)
            n->n_act++;
        if (i < n->n_act) {
            snprintf(n->act[i].key, sizeof(n->act[i].key), "%s", k);
            n->act[i].a = *a;
            n->act[i].starts_ms = starts;
        }
    } else if (i < n->n_act) {
        n->act[i] = n->act[--n->n_act];
    }
    int64_t ends = a->raised ? now + 4 * n->c.resend_ms : now;
    for (int t = 0; t < N_TARGETS; t++) {
        if (!n->url[t][0])
            continue;
        char *body = alert_body(n, a, starts, ends, dedup);
        if (body)
            enqueue_locked(n, t, body, dedup);
    }
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

static size_t discard(char *p, size_t size, size_t nmemb, void *u)
{
    (void)p;
    (void)u;
    return size * nmemb;
}

/* POST body; 0 on a 2xx answer, else -1 with why. */
static int post(struct kpi_notify *n, int t, const char *body, const char *key, char *why,
                size_t why_size)
{
    CURL *c = n->curl;
    curl_easy_reset(c);
    char url[700];
    snprintf(url, sizeof(url), "%s", n->url[t]);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char idem[800];
    snprintf(idem, sizeof(idem), "Idempotency-Key: %s", key);
    if (t == T_HOOK)
        h = curl_slist_append(h, idem);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)n->c.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)n->c.timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kpistream/" KPI_VERSION);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(why, why_size, "%s", curl_easy_strerror(rc));
        return -1;
    }
    if (code < 200 || code > 299) {
        snprintf(why, why_size, "HTTP %ld", code);
        return -1;
    }
    return 0;
}

/* Re-post the active alerts to Alertmanager (queued like the rest, so they
 * follow any raise still waiting). */
static void resend_locked(struct kpi_notify *n, int64_t now)
{
    if (!n->url[T_AM][0] || n->q[T_AM].n > 0)
        return; /* Alertmanager is behind: the queue's own retries come first */
    for (size_t i = 0; i < n->n_act; i++) {
        const struct active *ac = &n->act[i];
        char dedup[700];
        snprintf(dedup, sizeof(dedup), "%.100s/%s/%.200s/%.200s/%lld/raised", n->group,
                 ac->a.window, ac->a.set, ac->a.value, (long long)ac->a.bucket_end);
        char *body = alert_body(n, &ac->a, ac->starts_ms, now + 4 * n->c.resend_ms, dedup);
        if (body) {
            enqueue_locked(n, T_AM, body, dedup);
            n->st.resent++;
        }
    }
}

static void *run(void *arg)
{
    struct kpi_notify *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        int64_t now = kpi_now_ms();
        if (n->stop && (now >= n->drain_until || (!n->q[T_AM].n && !n->q[T_HOOK].n)))
            break;
        if (now >= n->next_resend_ms) {
            resend_locked(n, now);
            n->next_resend_ms = now + n->c.resend_ms;
        }
        int64_t wake = n->next_resend_ms;
        for (int t = 0; t < N_TARGETS; t++) {
            struct queue *q = &n->q[t];
            if (!q->head)
                continue;
            if (q->next_try_ms > now) {
                if (q->next_try_ms < wake)
                    wake = q->next_try_ms;
                continue;
            }
            struct item *it = q->head;
            pthread_mutex_unlock(&n->mu);
            char why[256];
            int rc = post(n, t, it->body, it->key, why, sizeof(why));
            pthread_mutex_lock(&n->mu);
            now = kpi_now_ms();
            if (rc == 0) {
                q->head = it->next;
                if (!q->head)
                    q->tail = NULL;
                q->n--;
                n->st.sent[t]++;
                q->backoff_ms = 0;
                q->next_try_ms = 0;
                free(it->body);
                free(it);
                wake = now; /* the next one at once */
            } else {
                n->st.failures[t]++;
                q->backoff_ms = q->backoff_ms ? q->backoff_ms * 2 : n->c.retry_min_ms;
                if (q->backoff_ms > n->c.retry_max_ms)
                    q->backoff_ms = n->c.retry_max_ms;
                q->next_try_ms = now + q->backoff_ms;
                kpi_log(KPI_LOG_WARN, "notify", "%s: delivering %s failed (%s); retry in %lld ms",
                        target_names[t], it->key, why, (long long)q->backoff_ms);
                if (q->next_try_ms < wake)
                    wake = q->next_try_ms;
            }
        }
        if (n->stop && now >= n->drain_until)
            break;
        if (wake > now) {
            int64_t d = wake - now;
            if (n->stop && n->drain_until - now < d)
                d = n->drain_until - now;
            struct timespec ts;
            kpi_deadline_ts(&ts, CLOCK_REALTIME, d);
            pthread_cond_timedwait(&n->cv, &n->mu, &ts); /* until the next attempt or alert */
        }
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

static int check_url(const char *key, const char *url, char *errstr, size_t errsz)
{
    if (!url || !url[0])
        return 0;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s: '%s' is not an http(s):// URL", key,
                          url);
    if (strlen(url) > 500)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s: longer than 500 bytes", key);
    return 0;
}

struct kpi_notify *kpi_notify_new(const struct kpi_notify_conf *c, char *errstr, size_t errsz)
{
    if (check_url("alerts.alertmanager_url", c->alertmanager_url, errstr, errsz) ||
        check_url("alerts.webhook_url", c->webhook_url, errstr, errsz))
        return NULL;
    struct kpi_notify *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->c = *c;
    if (n->c.timeout_ms <= 0)
        n->c.timeout_ms = 5000;
    if (n->c.retry_min_ms <= 0)
        n->c.retry_min_ms = 1000;
    if (n->c.retry_max_ms < n->c.retry_min_ms)
        n->c.retry_max_ms = n->c.retry_min_ms;
    if (n->c.resend_ms <= 0)
        n->c.resend_ms = 60000;
    if (!n->c.queue_max)
        n->c.queue_max = 10000;
    if (c->alertmanager_url && c->alertmanager_url[0]) {
        size_t l = strlen(c->alertmanager_url);
        snprintf(n->url[T_AM], sizeof(n->url[T_AM]), "%.*s/api/v2/alerts",
                 (int)(c->alertmanager_url[l - 1] == '/' ? l - 1 : l), c->alertmanager_url);
    }
    if (c->webhook_url)
        snprintf(n->url[T_HOOK], sizeof(n->url[T_HOOK]), "%s", c->webhook_url);
    snprintf(n->group, sizeof(n->group), "%s", c->group ? c->group : "");
    snprintf(n->generator, sizeof(n->generator), "%s", c->generator_url ? c->generator_url : "");
    n->act = calloc(MAX_ACTIVE, sizeof(*n->act));
    n->curl = curl_easy_init();
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    n->next_resend_ms = kpi_now_ms() + n->c.resend_ms;
    if (!n->act || !n->curl || pthread_create(&n->th, NULL, run, n)) {
        if (n->curl)
            curl_easy_cleanup(n->curl);
        free(n->act);
        free(n);
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "cannot start alert delivery");
        return NULL;
    }
    return n;
}

void kpi_notify_destroy(struct kpi_notify *n, int64_t drain_ms)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->stop = 1;
    n->drain_until = kpi_now_ms() + drain_ms;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->th, NULL);
    for (int t = 0; t < N_TARGETS; t++) {
        if (n->q[t].n)
            kpi_log(KPI_LOG_ERROR, "notify", "%s: %zu alert(s) undelivered at exit",
                    target_names[t], n->q[t].n);
        for (struct item *it = n->q[t].head, *nx; it; it = nx) {
            nx = it->next;
            free(it->body);
            free(it);
        }
    }
    curl_easy_cleanup(n->curl);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n->act);
    free(n);
}

void kpi_notify_get_stats(struct kpi_notify *n, struct kpi_notify_stats *out)
{
    pthread_mutex_lock(&n->mu);
    *out = n->st;
    for (int t = 0; t < N_TARGETS; t++)
        out->queued[t] = n->q[t].n;
    pthread_mutex_unlock(&n->mu);
}

void kpi_notify_write_metrics(void *opaque, FILE *out)
{
    struct kpi_notify *n = opaque;
    struct kpi_notify_stats st;
    kpi_notify_get_stats(n, &st);
    fprintf(out, "# HELP kpistream_alert_notifications_total Alerts delivered, by target.\n"
                 "# TYPE kpistream_alert_notifications_total counter\n");
    for (int t = 0; t < N_TARGETS; t++)
        fprintf(out, "kpistream_alert_notifications_total{target=\"%s\"} %llu\n", target_names[t],
                (unsigned long long)st.sent[t]);
    fprintf(out, "# HELP kpistream_alert_notification_failures_total Failed delivery attempts "
                 "(each retried with backoff).\n"
                 "# TYPE kpistream_alert_notification_failures_total counter\n");
    for (int t = 0; t < N_TARGETS; t++)
        fprintf(out, "kpistream_alert_notification_failures_total{target=\"%s\"} %llu\n",
                target_names[t], (unsigned long long)st.failures[t]);
    fprintf(out, "# HELP kpistream_alert_notifications_dropped_total Alerts dropped: the "
                 "delivery queue was full.\n"
                 "# TYPE kpistream_alert_notifications_dropped_total counter\n");
    for (int t = 0; t < N_TARGETS; t++)
        fprintf(out, "kpistream_alert_notifications_dropped_total{target=\"%s\"} %llu\n",
                target_names[t], (unsigned long long)st.dropped[t]);
    fprintf(out, "# HELP kpistream_alert_notifications_queued Alerts waiting for delivery.\n"
                 "# TYPE kpistream_alert_notifications_queued gauge\n");
    for (int t = 0; t < N_TARGETS; t++)
        fprintf(out, "kpistream_alert_notifications_queued{target=\"%s\"} %llu\n", target_names[t],
                (unsigned long long)st.queued[t]);
}
