/*
 * The in-memory (stdout) sink: window KPIs from its rollup of base-bucket
 * cells match hand-computed values, including empty windows, KPIs whose
 * denominator is zero, windows that slide past their data, and the JSON-lines
 * output.  Deltas are built by hand with the engine's own aggregation types.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/err.h"
#include "engine/hll.h"
#include "sinks/stdout.h"

/* ---- building deltas by hand ---- */

struct fixture {
    struct kpi_dims dims;
    struct kpi_windows windows;
    struct kpi_agg cells;
    struct kpi_offset_range range;
    uint64_t seq;
    int64_t watermark, prev_watermark;
};

static void fx_init(struct fixture *f, const char *windows, int64_t lateness_ms)
{
    char err[256];
    memset(f, 0, sizeof(*f));
    cr_assert_eq(
        kpi_dims_init(&f->dims, "region,plan", "region,region+plan", 100, 64, err, sizeof(err)), 0,
        "%s", err);
    cr_assert_eq(kpi_windows_init(&f->windows, windows, lateness_ms, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(kpi_agg_init(&f->cells, 4096), 0);
    strcpy(f->range.topic, "events");
    f->watermark = f->prev_watermark = INT64_MIN;
    f->seq = 1;
}

static void fx_fini(struct fixture *f)
{
    kpi_agg_fini(&f->cells);
    kpi_dims_fini(&f->dims);
}

/* Events are written as positional compound literals that leave the
 * trailing fields zero (the project builds with -Wno-missing-field-initializers;
 * this keeps a standalone -Wextra build quiet too). */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

struct ev_spec {
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
};

/* Aggregate one event the way the engine's workers do. */
static void fx_add(struct fixture *f, struct ev_spec s)
{
    struct kpi_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = s.type;
    ev.ts_ms = s.ts;
    ev.sub_hash = kpi_hll_hash(s.sub, strlen(s.sub));
    ev.amount_micros = s.amount;
    ev.score = (uint8_t)s.score;
    ev.survey = (uint8_t)s.survey;
    ev.has_provision_ms = (uint8_t)s.has_provision_ms;
    ev.provision_ms = s.provision_ms;
    if (s.region) {
        ev.dims[0].ptr = s.region;
        ev.dims[0].len = (uint32_t)strlen(s.region);
    }
    if (s.plan) {
        ev.dims[1].ptr = s.plan;
        ev.dims[1].len = (uint32_t)strlen(s.plan);
    }
    int64_t bucket = kpi_bucket_start(s.ts, f->windows.base_ms);
    for (int set = 0; set < f->dims.n_sets; set++) {
        uint32_t vid = kpi_dims_value_id(&f->dims, set, &ev);
        struct kpi_agg_cell *c = kpi_agg_get(&f->cells, bucket, (uint32_t)set, vid);
        cr_assert_not_null(c);
        kpi_counters_count(&c->c, &ev);
        cr_assert_geq(kpi_hll_add_hash(&c->hll, ev.sub_hash), 0);
    }
    f->range.to++;
}

static int fx_flush(struct fixture *f, struct kpi_sink *sink, int64_t watermark)
{
    f->watermark = watermark;
    struct kpi_delta d = {
        .seq = f->seq,
        .dims = &f->dims,
        .windows = &f->windows,
        .cells = &f->cells,
        .ranges = &f->range,
        .n_ranges = f->range.to > f->range.from,
        .watermark = f->watermark,
        .prev_watermark = f->prev_watermark,
    };
    char err[256];
    int rc = sink->ops->flush(sink->self, &d, err, sizeof(err));
    if (rc == 0) {
        f->seq++;
        f->prev_watermark = watermark;
        f->range.from = f->range.to;
        kpi_agg_reset(&f->cells);
    }
    return rc;
}

static struct kpi_values query(struct kpi_sink *s, const char *w, const char *set,
                               const char *value)
{
    struct kpi_values v;
    cr_assert_eq(kpi_sink_stdout_query(s, w, set, value, &v, NULL, NULL), 0, "query %s %s %s", w,
                 set, value);
    return v;
}

#define T0 1000020000LL /* a multiple of every slide used here (1 min) */

/* The hand-computed example (docs/kpis.md formulas):
 *   sub 1  usage 2.5    eu-west/prepaid
 *   sub 2  usage 1.5    eu-west/postpaid
 *   sub 1  nps network 10 (promoter)   eu-west/prepaid
 *   sub 3  churn                       eu-west/prepaid
 *   sub 4  nps network 5 (detractor)   us-east/prepaid
 *   sub 4  activation                  us-east/prepaid
 *   sub 2  nps brand 8 (passive)       eu-west/postpaid                      */
static void feed_example(struct fixture *f, int64_t t)
{
    fx_add(f, (struct ev_spec){KPI_EV_USAGE, t + 100, "1", "eu-west", "prepaid", 2500000});
    fx_add(f, (struct ev_spec){KPI_EV_USAGE, t + 1200, "2", "eu-west", "postpaid", 1500000});
    fx_add(f, (struct ev_spec){KPI_EV_NPS, t + 2300, "1", "eu-west", "prepaid", 0, 10, 0});
    fx_add(f, (struct ev_spec){KPI_EV_CHURN, t + 6000, "3", "eu-west", "prepaid"});
    fx_add(f, (struct ev_spec){KPI_EV_NPS, t + 7000, "4", "us-east", "prepaid", 0, 5, 0});
    fx_add(f, (struct ev_spec){KPI_EV_ACTIVATION, t + 8000, "4", "us-east", "prepaid"});
    fx_add(f, (struct ev_spec){KPI_EV_NPS, t + 9000, "2", "eu-west", "postpaid", 0, 8, 1});
}

Test(stdout_sink, window_kpis_match_hand_computed_values)
{
    struct fixture f;
    fx_init(&f, "1m/5s,1h/1m", 0);
    struct kpi_sink s = kpi_sink_stdout_new(NULL, 0, 0, NULL, 0);
    cr_assert_not_null(s.ops);
    feed_example(&f, T0);
    cr_assert_eq(fx_flush(&f, &s, T0 + 9000), 0);

    for (int w = 0; w < 2; w++) {
        const char *win = w == 0 ? "1m/5s" : "1h_1m";
        struct kpi_values all = query(&s, win, "all", "all");
        cr_assert_eq(all.c.events, 7);
        cr_assert_eq(all.c.usage, 2);
        cr_assert_eq(all.c.revenue, 4000000);
        cr_assert_eq(all.c.activations, 1);
        cr_assert_eq(all.c.churns, 1);
        cr_assert_eq(all.active, 4);
        cr_assert(all.has_churn_rate && all.has_arpu && all.has_nps_network && all.has_nps_brand);
        cr_assert_float_eq(all.churn_rate, 0.25, 1e-12);
        cr_assert_float_eq(all.arpu, 1.0, 1e-12);
        cr_assert_float_eq(all.nps_network, 0.0, 1e-12); /* 1 promoter, 1 detractor */
        cr_assert_float_eq(all.nps_brand, 0.0, 1e-12);   /* 1 passive */

        struct kpi_values eu = query(&s, win, "region", "eu-west");
        cr_assert_eq(eu.c.events, 5);
        cr_assert_eq(eu.active, 3);
        cr_assert_float_eq(eu.churn_rate, 1.0 / 3, 1e-12);
        cr_assert_float_eq(eu.arpu, 4.0 / 3, 1e-12);
        cr_assert_float_eq(eu.nps_network, 100.0, 1e-12);

        struct kpi_values us = query(&s, win, "region", "us-east");
        cr_assert_eq(us.c.events, 2);
        cr_assert_eq(us.active, 1);
        cr_assert(us.has_churn_rate, "no churn among active subscribers is 0 %%, not undefined");
        cr_assert_float_eq(us.churn_rate, 0.0, 1e-12);
        cr_assert_float_eq(us.arpu, 0.0, 1e-12);
        cr_assert_float_eq(us.nps_network, -100.0, 1e-12);
        cr_assert_not(us.has_nps_brand, "no brand responses: undefined, not 0");

        struct kpi_values pre = query(&s, win, "region+plan", "eu-west|prepaid");
        cr_assert_eq(pre.c.events, 3);
        cr_assert_eq(pre.active, 2);
        cr_assert_eq(pre.c.revenue, 2500000);
    }
    kpi_sink_destroy(&s);
    fx_fini(&f);
}

Test(stdout_sink, a_value_never_seen_is_an_empty_window_with_no_derived_kpi)
{
    struct fixture f;
    fx_init(&f, "1m/5s", 0);
    struct kpi_sink s = kpi_sink_stdout_new(NULL, 0, 0, NULL, 0);
    struct kpi_values v;
    cr_assert_eq(kpi_sink_stdout_query(&s, "1m/5s", "all", "all", &v, NULL, NULL), KPI_ERR_STATE,
                 "nothing to say before the first delta");
    feed_example(&f, T0);
    cr_assert_eq(fx_flush(&f, &s, T0 + 9000), 0);
    v = query(&s, "1m/5s", "region", "apac");
    cr_assert_eq(v.c.events, 0);
    cr_assert_eq(v.active, 0);
    cr_assert_not(v.has_churn_rate || v.has_arpu || v.has_nps_network || v.has_nps_brand);
    cr_assert_eq(kpi_sink_stdout_query(&s, "5m/1m", "all", "all", &v, NULL, NULL), KPI_ERR_INVAL);
    cr_assert_eq(kpi_sink_stdout_query(&s, "1m/5s", "plan", "x", &v, NULL, NULL), KPI_ERR_INVAL);
    kpi_sink_destroy(&s);
    fx_fini(&f);
}

Test(stdout_sink, a_window_that_slid_past_its_data_is_empty)
{
    struct fixture f;
    fx_init(&f, "1m/5s,1h/1m", 0);
    struct kpi_sink s = kpi_sink_stdout_new(NULL, 0, 0, NULL, 0);
    feed_example(&f, T0);
    cr_assert_eq(fx_flush(&f, &s, T0 + 9000), 0);
    /* Two minutes later only us-east has one new event. */
    fx_add(&f, (struct ev_spec){KPI_EV_USAGE, T0 + 120000, "9", "us-east", "prepaid", 1000000});
    cr_assert_eq(fx_flush(&f, &s, T0 + 120000), 0);

    int64_t start, end;
    struct kpi_values eu;
    cr_assert_eq(kpi_sink_stdout_query(&s, "1m/5s", "region", "eu-west", &eu, &start, &end), 0);
    cr_assert_eq(end, T0 + 125000, "the instance ends with the bucket holding the watermark");
    cr_assert_eq(start, T0 + 65000);
    cr_assert_eq(eu.c.events, 0);
    cr_assert_not(eu.has_churn_rate || eu.has_arpu || eu.has_nps_network);
    struct kpi_values us = query(&s, "1m/5s", "region", "us-east");
    cr_assert_eq(us.c.events, 1);
    cr_assert_eq(us.active, 1);
    cr_assert_float_eq(us.arpu, 1.0, 1e-12);
    cr_assert_not(us.has_nps_network);
    /* The hour window still holds all of it. */
    struct kpi_values all = query(&s, "1h/1m", "all", "all");
    cr_assert_eq(all.c.events, 8);
    cr_assert_eq(all.active, 5);
    cr_assert_eq(all.c.revenue, 5000000);
    kpi_sink_destroy(&s);
    fx_fini(&f);
}

Test(stdout_sink, buckets_of_several_flushes_add_up_and_the_boundary_bucket_counts_once)
{
    struct fixture f;
    fx_init(&f, "10s/5s", 0);
    struct kpi_sink s = kpi_sink_stdout_new(NULL, 0, 0, NULL, 0);
    /* Buckets [T0, T0+5s), [T0+5s, T0+10s), [T0+10s, T0+15s). */
    fx_add(&f, (struct ev_spec){KPI_EV_CHURN, T0 + 1000, "a", "eu-west", "x"});
    cr_assert_eq(fx_flush(&f, &s, T0 + 1000), 0);
    fx_add(&f, (struct ev_spec){KPI_EV_CHURN, T0 + 4999, "b", "eu-west", "x"});
    fx_add(&f, (struct ev_spec){KPI_EV_USAGE, T0 + 5000, "a", "eu-west", "x", 3000000});
    cr_assert_eq(fx_flush(&f, &s, T0 + 5000), 0);
    struct kpi_values v = query(&s, "10s/5s", "all", "all");
    cr_assert_eq(v.c.events, 3);
    cr_assert_eq(v.c.churns, 2);
    cr_assert_eq(v.active, 2);
    cr_assert_float_eq(v.churn_rate, 1.0, 1e-12);
    cr_assert_float_eq(v.arpu, 1.5, 1e-12);
    fx_add(&f, (struct ev_spec){KPI_EV_USAGE, T0 + 10000, "c", "eu-west", "x", 3000000});
    cr_assert_eq(fx_flush(&f, &s, T0 + 10000), 0);
    v = query(&s, "10s/5s", "all", "all"); /* [T0+5s, T0+15s) */
    cr_assert_eq(v.c.events, 2);
    cr_assert_eq(v.c.churns, 0);
    cr_assert_eq(v.active, 2);
    cr_assert_float_eq(v.churn_rate, 0.0, 1e-12);
    cr_assert_float_eq(v.arpu, 3.0, 1e-12);
    kpi_sink_destroy(&s);
    fx_fini(&f);
}

Test(stdout_sink, json_lines_print_changed_values_with_undefined_kpis_as_null)
{
    struct fixture f;
    fx_init(&f, "1m/5s", 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    struct kpi_sink s = kpi_sink_stdout_new(out, 1, 0, NULL, 0);
    feed_example(&f, T0);
    cr_assert_eq(fx_flush(&f, &s, T0 + 9000), 0);
    fflush(out);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    /* all, 2 regions, 3 region+plan values */
    cr_assert_eq(lines, 6, "%s", buf);
    cr_assert_not_null(strstr(buf, "{\"window\":\"1m/5s\",\"set\":\"region\",\"value\":\"us-east\","
                                   "\"start\":999970000,\"end\":1000030000,\"events\":2,"),
                       "%s", buf);
    cr_assert_not_null(strstr(buf, "\"nps_network\":-100,\"nps_brand\":null"), "%s", buf);
    /* A flush that changes nothing prints nothing. */
    size_t before = len;
    cr_assert_eq(fx_flush(&f, &s, T0 + 9000), 0);
    fflush(out);
    cr_assert_eq(len, before);
    kpi_sink_destroy(&s);
    fclose(out);
    free(buf);
    fx_fini(&f);
}

Test(stdout_sink, table_shows_all_and_the_top_values)
{
    struct fixture f;
    fx_init(&f, "1m/5s", 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    struct kpi_sink s = kpi_sink_stdout_new(out, 0, 1, NULL, 0);
    feed_example(&f, T0);
    cr_assert_eq(fx_flush(&f, &s, T0 + 9000), 0);
    fflush(out);
    cr_assert_not_null(strstr(buf, "-- flush 1"), "%s", buf);
    cr_assert_not_null(strstr(buf, "all            all"), "%s", buf);
    cr_assert_not_null(strstr(buf, "region         eu-west"), "%s", buf);
    cr_assert_null(strstr(buf, "region         us-east"), "top 1 per set: %s", buf);
    kpi_sink_destroy(&s);
    fclose(out);
    free(buf);
    fx_fini(&f);
}

Test(stdout_sink, time_to_provision_ms_is_printed_and_queried_null_when_undefined)
{
    struct fixture f;
    fx_init(&f, "1m/5s", 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    struct kpi_sink s = kpi_sink_stdout_new(out, 1, 0, NULL, 0);
    fx_add(&f, (struct ev_spec){KPI_EV_ACTIVATION, T0 + 100, "1", "eu-west", "prepaid", 0, 0, 0, 1,
                                1000});
    fx_add(&f, (struct ev_spec){KPI_EV_ACTIVATION, T0 + 200, "2", "eu-west", "prepaid", 0, 0, 0, 1,
                                2000});
    fx_add(&f, (struct ev_spec){KPI_EV_ACTIVATION, T0 + 300, "3", "us-east", "prepaid"});
    cr_assert_eq(fx_flush(&f, &s, T0 + 1000), 0);
    fflush(out);
    cr_assert_not_null(strstr(buf, "\"value\":\"eu-west\""), "%s", buf);
    cr_assert_not_null(strstr(buf, "\"provision_ms\":3000,\"provisioned\":2,"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\"time_to_provision_ms\":1500,"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\"time_to_provision_ms\":null,"), "us-east: %s", buf);
    struct kpi_values v = query(&s, "1m/5s", "all", "all");
    cr_assert_eq(v.c.provisioned, 2);
    cr_assert(v.has_time_to_provision_ms);
    cr_assert_float_eq(v.time_to_provision_ms, 1500.0, 1e-9);
    v = query(&s, "1m/5s", "region", "us-east");
    cr_assert_eq(v.c.activations, 1);
    cr_assert_not(v.has_time_to_provision_ms);
    kpi_sink_destroy(&s);
    fclose(out);
    free(buf);
    fx_fini(&f);
}
