/* redisconn.c - see redisconn.h. */
#include "cmd/lib/redisconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

/* %XX-decode src[0, n) into dst (user names and passwords may be encoded). */
static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static void pct_decode(char *dst, size_t size, const char *src, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < size; i++) {
        if (src[i] == '%' && i + 2 < n && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            dst[o++] = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    dst[o] = '\0';
}

redisContext *kpi_redis_connect_url(const char *url, int64_t timeout_ms, char *errstr, size_t errsz)
{
    char host[256] = "127.0.0.1", user[256] = "", pass[256] = "", path[512] = "";
    int port = 6379, db = 0;
    const char *p = url;
    if (strncmp(p, "unix:", 5) == 0) {
        p += strncmp(p, "unix://", 7) == 0 ? 7 : 5;
        size_t pl = strcspn(p, "?");
        snprintf(path, sizeof(path), "%.*s", (int)pl, p);
        const char *q = strstr(p + pl, "db=");
        if (q)
            db = atoi(q + 3);
    } else if (strncmp(p, "redis://", 8) == 0) {
        p += 8;
        const char *at = strrchr(p, '@');
        if (at) {
            const char *colon = memchr(p, ':', (size_t)(at - p));
            if (colon) {
                pct_decode(user, sizeof(user), p, (size_t)(colon - p));
                pct_decode(pass, sizeof(pass), colon + 1, (size_t)(at - colon - 1));
            } else {
                pct_decode(pass, sizeof(pass), p, (size_t)(at - p));
            }
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
    } else {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "redis.url: '%s' is not redis:// or unix:", url);
        return NULL;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c =
        path[0] ? redisConnectUnixWithTimeout(path, tv) : redisConnectWithTimeout(host, port, tv);
    char where[600];
    if (path[0])
        snprintf(where, sizeof(where), "%s", path);
    else
        snprintf(where, sizeof(where), "%s:%d", host, port);
    if (!c || c->err) {
        kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis at %s: %s", where,
                   c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *r = NULL;
    if (pass[0]) {
        r = user[0] ? redisCommand(c, "AUTH %s %s", user, pass) : redisCommand(c, "AUTH %s", pass);
        if (!r || r->type == REDIS_REPLY_ERROR)
            goto fail;
        freeReplyObject(r);
        r = NULL;
    }
    if (db && (!(r = redisCommand(c, "SELECT %d", db)) || r->type == REDIS_REPLY_ERROR))
        goto fail;
    if (r)
        freeReplyObject(r);
    return c;
fail:
    kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis at %s: %s", where,
               r && r->str ? r->str : c->errstr);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return NULL;
}
