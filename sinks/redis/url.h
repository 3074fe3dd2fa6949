/*
 * url.h - the one Redis URL parser.  Every Redis client of kpistream (the
 * sink, the alerter, the demo view, the HTTP API) takes its address from
 * here, so an ACL user, a %-escaped password or a unix socket means the same
 * thing everywhere.
 *
 *   redis://[[user]:password@]host[:port][/db]      (host may be [ipv6])
 *   unix:///path/to/redis.sock[?db=N]               (also unix:/path)
 *
 * user and password may be %-encoded; the password is everything between the
 * first ':' after the scheme and the LAST '@' (a password may hold '@').
 * "redis://password@host" (no ':') is taken as a password, a common slip.
 */
#ifndef KPI_SINK_REDIS_URL_H
#define KPI_SINK_REDIS_URL_H

#include <stddef.h>

struct kpi_redis_addr {
    char *host; /* NULL for a unix socket */
    int port;
    char *unix_path;
    char *user;     /* NULL: default user */
    char *password; /* NULL: no AUTH */
    int db;
};

/* Parse url into *a (zeroed first; free with kpi_redis_addr_fini).  0, or
 * KPI_ERR_INVAL (the message quotes the url with its password hidden) or
 * KPI_ERR_NOMEM. */
int kpi_redis_url_parse(const char *url, struct kpi_redis_addr *a, char *errstr,
                        size_t errstr_size);
void kpi_redis_addr_fini(struct kpi_redis_addr *a);

/* A malloc'd copy of url with its password replaced by "***" (for messages
 * and logs), or NULL when out of memory. */
char *kpi_redis_url_redact(const char *url);

#endif
