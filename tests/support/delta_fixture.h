/*
 * delta_fixture.h - deltas built by hand, for the sinks' tests: events are
 * aggregated the way the engine's workers do (dims, windows, the
 * aggregation cells and their HyperLogLogs), then handed to a sink as one
 * struct kpi_delta with the offset range they came from, and on success the
 * fixture moves on to its next delta as the engine does (next sequence
 * number, watermark, offsets; cells cleared).
 */
#ifndef KPI_TEST_DELTA_FIXTURE_H
#define KPI_TEST_DELTA_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "sinks/sink.h"

struct kt_fixture {
    struct kpi_dims dims; /* fields region, plan; sets region, region+plan (and all) */
    struct kpi_windows windows;
    struct kpi_agg cells;
    struct kpi_offset_range range; /* one partition of topic "events" */
    uint64_t seq;
    int64_t watermark, prev_watermark;
};

/* One event, written as a positional compound literal; trailing fields may
 * be left out (zero). */
struct kt_event {
    enum kpi_event_type type;
    int64_t ts;
    const char *sub;
    const char *region;
    const char *plan;
    int64_t amount;
    int score;
    int survey;
    int has_provision_ms;
    uint64_t provision_ms;
    uint64_t count; /* KPI_EV_BASE: the snapshot's subscriber count (sub is NULL) */
};

/* 0, or -1 with err set. */
int kt_fx_init(struct kt_fixture *f, const char *windows, int64_t lateness_ms, uint32_t max_values,
               uint32_t cells, int32_t partition, char *err, size_t errsz);
void kt_fx_fini(struct kt_fixture *f);
/* Aggregate one event (its subscriber hashed as the engine does, or given as
 * sub_hash).  0, or -1 when the cells are full. */
int kt_fx_add(struct kt_fixture *f, struct kt_event e);
int kt_fx_add_hash(struct kt_fixture *f, struct kt_event e, uint64_t sub_hash);
/* The hand-computed example both sinks' tests check (docs/kpis.md
 * formulas), its events at t + 100 ms ... t + 9 s:
 *   sub 1  usage 2.5    eu-west/prepaid
 *   sub 2  usage 1.5    eu-west/postpaid
 *   sub 1  nps network 10 (promoter)   eu-west/prepaid
 *   sub 3  churn                       eu-west/prepaid
 *   sub 4  nps network 5 (detractor)   us-east/prepaid
 *   sub 4  activation                  us-east/prepaid
 *   sub 2  nps brand 8 (passive)       eu-west/postpaid
 * 0, or -1 when the cells are full. */
int kt_fx_example(struct kt_fixture *f, int64_t t);
/* The delta of what was added since the last successful flush. */
struct kpi_delta kt_fx_delta(struct kt_fixture *f, int64_t watermark);
/* Flush the delta to sink; on success the fixture moves on.  The sink's
 * return code, its message in err. */
int kt_fx_flush(struct kt_fixture *f, struct kpi_sink *sink, int64_t watermark, char *err,
                size_t errsz);

#endif
