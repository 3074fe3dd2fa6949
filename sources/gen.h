/*
 * gen.h - a built-in generator of realistic subscriber traffic.
 *
 * Deterministic for a seed.  A population of subscribers, each with a fixed
 * region, plan and segment drawn with realistic skew; activity Zipf-like
 * across subscribers (a few are very busy, most are quiet); a mix of event
 * types close to an operator's (mostly usage with revenue, some NPS answers,
 * activations and churns at a base rate); event times advancing at a set
 * rate with bounded out-of-order jitter; an optional churn spike in one
 * segment; and, on request, malformed events of many kinds, each tagged with
 * the decoder reason it must produce.  Events are encoded as msgpack maps
 * (docs/events.md) into the caller's buffer without allocating.
 *
 * Used by kpistream-bench (the core benchmark's corpus), the demo, the
 * kpistream-gen load generator and tests, which tally `info` to know exactly
 * what they produced.
 */
#ifndef KPI_GEN_H
#define KPI_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "decode.h"
#include "event.h"

struct kpi_gen_conf {
    uint64_t seed;
    uint64_t subscribers;   /* population size */
    double zipf_s;          /* activity skew exponent (> 0, != 1) */
    int64_t start_ts_ms;    /* event time of the first event */
    double events_per_sec;  /* event-time rate: how fast timestamps advance */
    int64_t jitter_ms;      /* events may be up to this much older than "now" */
    double bad_ratio;       /* share of malformed events, 0..1 */
    double churn_rate;      /* share of churn events (base) */
    char spike_segment[32]; /* "" for none */
    double spike_factor;    /* churn multiplied by this in the spike */
    int64_t spike_start_ms; /* spike interval, as offsets of event time */
    int64_t spike_end_ms;   /* from start_ts_ms */
};

void kpi_gen_conf_defaults(struct kpi_gen_conf *c);

struct kpi_gen_info {
    int is_bad;
    enum kpi_bad_reason reason; /* the decoder reason a bad event produces */
    enum kpi_event_type type;
    int64_t ts_ms;
    uint64_t sub;
    int region, plan, segment; /* indexes into kpi_gen_*_name */
    int64_t amount_micros;
    uint8_t score;
    uint8_t survey;
};

struct kpi_gen;

struct kpi_gen *kpi_gen_new(const struct kpi_gen_conf *c);
void kpi_gen_destroy(struct kpi_gen *g);

/* Encode the next event into buf[0, cap) (256 bytes always suffice) and
 * describe it.  0, or KPI_ERR_FULL if cap is too small. */
int kpi_gen_next(struct kpi_gen *g, uint8_t *buf, size_t cap, size_t *len,
                 struct kpi_gen_info *info);

/* The subscriber id as the event carries it (decimal digits when a str). */
uint64_t kpi_gen_sub_id(const struct kpi_gen *g, uint64_t sub);

int kpi_gen_n_regions(void);
int kpi_gen_n_plans(void);
int kpi_gen_n_segments(void);
const char *kpi_gen_region_name(int i);
const char *kpi_gen_plan_name(int i);
const char *kpi_gen_segment_name(int i);

/* Exact tallies of what was generated. */
struct kpi_gen_truth {
    uint64_t events, good, bad;
    uint64_t by_type[KPI_EV__COUNT];
    uint64_t bad_by_reason[KPI_BAD__COUNT];
    int64_t revenue;
    uint64_t nps[KPI_SURVEY__COUNT][3]; /* promoters, passives, detractors */
    uint64_t churns_by_segment[16];
};

void kpi_gen_truth_add(struct kpi_gen_truth *t, const struct kpi_gen_info *info);
void kpi_gen_truth_write_json(FILE *out, const struct kpi_gen_truth *t);

#endif
