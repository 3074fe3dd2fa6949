/*
 * api.h - the KPI HTTP API (docs/api.md): /api/v1/meta, /kpis, /series,
 * /alerts, and the producer of the /api/v1/events stream.
 *
 * Handlers are pure functions of (path, query parameters) -> (status, JSON
 * body), reading the store through cmd/lib/kpiread.h, so the HTTP server
 * (metrics.c) only routes.  A watcher thread polls the store's clock once
 * every poll_ms (one small read, whatever the number of clients) and
 * publishes to the SSE hub: a `kpis` event when the group flushed (at most
 * one per min_event_ms) carrying every window's bounds and total, and an
 * `alert` event per new raise or resolve.  Dashboards listen instead of
 * polling, so N dashboards cost the store one reader.
 */
#ifndef KPI_API_H
#define KPI_API_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cmd/lib/kpiread.h"
#include "cmd/lib/sse.h"

struct kpi_api;

struct kpi_api_conf {
    const char *group;         /* the consumer group shown */
    const char *alerts_window; /* window id the alerter watches, or "" */
    int64_t flush_interval_ms; /* for the page's staleness rule */
    int64_t poll_ms;           /* watcher period (default 500) */
    int64_t min_event_ms;      /* at most one kpis event per this (default 1000) */
};

struct kpi_api_param {
    const char *key, *value;
};

/* r and hub must outlive the API.  NULL when out of memory. */
struct kpi_api *kpi_api_new(const struct kpi_api_conf *c, struct kpiread *r,
                            const struct kpi_windows *ws, const struct kpi_dims *dims,
                            struct kpi_sse *hub);
/* The watcher thread (SSE events).  0 or KPI_ERR_NOMEM. */
int kpi_api_start(struct kpi_api *a);
void kpi_api_destroy(struct kpi_api *a); /* stops the watcher */

/* Answer GET `path` (below /api/v1/) with these query parameters: writes
 * the JSON body to out and returns the HTTP status (200, 400 naming the
 * parameter, 404, 503 when the store is unreachable). */
unsigned kpi_api_handle(struct kpi_api *a, const char *path, const struct kpi_api_param *params,
                        size_t n_params, FILE *out);

struct kpi_api_stats {
    uint64_t requests, bad_requests, store_errors;
    uint64_t kpis_events, alert_events;
};
void kpi_api_get_stats(struct kpi_api *a, struct kpi_api_stats *out);

#endif
