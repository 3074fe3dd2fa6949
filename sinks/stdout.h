/*
 * stdout.h - the in-memory sink: keeps every window's rolling KPIs in process
 * memory and prints them per flush, as a readable table or as JSON lines.
 *
 * It is what the zero-setup demo and the tests use where Redis would be
 * overkill, so it computes exactly what the Redis sink stores (the same
 * definitions, docs/redis-schema.md): per window and (grouping set, value), a
 * ring of the window's buckets (counters and a sketch each), and the
 * "current window instance" of a window: the size/slide buckets ending with
 * the bucket that holds the watermark plus the allowed lateness (the event
 * time every input has reached).  Memory is bounded by windows x values x
 * 2 * buckets per window.  It stores no offsets (load_offset is NULL).
 *
 * Output per flush: the table shows, per window, `all` and the `top` values
 * (by events in the current instance) of every grouping set; JSON mode writes
 * one object per (window, set, value) whose KPIs changed, with undefined KPIs
 * (zero denominator) as null:
 *
 *   {"window":"1h/1m","set":"region","value":"eu-west","start":1700000000000,
 *    "end":1700003600000,"events":12,...,"active":7,"churn_rate":0.142857,
 *    "arpu":1.5,"nps_network":null,"nps_brand":null}
 */
#ifndef KPI_SINK_STDOUT_H
#define KPI_SINK_STDOUT_H

#include <stdint.h>
#include <stdio.h>

#include "sinks/sink.h"

/* out: where to print (NULL: print nothing, keep state for queries).
 * json: 1 for JSON lines, 0 for the table.  top: values per grouping set in
 * the table (0: 5).  Returns ops == NULL only when out of memory. */
struct kpi_sink kpi_sink_stdout_new(FILE *out, int json, int top, char *errstr, size_t errstr_size);

/* The KPIs of the current instance of `window` (its name "1h/1m" or id
 * "1h_1m") for a grouping-set value (set "all" has the value "all").  A value
 * never seen is an empty window: zero counters and no derived KPI.
 * start/end (may be NULL) receive the instance's bounds [start, end), or
 * INT64_MIN while the window has no head yet.  0, KPI_ERR_INVAL for an
 * unknown window or set, KPI_ERR_STATE before the first delta.  Thread-safe
 * with respect to flushes. */
int kpi_sink_stdout_query(const struct kpi_sink *s, const char *window, const char *set,
                          const char *value, struct kpi_values *out, int64_t *start, int64_t *end);

/* For readers of the in-memory state (the HTTP API in memory mode).  Each
 * call holds the sink's lock while it visits, so callbacks must be short.
 * All return 0, KPI_ERR_INVAL for an unknown window or set, KPI_ERR_STATE
 * before the first delta. */

/* The head of `window`'s current instance (INT64_MIN if none yet), the
 * largest watermark flushed (INT64_MIN if none) and the deltas applied. */
int kpi_sink_stdout_state(const struct kpi_sink *s, const char *window, int64_t *head,
                          int64_t *watermark, uint64_t *flushes);
/* Every value of `set` with events in the current instance of `window` (the
 * set "all": its value always), with its KPIs, in no particular order. */
int kpi_sink_stdout_each(const struct kpi_sink *s, const char *window, const char *set,
                         void (*fn)(void *opaque, const char *value, size_t len,
                                    const struct kpi_values *v),
                         void *opaque);
/* The buckets of one value kept for the current instance of `window`, oldest
 * first, each with its own KPIs (counters and distinct subscribers of that
 * bucket alone). */
int kpi_sink_stdout_buckets(const struct kpi_sink *s, const char *window, const char *set,
                            const char *value,
                            void (*fn)(void *opaque, int64_t bucket, const struct kpi_values *v),
                            void *opaque);

#endif
