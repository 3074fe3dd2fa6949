/*
 * clock.h - kpistream's one clock module: wall-clock and monotonic time in
 * the units the rest of the code counts in, and absolute deadlines for timed
 * waits.
 *
 * Two clocks, for two different questions:
 *
 *   kpi_now_ms()   CLOCK_REALTIME, milliseconds since the Unix epoch.  What
 *                  event times are compared with (the decoder's skew check,
 *                  the watermark's idle advance), what goes into Redis
 *                  (`updated_ms`) and what people read.  It can jump (NTP,
 *                  an operator), so it never measures an interval.
 *   kpi_mono_ms()  CLOCK_MONOTONIC, milliseconds since an arbitrary start.
 *   kpi_mono_us()  The same in microseconds, and kpi_mono_s() in seconds
 *   kpi_mono_s()   (for rates and progress reports).  Intervals, timeouts,
 *                  backoffs, deadlines and latencies: it never goes back.
 *
 * kpi_deadline_ts() turns "ms from now" into the absolute struct timespec
 * that pthread_cond_timedwait(), sem_clockwait() and friends want, on the
 * clock the waiter was set up with (a condition variable's clock attribute,
 * CLOCK_REALTIME by default).
 *
 * Every function is a clock_gettime() and some arithmetic: cheap enough for
 * the flusher and the source's loops, and never called per event.
 */
#ifndef KPI_BASE_CLOCK_H
#define KPI_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

int64_t kpi_now_ms(void);
int64_t kpi_mono_ms(void);
int64_t kpi_mono_us(void);
double kpi_mono_s(void);

/* *ts = the time on `clock` ms_from_now milliseconds from now (>= 0). */
void kpi_deadline_ts(struct timespec *ts, clockid_t clock, int64_t ms_from_now);

#endif
