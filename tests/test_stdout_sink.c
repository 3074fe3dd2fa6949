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
#include "support/delta_fixture.h"

/* ---- building deltas by hand (tests/support/delta_fixture.h) ---- */

static void fx_init(struct kt_fixture *f, const char *windows, int64_t lateness_ms)
{
    char err[256];
    cr_assert_eq(kt_fx_init(f, windows, lateness_ms, 100, 4096, 0, err, sizeof(err)), 0, "%s", err);
}

/* Events are written as positional compound literals that leave the
 * trailing fields zero (the project builds with -Wno-missing-field-initializers;
 * this keeps a standalone -Wextra build quiet too). */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* Aggregate one event the way the engine's workers do. */
static void fx_add(struct kt_fixture *f, struct kt_event e)
{
    cr_assert_eq(kt_fx_add(f, e), 0);
}

static int fx_flush(struct kt_fixture *f, struct kpi_sink *sink, int64_t watermark)
{
    char err[256];
    return kt_fx_flush(f, sink, watermark, err, sizeof(err));
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

/* The hand-computed example (support/delta_fixture.h: kt_fx_example). */
static void feed_example(struct kt_fixture *f, int64_t t)
{
    cr_assert_eq(kt_fx_example(f, t), 0);
}

Test(stdout_sink, window_kpis_match_hand_computed_values)
{
    struct kt_fixture f;
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
    kt_fx_fini(&f);
}

Test(stdout_sink, a_value_never_seen_is_an_empty_window_with_no_derived_kpi)
{
    struct kt_fixture f;
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
    kt_fx_fini(&f);
}

Test(stdout_sink, a_window_that_slid_past_its_data_is_empty)
{
    struct kt_fixture f;
    fx_init(&f, "1m/5s,1h/1m", 0);
    struct kpi_sink s = kpi_sink_stdout_new(NULL, 0, 0, NULL, 0);
    feed_example(&f, T0);
    cr_assert_eq(fx_flush(&f, &s, T0 + 9000), 0);
    /* Two minutes later only us-east has one new event. */
    fx_add(&f, (struct kt_event){KPI_EV_USAGE, T0 + 120000, "9", "us-east", "prepaid", 1000000});
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
    kt_fx_fini(&f);
}

Test(stdout_sink, buckets_of_several_flushes_add_up_and_the_boundary_bucket_counts_once)
{
    struct kt_fixture f;
    fx_init(&f, "10s/5s", 0);
    struct kpi_sink s = kpi_sink_stdout_new(NULL, 0, 0, NULL, 0);
    /* Buckets [T0, T0+5s), [T0+5s, T0+10s), [T0+10s, T0+15s). */
    fx_add(&f, (struct kt_event){KPI_EV_CHURN, T0 + 1000, "a", "eu-west", "x"});
    cr_assert_eq(fx_flush(&f, &s, T0 + 1000), 0);
    fx_add(&f, (struct kt_event){KPI_EV_CHURN, T0 + 4999, "b", "eu-west", "x"});
    fx_add(&f, (struct kt_event){KPI_EV_USAGE, T0 + 5000, "a", "eu-west", "x", 3000000});
    cr_assert_eq(fx_flush(&f, &s, T0 + 5000), 0);
    struct kpi_values v = query(&s, "10s/5s", "all", "all");
    cr_assert_eq(v.c.events, 3);
    cr_assert_eq(v.c.churns, 2);
    cr_assert_eq(v.active, 2);
    cr_assert_float_eq(v.churn_rate, 1.0, 1e-12);
    cr_assert_float_eq(v.arpu, 1.5, 1e-12);
    fx_add(&f, (struct kt_event){KPI_EV_USAGE, T0 + 10000, "c", "eu-west", "x", 3000000});
    cr_assert_eq(fx_flush(&f, &s, T0 + 10000), 0);
    v = query(&s, "10s/5s", "all", "all"); /* [T0+5s, T0+15s) */
    cr_assert_eq(v.c.events, 2);
    cr_assert_eq(v.c.churns, 0);
    cr_assert_eq(v.active, 2);
    cr_assert_float_eq(v.churn_rate, 0.0, 1e-12);
    cr_assert_float_eq(v.arpu, 3.0, 1e-12);
    kpi_sink_destroy(&s);
    kt_fx_fini(&f);
}

Test(stdout_sink, json_lines_print_changed_values_with_undefined_kpis_as_null)
{
    struct kt_fixture f;
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
    kt_fx_fini(&f);
}

Test(stdout_sink, table_shows_all_and_the_top_values)
{
    struct kt_fixture f;
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
    kt_fx_fini(&f);
}

Test(stdout_sink, time_to_provision_ms_is_printed_and_queried_null_when_undefined)
{
    struct kt_fixture f;
    fx_init(&f, "1m/5s", 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    struct kpi_sink s = kpi_sink_stdout_new(out, 1, 0, NULL, 0);
    fx_add(&f, (struct kt_event){KPI_EV_ACTIVATION, T0 + 100, "1", "eu-west", "prepaid", 0, 0, 0, 1,
                                 1000});
    fx_add(&f, (struct kt_event){KPI_EV_ACTIVATION, T0 + 200, "2", "eu-west", "prepaid", 0, 0, 0, 1,
                                 2000});
    fx_add(&f, (struct kt_event){KPI_EV_ACTIVATION, T0 + 300, "3", "us-east", "prepaid"});
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
    kt_fx_fini(&f);
}
