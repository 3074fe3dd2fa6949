/*
 * kpiread.c - the readers' view of the KPI store (see kpiread.h).
 *
 * Redis layout read here: docs/redis-schema.md, schema 2.  Every key name
 * the API, the alerter and the demo use is built by one of the k_* functions
 * below; nothing else in cmd/ knows one.  G is "<prefix>:{<group>}:", P a
 * key group's prefix "<prefix>:{<group>.<kg>.<s>}:" (kpi_redis_kg_prefix).
 *
 *   P meta                       flushes, last_flush_ms, watermark,
 *                                head:<w>, closed:<w>, first:<w>
 *   P values:<w>:<set>           the key group's leaderboard (score: events)
 *   P kpi:<w>:<set>:<value>      rolling KPI hash, in the value's key group
 *   P stream:<w>                 closed buckets (rev = amendment)
 *   G alerts                     alert log (stream), and the
 *   G <channel>                  Pub/Sub channel
 *   G alertmark:<w>:<set>:<value>:<bucket_end>:<state>
 *
 * Commands go through sinks/redis/conn.h, routed by their key's slot, so a
 * group on a Redis Cluster reads the same way as on one Redis.
 */
#include "cmd/lib/kpiread.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "engine/err.h"
#include "engine/keygroup.h"
#include "sinks/redis.h"
#include "sinks/redis/conn.h"
#include "sinks/stdout.h"

/* The rolling hash's public fields, in the order read: every counter of
 * engine/kpi_schema.h, active, every derived KPI, the base and its source. */
#define COUNTER_(name, when, add, doc)                  #name,
#define DERIVED_(name, num, den, head, fmt, scale, doc) #name,
static const char *const hash_fields[] = {KPI_COUNTERS(COUNTER_) "active",
                                          KPI_DERIVED(DERIVED_) "base", "base_source"};
#undef COUNTER_
#undef DERIVED_
#define N_HASH_FIELDS (sizeof(hash_fields) / sizeof(hash_fields[0]))

#define CHUNK 1000 /* members or entries per Redis round trip when scanning */

struct alert_ring {
    struct kpiread_alert *a;
    size_t cap, n, next; /* next: slot of the next record */
    uint64_t seq;
};

struct kpiread {
    int is_redis;
    const struct kpi_windows *ws;
    const struct kpi_dims *dims;
    pthread_mutex_t mu;
    /* redis */
    char url[512];
    char tag[400];       /* "<prefix>:{<group>}:": the group-wide alert keys */
    uint32_t k;          /* key groups */
    char (*kg_tag)[400]; /* [k]: each key group's prefix (docs/redis-schema.md) */
    char prefix[64], group[256];
    char token[48]; /* this reader's alert marks (r_alert_record) */
    int64_t timeout_ms;
    pthread_cond_t cv;
    struct kpi_redis_conn **idle;
    int n_idle, n_open, pool;
    /* memory */
    const struct kpi_sink *sink;
    struct kpi_engine *engine;
    struct alert_ring ring;
    int64_t first[KPI_MAX_WINDOWS]; /* memory: the first head seen per window */
};

/* ---- shared helpers ---- */

static int64_t to_i64(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

/* A rolling hash's or stream entry's fields into kpi_values.  get(i) returns
 * the text of hash_fields[i] or NULL. */
static void values_from_fields(struct kpi_values *v, const char *const f[N_HASH_FIELDS])
{
    memset(v, 0, sizeof(*v));
    for (int i = 0; i < KPI_NCOUNTERS; i++)
        v->c.v[i] = to_i64(f[i]);
    v->active = f[KPI_NCOUNTERS] ? strtoull(f[KPI_NCOUNTERS], NULL, 10) : 0;
    for (int i = 0; i < KPI_NDERIVED; i++) {
        const char *s = f[KPI_NCOUNTERS + 1 + i];
        v->has[i] = s && s[0];
        v->derived[i] = v->has[i] ? strtod(s, NULL) : 0;
    }
    const char *b = f[KPI_NCOUNTERS + 1 + KPI_NDERIVED], *src = f[KPI_NCOUNTERS + 2 + KPI_NDERIVED];
    v->has_base = b && b[0];
    v->base = v->has_base ? strtod(b, NULL) : 0;
    v->base_source = !v->has_base                    ? KPI_BASE_NONE
                     : src && !strcmp(src, "active") ? KPI_BASE_ACTIVE
                                                     : KPI_BASE_SNAPSHOT;
}

static int cmp_rows(const void *a, const void *b)
{
    const struct kpiread_row *x = a, *y = b;
    if (x->v.c.events != y->v.c.events)
        return x->v.c.events < y->v.c.events ? 1 : -1;
    return strcmp(x->value, y->value);
}

static int cmp_points(const void *a, const void *b)
{
    const struct kpiread_point *x = a, *y = b;
    return (x->bucket > y->bucket) - (x->bucket < y->bucket);
}

void kpiread_page_free(struct kpiread_page *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->rows[i].value);
    free(p->rows);
    memset(p, 0, sizeof(*p));
}

static int page_push(struct kpiread_page *p, size_t *cap, const char *value, size_t len,
                     const struct kpi_values *v)
{
    if (p->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct kpiread_row *nr = realloc(p->rows, nc * sizeof(*nr));
        if (!nr)
            return KPI_ERR_NOMEM;
        p->rows = nr;
        *cap = nc;
    }
    char *s = malloc(len + 1);
    if (!s)
        return KPI_ERR_NOMEM;
    memcpy(s, value, len);
    s[len] = '\0';
    p->rows[p->n].value = s;
    p->rows[p->n].v = *v;
    p->n++;
    return 0;
}

const char *kpiread_store(const struct kpiread *r)
{
    return r->is_redis ? "redis" : "memory";
}

/* ---- Redis: key names ---- */

/* Schema 2: a value's keys live in its key group (CRC16("<set>:<value>") mod
 * K); meta, leaderboards and streams are per key group. */
static void k_meta(const struct kpiread *r, uint32_t kg, char *buf, size_t size)
{
    snprintf(buf, size, "%smeta", r->kg_tag[kg]);
}

static void k_values(const struct kpiread *r, uint32_t kg, int w, const char *set, char *buf,
                     size_t size)
{
    snprintf(buf, size, "%svalues:%s:%s", r->kg_tag[kg], r->ws->w[w].id, set);
}

static uint32_t kg_of(const struct kpiread *r, const char *set, const char *value, size_t vlen)
{
    return kpi_keygroup(set, value, vlen, r->k);
}

/* The rolling hash of (set, value): the prefix, then the value appended. */
static void k_hash_prefix(const struct kpiread *r, int w, const char *set, const char *value,
                          size_t vlen, char *buf, size_t size)
{
    snprintf(buf, size, "%skpi:%s:%s:", r->kg_tag[kg_of(r, set, value, vlen)], r->ws->w[w].id, set);
}

static void k_stream(const struct kpiread *r, uint32_t kg, int w, char *buf, size_t size)
{
    snprintf(buf, size, "%sstream:%s", r->kg_tag[kg], r->ws->w[w].id);
}

static void k_alerts(const struct kpiread *r, char *buf, size_t size)
{
    snprintf(buf, size, "%salerts", r->tag);
}

static void k_channel(const struct kpiread *r, const char *channel, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", r->tag, channel);
}

static void k_alertmark_prefix(const struct kpiread *r, const struct kpiread_alert *a, char *buf,
                               size_t size)
{
    snprintf(buf, size, "%salertmark:%s:%s:", r->tag, a->window, a->set);
}

/* Every key of the group: "{<group>}" and every "{<group>.<kg>.<s>}". */
static void k_group_pattern(const struct kpiread *r, char *buf, size_t size)
{
    snprintf(buf, size, "%s:{%s[.}]*", r->prefix, r->group);
}

/* ---- Redis: connections and commands ---- */

/* A pool of connection sets (sinks/redis/conn.h), one per concurrent caller.
 * A set routes each command by its key's cluster slot, so the same code
 * reads a standalone Redis and a Redis Cluster: a value's keys are on the
 * master of its key group's slot, the group's alert keys on the group tag's.
 * A set connects on its first command, and drops a connection that failed
 * (the next command connects again). */
static struct kpi_redis_conn *conn_get(struct kpiread *r, char *errstr, size_t errsz)
{
    pthread_mutex_lock(&r->mu);
    while (r->n_idle == 0 && r->n_open >= r->pool)
        pthread_cond_wait(&r->cv, &r->mu);
    if (r->n_idle > 0) {
        struct kpi_redis_conn *c = r->idle[--r->n_idle];
        pthread_mutex_unlock(&r->mu);
        return c;
    }
    r->n_open++;
    pthread_mutex_unlock(&r->mu);
    struct kpi_redis_conn *c = kpi_redis_conn_new(r->url, r->timeout_ms, errstr, errsz);
    if (!c) {
        pthread_mutex_lock(&r->mu);
        r->n_open--;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    return c;
}

static void conn_put(struct kpiread *r, struct kpi_redis_conn *c)
{
    pthread_mutex_lock(&r->mu);
    r->idle[r->n_idle++] = c;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static int reply_err(const redisReply *rep, char *errstr, size_t errsz)
{
    return kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis: %s",
                      rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
}

static void cmd_init(struct kpi_redis_cmd *cmd, const char *key, int argc, const char **argv,
                     size_t *lens)
{
    cmd->slot = kpi_redis_key_slot(key, strlen(key));
    cmd->argc = argc;
    cmd->argv = argv;
    cmd->lens = lens;
    cmd->reply = NULL;
}

static void cmds_free(struct kpi_redis_cmd *cmds, size_t n)
{
    for (size_t i = 0; cmds && i < n; i++)
        if (cmds[i].reply) {
            freeReplyObject(cmds[i].reply);
            cmds[i].reply = NULL;
        }
}

/* One command on key's slot; 0 with *out set when its reply has type `type`
 * (the caller frees it), else an error (an error reply's words in errstr). */
static int run1(struct kpi_redis_conn *c, const char *key, int argc, const char **argv,
                size_t *lens, int type, redisReply **out, char *errstr, size_t errsz)
{
    struct kpi_redis_cmd cmd;
    cmd_init(&cmd, key, argc, argv, lens);
    *out = NULL;
    int err = kpi_redis_conn_batch(c, &cmd, 1, errstr, errsz);
    if (err)
        return err;
    if (cmd.reply->type != type) {
        err = reply_err(cmd.reply, errstr, errsz);
        freeReplyObject(cmd.reply);
        return err;
    }
    *out = cmd.reply;
    return 0;
}

/* ---- Redis: readers ---- */

/* The group's K (docs/redis-schema.md, "Key groups"): the configured one,
 * or, with redis.key_groups = auto, the one the group's first sink recorded
 * in <prefix>:{<group>}:key_groups, read once (it is fixed for the group's
 * life).  A sink records it before it writes anything, so until then the
 * group has no keys: *k is 0, and the caller answers "no data".  r->k and
 * r->kg_tag are set once, under r->mu, and read by every caller after it
 * took r->mu here: a caller that got *k > 0 reads them without the lock. */
static int group_k(struct kpiread *r, uint32_t *k, char *errstr, size_t errsz)
{
    pthread_mutex_lock(&r->mu);
    *k = r->k;
    pthread_mutex_unlock(&r->mu);
    if (*k)
        return 0;
    struct kpi_redis_conn *c = conn_get(r, errstr, errsz);
    if (!c)
        return KPI_ERR_IO;
    char key[sizeof(r->tag) + 16];
    snprintf(key, sizeof(key), "%skey_groups", r->tag);
    const char *argv[] = {"GET", key};
    struct kpi_redis_cmd cmd;
    cmd_init(&cmd, key, 2, argv, NULL);
    int err = kpi_redis_conn_batch(c, &cmd, 1, errstr, errsz);
    uint32_t v = 0;
    if (!err && cmd.reply->type == REDIS_REPLY_STRING) {
        if (kpi_redis_parse_key_groups(cmd.reply->str, &v))
            err = kpi_seterr(errstr, errsz, KPI_ERR_PARSE, "%s is '%s', not 1..%d", key,
                             cmd.reply->str, KPI_MAX_KEY_GROUPS);
    } else if (!err && cmd.reply->type != REDIS_REPLY_NIL) {
        err = reply_err(cmd.reply, errstr, errsz);
    }
    cmds_free(&cmd, 1);
    conn_put(r, c);
    if (err || v == 0)
        return err;
    char(*tags)[400] = calloc(v, sizeof(*tags));
    if (!tags)
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    for (uint32_t kg = 0; kg < v; kg++)
        kpi_redis_kg_prefix(tags[kg], sizeof(tags[kg]), r->prefix, r->group, v, kg);
    pthread_mutex_lock(&r->mu);
    if (!r->k) { /* else another caller set it first, to the same K */
        r->kg_tag = tags;
        r->k = v;
        tags = NULL;
    }
    *k = r->k;
    pthread_mutex_unlock(&r->mu);
    free(tags);
    return 0;
}

/* A clock with nothing known yet (flushes 0). */
static void meta_unknown(struct kpiread_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->as_of_ms = m->watermark_ms = INT64_MIN;
    for (int w = 0; w < KPI_MAX_WINDOWS; w++)
        m->head[w] = m->closed[w] = m->first[w] = INT64_MIN;
}

/* The group's clock, from every key group's meta: flushes add up, the last
 * flush and the watermark are the latest, a window's head the furthest, and
 * a bucket is closed (or first) for the group once every key group has it. */
static int r_meta(struct kpiread *r, struct kpiread_meta *m, char *errstr, size_t errsz)
{
    /* HMGET meta flushes last_flush_ms watermark head:<w>... closed:<w>... */
    char fields[3 * KPI_MAX_WINDOWS][64];
    const char *names[3 + 3 * KPI_MAX_WINDOWS] = {"flushes", "last_flush_ms", "watermark"};
    const int nf = 3 + 3 * r->ws->n, argc = 2 + nf;
    for (int w = 0; w < r->ws->n; w++) {
        snprintf(fields[3 * w], sizeof(fields[0]), "head:%s", r->ws->w[w].id);
        snprintf(fields[3 * w + 1], sizeof(fields[0]), "closed:%s", r->ws->w[w].id);
        snprintf(fields[3 * w + 2], sizeof(fields[0]), "first:%s", r->ws->w[w].id);
        for (int j = 0; j < 3; j++)
            names[3 + 3 * w + j] = fields[3 * w + j];
    }
    char(*keys)[512] = calloc(r->k, sizeof(*keys));
    const char **av = calloc((size_t)r->k * (size_t)argc, sizeof(*av));
    struct kpi_redis_cmd *cmds = calloc(r->k, sizeof(*cmds));
    struct kpi_redis_conn *c = NULL;
    int err = keys && av && cmds ? 0 : KPI_ERR_NOMEM;
    if (!err && !(c = conn_get(r, errstr, errsz)))
        err = KPI_ERR_IO;
    for (uint32_t kg = 0; !err && kg < r->k; kg++) {
        const char **a = av + (size_t)kg * (size_t)argc;
        k_meta(r, kg, keys[kg], sizeof(keys[0]));
        a[0] = "HMGET";
        a[1] = keys[kg];
        for (int f = 0; f < nf; f++)
            a[2 + f] = names[f];
        cmd_init(&cmds[kg], keys[kg], argc, a, NULL);
    }
    if (!err)
        err = kpi_redis_conn_batch(c, cmds, r->k, errstr, errsz);
    meta_unknown(m);
    for (uint32_t kg = 0; !err && kg < r->k; kg++) {
        const redisReply *rep = cmds[kg].reply;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != (size_t)nf) {
            err = reply_err(rep, errstr, errsz);
            break;
        }
#define F(i)      (rep->element[i]->type == REDIS_REPLY_STRING ? rep->element[i]->str : NULL)
#define T(i)      (F(i) ? to_i64(F(i)) : INT64_MIN)
#define MAX(a, b) ((b) > (a) ? (b) : (a))
        const char *fl = F(0);
        m->flushes += fl ? strtoull(fl, NULL, 10) : 0;
        m->as_of_ms = MAX(m->as_of_ms, T(1));
        m->watermark_ms = MAX(m->watermark_ms, T(2));
        for (int w = 0; w < r->ws->n; w++) {
            int64_t h = T(3 + 3 * (size_t)w), cl = T(4 + 3 * (size_t)w), fi = T(5 + 3 * (size_t)w);
            m->head[w] = MAX(m->head[w], h);
            /* closed for the group: the smallest (a key group with none: none) */
            if (kg == 0 || cl < m->closed[w])
                m->closed[w] = cl;
            if (fi != INT64_MIN && (m->first[w] == INT64_MIN || fi < m->first[w]))
                m->first[w] = fi;
        }
#undef MAX
#undef T
#undef F
    }
    cmds_free(cmds, r->k);
    if (c)
        conn_put(r, c);
    free(cmds);
    free(av);
    free(keys);
    return err;
}

/* The HMGET of a value's rolling hash: key (built into key, of size ksize),
 * argv and lens (2 + N_HASH_FIELDS each). */
static void hmget_cmd(const struct kpiread *r, int w, const char *set, const char *value,
                      size_t vlen, char *key, size_t ksize, const char **argv, size_t *lens,
                      struct kpi_redis_cmd *cmd)
{
    char hprefix[600];
    k_hash_prefix(r, w, set, value, vlen, hprefix, sizeof(hprefix));
    int kl = snprintf(key, ksize, "%s%.*s", hprefix, (int)vlen, value);
    argv[0] = "HMGET";
    lens[0] = 5;
    argv[1] = key;
    lens[1] = (size_t)kl < ksize ? (size_t)kl : ksize - 1;
    for (size_t i = 0; i < N_HASH_FIELDS; i++) {
        argv[2 + i] = hash_fields[i];
        lens[2 + i] = strlen(hash_fields[i]);
    }
    cmd_init(cmd, hprefix, (int)(2 + N_HASH_FIELDS), argv, lens);
}

/* One HMGET reply into v; 1 if the hash exists (any field present). */
static int parse_hmget(const redisReply *rep, struct kpi_values *v)
{
    const char *f[N_HASH_FIELDS];
    int any = 0;
    for (size_t i = 0; i < N_HASH_FIELDS; i++) {
        const redisReply *e = rep->element[i];
        f[i] = e->type == REDIS_REPLY_STRING ? e->str : NULL;
        any |= f[i] != NULL;
    }
    values_from_fields(v, f);
    return any;
}

/* Pipelined HMGETs of `n` members; appends the existing ones to the page. */
static int read_rows(struct kpiread *r, struct kpi_redis_conn *c, int w, const char *set,
                     redisReply *const *members, size_t n, struct kpiread_page *p, size_t *cap,
                     char *errstr, size_t errsz)
{
    if (n == 0)
        return 0;
    enum { KEY = 1400, ARGS = 2 + N_HASH_FIELDS };
    char *keys = malloc(n * KEY);
    const char **av = malloc(n * ARGS * sizeof(*av));
    size_t *lens = malloc(n * ARGS * sizeof(*lens));
    struct kpi_redis_cmd *cmds = malloc(n * sizeof(*cmds));
    int err = keys && av && lens && cmds ? 0 : KPI_ERR_NOMEM;
    for (size_t i = 0; !err && i < n; i++)
        hmget_cmd(r, w, set, members[i]->str, members[i]->len, keys + i * KEY, KEY, av + i * ARGS,
                  lens + i * ARGS, &cmds[i]);
    if (!err)
        err = kpi_redis_conn_batch(c, cmds, n, errstr, errsz);
    for (size_t i = 0; !err && i < n; i++) {
        const redisReply *rep = cmds[i].reply;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == N_HASH_FIELDS) {
            struct kpi_values v;
            if (parse_hmget(rep, &v))
                err = page_push(p, cap, members[i]->str, members[i]->len, &v);
        } else {
            err = reply_err(rep, errstr, errsz);
        }
    }
    cmds_free(cmds, n);
    free(cmds);
    free(lens);
    free(av);
    free(keys);
    return err;
}

struct ranked {
    redisReply *member;
    double score;
};

static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    size_t n = x->member->len < y->member->len ? x->member->len : y->member->len;
    int c = memcmp(x->member->str, y->member->str, n);
    return c ? c : (x->member->len > y->member->len) - (x->member->len < y->member->len);
}

/* A page of a set's values by events: the K key groups' leaderboards, read
 * best first (up to offset + limit each, or up to KPIREAD_SCAN_MAX for a
 * search) and merged. */
static int r_values(struct kpiread *r, int w, const char *set, uint64_t offset, uint32_t limit,
                    const char *q, struct kpiread_page *p, char *errstr, size_t errsz)
{
    const int search = q && q[0];
    const uint64_t want = search ? KPIREAD_SCAN_MAX : offset + limit;
    char stop[32];
    snprintf(stop, sizeof(stop), "%llu", (unsigned long long)(want ? want - 1 : 0));
    /* per key group: ZCARD key, ZREVRANGE key 0 <stop> WITHSCORES */
    char(*keys)[600] = calloc(r->k, sizeof(*keys));
    const char **av = calloc((size_t)r->k * 7, sizeof(*av));
    struct kpi_redis_cmd *cmds = calloc(2 * (size_t)r->k, sizeof(*cmds));
    struct kpi_redis_conn *c = NULL;
    int err = keys && av && cmds ? 0 : KPI_ERR_NOMEM;
    if (!err && !(c = conn_get(r, errstr, errsz)))
        err = KPI_ERR_IO;
    for (uint32_t kg = 0; !err && kg < r->k; kg++) {
        const char **a = av + 7 * (size_t)kg;
        k_values(r, kg, w, set, keys[kg], sizeof(keys[0]));
        a[0] = "ZCARD";
        a[1] = keys[kg];
        a[2] = "ZREVRANGE";
        a[3] = keys[kg];
        a[4] = "0";
        a[5] = stop;
        a[6] = "WITHSCORES";
        cmd_init(&cmds[2 * kg], keys[kg], 2, a, NULL);
        cmd_init(&cmds[2 * kg + 1], keys[kg], 5, a + 2, NULL);
    }
    if (!err)
        err = kpi_redis_conn_batch(c, cmds, 2 * (size_t)r->k, errstr, errsz);
    struct ranked *all = NULL;
    size_t n_all = 0, cap = 0;
    uint64_t total = 0;
    p->total_exact = 1;
    for (uint32_t kg = 0; !err && kg < r->k; kg++) {
        const redisReply *card = cmds[2 * kg].reply, *range = cmds[2 * kg + 1].reply;
        if (card->type != REDIS_REPLY_INTEGER || range->type != REDIS_REPLY_ARRAY) {
            err = reply_err(card->type != REDIS_REPLY_INTEGER ? card : range, errstr, errsz);
            break;
        }
        total += (uint64_t)card->integer;
        if (search && (uint64_t)card->integer > want)
            p->total_exact = 0;
        for (size_t i = 0; i + 1 < range->elements; i += 2) {
            if (search && !strcasestr(range->element[i]->str, q))
                continue;
            if (n_all == cap) {
                size_t nc = cap ? cap * 2 : 1024;
                struct ranked *na = realloc(all, nc * sizeof(*na));
                if (!na) {
                    err = KPI_ERR_NOMEM;
                    break;
                }
                all = na;
                cap = nc;
            }
            all[n_all].member = range->element[i];
            all[n_all].score = strtod(range->element[i + 1]->str, NULL);
            n_all++;
        }
    }
    size_t cap_rows = 0;
    if (!err) {
        if (n_all)
            qsort(all, n_all, sizeof(*all), cmp_ranked);
        p->total = search ? n_all : total;
        size_t from = offset < n_all ? (size_t)offset : n_all;
        size_t to = from + limit < n_all ? from + limit : n_all;
        redisReply **members = malloc((to - from + 1) * sizeof(*members));
        if (!members)
            err = KPI_ERR_NOMEM;
        for (size_t i = from; members && i < to; i++)
            members[i - from] = all[i].member;
        if (members)
            err = read_rows(r, c, w, set, members, to - from, p, &cap_rows, errstr, errsz);
        free(members);
    }
    free(all);
    cmds_free(cmds, 2 * (size_t)r->k);
    if (c)
        conn_put(r, c);
    free(cmds);
    free(av);
    free(keys);
    if (err)
        kpiread_page_free(p);
    return err;
}

static int r_hash(struct kpiread *r, int w, const char *set, const char *value,
                  struct kpi_values *out, int *found, char *errstr, size_t errsz)
{
    struct kpi_redis_conn *c = conn_get(r, errstr, errsz);
    if (!c)
        return KPI_ERR_IO;
    const char *argv[2 + N_HASH_FIELDS];
    size_t lens[2 + N_HASH_FIELDS];
    char key[1400];
    struct kpi_redis_cmd cmd;
    hmget_cmd(r, w, set, value, strlen(value), key, sizeof(key), argv, lens, &cmd);
    int err = kpi_redis_conn_batch(c, &cmd, 1, errstr, errsz);
    if (!err) {
        if (cmd.reply->type != REDIS_REPLY_ARRAY || cmd.reply->elements != N_HASH_FIELDS)
            err = reply_err(cmd.reply, errstr, errsz);
        else
            *found = parse_hmget(cmd.reply, out);
    }
    cmds_free(&cmd, 1);
    conn_put(r, c);
    return err;
}

/* The value of `name` in a stream entry's field array, or NULL. */
static const redisReply *entry_field(const redisReply *fv, const char *name)
{
    for (size_t i = 0; i + 1 < fv->elements; i += 2)
        if (strcmp(fv->element[i]->str, name) == 0)
            return fv->element[i + 1];
    return NULL;
}

static int r_series(struct kpiread *r, int w, const char *set, const char *value,
                    struct kpiread_point *out, size_t max, size_t *n, char *errstr, size_t errsz)
{
    struct kpi_redis_conn *c = conn_get(r, errstr, errsz);
    if (!c)
        return KPI_ERR_IO;
    char key[600], count[16];
    k_stream(r, kg_of(r, set, value, strlen(value)), w, key, sizeof(key));
    snprintf(count, sizeof(count), "%d", CHUNK);
    /* Read the stream newest first.  A bucket's first entry (rev 0) is
     * appended when it closes, so rev-0 entries come in bucket order and
     * amendments (rev > 0) after them: once `max` rev-0 entries of the value
     * are read, every newer bucket has been seen with its highest rev. */
    struct kpiread_point *pts = NULL;
    size_t n_pts = 0, cap = 0, rev0 = 0, scanned = 0;
    char end[64] = "+";
    int err = 0, done = 0;
    size_t vlen = strlen(value);
    while (!done && scanned < KPIREAD_SCAN_MAX) {
        const char *argv[] = {"XREVRANGE", key, end, "-", "COUNT", count};
        redisReply *rep;
        if ((err = run1(c, key, 6, argv, NULL, REDIS_REPLY_ARRAY, &rep, errstr, errsz)))
            break;
        for (size_t i = 0; i < rep->elements && !done; i++) {
            const redisReply *e = rep->element[i];
            const redisReply *fv = e->element[1];
            snprintf(end, sizeof(end), "(%s", e->element[0]->str);
            scanned++;
            const redisReply *es = entry_field(fv, "set"), *ev = entry_field(fv, "value");
            if (!es || !ev || strcmp(es->str, set) != 0 || ev->len != vlen ||
                memcmp(ev->str, value, vlen) != 0)
                continue;
            const redisReply *eb = entry_field(fv, "bucket"), *ee = entry_field(fv, "end"),
                             *er = entry_field(fv, "rev");
            int64_t bucket = eb ? to_i64(eb->str) : 0, rev = er ? to_i64(er->str) : 0;
            size_t k;
            for (k = 0; k < n_pts && pts[k].bucket != bucket; k++)
                ;
            if (k == n_pts) {
                if (n_pts == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    struct kpiread_point *np = realloc(pts, nc * sizeof(*np));
                    if (!np) {
                        err = KPI_ERR_NOMEM;
                        done = 1;
                        break;
                    }
                    pts = np;
                    cap = nc;
                }
                pts[n_pts].bucket = bucket;
                pts[n_pts].rev = -1;
                n_pts++;
            }
            if (rev > pts[k].rev) {
                const char *f[N_HASH_FIELDS];
                for (size_t j = 0; j < N_HASH_FIELDS; j++) {
                    const redisReply *x = entry_field(fv, hash_fields[j]);
                    f[j] = x ? x->str : NULL;
                }
                values_from_fields(&pts[k].v, f);
                pts[k].rev = rev;
                pts[k].end = ee ? to_i64(ee->str) : bucket + r->ws->w[w].slide_ms;
            }
            if (rev == 0 && ++rev0 >= max)
                done = 1;
        }
        if (rep->elements < CHUNK)
            done = 1;
        freeReplyObject(rep);
    }
    if (!err && n_pts) {
        qsort(pts, n_pts, sizeof(*pts), cmp_points);
        size_t from = n_pts > max ? n_pts - max : 0;
        *n = n_pts - from;
        memcpy(out, pts + from, *n * sizeof(*pts));
    }
    free(pts);
    conn_put(r, c);
    return err;
}

static int parse_alert(const redisReply *e, struct kpiread_alert *a)
{
    memset(a, 0, sizeof(*a));
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
        return -1;
    snprintf(a->id, sizeof(a->id), "%s", e->element[0]->str);
    const redisReply *fv = e->element[1], *x;
#define S(name, dst)                                                                               \
    if ((x = entry_field(fv, name)) != NULL)                                                       \
    snprintf(dst, sizeof(dst), "%s", x->str)
    char state[16] = "";
    S("state", state);
    S("window", a->window);
    S("set", a->set);
    S("value", a->value);
#undef S
    a->raised = strcmp(state, "raised") == 0;
    a->rate = (x = entry_field(fv, "rate")) ? strtod(x->str, NULL) : 0;
    a->baseline = (x = entry_field(fv, "baseline")) ? strtod(x->str, NULL) : 0;
    a->threshold = (x = entry_field(fv, "threshold")) ? strtod(x->str, NULL) : 0;
    a->active = (x = entry_field(fv, "active")) ? strtoull(x->str, NULL, 10) : 0;
    a->bucket_end = (x = entry_field(fv, "bucket_end")) ? to_i64(x->str) : 0;
    return 0;
}

static int r_alerts(struct kpiread *r, const char *after, size_t limit, struct kpiread_alert **out,
                    size_t *n, char *errstr, size_t errsz)
{
    *out = NULL;
    *n = 0;
    struct kpi_redis_conn *c = conn_get(r, errstr, errsz);
    if (!c)
        return KPI_ERR_IO;
    char key[512], from[80], count[32];
    k_alerts(r, key, sizeof(key));
    snprintf(from, sizeof(from), "(%s", after ? after : "");
    snprintf(count, sizeof(count), "%llu", (unsigned long long)(after || limit ? limit : 1));
    const char *fwd[] = {"XRANGE", key, from, "+", "COUNT", count};
    const char *back[] = {"XREVRANGE", key, "+", "-", "COUNT", count};
    redisReply *rep;
    int err = run1(c, key, 6, after ? fwd : back, NULL, REDIS_REPLY_ARRAY, &rep, errstr, errsz);
    if (!err && rep->elements) {
        *out = calloc(rep->elements, sizeof(**out));
        if (!*out)
            err = KPI_ERR_NOMEM;
        for (size_t i = 0; *out && i < rep->elements && i < (limit ? limit : 1); i++)
            if (parse_alert(rep->element[i], &(*out)[*n]) == 0)
                (*n)++;
    }
    if (!err)
        freeReplyObject(rep);
    conn_put(r, c);
    return err;
}

static int r_alerts_last_id(struct kpiread *r, char *id, size_t size, char *errstr, size_t errsz)
{
    struct kpiread_alert *a;
    size_t n;
    int err = r_alerts(r, NULL, 1, &a, &n, errstr, errsz);
    if (err)
        return err;
    snprintf(id, size, "%s", n ? a[0].id : "0-0");
    free(a);
    return 0;
}

/* One alert, once per group, in one atomic step (a Lua call): the dedup
 * mark, the stream entry and the Pub/Sub message are written together or not
 * at all.  An error (OOM, READONLY, NOPERM, a lost connection) leaves no mark
 * behind, so the caller's retry records it; it is never taken for "another
 * instance recorded it".  The mark holds this reader's token: a retry after a
 * reply that was lost finds its own mark and is told "recorded" (2), so the
 * alert is still delivered (at least once; deliveries carry a stable dedup
 * key).  A failed XADD or PUBLISH undoes what the call wrote.  The mark and
 * the alert stream share the group's hash tag: one slot, one call. */
static const char alert_script[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v then if v == ARGV[1] then return 2 end return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', 172800)\n"
    "local f = {}\n"
    "for i = 5, #ARGV do f[#f + 1] = ARGV[i] end\n"
    "local id = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(f))\n"
    "if type(id) == 'table' and id.err then redis.call('DEL', KEYS[1]) return id end\n"
    "local p = redis.pcall('PUBLISH', ARGV[3], ARGV[4])\n"
    "if type(p) == 'table' and p.err then\n"
    "  redis.call('XDEL', KEYS[2], id) redis.call('DEL', KEYS[1]) return p\n"
    "end\n"
    "return id\n";

static int r_alert_record(struct kpiread *r, struct kpiread_alert *a, const char *json,
                          const char *channel, int64_t maxlen, char *errstr, size_t errsz)
{
    struct kpi_redis_conn *c = conn_get(r, errstr, errsz);
    if (!c)
        return KPI_ERR_IO;
    const char *state = a->raised ? "raised" : "resolved";
    char mark[1400], key[512], ch[700];
    k_alertmark_prefix(r, a, mark, sizeof(mark));
    size_t ml = strlen(mark);
    snprintf(mark + ml, sizeof(mark) - ml, "%s:%lld:%s", a->value, (long long)a->bucket_end, state);
    k_alerts(r, key, sizeof(key));
    k_channel(r, channel, ch, sizeof(ch));
    char rate[32], base[32], thr[32], act[32], bucket[32], ml_s[32];
    snprintf(rate, sizeof(rate), "%.6f", a->rate);
    snprintf(base, sizeof(base), "%.6f", a->baseline);
    snprintf(thr, sizeof(thr), "%.6f", a->threshold);
    snprintf(act, sizeof(act), "%llu", (unsigned long long)a->active);
    snprintf(bucket, sizeof(bucket), "%lld", (long long)a->bucket_end);
    snprintf(ml_s, sizeof(ml_s), "%lld", (long long)maxlen);
    const char *argv[] = {"EVAL",    alert_script, "2",    mark,        key,      r->token,
                          ml_s,      ch,           json,   "state",     state,    "window",
                          a->window, "set",        a->set, "value",     a->value, "rate",
                          rate,      "baseline",   base,   "threshold", thr,      "active",
                          act,       "bucket_end", bucket};
    struct kpi_redis_cmd cmd;
    cmd_init(&cmd, key, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    int err = kpi_redis_conn_batch(c, &cmd, 1, errstr, errsz), rc = 0;
    if (!err) {
        const redisReply *rep = cmd.reply;
        if (rep->type == REDIS_REPLY_STRING) {
            snprintf(a->id, sizeof(a->id), "%s", rep->str);
            rc = 1;
        } else if (rep->type == REDIS_REPLY_INTEGER) {
            rc = rep->integer == 2; /* our own mark: a retry after a lost reply */
        } else {
            err = reply_err(rep, errstr, errsz);
        }
    }
    cmds_free(&cmd, 1);
    conn_put(r, c);
    return err ? err : rc;
}

/* A run of decimal digits at *p (at least one), moved past; 0 when none. */
static int skip_digits(const char **p, const char *end)
{
    const char *q = *p;
    while (q < end && *q >= '0' && *q <= '9')
        q++;
    int any = q > *p;
    *p = q;
    return any;
}

/* Whether key is one of the group's: under its tag "<prefix>:{<group>}:" or
 * a key group's "<prefix>:{<group>.<kg>.<s>}:" for any K, not only the one
 * recorded now: keys a run with another K left behind (a group wiped and
 * made again with another redis.key_groups or dimensions.max_values) are the
 * group's too, and a fresh start that kept them would resume from their
 * offsets.  A group literally named "<group>.<n>.<m>" would match as well;
 * the wipe is the demo's, under the demo's own prefix. */
static int group_key(const struct kpiread *r, const char *key, size_t len)
{
    size_t tl = strlen(r->tag);
    if (len >= tl && memcmp(key, r->tag, tl) == 0)
        return 1;
    size_t pl = strlen(r->prefix), gl = strlen(r->group);
    const char *p = key, *end = key + len;
    if (len < pl + gl + 3 || memcmp(p, r->prefix, pl) != 0 || p[pl] != ':' || p[pl + 1] != '{' ||
        memcmp(p + pl + 2, r->group, gl) != 0)
        return 0;
    p += pl + 2 + gl;
    if (p >= end || *p++ != '.' || !skip_digits(&p, end) || p >= end || *p++ != '.' ||
        !skip_digits(&p, end))
        return 0;
    return end - p >= 2 && p[0] == '}' && p[1] == ':';
}

/* UNLINK each of the group's keys in an array reply of key names; how many. */
static int unlink_keys(const struct kpiread *r, struct kpi_redis_conn *c, const redisReply *names,
                       size_t *n, char *errstr, size_t errsz)
{
    *n = 0;
    for (size_t i = 0; i < names->elements; i++) {
        const redisReply *k = names->element[i];
        if (!group_key(r, k->str, k->len))
            continue;
        const char *argv[] = {"UNLINK", k->str};
        size_t lens[] = {6, k->len};
        struct kpi_redis_cmd cmd = {kpi_redis_key_slot(k->str, k->len), 2, argv, lens, NULL};
        int err = kpi_redis_conn_batch(c, &cmd, 1, errstr, errsz);
        cmds_free(&cmd, 1);
        if (err)
            return err;
        (*n)++;
    }
    return 0;
}

/* A Redis Cluster: every key of the group is in one of K + 1 slots (its tags),
 * so list each slot's keys on its master; keys another K left are in other
 * slots, and stay.  Standalone: SCAN the keyspace (every K's keys go). */
static int r_wipe(struct kpiread *r, char *errstr, size_t errsz)
{
    struct kpi_redis_conn *c = conn_get(r, errstr, errsz);
    if (!c)
        return KPI_ERR_IO;
    char slot[16];
    snprintf(slot, sizeof(slot), "%d", kpi_redis_key_slot(r->tag, strlen(r->tag)));
    const char *probe[] = {"CLUSTER", "COUNTKEYSINSLOT", slot};
    redisReply *rep;
    int err = run1(c, r->tag, 3, probe, NULL, REDIS_REPLY_INTEGER, &rep, errstr, errsz);
    if (!err) { /* a cluster */
        freeReplyObject(rep);
        for (uint32_t t = 0; !err && t <= r->k; t++) {
            const char *tag = t < r->k ? r->kg_tag[t] : r->tag;
            snprintf(slot, sizeof(slot), "%d", kpi_redis_key_slot(tag, strlen(tag)));
            size_t gone = 1;
            while (!err && gone) {
                const char *argv[] = {"CLUSTER", "GETKEYSINSLOT", slot, "1000"};
                if ((err = run1(c, tag, 4, argv, NULL, REDIS_REPLY_ARRAY, &rep, errstr, errsz)))
                    break;
                err = unlink_keys(r, c, rep, &gone, errstr, errsz);
                freeReplyObject(rep);
            }
        }
        conn_put(r, c);
        return err;
    }
    err = 0;
    char pattern[512], cursor[32] = "0";
    k_group_pattern(r, pattern, sizeof(pattern));
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        size_t gone;
        if ((err = run1(c, r->tag, 6, argv, NULL, REDIS_REPLY_ARRAY, &rep, errstr, errsz)))
            break;
        if (rep->elements != 2 || rep->element[1]->type != REDIS_REPLY_ARRAY) {
            err = reply_err(rep, errstr, errsz);
        } else {
            snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
            err = unlink_keys(r, c, rep->element[1], &gone, errstr, errsz);
        }
        freeReplyObject(rep);
    } while (!err && strcmp(cursor, "0") != 0);
    conn_put(r, c);
    return err;
}

static int r_ping(struct kpiread *r, char *errstr, size_t errsz)
{
    struct kpi_redis_conn *c = conn_get(r, errstr, errsz);
    if (!c)
        return KPI_ERR_IO;
    const char *argv[] = {"PING"};
    redisReply *rep;
    int err = run1(c, r->tag, 1, argv, NULL, REDIS_REPLY_STATUS, &rep, errstr, errsz);
    if (!err)
        freeReplyObject(rep);
    conn_put(r, c);
    return err;
}

/* ---- memory ---- */

static int m_err(int err, char *errstr, size_t errsz)
{
    if (err == KPI_ERR_STATE)
        return 0; /* nothing flushed yet: an empty store */
    return kpi_seterr(errstr, errsz, err, "in-memory store: %s", kpi_err_name(err));
}

static int m_meta(struct kpiread *r, struct kpiread_meta *m)
{
    struct kpi_engine_stats st;
    kpi_engine_get_stats(r->engine, &st);
    m->flushes = st.flushes;
    m->as_of_ms = st.last_flush_ok_ms ? st.last_flush_ok_ms : INT64_MIN;
    m->watermark_ms = INT64_MIN;
    for (int w = 0; w < KPI_MAX_WINDOWS; w++) {
        m->head[w] = m->closed[w] = m->first[w] = INT64_MIN;
        if (w >= r->ws->n)
            continue;
        int64_t head, wm;
        uint64_t fl;
        if (kpi_sink_stdout_state(r->sink, r->ws->w[w].id, &head, &wm, &fl))
            continue;
        m->head[w] = head;
        m->watermark_ms = wm;
        pthread_mutex_lock(&r->mu);
        if (head != INT64_MIN && (r->first[w] == INT64_MIN || head < r->first[w]))
            r->first[w] = head;
        m->first[w] = r->first[w];
        pthread_mutex_unlock(&r->mu);
        if (wm != INT64_MIN)
            m->closed[w] = wm >= 0 ? kpi_bucket_start(wm, r->ws->w[w].slide_ms) : INT64_MIN;
    }
    return 0;
}

struct m_collect {
    struct kpiread_page *p;
    size_t cap;
    const char *q;
    int err;
};

static void m_collect_row(void *opaque, const char *value, size_t len, const struct kpi_values *v)
{
    struct m_collect *mc = opaque;
    if (mc->err || (mc->q && mc->q[0] && !strcasestr(value, mc->q)))
        return;
    mc->err = page_push(mc->p, &mc->cap, value, len, v);
}

static int m_values(struct kpiread *r, int w, const char *set, uint64_t offset, uint32_t limit,
                    const char *q, struct kpiread_page *p, char *errstr, size_t errsz)
{
    struct m_collect mc = {p, 0, q, 0};
    p->total_exact = 1;
    int err = kpi_sink_stdout_each(r->sink, r->ws->w[w].id, set, m_collect_row, &mc);
    if (err || mc.err) {
        kpiread_page_free(p);
        return m_err(err ? err : mc.err, errstr, errsz);
    }
    p->total = p->n;
    if (!p->n)
        return 0;
    qsort(p->rows, p->n, sizeof(*p->rows), cmp_rows);
    /* keep rows [offset, offset + limit) */
    size_t from = offset < p->n ? (size_t)offset : p->n;
    size_t to = from + limit < p->n ? from + limit : p->n;
    for (size_t i = 0; i < p->n; i++)
        if (i < from || i >= to)
            free(p->rows[i].value);
    memmove(p->rows, p->rows + from, (to - from) * sizeof(*p->rows));
    p->n = to - from;
    return 0;
}

struct m_series {
    struct kpiread_point *out;
    size_t max, n;
    int64_t closed, slide;
};

static void m_series_point(void *opaque, int64_t bucket, const struct kpi_values *v)
{
    struct m_series *ms = opaque;
    if (ms->closed == INT64_MIN || bucket + ms->slide > ms->closed || v->c.events == 0)
        return;
    if (ms->n == ms->max) { /* oldest first: drop the oldest */
        memmove(ms->out, ms->out + 1, (ms->max - 1) * sizeof(*ms->out));
        ms->n--;
    }
    struct kpiread_point *p = &ms->out[ms->n++];
    p->bucket = bucket;
    p->end = bucket + ms->slide;
    p->rev = 0;
    p->v = *v;
}

/* ---- the interface ---- */

struct kpiread *kpiread_new_redis(const struct kpiread_redis_conf *c,
                                  const struct kpi_windows *windows, const struct kpi_dims *dims)
{
    struct kpiread *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->is_redis = 1;
    r->ws = windows;
    r->dims = dims;
    snprintf(r->url, sizeof(r->url), "%s", c->url);
    snprintf(r->tag, sizeof(r->tag), "%.60s:{%.300s}:", c->prefix, c->group);
    snprintf(r->prefix, sizeof(r->prefix), "%s", c->prefix);
    snprintf(r->group, sizeof(r->group), "%s", c->group);
    r->k = c->key_groups; /* 0: auto, read from Redis on first use (group_k) */
    if (r->k && !(r->kg_tag = calloc(r->k, sizeof(*r->kg_tag)))) {
        free(r);
        return NULL;
    }
    for (uint32_t kg = 0; kg < r->k; kg++)
        kpi_redis_kg_prefix(r->kg_tag[kg], sizeof(r->kg_tag[kg]), c->prefix, c->group, r->k, kg);
    r->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 2000;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(r->token, sizeof(r->token), "%ld-%lld-%ld-%p", (long)getpid(), (long long)now.tv_sec,
             (long)now.tv_nsec, (void *)r);
    r->pool = c->pool > 0 ? c->pool : 1;
    r->idle = calloc((size_t)r->pool, sizeof(*r->idle));
    if (!r->idle) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    return r;
}

struct kpiread *kpiread_new_memory(const struct kpi_sink *sink, struct kpi_engine *engine,
                                   size_t alerts_keep)
{
    struct kpiread *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->sink = sink;
    r->engine = engine;
    r->ws = kpi_engine_windows(engine);
    r->dims = kpi_engine_dims(engine);
    for (int w = 0; w < KPI_MAX_WINDOWS; w++)
        r->first[w] = INT64_MIN;
    r->ring.cap = alerts_keep ? alerts_keep : 1;
    r->ring.a = calloc(r->ring.cap, sizeof(*r->ring.a));
    if (!r->ring.a) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    return r;
}

void kpiread_destroy(struct kpiread *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_idle; i++)
        kpi_redis_conn_free(r->idle[i]);
    free(r->idle);
    free(r->kg_tag);
    free(r->ring.a);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int kpiread_meta(struct kpiread *r, struct kpiread_meta *m, char *errstr, size_t errsz)
{
    if (!r->is_redis)
        return m_meta(r, m);
    uint32_t k;
    int err = group_k(r, &k, errstr, errsz);
    if (err || !k) {
        meta_unknown(m);
        return err;
    }
    return r_meta(r, m, errstr, errsz);
}

int kpiread_values(struct kpiread *r, int w, const char *set, uint64_t offset, uint32_t limit,
                   const char *q, struct kpiread_page *out, char *errstr, size_t errsz)
{
    memset(out, 0, sizeof(*out));
    if (w < 0 || w >= r->ws->n || limit == 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "bad window or limit");
    uint32_t k = 0;
    if (r->is_redis) {
        int err = group_k(r, &k, errstr, errsz);
        if (err || !k)
            return err; /* no key groups yet: no values */
    }
    if (r->is_redis && strcmp(set, "all") == 0) {
        /* The total has one value and no need for its leaderboard. */
        struct kpi_values v;
        int found = 0, err = r_hash(r, w, set, "all", &v, &found, errstr, errsz);
        size_t cap = 0;
        if (err)
            return err;
        int match = !q || !q[0] || strcasestr("all", q);
        out->total = match;
        out->total_exact = 1;
        if (found && match && offset == 0)
            return page_push(out, &cap, "all", 3, &v);
        return 0;
    }
    return r->is_redis ? r_values(r, w, set, offset, limit, q, out, errstr, errsz)
                       : m_values(r, w, set, offset, limit, q, out, errstr, errsz);
}

int kpiread_hash(struct kpiread *r, int w, const char *set, const char *value,
                 struct kpi_values *out, int *found, char *errstr, size_t errsz)
{
    memset(out, 0, sizeof(*out));
    *found = 0;
    if (w < 0 || w >= r->ws->n)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "bad window");
    if (r->is_redis) {
        uint32_t k;
        int err = group_k(r, &k, errstr, errsz);
        return err || !k ? err : r_hash(r, w, set, value, out, found, errstr, errsz);
    }
    int err = kpi_sink_stdout_query(r->sink, r->ws->w[w].id, set, value, out, NULL, NULL);
    if (err)
        return m_err(err, errstr, errsz);
    *found = out->c.events > 0;
    return 0;
}

int kpiread_series(struct kpiread *r, int w, const char *set, const char *value,
                   struct kpiread_point *out, size_t max, size_t *n, char *errstr, size_t errsz)
{
    *n = 0;
    if (w < 0 || w >= r->ws->n || max == 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "bad window or points");
    if (r->is_redis) {
        uint32_t k;
        int err = group_k(r, &k, errstr, errsz);
        return err || !k ? err : r_series(r, w, set, value, out, max, n, errstr, errsz);
    }
    struct kpiread_meta m;
    m_meta(r, &m);
    struct m_series ms = {out, max, 0, m.closed[w], r->ws->w[w].slide_ms};
    int err = kpi_sink_stdout_buckets(r->sink, r->ws->w[w].id, set, value, m_series_point, &ms);
    if (err)
        return m_err(err, errstr, errsz);
    *n = ms.n;
    return 0;
}

/* Ids compare as "<ms>-<seq>" pairs. */
static int id_after(const char *id, const char *after)
{
    unsigned long long a1 = 0, a2 = 0, b1 = 0, b2 = 0;
    sscanf(id, "%llu-%llu", &a1, &a2);
    sscanf(after, "%llu-%llu", &b1, &b2);
    return a1 > b1 || (a1 == b1 && a2 > b2);
}

int kpiread_alerts(struct kpiread *r, const char *after, size_t limit, struct kpiread_alert **out,
                   size_t *n, char *errstr, size_t errsz)
{
    if (r->is_redis)
        return r_alerts(r, after, limit, out, n, errstr, errsz);
    *n = 0;
    *out = calloc(limit ? limit : 1, sizeof(**out));
    if (!*out)
        return KPI_ERR_NOMEM;
    pthread_mutex_lock(&r->mu);
    const struct alert_ring *g = &r->ring;
    if (!after) {
        for (size_t i = 0; i < g->n && *n < limit; i++) /* newest first */
            (*out)[(*n)++] = g->a[(g->next + g->cap - 1 - i) % g->cap];
    } else {
        for (size_t i = g->n; i-- > 0 && *n < limit;) { /* oldest first */
            const struct kpiread_alert *a = &g->a[(g->next + g->cap - 1 - i) % g->cap];
            if (id_after(a->id, after))
                (*out)[(*n)++] = *a;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int kpiread_alerts_last_id(struct kpiread *r, char *id, size_t size, char *errstr, size_t errsz)
{
    if (r->is_redis)
        return r_alerts_last_id(r, id, size, errstr, errsz);
    pthread_mutex_lock(&r->mu);
    const struct alert_ring *g = &r->ring;
    snprintf(id, size, "%s", g->n ? g->a[(g->next + g->cap - 1) % g->cap].id : "0-0");
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int kpiread_alert_record(struct kpiread *r, const struct kpiread_alert *a, const char *json,
                         const char *channel, int64_t maxlen, char *errstr, size_t errsz)
{
    struct kpiread_alert copy = *a;
    if (r->is_redis) {
        int rc = r_alert_record(r, &copy, json, channel, maxlen, errstr, errsz);
        return rc;
    }
    pthread_mutex_lock(&r->mu);
    struct alert_ring *g = &r->ring;
    snprintf(copy.id, sizeof(copy.id), "%lld-%llu", (long long)kpi_now_ms(),
             (unsigned long long)g->seq++);
    g->a[g->next] = copy;
    g->next = (g->next + 1) % g->cap;
    if (g->n < g->cap)
        g->n++;
    pthread_mutex_unlock(&r->mu);
    return 1;
}

int kpiread_wipe_group(struct kpiread *r, char *errstr, size_t errsz)
{
    if (!r->is_redis)
        return 0;
    uint32_t k; /* the key groups' slots, on a cluster (none yet: the group tag's) */
    int err = group_k(r, &k, errstr, errsz);
    return err ? err : r_wipe(r, errstr, errsz);
}

int kpiread_ping(struct kpiread *r, char *errstr, size_t errsz)
{
    return r->is_redis ? r_ping(r, errstr, errsz) : 0;
}
