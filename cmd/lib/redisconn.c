/* redisconn.c - see redisconn.h. */
#include "redisconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

redisContext *kpi_redis_connect_url(const char *url, int64_t timeout_ms, char *errstr, size_t errsz)
{
    char host[256] = "127.0.0.1", pass[256] = "";
    int port = 6379, db = 0;
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "redis.url: '%s' is not redis://...", url);
        return NULL;
    }
    p += 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(pass, sizeof(pass), "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl)
        snprintf(host, sizeof(host), "%.*s", (int)hl, p);
    p += hl;
    if (*p == ':')
        port = atoi(p + 1), p += 1 + strcspn(p + 1, "/");
    if (*p == '/')
        db = atoi(p + 1);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis at %s:%d: %s", host, port,
                   c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *r = NULL;
    if (pass[0] && (!(r = redisCommand(c, "AUTH %s", pass)) || r->type == REDIS_REPLY_ERROR))
        goto fail;
    if (r)
        freeReplyObject(r), r = NULL;
    if (db && (!(r = redisCommand(c, "SELECT %d", db)) || r->type == REDIS_REPLY_ERROR))
        goto fail;
    if (r)
        freeReplyObject(r);
    return c;
fail:
    kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis at %s:%d: %s", host, port,
               r && r->str ? r->str : c->errstr);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return NULL;
}
