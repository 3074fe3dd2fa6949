/*
 * log.h - kpistream's log lines: one line per event on stderr,
 *
 *   2026-11-24T21:20:00.123Z warn  kafka: revocation flush failed (...)
 *
 * with a level (error, warn, info, debug; `log.level` filters) and a
 * subsystem.  Each subsystem may write at most KPI_LOG_BURST lines per second;
 * the lines beyond are counted and reported as one "N lines suppressed" line,
 * so a flood (a broker down, a stream of bad input) cannot drown the log.
 * Per-event problems are never logged one by one: they are counted
 * (metrics) and dead-lettered.
 */
#ifndef KPI_LOG_H
#define KPI_LOG_H

enum kpi_log_level { KPI_LOG_ERROR = 0, KPI_LOG_WARN, KPI_LOG_INFO, KPI_LOG_DEBUG };

#define KPI_LOG_BURST 20

/* "error", "warn", "info" or "debug"; unknown names leave the level as is. */
void kpi_log_set_level(const char *name);
void kpi_log(enum kpi_log_level level, const char *subsystem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
