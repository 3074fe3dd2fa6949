/* redisconn.h - connect to a redis:// URL (for the daemon's readers: the
 * alerter and the demo's live view; the sink has its own connection). */
#ifndef KPI_REDISCONN_H
#define KPI_REDISCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* redis://[:password@]host[:port][/db].  NULL with errstr set on failure. */
redisContext *kpi_redis_connect_url(const char *url, int64_t timeout_ms, char *errstr,
                                    size_t errstr_size);

#endif
