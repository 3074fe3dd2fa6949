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
#include "support/text.h"

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

/* A window's event count and distinct active subscribers. */
static void expect_events_active(const struct kpi_values *v, int64_t events, int64_t active)
{
    cr_assert_eq(v->c.events, events);
    cr_assert_eq(v->active, active);
}

/* The hand-computed example (support/delta_fixture.h: kt_fx_example). */
static void feed_example(struct kt_fixture *f, int64_t t)
{
    cr_assert_eq(kt_fx_example(f, t), 0);
}

/* A stdout sink and the fixture feeding it; a printing sink (JSON lines or
 * the table) writes into buf. */
enum print { PRINT_NONE, PRINT_JSON, PRINT_TABLE };

struct sink_fx {
    struct kt_fixture f;
    struct kpi_sink s;
    FILE *out; /* NULL: PRINT_NONE */
    char *buf;
    size_t len;
};

static void sink_fx_init(struct sink_fx *fx, const char *windows, enum print how)
{
    fx_init(&fx->f, windows, 0);
    fx->buf = NULL;
    fx->len = 0;
    fx->out = NULL;
    if (how != PRINT_NONE) {
        fx->out = open_memstream(&fx->buf, &fx->len);
        cr_assert_not_null(fx->out);
    }
    fx->s = kpi_sink_stdout_new(fx->out, how == PRINT_JSON, how == PRINT_TABLE, NULL, 0);
}

/* Flush up to watermark; what a printing sink printed is in buf. */
static void sink_fx_flush(struct sink_fx *fx, int64_t watermark)
{
    cr_assert_eq(fx_flush(&fx->f, &fx->s, watermark), 0);
    if (fx->out)
        fflush(fx->out);
}

static void sink_fx_fini(struct sink_fx *fx)
{
    kpi_sink_destroy(&fx->s);
    if (fx->out)
        fclose(fx->out);
    free(fx->buf);
    kt_fx_fini(&fx->f);
}

/* Each test runs on x, set up by its .init and torn down by done. */
static struct sink_fx x;

static void two_windows(void)
{
    sink_fx_init(&x, "1m/5s,1h/1m", PRINT_NONE);
}

static void one_window(void)
{
    sink_fx_init(&x, "1m/5s", PRINT_NONE);
}

static void ten_second_window(void)
{
    sink_fx_init(&x, "10s/5s", PRINT_NONE);
}

static void printing_json(void)
{
    sink_fx_init(&x, "1m/5s", PRINT_JSON);
}

static void printing_table(void)
{
    sink_fx_init(&x, "1m/5s", PRINT_TABLE);
}

static void done(void)
{
    sink_fx_fini(&x);
}

Test(stdout_sink, window_kpis_match_hand_computed_values, .init = two_windows, .fini = done)
{
    cr_assert_not_null(x.s.ops);
    feed_example(&x.f, T0);
    sink_fx_flush(&x, T0 + 9000);

    for (int w = 0; w < 2; w++) {
        const char *win = w == 0 ? "1m/5s" : "1h_1m";
        struct kpi_values all = query(&x.s, win, "all", "all");
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

        struct kpi_values eu = query(&x.s, win, "region", "eu-west");
        expect_events_active(&eu, 5, 3);
        cr_assert_float_eq(eu.churn_rate, 1.0 / 3, 1e-12);
        cr_assert_float_eq(eu.arpu, 4.0 / 3, 1e-12);
        cr_assert_float_eq(eu.nps_network, 100.0, 1e-12);

        struct kpi_values us = query(&x.s, win, "region", "us-east");
        expect_events_active(&us, 2, 1);
        cr_assert(us.has_churn_rate, "no churn among active subscribers is 0 %%, not undefined");
        cr_assert_float_eq(us.churn_rate, 0.0, 1e-12);
        cr_assert_float_eq(us.arpu, 0.0, 1e-12);
        cr_assert_float_eq(us.nps_network, -100.0, 1e-12);
        cr_assert_not(us.has_nps_brand, "no brand responses: undefined, not 0");

        struct kpi_values pre = query(&x.s, win, "region+plan", "eu-west|prepaid");
        expect_events_active(&pre, 3, 2);
        cr_assert_eq(pre.c.revenue, 2500000);
    }
}

Test(stdout_sink, a_value_never_seen_is_an_empty_window_with_no_derived_kpi, .init = one_window,
     .fini = done)
{
    struct kpi_values v;
    cr_assert_eq(kpi_sink_stdout_query(&x.s, "1m/5s", "all", "all", &v, NULL, NULL), KPI_ERR_STATE,
                 "nothing to say before the first delta");
    feed_example(&x.f, T0);
    sink_fx_flush(&x, T0 + 9000);
    v = query(&x.s, "1m/5s", "region", "apac");
    expect_events_active(&v, 0, 0);
    cr_assert_not(v.has_churn_rate || v.has_arpu || v.has_nps_network || v.has_nps_brand);
    cr_assert_eq(kpi_sink_stdout_query(&x.s, "5m/1m", "all", "all", &v, NULL, NULL), KPI_ERR_INVAL);
    cr_assert_eq(kpi_sink_stdout_query(&x.s, "1m/5s", "plan", "x", &v, NULL, NULL), KPI_ERR_INVAL);
}

Test(stdout_sink, a_window_that_slid_past_its_data_is_empty, .init = two_windows, .fini = done)
{
    feed_example(&x.f, T0);
    sink_fx_flush(&x, T0 + 9000);
    /* Two minutes later only us-east has one new event. */
    fx_add(&x.f, (struct kt_event){KPI_EV_USAGE, T0 + 120000, "9", "us-east", "prepaid", 1000000});
    sink_fx_flush(&x, T0 + 120000);

    int64_t start, end;
    struct kpi_values eu;
    cr_assert_eq(kpi_sink_stdout_query(&x.s, "1m/5s", "region", "eu-west", &eu, &start, &end), 0);
    cr_assert_eq(end, T0 + 125000, "the instance ends with the bucket holding the watermark");
    cr_assert_eq(start, T0 + 65000);
    cr_assert_eq(eu.c.events, 0);
    cr_assert_not(eu.has_churn_rate || eu.has_arpu || eu.has_nps_network);
    struct kpi_values us = query(&x.s, "1m/5s", "region", "us-east");
    expect_events_active(&us, 1, 1);
    cr_assert_float_eq(us.arpu, 1.0, 1e-12);
    cr_assert_not(us.has_nps_network);
    /* The hour window still holds all of it. */
    struct kpi_values all = query(&x.s, "1h/1m", "all", "all");
    expect_events_active(&all, 8, 5);
    cr_assert_eq(all.c.revenue, 5000000);
}

Test(stdout_sink, buckets_of_several_flushes_add_up_and_the_boundary_bucket_counts_once,
     .init = ten_second_window, .fini = done)
{
    /* Buckets [T0, T0+5s), [T0+5s, T0+10s), [T0+10s, T0+15s). */
    fx_add(&x.f, (struct kt_event){KPI_EV_CHURN, T0 + 1000, "a", "eu-west", "x"});
    sink_fx_flush(&x, T0 + 1000);
    fx_add(&x.f, (struct kt_event){KPI_EV_CHURN, T0 + 4999, "b", "eu-west", "x"});
    fx_add(&x.f, (struct kt_event){KPI_EV_USAGE, T0 + 5000, "a", "eu-west", "x", 3000000});
    sink_fx_flush(&x, T0 + 5000);
    struct kpi_values v = query(&x.s, "10s/5s", "all", "all");
    cr_assert_eq(v.c.events, 3);
    cr_assert_eq(v.c.churns, 2);
    cr_assert_eq(v.active, 2);
    cr_assert_float_eq(v.churn_rate, 1.0, 1e-12);
    cr_assert_float_eq(v.arpu, 1.5, 1e-12);
    fx_add(&x.f, (struct kt_event){KPI_EV_USAGE, T0 + 10000, "c", "eu-west", "x", 3000000});
    sink_fx_flush(&x, T0 + 10000);
    v = query(&x.s, "10s/5s", "all", "all"); /* [T0+5s, T0+15s) */
    cr_assert_eq(v.c.events, 2);
    cr_assert_eq(v.c.churns, 0);
    cr_assert_eq(v.active, 2);
    cr_assert_float_eq(v.churn_rate, 0.0, 1e-12);
    cr_assert_float_eq(v.arpu, 3.0, 1e-12);
}

Test(stdout_sink, json_lines_print_changed_values_with_undefined_kpis_as_null,
     .init = printing_json, .fini = done)
{
    feed_example(&x.f, T0);
    sink_fx_flush(&x, T0 + 9000);
    /* all, 2 regions, 3 region+plan values */
    cr_assert_eq(kt_count_of(x.buf, "\n"), 6, "%s", x.buf);
    KT_ASSERT_CONTAINS(x.buf,
                       "{\"window\":\"1m/5s\",\"set\":\"region\",\"value\":\"us-east\","
                       "\"start\":999970000,\"end\":1000030000,\"events\":2,",
                       "\"nps_network\":-100,\"nps_brand\":null");
    /* A flush that changes nothing prints nothing. */
    size_t before = x.len;
    sink_fx_flush(&x, T0 + 9000);
    cr_assert_eq(x.len, before);
}

Test(stdout_sink, table_shows_all_and_the_top_values, .init = printing_table, .fini = done)
{
    feed_example(&x.f, T0);
    sink_fx_flush(&x, T0 + 9000);
    KT_ASSERT_CONTAINS(x.buf, "-- flush 1", "all            all", "region         eu-west");
    cr_assert_null(strstr(x.buf, "region         us-east"), "top 1 per set: %s", x.buf);
}

Test(stdout_sink, time_to_provision_ms_is_printed_and_queried_null_when_undefined,
     .init = printing_json, .fini = done)
{
    fx_add(&x.f, (struct kt_event){KPI_EV_ACTIVATION, T0 + 100, "1", "eu-west", "prepaid", 0, 0, 0,
                                   1, 1000});
    fx_add(&x.f, (struct kt_event){KPI_EV_ACTIVATION, T0 + 200, "2", "eu-west", "prepaid", 0, 0, 0,
                                   1, 2000});
    fx_add(&x.f, (struct kt_event){KPI_EV_ACTIVATION, T0 + 300, "3", "us-east", "prepaid"});
    sink_fx_flush(&x, T0 + 1000);
    KT_ASSERT_CONTAINS(x.buf, "\"value\":\"eu-west\"", "\"provision_ms\":3000,\"provisioned\":2,",
                       "\"time_to_provision_ms\":1500,",
                       "\"time_to_provision_ms\":null," /* us-east */);
    struct kpi_values v = query(&x.s, "1m/5s", "all", "all");
    cr_assert_eq(v.c.provisioned, 2);
    cr_assert(v.has_time_to_provision_ms);
    cr_assert_float_eq(v.time_to_provision_ms, 1500.0, 1e-9);
    v = query(&x.s, "1m/5s", "region", "us-east");
    cr_assert_eq(v.c.activations, 1);
    cr_assert_not(v.has_time_to_provision_ms);
}
