/* The churn-spike detector on synthetic series. */
#include <criterion/criterion.h>
#include <math.h>

#include "engine/alert.h"
#include "engine/err.h"

struct tally {
    int raised, resolved;
    int first_raise_at, first_resolve_at;
};

static struct tally run(const struct kpi_alert_conf *c, const double *rates, const uint64_t *active,
                        int n)
{
    struct kpi_alert_state s = {0};
    struct tally t = {0, 0, -1, -1};
    for (int i = 0; i < n; i++) {
        struct kpi_alert_info info;
        enum kpi_alert_change ch = kpi_alert_observe(c, &s, rates[i], active[i], &info);
        if (ch == KPI_ALERT_RAISED && t.raised++ == 0)
            t.first_raise_at = i;
        if (ch == KPI_ALERT_RESOLVED && t.resolved++ == 0)
            t.first_resolve_at = i;
    }
    return t;
}

/* A steady 1% churn with +-5% relative noise (deterministic). */
static double steady(int i)
{
    return 0.01 * (1.0 + 0.05 * sin(i * 1.7));
}

Test(alert, steady_rate_raises_nothing)
{
    struct kpi_alert_conf c;
    kpi_alert_conf_defaults(&c);
    double r[500];
    uint64_t a[500];
    for (int i = 0; i < 500; i++) {
        r[i] = steady(i);
        a[i] = 10000;
    }
    struct tally t = run(&c, r, a, 500);
    cr_assert_eq(t.raised, 0);
    cr_assert_eq(t.resolved, 0);
}

Test(alert, step_raises_once_and_resolves_once)
{
    struct kpi_alert_conf c;
    kpi_alert_conf_defaults(&c);
    double r[300];
    uint64_t a[300];
    for (int i = 0; i < 300; i++) {
        r[i] = steady(i) * (i >= 100 && i < 160 ? 4.0 : 1.0); /* a 60-bucket spike */
        a[i] = 10000;
    }
    struct tally t = run(&c, r, a, 300);
    cr_assert_eq(t.raised, 1);
    cr_assert_eq(t.resolved, 1);
    cr_assert_eq(t.first_raise_at, 100, "raised at the step");
    cr_assert_eq(t.first_resolve_at, 160, "resolved when the rate came back");
}

Test(alert, small_samples_raise_nothing)
{
    struct kpi_alert_conf c;
    kpi_alert_conf_defaults(&c);
    double r[200];
    uint64_t a[200];
    for (int i = 0; i < 200; i++) {
        r[i] = steady(i) * (i >= 100 ? 10.0 : 1.0);
        a[i] = i >= 100 ? c.min_active - 1 : 10000;
    }
    struct tally t = run(&c, r, a, 200);
    cr_assert_eq(t.raised, 0);
}

Test(alert, rate_below_the_absolute_floor_raises_nothing)
{
    struct kpi_alert_conf c;
    kpi_alert_conf_defaults(&c);
    c.floor_rate = 0.05;
    double r[200];
    uint64_t a[200];
    for (int i = 0; i < 200; i++) {
        r[i] = steady(i) * (i >= 100 ? 4.0 : 1.0); /* 4% < 5% floor */
        a[i] = 10000;
    }
    cr_assert_eq(run(&c, r, a, 200).raised, 0);
}

Test(alert, rate_hovering_between_thresholds_does_not_flap)
{
    struct kpi_alert_conf c;
    kpi_alert_conf_defaults(&c);
    double r[400];
    uint64_t a[400];
    /* Baseline 1% exactly; scale = rel_floor * mean = 0.1%; raise at 1.4%,
     * resolve at 1.1%.  After the raise, alternate 1.5% and 1.2%: above the
     * resolve level, so it stays raised through the wobble. */
    for (int i = 0; i < 400; i++) {
        r[i] = i < 100 ? 0.01 : i < 300 ? (i % 2 ? 0.012 : 0.015) : 0.01;
        a[i] = 10000;
    }
    struct tally t = run(&c, r, a, 400);
    cr_assert_eq(t.raised, 1);
    cr_assert_eq(t.resolved, 1);
    cr_assert_eq(t.first_resolve_at, 300);
}

Test(alert, nothing_raises_before_the_warmup)
{
    struct kpi_alert_conf c;
    kpi_alert_conf_defaults(&c);
    double r[5] = {0.01, 0.5, 0.5, 0.5, 0.5};
    uint64_t a[5] = {10000, 10000, 10000, 10000, 10000};
    cr_assert_eq(run(&c, r, a, 5).raised, 0);
}

Test(alert, reports_rate_baseline_and_threshold)
{
    struct kpi_alert_conf c;
    kpi_alert_conf_defaults(&c);
    struct kpi_alert_state s = {0};
    struct kpi_alert_info info;
    for (int i = 0; i < 20; i++)
        kpi_alert_observe(&c, &s, 0.01, 1000, &info);
    cr_assert_eq(kpi_alert_observe(&c, &s, 0.05, 1000, &info), KPI_ALERT_RAISED);
    cr_assert_float_eq(info.rate, 0.05, 1e-12);
    cr_assert_float_eq(info.baseline, 0.01, 1e-9);
    cr_assert_float_eq(info.threshold, 0.01 + c.raise_k * 0.001, 1e-9);
}

Test(alert, rejects_inconsistent_thresholds)
{
    struct kpi_alert_conf c;
    kpi_alert_conf_defaults(&c);
    c.resolve_k = c.raise_k;
    char err[128] = "";
    cr_assert_eq(kpi_alert_conf_check(&c, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "resolve_k"), "%s", err);
}
