/*
 * url.c - the Redis URL parser (url.h).
 */
#include "sinks/redis/url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A %-decoded copy of [p, p + len), or NULL. */
static char *pct_decode(const char *p, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '%' && i + 2 < len && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            out[n++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else {
            out[n++] = p[i];
        }
    }
    out[n] = '\0';
    return out;
}

static int parse_db(const char *p, int *db)
{
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno || end == p || *end != '\0' || v < 0 || v > 1000000)
        return -1;
    *db = (int)v;
    return 0;
}

/* The url with its password (between the last ':' before '@' and the '@')
 * replaced by "***", for messages and logs. */
char *kpi_redis_url_redact(const char *url)
{
    const char *at = strrchr(url, '@');
    const char *scheme = strstr(url, "://");
    const char *user = scheme ? scheme + 3 : url;
    if (!at || at < user)
        return strdup(url);
    const char *colon = memchr(user, ':', (size_t)(at - user));
    const char *pw = colon ? colon + 1 : user;
    size_t n = (size_t)(pw - url) + 3 + strlen(at) + 1;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%.*s***%s", (int)(pw - url), url, at);
    return out;
}

int kpi_redis_url_parse(const char *url, struct kpi_redis_addr *s, char *errstr, size_t errsz)
{
    memset(s, 0, sizeof(*s));
    int err;
    if (strncmp(url, "unix://", 7) == 0 || strncmp(url, "unix:", 5) == 0) {
        const char *p = url + (strncmp(url, "unix://", 7) == 0 ? 7 : 5);
        const char *q = strchr(p, '?');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 0)
            goto bad;
        s->unix_path = strndup(p, len);
        if (q && (strncmp(q, "?db=", 4) != 0 || parse_db(q + 4, &s->db)))
            goto bad;
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        goto bad;
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) /* redis://password@host is a common slip; accept it */
            s->password = pct_decode(p, (size_t)(at - p));
        else {
            if (colon > p)
                s->user = pct_decode(p, (size_t)(colon - p));
            s->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
        }
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hostend = slash ? slash : p + strlen(p);
    const char *colon = NULL;
    for (const char *c = p; c < hostend; c++)
        if (*c == ':')
            colon = c;
    if (*p == '[') { /* [ipv6]:port */
        const char *rb = memchr(p, ']', (size_t)(hostend - p));
        if (!rb)
            goto bad;
        s->host = strndup(p + 1, (size_t)(rb - p - 1));
        colon = rb + 1 < hostend && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        size_t hl = (size_t)((colon ? colon : hostend) - p);
        s->host = hl ? strndup(p, hl) : strdup("127.0.0.1");
    }
    s->port = 6379;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != hostend || port < 1 || port > 65535)
            goto bad;
        s->port = (int)port;
    }
    if (slash && slash[1] && parse_db(slash + 1, &s->db))
        goto bad;
    if (!s->host || (at && !s->password)) {
        kpi_redis_addr_fini(s);
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    }
    return 0;
bad:;
    char *shown = kpi_redis_url_redact(url);
    err = kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                     "redis url '%s' is not redis://[[user]:password@]host[:port][/db] "
                     "or unix:///path[?db=N]",
                     shown ? shown : "?");
    free(shown);
    kpi_redis_addr_fini(s);
    return err;
}

void kpi_redis_addr_fini(struct kpi_redis_addr *a)
{
    free(a->host);
    free(a->unix_path);
    free(a->user);
    free(a->password);
    memset(a, 0, sizeof(*a));
}
