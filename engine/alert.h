/*
 * alert.h - churn-spike detection with a baseline and hysteresis.
 *
 * For one series (a grouping-set value in one window), every time one of the
 * window's buckets closes the detector observes the window's churn rate and
 * its sample size (active subscribers).  It keeps an exponentially weighted
 * mean and variance of the earlier observations as the series' own baseline
 * and compares each new one with it:
 *
 *   scale     = max(stddev, rel_floor * mean, abs_floor)
 *   deviation = (rate - mean) / scale
 *
 *   raise    when not raised, the baseline has seen `warmup` observations,
 *            active >= min_active, rate >= floor_rate and deviation >= raise_k
 *   resolve  when raised and deviation <= resolve_k (resolve_k < raise_k:
 *            hysteresis, so a rate hovering at the threshold does not flap)
 *
 * While raised, observations do not feed the baseline, so a long spike cannot
 * become the new normal and the alert resolves when the rate comes back.
 * Observations below min_active neither raise, resolve nor feed the baseline:
 * small samples are noise.  One spike therefore gives exactly one raised and
 * one resolved.
 */
#ifndef KPI_ALERT_H
#define KPI_ALERT_H

#include <stddef.h>
#include <stdint.h>

struct kpi_alert_conf {
    double alpha;        /* EWMA weight of a new observation, 0 < alpha <= 1 */
    double raise_k;      /* deviations above the baseline that raise */
    double resolve_k;    /* deviations above the baseline at or below which it resolves */
    double floor_rate;   /* absolute floor: never raise below this churn rate */
    double rel_floor;    /* the deviation scale is at least rel_floor * mean ... */
    double abs_floor;    /* ... and at least abs_floor */
    uint64_t min_active; /* minimum sample size (active subscribers) */
    int warmup;          /* observations before the baseline is trusted */
};

void kpi_alert_conf_defaults(struct kpi_alert_conf *c);
/* 0, or KPI_ERR_INVAL with a message naming the field. */
int kpi_alert_conf_check(const struct kpi_alert_conf *c, char *errstr, size_t errstr_size);

struct kpi_alert_state {
    double mean;
    double var;
    int n; /* observations in the baseline */
    int raised;
};

enum kpi_alert_change { KPI_ALERT_NONE = 0, KPI_ALERT_RAISED, KPI_ALERT_RESOLVED };

struct kpi_alert_info {
    double rate;      /* the observed churn rate */
    double baseline;  /* the baseline mean it was compared with */
    double threshold; /* the rate that raises: mean + raise_k * scale */
    double deviation;
    uint64_t active;
};

/* Observe one closed bucket's window churn rate.  Returns whether the alert
 * changed state; *info is filled either way. */
enum kpi_alert_change kpi_alert_observe(const struct kpi_alert_conf *c, struct kpi_alert_state *s,
                                        double rate, uint64_t active, struct kpi_alert_info *info);

#endif
