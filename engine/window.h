/*
 * window.h - rolling event-time windows, their buckets and the watermark.
 *
 * A window has a size and a slide ("1h/1m"): at every multiple of the slide a
 * new window instance starts, covering the last `size` of event time.  It is
 * built from buckets of the slide's width, aligned to the Unix epoch, so a
 * window instance is the sum (counters) or union (HLL) of size/slide buckets.
 *
 * The engine aggregates every event once, into a *base bucket* whose width is
 * the greatest common divisor of all windows' slides (5 s for the defaults
 * 1m/5s, 1h/1m, 24h/1h).  Each window's buckets are unions of whole base
 * buckets, so one update per event serves all windows; rolling base buckets
 * up into window buckets happens at flush time, off the per-event path.
 *
 * Watermark and lateness.  For each input (a Kafka partition) the engine
 * tracks the largest event time seen, capped at the wall clock (an event
 * from a producer whose clock runs fast must not close buckets early).  The
 * watermark is the minimum of those over the inputs that have seen events
 * and are not idle (took a message within engine.idle_timeout; if all are
 * idle it stays), minus the allowed lateness.  It never moves back.  A base
 * bucket [s, s + base) is closed once watermark >= s + base; an event that
 * falls in a closed bucket is too late: it is counted as such and handed back
 * for dead-lettering, never aggregated.  Since every window bucket is a union
 * of base buckets, an event is either in every window or in none.  A window
 * bucket is closed when its last base bucket is.
 */
#ifndef KPI_WINDOW_H
#define KPI_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#define KPI_MAX_WINDOWS     8
#define KPI_WINDOW_NAME_MAX 24

struct kpi_window_spec {
    char name[KPI_WINDOW_NAME_MAX]; /* as configured, e.g. "1m/5s" */
    char id[KPI_WINDOW_NAME_MAX];   /* key-friendly, e.g. "1m_5s" */
    int64_t size_ms;
    int64_t slide_ms;
};

struct kpi_windows {
    int n;
    struct kpi_window_spec w[KPI_MAX_WINDOWS];
    int64_t base_ms;     /* gcd of the slides */
    int64_t lateness_ms; /* allowed lateness */
    int64_t longest_ms;  /* largest size */
};

#define KPI_WINDOWS_DEFAULT "1m/5s,1h/1m,24h/1h"

/* Parse a duration: "500ms", "5s", "1m", "1h", "1d" (or a bare number of
 * ms).  0 or KPI_ERR_INVAL. */
int kpi_duration_parse(const char *s, int64_t *ms);

/* Parse "size/slide"; size must be a positive multiple of slide. */
int kpi_window_parse(const char *spec, struct kpi_window_spec *w, char *errstr, size_t errstr_size);

/* The greatest common divisor of a and b (>= 0): the base bucket is the
 * slides' gcd. */
int64_t kpi_gcd(int64_t a, int64_t b);

/* specs: comma-separated window specs; lateness_ms >= 0. */
int kpi_windows_init(struct kpi_windows *ws, const char *specs, int64_t lateness_ms, char *errstr,
                     size_t errstr_size);

/* Start of the bucket of width `width` that holds ts (ts >= 0). */
static inline int64_t kpi_bucket_start(int64_t ts, int64_t width)
{
    return ts - ts % width;
}

/* The watermark for a given minimum over inputs of their max event time. */
static inline int64_t kpi_watermark_from(const struct kpi_windows *ws, int64_t min_max_ts)
{
    return min_max_ts - ws->lateness_ms;
}

/* 1 if an event at ts falls in a base bucket the watermark has closed. */
static inline int kpi_windows_is_late(const struct kpi_windows *ws, int64_t ts, int64_t watermark)
{
    return kpi_bucket_start(ts, ws->base_ms) + ws->base_ms <= watermark;
}

/* 1 if window w's bucket starting at `start` is closed by the watermark. */
static inline int kpi_window_bucket_closed(const struct kpi_window_spec *w, int64_t start,
                                           int64_t watermark)
{
    return start + w->slide_ms <= watermark;
}

/* Number of buckets in one instance of the window. */
static inline int64_t kpi_window_buckets(const struct kpi_window_spec *w)
{
    return w->size_ms / w->slide_ms;
}

#endif
