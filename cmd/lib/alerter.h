/*
 * alerter.h - churn-spike alerting over what the Redis sink wrote.
 *
 * Every time the watched window closes a bucket (the group's
 * `closed:<window>` mark in Redis moves), the alerter reads each grouping-set
 * value's rolling churn rate and active subscribers from its KPI hash
 * (docs/redis-schema.md), feeds them to that value's detector
 * (engine/alert.h), and publishes every raise and resolve to the stream
 * `<prefix>:{<group>}:alerts` (XADD, bounded) and the Pub/Sub channel
 * `<prefix>:{<group>}:<channel>`.  Several instances of a group evaluate the
 * same observations; a SET NX marker per (value, bucket, state) makes each
 * alert appear once.
 */
#ifndef KPI_ALERTER_H
#define KPI_ALERTER_H

#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "dims.h"

struct kpi_alerter;

struct kpi_alerter_conf {
    const char *redis_url;
    const char *prefix;  /* "kpi" */
    const char *group;   /* consumer group: the hash tag */
    uint32_t key_groups; /* redis.key_groups: where the KPIs are (docs/redis-schema.md) */
    const char *window;  /* window id, e.g. "1h_1m" */
    const char *channel; /* "alerts" */
    int64_t stream_maxlen;
    int64_t poll_ms;
    int64_t timeout_ms;
    struct kpi_alert_conf detector;
};

struct kpi_alerter *kpi_alerter_start(const struct kpi_alerter_conf *c, const struct kpi_dims *d,
                                      char *errstr, size_t errstr_size);
void kpi_alerter_stop(struct kpi_alerter *a);
/* Alerts published so far (raised, resolved). */
void kpi_alerter_counts(struct kpi_alerter *a, uint64_t *raised, uint64_t *resolved);
/* The last alert as one line, or "" (for the demo's view). */
void kpi_alerter_last(struct kpi_alerter *a, char *buf, size_t size);

#endif
