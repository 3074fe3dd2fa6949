/*
 * redis.c - the Redis sink (see redis.h for the contract, redis_flush.lua for
 * what one flush does in Redis, docs/redis-schema.md for the keys).
 *
 * One flush:
 *   1. (Re)connect if needed: AUTH, SELECT, SCRIPT LOAD, pipelined.
 *   2. If the previous call failed after the script may have run, ask Redis
 *      (HMGET of the group's offsets) whether it did, and if so make that
 *      attempt's counters the "applied base" of the engine's pending delta.
 *   3. Roll the delta's base-bucket cells, minus the applied base, up into
 *      every window's buckets, and build the script's flat ARGV: offset
 *      ranges (starting where the applied base ended), one member table
 *      ("<set>:<value>"), and per window its buckets' counters and sketches.
 *   4. EVALSHA; on NOSCRIPT load the script and run it again.
 *
 * In-doubt calls.  A lost reply leaves the sink not knowing whether Redis
 * applied the call; the engine keeps the delta and, by the time it retries,
 * has usually merged more events into it, so the retry is neither the same
 * delta (a "dup") nor one that starts at the stored offset.  Sending it as is
 * would fence the engine for nothing.  Instead the sink keeps the counters of
 * the in-doubt attempt (not its sketches: merging a sketch twice changes
 * nothing) and, once it knows the attempt was applied, subtracts them from
 * every later attempt of the same delta (same seq) and starts its ranges
 * where the applied attempt ended.  The offsets decide: after the attempt they
 * are either all its `to` (applied) or all unchanged (not applied); Redis
 * runs the script atomically, so nothing in between exists.
 */
#include "redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "hash.h"
#include "redis_lua.h"

#define SPARSE_MAX 3000 /* Redis's default hll-sparse-max-bytes */

void kpi_redis_conf_defaults(struct kpi_redis_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->url = KPI_REDIS_URL_DEFAULT;
    c->prefix = KPI_REDIS_PREFIX_DEFAULT;
    c->group = KPI_REDIS_GROUP_DEFAULT;
    c->connect_timeout_ms = 2000;
    c->command_timeout_ms = 10000;
    c->stream_maxlen = 10000;
    c->ttl_margin_ms = 600000;
    c->active_refresh_ms = 10000;
    c->sketch_cache_bytes = 64 << 20;
}

/* ---- the flat argument list of one EVALSHA ---- */

/* All argument bytes live in one growing buffer; arguments are recorded as
 * offsets and turned into pointers only once the buffer stops moving. */
struct argv_buf {
    char *buf;
    size_t len, cap;
    size_t *off, *alen;
    size_t n, ncap;
    const char **ptrs;
    size_t ptrs_cap;
};

static int ab_reserve(struct argv_buf *a, size_t bytes)
{
    if (a->len + bytes > a->cap) {
        size_t cap = a->cap ? a->cap : 65536;
        while (cap < a->len + bytes)
            cap *= 2;
        char *b = realloc(a->buf, cap);
        if (!b)
            return KPI_ERR_NOMEM;
        a->buf = b;
        a->cap = cap;
    }
    if (a->n == a->ncap) {
        size_t ncap = a->ncap ? a->ncap * 2 : 4096;
        size_t *o = realloc(a->off, ncap * sizeof(*o));
        if (!o)
            return KPI_ERR_NOMEM;
        a->off = o;
        size_t *l = realloc(a->alen, ncap * sizeof(*l));
        if (!l)
            return KPI_ERR_NOMEM;
        a->alen = l;
        a->ncap = ncap;
    }
    return 0;
}

/* Room for one argument of up to `bytes`; commit it with ab_commit. */
static char *ab_begin(struct argv_buf *a, size_t bytes)
{
    return ab_reserve(a, bytes) ? NULL : a->buf + a->len;
}

static void ab_commit(struct argv_buf *a, size_t bytes)
{
    a->off[a->n] = a->len;
    a->alen[a->n] = bytes;
    a->n++;
    a->len += bytes;
}

static int ab_push(struct argv_buf *a, const void *p, size_t len)
{
    char *d = ab_begin(a, len);
    if (!d)
        return KPI_ERR_NOMEM;
    memcpy(d, p, len);
    ab_commit(a, len);
    return 0;
}

static int ab_str(struct argv_buf *a, const char *s)
{
    return ab_push(a, s, strlen(s));
}

static int ab_i64(struct argv_buf *a, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    return ab_push(a, tmp, (size_t)n);
}

/* Overwrite argument i (pushed as a placeholder) with a number. */
static int ab_set_i64(struct argv_buf *a, size_t i, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    if ((size_t)n > a->alen[i])
        return KPI_ERR_STATE;
    memcpy(a->buf + a->off[i], tmp, (size_t)n);
    a->alen[i] = (size_t)n;
    return 0;
}

static const char **ab_finish(struct argv_buf *a)
{
    if (a->ptrs_cap < a->n) {
        const char **p = realloc(a->ptrs, a->n * sizeof(*p));
        if (!p)
            return NULL;
        a->ptrs = p;
        a->ptrs_cap = a->n;
    }
    for (size_t i = 0; i < a->n; i++)
        a->ptrs[i] = a->buf + a->off[i];
    return a->ptrs;
}

static void ab_reset(struct argv_buf *a)
{
    a->len = 0;
    a->n = 0;
}

static void ab_free(struct argv_buf *a)
{
    free(a->buf);
    free(a->off);
    free(a->alen);
    free(a->ptrs);
    memset(a, 0, sizeof(*a));
}

/* ---- (set, value id) -> member index of one flush ---- */

struct member_map {
    uint64_t *keys; /* set << 32 | vid */
    uint32_t *vals; /* 1-based member index */
    uint32_t *gen;  /* entry valid when gen[i] == cur_gen */
    uint32_t mask;
    uint32_t cur_gen;
    uint32_t n;
};

static int mm_init(struct member_map *m, uint32_t want)
{
    uint32_t slots = 1024;
    while (slots < want * 2)
        slots <<= 1;
    if (m->keys && m->mask + 1 >= slots) {
        if (++m->cur_gen == 0) {
            memset(m->gen, 0, ((size_t)m->mask + 1) * sizeof(*m->gen));
            m->cur_gen = 1;
        }
        m->n = 0;
        return 0;
    }
    free(m->keys);
    free(m->vals);
    free(m->gen);
    m->keys = malloc(slots * sizeof(*m->keys));
    m->vals = malloc(slots * sizeof(*m->vals));
    m->gen = calloc(slots, sizeof(*m->gen));
    m->mask = slots - 1;
    m->cur_gen = 1;
    m->n = 0;
    if (!m->keys || !m->vals || !m->gen)
        return KPI_ERR_NOMEM;
    return 0;
}

/* The member's index, or 0 with *slot set where to insert it. */
static uint32_t mm_find(const struct member_map *m, uint64_t key, uint32_t *slot)
{
    uint64_t x = key * 0x9e3779b97f4a7c15ULL;
    uint32_t h = (uint32_t)(x >> 32) & m->mask;
    while (m->gen[h] == m->cur_gen) {
        if (m->keys[h] == key)
            return m->vals[h];
        h = (h + 1) & m->mask;
    }
    *slot = h;
    return 0;
}

static void mm_free(struct member_map *m)
{
    free(m->keys);
    free(m->vals);
    free(m->gen);
    memset(m, 0, sizeof(*m));
}

/* ---- the sketch cache ----
 *
 * The bytes of every (window, set, value, bucket) sketch this sink wrote in
 * the last two flushes, with the token that write stored in the bucket hash
 * (_t).  Next time, the sink merges the delta into those bytes itself and
 * sends the result with the token; the script SETs it if the token is still
 * there, i.e. if nothing else wrote the sketch since.  Only sparse sketches
 * (at most SPARSE_MAX bytes) are kept: a dense one would cost 12 KB of
 * network per flush, and Redis merges into a dense sketch in linear time. */

struct sk_key {
    int64_t bucket;
    uint32_t set, vid;
    uint32_t win;
};

struct sk_entry {
    struct sk_key key;
    uint64_t token;
    uint64_t used; /* flush number of the last write */
    uint32_t len;  /* 0: dead */
    uint8_t *bytes;
};

struct sk_cache {
    struct sk_entry *e;
    uint32_t n, cap;
    uint32_t *index; /* 0 empty, else entry + 1 */
    uint32_t mask;
    size_t bytes;
};

static uint32_t sk_hash(const struct sk_key *k)
{
    uint64_t x = (uint64_t)k->bucket * 0x9e3779b97f4a7c15ULL ^
                 ((uint64_t)k->set << 40 | (uint64_t)k->win << 32 | k->vid);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return (uint32_t)x;
}

static int sk_key_eq(const struct sk_key *a, const struct sk_key *b)
{
    return a->bucket == b->bucket && a->set == b->set && a->vid == b->vid && a->win == b->win;
}

static struct sk_entry *sk_find(struct sk_cache *c, const struct sk_key *k)
{
    if (!c->index)
        return NULL;
    uint32_t h = sk_hash(k) & c->mask;
    while (c->index[h]) {
        struct sk_entry *e = &c->e[c->index[h] - 1];
        if (sk_key_eq(&e->key, k))
            return e;
        h = (h + 1) & c->mask;
    }
    return NULL;
}

static int sk_reindex(struct sk_cache *c, uint32_t min_slots)
{
    uint32_t slots = 256;
    while (slots < min_slots * 2)
        slots <<= 1;
    uint32_t *ix = calloc(slots, sizeof(*ix));
    if (!ix)
        return KPI_ERR_NOMEM;
    for (uint32_t i = 0; i < c->n; i++) {
        uint32_t h = sk_hash(&c->e[i].key) & (slots - 1);
        while (ix[h])
            h = (h + 1) & (slots - 1);
        ix[h] = i + 1;
    }
    free(c->index);
    c->index = ix;
    c->mask = slots - 1;
    return 0;
}

static void sk_drop(struct sk_cache *c, const struct sk_key *k)
{
    struct sk_entry *e = sk_find(c, k);
    if (e && e->len) {
        c->bytes -= e->len;
        free(e->bytes);
        e->bytes = NULL;
        e->len = 0;
    }
}

static void sk_put(struct sk_cache *c, const struct sk_key *k, uint64_t token, uint64_t used,
                   const void *bytes, uint32_t len)
{
    struct sk_entry *e = sk_find(c, k);
    uint8_t *copy = malloc(len);
    if (!copy) {
        sk_drop(c, k);
        return;
    }
    memcpy(copy, bytes, len);
    if (!e) {
        if (c->n == c->cap) {
            uint32_t cap = c->cap ? c->cap * 2 : 1024;
            struct sk_entry *ne = realloc(c->e, cap * sizeof(*ne));
            if (!ne) {
                free(copy);
                return;
            }
            c->e = ne;
            c->cap = cap;
        }
        if ((c->n + 1) * 2 > (c->index ? c->mask + 1 : 0) && sk_reindex(c, c->n + 1)) {
            free(copy);
            return;
        }
        e = &c->e[c->n++];
        memset(e, 0, sizeof(*e));
        e->key = *k;
        uint32_t h = sk_hash(k) & c->mask;
        while (c->index[h])
            h = (h + 1) & c->mask;
        c->index[h] = c->n;
    }
    c->bytes -= e->len;
    free(e->bytes);
    e->bytes = copy;
    e->len = len;
    e->token = token;
    e->used = used;
    c->bytes += len;
}

/* Keep the entries written in the last two flushes, and at most max_bytes. */
static void sk_evict(struct sk_cache *c, uint64_t now, size_t max_bytes)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        struct sk_entry *e = &c->e[i];
        int keep = e->len && e->used + 2 > now && c->bytes <= max_bytes;
        if (!keep) {
            c->bytes -= e->len;
            free(e->bytes);
            continue;
        }
        c->e[j++] = *e;
    }
    c->n = j;
    if (c->e)
        sk_reindex(c, c->n);
}

static void sk_clear(struct sk_cache *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        free(c->e[i].bytes);
    c->n = 0;
    c->bytes = 0;
    if (c->index)
        memset(c->index, 0, ((size_t)c->mask + 1) * sizeof(*c->index));
}

static void sk_free(struct sk_cache *c)
{
    sk_clear(c);
    free(c->e);
    free(c->index);
    memset(c, 0, sizeof(*c));
}

/* What build_args sent for one window bucket, for updating the cache. */
struct group_ref {
    struct sk_key key;
    size_t arg; /* index of the sketch argument */
};

/* ---- the sink ---- */

struct applied_range {
    char topic[KPI_TOPIC_MAX + 1];
    int32_t partition;
    int64_t to;
};

/* Counters (and range ends) of an engine delta, identified by its seq. */
struct delta_copy {
    int valid;
    uint64_t seq;
    struct kpi_agg cells; /* counters only; sketches stay empty */
    struct applied_range *ranges;
    size_t n_ranges;
};

struct sent_range {
    char field[KPI_TOPIC_MAX + 16];
    int64_t from, to;
};

struct redis_sink {
    pthread_mutex_t mu;
    /* configuration */
    char *url; /* for messages: the password replaced by "***" */
    char *host;
    int port;
    char *unix_path;
    char *user, *password;
    int db;
    char *kprefix; /* "kpi:{group}:" */
    char *offsets_key;
    int64_t connect_timeout_ms, command_timeout_ms, stream_maxlen, ttl_margin_ms;
    int64_t active_refresh_ms, sketch_cache_bytes;
    /* connection */
    redisContext *ctx;
    char sha[41];
    /* exactly-once bookkeeping across failed calls (see the top of this file) */
    struct delta_copy base;    /* applied part of the engine's pending delta */
    struct delta_copy attempt; /* the in-doubt call's delta, if any */
    struct sent_range *sent;   /* the in-doubt call's ranges as sent */
    size_t n_sent;
    int in_doubt;
    /* scratch, reused across flushes */
    struct kpi_agg roll[KPI_MAX_WINDOWS];
    uint32_t roll_cap;
    struct member_map members;
    struct argv_buf args;
    struct sk_cache cache;
    struct group_ref *grefs;
    size_t n_grefs, grefs_cap;
    struct kpi_hll scratch;
    uint8_t *sk_buf; /* KPI_HLL_DENSE_SIZE */
    uint64_t flush_no;
    uint64_t token_seed, token_ctr, token; /* this call's write token */
    struct kpi_redis_stats stats;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

static void disconnect(struct redis_sink *s)
{
    if (s->ctx) {
        redisFree(s->ctx);
        s->ctx = NULL;
    }
}

/* An error on the connection: drop it, count it, say why. */
static int io_error(struct redis_sink *s, char *errstr, size_t errsz, const char *what)
{
    const char *why = s->ctx && s->ctx->err ? s->ctx->errstr : "connection lost";
    kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis %s: %s: %s", s->url, what, why);
    disconnect(s);
    s->stats.io_errors++;
    return KPI_ERR_IO;
}

static int reply_error(struct redis_sink *s, redisReply *r, char *errstr, size_t errsz,
                       const char *what)
{
    kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis %s: %s: %.*s", s->url, what, r ? (int)r->len : 0,
               r ? r->str : "");
    s->stats.io_errors++;
    return KPI_ERR_IO;
}

static int load_script(struct redis_sink *s, char *errstr, size_t errsz)
{
    redisReply *r = redisCommand(s->ctx, "SCRIPT LOAD %s", kpi_redis_flush_lua);
    if (!r)
        return io_error(s, errstr, errsz, "SCRIPT LOAD");
    int err = 0;
    if (r->type == REDIS_REPLY_STRING && r->len == 40) {
        memcpy(s->sha, r->str, 40);
        s->sha[40] = '\0';
        s->stats.script_loads++;
    } else {
        err = reply_error(s, r, errstr, errsz, "SCRIPT LOAD");
    }
    freeReplyObject(r);
    return err;
}

static int ensure_connected(struct redis_sink *s, char *errstr, size_t errsz)
{
    if (s->ctx)
        return 0;
    struct timeval ct = tv_ms(s->connect_timeout_ms);
    s->ctx = s->unix_path ? redisConnectUnixWithTimeout(s->unix_path, ct)
                          : redisConnectWithTimeout(s->host, s->port, ct);
    if (!s->ctx || s->ctx->err)
        return io_error(s, errstr, errsz, "connect");
    if (redisSetTimeout(s->ctx, tv_ms(s->command_timeout_ms)) != REDIS_OK)
        return io_error(s, errstr, errsz, "set timeout");
    /* AUTH, SELECT and SCRIPT LOAD in one round trip. */
    int n = 0;
    if (s->password) {
        if (s->user)
            redisAppendCommand(s->ctx, "AUTH %s %s", s->user, s->password);
        else
            redisAppendCommand(s->ctx, "AUTH %s", s->password);
        n++;
    }
    if (s->db) {
        redisAppendCommand(s->ctx, "SELECT %d", s->db);
        n++;
    }
    redisAppendCommand(s->ctx, "SCRIPT LOAD %s", kpi_redis_flush_lua);
    n++;
    int err = 0;
    for (int i = 0; i < n; i++) {
        void *rv = NULL;
        if (redisGetReply(s->ctx, &rv) != REDIS_OK)
            return io_error(s, errstr, errsz, "connect handshake");
        redisReply *r = rv;
        if (!err && r->type == REDIS_REPLY_ERROR)
            err = reply_error(s, r, errstr, errsz,
                              i == n - 1 ? "SCRIPT LOAD"
                                         : (s->password && i == 0 ? "AUTH" : "SELECT"));
        if (!err && i == n - 1) {
            if (r->type == REDIS_REPLY_STRING && r->len == 40) {
                memcpy(s->sha, r->str, 40);
                s->sha[40] = '\0';
                s->stats.script_loads++;
            } else {
                err = reply_error(s, r, errstr, errsz, "SCRIPT LOAD");
            }
        }
        freeReplyObject(r);
    }
    if (err) {
        disconnect(s);
        return err;
    }
    s->stats.connects++;
    return 0;
}

/* ---- URL ---- */

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
static char *redact_url(const char *url)
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

static int parse_url(struct redis_sink *s, const char *url, char *errstr, size_t errsz)
{
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
    if (!s->host || (at && !s->password))
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    return 0;
bad:
    return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                      "redis url '%s' is not redis://[[user]:password@]host[:port][/db] "
                      "or unix:///path[?db=N]",
                      s->url ? s->url : "?");
}

/* ---- delta copies ---- */

static void dc_clear(struct delta_copy *c)
{
    if (c->cells.cells)
        kpi_agg_reset(&c->cells);
    c->n_ranges = 0;
    c->valid = 0;
}

static void dc_free(struct delta_copy *c)
{
    if (c->cells.cells)
        kpi_agg_fini(&c->cells);
    free(c->ranges);
    memset(c, 0, sizeof(*c));
}

/* Copy the counters and range ends of d. */
static int dc_copy(struct delta_copy *c, const struct kpi_delta *d)
{
    uint32_t need = d->cells->n ? d->cells->n : 1;
    if (!c->cells.cells || c->cells.cap < need) {
        if (c->cells.cells)
            kpi_agg_fini(&c->cells);
        uint32_t cap = 1024;
        while (cap < need)
            cap *= 2;
        if (kpi_agg_init(&c->cells, cap))
            return KPI_ERR_NOMEM;
    } else {
        kpi_agg_reset(&c->cells);
    }
    for (uint32_t i = 0; i < d->cells->n; i++) {
        const struct kpi_agg_cell *src = &d->cells->cells[i];
        struct kpi_agg_cell *dst = kpi_agg_get(&c->cells, src->bucket, src->set, src->vid);
        dst->c = src->c;
    }
    free(c->ranges);
    c->ranges = calloc(d->n_ranges ? d->n_ranges : 1, sizeof(*c->ranges));
    if (!c->ranges)
        return KPI_ERR_NOMEM;
    for (size_t i = 0; i < d->n_ranges; i++) {
        memcpy(c->ranges[i].topic, d->ranges[i].topic, sizeof(c->ranges[i].topic));
        c->ranges[i].partition = d->ranges[i].partition;
        c->ranges[i].to = d->ranges[i].to;
    }
    c->n_ranges = d->n_ranges;
    c->seq = d->seq;
    c->valid = 1;
    return 0;
}

static void dc_swap(struct delta_copy *a, struct delta_copy *b)
{
    struct delta_copy t = *a;
    *a = *b;
    *b = t;
}

/* Where the applied base ended for a partition, or -1. */
static int64_t base_to(const struct delta_copy *b, const struct kpi_offset_range *r)
{
    if (!b->valid)
        return -1;
    for (size_t i = 0; i < b->n_ranges; i++)
        if (b->ranges[i].partition == r->partition && strcmp(b->ranges[i].topic, r->topic) == 0)
            return b->ranges[i].to;
    return -1;
}

static void range_field(char *out, size_t cap, const char *topic, int32_t partition)
{
    snprintf(out, cap, "%s:%" PRId32, topic, partition);
}

/* ---- in-doubt resolution ---- */

/* Ask Redis whether the in-doubt call was applied.  0 (resolved either way),
 * KPI_ERR_IO (ask again next time) or KPI_ERR_CONFLICT. */
static int resolve_in_doubt(struct redis_sink *s, char *errstr, size_t errsz)
{
    int any_progress = 0;
    for (size_t i = 0; i < s->n_sent; i++)
        if (s->sent[i].to != s->sent[i].from)
            any_progress = 1;
    if (!any_progress) {
        /* Nothing to tell it by, and nothing in it that a second application
         * would count twice: just send again. */
        s->in_doubt = 0;
        dc_clear(&s->attempt);
        return 0;
    }
    const char **argv = malloc((s->n_sent + 2) * sizeof(*argv));
    size_t *lens = malloc((s->n_sent + 2) * sizeof(*lens));
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    }
    argv[0] = "HMGET";
    argv[1] = s->offsets_key;
    for (size_t i = 0; i < s->n_sent; i++)
        argv[i + 2] = s->sent[i].field;
    for (size_t i = 0; i < s->n_sent + 2; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(s->ctx, (int)(s->n_sent + 2), argv, lens);
    free(argv);
    free(lens);
    if (!r)
        return io_error(s, errstr, errsz, "HMGET offsets");
    if (r->type != REDIS_REPLY_ARRAY || r->elements != s->n_sent) {
        int err = reply_error(s, r, errstr, errsz, "HMGET offsets");
        freeReplyObject(r);
        return err;
    }
    int all_to = 1, all_from = 1;
    for (size_t i = 0; i < s->n_sent; i++) {
        const redisReply *e = r->element[i];
        int64_t stored = -1;
        if (e->type == REDIS_REPLY_STRING)
            stored = strtoll(e->str, NULL, 10);
        if (stored != s->sent[i].to)
            all_to = 0;
        if (!(e->type == REDIS_REPLY_NIL || stored == s->sent[i].from))
            all_from = 0;
    }
    freeReplyObject(r);
    if (all_to) {
        /* Applied: that attempt's delta is now the applied base. */
        dc_swap(&s->base, &s->attempt);
    } else if (!all_from) {
        s->in_doubt = 0;
        dc_clear(&s->attempt);
        dc_clear(&s->base);
        s->stats.conflicts++;
        return kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT,
                          "redis: after a lost reply the group's offsets match neither "
                          "before nor after that flush: another instance wrote them");
    }
    s->in_doubt = 0;
    dc_clear(&s->attempt);
    return 0;
}

/* ---- building the script's arguments ---- */

static int ensure_scratch(struct redis_sink *s, const struct kpi_delta *d)
{
    uint32_t need = d->cells->n ? d->cells->n : 1;
    if (s->roll_cap < need) {
        uint32_t cap = 1024;
        while (cap < need)
            cap *= 2;
        for (int w = 0; w < KPI_MAX_WINDOWS; w++)
            if (s->roll[w].cells)
                kpi_agg_fini(&s->roll[w]);
        s->roll_cap = 0;
        for (int w = 0; w < d->windows->n; w++)
            if (kpi_agg_init(&s->roll[w], cap))
                return KPI_ERR_NOMEM;
        s->roll_cap = cap;
    } else {
        for (int w = 0; w < d->windows->n; w++) {
            if (!s->roll[w].cells && kpi_agg_init(&s->roll[w], s->roll_cap))
                return KPI_ERR_NOMEM;
            kpi_agg_reset(&s->roll[w]);
        }
    }
    return 0;
}

/* Roll the delta (minus the applied base) up into every window's buckets. */
static int rollup(struct redis_sink *s, const struct kpi_delta *d)
{
    const struct kpi_windows *ws = d->windows;
    for (uint32_t i = 0; i < d->cells->n; i++) {
        const struct kpi_agg_cell *cell = &d->cells->cells[i];
        struct kpi_counters c = cell->c;
        if (s->base.valid) {
            const struct kpi_agg_cell *b =
                kpi_agg_find(&s->base.cells, cell->bucket, cell->set, cell->vid);
            if (b)
                kpi_counters_sub(&c, &b->c);
        }
        if (kpi_counters_is_zero(&c))
            continue; /* all of it is in Redis already, sketch included */
        for (int w = 0; w < ws->n; w++) {
            int64_t wb = kpi_bucket_start(cell->bucket, ws->w[w].slide_ms);
            struct kpi_agg_cell *r = kpi_agg_get(&s->roll[w], wb, cell->set, cell->vid);
            if (!r)
                return KPI_ERR_FULL;
            kpi_counters_add(&r->c, &c);
            int err = kpi_hll_merge(&r->hll, &cell->hll);
            if (err)
                return err;
        }
    }
    return 0;
}

/* A member: its set's name, its value's label and its recount phase (a
 * stable hash of both, so recounts of different values spread out). */
static int push_member(struct redis_sink *s, const struct kpi_delta *d, uint32_t set, uint32_t vid)
{
    const char *sname = d->dims->sets[set].name;
    uint32_t vl;
    const char *v = kpi_dims_value_label(d->dims, (int)set, vid, &vl);
    uint64_t h = kpi_murmur64a(v, vl, 7) ^ kpi_murmur64a(sname, strlen(sname), 11);
    if (ab_str(&s->args, sname) || ab_push(&s->args, v, vl) ||
        ab_i64(&s->args, (int64_t)(h % 1000)))
        return KPI_ERR_NOMEM;
    return 0;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A write token no other call, of this sink or another, will ever use. */
static uint64_t next_token(struct redis_sink *s)
{
    uint64_t x = s->token_seed ^ ++s->token_ctr;
    return splitmix(&x) | 1;
}

static void token_hex(char out[17], uint64_t t)
{
    snprintf(out, 17, "%016" PRIx64, t);
}

/* Push a window bucket's expected token and sketch: the cached bytes plus
 * this delta when the cache has the bucket and the result stays sparse,
 * else "" and the delta's own sketch (for Redis to merge). */
static int push_sketch(struct redis_sink *s, struct group_ref *g, const struct kpi_hll *delta)
{
    struct argv_buf *a = &s->args;
    struct sk_entry *e = s->sketch_cache_bytes > 0 ? sk_find(&s->cache, &g->key) : NULL;
    if (e && e->len) {
        size_t len = 0;
        if (kpi_hll_deserialize(&s->scratch, e->bytes, e->len) == 0 &&
            kpi_hll_merge(&s->scratch, delta) == 0)
            len = kpi_hll_serialize(&s->scratch, s->sk_buf, KPI_HLL_DENSE_SIZE, SPARSE_MAX);
        if (len > 0 && len <= SPARSE_MAX) {
            char tok[17];
            token_hex(tok, e->token);
            if (ab_str(a, tok) || ab_push(a, s->sk_buf, len))
                return KPI_ERR_NOMEM;
            g->arg = a->n - 1;
            return 0;
        }
        sk_drop(&s->cache, &g->key);
    }
    if (ab_str(a, ""))
        return KPI_ERR_NOMEM;
    char *p = ab_begin(a, KPI_HLL_DENSE_SIZE);
    if (!p)
        return KPI_ERR_NOMEM;
    size_t len = kpi_hll_serialize(delta, (uint8_t *)p, KPI_HLL_DENSE_SIZE, SPARSE_MAX);
    if (len == 0)
        return KPI_ERR_STATE;
    ab_commit(a, len);
    g->arg = a->n - 1;
    return 0;
}

/* After an applied call: remember the sketches Redis now holds exactly
 * (exact[i] == '1': the script SET what group i sent). */
static void update_cache(struct redis_sink *s, const char *exact, size_t n)
{
    s->flush_no++;
    for (size_t i = 0; i < s->n_grefs; i++) {
        const struct group_ref *g = &s->grefs[i];
        size_t len = s->args.alen[g->arg];
        int is_exact = i < n && exact[i] == '1';
        if (is_exact)
            s->stats.sketch_sets++;
        else
            s->stats.sketch_merges++;
        if (s->sketch_cache_bytes <= 0)
            continue;
        if (is_exact && len <= SPARSE_MAX)
            sk_put(&s->cache, &g->key, s->token, s->flush_no, s->args.buf + s->args.off[g->arg],
                   (uint32_t)len);
        else
            sk_drop(&s->cache, &g->key);
    }
    if (s->sketch_cache_bytes > 0)
        sk_evict(&s->cache, s->flush_no, (size_t)s->sketch_cache_bytes);
}

static int build_args(struct redis_sink *s, const struct kpi_delta *d)
{
    struct argv_buf *a = &s->args;
    const struct kpi_windows *ws = d->windows;
    int err = 0;
    ab_reset(a);
    s->n_sent = 0;
    err |= ab_str(a, "EVALSHA");
    err |= ab_str(a, s->sha);
    err |= ab_str(a, "1");
    err |= ab_str(a, s->offsets_key);
    err |= ab_str(a, "1");
    err |= ab_str(a, s->kprefix);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    err |= ab_i64(a, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    if (d->watermark == INT64_MIN)
        err |= ab_str(a, "");
    else
        err |= ab_i64(a, d->watermark);
    err |= ab_i64(a, ws->lateness_ms);
    err |= ab_i64(a, s->stream_maxlen);
    err |= ab_i64(a, s->active_refresh_ms);
    s->token = next_token(s);
    char tok[17];
    token_hex(tok, s->token);
    err |= ab_str(a, tok);

    /* Offset ranges, starting where the applied base ended. */
    struct sent_range *sent = realloc(s->sent, (d->n_ranges ? d->n_ranges : 1) * sizeof(*sent));
    if (!sent)
        return KPI_ERR_NOMEM;
    s->sent = sent;
    err |= ab_i64(a, (int64_t)d->n_ranges);
    for (size_t i = 0; i < d->n_ranges; i++) {
        const struct kpi_offset_range *r = &d->ranges[i];
        struct sent_range *sr = &s->sent[s->n_sent++];
        range_field(sr->field, sizeof(sr->field), r->topic, r->partition);
        int64_t bt = base_to(&s->base, r);
        sr->from = bt >= r->from && bt <= r->to ? bt : r->from;
        sr->to = r->to;
        err |= ab_str(a, sr->field);
        err |= ab_i64(a, sr->from);
        err |= ab_i64(a, sr->to);
    }
    if (err)
        return KPI_ERR_NOMEM;

    /* Members: every (set, value) any window bucket holds. */
    uint32_t n_groups = 0;
    for (int w = 0; w < ws->n; w++)
        n_groups += s->roll[w].n;
    if (s->grefs_cap < n_groups) {
        struct group_ref *g = realloc(s->grefs, n_groups * sizeof(*g));
        if (!g)
            return KPI_ERR_NOMEM;
        s->grefs = g;
        s->grefs_cap = n_groups;
    }
    s->n_grefs = 0;
    if ((err = mm_init(&s->members, n_groups)))
        return err;
    size_t n_members_arg = a->n;
    err |= ab_str(a, "0000000000");
    for (int w = 0; w < ws->n; w++) {
        for (uint32_t i = 0; i < s->roll[w].n; i++) {
            const struct kpi_agg_cell *c = &s->roll[w].cells[i];
            uint64_t key = (uint64_t)c->set << 32 | c->vid;
            uint32_t slot = 0;
            if (mm_find(&s->members, key, &slot))
                continue;
            s->members.keys[slot] = key;
            s->members.vals[slot] = ++s->members.n;
            s->members.gen[slot] = s->members.cur_gen;
            err |= push_member(s, d, c->set, c->vid);
        }
    }
    err |= ab_set_i64(a, n_members_arg, s->members.n);

    /* Windows and their buckets. */
    err |= ab_i64(a, ws->n);
    for (int w = 0; w < ws->n && !err; w++) {
        const struct kpi_window_spec *spec = &ws->w[w];
        int64_t ttl = spec->size_ms + spec->slide_ms + ws->lateness_ms + s->ttl_margin_ms;
        err |= ab_str(a, spec->id);
        err |= ab_i64(a, spec->size_ms);
        err |= ab_i64(a, spec->slide_ms);
        err |= ab_i64(a, ttl);
        err |= ab_i64(a, ttl);
        err |= ab_i64(a, s->roll[w].n);
        for (uint32_t i = 0; i < s->roll[w].n && !err; i++) {
            const struct kpi_agg_cell *c = &s->roll[w].cells[i];
            uint32_t slot;
            uint32_t m = mm_find(&s->members, (uint64_t)c->set << 32 | c->vid, &slot);
            err |= ab_i64(a, m);
            err |= ab_i64(a, c->bucket);
            const int64_t *cv = (const int64_t *)&c->c;
            const int nc = (int)(sizeof(c->c) / sizeof(int64_t));
            int64_t mask = 0;
            for (int k = 0; k < nc; k++)
                if (cv[k])
                    mask |= (int64_t)1 << k;
            err |= ab_i64(a, mask);
            for (int k = 0; k < nc; k++)
                if (cv[k])
                    err |= ab_i64(a, cv[k]);
            struct group_ref *g = &s->grefs[s->n_grefs++];
            g->key.bucket = c->bucket;
            g->key.set = c->set;
            g->key.vid = c->vid;
            g->key.win = (uint32_t)w;
            if ((err = push_sketch(s, g, &c->hll)))
                return err;
        }
    }
    return err ? KPI_ERR_NOMEM : 0;
}

/* ---- the sink callbacks ---- */

static int run_script(struct redis_sink *s, redisReply **out, char *errstr, size_t errsz)
{
    const char **argv = ab_finish(&s->args);
    if (!argv)
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    for (int attempt = 0;; attempt++) {
        s->args.ptrs[1] = s->sha; /* the sha may have changed on reload */
        s->args.alen[1] = strlen(s->sha);
        s->in_doubt = 1; /* from here until a reply, the outcome is unknown */
        int64_t t0 = mono_us();
        redisReply *r = redisCommandArgv(s->ctx, (int)s->args.n, argv, s->args.alen);
        s->stats.last_call_us = (uint64_t)(mono_us() - t0);
        if (!r) {
            s->stats.in_doubt++;
            return io_error(s, errstr, errsz, "EVALSHA");
        }
        s->in_doubt = 0; /* a reply: Redis either ran the script or refused it */
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && attempt == 0) {
            freeReplyObject(r);
            int err = load_script(s, errstr, errsz);
            if (err)
                return err;
            continue;
        }
        *out = r;
        return 0;
    }
}

/* Error replies that mean "not run, try again later" (Redis loading, busy
 * with another script, out of memory, a failover or resharding under way,
 * credentials being fixed).  Any other error from EVALSHA is the script
 * failing while it ran (a bug, or keys under the prefix that something else
 * wrote): retrying could apply part of it again, so the sink refuses. */
static int is_transient(const char *err)
{
    static const char *const codes[] = {"BUSY",     "LOADING",  "OOM",         "MASTERDOWN",
                                        "READONLY", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS",
                                        "NOSCRIPT", "MOVED",    "ASK",         "NOAUTH",
                                        "NOPERM",   "MISCONF",  "EXECABORT",   "UNBLOCKED"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        size_t n = strlen(codes[i]);
        if (strncmp(err, codes[i], n) == 0 && (err[n] == ' ' || err[n] == '\0'))
            return 1;
    }
    return 0;
}

static int flush_once(struct redis_sink *s, const struct kpi_delta *d, char *errstr, size_t errsz)
{
    int err = ensure_connected(s, errstr, errsz);
    if (!err && s->attempt.valid)
        err = resolve_in_doubt(s, errstr, errsz);
    if (err)
        goto out;
    if (s->base.valid && s->base.seq != d->seq)
        dc_clear(&s->base); /* the engine moved on: that base is not part of this delta */

    if ((err = ensure_scratch(s, d)) || (err = rollup(s, d)) || (err = build_args(s, d))) {
        kpi_seterr(errstr, errsz, err, "redis: cannot build the flush: %s", kpi_err_name(err));
        goto out;
    }
    s->stats.last_args_bytes = s->args.len;
    redisReply *r = NULL;
    if ((err = run_script(s, &r, errstr, errsz))) {
        if (s->in_doubt)
            sk_clear(&s->cache); /* the tokens may have moved on */
        if (s->in_doubt && dc_copy(&s->attempt, d) != 0) {
            /* Cannot remember the attempt: the next call will send the full
             * delta and, if this one was applied, be fenced (never double). */
            dc_clear(&s->attempt);
        }
        s->in_doubt = 0;
        goto out;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        const char *st = r->element[0]->str;
        if (strcmp(st, "ok") == 0 && r->elements >= 5) {
            s->stats.flushes++;
            s->stats.stream_entries += (uint64_t)r->element[1]->integer;
            s->stats.rebuilds += (uint64_t)r->element[2]->integer;
            s->stats.sketch_errors += (uint64_t)r->element[3]->integer;
            update_cache(s, r->element[4]->str ? r->element[4]->str : "", r->element[4]->len);
            dc_clear(&s->base);
        } else if (strcmp(st, "dup") == 0) {
            s->stats.replays++;
            dc_clear(&s->base);
        } else if (strcmp(st, "conflict") == 0 && r->elements >= 5) {
            s->stats.conflicts++;
            dc_clear(&s->base);
            err = kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT,
                             "redis: partition %s: the group's stored offset is '%s', this "
                             "delta covers [%s, %s): another instance owns it",
                             r->element[1]->str, r->element[2]->str, r->element[3]->str,
                             r->element[4]->str);
        } else {
            err = reply_error(s, NULL, errstr, errsz, "unexpected script reply");
        }
    } else if (r->type == REDIS_REPLY_ERROR && !is_transient(r->str)) {
        s->stats.io_errors++;
        err = kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT,
                         "redis %s: the flush script failed: %.*s; not retrying a script that "
                         "may have run part-way (see docs/exactly-once.md)",
                         s->url, (int)r->len, r->str);
    } else {
        err = reply_error(s, r, errstr, errsz, "EVALSHA");
    }
    freeReplyObject(r);
out:
    return err;
}

static int redis_flush(void *self, const struct kpi_delta *d, char *errstr, size_t errsz)
{
    struct redis_sink *s = self;
    pthread_mutex_lock(&s->mu);
    int err;
    for (int attempt = 0;; attempt++) {
        int had_connection = s->ctx != NULL;
        err = flush_once(s, d, errstr, errsz);
        /* A connection that died while idle (Redis restarted, a proxy timed
         * it out) is only found out by using it: reconnect and go on at once
         * instead of waiting for the engine's retry. */
        if (err == KPI_ERR_IO && had_connection && !s->ctx && attempt == 0)
            continue;
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return err;
}

static int redis_load_offset(void *self, const char *topic, int32_t partition, int64_t *offset,
                             char *errstr, size_t errsz)
{
    struct redis_sink *s = self;
    char field[KPI_TOPIC_MAX + 16];
    range_field(field, sizeof(field), topic, partition);
    pthread_mutex_lock(&s->mu);
    int err = ensure_connected(s, errstr, errsz);
    if (err)
        goto out;
    redisReply *r = redisCommand(s->ctx, "HGET %s %s", s->offsets_key, field);
    if (!r) {
        err = io_error(s, errstr, errsz, "HGET offsets");
        goto out;
    }
    if (r->type == REDIS_REPLY_NIL) {
        *offset = -1;
    } else if (r->type == REDIS_REPLY_STRING) {
        char *end;
        errno = 0;
        long long v = strtoll(r->str, &end, 10);
        if (errno || *end || v < 0)
            err = kpi_seterr(errstr, errsz, KPI_ERR_PARSE, "redis: offset of %s is '%s'", field,
                             r->str);
        else
            *offset = v;
    } else {
        err = reply_error(s, r, errstr, errsz, "HGET offsets");
    }
    freeReplyObject(r);
out:
    pthread_mutex_unlock(&s->mu);
    return err;
}

static void redis_destroy(void *self)
{
    struct redis_sink *s = self;
    if (!s)
        return;
    disconnect(s);
    for (int w = 0; w < KPI_MAX_WINDOWS; w++)
        if (s->roll[w].cells)
            kpi_agg_fini(&s->roll[w]);
    dc_free(&s->base);
    dc_free(&s->attempt);
    mm_free(&s->members);
    ab_free(&s->args);
    sk_free(&s->cache);
    free(s->grefs);
    free(s->sk_buf);
    kpi_hll_fini(&s->scratch);
    free(s->sent);
    free(s->url);
    free(s->host);
    free(s->unix_path);
    free(s->user);
    free(s->password);
    free(s->kprefix);
    free(s->offsets_key);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const struct kpi_sink_ops redis_ops = {
    .name = "redis",
    .flush = redis_flush,
    .load_offset = redis_load_offset,
    .destroy = redis_destroy,
};

struct kpi_sink kpi_sink_redis_new(const struct kpi_redis_conf *conf, char *errstr, size_t errsz)
{
    struct kpi_sink none = {NULL, NULL};
    struct kpi_redis_conf def;
    kpi_redis_conf_defaults(&def);
    const char *url = conf && conf->url ? conf->url : def.url;
    const char *prefix = conf && conf->prefix ? conf->prefix : def.prefix;
    const char *group = conf && conf->group ? conf->group : def.group;
#define OR_DEFAULT(f) (conf && conf->f > 0 ? conf->f : def.f)
    if (!*prefix || strpbrk(prefix, "{}")) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                   "redis key prefix '%s' must be non-empty and hold no '{' or '}'", prefix);
        return none;
    }
    if (!*group || strpbrk(group, "{}")) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                   "redis group '%s' must be non-empty and hold no '{' or '}' (it is the "
                   "keys' hash tag)",
                   group);
        return none;
    }
    struct redis_sink *s = calloc(1, sizeof(*s));
    if (!s) {
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
        return none;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->connect_timeout_ms = OR_DEFAULT(connect_timeout_ms);
    s->command_timeout_ms = OR_DEFAULT(command_timeout_ms);
    s->stream_maxlen = OR_DEFAULT(stream_maxlen);
    s->ttl_margin_ms = conf && conf->ttl_margin_ms >= 0 ? conf->ttl_margin_ms : def.ttl_margin_ms;
    s->active_refresh_ms =
        conf && conf->active_refresh_ms >= 0 ? conf->active_refresh_ms : def.active_refresh_ms;
    s->sketch_cache_bytes =
        conf && conf->sketch_cache_bytes >= 0 ? conf->sketch_cache_bytes : def.sketch_cache_bytes;
    kpi_hll_init(&s->scratch);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t seed = (uint64_t)now.tv_nsec ^ (uint64_t)now.tv_sec << 30 ^ (uint64_t)getpid() << 16 ^
                    (uint64_t)(uintptr_t)s;
    s->token_seed = splitmix(&seed);
#undef OR_DEFAULT
    s->url = redact_url(url);
    s->sk_buf = malloc(KPI_HLL_DENSE_SIZE);
    size_t kl = strlen(prefix) + strlen(group) + 8;
    s->kprefix = malloc(kl);
    s->offsets_key = malloc(kl + 8);
    if (!s->url || !s->kprefix || !s->offsets_key || !s->sk_buf) {
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
        redis_destroy(s);
        return none;
    }
    snprintf(s->kprefix, kl, "%s:{%s}:", prefix, group);
    snprintf(s->offsets_key, kl + 8, "%soffsets", s->kprefix);
    if (parse_url(s, url, errstr, errsz)) {
        redis_destroy(s);
        return none;
    }
    struct kpi_sink sink = {&redis_ops, s};
    return sink;
}

void kpi_sink_redis_get_stats(const struct kpi_sink *sink, struct kpi_redis_stats *out)
{
    struct redis_sink *s = sink->self;
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

const char *kpi_sink_redis_key_prefix(const struct kpi_sink *sink)
{
    const struct redis_sink *s = sink->self;
    return s->kprefix;
}
