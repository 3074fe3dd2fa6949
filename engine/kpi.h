/*
 * kpi.h - the exact counters kept per bucket, and the KPIs derived from them.
 *
 * Counters are int64 and exact (revenue in micro-units of currency).  KPIs are
 * derived, never stored as running values, so a window's KPIs are always the
 * formula applied to the window's summed counters and its distinct-subscriber
 * estimate.  Definitions (docs/kpis.md):
 *
 *   churn rate  = churns / active subscribers
 *   ARPU        = revenue / active subscribers      (currency units)
 *   NPS(survey) = 100 * (promoters - detractors) / responses
 *                 promoters score 9-10, passives 7-8, detractors 0-6
 *
 * A KPI whose denominator is zero is undefined; it is reported as absent
 * (has_* = 0), never as 0 or NaN.
 */
#ifndef KPI_KPI_H
#define KPI_KPI_H

#include <stdint.h>

#include "event.h"

enum { KPI_NPS_PROMOTERS = 0, KPI_NPS_PASSIVES = 1, KPI_NPS_DETRACTORS = 2 };

struct kpi_counters {
    int64_t events;  /* valid events of every type */
    int64_t usage;   /* usage events */
    int64_t revenue; /* micro-units */
    int64_t activations;
    int64_t churns;
    int64_t bytes;
    int64_t seconds;
    int64_t nps[KPI_SURVEY__COUNT][3]; /* [survey][promoters/passives/detractors] */
};

struct kpi_values {
    struct kpi_counters c;
    uint64_t active; /* distinct subscribers (HyperLogLog estimate) */
    int has_churn_rate, has_arpu, has_nps_network, has_nps_brand;
    double churn_rate;  /* 0..1 (can exceed 1 only through HLL error) */
    double arpu;        /* currency units per active subscriber */
    double nps_network; /* -100..100 */
    double nps_brand;
};

/* a + b, saturated at the int64 limits: counters never wrap.  The decoder
 * bounds every input at 2^53 (KPI_MAX_QUANTITY), so reaching a limit takes
 * more than a thousand events at that bound in one cell. */
static inline int64_t kpi_sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* Count one valid event. */
static inline void kpi_counters_count(struct kpi_counters *c, const struct kpi_event *ev)
{
    c->events++;
    switch (ev->type) {
    case KPI_EV_USAGE:
        c->usage++;
        c->revenue = kpi_sat_add(c->revenue, ev->amount_micros);
        c->bytes = kpi_sat_add(c->bytes, (int64_t)ev->bytes);
        c->seconds = kpi_sat_add(c->seconds, (int64_t)ev->seconds);
        break;
    case KPI_EV_ACTIVATION: c->activations++; break;
    case KPI_EV_CHURN: c->churns++; break;
    case KPI_EV_NPS:
        c->nps[ev->survey][ev->score >= 9   ? KPI_NPS_PROMOTERS
                           : ev->score >= 7 ? KPI_NPS_PASSIVES
                                            : KPI_NPS_DETRACTORS]++;
        break;
    default: break;
    }
}

void kpi_counters_add(struct kpi_counters *dst, const struct kpi_counters *src);
void kpi_counters_sub(struct kpi_counters *dst, const struct kpi_counters *src);
int kpi_counters_is_zero(const struct kpi_counters *c);

/* Derive the KPIs from summed counters and a distinct-subscriber count. */
void kpi_values_compute(struct kpi_values *v, const struct kpi_counters *c, uint64_t active);

/* NPS of one survey's counts; 0 when there are no responses (check has_*). */
double kpi_nps(const int64_t counts[3]);

#endif
