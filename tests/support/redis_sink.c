/* redis_sink.c - a Redis sink for the tests (redis_sink.h). */
#include "support/redis_sink.h"

#include "sinks/redis.h"

struct kpi_sink kt_redis_sink(const char *url, int64_t timeout_ms, char *errstr, size_t errsz)
{
    struct kpi_redis_conf c;
    kpi_redis_conf_defaults(&c);
    c.url = url;
    c.connect_timeout_ms = timeout_ms;
    c.command_timeout_ms = timeout_ms;
    c.key_groups = 1;
    return kpi_sink_redis_new(&c, errstr, errsz);
}
