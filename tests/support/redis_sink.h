/* redis_sink.h - a Redis sink for the tests that flush through one. */
#ifndef KPI_TEST_REDIS_SINK_H
#define KPI_TEST_REDIS_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "sinks/sink.h"

/* The Redis sink at url, with the sink's defaults but one key group (the
 * keys are then kpi:{kpistream}:...) and connect and command timeouts of
 * timeout_ms; ops is NULL, with errstr set, on failure. */
struct kpi_sink kt_redis_sink(const char *url, int64_t timeout_ms, char *errstr, size_t errsz);

#endif
