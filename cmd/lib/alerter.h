/*
 * alerter.h - churn-spike alerting over what the Redis sink wrote.
 *
 * Every time the watched window closes a bucket (the group's closed mark
 * moves), the alerter reads each grouping-set value's rolling churn rate
 * (alerts.kpi: churn_rate, or churn_rate_monthly over the subscriber base) and
 * active subscribers (cmd/lib/kpiread.h: from Redis, or from this process's
 * memory in the demo without Redis), feeds them to that value's detector
 * (engine/alert.h), and records every raise and resolve once per group
 * (kpiread_alert_record: the alert stream and the Pub/Sub channel of
 * docs/redis-schema.md).  Several instances of a group evaluate the same
 * observations; only the one that recorded an alert hands it on for
 * delivery (Alertmanager, webhook: cmd/lib/notify.h).  Observations start
 * once the window has filled since the group's first data (before, its
 * rate climbs as it fills and would make a false baseline).
 */
#ifndef KPI_ALERTER_H
#define KPI_ALERTER_H

#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "dims.h"
#include "kpiread.h"

struct kpi_alerter;
struct kpi_notify;

struct kpi_alerter_conf {
    struct kpiread *store;             /* outlives the alerter */
    const struct kpi_windows *windows; /* outlive the alerter */
    int window;                        /* index of the watched window */
    const char *window_id;             /* its id, e.g. "1h_1m" */
    int kpi; /* the derived KPI watched: KPI_DI_churn_rate or KPI_DI_churn_rate_monthly */
    const char *channel; /* "alerts" */
    int64_t stream_maxlen;
    int64_t poll_ms;
    struct kpi_alert_conf detector;
    struct kpi_notify *notify; /* NULL: no delivery beyond the store */
};

struct kpi_alerter *kpi_alerter_start(const struct kpi_alerter_conf *c, const struct kpi_dims *d,
                                      char *errstr, size_t errstr_size);
void kpi_alerter_stop(struct kpi_alerter *a);
/* Alerts published so far (raised, resolved). */
void kpi_alerter_counts(struct kpi_alerter *a, uint64_t *raised, uint64_t *resolved);
/* The last alert as one line, or "" (for the demo's view). */
void kpi_alerter_last(struct kpi_alerter *a, char *buf, size_t size);

#endif
