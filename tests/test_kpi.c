/* KPI formulas on exact counters, including empty and zero-denominator windows. */
#include <criterion/criterion.h>

#include "engine/kpi.h"

static struct kpi_event ev(enum kpi_event_type t)
{
    struct kpi_event e = {.type = t, .ts_ms = 1000, .sub_hash = 1};
    return e;
}

/* Every counter of the schema equals want's (those want leaves out are 0). */
static void expect_counters(const struct kpi_counters *c, const struct kpi_counters *want)
{
#define EXPECT_FIELD_(name, when, add, doc)                                                        \
    cr_assert_eq(c->name, want->name, #name ": %lld, want %lld", (long long)c->name,               \
                 (long long)want->name);
    KPI_COUNTERS(EXPECT_FIELD_)
#undef EXPECT_FIELD_
}

Test(kpi, counts_each_event_type_exactly)
{
    struct kpi_counters c = {0};
    struct kpi_event u = ev(KPI_EV_USAGE);
    u.amount_micros = 2500000;
    u.bytes = 100;
    u.seconds = 7;
    kpi_counters_count(&c, &u);
    kpi_counters_count(&c, &u);
    struct kpi_event a = ev(KPI_EV_ACTIVATION), ch = ev(KPI_EV_CHURN);
    kpi_counters_count(&c, &a);
    kpi_counters_count(&c, &ch);
    expect_counters(&c, &(struct kpi_counters){.events = 4,
                                               .usage = 2,
                                               .revenue = 5000000,
                                               .bytes = 200,
                                               .seconds = 14,
                                               .activations = 1,
                                               .churns = 1});
}

Test(kpi, classifies_nps_scores_at_their_boundaries)
{
    struct kpi_counters c = {0};
    for (int s = 0; s <= 10; s++) {
        struct kpi_event n = ev(KPI_EV_NPS);
        n.score = (uint8_t)s;
        n.survey = KPI_SURVEY_BRAND;
        kpi_counters_count(&c, &n);
    }
    cr_assert_eq(c.nps[KPI_SURVEY_BRAND][KPI_NPS_DETRACTORS], 7); /* 0..6 */
    cr_assert_eq(c.nps[KPI_SURVEY_BRAND][KPI_NPS_PASSIVES], 2);   /* 7, 8 */
    cr_assert_eq(c.nps[KPI_SURVEY_BRAND][KPI_NPS_PROMOTERS], 2);  /* 9, 10 */
    cr_assert_eq(c.nps[KPI_SURVEY_NETWORK][KPI_NPS_PROMOTERS], 0);
}

Test(kpi, derives_churn_rate_arpu_and_nps)
{
    struct kpi_counters c = {0};
    c.churns = 3;
    c.revenue = 1500000000; /* 1500.000000 */
    c.nps[KPI_SURVEY_NETWORK][KPI_NPS_PROMOTERS] = 50;
    c.nps[KPI_SURVEY_NETWORK][KPI_NPS_PASSIVES] = 30;
    c.nps[KPI_SURVEY_NETWORK][KPI_NPS_DETRACTORS] = 20;
    struct kpi_values v;
    kpi_values_compute(&v, &c, 300);
    cr_assert(v.has_churn_rate && v.has_arpu && v.has_nps_network);
    cr_assert_float_eq(v.churn_rate, 0.01, 1e-12);
    cr_assert_float_eq(v.arpu, 5.0, 1e-12);
    cr_assert_float_eq(v.nps_network, 30.0, 1e-12);
    cr_assert_not(v.has_nps_brand, "no brand responses: brand NPS undefined");
}

Test(kpi, empty_window_has_no_defined_ratio)
{
    struct kpi_counters c = {0};
    struct kpi_values v;
    kpi_values_compute(&v, &c, 0);
    cr_assert_not(v.has_churn_rate);
    cr_assert_not(v.has_arpu);
    cr_assert_not(v.has_nps_network);
    cr_assert_not(v.has_nps_brand);
    cr_assert_eq(v.c.events, 0);
}

Test(kpi, zero_active_subscribers_leaves_rates_undefined_but_counts_exact)
{
    struct kpi_counters c = {0};
    c.events = 5;
    c.churns = 2;
    struct kpi_values v;
    kpi_values_compute(&v, &c, 0);
    cr_assert_not(v.has_churn_rate);
    cr_assert_eq(v.c.churns, 2);
}

Test(kpi, nps_is_minus_100_when_all_detract)
{
    int64_t counts[3] = {0, 0, 9};
    cr_assert_float_eq(kpi_nps(counts), -100.0, 1e-12);
    int64_t none[3] = {0, 0, 0};
    cr_assert_float_eq(kpi_nps(none), 0.0, 1e-12);
}

Test(kpi, counters_add_and_subtract_back_to_zero)
{
    struct kpi_counters a = {0}, b = {0};
    b.events = 7;
    b.revenue = -3; /* subtraction of a leaving bucket may go through negatives */
    b.nps[1][2] = 4;
    kpi_counters_add(&a, &b);
    cr_assert_not(kpi_counters_is_zero(&a));
    kpi_counters_sub(&a, &b);
    cr_assert(kpi_counters_is_zero(&a));
}

Test(kpi, counts_provision_ms_of_the_activations_that_carry_it)
{
    struct kpi_counters c = {0};
    struct kpi_event a = ev(KPI_EV_ACTIVATION);
    a.has_provision_ms = 1;
    a.provision_ms = 4200;
    kpi_counters_count(&c, &a);
    a.provision_ms = 0; /* instant: counts as a provisioned activation */
    kpi_counters_count(&c, &a);
    struct kpi_event silent = ev(KPI_EV_ACTIVATION);
    kpi_counters_count(&c, &silent);
    struct kpi_event u = ev(KPI_EV_USAGE);
    u.has_provision_ms = 1;
    u.provision_ms = 999; /* decoded on any type, counted only for activations */
    kpi_counters_count(&c, &u);
    expect_counters(
        &c, &(struct kpi_counters){
                .events = 4, .usage = 1, .activations = 3, .provisioned = 2, .provision_ms = 4200});
}

Test(kpi, time_to_provision_is_the_mean_and_undefined_without_any)
{
    struct kpi_counters c = {0};
    c.activations = 5;
    struct kpi_values v;
    kpi_values_compute(&v, &c, 100);
    cr_assert_not(v.has_time_to_provision_ms, "no activation said: undefined, not 0");
    c.provisioned = 3;
    c.provision_ms = 1000 + 2000 + 6000;
    kpi_values_compute(&v, &c, 0);
    cr_assert(v.has_time_to_provision_ms, "does not depend on active subscribers");
    cr_assert_float_eq(v.time_to_provision_ms, 3000.0, 1e-12);
    cr_assert_not(v.has_churn_rate);
    c.provision_ms = 0;
    kpi_values_compute(&v, &c, 0);
    cr_assert(v.has_time_to_provision_ms, "all instant is 0 ms, defined");
    cr_assert_float_eq(v.time_to_provision_ms, 0.0, 1e-12);
}
