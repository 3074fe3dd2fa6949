/*
 * truth.h - the truth oracle: an exact tally of what the traffic generator
 * (gen.h) generated, to compare with what the engine reports.
 *
 * The generator describes every event it makes in a struct kpi_gen_info
 * (its type, time, subscriber, dimensions and payload, or the reason it is
 * malformed).  A truth adds those up with the engine's own counting rules
 * (the KPI_COUNTER_RULE of every counter in engine/kpi_schema.h, applied to
 * the info instead of to a decoded event), so a test or benchmark knows
 * exactly what the engine should have counted without trusting the engine's
 * decoder or aggregation.
 *
 * struct kpi_gen_truth tallies events from their info.  Zeroed (memset or
 * = {0}) it keeps overall totals only.  kpi_gen_truth_init() adds, for a
 * bucket width and grouping sets over region, plan and segment (the engine's
 * dimensions.sets syntax: "region,region+plan,segment"; "all" is always
 * there), the exact kpi_counters of every (set, value, bucket start) and
 * exact distinct subscribers (one bitmap over the population per bucket, one
 * overall), so a test can compare any window the engine reports with the
 * truth.  Memory is bounded by max_buckets x (cells per bucket + N/8 bytes);
 * good events in buckets beyond max_buckets are counted as untracked.
 * Values are labelled as the engine labels them: dimension values joined by
 * '|' in the set's order ("eu-west|prepaid"), "all" for set "all".
 *
 * A truth is not thread-safe; use one per thread.
 */
#ifndef KPI_GEN_TRUTH_H
#define KPI_GEN_TRUTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/decode.h"
#include "engine/event.h"
#include "engine/kpi.h"
#include "gen/gen.h"

struct kpi_gen_truth_conf {
    uint64_t subscribers; /* population, for exact distinct counts; 0: none */
    int64_t bucket_ms;    /* bucket width, epoch-aligned; 0: no per-bucket cells (5000) */
    const char *sets;     /* grouping sets; NULL: "region,region+plan,segment" */
    uint32_t max_buckets; /* buckets tracked at most (4096) */
};

/* One (grouping-set value, bucket) tally. */
struct kpi_gen_cell {
    struct kpi_counters c; /* good events, exactly as kpi_counters_count counts them */
    uint64_t active;       /* distinct subscribers (0 without `subscribers`) */
};

struct kpi_gen_truth_detail; /* private to truth.c */

/* Exact tallies of what was generated (good events only, except `bad*`). */
struct kpi_gen_truth {
    uint64_t events, good, bad;
    uint64_t by_type[KPI_EV__COUNT];
    uint64_t bad_by_reason[KPI_BAD__COUNT];
    int64_t revenue; /* micro-units */
    int64_t bytes, seconds;
    uint64_t nps[KPI_SURVEY__COUNT][3]; /* [survey][KPI_NPS_PROMOTERS...] */
    uint64_t churns_by_segment[16];
    struct kpi_counters counters; /* every counter, as kpi_counters_count counts them */
    uint64_t distinct;            /* distinct subscribers (kpi_gen_truth_init only) */
    /* Subscriber base (gen.h, base snapshots): per combination [region][plan]
     * [segment], the initial base (known once a snapshot of it was made) and
     * every net add (activations - churns). */
    int64_t base_init[KPI_GEN_NREG][KPI_GEN_NPLAN][KPI_GEN_NSEG];
    uint8_t has_base[KPI_GEN_NREG][KPI_GEN_NPLAN][KPI_GEN_NSEG];
    int64_t net_adds[KPI_GEN_NREG][KPI_GEN_NPLAN][KPI_GEN_NSEG];
    struct kpi_gen_truth_detail *detail; /* NULL when zeroed rather than initialised */
};

void kpi_gen_truth_conf_defaults(struct kpi_gen_truth_conf *tc);

/* Initialise *t with per-bucket cells and distinct counts as tc says.
 * 0, KPI_ERR_INVAL (bad sets, bucket or limits; message in errstr) or
 * KPI_ERR_NOMEM.  Pair with kpi_gen_truth_fini. */
int kpi_gen_truth_init(struct kpi_gen_truth *t, const struct kpi_gen_truth_conf *tc, char *errstr,
                       size_t errstr_size);
void kpi_gen_truth_fini(struct kpi_gen_truth *t);

/* Tally one event.  Allocates only when an event opens a new bucket. */
void kpi_gen_truth_add(struct kpi_gen_truth *t, const struct kpi_gen_info *info);

/* Good events that fell in buckets past max_buckets (or whose bucket could
 * not be allocated): counted in the totals, in no cell. */
uint64_t kpi_gen_truth_untracked(const struct kpi_gen_truth *t);

/* The tally of `value` in grouping set `set` ("region", "eu-west") in the
 * bucket starting at bucket_start; NULL when it holds no good event, or the
 * truth has no such set or value.  Set "all" has the one value "all". */
const struct kpi_gen_cell *kpi_gen_truth_cell(const struct kpi_gen_truth *t, const char *set,
                                              const char *value, int64_t bucket_start);

/* Exact distinct subscribers of `value` in `set` over the buckets starting in
 * [from_ms, to_ms): what a window's "active subscribers" should estimate.
 * -1 when unknown: no per-bucket tracking, no `subscribers`, an unknown set
 * or value, or untracked events. */
int64_t kpi_gen_truth_distinct(const struct kpi_gen_truth *t, const char *set, const char *value,
                               int64_t from_ms, int64_t to_ms);

/* The expected subscriber base of `value` in grouping set `set` (any set over
 * region, plan and segment, "all" included): the sum over its combinations
 * of initial base + net adds.  0 with *base set, or -1 when unknown (a
 * combination never had a snapshot, an unknown set or value). */
int kpi_gen_truth_base(const struct kpi_gen_truth *t, const char *set, const char *value,
                       int64_t *base);

/* Everything as one JSON object (documented in truth.c above this function).
 * 0, or KPI_ERR_IO when writing failed. */
int kpi_gen_truth_write_json(FILE *out, const struct kpi_gen_truth *t);

#endif
