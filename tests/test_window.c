/* Rolling windows: parsing, base buckets, watermark and lateness edges. */
#include <criterion/criterion.h>

#include "engine/err.h"
#include "engine/window.h"

static struct kpi_windows defaults(int64_t lateness)
{
    struct kpi_windows ws;
    char err[128];
    cr_assert_eq(kpi_windows_init(&ws, KPI_WINDOWS_DEFAULT, lateness, err, sizeof(err)), 0, "%s",
                 err);
    return ws;
}

Test(window, parses_durations_in_every_unit)
{
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {
        {"250ms", 250},    {"5s", 5000},      {"1m", 60000},
        {"24h", 86400000}, {"2d", 172800000}, {"42", 42},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms;
        cr_assert_eq(kpi_duration_parse(cases[i].text, &ms), 0, "%s", cases[i].text);
        cr_assert_eq(ms, cases[i].ms, "%s", cases[i].text);
    }
}

Test(window, rejects_bad_durations)
{
    int64_t ms;
    cr_assert_eq(kpi_duration_parse("", &ms), KPI_ERR_INVAL);
    cr_assert_eq(kpi_duration_parse("5x", &ms), KPI_ERR_INVAL);
    cr_assert_eq(kpi_duration_parse("-5s", &ms), KPI_ERR_INVAL);
    cr_assert_eq(kpi_duration_parse("s", &ms), KPI_ERR_INVAL);
    cr_assert_eq(kpi_duration_parse("99999999999999999999d", &ms), KPI_ERR_INVAL);
}

Test(window, default_windows_share_a_five_second_base_bucket)
{
    struct kpi_windows ws = defaults(0);
    cr_assert_eq(ws.n, 3);
    cr_assert_eq(ws.base_ms, 5000);
    cr_assert_eq(ws.longest_ms, 86400000);
    cr_assert_str_eq(ws.w[1].name, "1h/1m");
    cr_assert_str_eq(ws.w[1].id, "1h_1m");
    cr_assert_eq(kpi_window_buckets(&ws.w[0]), 12);
    cr_assert_eq(kpi_window_buckets(&ws.w[1]), 60);
    cr_assert_eq(kpi_window_buckets(&ws.w[2]), 24);
}

Test(window, base_bucket_is_the_gcd_of_unaligned_slides)
{
    struct kpi_windows ws;
    cr_assert_eq(kpi_windows_init(&ws, "42s/6s,1m/4s", 0, NULL, 0), 0);
    cr_assert_eq(ws.base_ms, 2000);
}

Test(window, rejects_size_not_multiple_of_slide)
{
    struct kpi_windows ws;
    char err[128] = "";
    cr_assert_eq(kpi_windows_init(&ws, "1m/7s", 0, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "1m/7s") != NULL, "message names the window: %s", err);
}

Test(window, rejects_malformed_and_duplicate_specs)
{
    struct kpi_windows ws;
    cr_assert_eq(kpi_windows_init(&ws, "1m", 0, NULL, 0), KPI_ERR_INVAL);
    cr_assert_eq(kpi_windows_init(&ws, "0s/0s", 0, NULL, 0), KPI_ERR_INVAL);
    cr_assert_eq(kpi_windows_init(&ws, "1m/5s,1m/5s", 0, NULL, 0), KPI_ERR_INVAL);
    cr_assert_eq(kpi_windows_init(&ws, "", 0, NULL, 0), KPI_ERR_INVAL);
    cr_assert_eq(kpi_windows_init(&ws, "1m/5s", -1, NULL, 0), KPI_ERR_INVAL);
}

Test(window, bucket_start_is_aligned_to_the_epoch)
{
    cr_assert_eq(kpi_bucket_start(0, 5000), 0);
    cr_assert_eq(kpi_bucket_start(4999, 5000), 0);
    cr_assert_eq(kpi_bucket_start(5000, 5000), 5000);
    cr_assert_eq(kpi_bucket_start(1700000012345, 60000), 1699999980000);
}

Test(window, slides_at_bucket_edge)
{
    /* 1m/5s: an event at the last ms of a bucket and one at the first ms of
     * the next land in consecutive buckets, so the window slides by one. */
    struct kpi_windows ws = defaults(0);
    int64_t t = 1700000000000 - 1700000000000 % 5000;
    cr_assert_eq(kpi_bucket_start(t + 4999, ws.w[0].slide_ms), t);
    cr_assert_eq(kpi_bucket_start(t + 5000, ws.w[0].slide_ms), t + 5000);
    /* ...while both are in the same 1h/1m bucket unless t+5000 crosses a minute. */
    cr_assert_eq(kpi_bucket_start(t + 4999, 60000) == kpi_bucket_start(t + 5000, 60000),
                 (t + 5000) % 60000 != 0);
}

Test(window, watermark_is_max_event_time_minus_lateness)
{
    struct kpi_windows ws = defaults(30000);
    cr_assert_eq(kpi_watermark_from(&ws, 1000000), 970000);
}

Test(window, event_in_open_bucket_is_not_late)
{
    struct kpi_windows ws = defaults(0);
    /* watermark 10000 closes [5000,10000) but not [10000,15000). */
    cr_assert_not(kpi_windows_is_late(&ws, 10000, 10000));
    cr_assert_not(kpi_windows_is_late(&ws, 14999, 10000));
}

Test(window, event_in_closed_bucket_is_late)
{
    struct kpi_windows ws = defaults(0);
    cr_assert(kpi_windows_is_late(&ws, 9999, 10000));
    cr_assert(kpi_windows_is_late(&ws, 5000, 10000));
}

Test(window, late_event_within_lateness_still_counts)
{
    /* Max event time 100000, lateness 30 s: watermark 70000.  An event 29 s
     * behind the max (71000) is within the allowed lateness. */
    struct kpi_windows ws = defaults(30000);
    int64_t wm = kpi_watermark_from(&ws, 100000);
    cr_assert_not(kpi_windows_is_late(&ws, 71000, wm));
    cr_assert_not(kpi_windows_is_late(&ws, 70000, wm));
    /* One whose whole base bucket ends at or before the watermark is too late. */
    cr_assert(kpi_windows_is_late(&ws, 69999, wm));
}

Test(window, unknown_watermark_makes_nothing_late)
{
    struct kpi_windows ws = defaults(0);
    cr_assert_not(kpi_windows_is_late(&ws, 0, INT64_MIN));
}

Test(window, window_bucket_closes_with_its_last_base_bucket)
{
    struct kpi_windows ws = defaults(0);
    const struct kpi_window_spec *m = &ws.w[1]; /* 1h/1m */
    cr_assert_not(kpi_window_bucket_closed(m, 60000, 119999));
    cr_assert(kpi_window_bucket_closed(m, 60000, 120000));
}
