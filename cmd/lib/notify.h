/*
 * notify.h - churn-spike alerts delivered to Prometheus Alertmanager (v2 API,
 * POST /api/v2/alerts) and to a webhook, at least once.
 *
 * Each raise or resolve the alerter recorded (once per group) becomes one
 * JSON body, the same for both targets: Alertmanager's list of postable
 * alerts with one alert,
 *
 *   [{"labels":{"alertname":"ChurnSpike","group":"kpistream","window":"1h_1m",
 *               "set":"segment","value":"youth","severity":"warning"},
 *     "annotations":{"summary":"...","rate":"0.031","baseline":"0.004",
 *                    "threshold":"0.006","active":"15183","dedup_key":"..."},
 *     "startsAt":"...","endsAt":"...","generatorURL":"http://.../"}]
 *
 * A raise carries endsAt = now + 4 x resend_interval and is re-posted every
 * resend_interval while active, as Alertmanager expects of a client (if
 * kpistream dies, Alertmanager resolves it by itself); a resolve carries
 * endsAt = the resolve time.  The dedup key
 * (`<group>/<window>/<set>/<value>/<bucket_end>/<state>`) is stable across
 * retries and instances; the webhook also gets it as Idempotency-Key.
 *
 * Delivery: one thread, one FIFO queue per target (a resolve never overtakes
 * its raise), retried with exponential backoff from retry_min to retry_max
 * until it succeeds (2xx).  Nothing is dropped silently: failed attempts are
 * counted and logged; only a queue full (queue_max, a target down for a very
 * long time) drops, and that is counted and logged too.  Metrics:
 * kpi_notify_write_metrics.
 */
#ifndef KPI_NOTIFY_H
#define KPI_NOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cmd/lib/kpiread.h"

struct kpi_notify;

struct kpi_notify_conf {
    const char *alertmanager_url; /* base URL ("http://host:9093"); NULL/"": none */
    const char *webhook_url;      /* full URL; NULL/"": none */
    const char *group;            /* the consumer group (label "group") */
    const char *generator_url;    /* the dashboard's URL, or NULL */
    int64_t timeout_ms;           /* per HTTP request */
    int64_t retry_min_ms, retry_max_ms;
    int64_t resend_ms; /* re-post active alerts to Alertmanager this often */
    size_t queue_max;  /* per target */
};

/* NULL (errstr set) on a bad URL or when out of memory; a conf with no
 * target gives a notifier that does nothing. */
struct kpi_notify *kpi_notify_new(const struct kpi_notify_conf *c, char *errstr,
                                  size_t errstr_size);
/* Delivers what is queued for up to drain_ms, then stops. */
void kpi_notify_destroy(struct kpi_notify *n, int64_t drain_ms);
/* Queue a recorded raise or resolve for every target (never blocks). */
void kpi_notify_alert(struct kpi_notify *n, const struct kpiread_alert *a);

struct kpi_notify_stats {
    uint64_t sent[2];     /* [0] alertmanager, [1] webhook: delivered */
    uint64_t failures[2]; /* failed attempts (each retried) */
    uint64_t dropped[2];  /* queue full */
    uint64_t queued[2];   /* waiting now */
    uint64_t resent;      /* re-posts of active alerts to Alertmanager */
};
void kpi_notify_get_stats(struct kpi_notify *n, struct kpi_notify_stats *out);
/* /metrics lines (a kpi_metrics_extra_fn). */
void kpi_notify_write_metrics(void *n, FILE *out);

#endif
