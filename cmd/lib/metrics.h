/*
 * metrics.h - kpistream's HTTP server: /metrics (Prometheus text format
 * 0.0.4) and /healthz for operators, and, once an API is attached, the
 * dashboard page at / (web/, embedded at build time), the KPI API under
 * /api/v1/ (cmd/lib/api.h) and its event stream /api/v1/events
 * (cmd/lib/sse.h).
 *
 * Served by libmicrohttpd from a small pool of threads (epoll), with a cap
 * on connections and an idle timeout per connection: a client that sends or
 * reads nothing for http.connection_timeout is closed, so a slow or dead
 * peer cannot pin a connection slot.  /metrics reads the engine's statistics
 * (kpi_engine_get_stats, a copy taken under the flusher's control mutex,
 * never the per-event path) plus whatever the extras add (consumer lag,
 * alert delivery).
 */
#ifndef KPI_METRICS_H
#define KPI_METRICS_H

#include <stddef.h>
#include <stdio.h>

#include "engine/engine.h"

struct kpi_metrics;

/* Extra lines appended to /metrics (e.g. the Kafka source's lag). */
typedef void(kpi_metrics_extra_fn)(void *opaque, FILE *out);
/* 1 if healthy; else 0 and a reason in why. */
typedef int(kpi_metrics_health_fn)(void *opaque, char *why, size_t why_size);

struct kpi_api;
struct kpi_sse;

struct kpi_http_conf {
    const char *bind;         /* IPv4 address */
    int port;                 /* 0: disabled; -1: any free port (tests: kpi_metrics_port) */
    unsigned max_connections; /* concurrent connections (0: 256) */
    unsigned timeout_s;       /* idle timeout per connection (0: 30) */
    unsigned threads;         /* polling threads (0: 2) */
};

/* port 0: disabled (returns NULL without error).  NULL with errstr set on
 * failure. */
struct kpi_metrics *kpi_metrics_start(const struct kpi_http_conf *c, struct kpi_engine *e,
                                      char *errstr, size_t errstr_size);
/* The port it listens on. */
int kpi_metrics_port(const struct kpi_metrics *m);
/* Serve the page and /api/v1/ from api and hub (both outlive the server;
 * hub may be NULL: no /api/v1/events).  Call once, before requests matter. */
void kpi_metrics_set_api(struct kpi_metrics *m, struct kpi_api *api, struct kpi_sse *hub);
/* Add lines to /metrics (up to 4 extras). */
void kpi_metrics_set_extra(struct kpi_metrics *m, kpi_metrics_extra_fn *fn, void *opaque);
void kpi_metrics_set_health(struct kpi_metrics *m, kpi_metrics_health_fn *fn, void *opaque);
void kpi_metrics_stop(struct kpi_metrics *m);

/* The /metrics body (also used by tests). */
void kpi_metrics_write(FILE *out, struct kpi_engine *e);

#endif
