/*
 * metrics.h - the HTTP endpoint operators scrape: /metrics (Prometheus text
 * format 0.0.4) and /healthz.
 *
 * Served by libmicrohttpd on its own thread; every request reads the
 * engine's statistics (kpi_engine_get_stats, a copy taken under the flusher's
 * control mutex, never the per-event path) plus whatever the source adds
 * (consumer lag per partition).
 */
#ifndef KPI_METRICS_H
#define KPI_METRICS_H

#include <stddef.h>
#include <stdio.h>

#include "engine.h"

struct kpi_metrics;

/* Extra lines appended to /metrics (e.g. the Kafka source's lag). */
typedef void(kpi_metrics_extra_fn)(void *opaque, FILE *out);
/* 1 if healthy; else 0 and a reason in why. */
typedef int(kpi_metrics_health_fn)(void *opaque, char *why, size_t why_size);

/* port 0: disabled (returns NULL without error).  NULL with errstr set on
 * failure. */
struct kpi_metrics *kpi_metrics_start(const char *bind, int port, struct kpi_engine *e,
                                      char *errstr, size_t errstr_size);
void kpi_metrics_set_extra(struct kpi_metrics *m, kpi_metrics_extra_fn *fn, void *opaque);
void kpi_metrics_set_health(struct kpi_metrics *m, kpi_metrics_health_fn *fn, void *opaque);
void kpi_metrics_stop(struct kpi_metrics *m);

/* The /metrics body (also used by tests). */
void kpi_metrics_write(FILE *out, struct kpi_engine *e);

#endif
