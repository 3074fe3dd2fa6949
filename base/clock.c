/* clock.c - wall-clock and monotonic time (see clock.h). */
#include "base/clock.h"

/* Nanoseconds on `clock`: fits an int64 until the year 2262. */
static int64_t ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t kpi_now_ms(void)
{
    return ns(CLOCK_REALTIME) / 1000000;
}

int64_t kpi_mono_ms(void)
{
    return ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t kpi_mono_us(void)
{
    return ns(CLOCK_MONOTONIC) / 1000;
}

double kpi_mono_s(void)
{
    return (double)ns(CLOCK_MONOTONIC) / 1e9;
}

void kpi_deadline_ts(struct timespec *ts, clockid_t clock, int64_t ms_from_now)
{
    clock_gettime(clock, ts);
    ts->tv_sec += ms_from_now / 1000;
    ts->tv_nsec += (ms_from_now % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}
