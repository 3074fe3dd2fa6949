/*
 * gen.h - a built-in generator of realistic subscriber traffic.
 *
 * Used by kpistream-bench (the core benchmark's corpus), the zero-setup demo,
 * the kpistream-gen load generator and the tests, which tally each event's
 * `info` (truth.h) to know exactly what they produced and compare it with
 * what the engine reports.
 *
 * The traffic
 *
 *   - Deterministic for a seed: its own PRNG (xoshiro256**, seeded through
 *     splitmix64), never rand().  Same conf, same bytes.
 *   - A population of `subscribers` (numbers 0..N-1, ids 46700000000 + n as
 *     an MSISDN would be).  Each has a fixed region, plan and segment drawn
 *     once with realistic skew: regions Zipf-like (eu-west is the largest,
 *     mea the smallest), plans depending on the segment (youth mostly
 *     prepaid, enterprise mostly business).  About one subscriber in ten is
 *     always sent with `sub` as a str of its digits, the others as a uint
 *     (same id either way, so the same HyperLogLog element).  The population
 *     and its attributes depend only on the subscriber number, not on the
 *     seed: a seed picks a day of traffic, not another operator.
 *   - Activity is Zipf(s = zipf_s) across subscribers: the subscriber of
 *     activity rank k makes events with probability proportional to k^-s.
 *     Ranks are spread over the subscriber numbers by a fixed bijection, so
 *     the busy ones are not all at the low numbers.  Sampling is O(1) from a
 *     Walker/Vose alias table built once by kpi_gen_new (8 bytes per
 *     subscriber).
 *   - Event types: nps_rate NPS answers (one third `brand`, the rest
 *     `network`, half of those without the optional `survey` key; scores
 *     skewed to 7..10: about 47% promoters, 31% passives, 22% detractors),
 *     activation_rate activations (three in four with `provision_ms`: mostly
 *     0.2 s to 2 min, one in eight up to 2 h), churn_rate churns (usually
 *     with a `reason`), and usage for the rest.  Usage carries `amount` (an int of
 *     micro-units; one event in eight a float of currency units in whole
 *     cents), and `bytes` and/or `seconds` as data, voice or SMS records do;
 *     one usage event in eight carries an unknown key ("cell") the decoder
 *     must skip.
 *   - Event time: event i is "now" = start_ts_ms + i * 1000 / events_per_sec;
 *     its ts is now minus a uniform jitter in [0, jitter_ms], so events
 *     arrive out of order by at most jitter_ms.
 *   - Churn spike: between event-time offsets [spike_start_ms, spike_end_ms)
 *     from start_ts_ms, the churn probability of subscribers in
 *     spike_segment (and/or spike_region) is multiplied by spike_factor.
 *   - Bad input: a share bad_ratio of events is malformed, rotating through
 *     one generator per decoder reason (decode.h), so that every reason in
 *     `bad_kinds` appears and info->reason names the reason the engine's
 *     decoder must report.  Two of them make assumptions about the engine's
 *     configuration: dim_not_string sends a non-string `region` (region must
 *     be a dimension), and oversized_string sends a churn reason of
 *     max_str_len + 1 bytes (max_str_len must be the engine's
 *     engine.max_string).  ts_in_future sends the time in nanoseconds,
 *     which is in the future under any clock skew the engine accepts.
 *
 *   - Base snapshots (base_every_ms > 0): the subscriber base of every
 *     finest combination (region, plan, segment), as a BSS would publish it
 *     (docs/events.md): for each hour T = floor_hour(start_ts_ms) + k x
 *     base_every_ms, once every event with ts < T has been made (event time
 *     past T + jitter_ms), one `base` event per combination, with ts in T's
 *     hour and count = the combination's initial base + net adds
 *     (activations - churns) of its events with ts < T.  The initial base
 *     is the combination's share of the population times B, where B makes
 *     the default churn rate a monthly churn of base_monthly_churn:
 *     B = events_per_sec x (1 - bad_ratio) x churn_rate x 30 days /
 *     base_monthly_churn.  So a spike's monthly churn shows as a jump over a
 *     steady base.  kpi_gen_info's base_init is the combination's initial base
 *     and count the snapshot; the truth's expected base of a value is the sum
 *     over its combinations of initial base + every net add (truth.h).
 *
 * Encoding: one msgpack map per event, keys as docs/events.md, written by
 * hand into the caller's buffer (msgpack_writer.h): no allocation, no msgpack-c, O(1) per
 * event.  kpi_gen_event_max() bytes always suffice (KPI_GEN_EVENT_MAX when
 * max_str_len <= 200, which includes the default 128).
 *
 * A generator is not thread-safe; use one per thread.  What it generated
 * is tallied exactly by truth.h.
 */
#ifndef KPI_GEN_GEN_H
#define KPI_GEN_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/decode.h"
#include "engine/event.h"
#include "gen/population.h"

#define KPI_GEN_EVENT_MAX       256       /* bytes per event when max_str_len <= 200 */
#define KPI_GEN_MAX_SUBSCRIBERS 100000000 /* the alias table takes 8 bytes each */
#define KPI_GEN_NAME_MAX        32

struct kpi_gen_conf {
    uint64_t seed;
    uint64_t subscribers;   /* population size, 1..KPI_GEN_MAX_SUBSCRIBERS (100000) */
    double zipf_s;          /* activity skew exponent, > 0 (1.1) */
    int64_t start_ts_ms;    /* event time of the first event (1700000000000) */
    double events_per_sec;  /* event-time rate: how fast timestamps advance (10000) */
    int64_t jitter_ms;      /* events may be up to this much older than "now" (2000) */
    double bad_ratio;       /* share of malformed events, 0..1 (0) */
    double nps_rate;        /* share of good events that are NPS answers (0.03) */
    double activation_rate; /* share of activations (0.01) */
    double churn_rate;      /* share of churns, outside a spike (0.005) */
    uint64_t bad_kinds;     /* bad reasons to rotate through, bit (1 << reason);
                               0: every reason the generator can make */
    uint32_t max_str_len;   /* the engine's string limit (128; 0: 128), <= 65535 */
    char spike_segment[KPI_GEN_NAME_MAX]; /* "" for none */
    char spike_region[KPI_GEN_NAME_MAX];  /* "" for none */
    double spike_factor;                  /* churn multiplied by this in the spike (1) */
    int64_t spike_start_ms;               /* spike interval [start, end): offsets of */
    int64_t spike_end_ms;                 /* event time from start_ts_ms */
    int64_t base_every_ms;     /* 0: off; else a multiple of 1 h: base snapshots (below) */
    double base_monthly_churn; /* the base is sized so that churns at churn_rate make this
                                  monthly churn (0.02) */
    uint32_t sites;            /* 0: off; else every good event also carries `site`, the
                                  subscriber's home cell site "site-<n>", n in 0..sites-1
                                  (uniform over subscribers): a high-cardinality dimension
                                  for the scaling benchmark; not in the truth's cells */
};

/* Fill *c with the defaults above. */
void kpi_gen_conf_defaults(struct kpi_gen_conf *c);

/* 0, or KPI_ERR_INVAL with a message naming the bad field. */
int kpi_gen_conf_validate(const struct kpi_gen_conf *c, char *errstr, size_t errstr_size);

/* Ground truth of one generated event. */
struct kpi_gen_info {
    int is_bad;
    enum kpi_bad_reason reason; /* bad: the reason the decoder must report */
    enum kpi_event_type type;   /* good: the type; bad: KPI_EV__COUNT */
    int64_t ts_ms;              /* event time (bad events: the time they were made at) */
    uint64_t sub;               /* subscriber number, 0..subscribers-1 */
    uint64_t sub_id;            /* the id the event carries (kpi_gen_sub_id) */
    int is_sub_str;             /* sent as a str of its digits, not a uint */
    int region, plan, segment;  /* indexes into kpi_gen_*_name */
    const char *region_name, *plan_name, *segment_name;
    int64_t amount_micros;   /* usage: revenue, exactly as the decoder rounds it */
    uint64_t bytes;          /* usage: 0 when absent */
    uint64_t seconds;        /* usage: 0 when absent */
    uint8_t score;           /* nps: 0..10 */
    uint8_t survey;          /* nps: enum kpi_survey */
    const char *reason_text; /* churn: the reason sent, or NULL */
    int has_provision_ms;    /* activation: provision_ms was sent */
    uint64_t provision_ms;   /* activation: 0 when absent */
    uint64_t count;          /* base: the snapshot's count */
    int64_t base_init;       /* base: the combination's initial base */
};

struct kpi_gen;

/* A generator for *c (copied), or NULL when c is invalid (see
 * kpi_gen_conf_validate for why) or memory is short.  Builds the alias table:
 * O(subscribers) time and 8 bytes per subscriber. */
struct kpi_gen *kpi_gen_new(const struct kpi_gen_conf *c);
void kpi_gen_destroy(struct kpi_gen *g);

/* Buffer size that always holds one event of this generator. */
size_t kpi_gen_event_max(const struct kpi_gen *g);

/* Encode the next event into buf[0, cap) and describe it in *info.  Returns
 * 0, or KPI_ERR_FULL if cap is too small (the event is then skipped: the
 * stream goes on with the next one).  No allocation. */
int kpi_gen_next(struct kpi_gen *g, uint8_t *buf, size_t cap, size_t *len,
                 struct kpi_gen_info *info);

/* Events generated so far (including skipped ones). */
uint64_t kpi_gen_count(const struct kpi_gen *g);

/* The subscriber id a subscriber number is sent as (decimal digits when a str). */
uint64_t kpi_gen_sub_id(const struct kpi_gen *g, uint64_t sub);

/* Whether the generator can make a bad event of reason r: every decoder
 * reason but too_late (which depends on the engine's watermark). */
int kpi_gen_can_make(enum kpi_bad_reason r);

#endif
