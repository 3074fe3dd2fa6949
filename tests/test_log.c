/*
 * test_log.c - the log module (base/log.c): the line format, the level
 * filter, and the per-subsystem burst limit that keeps a flood from drowning
 * the log.  Lines are read back through kpi_log_set_output.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "support/text.h"

static char *buf;
static size_t len;
static FILE *out;

static void capture(void)
{
    out = open_memstream(&buf, &len);
    cr_assert_not_null(out);
    kpi_log_set_output(out);
    kpi_log_set_level("info");
}

static void release(void)
{
    kpi_log_set_output(NULL);
    fclose(out);
    free(buf);
}

TestSuite(log, .init = capture, .fini = release);

/* What was logged so far. */
static const char *logged(void)
{
    fflush(out);
    return buf;
}

Test(log, a_line_has_a_utc_time_the_level_the_subsystem_and_the_message)
{
    kpi_log(KPI_LOG_WARN, "kafka", "revocation flush failed (%s)", "timeout");
    regex_t re;
    cr_assert_eq(regcomp(&re,
                         "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                         "warn  kafka: revocation flush failed \\(timeout\\)\n$",
                         REG_EXTENDED),
                 0);
    cr_assert_eq(regexec(&re, logged(), 0, NULL, 0), 0, "%s", logged());
    regfree(&re);
}

Test(log, the_level_filters_what_is_less_severe)
{
    kpi_log_set_level("warn");
    kpi_log(KPI_LOG_INFO, "t-level", "hidden");
    kpi_log(KPI_LOG_ERROR, "t-level", "shown");
    kpi_log_set_level("loud"); /* unknown: the level stays warn */
    kpi_log(KPI_LOG_DEBUG, "t-level", "hidden too");
    kpi_log_set_level("debug");
    kpi_log(KPI_LOG_DEBUG, "t-level", "now shown");
    const char *b = logged();
    cr_assert(strstr(b, "error t-level: shown\n"), "%s", b);
    cr_assert(strstr(b, "debug t-level: now shown\n"), "%s", b);
    cr_assert_null(strstr(b, "hidden"), "%s", b);
}

Test(log, a_flood_is_cut_to_the_burst_and_reported_as_one_line)
{
    for (int i = 0; i < 200; i++)
        kpi_log(KPI_LOG_WARN, "t-flood", "flood %d", i);
    /* Another subsystem has its own budget. */
    kpi_log(KPI_LOG_WARN, "t-other", "still heard");
    cr_assert(strstr(logged(), "t-other: still heard"), "%s", logged());
    /* At most two seconds' worth, should the flood straddle a second. */
    int shown = kt_count_of(logged(), "t-flood: flood ");
    cr_assert_geq(shown, KPI_LOG_BURST);
    cr_assert_leq(shown, 2 * KPI_LOG_BURST, "%d flood lines shown", shown);
    /* The first line of a later second reports what was dropped before it:
     * once a tick is shown, every suppression before it has been reported. */
    int ticks = 0;
    int64_t deadline = kpi_mono_ms() + 5000;
    while (!strstr(logged(), "t-flood: tick") && kpi_mono_ms() < deadline) {
        kpi_log(KPI_LOG_INFO, "t-flood", "tick");
        ticks++;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL); /* polling for the next second, with a deadline */
    }
    cr_assert(strstr(logged(), "t-flood: tick"), "no tick shown within 5 s");
    long suppressed = 0;
    for (const char *p = logged(); (p = strstr(p, " lines suppressed (over 20 per second)")); p++) {
        const char *d = p;
        while (d[-1] >= '0' && d[-1] <= '9')
            d--;
        cr_assert(strncmp(d - strlen("t-flood: "), "t-flood: ", 9) == 0, "%s", logged());
        suppressed += strtol(d, NULL, 10);
    }
    cr_assert_geq(suppressed, 200 - 2 * KPI_LOG_BURST, "%s", logged());
    /* Every line is either shown or counted, none twice. */
    cr_assert_eq(shown + kt_count_of(logged(), "t-flood: tick") + suppressed, 200 + ticks, "%s",
                 logged());
}
