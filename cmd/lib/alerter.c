/* alerter.c - see alerter.h. */
#include "alerter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "json.h"
#include "base/log.h"
#include "notify.h"

#define MAX_SERIES 8192
#define PAGE       1000 /* values read per call */

struct series {
    char key[400]; /* "<set>:<value>" */
    struct kpi_alert_state st;
};

struct kpi_alerter {
    struct kpi_alerter_conf c;
    char window[KPI_WINDOW_NAME_MAX], channel[128];
    const struct kpi_dims *d;
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;
    uint64_t raised, resolved;
    char last[256];
    struct series *series;
    size_t n_series;
    int64_t closed;
};

static struct series *find_series(struct kpi_alerter *a, const char *key)
{
    for (size_t i = 0; i < a->n_series; i++)
        if (strcmp(a->series[i].key, key) == 0)
            return &a->series[i];
    if (a->n_series == MAX_SERIES)
        return NULL;
    struct series *s = &a->series[a->n_series++];
    snprintf(s->key, sizeof(s->key), "%s", key);
    memset(&s->st, 0, sizeof(s->st));
    return s;
}

static void publish(struct kpi_alerter *a, const char *set, const char *value,
                    enum kpi_alert_change ch, const struct kpi_alert_info *in)
{
    struct kpiread_alert al;
    memset(&al, 0, sizeof(al));
    al.raised = ch == KPI_ALERT_RAISED;
    snprintf(al.window, sizeof(al.window), "%s", a->window);
    snprintf(al.set, sizeof(al.set), "%s", set);
    snprintf(al.value, sizeof(al.value), "%s", value);
    al.rate = in->rate;
    al.baseline = in->baseline;
    al.threshold = in->threshold;
    al.active = in->active;
    al.bucket_end = a->closed;
    const char *state = al.raised ? "raised" : "resolved";
    char *msg = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&msg, &len);
    if (!f)
        return;
    fprintf(f, "{\"state\":\"%s\",\"window\":", state);
    kpi_json_str(f, a->window);
    fputs(",\"set\":", f);
    kpi_json_str(f, set);
    fputs(",\"value\":", f);
    kpi_json_str(f, value);
    fprintf(f,
            ",\"rate\":%.6f,\"baseline\":%.6f,\"threshold\":%.6f,\"active\":%llu,"
            "\"bucket_end\":%lld}",
            in->rate, in->baseline, in->threshold, (unsigned long long)in->active,
            (long long)a->closed);
    fclose(f);
    char err[256];
    int rc = kpiread_alert_record(a->c.store, &al, msg, a->channel, a->c.stream_maxlen, err,
                                  sizeof(err));
    if (rc < 0)
        kpi_log(KPI_LOG_WARN, "alert", "cannot record %s (%s): %s", msg, state, err);
    if (rc == 1) {
        if (a->c.notify)
            kpi_notify_alert(a->c.notify, &al);
        pthread_mutex_lock(&a->mu);
        if (al.raised)
            a->raised++;
        else
            a->resolved++;
        snprintf(a->last, sizeof(a->last), "%s: %s=%s churn %.2f%% (baseline %.2f%%)", state, set,
                 value, in->rate * 100, in->baseline * 100);
        pthread_mutex_unlock(&a->mu);
        kpi_log(KPI_LOG_INFO, "alert", "%s", msg);
    }
    free(msg);
}

static void evaluate(struct kpi_alerter *a)
{
    for (int s = 0; s < a->d->n_sets; s++) {
        const char *set = a->d->sets[s].name;
        for (uint64_t off = 0; off < KPIREAD_SCAN_MAX; off += PAGE) {
            struct kpiread_page p;
            char err[256];
            if (kpiread_values(a->c.store, a->c.window, set, off, PAGE, NULL, &p, err, sizeof(err)))
                break;
            for (size_t i = 0; i < p.n; i++) {
                const struct kpi_values *v = &p.rows[i].v;
                const int k = a->c.kpi; /* alerts.kpi */
                if (!v->has[k])
                    continue;
                char key[400];
                snprintf(key, sizeof(key), "%.150s:%.200s", set, p.rows[i].value);
                struct series *sr = find_series(a, key);
                struct kpi_alert_info info;
                enum kpi_alert_change ch =
                    sr ? kpi_alert_observe(&a->c.detector, &sr->st, v->derived[k], v->active, &info)
                       : KPI_ALERT_NONE;
                if (ch != KPI_ALERT_NONE)
                    publish(a, set, p.rows[i].value, ch, &info);
            }
            uint64_t total = p.total;
            kpiread_page_free(&p);
            if (off + PAGE >= total)
                break;
        }
    }
}

static void *run(void *arg)
{
    struct kpi_alerter *a = arg;
    while (!atomic_load(&a->stop)) {
        struct kpiread_meta m;
        char err[256];
        if (kpiread_meta(a->c.store, &m, err, sizeof(err)) == 0) {
            int64_t closed = m.closed[a->c.window], first = m.first[a->c.window];
            const struct kpi_window_spec *ws = &a->c.windows->w[a->c.window];
            /* A window that has not filled yet since the group's first data
             * is not comparable with itself later (its churn rate climbs as
             * it fills): such observations would teach the baseline a rate
             * too low and the first full window would look like a spike. */
            int filled = first != INT64_MIN && closed != INT64_MIN && closed - first >= ws->size_ms;
            if (closed != INT64_MIN && closed > a->closed) {
                a->closed = closed;
                if (filled)
                    evaluate(a);
            }
        }
        /* Poll period: the closed mark moves at most once per flush. */
        for (int64_t t = 0; t < a->c.poll_ms && !atomic_load(&a->stop); t += 50) {
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

struct kpi_alerter *kpi_alerter_start(const struct kpi_alerter_conf *c, const struct kpi_dims *d,
                                      char *errstr, size_t errsz)
{
    struct kpi_alerter *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->c = *c;
    snprintf(a->window, sizeof(a->window), "%s", c->window_id);
    snprintf(a->channel, sizeof(a->channel), "%s", c->channel);
    a->d = d;
    a->series = calloc(MAX_SERIES, sizeof(*a->series));
    pthread_mutex_init(&a->mu, NULL);
    if (!a->series || pthread_create(&a->th, NULL, run, a)) {
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "cannot start the alerter");
        free(a->series);
        free(a);
        return NULL;
    }
    return a;
}

void kpi_alerter_stop(struct kpi_alerter *a)
{
    if (!a)
        return;
    atomic_store(&a->stop, 1);
    pthread_join(a->th, NULL);
    pthread_mutex_destroy(&a->mu);
    free(a->series);
    free(a);
}

void kpi_alerter_counts(struct kpi_alerter *a, uint64_t *raised, uint64_t *resolved)
{
    pthread_mutex_lock(&a->mu);
    *raised = a->raised;
    *resolved = a->resolved;
    pthread_mutex_unlock(&a->mu);
}

void kpi_alerter_last(struct kpi_alerter *a, char *buf, size_t size)
{
    pthread_mutex_lock(&a->mu);
    snprintf(buf, size, "%s", a->last);
    pthread_mutex_unlock(&a->mu);
}
