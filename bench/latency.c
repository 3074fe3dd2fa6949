/*
 * latency.c - `kpistream-bench latency`: how long an event takes from its
 * production to its effect in Redis.
 *
 * An event has taken effect when the flush that carries it has run: the sink
 * stores a partition's next offset in the same Lua call as the data
 * (docs/exactly-once.md), so "offset o of partition p is in Redis" is exactly
 * "HGET <key group prefix>offsets <topic>:<p> > o" in every key group: a
 * flush is one call per key group, each storing every partition's offset
 * (--key-groups K, kpistream's redis.key_groups; default: the K the group
 * recorded in <prefix>:{<group>}:key_groups, read once it exists), and the
 * flush has taken effect once the last of them has.
 *
 * The production side comes from `kpistream-gen --timestamps FILE`: every
 * 100th delivered message's partition, offset and CreateTime (the time the
 * generator handed it to librdkafka).  This program polls the group's
 * offsets hashes (the minimum over key groups, per partition) every --poll-ms for --duration
 * seconds and keeps, per partition, each (time, stored offset) change; then reads FILE and gives
 * each sampled message the time of the first poll that showed its offset
 * stored, minus its CreateTime (same machine, same clock; the poll interval
 * is the resolution).  Messages produced in the first --warmup seconds of
 * the poll (group join, first assignment) are left out.
 *
 * Prints `latency: N samples, p50 A ms, p90 B ms, p99 C ms, max D ms` and how
 * many sampled messages never showed up in Redis before the end.
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "sinks/redis.h"

#define MAX_P 256

struct sample {
    int64_t offset, ts_ms;
    int32_t partition;
};

struct change {
    int64_t t_ms, offset;
};

struct series {
    struct change *v;
    size_t n, cap;
};

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 1024;
    void *q = realloc(p, *cap * size);
    if (!q) {
        fprintf(stderr, "latency: out of memory\n");
        exit(1);
    }
    return q;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Time from the sample's production to the first poll that showed its
 * offset stored (the first change with offset > s->offset), or -1 if no
 * poll did. */
static int64_t latency_of(const struct series *z, const struct sample *s)
{
    size_t a = 0, b = z->n;
    while (a < b) {
        size_t mid = (a + b) / 2;
        if (z->v[mid].offset > s->offset)
            b = mid;
        else
            a = mid + 1;
    }
    return a == z->n ? -1 : z->v[a].t_ms - s->ts_ms;
}

static int cmp_sample_ts(const void *a, const void *b)
{
    int64_t x = ((const struct sample *)a)->ts_ms, y = ((const struct sample *)b)->ts_ms;
    return (x > y) - (x < y);
}

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Every key group's offsets key, once the group's K is known (*k > 0 given,
 * or recorded in Redis by the group's first sink); NULL before (or out of
 * memory, or a group name too long: said on stderr, and *k set to -1). */
static char (*offsets_keys(redisContext *rc, const char *prefix, const char *group, int *k))[512]
{
    if (*k < 0)
        return NULL;
    if (*k == 0) {
        redisReply *r = redisCommand(rc, "GET %s:{%s}:key_groups", prefix, group);
        uint32_t v;
        if (r && r->type == REDIS_REPLY_STRING && kpi_redis_parse_key_groups(r->str, &v) == 0)
            *k = (int)v;
        freeReplyObject(r);
        if (*k == 0)
            return NULL;
    }
    char(*keys)[512] = calloc((size_t)*k, sizeof(*keys));
    for (int kg = 0; keys && kg < *k; kg++)
        if (kpi_redis_kg_prefix(keys[kg], sizeof(keys[kg]) - 8, prefix, group, (uint32_t)*k,
                                (uint32_t)kg) == 0)
            strcat(keys[kg], "offsets");
        else {
            free(keys);
            keys = NULL;
        }
    if (!keys) {
        fprintf(stderr, "latency: out of memory, or the group name is too long\n");
        *k = -1;
    }
    return keys;
}

int bench_latency(int argc, char **argv)
{
    const char *topic = "events", *group = "kpistream", *samples_path = NULL, *series_path = NULL;
    const char *redis_host = "127.0.0.1", *prefix = "kpi";
    int redis_port = 6379, poll_ms = 5, key_groups = 0; /* 0: the group's */
    double duration = 60, warmup = 10;
    static const struct option lo[] = {
        {"timestamps", required_argument, NULL, 'T'}, {"topic", required_argument, NULL, 't'},
        {"series", required_argument, NULL, 'S'},     {"group", required_argument, NULL, 'g'},
        {"redis-host", required_argument, NULL, 'H'}, {"redis-port", required_argument, NULL, 'P'},
        {"prefix", required_argument, NULL, 'x'},     {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},     {"poll-ms", required_argument, NULL, 'p'},
        {"key-groups", required_argument, NULL, 'K'}, {NULL, 0, NULL, 0}};
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "t:g:", lo, NULL)) != -1) {
        switch (c) {
        case 'T': samples_path = optarg; break;
        case 'S': series_path = optarg; break;
        case 't': topic = optarg; break;
        case 'g': group = optarg; break;
        case 'H': redis_host = optarg; break;
        case 'P': redis_port = atoi(optarg); break;
        case 'x': prefix = optarg; break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'p': poll_ms = atoi(optarg); break;
        case 'K': key_groups = atoi(optarg); break;
        default: return 2;
        }
    }
    if (!samples_path || poll_ms < 1 || duration <= warmup || key_groups < 0 || key_groups > 1024) {
        fprintf(stderr, "latency: need --timestamps FILE, --poll-ms >= 1, --duration > --warmup, "
                        "--key-groups 1..1024\n");
        return 2;
    }
    redisContext *rc = redisConnect(redis_host, redis_port);
    if (!rc || rc->err) {
        fprintf(stderr, "latency: redis %s:%d: %s\n", redis_host, redis_port,
                rc ? rc->errstr : "cannot allocate");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int64_t t0 = kpi_now_ms(), from_ms = t0 + (int64_t)(warmup * 1000);

    size_t tlen = strlen(topic);
    static struct series ser[MAX_P];
    /* Per partition, this poll's minimum over the key groups, and how many
     * key groups stored it (a partition counts once all have). */
    static int64_t low[MAX_P];
    static int seen[MAX_P];
    int64_t end = t0 + (int64_t)(duration * 1000);
    char(*keys)[512] = NULL;
    while (!g_stop && kpi_now_ms() < end) {
        if (!keys && (keys = offsets_keys(rc, prefix, group, &key_groups)) == NULL) {
            if (key_groups < 0)
                return 1;
            struct timespec ts = {0, (long)poll_ms * 1000000L}; /* the group has no K yet */
            nanosleep(&ts, NULL);
            continue;
        }
        for (int kg = 0; kg < key_groups; kg++)
            redisAppendCommand(rc, "HGETALL %s", keys[kg]);
        memset(seen, 0, sizeof(seen));
        for (int kg = 0; kg < key_groups; kg++) {
            redisReply *r = NULL;
            if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r) {
                fprintf(stderr, "latency: redis: %s\n", rc->errstr);
                return 1;
            }
            if (r->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i + 1 < r->elements; i += 2) {
                    const char *f = r->element[i]->str;
                    if (r->element[i]->len <= tlen + 1 || strncmp(f, topic, tlen) != 0 ||
                        f[tlen] != ':')
                        continue;
                    int p = atoi(f + tlen + 1);
                    int64_t off = atoll(r->element[i + 1]->str);
                    if (p < 0 || p >= MAX_P)
                        continue;
                    if (seen[p] == 0 || off < low[p])
                        low[p] = off;
                    seen[p]++;
                }
            freeReplyObject(r);
        }
        int64_t now = kpi_now_ms();
        for (int p = 0; p < MAX_P; p++) {
            if (seen[p] != key_groups)
                continue;
            struct series *s = &ser[p];
            if (s->n == 0 || s->v[s->n - 1].offset != low[p]) {
                s->v = grow(s->v, &s->cap, s->n, sizeof(*s->v));
                s->v[s->n++] = (struct change){now, low[p]};
            }
        }
        struct timespec ts = {0, (long)poll_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(keys);
    redisFree(rc);

    FILE *f = fopen(samples_path, "r");
    if (!f) {
        fprintf(stderr, "latency: cannot read %s\n", samples_path);
        return 1;
    }
    struct sample *smp = NULL;
    size_t n_smp = 0, cap = 0, before = 0;
    struct sample x;
    while (fscanf(f, "%d %lld %lld", &x.partition, (long long *)&x.offset, (long long *)&x.ts_ms) ==
           3) {
        if (x.partition < 0 || x.partition >= MAX_P)
            continue;
        if (x.ts_ms < from_ms) {
            before++;
            continue;
        }
        smp = grow(smp, &cap, n_smp, sizeof(*smp));
        smp[n_smp++] = x;
    }
    fclose(f);
    int64_t *lat = malloc((n_smp + 1) * sizeof(*lat));
    size_t n = 0, missing = 0;
    for (size_t i = 0; i < n_smp; i++) {
        const struct sample *s = &smp[i];
        int64_t l = latency_of(&ser[s->partition], s);
        if (l < 0)
            missing++;
        else
            lat[n++] = l;
    }
    if (series_path) { /* per second of production time: samples and max latency */
        FILE *o = fopen(series_path, "w");
        int64_t sec = -1, mx = 0;
        size_t cnt = 0;
        qsort(smp, n_smp, sizeof(*smp), cmp_sample_ts);
        for (size_t i = 0; i < n_smp; i++) {
            const struct sample *s = &smp[i];
            int64_t l = latency_of(&ser[s->partition], s);
            if (l < 0)
                continue;
            if (s->ts_ms / 1000 != sec) {
                if (o && sec >= 0)
                    fprintf(o, "%lld %zu %lld\n", (long long)(sec - t0 / 1000), cnt, (long long)mx);
                sec = s->ts_ms / 1000, cnt = 0, mx = 0;
            }
            cnt++;
            if (l > mx)
                mx = l;
        }
        if (o && sec >= 0)
            fprintf(o, "%lld %zu %lld\n", (long long)(sec - t0 / 1000), cnt, (long long)mx);
        if (o)
            fclose(o);
    }
    printf("latency: %zu sampled messages produced after the %.0f s warm-up (%zu before), "
           "%zu not in Redis by the end\n",
           n_smp, warmup, before, missing);
    if (n == 0) {
        printf("latency: no samples\n");
        free(lat);
        return 1;
    }
    qsort(lat, n, sizeof(*lat), cmp_i64);
#define PCT(p) lat[(size_t)((double)(n - 1) * (p) + 0.5)]
    printf("latency: %zu samples, p50 %lld ms, p90 %lld ms, p99 %lld ms, max %lld ms "
           "(production to Redis, poll every %d ms)\n",
           n, (long long)PCT(0.5), (long long)PCT(0.9), (long long)PCT(0.99), (long long)PCT(1.0),
           poll_ms);
#undef PCT
    free(lat);
    free(smp);
    for (int p = 0; p < MAX_P; p++)
        free(ser[p].v);
    return 0;
}
