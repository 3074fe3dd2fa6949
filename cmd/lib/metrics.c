/* metrics.c - /metrics and /healthz over libmicrohttpd (see metrics.h). */
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dims.h"
#include "err.h"

struct kpi_metrics {
    struct MHD_Daemon *d;
    struct kpi_engine *e;
    pthread_mutex_t mu; /* guards the callbacks below */
    kpi_metrics_extra_fn *extra;
    void *extra_opaque;
    kpi_metrics_health_fn *health;
    void *health_opaque;
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

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body,
                             size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
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
        if (m->extra)
            m->extra(m->extra_opaque, out);
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

struct kpi_metrics *kpi_metrics_start(const char *bind, int port, struct kpi_engine *e,
                                      char *errstr, size_t errsz)
{
    if (port == 0)
        return NULL;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, bind, &sa.sin_addr) != 1) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "http.bind: '%s' is not an IPv4 address", bind);
        return NULL;
    }
    struct kpi_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->e = e;
    pthread_mutex_init(&m->mu, NULL);
    m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, on_request,
                            m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!m->d) {
        kpi_seterr(errstr, errsz, KPI_ERR_IO, "http.port: cannot listen on %s:%d", bind, port);
        pthread_mutex_destroy(&m->mu);
        free(m);
        return NULL;
    }
    return m;
}

void kpi_metrics_set_extra(struct kpi_metrics *m, kpi_metrics_extra_fn *fn, void *opaque)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->extra = fn;
    m->extra_opaque = opaque;
    pthread_mutex_unlock(&m->mu);
}

void kpi_metrics_set_health(struct kpi_metrics *m, kpi_metrics_health_fn *fn, void *opaque)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->health = fn;
    m->health_opaque = opaque;
    pthread_mutex_unlock(&m->mu);
}

void kpi_metrics_stop(struct kpi_metrics *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->d);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
