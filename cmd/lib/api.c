/* api.c - the KPI HTTP API's handlers and the SSE watcher (see api.h and
 * docs/api.md). */
#include "cmd/lib/api.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "engine/err.h"
#include "cmd/lib/json.h"
#include "base/log.h"

#define LIMIT_MAX  1000 /* rows of one page, points of one series, alerts of one call */
#define Q_MAX      128  /* bytes of a search string */
#define VALUE_MAX  512  /* bytes of a value */
#define OFFSET_MAX 100000000ULL

struct kpi_api {
    struct kpi_api_conf c;
    char group[256], alerts_window[KPI_WINDOW_NAME_MAX];
    struct kpiread *r;
    const struct kpi_windows *ws;
    const struct kpi_dims *dims;
    struct kpi_sse *hub;
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    atomic_ullong requests, bad_requests, store_errors, kpis_events, alert_events;
};

/* ---- parameters ---- */

struct req {
    const struct kpi_api_param *p;
    size_t n;
    FILE *out;
};

static unsigned bad(struct kpi_api *a, FILE *out, const char *param, const char *why)
{
    atomic_fetch_add_explicit(&a->bad_requests, 1, memory_order_relaxed);
    fputs("{\"error\":", out);
    kpi_json_str(out, why);
    fputs(",\"parameter\":", out);
    kpi_json_str(out, param);
    fputs("}", out);
    return 400;
}

static unsigned unavailable(struct kpi_api *a, FILE *out, int err, const char *why)
{
    if (err == KPI_ERR_IO)
        atomic_fetch_add_explicit(&a->store_errors, 1, memory_order_relaxed);
    fputs("{\"error\":", out);
    kpi_json_str(out, why);
    fputs("}", out);
    return err == KPI_ERR_IO ? 503 : 500;
}

/* Every parameter must be one of `allowed` (NULL-terminated) and appear
 * once; returns the offending name or NULL. */
static const char *check_params(const struct req *q, const char *const *allowed, const char **why)
{
    for (size_t i = 0; i < q->n; i++) {
        int ok = 0;
        for (const char *const *k = allowed; *k && !ok; k++)
            ok = strcmp(q->p[i].key, *k) == 0;
        if (!ok) {
            *why = "unknown parameter";
            return q->p[i].key;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(q->p[i].key, q->p[j].key) == 0) {
                *why = "parameter given twice";
                return q->p[i].key;
            }
    }
    return NULL;
}

static const char *param(const struct req *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->p[i].key, key) == 0)
            return q->p[i].value ? q->p[i].value : "";
    return NULL;
}

/* An integer parameter in [min, max], or def when absent; -1 when bad. */
static int int_param(const struct req *q, const char *key, unsigned long long min,
                     unsigned long long max, unsigned long long def, unsigned long long *out)
{
    const char *v = param(q, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!*v || *v == '-' || *v == '+' || *v == ' ')
        return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

static int window_index(const struct kpi_api *a, const char *w)
{
    for (int i = 0; i < a->ws->n; i++)
        if (strcmp(a->ws->w[i].id, w) == 0 || strcmp(a->ws->w[i].name, w) == 0)
            return i;
    return -1;
}

/* window (required) and set (default "all"); 0 or a 400 already written. */
static unsigned window_set(struct kpi_api *a, const struct req *q, int *w, const char **set)
{
    const char *wv = param(q, "window");
    if (!wv)
        return bad(a, q->out, "window", "missing: one of the configured windows, e.g. 1h_1m");
    *w = window_index(a, wv);
    if (*w < 0)
        return bad(a, q->out, "window", "not a configured window (see /api/v1/meta)");
    *set = param(q, "set");
    if (!*set)
        *set = "all";
    if (kpi_dims_set_index(a->dims, *set) < 0)
        return bad(a, q->out, "set", "not a configured grouping set (see /api/v1/meta)");
    return 0;
}

/* ---- shared pieces of the bodies ---- */

static void write_window_bounds(FILE *out, const struct kpi_window_spec *w, int64_t head,
                                int64_t closed)
{
    fputs(",\"start_ms\":", out);
    kpi_json_i64(out, head == INT64_MIN ? INT64_MIN : head - w->size_ms + w->slide_ms);
    fputs(",\"end_ms\":", out);
    kpi_json_i64(out, head == INT64_MIN ? INT64_MIN : head + w->slide_ms);
    fputs(",\"closed_ms\":", out);
    kpi_json_i64(out, closed);
}

static void write_alert(FILE *out, const struct kpiread_alert *al)
{
    fputs("{\"id\":", out);
    kpi_json_str(out, al->id);
    fprintf(out, ",\"time_ms\":%lld", atoll(al->id));
    fprintf(out, ",\"state\":\"%s\",\"window\":", al->raised ? "raised" : "resolved");
    kpi_json_str(out, al->window);
    fputs(",\"set\":", out);
    kpi_json_str(out, al->set);
    fputs(",\"value\":", out);
    kpi_json_str(out, al->value);
    fputs(",\"rate\":", out);
    kpi_json_num(out, 1, al->rate);
    fputs(",\"baseline\":", out);
    kpi_json_num(out, 1, al->baseline);
    fputs(",\"threshold\":", out);
    kpi_json_num(out, 1, al->threshold);
    fprintf(out, ",\"active\":%llu,\"bucket_end\":%lld}", (unsigned long long)al->active,
            (long long)al->bucket_end);
}

/* ---- endpoints ---- */

static unsigned h_meta(struct kpi_api *a, const struct req *q)
{
    static const char *const allowed[] = {NULL};
    const char *why, *badp = check_params(q, allowed, &why);
    if (badp)
        return bad(a, q->out, badp, why);
    struct kpiread_meta m;
    char err[256];
    int rc = kpiread_meta(a->r, &m, err, sizeof(err));
    if (rc)
        return unavailable(a, q->out, rc, err);
    FILE *out = q->out;
    fputs("{\"group\":", out);
    kpi_json_str(out, a->group);
    fprintf(out, ",\"store\":\"%s\",\"version\":\"%s\",\"now_ms\":%lld", kpiread_store(a->r),
            KPI_VERSION, (long long)kpi_now_ms());
    fprintf(out, ",\"flushes\":%llu,\"as_of_ms\":", (unsigned long long)m.flushes);
    kpi_json_i64(out, m.as_of_ms);
    fputs(",\"watermark_ms\":", out);
    kpi_json_i64(out, m.watermark_ms);
    fprintf(out, ",\"flush_interval_ms\":%lld,\"lateness_ms\":%lld,\"alerts_window\":",
            (long long)a->c.flush_interval_ms, (long long)a->ws->lateness_ms);
    if (a->alerts_window[0])
        kpi_json_str(out, a->alerts_window);
    else
        fputs("null", out);
    fputs(",\"windows\":[", out);
    for (int w = 0; w < a->ws->n; w++) {
        const struct kpi_window_spec *s = &a->ws->w[w];
        fprintf(out, "%s{\"id\":", w ? "," : "");
        kpi_json_str(out, s->id);
        fputs(",\"name\":", out);
        kpi_json_str(out, s->name);
        fprintf(out, ",\"size_ms\":%lld,\"slide_ms\":%lld", (long long)s->size_ms,
                (long long)s->slide_ms);
        write_window_bounds(out, s, m.head[w], m.closed[w]);
        fputs("}", out);
    }
    fputs("],\"sets\":[", out);
    for (int s = 0; s < a->dims->n_sets; s++) {
        fputs(s ? "," : "", out);
        kpi_json_str(out, a->dims->sets[s].name);
    }
    fputs("]}", out);
    return 200;
}

static unsigned h_kpis(struct kpi_api *a, const struct req *q)
{
    static const char *const allowed[] = {"window", "set", "limit", "offset", "q", NULL};
    const char *why, *badp = check_params(q, allowed, &why);
    if (badp)
        return bad(a, q->out, badp, why);
    int w;
    const char *set;
    unsigned st = window_set(a, q, &w, &set);
    if (st)
        return st;
    unsigned long long limit, offset;
    if (int_param(q, "limit", 1, LIMIT_MAX, 100, &limit))
        return bad(a, q->out, "limit", "not an integer in 1..1000");
    if (int_param(q, "offset", 0, OFFSET_MAX, 0, &offset))
        return bad(a, q->out, "offset", "not an integer in 0..100000000");
    const char *search = param(q, "q");
    if (search && strlen(search) > Q_MAX)
        return bad(a, q->out, "q", "longer than 128 bytes");
    char err[256];
    struct kpiread_meta m;
    int rc = kpiread_meta(a->r, &m, err, sizeof(err));
    struct kpiread_page p;
    if (!rc)
        rc = kpiread_values(a->r, w, set, offset, (uint32_t)limit, search, &p, err, sizeof(err));
    if (rc)
        return unavailable(a, q->out, rc, err);
    FILE *out = q->out;
    fputs("{\"window\":", out);
    kpi_json_str(out, a->ws->w[w].id);
    fputs(",\"set\":", out);
    kpi_json_str(out, set);
    fputs(",\"as_of_ms\":", out);
    kpi_json_i64(out, m.as_of_ms);
    fputs(",\"watermark_ms\":", out);
    kpi_json_i64(out, m.watermark_ms);
    write_window_bounds(out, &a->ws->w[w], m.head[w], m.closed[w]);
    fprintf(out, ",\"total\":%llu,\"total_exact\":%s,\"offset\":%llu,\"limit\":%llu,\"values\":[",
            (unsigned long long)p.total, p.total_exact ? "true" : "false", offset, limit);
    for (size_t i = 0; i < p.n; i++) {
        fputs(i ? ",{\"value\":" : "{\"value\":", out);
        kpi_json_str(out, p.rows[i].value);
        fputc(',', out);
        kpi_json_values(out, &p.rows[i].v);
        fputc('}', out);
    }
    fputs("]}", out);
    kpiread_page_free(&p);
    return 200;
}

static unsigned h_series(struct kpi_api *a, const struct req *q)
{
    static const char *const allowed[] = {"window", "set", "value", "points", NULL};
    const char *why, *badp = check_params(q, allowed, &why);
    if (badp)
        return bad(a, q->out, badp, why);
    int w;
    const char *set;
    unsigned st = window_set(a, q, &w, &set);
    if (st)
        return st;
    const char *value = param(q, "value");
    if (!value && strcmp(set, "all") == 0)
        value = "all";
    if (!value || !value[0])
        return bad(a, q->out, "value", "missing: a value of the set (set=all has the value all)");
    if (strlen(value) > VALUE_MAX)
        return bad(a, q->out, "value", "longer than 512 bytes");
    unsigned long long points;
    if (int_param(q, "points", 1, LIMIT_MAX, 60, &points))
        return bad(a, q->out, "points", "not an integer in 1..1000");
    struct kpiread_point *pts = calloc(points, sizeof(*pts));
    if (!pts)
        return unavailable(a, q->out, KPI_ERR_NOMEM, "out of memory");
    size_t n = 0;
    char err[256];
    int rc = kpiread_series(a->r, w, set, value, pts, points, &n, err, sizeof(err));
    if (rc) {
        free(pts);
        return unavailable(a, q->out, rc, err);
    }
    FILE *out = q->out;
    fputs("{\"window\":", out);
    kpi_json_str(out, a->ws->w[w].id);
    fputs(",\"set\":", out);
    kpi_json_str(out, set);
    fputs(",\"value\":", out);
    kpi_json_str(out, value);
    fprintf(out, ",\"slide_ms\":%lld,\"points\":[", (long long)a->ws->w[w].slide_ms);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "%s{\"bucket\":%lld,\"end\":%lld,\"rev\":%lld,", i ? "," : "",
                (long long)pts[i].bucket, (long long)pts[i].end, (long long)pts[i].rev);
        kpi_json_values(out, &pts[i].v);
        fputc('}', out);
    }
    fputs("]}", out);
    free(pts);
    return 200;
}

static unsigned h_alerts(struct kpi_api *a, const struct req *q)
{
    static const char *const allowed[] = {"limit", NULL};
    const char *why, *badp = check_params(q, allowed, &why);
    if (badp)
        return bad(a, q->out, badp, why);
    unsigned long long limit;
    if (int_param(q, "limit", 1, LIMIT_MAX, 50, &limit))
        return bad(a, q->out, "limit", "not an integer in 1..1000");
    struct kpiread_alert *al = NULL;
    size_t n = 0;
    char err[256];
    int rc = kpiread_alerts(a->r, NULL, limit, &al, &n, err, sizeof(err));
    if (rc)
        return unavailable(a, q->out, rc, err);
    FILE *out = q->out;
    fputs("{\"alerts\":[", out);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? "," : "", out);
        write_alert(out, &al[i]);
    }
    fputs("]}", out);
    free(al);
    return 200;
}

unsigned kpi_api_handle(struct kpi_api *a, const char *path, const struct kpi_api_param *params,
                        size_t n_params, FILE *out)
{
    atomic_fetch_add_explicit(&a->requests, 1, memory_order_relaxed);
    struct req q = {params, n_params, out};
    if (strcmp(path, "meta") == 0)
        return h_meta(a, &q);
    if (strcmp(path, "kpis") == 0)
        return h_kpis(a, &q);
    if (strcmp(path, "series") == 0)
        return h_series(a, &q);
    if (strcmp(path, "alerts") == 0)
        return h_alerts(a, &q);
    fputs("{\"error\":\"not found: /api/v1/meta, /kpis, /series, /alerts, /events\"}", out);
    return 404;
}

/* ---- the watcher: SSE events ---- */

static void publish_kpis(struct kpi_api *a, const struct kpiread_meta *m)
{
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    if (!out)
        return;
    fprintf(out, "{\"flushes\":%llu,\"as_of_ms\":", (unsigned long long)m->flushes);
    kpi_json_i64(out, m->as_of_ms);
    fputs(",\"watermark_ms\":", out);
    kpi_json_i64(out, m->watermark_ms);
    fputs(",\"windows\":{", out);
    for (int w = 0; w < a->ws->n; w++) {
        struct kpi_values v;
        int found = 0;
        char err[256];
        if (kpiread_hash(a->r, w, "all", "all", &v, &found, err, sizeof(err)))
            found = 0;
        fputs(w ? "," : "", out);
        kpi_json_str(out, a->ws->w[w].id);
        fputs(":{\"window\":", out);
        kpi_json_str(out, a->ws->w[w].id);
        write_window_bounds(out, &a->ws->w[w], m->head[w], m->closed[w]);
        fputs(",\"all\":", out);
        if (found) {
            fputs("{\"value\":\"all\",", out);
            kpi_json_values(out, &v);
            fputs("}", out);
        } else {
            fputs("null", out);
        }
        fputs("}", out);
    }
    fputs("}}", out);
    fclose(out);
    kpi_sse_publish(a->hub, "kpis", body);
    free(body);
    atomic_fetch_add_explicit(&a->kpis_events, 1, memory_order_relaxed);
}

static int publish_alerts(struct kpi_api *a, char *last, size_t size)
{
    struct kpiread_alert *al = NULL;
    size_t n = 0;
    char err[256];
    if (kpiread_alerts(a->r, last, 100, &al, &n, err, sizeof(err)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char *body = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&body, &len);
        if (!out)
            break;
        write_alert(out, &al[i]);
        fclose(out);
        kpi_sse_publish(a->hub, "alert", body);
        free(body);
        snprintf(last, size, "%s", al[i].id);
        atomic_fetch_add_explicit(&a->alert_events, 1, memory_order_relaxed);
    }
    free(al);
    return 0;
}

static void *watch_main(void *arg)
{
    struct kpi_api *a = arg;
    uint64_t seen_flushes = 0;
    int64_t seen_as_of = INT64_MIN, last_event = 0;
    char last_alert[48] = "";
    int pending = 0;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        pthread_mutex_unlock(&a->mu);
        char err[256];
        struct kpiread_meta m;
        if (!last_alert[0] &&
            kpiread_alerts_last_id(a->r, last_alert, sizeof(last_alert), err, sizeof(err)))
            last_alert[0] = '\0';
        if (kpiread_meta(a->r, &m, err, sizeof(err)) == 0) {
            if (m.flushes != seen_flushes || m.as_of_ms != seen_as_of)
                pending = 1;
            int64_t now = kpi_now_ms();
            if (pending && now - last_event >= a->c.min_event_ms) {
                seen_flushes = m.flushes;
                seen_as_of = m.as_of_ms;
                last_event = now;
                pending = 0;
                publish_kpis(a, &m);
            }
        }
        if (last_alert[0])
            publish_alerts(a, last_alert, sizeof(last_alert));
        pthread_mutex_lock(&a->mu);
        if (a->stop)
            break;
        struct timespec ts;
        kpi_deadline_ts(&ts, CLOCK_REALTIME, a->c.poll_ms);
        pthread_cond_timedwait(&a->cv, &a->mu, &ts); /* the watcher's period */
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

struct kpi_api *kpi_api_new(const struct kpi_api_conf *c, struct kpiread *r,
                            const struct kpi_windows *ws, const struct kpi_dims *dims,
                            struct kpi_sse *hub)
{
    struct kpi_api *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->c = *c;
    snprintf(a->group, sizeof(a->group), "%s", c->group ? c->group : "");
    snprintf(a->alerts_window, sizeof(a->alerts_window), "%s",
             c->alerts_window ? c->alerts_window : "");
    if (a->c.poll_ms <= 0)
        a->c.poll_ms = 500;
    if (a->c.min_event_ms <= 0)
        a->c.min_event_ms = 1000;
    a->r = r;
    a->ws = ws;
    a->dims = dims;
    a->hub = hub;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    return a;
}

int kpi_api_start(struct kpi_api *a)
{
    if (!a->hub)
        return 0;
    if (pthread_create(&a->th, NULL, watch_main, a))
        return KPI_ERR_NOMEM;
    a->started = 1;
    return 0;
}

void kpi_api_destroy(struct kpi_api *a)
{
    if (!a)
        return;
    if (a->started) {
        pthread_mutex_lock(&a->mu);
        a->stop = 1;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->th, NULL);
    }
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void kpi_api_get_stats(struct kpi_api *a, struct kpi_api_stats *o)
{
    o->requests = atomic_load_explicit(&a->requests, memory_order_relaxed);
    o->bad_requests = atomic_load_explicit(&a->bad_requests, memory_order_relaxed);
    o->store_errors = atomic_load_explicit(&a->store_errors, memory_order_relaxed);
    o->kpis_events = atomic_load_explicit(&a->kpis_events, memory_order_relaxed);
    o->alert_events = atomic_load_explicit(&a->alert_events, memory_order_relaxed);
}
