/* redisconn.h - connect to a redis.url (for the daemon's readers: the API,
 * the alerter and the demo through cmd/lib/kpiread.c; the sink has its own
 * connection). */
#ifndef KPI_REDISCONN_H
#define KPI_REDISCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]; the
 * timeout applies to the connect and to every command.  NULL with errstr set
 * on failure. */
redisContext *kpi_redis_connect_url(const char *url, int64_t timeout_ms, char *errstr,
                                    size_t errstr_size);

#endif
