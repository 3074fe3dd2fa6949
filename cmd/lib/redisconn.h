/* redisconn.h - connect to a redis.url with one plain connection: the demo's
 * "does Redis answer?" probe.  The readers (API, alerter, demo view: through
 * cmd/lib/kpiread.c) and the sink route by slot instead, through
 * sinks/redis/conn.h, so that they also read a Redis Cluster.  The address
 * comes from the one Redis URL parser, sinks/redis/url.h (ACL users,
 * %-escapes, unix: sockets). */
#ifndef KPI_REDISCONN_H
#define KPI_REDISCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* Connect, AUTH (with the ACL user if the url names one) and SELECT; the
 * timeout applies to the connect and to every command.  NULL with errstr set
 * on failure: the message names the url with its password hidden and says
 * which step failed with Redis's own words (WRONGPASS, NOPERM, connection
 * refused...). */
redisContext *kpi_redis_connect_url(const char *url, int64_t timeout_ms, char *errstr,
                                    size_t errstr_size);

#endif
