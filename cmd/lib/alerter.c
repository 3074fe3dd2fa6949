/* alerter.c - see alerter.h. */
#include "alerter.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "redis.h"
#include "redisconn.h"

#define MAX_SERIES 8192

struct series {
    char key[400]; /* "<set>:<value>" */
    struct kpi_alert_state st;
};

struct kpi_alerter {
    struct kpi_alerter_conf c;
    char url[512], prefix[64], group[256], window[32], channel[128];
    char tag[400];       /* "<prefix>:{<group>}:": the group's alerts */
    char (*kg_tag)[400]; /* [key_groups]: "<prefix>:{<group>.<kg>}:", where the KPIs are */
    const struct kpi_dims *d;
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;
    uint64_t raised, resolved;
    char last[256];
    struct series *series;
    size_t n_series;
    long long closed;
};

static struct series *find_series(struct kpi_alerter *a, const char *key)
{
    for (size_t i = 0; i < a->n_series; i++)
        if (strcmp(a->series[i].key, key) == 0)
            return &a->series[i];
    if (a->n_series == MAX_SERIES)
        return NULL;
    struct series *s = &a->series[a->n_series++];
    snprintf(s->key, sizeof(s->key), "%s", key);
    memset(&s->st, 0, sizeof(s->st));
    return s;
}

static void publish(struct kpi_alerter *a, redisContext *rc, const char *set, const char *value,
                    enum kpi_alert_change ch, const struct kpi_alert_info *in)
{
    const char *state = ch == KPI_ALERT_RAISED ? "raised" : "resolved";
    redisReply *r = redisCommand(rc, "SET %salertmark:%s:%s:%s:%lld:%s 1 NX EX 172800", a->tag,
                                 a->window, set, value, a->closed, state);
    int first = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (!first)
        return; /* another instance published it */
    char rate[32], base[32], thr[32], act[32], bucket[32];
    snprintf(rate, sizeof(rate), "%.6f", in->rate);
    snprintf(base, sizeof(base), "%.6f", in->baseline);
    snprintf(thr, sizeof(thr), "%.6f", in->threshold);
    snprintf(act, sizeof(act), "%llu", (unsigned long long)in->active);
    snprintf(bucket, sizeof(bucket), "%lld", a->closed);
    r = redisCommand(rc,
                     "XADD %salerts MAXLEN ~ %lld * state %s window %s set %s value %s rate %s "
                     "baseline %s threshold %s active %s bucket_end %s",
                     a->tag, (long long)a->c.stream_maxlen, state, a->window, set, value, rate,
                     base, thr, act, bucket);
    if (r)
        freeReplyObject(r);
    char msg[768];
    snprintf(msg, sizeof(msg),
             "{\"state\":\"%s\",\"window\":\"%s\",\"set\":\"%s\",\"value\":\"%s\",\"rate\":%s,"
             "\"baseline\":%s,\"threshold\":%s,\"active\":%s,\"bucket_end\":%s}",
             state, a->window, set, value, rate, base, thr, act, bucket);
    r = redisCommand(rc, "PUBLISH %s%s %s", a->tag, a->channel, msg);
    if (r)
        freeReplyObject(r);
    pthread_mutex_lock(&a->mu);
    if (ch == KPI_ALERT_RAISED)
        a->raised++;
    else
        a->resolved++;
    snprintf(a->last, sizeof(a->last), "%s: %s=%s churn %.2f%% (baseline %.2f%%)", state, set,
             value, in->rate * 100, in->baseline * 100);
    pthread_mutex_unlock(&a->mu);
    kpi_log(KPI_LOG_INFO, "alert", "%s", msg);
}

static void evaluate(struct kpi_alerter *a, redisContext *rc)
{
    for (uint32_t kg = 0; kg < a->c.key_groups; kg++)
        for (int s = 0; s < a->d->n_sets; s++) {
            const char *set = a->d->sets[s].name;
            redisReply *vals =
                redisCommand(rc, "ZRANGE %svalues:%s:%s 0 -1", a->kg_tag[kg], a->window, set);
            if (!vals || vals->type != REDIS_REPLY_ARRAY) {
                if (vals)
                    freeReplyObject(vals);
                continue;
            }
            for (size_t i = 0; i < vals->elements; i++) {
                const char *value = vals->element[i]->str;
                redisReply *h = redisCommand(rc, "HMGET %skpi:%s:%s:%s churn_rate active",
                                             a->kg_tag[kg], a->window, set, value);
                if (h && h->type == REDIS_REPLY_ARRAY && h->elements == 2 && h->element[0]->str &&
                    h->element[1]->str && h->element[0]->str[0]) {
                    double rate = atof(h->element[0]->str);
                    uint64_t active = strtoull(h->element[1]->str, NULL, 10);
                    char key[400];
                    snprintf(key, sizeof(key), "%.150s:%.200s", set, value);
                    struct series *sr = find_series(a, key);
                    struct kpi_alert_info info;
                    enum kpi_alert_change ch =
                        sr ? kpi_alert_observe(&a->c.detector, &sr->st, rate, active, &info)
                           : KPI_ALERT_NONE;
                    if (ch != KPI_ALERT_NONE)
                        publish(a, rc, set, value, ch, &info);
                }
                if (h)
                    freeReplyObject(h);
            }
            freeReplyObject(vals);
        }
}

static void *run(void *arg)
{
    struct kpi_alerter *a = arg;
    redisContext *rc = NULL;
    while (!atomic_load(&a->stop)) {
        if (!rc) {
            char err[256];
            rc = kpi_redis_connect_url(a->url, a->c.timeout_ms, err, sizeof(err));
        }
        if (rc) {
            /* A bucket is closed for the group once every key group closed it. */
            long long closed = LLONG_MAX;
            for (uint32_t kg = 0; kg < a->c.key_groups && rc; kg++) {
                redisReply *r = redisCommand(rc, "HGET %smeta closed:%s", a->kg_tag[kg], a->window);
                if (!r) {
                    redisFree(rc);
                    rc = NULL;
                    break;
                }
                long long c = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
                if (c < closed)
                    closed = c;
                freeReplyObject(r);
            }
            if (rc && closed != LLONG_MAX && closed > a->closed) {
                a->closed = closed;
                evaluate(a, rc);
            }
        }
        /* Poll period: the closed mark moves at most once per flush. */
        for (int64_t t = 0; t < a->c.poll_ms && !atomic_load(&a->stop); t += 50) {
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
    }
    if (rc)
        redisFree(rc);
    return NULL;
}

struct kpi_alerter *kpi_alerter_start(const struct kpi_alerter_conf *c, const struct kpi_dims *d,
                                      char *errstr, size_t errsz)
{
    struct kpi_alerter *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->c = *c;
    snprintf(a->url, sizeof(a->url), "%s", c->redis_url);
    snprintf(a->window, sizeof(a->window), "%s", c->window);
    snprintf(a->channel, sizeof(a->channel), "%s", c->channel);
    snprintf(a->tag, sizeof(a->tag), "%s:{%s}:", c->prefix, c->group);
    if (a->c.key_groups < 1)
        a->c.key_groups = 1;
    a->kg_tag = calloc(a->c.key_groups, sizeof(*a->kg_tag));
    for (uint32_t kg = 0; a->kg_tag && kg < a->c.key_groups; kg++)
        kpi_redis_kg_prefix(a->kg_tag[kg], sizeof(a->kg_tag[kg]), c->prefix, c->group,
                            a->c.key_groups, kg);
    a->d = d;
    a->series = calloc(MAX_SERIES, sizeof(*a->series));
    pthread_mutex_init(&a->mu, NULL);
    if (!a->series || !a->kg_tag || pthread_create(&a->th, NULL, run, a)) {
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "cannot start the alerter");
        free(a->kg_tag);
        free(a->series);
        free(a);
        return NULL;
    }
    return a;
}

void kpi_alerter_stop(struct kpi_alerter *a)
{
    if (!a)
        return;
    atomic_store(&a->stop, 1);
    pthread_join(a->th, NULL);
    pthread_mutex_destroy(&a->mu);
    free(a->series);
    free(a->kg_tag);
    free(a);
}

void kpi_alerter_counts(struct kpi_alerter *a, uint64_t *raised, uint64_t *resolved)
{
    pthread_mutex_lock(&a->mu);
    *raised = a->raised;
    *resolved = a->resolved;
    pthread_mutex_unlock(&a->mu);
}

void kpi_alerter_last(struct kpi_alerter *a, char *buf, size_t size)
{
    pthread_mutex_lock(&a->mu);
    snprintf(buf, size, "%s", a->last);
    pthread_mutex_unlock(&a->mu);
}
