/*
 * kpi.h - the exact counters kept per bucket, and the KPIs derived from them.
 *
 * Which counters and KPIs there are, how an event counts and each KPI's
 * formula are one list, engine/kpi_schema.h; this header turns it into the
 * types and the counting function.  Counters are int64 and exact (revenue in
 * micro-units of currency).  KPIs are derived, never stored as running
 * values, so a window's KPIs are always the formula applied to the window's
 * summed counters and its distinct-subscriber estimate.  Definitions
 * (docs/kpis.md):
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

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/event.h"
#include "engine/kpi_schema.h"

enum { KPI_NPS_PROMOTERS = 0, KPI_NPS_PASSIVES = 1, KPI_NPS_DETRACTORS = 2 };

/* Counter indexes: KPI_CI_events, ...; KPI_NCOUNTERS counters in all. */
#define KPI_CI_(name, when, add, doc) KPI_CI_##name,
enum { KPI_COUNTERS(KPI_CI_) KPI_NCOUNTERS };
#undef KPI_CI_

/* Derived KPI indexes: KPI_DI_churn_rate, ...; KPI_NDERIVED in all. */
#define KPI_DI_(name, num, den, head, fmt, scale, doc) KPI_DI_##name,
enum { KPI_DERIVED(KPI_DI_) KPI_NDERIVED };
#undef KPI_DI_

/* The counters, by name (c->churns), by schema index (c->v[KPI_CI_churns]:
 * the struct is an int64 array, which kpi_counters_add and the sinks rely
 * on), and the NPS ones also as nps[survey][KPI_NPS_PROMOTERS...]. */
#define KPI_FIELD_(name, when, add, doc) int64_t name;
struct kpi_counters {
    union {
        struct {
            KPI_COUNTERS(KPI_FIELD_)
        };
        int64_t v[KPI_NCOUNTERS];
        struct {
            int64_t nps_at_[KPI_CI_nps_network_promoters];
            int64_t nps[KPI_SURVEY__COUNT][3]; /* [survey][promoters/passives/detractors] */
        };
    };
};
#undef KPI_FIELD_

_Static_assert(sizeof(struct kpi_counters) == KPI_NCOUNTERS * sizeof(int64_t),
               "struct kpi_counters is an int64 array");
_Static_assert(KPI_NCOUNTERS <= 53, "a bit mask of the counters must stay exact in a double "
                                    "(the Redis script reads the sink's counter masks in Lua)");
_Static_assert(offsetof(struct kpi_counters, nps[KPI_SURVEY_NETWORK][KPI_NPS_PROMOTERS]) ==
                       offsetof(struct kpi_counters, nps_network_promoters) &&
                   offsetof(struct kpi_counters, nps[KPI_SURVEY_BRAND][KPI_NPS_DETRACTORS]) ==
                       offsetof(struct kpi_counters, nps_brand_detractors),
               "the NPS counters are listed in [survey][class] order");

/* Where a base comes from (docs/kpis.md, "Subscriber base"): the BSS's
 * snapshots, or the distinct subscribers of a 30-day window ("active base"). */
enum kpi_base_source { KPI_BASE_NONE = 0, KPI_BASE_SNAPSHOT, KPI_BASE_ACTIVE };

/* The KPIs of a window: its counters, its distinct subscribers, and each
 * derived KPI by name (v->churn_rate, defined when v->has_churn_rate) or by
 * index (v->derived[KPI_DI_churn_rate], v->has[KPI_DI_churn_rate]). */
#define KPI_HAS_(name, num, den, head, fmt, scale, doc) int has_##name;
#define KPI_VAL_(name, num, den, head, fmt, scale, doc) double name;
struct kpi_values {
    struct kpi_counters c;
    uint64_t active; /* distinct subscribers (HyperLogLog estimate) */
    double base;     /* subscriber base at the window's start (docs/kpis.md) */
    int has_base;    /* 0: unknown (the monthly KPIs are then undefined) */
    int base_source; /* enum kpi_base_source: where `base` comes from */
    union {
        struct {
            KPI_DERIVED(KPI_HAS_)
        };
        int has[KPI_NDERIVED];
    };
    union {
        struct {
            KPI_DERIVED(KPI_VAL_)
        };
        double derived[KPI_NDERIVED];
    };
};
#undef KPI_HAS_
#undef KPI_VAL_

/* The schema's names and display hints, by index. */
struct kpi_derived_def {
    const char *name;
    const char *head, *fmt; /* the stdout table: heading, printf format of value x scale */
    double scale;
};
extern const char *const kpi_counter_names[KPI_NCOUNTERS];
extern const struct kpi_derived_def kpi_derived_defs[KPI_NDERIVED];

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

/* One counter's rule as a statement: count event `e` into counters `c` (both
 * in scope).  KPI_COUNTERS(KPI_COUNTER_RULE) counts an event; the generator's
 * truth applies it to its own event description. */
#define KPI_COUNTER_RULE(name, when, add, doc)                                                     \
    if (when)                                                                                      \
        c->name = kpi_sat_add(c->name, (int64_t)(add));

/* Count one valid event. */
static inline void kpi_counters_count(struct kpi_counters *c, const struct kpi_event *e)
{
    KPI_COUNTERS(KPI_COUNTER_RULE)
}

void kpi_counters_add(struct kpi_counters *dst, const struct kpi_counters *src);
void kpi_counters_sub(struct kpi_counters *dst, const struct kpi_counters *src);
int kpi_counters_is_zero(const struct kpi_counters *c);

/* Derive the KPIs from summed counters and a distinct-subscriber count; the
 * base is unknown, so the KPIs over the base are undefined. */
void kpi_values_compute(struct kpi_values *v, const struct kpi_counters *c, uint64_t active);
/* The same with the subscriber base at the window's start (has_base = 0:
 * unknown) and the window's span in ms (its size, or a bucket's width). */
void kpi_values_compute_base(struct kpi_values *v, const struct kpi_counters *c, uint64_t active,
                             int has_base, double base, int64_t span_ms);

/* v's public fields, every counter and KPI of the schema, as JSON object
 * members: `"events":1,...,"active":7,...,"nps_brand":null` (no braces; a
 * KPI without a value is null).  The stdout sink and the HTTP API write
 * values with it. */
void kpi_values_write_json(FILE *f, const struct kpi_values *v);

/* NPS of one survey's counts; 0 when there are no responses (check has_*). */
double kpi_nps(const int64_t counts[3]);

#endif
