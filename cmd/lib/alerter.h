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

#include "engine/alert.h"
#include "engine/dims.h"
#include "cmd/lib/kpiread.h"

struct kpi_alerter;
struct kpi_notify;

struct kpi_alerter_conf {
    struct kpiread *store;             /* outlives the alerter */
    const struct kpi_windows *windows; /* outlive the alerter */
    int window;                        /* index of the watched window */
    const char *window_id;             /* its id, e.g. "1h_1m" */
    const char *channel;               /* "alerts" */
    int64_t stream_maxlen;
    int64_t poll_ms;
    struct kpi_alert_conf detector;
    struct kpi_notify *notify; /* NULL: no delivery beyond the store */
    /* The derived KPI watched (alerts.kpi): KPI_DI_churn_rate (0, so a
     * zeroed or positional conf keeps the old behaviour) or
     * KPI_DI_churn_rate_monthly. */
    int kpi;
};

struct kpi_alerter *kpi_alerter_start(const struct kpi_alerter_conf *c, const struct kpi_dims *d,
                                      char *errstr, size_t errstr_size);
void kpi_alerter_stop(struct kpi_alerter *a);
/* Alerts published so far (raised, resolved). */
void kpi_alerter_counts(struct kpi_alerter *a, uint64_t *raised, uint64_t *resolved);
/* The closed mark whose evaluation went through last (INT64_MIN: none yet):
 * a mark advances only once every value was observed for it, and an
 * evaluation cut short by a Redis error is done again, never skipped. */
int64_t kpi_alerter_closed(struct kpi_alerter *a);
/* Alerts waiting to be recorded again (their first attempt failed: OOM,
 * READONLY, NOPERM, Redis down); they are retried, in order, before the
 * next evaluation. */
size_t kpi_alerter_pending(struct kpi_alerter *a);
/* The last alert as one line, or "" (for the demo's view); bytes outside
 * printable ASCII in its set and value are written \xNN. */
void kpi_alerter_last(struct kpi_alerter *a, char *buf, size_t size);

#endif
