/* metrics.c - /metrics and /healthz over libmicrohttpd (see metrics.h). */
#include "cmd/lib/metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/lib/api.h"
#include "engine/dims.h"
#include "engine/err.h"
#include "cmd/lib/sse.h"
#include "cmd/lib/webassets.h"

#define MAX_EXTRAS 4
#define MAX_PARAMS 16

struct kpi_metrics {
    struct MHD_Daemon *d;
    struct kpi_engine *e;
    int port;
    pthread_mutex_t mu; /* guards the callbacks below */
    kpi_metrics_extra_fn *extra[MAX_EXTRAS];
    void *extra_opaque[MAX_EXTRAS];
    int n_extra;
    kpi_metrics_health_fn *health;
    void *health_opaque;
    struct kpi_api *api;
    struct kpi_sse *hub;
};

static const char *type_names[KPI_EV__COUNT] = {"usage", "activation", "churn", "nps"};

void kpi_metrics_write(FILE *out, struct kpi_engine *e)
{
    struct kpi_engine_stats st;
    kpi_engine_get_stats(e, &st);
    const struct kpi_dims *d = kpi_engine_dims(e);

    fprintf(out, "# HELP kpistream_events_total Valid events aggregated, by type.\n"
                 "# TYPE kpistream_events_total counter\n");
    for (int t = 0; t < KPI_EV__COUNT; t++)
        fprintf(out, "kpistream_events_total{type=\"%s\"} %llu\n", type_names[t],
                (unsigned long long)st.events.by_type[t]);
    fprintf(out,
            "# HELP kpistream_events_flushed_total Valid events in deltas the sink applied.\n"
            "# TYPE kpistream_events_flushed_total counter\n"
            "kpistream_events_flushed_total %llu\n",
            (unsigned long long)st.flushed_events);
    fprintf(out, "# HELP kpistream_bad_events_total Rejected events by reason (dead-lettered).\n"
                 "# TYPE kpistream_bad_events_total counter\n");
    for (int r = 1; r < KPI_BAD__COUNT; r++)
        if (r != KPI_BAD_TOO_LATE)
            fprintf(out, "kpistream_bad_events_total{reason=\"%s\"} %llu\n",
                    kpi_bad_reason_name((enum kpi_bad_reason)r),
                    (unsigned long long)st.events.bad[r]);
    fprintf(out,
            "# HELP kpistream_late_events_total Events behind the watermark (dead-lettered).\n"
            "# TYPE kpistream_late_events_total counter\n"
            "kpistream_late_events_total %llu\n",
            (unsigned long long)st.events.bad[KPI_BAD_TOO_LATE]);
    fprintf(out, "# HELP kpistream_overflow_events_total Events whose value folded into "
                 "__other__, by grouping set.\n"
                 "# TYPE kpistream_overflow_events_total counter\n");
    for (int s = 1; s < d->n_sets; s++)
        fprintf(out, "kpistream_overflow_events_total{set=\"%s\"} %llu\n", d->sets[s].name,
                (unsigned long long)st.events.overflow[s]);
    fprintf(out, "# HELP kpistream_grouping_set_values Values interned per grouping set.\n"
                 "# TYPE kpistream_grouping_set_values gauge\n");
    for (int s = 0; s < d->n_sets; s++)
        fprintf(out, "kpistream_grouping_set_values{set=\"%s\"} %u\n", d->sets[s].name,
                kpi_dims_value_count(d, s));
    fprintf(out,
            "# HELP kpistream_flushes_total Deltas applied by the sink.\n"
            "# TYPE kpistream_flushes_total counter\n"
            "kpistream_flushes_total %llu\n"
            "# HELP kpistream_flush_errors_total Failed flush attempts by cause (each is "
            "retried, unless it fenced).\n"
            "# TYPE kpistream_flush_errors_total counter\n",
            (unsigned long long)st.flushes);
    for (int i = 0; i < st.n_flush_error_reasons; i++)
        fprintf(out, "kpistream_flush_errors_total{reason=\"%s\"} %llu\n",
                st.flush_error_reasons[i].name,
                (unsigned long long)st.flush_error_reasons[i].count);
    fprintf(out, "# HELP kpistream_flush_duration_seconds Time the sink took per flush attempt.\n"
                 "# TYPE kpistream_flush_duration_seconds histogram\n");
    unsigned long long cum = 0;
    for (int i = 0; i < 15; i++) {
        cum += st.flush_lat_hist[i];
        fprintf(out, "kpistream_flush_duration_seconds_bucket{le=\"%g\"} %llu\n",
                0.001 * (double)(1u << i), cum);
    }
    cum += st.flush_lat_hist[15];
    fprintf(out,
            "kpistream_flush_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
            "kpistream_flush_duration_seconds_sum %.6f\n"
            "kpistream_flush_duration_seconds_count %llu\n",
            cum, (double)st.flush_lat_us_sum / 1e6, cum);
    fprintf(out,
            "# HELP kpistream_state_bytes Memory held by aggregation state.\n"
            "# TYPE kpistream_state_bytes gauge\n"
            "kpistream_state_bytes %zu\n"
            "# HELP kpistream_pending_cells Cells waiting to be flushed.\n"
            "# TYPE kpistream_pending_cells gauge\n"
            "kpistream_pending_cells %llu\n"
            "# HELP kpistream_backpressured 1 while the sink fails and consumption is paused.\n"
            "# TYPE kpistream_backpressured gauge\n"
            "kpistream_backpressured %d\n"
            "# HELP kpistream_fenced 1 once the sink's offsets showed another owner.\n"
            "# TYPE kpistream_fenced gauge\n"
            "kpistream_fenced %d\n"
            "# HELP kpistream_revoked_events_total Events of revoked partitions left to the "
            "new owner.\n"
            "# TYPE kpistream_revoked_events_total counter\n"
            "kpistream_revoked_events_total %llu\n",
            st.state_bytes, (unsigned long long)st.pending_cells, st.backpressured, st.fenced,
            (unsigned long long)st.events.revoked);
    if (st.watermark != INT64_MIN)
        fprintf(out,
                "# HELP kpistream_watermark_seconds Event-time watermark (Unix seconds).\n"
                "# TYPE kpistream_watermark_seconds gauge\n"
                "kpistream_watermark_seconds %.3f\n",
                (double)st.watermark / 1000.0);
}

static void api_metrics(FILE *out, struct kpi_api *api, struct kpi_sse *hub)
{
    struct kpi_api_stats as;
    kpi_api_get_stats(api, &as);
    fprintf(out,
            "# HELP kpistream_api_requests_total API requests answered.\n"
            "# TYPE kpistream_api_requests_total counter\n"
            "kpistream_api_requests_total %llu\n"
            "# HELP kpistream_api_bad_requests_total API requests refused with 400.\n"
            "# TYPE kpistream_api_bad_requests_total counter\n"
            "kpistream_api_bad_requests_total %llu\n"
            "# HELP kpistream_api_store_errors_total API requests answered 503 (store "
            "unreachable).\n"
            "# TYPE kpistream_api_store_errors_total counter\n"
            "kpistream_api_store_errors_total %llu\n",
            (unsigned long long)as.requests, (unsigned long long)as.bad_requests,
            (unsigned long long)as.store_errors);
    if (!hub)
        return;
    struct kpi_sse_stats ss;
    kpi_sse_get_stats(hub, &ss);
    fprintf(out,
            "# HELP kpistream_sse_clients Event-stream clients connected.\n"
            "# TYPE kpistream_sse_clients gauge\n"
            "kpistream_sse_clients %llu\n"
            "# HELP kpistream_sse_refused_total Event-stream clients refused (limit reached).\n"
            "# TYPE kpistream_sse_refused_total counter\n"
            "kpistream_sse_refused_total %llu\n"
            "# HELP kpistream_sse_dropped_total Event-stream clients disconnected for falling "
            "behind.\n"
            "# TYPE kpistream_sse_dropped_total counter\n"
            "kpistream_sse_dropped_total %llu\n"
            "# HELP kpistream_sse_events_total Events published to the stream.\n"
            "# TYPE kpistream_sse_events_total counter\n"
            "kpistream_sse_events_total %llu\n"
            "# HELP kpistream_sse_ring_bytes Bytes held by the stream's ring of recent events.\n"
            "# TYPE kpistream_sse_ring_bytes gauge\n"
            "kpistream_sse_ring_bytes %llu\n",
            (unsigned long long)ss.clients, (unsigned long long)ss.refused,
            (unsigned long long)ss.dropped, (unsigned long long)ss.events,
            (unsigned long long)ss.ring_bytes);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body,
                             size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned code, const char *json)
{
    char *body = strdup(json);
    return body ? reply(c, code, "application/json", body, strlen(body)) : MHD_NO;
}

static enum MHD_Result serve_asset(struct MHD_Connection *c, const char *url)
{
    if (strcmp(url, "/") == 0)
        url = "/index.html";
    for (size_t i = 0; i < kpi_web_n_assets; i++) {
        const struct kpi_web_asset *a = &kpi_web_assets[i];
        if (strcmp(a->path, url) != 0)
            continue;
        struct MHD_Response *r = MHD_create_response_from_buffer(a->len, (void *)(uintptr_t)a->data,
                                                                 MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Content-Type", a->type);
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; "
                                "frame-ancestors 'none'");
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    return reply_json(c, 404, "{\"error\":\"not found\"}");
}

struct params {
    struct kpi_api_param p[MAX_PARAMS];
    size_t n;
    int too_many;
};

static enum MHD_Result collect_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    struct params *ps = cls;
    if (ps->n == MAX_PARAMS) {
        ps->too_many = 1;
        return MHD_NO;
    }
    ps->p[ps->n].key = key;
    ps->p[ps->n].value = value;
    ps->n++;
    return MHD_YES;
}

static enum MHD_Result serve_api(struct kpi_metrics *m, struct MHD_Connection *c, const char *path)
{
    if (strcmp(path, "events") == 0) {
        if (!m->hub)
            return reply_json(c, 404, "{\"error\":\"no event stream\"}");
        int full = 0;
        struct MHD_Response *r = kpi_sse_response(
            m->hub, c, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID"), &full);
        if (!r)
            return full ? reply_json(c, 503,
                                     "{\"error\":\"too many event-stream clients "
                                     "(http.sse_max_clients)\"}")
                        : MHD_NO;
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    struct params ps;
    memset(&ps, 0, sizeof(ps));
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_param, &ps);
    if (ps.too_many)
        return reply_json(c, 400, "{\"error\":\"more than 16 parameters\"}");
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    if (!out)
        return MHD_NO;
    unsigned code = kpi_api_handle(m->api, path, ps.p, ps.n, out);
    fclose(out);
    return reply(c, code, "application/json", body, len);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    struct kpi_metrics *m = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, 405, "text/plain", strdup("method not allowed\n"), 19);
    pthread_mutex_lock(&m->mu);
    int has_api = m->api != NULL;
    pthread_mutex_unlock(&m->mu);
    if (has_api && strncmp(url, "/api/v1/", 8) == 0)
        return serve_api(m, c, url + 8);
    if (has_api && strcmp(url, "/metrics") != 0 && strcmp(url, "/healthz") != 0)
        return serve_asset(c, url);
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    if (!out)
        return MHD_NO;
    unsigned code = 200;
    const char *type = "text/plain; charset=utf-8";
    if (strcmp(url, "/metrics") == 0) {
        type = "text/plain; version=0.0.4; charset=utf-8";
        kpi_metrics_write(out, m->e);
        pthread_mutex_lock(&m->mu);
        for (int i = 0; i < m->n_extra; i++)
            m->extra[i](m->extra_opaque[i], out);
        if (m->api)
            api_metrics(out, m->api, m->hub);
        pthread_mutex_unlock(&m->mu);
    } else if (strcmp(url, "/healthz") == 0) {
        char why[256] = "";
        int ok = 1;
        pthread_mutex_lock(&m->mu);
        if (m->health)
            ok = m->health(m->health_opaque, why, sizeof(why));
        pthread_mutex_unlock(&m->mu);
        code = ok ? 200 : 503;
        fprintf(out, "%s\n", ok ? "ok" : why);
    } else {
        code = 404;
        fprintf(out, "not found: try /metrics or /healthz\n");
    }
    fclose(out);
    return reply(c, code, type, body, len);
}

struct kpi_metrics *kpi_metrics_start(const struct kpi_http_conf *hc, struct kpi_engine *e,
                                      char *errstr, size_t errsz)
{
    if (hc->port == 0)
        return NULL;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(hc->port < 0 ? 0 : (uint16_t)hc->port);
    if (inet_pton(AF_INET, hc->bind, &sa.sin_addr) != 1) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "http.bind: '%s' is not an IPv4 address",
                   hc->bind);
        return NULL;
    }
    struct kpi_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->e = e;
    pthread_mutex_init(&m->mu, NULL);
    unsigned limit = hc->max_connections ? hc->max_connections : 256;
    unsigned timeout = hc->timeout_s ? hc->timeout_s : 30;
    unsigned threads = hc->threads ? hc->threads : 2;
    /* epoll + a thread pool; suspend/resume for the event stream (sse.h). */
    m->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
        on_request, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
        limit, MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)128, MHD_OPTION_END);
    if (!m->d) {
        kpi_seterr(errstr, errsz, KPI_ERR_IO, "http.port: cannot listen on %s:%d", hc->bind,
                   hc->port);
        pthread_mutex_destroy(&m->mu);
        free(m);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    m->port = di ? di->port : hc->port;
    return m;
}

int kpi_metrics_port(const struct kpi_metrics *m)
{
    return m ? m->port : 0;
}

/* The setters do nothing without a server (m NULL, http.port 0); with one,
 * this takes the lock that guards the callbacks, and says so. */
static int lock_callbacks(struct kpi_metrics *m)
{
    if (m)
        pthread_mutex_lock(&m->mu);
    return m != NULL;
}

void kpi_metrics_set_api(struct kpi_metrics *m, struct kpi_api *api, struct kpi_sse *hub)
{
    if (!lock_callbacks(m))
        return;
    m->api = api;
    m->hub = hub;
    pthread_mutex_unlock(&m->mu);
}

void kpi_metrics_set_extra(struct kpi_metrics *m, kpi_metrics_extra_fn *fn, void *opaque)
{
    if (!lock_callbacks(m))
        return;
    if (m->n_extra < MAX_EXTRAS) {
        m->extra[m->n_extra] = fn;
        m->extra_opaque[m->n_extra] = opaque;
        m->n_extra++;
    }
    pthread_mutex_unlock(&m->mu);
}

void kpi_metrics_set_health(struct kpi_metrics *m, kpi_metrics_health_fn *fn, void *opaque)
{
    if (!lock_callbacks(m))
        return;
    m->health = fn;
    m->health_opaque = opaque;
    pthread_mutex_unlock(&m->mu);
}

void kpi_metrics_stop(struct kpi_metrics *m)
{
    if (!m)
        return;
    /* A suspended event-stream connection must be resumed before the daemon
     * stops (sse.h). */
    kpi_sse_shutdown(m->hub);
    MHD_stop_daemon(m->d);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
