/* flush_errors.c - see flush_errors.h. */
#include "cmd/lib/flush_errors.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "engine/err.h"

/* Redis error codes worth telling apart: each needs a different fix
 * (credentials, ACL, cluster topology, failover, memory...). */
static const char *const redis_codes[] = {
    "WRONGPASS", "NOAUTH",     "NOPERM",     "MOVED",     "ASK",         "READONLY", "OOM",
    "BUSY",      "LOADING",    "MASTERDOWN", "NOSCRIPT",  "CLUSTERDOWN", "TRYAGAIN", "CROSSSLOT",
    "MISCONF",   "NOREPLICAS", "EXECABORT",  "WRONGTYPE", "UNBLOCKED",   "NOTBUSY",  "ERR",
};

/* The first word of s that is a whole Redis error code, or NULL. */
static const char *find_code(const char *s)
{
    for (const char *p = s; *p; p++) {
        if (!isupper((unsigned char)*p) || (p > s && isalnum((unsigned char)p[-1])))
            continue;
        size_t n = 0;
        while (isupper((unsigned char)p[n]))
            n++;
        if (isalnum((unsigned char)p[n]) || p[n] == '_')
            continue;
        for (size_t i = 0; i < sizeof(redis_codes) / sizeof(redis_codes[0]); i++)
            if (strlen(redis_codes[i]) == n && strncmp(p, redis_codes[i], n) == 0)
                return redis_codes[i];
        p += n - 1;
    }
    return NULL;
}

static void lower(char *out, size_t size, const char *in)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

void kpi_flush_error_classify(void *opaque, int err, const char *errstr, char *reason, size_t size)
{
    (void)opaque;
    const char *s = errstr ? errstr : "";
    const char *code;
    if (strstr(s, "dead-letter topic"))
        snprintf(reason, size, "dead_letters");
    else if ((code = find_code(s)))
        lower(reason, size, code);
    else if (err == KPI_ERR_CONFLICT && strstr(s, "another instance owns"))
        snprintf(reason, size, "conflict");
    else if (err == KPI_ERR_INVAL && strstr(s, ":key_groups"))
        snprintf(reason, size, "key_groups"); /* the group's layout: sinks/redis/sink.c */
    else if (strstr(s, "timed out") || strstr(s, "Resource temporarily unavailable") ||
             strstr(s, "no flush completed"))
        snprintf(reason, size, "timeout");
    else if (strstr(s, "connect") || strstr(s, "onnection") || strstr(s, "Server closed"))
        snprintf(reason, size, "connection");
    else
        snprintf(reason, size, "%s", kpi_err_name(err));
}
