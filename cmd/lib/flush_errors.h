/*
 * flush_errors.h - names the cause of a failed flush for the operator.
 *
 * The engine counts failed flush attempts by cause (the `reason` label of
 * kpistream_flush_errors_total) and reports each change of cause once
 * (engine.h: kpi_flush_error_hooks); the engine knows no sink, so the cause
 * is read here from the sink's message: a Redis error code (WRONGPASS,
 * NOPERM, MOVED, READONLY, OOM...), undelivered dead letters, a lost
 * connection or a timeout, an offsets conflict.  The labels are stable
 * (README, Metrics): alerting rules may depend on them.
 */
#ifndef KPI_FLUSH_ERRORS_H
#define KPI_FLUSH_ERRORS_H

#include <stddef.h>

/* Write the cause of a failed flush (err: a kpi_err; errstr: the sink's
 * message) into reason: a lower-case word such as "wrongpass", "noperm",
 * "moved", "dead_letters", "connection", "timeout", "conflict", or the
 * kpi_err name when nothing more is known.  Signature of
 * kpi_flush_error_hooks.classify (opaque is unused). */
void kpi_flush_error_classify(void *opaque, int err, const char *errstr, char *reason, size_t size);

#endif
