/* alerter.c - see alerter.h. */
#include "cmd/lib/alerter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/err.h"
#include "base/json.h"
#include "base/log.h"
#include "cmd/lib/notify.h"

#define MAX_SERIES  8192
#define PAGE        1000 /* values read per call */
#define MAX_PENDING 4096 /* alerts waiting to be recorded again */

struct series {
    char key[400]; /* "<set>:<value>" */
    struct kpi_alert_state st;
    int64_t observed; /* the closed mark of its last observation */
};

/* An alert whose recording failed: recorded again before anything else. */
struct pending {
    struct kpiread_alert al;
    char *json;
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
    int64_t closed; /* the closed mark evaluated last (advanced once evaluation succeeded) */
    struct pending *pend;
    size_t n_pend;
    uint64_t dropped; /* alerts given up: MAX_PENDING were waiting */
    int failing;      /* the last record or read failed (logged once per change) */
    char failing_what[64];
};

/* Log a failure once until things work again (and then say so). */
static void note(struct kpi_alerter *a, const char *what, const char *err)
{
    if (err) {
        if (!a->failing || strcmp(a->failing_what, what) != 0)
            kpi_log(KPI_LOG_WARN, "alert", "%s failed: %s; retrying", what, err);
        a->failing = 1;
        snprintf(a->failing_what, sizeof(a->failing_what), "%s", what);
    } else if (a->failing) {
        kpi_log(KPI_LOG_INFO, "alert", "%s works again", a->failing_what);
        a->failing = 0;
    }
}

/* s with every byte outside printable ASCII (newline, ESC, NUL...) and the
 * backslash written as \xNN: dimension values are the producers' bytes, and
 * a log line or a terminal must not take them for its own. */
static void escape_line(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 5 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

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
    s->observed = INT64_MIN;
    return s;
}

/* Hand a recorded alert on (delivery, counts, the demo's last line). */
static void delivered(struct kpi_alerter *a, const struct kpiread_alert *al, const char *json)
{
    if (a->c.notify)
        kpi_notify_alert(a->c.notify, al);
    char set[200], value[600];
    escape_line(set, sizeof(set), al->set);
    escape_line(value, sizeof(value), al->value);
    pthread_mutex_lock(&a->mu);
    if (al->raised)
        a->raised++;
    else
        a->resolved++;
    snprintf(a->last, sizeof(a->last), "%s: %.60s=%.120s churn %.2f%% (baseline %.2f%%)",
             al->raised ? "raised" : "resolved", set, value, al->rate * 100, al->baseline * 100);
    pthread_mutex_unlock(&a->mu);
    kpi_log(KPI_LOG_INFO, "alert", "%s", json); /* JSON: every value escaped */
}

/* Record one alert; 0, or <0 when it must be tried again. */
static int record(struct kpi_alerter *a, struct kpiread_alert *al, const char *json)
{
    char err[256];
    int rc = kpiread_alert_record(a->c.store, al, json, a->channel, a->c.stream_maxlen, err,
                                  sizeof(err));
    if (rc < 0) {
        note(a, "recording an alert", err);
        return rc;
    }
    note(a, "recording an alert", NULL);
    if (rc == 1)
        delivered(a, al, json);
    return 0;
}

/* Record the alerts that failed before, oldest first; 0 when none is left. */
static int retry_pending(struct kpi_alerter *a)
{
    size_t done = 0;
    while (done < a->n_pend && record(a, &a->pend[done].al, a->pend[done].json) == 0)
        free(a->pend[done++].json);
    memmove(a->pend, a->pend + done, (a->n_pend - done) * sizeof(*a->pend));
    pthread_mutex_lock(&a->mu);
    a->n_pend -= done;
    pthread_mutex_unlock(&a->mu);
    return a->n_pend ? KPI_ERR_IO : 0;
}

static void publish(struct kpi_alerter *a, const char *set, const char *value, int64_t closed,
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
    al.bucket_end = closed;
    char *msg = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&msg, &len);
    if (!f)
        return;
    fprintf(f, "{\"state\":\"%s\",\"window\":", al.raised ? "raised" : "resolved");
    kpi_json_str(f, a->window);
    fputs(",\"set\":", f);
    kpi_json_str(f, set);
    fputs(",\"value\":", f);
    kpi_json_str(f, value);
    fprintf(f,
            ",\"rate\":%.6f,\"baseline\":%.6f,\"threshold\":%.6f,\"active\":%llu,"
            "\"bucket_end\":%lld}",
            in->rate, in->baseline, in->threshold, (unsigned long long)in->active,
            (long long)closed);
    fclose(f);
    /* Behind earlier failures, or failing now: keep it, in order. */
    if (a->n_pend == 0 && record(a, &al, msg) == 0) {
        free(msg);
        return;
    }
    if (a->n_pend == MAX_PENDING) {
        a->dropped++;
        kpi_log(KPI_LOG_ERROR, "alert",
                "%d alerts are waiting to be recorded: giving up the oldest, %s", MAX_PENDING,
                a->pend[0].json);
        free(a->pend[0].json);
        memmove(a->pend, a->pend + 1, (a->n_pend - 1) * sizeof(*a->pend));
        a->n_pend--;
    }
    a->pend[a->n_pend].al = al;
    a->pend[a->n_pend].json = msg;
    pthread_mutex_lock(&a->mu);
    a->n_pend++;
    pthread_mutex_unlock(&a->mu);
}

/* Observe every value once for the closed mark `closed`; 0, or an error
 * (then the caller evaluates the same mark again: the values already
 * observed for it are skipped, so none is observed twice). */
static int evaluate(struct kpi_alerter *a, int64_t closed)
{
    for (int s = 0; s < a->d->n_sets; s++) {
        const char *set = a->d->sets[s].name;
        for (uint64_t off = 0; off < KPIREAD_SCAN_MAX; off += PAGE) {
            struct kpiread_page p;
            char err[256];
            int rc =
                kpiread_values(a->c.store, a->c.window, set, off, PAGE, NULL, &p, err, sizeof(err));
            if (rc) {
                note(a, "reading the KPIs", err);
                return rc;
            }
            for (size_t i = 0; i < p.n; i++) {
                const struct kpi_values *v = &p.rows[i].v;
                const int k = a->c.kpi; /* alerts.kpi */
                if (!v->has[k])
                    continue;
                char key[400];
                snprintf(key, sizeof(key), "%.150s:%.200s", set, p.rows[i].value);
                struct series *sr = find_series(a, key);
                if (!sr || sr->observed == closed)
                    continue;
                sr->observed = closed;
                struct kpi_alert_info info;
                enum kpi_alert_change ch =
                    kpi_alert_observe(&a->c.detector, &sr->st, v->derived[k], v->active, &info);
                if (ch != KPI_ALERT_NONE)
                    publish(a, set, p.rows[i].value, closed, ch, &info);
            }
            uint64_t total = p.total;
            kpiread_page_free(&p);
            if (off + PAGE >= total)
                break;
        }
    }
    return 0;
}

static void *run(void *arg)
{
    struct kpi_alerter *a = arg;
    while (!atomic_load(&a->stop)) {
        struct kpiread_meta m;
        char err[256];
        retry_pending(a);
        if (kpiread_meta(a->c.store, &m, err, sizeof(err)) != 0) {
            note(a, "reading the group's clock", err);
        } else {
            int64_t closed = m.closed[a->c.window], first = m.first[a->c.window];
            const struct kpi_window_spec *ws = &a->c.windows->w[a->c.window];
            /* A window that has not filled yet since the group's first data
             * is not comparable with itself later (its churn rate climbs as
             * it fills): such observations would teach the baseline a rate
             * too low and the first full window would look like a spike. */
            int filled = first != INT64_MIN && closed != INT64_MIN && closed - first >= ws->size_ms;
            /* The mark advances only once its evaluation went through: an
             * interrupted one is done again at the next poll, never skipped. */
            if (closed != INT64_MIN && closed > a->closed &&
                (!filled || evaluate(a, closed) == 0)) {
                pthread_mutex_lock(&a->mu);
                a->closed = closed;
                pthread_mutex_unlock(&a->mu);
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

/* Frees what kpi_alerter_start allocated, once no thread runs. */
static void alerter_free(struct kpi_alerter *a)
{
    pthread_mutex_destroy(&a->mu);
    for (size_t i = 0; i < a->n_pend; i++)
        free(a->pend[i].json);
    free(a->pend);
    free(a->series);
    free(a);
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
    a->pend = calloc(MAX_PENDING, sizeof(*a->pend));
    a->closed = INT64_MIN;
    pthread_mutex_init(&a->mu, NULL);
    if (!a->series || !a->pend || pthread_create(&a->th, NULL, run, a)) {
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "cannot start the alerter");
        alerter_free(a);
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
    if (a->n_pend)
        kpi_log(KPI_LOG_WARN, "alert", "stopping with %zu alert(s) not recorded", a->n_pend);
    alerter_free(a);
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

int64_t kpi_alerter_closed(struct kpi_alerter *a)
{
    pthread_mutex_lock(&a->mu);
    int64_t v = a->closed;
    pthread_mutex_unlock(&a->mu);
    return v;
}

size_t kpi_alerter_pending(struct kpi_alerter *a)
{
    pthread_mutex_lock(&a->mu);
    size_t n = a->n_pend;
    pthread_mutex_unlock(&a->mu);
    return n;
}
