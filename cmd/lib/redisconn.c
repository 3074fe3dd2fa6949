/* redisconn.c - see redisconn.h. */
#include "cmd/lib/redisconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "sinks/redis/url.h"

redisContext *kpi_redis_connect_url(const char *url, int64_t timeout_ms, char *errstr, size_t errsz)
{
    struct kpi_redis_addr a;
    if (kpi_redis_url_parse(url, &a, errstr, errsz))
        return NULL;
    char *shown = kpi_redis_url_redact(url);
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000)};
    redisContext *c = a.unix_path ? redisConnectUnixWithTimeout(a.unix_path, tv)
                                  : redisConnectWithTimeout(a.host, a.port, tv);
    redisReply *r = NULL;
    const char *step = "connect";
    if (!c || c->err)
        goto fail;
    step = "set timeout";
    if (redisSetTimeout(c, tv) != REDIS_OK)
        goto fail;
    if (a.password) {
        step = "AUTH";
        const char *argv[3] = {"AUTH", a.user ? a.user : a.password, a.password};
        r = redisCommandArgv(c, a.user ? 3 : 2, argv, NULL);
        if (!r || r->type == REDIS_REPLY_ERROR)
            goto fail;
        freeReplyObject(r);
        r = NULL;
    }
    if (a.db) {
        step = "SELECT";
        if (!(r = redisCommand(c, "SELECT %d", a.db)) || r->type == REDIS_REPLY_ERROR)
            goto fail;
        freeReplyObject(r);
        r = NULL;
    }
    free(shown);
    kpi_redis_addr_fini(&a);
    return c;
fail:
    kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis %s: %s: %s", shown ? shown : "(url)", step,
               r && r->type == REDIS_REPLY_ERROR ? r->str
               : c && c->err                     ? c->errstr
               : c                               ? "no reply"
                                                 : "out of memory");
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    free(shown);
    kpi_redis_addr_fini(&a);
    return NULL;
}
