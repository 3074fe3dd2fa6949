/* redisconn.h - connect to a redis.url (for the daemon's readers: the API,
 * the alerter and the demo through cmd/lib/kpiread.c; the sink keeps its own
 * connections, sinks/redis/conn.c).  The address comes from the one Redis
 * URL parser, sinks/redis/url.h (ACL users, %-escapes, unix: sockets). */
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
