/*
 * hot.c - the hot path of a flush: the common part of a key group's call,
 * computed in C and written with plain commands, in one MULTI/EXEC with the
 * script call that does the rest (docs/redis-schema.md, "Cost";
 * docs/exactly-once.md, "The hot path").
 *
 * Why.  Inside the flush script every redis.call and every field crosses
 * the Lua interpreter: 60-80 us of Redis time per (window, value) written,
 * where the same writes sent as plain pipelined commands cost a fraction
 * of that (bench/RESULTS.md, "The hot path").  Most of a flush is the same
 * simple step for every value: add this delta's counters to a bucket hash
 * and to the value's rolling hash, write its sketch, re-derive its KPIs.
 * That step is done here, and so is a due recount of its `active` (the
 * sketches read back and counted in C); what is rare (a window's head
 * moving, a rebuild, a base snapshot, amendments of closed buckets) stays
 * in flush.lua.
 *
 * One call, on the key group's node, on one connection:
 *   1. WATCH offsets meta; HMGET offsets <ranges>; HMGET meta <marks>;
 *      FUNCTION LIST of the flush function's library.  The fence is
 *      checked here exactly as the script does: a replay or a conflict
 *      ends the call (UNWATCH).
 *   2. Per window, the values whose every cell of the call is plain (see
 *      hot_cell_ok) are candidates, and so are the key group's stale values
 *      without a cell (trailing recounts, `trail`; an idle call, with no
 *      delta, has only those) when the window's head stays; their bucket
 *      fields, rolling hashes and base gauges are read.  A candidate whose rolling hash is missing
 *      (new, expired) is made again from its buckets (step 2b reads them).  When this call moves a
 *      window's head, the candidates are added to the instance as it
 *      stands and the script moves the head afterwards, over what they
 *      wrote (struct hw; docs/exactly-once.md, "A head that moves in the
 *      same call").  A window never written to the key group (a new
 *      group's first flush) is fresh: the hot path sets its head and
 *      `first:` (and a new group's `since`) itself, first in the
 *      transaction, and makes every value's rolling hash from the cells.
 *   2b. The sketches it needs and does not hold (build_step2b): buckets
 *      another writer touched, and the instances of the candidates whose
 *      `active` is due, merged and counted here instead of in Redis; and
 *      for a rolling hash made again, every bucket's counters.
 *   3. MULTI, alone (run_transaction: refused, nothing else is sent); the
 *      candidates' writes (HSET bucket, SET sketch, or PFMERGE
 *      when it could not be read, SADD idx, HSET rolling hash with the
 *      recounted `active`, SET window sketch, ZADD values, and the base
 *      gauge's net adds when the hot path writes every window of the
 *      value); FCALL of the flush function with the other cells, and the
 *      candidates whose `active` is due and was not counted here as values
 *      to recount, which also moves the offsets and marks; EXEC.
 *
 * Why that is exactly once and exact.  Every writer of a key group writes
 * its `meta` (the script always does, in every call), so WATCH on offsets
 * and meta makes EXEC fail if anything wrote the key group between the
 * reads of steps 1-2 and EXEC: what this call read is still true when its
 * writes apply, so a sum computed here from a value read in step 2 is
 * exactly what HINCRBY would have produced.  EXEC applies all or nothing:
 * a failed WATCH (nil), a refused transaction (EXECABORT, OOM, READONLY
 * at EXEC: Redis 7 checks those for the whole transaction before running
 * any of it) or a lost connection before EXEC write nothing; a lost reply
 * after EXEC is in doubt and resolved from the offsets, which the script
 * inside the same transaction moved, like a lost FCALL reply.  The one
 * error inside EXEC that would leave half of it is a command failing at
 * run time: WRONGTYPE (a foreign writer under the prefix, which
 * docs/redis-schema.md excludes; step 2 sees a rolling hash, leaderboard or
 * idx set of another type and the transaction replaces it first, `foreign`,
 * vt_rep and it_rep; a bucket hash or base gauge of another type sends its
 * value to the script, which replaces them), a corrupt sketch (PFMERGE: counted as a
 * sketch error, as the script's pcall does), or "Function not found" if an
 * operator deletes the function library between step 1 and EXEC (the
 * script cache is not used: SCRIPT FLUSH cannot do that); take_exec never
 * retries such a transaction.  Counters cannot overflow: sums saturate
 * here, in int64, as the script's do.
 *
 * The script sees the candidates' values as members of the call (so they
 * are "written by this call", not trailing recounts) but not their cells;
 * it runs after the hot writes in the same transaction, so anything it
 * reads (a closing bucket, a recount) already includes them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "engine/err.h"
#include "engine/kpi.h"
#include "sinks/redis/redis_int.h"

#define HOUR_MS       3600000LL
#define DAY_MS        86400000LL
#define KEEP_HOURS    48
#define KEEP_DAYS     35
#define WS_MIN_BUCKET 12 /* windows of more buckets count through a window sketch */
#define NO_MS         INT64_MIN
#define NO_REP        SIZE_MAX

/* One (window, value) of the call. */
struct hv {
    uint64_t key; /* set << 32 | vid */
    int w;
    int slow;      /* the script writes it */
    int in_inst;   /* has cells inside the current instance */
    size_t kk_rep; /* its rolling hash's HMGET reply */
    uint32_t gauge;
    uint32_t first_hc; /* its cells: a list through hc.next (UINT32_MAX: end) */
    int due;           /* its `active` is due (the script recounts it unless recounted) */
    int recounted;     /* counted here from step 2b's sketches */
    size_t rc_rep;     /* step 2b: its first GET (NO_REP: none) */
    uint32_t rc_n;     /* ... and how many */
    int rc_ws;         /* the first GET is its window sketch (ws:) */
    int64_t events;    /* its rolling `events` after this call */
    int rebuild;       /* its rolling hash is missing: made here from its buckets */
    size_t rb_rep;     /* step 2b: the HMGET of its first bucket's counters */
    uint32_t rb_n;     /* ... and how many */
    uint32_t znext;    /* the next candidate of its leaderboard (window, set) */
    int trail;         /* no cell: a stale value of the key group, recounted here */
    int foreign;       /* its rolling hash's key holds another type: replaced */
    int64_t acc[KPI_NCOUNTERS];
};

/* One cell of a candidate. */
struct hc {
    int w;
    uint32_t cell; /* index in s->roll[w] */
    uint32_t hv;
    uint32_t next;
    uint32_t inext; /* the next hot cell of its (window, bucket) idx set */
    size_t bk_rep;
    size_t sk_rep; /* step 2b: the GET of its sketch (NO_REP: not read) */
    int merged;    /* its sketch goes through PFMERGE */
};

/* A candidate value's base gauge (flush.lua, gauge and base_at). */
struct hist {
    int64_t at, v;
    int touched; /* this call adds to it: written in the gauge's HSET */
};

struct gauge {
    uint64_t key;
    size_t rep;
    /* parsed from the HGETALL, then with this call's net adds when the hot
     * path applies them (own) */
    int has_base, has_top, has_sh;
    int64_t base, top, sh, snap, net;
    int64_t ttl_ms; /* `_ms`: when the hot path last renewed its TTL (0: not known) */
    struct hist *hours, *days;
    size_t n_hours, n_days, hours_cap, days_cap;
    int own; /* the hot path applies the value's base entries */
};

/* Per window: the marks read in step 1.  H and lo bound the instance as
 * it stands (the head in meta), which is what the hot path adds to; Hn and
 * lon bound it once this call's watermark has moved the head, which the
 * script does after the hot writes (and what the monthly KPIs' span is
 * taken over).  They differ when the head moves. */
struct hw {
    int64_t h_old, c_old, f_old, H, lo, Hn, lon;
    int hot;    /* candidates possible */
    int moving; /* the head moves in this call: the script moves it */
    /* Nothing of the window was ever written to the key group (no head, no
     * `first:`): every value is new and no bucket exists.  The hot path
     * sets the head and `first:` itself (the marks the script would set),
     * and makes the rolling hashes from this call's cells alone; the
     * script, after it, finds the head in place. */
    int fresh;
};

struct hot_state {
    struct hv *hv;
    size_t n_hv, hv_cap;
    struct hc *hc;
    size_t n_hc, hc_cap;
    struct gauge *g;
    size_t n_g, g_cap, g_init; /* [0, g_init): hours and days valid (maybe NULL) */
    struct member_map hv_map, g_map, base_map, grp_map, it_map;
    /* this call's hourly base cells (s->hours) by value: base_map gives a
     * value's ordinal k, b_first[k - 1] its first cell, b_next the next one
     * (UINT32_MAX: end), in the order of s->hours */
    uint32_t *b_first, *b_next;
    size_t b_first_cap, b_next_cap;
    size_t *it_rep; /* step 2: TYPE of each (window, bucket) idx set, by it_map */
    size_t it_cap;
    uint32_t *grp; /* batched SADD/ZADD: per group, its first item */
    size_t n_grp, grp_cap;
    struct value_list due[KPI_MAX_WINDOWS]; /* hot values the script recounts */
    struct kpi_argv a;
    struct kpi_argv sk; /* scratch: one sketch and its expected token */
    int *argc;
    size_t n_cmd, argc_cap;
    size_t cmd_start;
    redisReply **rep;
    size_t rep_cap;
    struct group_ref *refs; /* hot cells' sketches, for the cache */
    size_t n_refs, refs_cap;
    uint8_t *exact;
    size_t exact_cap;
    size_t *merge_cmd; /* PFMERGE commands (their errors are sketch errors) */
    size_t n_merge, merge_cap;
    /* step 2b: GETs of sketches, one argument (the key) each */
    struct kpi_argv ga;
    int *gargc;
    size_t gargc_cap;
    redisReply **grep;
    size_t grep_cap, n_grep;
    struct kpi_hll acc; /* a recount's union */
    int acc_init;
    uint64_t reads, recounts, rebuilds; /* of this transaction, counted when it applies */
    /* step 2: TYPE of each (window, set) leaderboard the candidates write */
    size_t vt_rep[KPI_MAX_WINDOWS][KPI_MAX_SETS];
    uint64_t replaced; /* reader keys of another type this transaction replaces */
};

/* ---- commands ---- */

static void cmd_begin(struct hot_state *h)
{
    h->cmd_start = h->a.n;
}

static int cmd_end(struct hot_state *h)
{
    if (kpi_rs_grow(&h->argc, &h->argc_cap, h->n_cmd + 1, sizeof(*h->argc), 256))
        return KPI_ERR_NOMEM;
    h->argc[h->n_cmd++] = (int)(h->a.n - h->cmd_start);
    return 0;
}

static void cmds_reset(struct hot_state *h)
{
    kpi_argv_reset(&h->a);
    h->n_cmd = 0;
}

/* A key: the prefix, then n parts joined by ':' ("kpi:{g.3}:" + "b", "1m_5s",
 * "region", "eu-west", "1700000040000"); parts are bytes, not C strings. */
struct part {
    const char *p;
    size_t len;
};

static int push_key(struct kpi_argv *a, const char *prefix, const struct part *parts, int n)
{
    size_t len = strlen(prefix);
    for (int i = 0; i < n; i++)
        len += parts[i].len + 1;
    char *o = kpi_argv_begin(a, len);
    if (!o)
        return KPI_ERR_NOMEM;
    size_t at = strlen(prefix);
    memcpy(o, prefix, at);
    for (int i = 0; i < n; i++) {
        if (i > 0)
            o[at++] = ':';
        memcpy(o + at, parts[i].p, parts[i].len);
        at += parts[i].len;
    }
    kpi_argv_commit(a, at);
    return 0;
}

static struct part str_part(const char *s)
{
    return (struct part){s, strlen(s)};
}

/* ---- parsing replies ---- */

/* A decimal int64 reply element: 1 with *v set, 0 when nil or not a number. */
static int parse_i64(const redisReply *r, int64_t *v)
{
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
        return 0;
    char buf[24];
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    char *end;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end)
        return 0;
    *v = x;
    return 1;
}

static int is_nil(const redisReply *r)
{
    return !r || r->type == REDIS_REPLY_NIL;
}

static const redisReply nil_reply = {.type = REDIS_REPLY_NIL};

/* Field i of the HMGET of a candidate's rolling hash in step 2 (KPI_NCOUNTERS
 * counters, then active, _ms, _p); a key of another type (foreign) reads as
 * a missing hash. */
static const redisReply *kk_field(const struct hot_state *h, const struct hv *x, size_t i)
{
    const redisReply *r = h->rep[x->kk_rep];
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements ? r->element[i] : &nil_reply;
}

/* A TYPE reply naming another type than `want` (another program's value:
 * replaced, as flush.lua's own_type does). */
static int is_foreign(const redisReply *t, const char *want)
{
    return t && t->type == REDIS_REPLY_STATUS && strcmp(t->str, want) && strcmp(t->str, "none");
}

/* A reply saying the key holds another type than the command's. */
static int is_wrongtype(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0;
}

/* ---- maps ---- */

/* Index (+1) of key in map m, adding it with value `next` if new. */
static uint32_t map_get(struct member_map *m, uint64_t key, uint32_t next, int *added)
{
    uint32_t slot = 0;
    uint32_t v = kpi_rs_mm_find(m, key, &slot);
    *added = 0;
    if (v)
        return v;
    m->keys[slot] = key;
    m->vals[slot] = next;
    m->gen[slot] = m->cur_gen;
    m->n++;
    *added = 1;
    return next;
}

/* ---- step 1: fence and marks ---- */

static int64_t sat_add(int64_t a, int64_t b, uint64_t *saturated)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        (*saturated)++;
        return b > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

enum { HOT_DONE, HOT_RETRY, HOT_FALLBACK };

struct call {
    struct redis_sink *s;
    uint32_t kg;
    struct keygroup *g;
    const struct kpi_delta *d;
    struct hot_state *h;
    struct hw win[KPI_MAX_WINDOWS];
    int64_t since, now, clock_max;
    int has_since;
    int write_since; /* no `since` yet: the hot path writes it (fresh windows) */
    char tok[17];
};

static int push_common_keys(struct call *c, const char *kind)
{
    return push_key(&c->h->a, c->g->prefix, (struct part[]){str_part(kind)}, 1);
}

/* A command on one key of the key group: `cmd key`; its index. */
static size_t push_key_cmd(struct call *c, const char *cmd, const struct part *parts, int n,
                           int *err)
{
    struct hot_state *h = c->h;
    size_t at = h->n_cmd;
    cmd_begin(h);
    *err |= kpi_argv_str(&h->a, cmd);
    *err |= push_key(&h->a, c->g->prefix, parts, n);
    *err |= cmd_end(h);
    return at;
}

/* HINCRBY meta field n (a count the script keeps there too). */
static int push_meta_incr(struct call *c, const char *field, uint64_t n)
{
    struct hot_state *h = c->h;
    int err = 0;
    cmd_begin(h);
    err |= kpi_argv_str(&h->a, "HINCRBY");
    err |= push_common_keys(c, "meta");
    err |= kpi_argv_str(&h->a, field);
    err |= kpi_argv_i64(&h->a, (int64_t)n);
    err |= cmd_end(h);
    return err;
}

/* The cells of window w in this call's key group: [*lo, *hi) of s->order[w]
 * (none in an idle call, which has no delta). */
static void kg_cells(const struct call *c, int w, uint32_t *lo, uint32_t *hi)
{
    *lo = *hi = 0;
    if (c->d) {
        *lo = c->s->kg_starts[w][c->kg];
        *hi = c->s->kg_starts[w][c->kg + 1];
    }
}

/* WATCH; HMGET offsets; HMGET meta; FUNCTION LIST LIBRARYNAME <the flush function's>. */
static int build_step1(struct call *c)
{
    struct hot_state *h = c->h;
    struct kpi_argv *a = &h->a;
    const struct kpi_windows *ws = c->s->windows;
    int err = 0;
    cmds_reset(h);
    cmd_begin(h);
    err |= kpi_argv_str(a, "WATCH");
    err |= push_common_keys(c, "offsets");
    err |= push_common_keys(c, "meta");
    err |= cmd_end(h);
    cmd_begin(h);
    err |= kpi_argv_str(a, "HMGET");
    err |= push_common_keys(c, "offsets");
    err |= kpi_argv_str(a, "-"); /* no partition is named "-": keeps HMGET valid without ranges */
    for (size_t i = 0; i < c->g->n_sent; i++)
        err |= kpi_argv_str(a, c->g->sent[i].field);
    err |= cmd_end(h);
    cmd_begin(h);
    err |= kpi_argv_str(a, "HMGET");
    err |= push_common_keys(c, "meta");
    err |= kpi_argv_str(a, "since");
    err |= kpi_argv_str(a, "watermark");
    char f[KPI_WINDOW_NAME_MAX + 16];
    for (int w = 0; w < ws->n; w++) {
        snprintf(f, sizeof(f), "head:%s", ws->w[w].id);
        err |= kpi_argv_str(a, f);
        snprintf(f, sizeof(f), "closed:%s", ws->w[w].id);
        err |= kpi_argv_str(a, f);
        snprintf(f, sizeof(f), "first:%s", ws->w[w].id);
        err |= kpi_argv_str(a, f);
    }
    err |= cmd_end(h);
    cmd_begin(h);
    err |= kpi_argv_str(a, "FUNCTION");
    err |= kpi_argv_str(a, "LIST");
    err |= kpi_argv_str(a, "LIBRARYNAME");
    err |= kpi_argv_str(a, c->s->conn.lib_name);
    err |= cmd_end(h);
    return err ? KPI_ERR_NOMEM : 0;
}

static int run(struct call *c, int *sent, int *moved, char *errstr, size_t errsz)
{
    struct hot_state *h = c->h;
    const char **argv = kpi_argv_finish(&h->a);
    if (!argv)
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    if (kpi_rs_grow(&h->rep, &h->rep_cap, h->n_cmd, sizeof(*h->rep), 256))
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    return kpi_redis_conn_pipeline(&c->s->conn, c->g->slot, h->n_cmd, h->argc, argv, h->a.alen,
                                   h->rep, sent, moved, errstr, errsz);
}

static void free_replies(struct hot_state *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (h->rep[i]) {
            freeReplyObject(h->rep[i]);
            h->rep[i] = NULL;
        }
}

/* ---- step 2: candidates ---- */

/* A cell the hot path may write in window w: not before the window's first
 * bucket or the group's `since` (the script moves those marks), not in a
 * closed bucket (an amendment), and inside the current instance or ahead
 * of it (never one that left it). */
static int hot_cell_ok(const struct hw *hw, int64_t b)
{
    return b >= hw->f_old && (hw->c_old == NO_MS || b >= hw->c_old) && (b > hw->H || b >= hw->lo);
}

static int base_members(struct call *c)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    uint32_t n = c->d ? s->hours.n : 0; /* an idle call has no base entries */
    if (kpi_rs_mm_init(&h->base_map, n) ||
        kpi_rs_grow(&h->b_first, &h->b_first_cap, n, sizeof(*h->b_first), 256) ||
        kpi_rs_grow(&h->b_next, &h->b_next_cap, n, sizeof(*h->b_next), 256))
        return KPI_ERR_NOMEM;
    /* backwards, so that each chain runs forwards */
    for (uint32_t i = n; i-- > 0;) {
        const struct kpi_agg_cell *x = &s->hours.cells[i];
        if (kpi_rs_kg_of(s, s->dims, x->set, x->vid) != c->kg)
            continue;
        int added;
        uint32_t k =
            map_get(&h->base_map, (uint64_t)x->set << 32 | x->vid, h->base_map.n + 1, &added);
        h->b_next[i] = added ? UINT32_MAX : h->b_first[k - 1];
        h->b_first[k - 1] = i;
    }
    return 0;
}

/* The first of the value's hourly base cells in this call (UINT32_MAX:
 * none); the next ones through h->b_next. */
static uint32_t base_cells(const struct hot_state *h, uint64_t key)
{
    uint32_t slot, k = kpi_rs_mm_find(&h->base_map, key, &slot);
    return k ? h->b_first[k - 1] : UINT32_MAX;
}

/* The candidates of every window whose head stays, and step 2's reads. */
static int build_step2(struct call *c)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    const struct kpi_windows *ws = s->windows;
    const struct kpi_dims *dims = s->dims;
    struct kpi_argv *a = &h->a;
    int err = 0;
    h->n_hv = h->n_hc = h->n_g = 0;
    uint32_t n_cells = 0, lo, hi;
    for (int w = 0; w < ws->n; w++) {
        kg_cells(c, w, &lo, &hi);
        n_cells += hi - lo + c->g->dirty[w].n;
    }
    if (kpi_rs_mm_init(&h->hv_map, n_cells) || kpi_rs_mm_init(&h->g_map, n_cells) ||
        base_members(c))
        return KPI_ERR_NOMEM;
    /* Values of each window: candidates unless a cell is not plain. */
    for (int w = 0; w < ws->n; w++) {
        const struct hw *hw = &c->win[w];
        if (!hw->hot)
            continue;
        kg_cells(c, w, &lo, &hi);
        for (uint32_t j = lo; j < hi; j++) {
            uint32_t ci = s->order[w][j];
            const struct kpi_agg_cell *cell = &s->roll[w].cells[ci];
            uint64_t key = (uint64_t)cell->set << 32 | cell->vid;
            int added;
            uint32_t v =
                map_get(&h->hv_map, (uint64_t)w << 56 ^ key, (uint32_t)h->n_hv + 1, &added);
            if (added) {
                if (kpi_rs_grow(&h->hv, &h->hv_cap, h->n_hv + 1, sizeof(*h->hv), 256))
                    return KPI_ERR_NOMEM;
                struct hv *x = &h->hv[h->n_hv++];
                memset(x, 0, sizeof(*x));
                x->key = key;
                x->w = w;
                x->first_hc = UINT32_MAX;
            }
            struct hv *x = &h->hv[v - 1];
            if (!hot_cell_ok(hw, cell->bucket))
                x->slow = 1;
            if (cell->bucket <= hw->H && cell->bucket >= hw->lo) {
                x->in_inst = 1;
                for (int q = 0; q < KPI_NCOUNTERS; q++)
                    x->acc[q] += cell->c.v[q]; /* a delta: far from int64's limits */
            }
            if (kpi_rs_grow(&h->hc, &h->hc_cap, h->n_hc + 1, sizeof(*h->hc), 256))
                return KPI_ERR_NOMEM;
            h->hc[h->n_hc] = (struct hc){.w = w, .cell = ci, .hv = v - 1, .next = x->first_hc};
            x->first_hc = (uint32_t)h->n_hc++;
        }
        /* Trailing recounts (sink.c, "Stale `active`"): the key group's
         * stale values without a cell in this call are recounted here too,
         * in a window whose head stays (when it moves, the script recounts
         * over the moved instance).  Those the reads or the sketches rule
         * out stay with the script (demote, write_rolling). */
        if (hw->moving || hw->fresh)
            continue;
        const struct value_list *dl = &c->g->dirty[w];
        for (uint32_t j = 0; j < dl->n; j++) {
            int added;
            map_get(&h->hv_map, (uint64_t)w << 56 ^ dl->v[j], (uint32_t)h->n_hv + 1, &added);
            if (!added)
                continue;
            if (kpi_rs_grow(&h->hv, &h->hv_cap, h->n_hv + 1, sizeof(*h->hv), 256))
                return KPI_ERR_NOMEM;
            struct hv *x = &h->hv[h->n_hv++];
            memset(x, 0, sizeof(*x));
            x->key = dl->v[j];
            x->w = w;
            x->first_hc = UINT32_MAX;
            x->in_inst = x->trail = 1;
        }
    }
    cmds_reset(h);
    for (int w = 0; w < KPI_MAX_WINDOWS; w++)
        for (int k = 0; k < KPI_MAX_SETS; k++)
            h->vt_rep[w][k] = NO_REP;
    /* Reads: per candidate value its rolling hash and base gauge, per
     * (window, set) the type of its leaderboard, per cell its bucket
     * fields and its sketch's TTL. */
    for (size_t i = 0; i < h->n_hv && !err; i++) {
        struct hv *x = &h->hv[i];
        if (x->slow || !x->in_inst)
            continue;
        const char *set = dims->sets[x->key >> 32].name;
        uint32_t vl;
        const char *val = kpi_dims_value_label(dims, (int)(x->key >> 32), (uint32_t)x->key, &vl);
        x->kk_rep = h->n_cmd;
        cmd_begin(h);
        err |= kpi_argv_str(a, "HMGET");
        err |= push_key(
            a, c->g->prefix,
            (struct part[]){str_part("kpi"), str_part(ws->w[x->w].id), str_part(set), {val, vl}},
            4);
        for (int q = 0; q < KPI_NCOUNTERS; q++)
            err |= kpi_argv_str(a, kpi_counter_names[q]);
        err |= kpi_argv_str(a, "active");
        err |= kpi_argv_str(a, "_ms");
        err |= kpi_argv_str(a, "_p");
        err |= cmd_end(h);
        size_t *vt = &h->vt_rep[x->w][x->key >> 32];
        if (*vt == NO_REP)
            *vt = push_key_cmd(
                c, "TYPE",
                (struct part[]){str_part("values"), str_part(ws->w[x->w].id), str_part(set)}, 3,
                &err);
        int added;
        uint32_t gi = map_get(&h->g_map, x->key, (uint32_t)h->n_g + 1, &added);
        if (added) {
            if (kpi_rs_grow(&h->g, &h->g_cap, h->n_g + 1, sizeof(*h->g), 256))
                return KPI_ERR_NOMEM;
            if (h->g_init < h->g_cap) {
                memset(h->g + h->g_init, 0, (h->g_cap - h->g_init) * sizeof(*h->g));
                h->g_init = h->g_cap;
            }
            struct gauge *ga = &h->g[h->n_g++];
            struct hist *hs = ga->hours, *ds = ga->days;
            size_t hc = ga->hours_cap, dc = ga->days_cap;
            *ga = (struct gauge){.key = x->key, .rep = h->n_cmd};
            ga->hours = hs;
            ga->days = ds;
            ga->hours_cap = hc;
            ga->days_cap = dc;
            cmd_begin(h);
            err |= kpi_argv_str(a, "HGETALL");
            err |= push_key(a, c->g->prefix,
                            (struct part[]){str_part("base"), str_part(set), {val, vl}}, 3);
            err |= cmd_end(h);
        }
        x->gauge = gi;
    }
    if (kpi_rs_mm_init(&h->it_map, (uint32_t)h->n_hc) ||
        kpi_rs_grow(&h->it_rep, &h->it_cap, h->n_hc + 1, sizeof(*h->it_rep), 256))
        return KPI_ERR_NOMEM;
    size_t n_it = 0;
    for (size_t i = 0; i < h->n_hc && !err; i++) {
        struct hc *y = &h->hc[i];
        if (h->hv[y->hv].slow)
            continue;
        const struct kpi_agg_cell *cell = &s->roll[y->w].cells[y->cell];
        const char *set = dims->sets[cell->set].name;
        uint32_t vl;
        const char *val = kpi_dims_value_label(dims, (int)cell->set, cell->vid, &vl);
        char b[24];
        snprintf(b, sizeof(b), "%" PRId64, cell->bucket);
        const char *id = ws->w[y->w].id;
        int added;
        map_get(&h->it_map, (uint64_t)y->w << 56 | (uint64_t)cell->bucket, (uint32_t)n_it + 1,
                &added);
        if (added)
            h->it_rep[n_it++] = push_key_cmd(
                c, "TYPE", (struct part[]){str_part("idx"), str_part(id), str_part(b)}, 3, &err);
        y->bk_rep = h->n_cmd;
        cmd_begin(h);
        err |= kpi_argv_str(a, "HMGET");
        err |= push_key(
            a, c->g->prefix,
            (struct part[]){str_part("b"), str_part(id), str_part(set), {val, vl}, str_part(b)}, 5);
        for (int q = 0; q < KPI_NCOUNTERS; q++)
            if (cell->c.v[q])
                err |= kpi_argv_str(a, kpi_counter_names[q]);
        err |= kpi_argv_str(a, "_t");
        err |= cmd_end(h);
    }
    return err ? KPI_ERR_NOMEM : 0;
}

/* ---- the base at a time (flush.lua, base_at) ---- */

struct base {
    int known;
    int64_t v;
    const char *source; /* "snapshot" or "" */
};

static int hist_add(struct hist **l, size_t *n, size_t *cap, int64_t at, int64_t v, int touch)
{
    for (size_t i = 0; i < *n; i++)
        if ((*l)[i].at == at) {
            (*l)[i].v += v;
            (*l)[i].touched |= touch;
            return 0;
        }
    if (kpi_rs_grow(l, cap, *n + 1, sizeof(**l), 64))
        return KPI_ERR_NOMEM;
    (*l)[(*n)++] = (struct hist){at, v, touch};
    return 0;
}

/* The gauge as stored (flush.lua, gauge). */
static int gauge_parse(struct gauge *g, const redisReply *all)
{
    g->n_hours = g->n_days = 0;
    g->ttl_ms = 0;
    if (!all || all->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i + 1 < all->elements; i += 2) {
        const redisReply *f = all->element[i], *v = all->element[i + 1];
        int64_t x = 0;
        if (f->type != REDIS_REPLY_STRING || !parse_i64(v, &x))
            continue;
        if (f->len > 2 && (memcmp(f->str, "n:", 2) == 0 || memcmp(f->str, "d:", 2) == 0)) {
            char buf[24];
            size_t n = f->len - 2 < sizeof(buf) - 1 ? f->len - 2 : sizeof(buf) - 1;
            memcpy(buf, f->str + 2, n);
            buf[n] = '\0';
            int64_t at = strtoll(buf, NULL, 10);
            int err = f->str[0] == 'n' ? hist_add(&g->hours, &g->n_hours, &g->hours_cap, at, x, 0)
                                       : hist_add(&g->days, &g->n_days, &g->days_cap, at, x, 0);
            if (err)
                return err;
        } else if (f->len == 4 && memcmp(f->str, "base", 4) == 0) {
            g->has_base = 1, g->base = x;
        } else if (f->len == 3 && memcmp(f->str, "top", 3) == 0) {
            g->has_top = 1, g->top = x;
        } else if (f->len == 9 && memcmp(f->str, "snap_hour", 9) == 0) {
            g->has_sh = 1, g->sh = x;
        } else if (f->len == 4 && memcmp(f->str, "snap", 4) == 0) {
            g->snap = x;
        } else if (f->len == 3 && memcmp(f->str, "net", 3) == 0) {
            g->net = x;
        } else if (f->len == 3 && memcmp(f->str, "_ms", 3) == 0) {
            g->ttl_ms = x;
        }
    }
    return 0;
}

/* The base of the value at time T: the base now minus the net adds from
 * T's hour on (T's day when the hour left the history). */
static struct base base_at(const struct gauge *g, int64_t T)
{
    struct base r = {0, 0, ""};
    if (!g->has_base)
        return r;
    r.source = "snapshot";
    int64_t hr = T - T % HOUR_MS;
    if (!g->has_top || hr > g->top) {
        r.known = 1;
        r.v = g->base;
        return r;
    }
    int64_t sum = 0;
    if (hr > g->top - KEEP_HOURS * HOUR_MS) {
        for (size_t i = 0; i < g->n_hours; i++)
            if (g->hours[i].at >= hr)
                sum += g->hours[i].v;
    } else {
        int64_t day = T - T % DAY_MS;
        if (day <= g->top - g->top % DAY_MS - KEEP_DAYS * DAY_MS)
            return r; /* beyond the history: unknown */
        for (size_t i = 0; i < g->n_days; i++)
            if (g->days[i].at >= day)
                sum += g->days[i].v;
    }
    r.known = 1;
    r.v = g->base - sum;
    return r;
}

/* The history fields ("n:<hour>", "d:<day>") this call added to, with
 * their new values, as HSET arguments.  What the script's HINCRBYs leave:
 * step 2 read the gauge under WATCH, so its values are still the stored
 * ones at EXEC, and one HSET does what a command per field did. */
static int push_hist(struct kpi_argv *a, const char *kind, const struct hist *l, size_t n)
{
    int err = 0;
    for (size_t i = 0; i < n; i++) {
        if (!l[i].touched)
            continue;
        char f[32];
        snprintf(f, sizeof(f), "%s:%" PRId64, kind, l[i].at);
        err |= kpi_argv_str(a, f);
        err |= kpi_argv_i64(a, l[i].v);
    }
    return err;
}

/* Apply the value's net adds of this call to its gauge, in memory and as
 * commands (flush.lua, apply_base, for entries without a snapshot). */
static int apply_gauge(struct call *c, struct gauge *g, const char *set, const char *val,
                       uint32_t vl)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    struct kpi_argv *a = &h->a;
    struct part bk[] = {str_part("base"), str_part(set), {val, vl}};
    int64_t newtop = g->has_top ? g->top : INT64_MIN;
    uint32_t first = base_cells(h, g->key);
    for (uint32_t i = first; i != UINT32_MAX; i = h->b_next[i])
        if (s->hours.cells[i].bucket > newtop)
            newtop = s->hours.cells[i].bucket;
    int64_t hlo = newtop - (KEEP_HOURS - 1) * HOUR_MS;
    int64_t dlo = newtop - newtop % DAY_MS - (KEEP_DAYS - 1) * DAY_MS;
    int err = 0;
    if (g->has_top && newtop > g->top) { /* prune what left the history */
        size_t start = a->n;
        cmd_begin(h);
        err |= kpi_argv_str(a, "HDEL");
        err |= push_key(a, c->g->prefix, bk, 3);
        char f[32];
        for (int64_t t = g->top - (KEEP_HOURS - 1) * HOUR_MS;
             t <= (g->top < hlo - HOUR_MS ? g->top : hlo - HOUR_MS); t += HOUR_MS) {
            snprintf(f, sizeof(f), "n:%" PRId64, t);
            err |= kpi_argv_str(a, f);
        }
        int64_t tday = g->top - g->top % DAY_MS;
        for (int64_t t = tday - (KEEP_DAYS - 1) * DAY_MS;
             t <= (tday < dlo - DAY_MS ? tday : dlo - DAY_MS); t += DAY_MS) {
            snprintf(f, sizeof(f), "d:%" PRId64, t);
            err |= kpi_argv_str(a, f);
        }
        if (a->n - start > 2)
            err |= cmd_end(h);
        else
            a->n = start;
        size_t k = 0;
        for (size_t i = 0; i < g->n_hours; i++)
            if (g->hours[i].at >= hlo)
                g->hours[k++] = g->hours[i];
        g->n_hours = k;
        k = 0;
        for (size_t i = 0; i < g->n_days; i++)
            if (g->days[i].at >= dlo)
                g->days[k++] = g->days[i];
        g->n_days = k;
    }
    for (uint32_t i = first; i != UINT32_MAX && !err; i = h->b_next[i]) {
        const struct kpi_agg_cell *x = &s->hours.cells[i];
        int64_t net = x->c.activations - x->c.churns;
        if (net == 0)
            continue;
        int64_t d = x->bucket - x->bucket % DAY_MS;
        if (x->bucket >= hlo)
            err |= hist_add(&g->hours, &g->n_hours, &g->hours_cap, x->bucket, net, 1);
        if (d >= dlo)
            err |= hist_add(&g->days, &g->n_days, &g->days_cap, d, net, 1);
        if (g->has_sh && x->bucket >= g->sh)
            g->net += net;
    }
    g->has_top = 1;
    g->top = newtop;
    cmd_begin(h);
    err |= kpi_argv_str(a, "HSET");
    err |= push_key(a, c->g->prefix, bk, 3);
    err |= kpi_argv_str(a, "top");
    err |= kpi_argv_i64(a, newtop);
    if (g->has_sh) {
        g->has_base = 1;
        g->base = g->snap + g->net;
        err |= kpi_argv_str(a, "snap_hour");
        err |= kpi_argv_i64(a, g->sh);
        err |= kpi_argv_str(a, "snap");
        err |= kpi_argv_i64(a, g->snap);
        err |= kpi_argv_str(a, "net");
        err |= kpi_argv_i64(a, g->net);
        err |= kpi_argv_str(a, "base");
        err |= kpi_argv_i64(a, g->base);
    }
    err |= push_hist(a, "n", g->hours, g->n_hours);
    err |= push_hist(a, "d", g->days, g->n_days);
    /* Its TTL (KEEP_DAYS + 1 days) is renewed when `_ms` says the last
     * renewal is an hour old or more, or unknown (a new gauge, or one only
     * the script wrote): a gauge written every second cost one PEXPIRE per
     * flush for nothing.  So it expires between KEEP_DAYS + 1 days less an
     * hour and KEEP_DAYS + 1 days after its last write, and always after
     * the KEEP_DAYS of history it keeps (docs/redis-schema.md, "TTLs"). */
    int renew = g->ttl_ms <= 0 || c->now - g->ttl_ms >= HOUR_MS || c->now < g->ttl_ms;
    if (renew) {
        err |= kpi_argv_str(a, "_ms");
        err |= kpi_argv_i64(a, c->now);
    }
    err |= cmd_end(h);
    if (renew) {
        cmd_begin(h);
        err |= kpi_argv_str(a, "PEXPIRE");
        err |= push_key(a, c->g->prefix, bk, 3);
        err |= kpi_argv_i64(a, (KEEP_DAYS + 1) * DAY_MS);
        err |= cmd_end(h);
        g->ttl_ms = c->now;
    }
    return err ? KPI_ERR_NOMEM : 0;
}

/* Which values' base entries the hot path applies: those without a
 * snapshot whose every window it writes (so it re-derives every rolling
 * hash of the value from the new gauge).  The others' go to the script,
 * which then rewrites the value's KPIs in every window itself. */
static int own_bases(struct call *c)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    const struct kpi_windows *ws = s->windows;
    for (size_t i = 0; i < h->n_g; i++) {
        struct gauge *g = &h->g[i];
        if (gauge_parse(g, h->rep[g->rep]))
            return KPI_ERR_NOMEM;
        uint32_t slot, first = base_cells(h, g->key);
        if (first == UINT32_MAX)
            continue; /* no base entry in this call */
        /* a gauge of another type: the script replaces it (own_type) */
        int own = h->rep[g->rep] && h->rep[g->rep]->type != REDIS_REPLY_ERROR;
        for (uint32_t j = first; j != UINT32_MAX && own; j = h->b_next[j])
            if (s->hours.cells[j].snaps)
                own = 0;
        for (int w = 0; w < ws->n && own; w++) {
            uint32_t v = kpi_rs_mm_find(&h->hv_map, (uint64_t)w << 56 ^ g->key, &slot);
            own = c->win[w].hot && v && !h->hv[v - 1].slow && h->hv[v - 1].in_inst &&
                  !h->hv[v - 1].trail;
        }
        g->own = own;
    }
    return 0;
}

/* ---- step 3: the writes ---- */

static int push_fmt(struct kpi_argv *a, const char *fmt, double x)
{
    char buf[40];
    snprintf(buf, sizeof(buf), fmt, x);
    return kpi_argv_str(a, buf);
}

/* Whether the rolling hash's `active` is due for a recount now (flush.lua:
 * `due`), from its `active` and `_ms` fields. */
static int recount_due(const struct call *c, const struct kpi_window_spec *spec,
                       const redisReply *active, const redisReply *ms, uint64_t key)
{
    int64_t act, last;
    int64_t refresh = c->s->active_refresh_ms;
    if (refresh <= 0 || !parse_i64(active, &act) || !parse_i64(ms, &last))
        return 1;
    double stale = (double)(spec->slide_ms < refresh ? spec->slide_ms : refresh);
    double phase = (double)kpi_rs_member_phase(c->s->dims, (uint32_t)(key >> 32), (uint32_t)key);
    return (double)(c->now - last) >= stale * (1000.0 + phase) / 2000.0;
}

/* Demote candidates the reads show the script must handle. */
static void demote(struct call *c)
{
    struct hot_state *h = c->h;
    const struct kpi_windows *ws = c->s->windows;
    for (size_t i = 0; i < h->n_hv; i++) {
        struct hv *x = &h->hv[i];
        if (x->slow || !x->in_inst)
            continue;
        const redisReply *r = h->rep[x->kk_rep];
        x->rebuild = x->foreign = 0;
        if (is_wrongtype(r) && !x->trail)
            /* another program wrote another type there: replaced by the
             * hash made again from its buckets (flush.lua, own_type) */
            x->rebuild = x->due = x->foreign = 1;
        else if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != KPI_NCOUNTERS + 3)
            x->slow = 1; /* an error reply: let the script meet it */
        else if (x->trail) {
            /* a stale value: recounted whatever its last count (flush.lua:
             * `force`); one whose hash is gone stays with the script */
            x->slow = is_nil(r->element[0]);
            x->due = 1;
        } else if (is_nil(r->element[0]))
            /* missing (new, expired): rebuilt here (step 2b), over the
             * instance as it stands; when the head moves, the script moves
             * it over the rebuilt hash, as over any other */
            x->rebuild = x->due = 1;
        else
            x->due = recount_due(c, &ws->w[x->w], r->element[KPI_NCOUNTERS],
                                 r->element[KPI_NCOUNTERS + 1], x->key);
    }
    for (size_t i = 0; i < h->n_hc; i++) {
        const struct hc *y = &h->hc[i];
        if (h->hv[y->hv].slow)
            continue;
        const redisReply *b = h->rep[y->bk_rep];
        if (!b || b->type != REDIS_REPLY_ARRAY)
            h->hv[y->hv].slow = 1; /* an error reply: let the script meet it */
    }
}

/* ---- step 2b: sketches merged and counted here ---- */

/* The first bucket of a window's instance that can hold data (flush.lua:
 * lo_data): rebuilds and recounts look no further back than `first:`. */
static int64_t lo_data_of(const struct hw *hw)
{
    return hw->lo > hw->f_old ? hw->lo : hw->f_old;
}

/* The TTL of a window's bucket keys, rolling hashes, leaderboards and
 * window sketches (flush.lua: ttl_b and ttl_k), in ms. */
static int64_t window_ttl(const struct redis_sink *s, const struct kpi_window_spec *spec)
{
    return spec->size_ms + spec->slide_ms + s->windows->lateness_ms + s->ttl_margin_ms;
}

/* Windows of more than WS_MIN_BUCKET buckets count through a window sketch. */
static int via_ws(const struct kpi_window_spec *spec)
{
    return spec->size_ms / spec->slide_ms > WS_MIN_BUCKET;
}

/* Whether the bytes this sink cached for cell y's sketch are what Redis
 * holds: the bucket's `_t` is the token of this sink's last write of it. */
static int cache_is_current(struct call *c, const struct hc *y)
{
    struct redis_sink *s = c->s;
    if (s->sketch_cache_bytes <= 0)
        return 0;
    const struct kpi_agg_cell *cell = &s->roll[y->w].cells[y->cell];
    struct kpi_skc_key k = {
        .bucket = cell->bucket, .set = cell->set, .vid = cell->vid, .win = (uint32_t)y->w};
    const struct kpi_skc_entry *e = kpi_skc_find(&s->cache, &k);
    const redisReply *cur = c->h->rep[y->bk_rep];
    const redisReply *t = cur->element[cur->elements - 1];
    char tok[17];
    if (!e || !e->len || t->type != REDIS_REPLY_STRING || t->len != 16)
        return 0;
    kpi_rs_token_hex(tok, e->token);
    return memcmp(t->str, tok, 16) == 0;
}

/* A step 2b read of one key: GET (a sketch), or with counters HMGET of a
 * bucket hash's counters (a rebuild's sum). */
static int push_read(struct hot_state *h, const char *prefix, const struct part *parts, int n,
                     int counters)
{
    if (kpi_rs_grow(&h->gargc, &h->gargc_cap, h->n_grep + 1, sizeof(*h->gargc), 256))
        return KPI_ERR_NOMEM;
    h->gargc[h->n_grep++] = counters ? 2 + KPI_NCOUNTERS : 2;
    int err =
        kpi_argv_str(&h->ga, counters ? "HMGET" : "GET") || push_key(&h->ga, prefix, parts, n);
    for (int q = 0; counters && q < KPI_NCOUNTERS && !err; q++)
        err = kpi_argv_str(&h->ga, kpi_counter_names[q]);
    return err ? KPI_ERR_NOMEM : 0;
}

static int push_get(struct hot_state *h, const char *prefix, const struct part *parts, int n)
{
    return push_read(h, prefix, parts, n, 0);
}

/* `_p`, the buckets not yet merged into the window sketch: 1 when it is a
 * space-separated list of bucket starts (or empty). */
static int pend_ok(const char *p, size_t n)
{
    for (size_t i = 0, run = 0; i < n; i++) {
        if (p[i] == ' ') {
            if (run == 0)
                return 0;
            run = 0;
        } else if (p[i] < '0' || p[i] > '9' || ++run > 18) {
            return 0;
        }
    }
    return n == 0 || p[n - 1] != ' ';
}

/*
 * Step 2b, still under WATCH: the sketches the transaction needs and this
 * sink does not hold.
 *   - A hot cell's bucket sketch that another writer touched since this
 *     sink wrote it (its `_t` is not this sink's token): read, merged with
 *     the delta here and written whole, where PFMERGE would cost Redis
 *     55-75 us (a dense sketch is 16 384 registers to merge).
 *   - A due value's instance: for a window of at most 12 buckets its
 *     bucket sketches, else its window sketch and the buckets of `_p` (or
 *     every bucket when `_p` is "*"), to recount `active` here, as
 *     kpi_hll_count gives exactly what PFCOUNT gives for the same
 *     registers (tests/test_it_hll_redis.c).
 * What WATCH covers makes both exact: every writer of these keys writes
 * `meta`, so what is read here is what EXEC's commands apply to.
 */
static int build_step2b(struct call *c)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    const struct kpi_windows *ws = s->windows;
    const struct kpi_dims *dims = s->dims;
    int err = 0;
    kpi_argv_reset(&h->ga);
    h->n_grep = 0;
    char b[24];
    for (size_t i = 0; i < h->n_hc && !err; i++) {
        struct hc *y = &h->hc[i];
        y->sk_rep = NO_REP;
        y->merged = 0;
        if (h->hv[y->hv].slow || is_nil(h->rep[y->bk_rep]->element[0]) || cache_is_current(c, y))
            continue;
        const struct kpi_agg_cell *cell = &s->roll[y->w].cells[y->cell];
        uint32_t vl;
        const char *val = kpi_dims_value_label(dims, (int)cell->set, cell->vid, &vl);
        snprintf(b, sizeof(b), "%" PRId64, cell->bucket);
        y->sk_rep = h->n_grep;
        err = push_get(h, c->g->prefix,
                       (struct part[]){str_part("h"),
                                       str_part(ws->w[y->w].id),
                                       str_part(dims->sets[cell->set].name),
                                       {val, vl},
                                       str_part(b)},
                       5);
    }
    for (size_t i = 0; i < h->n_hv && !err; i++) {
        struct hv *x = &h->hv[i];
        x->rc_rep = NO_REP;
        x->rc_n = x->rb_n = 0;
        x->rc_ws = 0;
        x->recounted = 0;
        if (x->slow || !x->in_inst || !x->due)
            continue;
        const struct kpi_window_spec *spec = &ws->w[x->w];
        const struct hw *hw = &c->win[x->w];
        const char *set = dims->sets[x->key >> 32].name;
        uint32_t vl;
        const char *val = kpi_dims_value_label(dims, (int)(x->key >> 32), (uint32_t)x->key, &vl);
        if (x->rebuild && !hw->fresh) {
            /* A rebuild sums the counters of every bucket of the instance
             * (flush.lua, step 4: the rolling hash made from its buckets). */
            struct part bk[] = {
                str_part("b"), str_part(spec->id), str_part(set), {val, vl}, {b, 0}};
            x->rb_rep = h->n_grep;
            for (int64_t bb = lo_data_of(hw); bb <= hw->H && !err; bb += spec->slide_ms) {
                bk[4].len = (size_t)snprintf(b, sizeof(b), "%" PRId64, bb);
                err = push_read(h, c->g->prefix, bk, 5, 1);
            }
            x->rb_n = (uint32_t)(h->n_grep - x->rb_rep);
        }
        if (hw->moving)
            continue; /* the script recounts over the moved instance */
        const redisReply *p = kk_field(h, x, KPI_NCOUNTERS + 2);
        size_t plen = p->type == REDIS_REPLY_STRING ? p->len : 0;
        const char *pstr = plen ? p->str : "";
        int all = x->rebuild || !via_ws(spec) || (plen == 1 && pstr[0] == '*');
        if (!all && !pend_ok(pstr, plen))
            continue; /* not ours to read: the script recounts it */
        struct part hk[] = {str_part("h"), str_part(spec->id), str_part(set), {val, vl}, {b, 0}};
        x->rc_rep = h->n_grep;
        if (hw->fresh) {
            /* nothing to read: the instance is this call's cells */
        } else if (all) {
            for (int64_t bb = lo_data_of(hw); bb <= hw->H && !err; bb += spec->slide_ms) {
                hk[4].len = (size_t)snprintf(b, sizeof(b), "%" PRId64, bb);
                err = push_get(h, c->g->prefix, hk, 5);
            }
        } else {
            x->rc_ws = 1;
            err = push_get(
                h, c->g->prefix,
                (struct part[]){str_part("ws"), str_part(spec->id), str_part(set), {val, vl}}, 4);
            for (size_t at = 0; at < plen && !err;) {
                size_t e = at;
                while (e < plen && pstr[e] != ' ')
                    e++;
                hk[4] = (struct part){pstr + at, e - at};
                err = push_get(h, c->g->prefix, hk, 5);
                at = e + 1;
            }
        }
        x->rc_n = (uint32_t)(h->n_grep - x->rc_rep);
    }
    return err ? KPI_ERR_NOMEM : 0;
}

static int run_step2b(struct call *c, int *moved, char *errstr, size_t errsz)
{
    struct hot_state *h = c->h;
    int sent;
    *moved = 0;
    if (h->n_grep == 0)
        return 0;
    const char **argv = kpi_argv_finish(&h->ga);
    if (!argv || kpi_rs_grow(&h->grep, &h->grep_cap, h->n_grep, sizeof(*h->grep), 256))
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    return kpi_redis_conn_pipeline(&c->s->conn, c->g->slot, h->n_grep, h->gargc, argv, h->ga.alen,
                                   h->grep, &sent, moved, errstr, errsz);
}

static void free_step2b(struct hot_state *h)
{
    for (size_t i = 0; i < h->n_grep; i++)
        if (h->grep && h->grep[i]) {
            freeReplyObject(h->grep[i]);
            h->grep[i] = NULL;
        }
    h->n_grep = 0;
}

/* Union into h->acc of step 2b's reply r (a sketch, or nil: none).  0, or
 * -1 for anything else (an error reply, bytes that are not a sketch). */
static int acc_merge_reply(struct call *c, const redisReply *r)
{
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_STRING ||
        kpi_hll_merge_bytes(&c->h->acc, (const uint8_t *)r->str, r->len) != 0)
        return -1;
    return 0;
}

/* Recount x's `active` from step 2b's sketches and this call's cells in
 * the instance (their deltas: what Redis held plus them is what EXEC
 * leaves).  1 when counted, with h->acc the instance's union; 0 when the
 * script must (a sketch that could not be read, a window sketch that
 * expired, a cell whose sketch goes through PFMERGE). */
static int recount_here(struct call *c, const struct hv *x, uint64_t *active)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    const struct hw *hw = &c->win[x->w];
    if (x->rc_rep == NO_REP)
        return 0;
    if (!h->acc_init) {
        kpi_hll_init(&h->acc);
        h->acc_init = 1;
    }
    /* A sketch that turned dense stays dense (engine/hll.c); most unions
     * are small, and a dense one costs 16 KiB to clear, count and
     * serialize whatever it holds: start each recount sparse. */
    if (kpi_hll_memory(&h->acc) >= KPI_HLL_REGISTERS)
        kpi_hll_fini(&h->acc);
    kpi_hll_reset(&h->acc);
    if (x->rc_ws && h->grep[x->rc_rep]->type == REDIS_REPLY_NIL)
        return 0; /* the window sketch expired: the script rebuilds it */
    for (uint32_t i = 0; i < x->rc_n; i++)
        if (acc_merge_reply(c, h->grep[x->rc_rep + i]))
            return 0;
    int64_t lo = lo_data_of(hw);
    for (uint32_t i = x->first_hc; i != UINT32_MAX; i = h->hc[i].next) {
        const struct hc *y = &h->hc[i];
        const struct kpi_agg_cell *cell = &s->roll[y->w].cells[y->cell];
        if (cell->bucket < lo || cell->bucket > hw->H)
            continue;
        if (y->merged || kpi_hll_merge(&h->acc, &cell->hll) != 0)
            return 0;
    }
    *active = kpi_hll_count(&h->acc);
    return 1;
}

/* flush.lua sets meta `since` from its own cells: the latest over windows
 * of each window's earliest bucket, when that is before `since`.  Without
 * the hot cells it must come to the same answer as with all of them, else
 * the hot path stands down (a group's first flushes). */
static int64_t call_start(const struct call *c, int all)
{
    const struct redis_sink *s = c->s;
    int64_t call = NO_MS;
    for (int w = 0; w < s->windows->n; w++) {
        int64_t lo_w = NO_MS;
        uint32_t lo, hi;
        kg_cells(c, w, &lo, &hi);
        for (uint32_t j = lo; j < hi; j++) {
            uint32_t ci = s->order[w][j];
            if (!all && s->hot[w][ci])
                continue;
            int64_t b = s->roll[w].cells[ci].bucket;
            if (lo_w == NO_MS || b < lo_w)
                lo_w = b;
        }
        if (lo_w != NO_MS && (call == NO_MS || lo_w > call))
            call = lo_w;
    }
    return call;
}

static int since_differs(const struct call *c)
{
    int64_t all = call_start(c, 1), rest = call_start(c, 0);
    int moves = all != NO_MS && all < c->since;
    int moves_rest = rest != NO_MS && rest < c->since;
    return moves != moves_rest || (moves && all != rest);
}

/* The marks of the fresh windows (head, `first:`) and a new group's
 * `since`, first in the transaction: the script, after the hot writes,
 * finds them as it would have set them, and moves nothing over the
 * values made here (flush.lua, steps 2 and 6, and `since`). */
static int write_marks(struct call *c)
{
    struct hot_state *h = c->h;
    struct kpi_argv *a = &h->a;
    const struct kpi_windows *ws = c->s->windows;
    size_t start = a->n;
    int err = 0;
    cmd_begin(h);
    err |= kpi_argv_str(a, "HSET");
    err |= push_common_keys(c, "meta");
    char f[KPI_WINDOW_NAME_MAX + 16];
    for (int w = 0; w < ws->n; w++) {
        if (!c->win[w].fresh)
            continue;
        snprintf(f, sizeof(f), "head:%s", ws->w[w].id);
        err |= kpi_argv_str(a, f);
        err |= kpi_argv_i64(a, c->win[w].H);
        snprintf(f, sizeof(f), "first:%s", ws->w[w].id);
        err |= kpi_argv_str(a, f);
        err |= kpi_argv_i64(a, c->win[w].f_old);
    }
    if (c->write_since) {
        err |= kpi_argv_str(a, "since");
        err |= kpi_argv_i64(a, c->since);
    }
    if (a->n - start > 2)
        err |= cmd_end(h);
    else
        a->n = start; /* nothing to set */
    return err ? KPI_ERR_NOMEM : 0;
}

static int write_cell(struct call *c, struct hc *y, uint64_t *saturated)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    struct kpi_argv *a = &h->a;
    const struct kpi_windows *ws = s->windows;
    const struct kpi_window_spec *spec = &ws->w[y->w];
    const struct kpi_agg_cell *cell = &s->roll[y->w].cells[y->cell];
    const char *set = s->dims->sets[cell->set].name;
    uint32_t vl;
    const char *val = kpi_dims_value_label(s->dims, (int)cell->set, cell->vid, &vl);
    char b[24], ttl[24];
    snprintf(b, sizeof(b), "%" PRId64, cell->bucket);
    int64_t ttl_b = window_ttl(s, spec);
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_b);
    const redisReply *cur = h->rep[y->bk_rep];
    int is_new = is_nil(cur->element[0]);
    struct part bk[] = {str_part("b"), str_part(spec->id), str_part(set), {val, vl}, str_part(b)};
    struct part hk[] = {str_part("h"), str_part(spec->id), str_part(set), {val, vl}, str_part(b)};
    int err = 0;
    cmd_begin(h);
    err |= kpi_argv_str(a, "HSET");
    err |= push_key(a, c->g->prefix, bk, 5);
    size_t q = 0;
    for (int i = 0; i < KPI_NCOUNTERS; i++) {
        if (!cell->c.v[i])
            continue;
        int64_t was = 0, v = cell->c.v[i];
        if (parse_i64(cur->element[q], &was))
            v = sat_add(was, v, saturated);
        q++;
        err |= kpi_argv_str(a, kpi_counter_names[i]);
        err |= kpi_argv_i64(a, v);
    }
    err |= kpi_argv_str(a, "_t");
    err |= kpi_argv_str(a, c->tok);
    err |= cmd_end(h);
    if (is_new) {
        cmd_begin(h);
        err |= kpi_argv_str(a, "PEXPIRE");
        err |= push_key(a, c->g->prefix, bk, 5);
        err |= kpi_argv_str(a, ttl);
        err |= cmd_end(h);
    }
    /* The sketch: SET when what Redis holds is known (this sink wrote it
     * last, or there is none), else PFMERGE (flush.lua, step 3). */
    if (kpi_rs_grow(&h->refs, &h->refs_cap, h->n_refs + 1, sizeof(*h->refs), 256) ||
        kpi_rs_grow(&h->exact, &h->exact_cap, h->n_refs + 1, 1, 256))
        return KPI_ERR_NOMEM;
    struct group_ref *gr = &h->refs[h->n_refs];
    gr->key = (struct kpi_skc_key){
        .bucket = cell->bucket, .set = cell->set, .vid = cell->vid, .win = (uint32_t)y->w};
    /* kpi_rs_push_sketch pushes the expected token, then the bytes. */
    struct kpi_argv *sk = &h->sk;
    kpi_argv_reset(sk);
    if ((err = kpi_rs_push_sketch(s, sk, gr, &cell->hll)))
        return err;
    const redisReply *t = cur->element[cur->elements - 1];
    int tok_ok = sk->alen[0] > 0 && t->type == REDIS_REPLY_STRING && t->len == sk->alen[0] &&
                 memcmp(t->str, sk->buf + sk->off[0], t->len) == 0;
    const char *bytes = sk->buf + sk->off[1];
    size_t n_bytes = sk->alen[1];
    /* What Redis holds is known when this sink wrote it last (tok_ok) or
     * the bucket is new: SET (a key that expired meanwhile gets its TTL
     * back from PEXPIRE NX).  Else another writer added to it: step 2b
     * read it, and what Redis holds plus the delta is SET whole (a missing
     * sketch is created with the bucket's TTL).  Only when that read
     * failed, PFMERGE, which also creates a missing key from the delta. */
    int exact = tok_ok || is_new;
    if (!exact && y->sk_rep != NO_REP) {
        const redisReply *g = h->grep[y->sk_rep];
        size_t len = 0;
        if (g->type == REDIS_REPLY_NIL) {
            len =
                kpi_hll_serialize(&cell->hll, s->sk_buf, KPI_HLL_DENSE_SIZE, KPI_REDIS_SPARSE_MAX);
            is_new = 1; /* SET ... PX */
        } else if (g->type == REDIS_REPLY_STRING &&
                   kpi_hll_deserialize(&s->scratch, (const uint8_t *)g->str, g->len) == 0 &&
                   kpi_hll_merge(&s->scratch, &cell->hll) == 0) {
            len =
                kpi_hll_serialize(&s->scratch, s->sk_buf, KPI_HLL_DENSE_SIZE, KPI_REDIS_SPARSE_MAX);
        }
        if (len > 0) {
            bytes = (const char *)s->sk_buf;
            n_bytes = len;
            exact = 1;
            h->reads++;
        }
    }
    cmd_begin(h);
    err |= kpi_argv_str(a, "SET");
    if (exact)
        err |= push_key(a, c->g->prefix, hk, 5);
    else
        err |= push_common_keys(c, "tmp");
    gr->arg = a->n;
    err |= kpi_argv_push(a, bytes, n_bytes);
    if (is_new && !tok_ok) {
        err |= kpi_argv_str(a, "PX");
        err |= kpi_argv_str(a, ttl);
    } else if (exact) {
        err |= kpi_argv_str(a, "KEEPTTL");
    }
    err |= cmd_end(h);
    if (!exact) {
        y->merged = 1;
        if (kpi_rs_grow(&h->merge_cmd, &h->merge_cap, h->n_merge + 1, sizeof(*h->merge_cmd), 64))
            return KPI_ERR_NOMEM;
        h->merge_cmd[h->n_merge++] = h->n_cmd;
        cmd_begin(h);
        err |= kpi_argv_str(a, "PFMERGE");
        err |= push_key(a, c->g->prefix, hk, 5);
        err |= push_common_keys(c, "tmp");
        err |= cmd_end(h);
    }
    /* A sketch SET with KEEPTTL gets its TTL back (NX) if it expired or
     * was removed meanwhile: when another writer had it, or PFMERGE made
     * it.  Not when this sink wrote it last (tok_ok): step 2 read the
     * bucket hash holding this sink's token, and the two were made in one
     * transaction with the same TTL, the sketch's set after the hash's, so
     * the sketch lives at least as long; the one window left is the
     * hash's own (it expiring between step 2 and EXEC), where the HSET above
     * also makes a hash without a TTL (docs/redis-schema.md, "TTLs").
     * That PEXPIRE was one command in seven of a flush. */
    if (!tok_ok && !is_new) {
        cmd_begin(h);
        err |= kpi_argv_str(a, "PEXPIRE");
        err |= push_key(a, c->g->prefix, hk, 5);
        err |= kpi_argv_str(a, ttl);
        err |= kpi_argv_str(a, "NX");
        err |= cmd_end(h);
    }
    h->exact[h->n_refs++] = (uint8_t)exact;
    return err ? KPI_ERR_NOMEM : 0;
}

/* The rolling hash of a candidate value: its counters plus this call's
 * cells inside the instance, the KPIs derived again (with the `active` it
 * holds: not due), `_p`; and its score in values:. */
static int write_rolling(struct call *c, struct hv *x, uint64_t *saturated)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    struct kpi_argv *a = &h->a;
    const struct kpi_windows *ws = s->windows;
    const struct kpi_window_spec *spec = &ws->w[x->w];
    const struct hw *hw = &c->win[x->w];
    const char *set = s->dims->sets[x->key >> 32].name;
    uint32_t vl;
    const char *val = kpi_dims_value_label(s->dims, (int)(x->key >> 32), (uint32_t)x->key, &vl);
    struct kpi_counters cn;
    int err = 0;
    struct part kk[] = {str_part("kpi"), str_part(spec->id), str_part(set), {val, vl}};
    int64_t active = 0;
    parse_i64(kk_field(h, x, KPI_NCOUNTERS), &active);
    uint64_t counted;
    if (x->due && recount_here(c, x, &counted)) {
        active = (int64_t)counted;
        x->recounted = 1;
        x->due = 0;
        h->recounts++;
    } else if (x->trail) {
        x->slow = 1; /* not counted here: nothing to write, the script recounts it */
        return 0;
    }
    int64_t was[KPI_NCOUNTERS];
    for (int i = 0; i < KPI_NCOUNTERS; i++) {
        was[i] = 0;
        parse_i64(kk_field(h, x, (size_t)i), &was[i]);
    }
    if (x->rebuild) {
        /* Made from the instance's buckets as Redis holds them, plus this
         * call's cells (flush.lua, step 4, rebuilt): every counter written,
         * zeros included, over whatever the key held. */
        for (uint32_t k = 0; k < x->rb_n; k++) {
            const redisReply *r = h->grep[x->rb_rep + k];
            for (int i = 0;
                 i < KPI_NCOUNTERS && r->type == REDIS_REPLY_ARRAY && r->elements == KPI_NCOUNTERS;
                 i++) {
                int64_t v;
                if (parse_i64(r->element[i], &v))
                    was[i] = sat_add(was[i], v, saturated);
            }
        }
        if (!hw->fresh || x->foreign) { /* a fresh window has no hash to clear */
            push_key_cmd(c, "DEL", kk, 4, &err);
            h->replaced += (uint64_t)x->foreign;
        }
        h->rebuilds++;
    }
    cmd_begin(h);
    err |= kpi_argv_str(a, "HSET");
    err |= push_key(a, c->g->prefix, kk, 4);
    for (int i = 0; i < KPI_NCOUNTERS; i++) {
        cn.v[i] = x->acc[i] ? sat_add(was[i], x->acc[i], saturated) : was[i];
        if (x->acc[i] || x->rebuild) {
            err |= kpi_argv_str(a, kpi_counter_names[i]);
            err |= kpi_argv_i64(a, cn.v[i]);
        }
    }
    /* The span of the monthly KPIs (flush.lua, step 4), over the instance
     * as the script leaves it: the head moved. */
    int64_t lo_data = hw->lon > hw->f_old ? hw->lon : hw->f_old;
    int64_t start = c->since > lo_data ? c->since : lo_data;
    int64_t stop = hw->Hn + spec->slide_ms;
    if (c->clock_max != NO_MS && c->clock_max < stop)
        stop = c->clock_max;
    int64_t floor_ms = spec->slide_ms < 60000 ? spec->slide_ms : 60000;
    int64_t span = stop - start > floor_ms ? stop - start : floor_ms;
    struct base base = base_at(&h->g[x->gauge - 1], start);
    struct kpi_values v;
    kpi_values_compute_base(&v, &cn, (uint64_t)(active > 0 ? active : 0), base.known,
                            (double)base.v, span);
    for (int i = 0; i < KPI_NDERIVED; i++) {
        err |= kpi_argv_str(a, kpi_derived_defs[i].name);
        err |= v.has[i] ? push_fmt(a, "%.10g", v.derived[i]) : kpi_argv_str(a, "");
    }
    err |= kpi_argv_str(a, "base");
    if (base.known)
        err |= kpi_argv_i64(a, base.v);
    else
        err |= kpi_argv_str(a, "");
    err |= kpi_argv_str(a, "base_source");
    err |= kpi_argv_str(a, base.source);
    /* _p: the buckets to merge into the window sketch at the next recount. */
    err |= kpi_argv_str(a, "_p");
    const redisReply *p = kk_field(h, x, KPI_NCOUNTERS + 2);
    size_t plen = p->type == REDIS_REPLY_STRING ? p->len : 0;
    int ws_window = via_ws(spec);
    if (x->recounted) {
        /* counted here: `_ms` and an empty `_p` (flush.lua, step 4) */
        err |= kpi_argv_str(a, "");
        err |= kpi_argv_str(a, "active");
        err |= kpi_argv_i64(a, active);
        err |= kpi_argv_str(a, "_ms");
        err |= kpi_argv_i64(a, c->now);
    } else if (x->rebuild) {
        /* not counted here: the script recounts it (due), from every bucket */
        err |= kpi_argv_str(a, ws_window ? "*" : "");
    } else if (!ws_window || (plen == 1 && p->str[0] == '*')) {
        err |= kpi_argv_push(a, plen ? p->str : "", plen);
    } else {
        size_t n_own = 0;
        for (uint32_t i = x->first_hc; i != UINT32_MAX; i = h->hc[i].next)
            n_own++;
        size_t cap = plen + 1 + 24 * n_own;
        char *o = malloc(cap + 1);
        if (!o)
            return KPI_ERR_NOMEM;
        memcpy(o, plen ? p->str : "", plen);
        o[plen] = '\0';
        size_t at = plen;
        for (uint32_t i = x->first_hc; i != UINT32_MAX; i = h->hc[i].next) {
            const struct hc *y = &h->hc[i];
            int64_t bb = s->roll[y->w].cells[y->cell].bucket;
            if (bb < hw->lo || bb > hw->H)
                continue;
            char sb[24];
            int n = snprintf(sb, sizeof(sb), "%" PRId64, bb);
            /* already listed?  The list is space-separated. */
            int present = 0;
            for (size_t k = 0; k + (size_t)n <= at && !present; k++)
                present = (k == 0 || o[k - 1] == ' ') && memcmp(o + k, sb, (size_t)n) == 0 &&
                          (k + (size_t)n == at || o[k + (size_t)n] == ' ');
            if (present)
                continue;
            if (at > 0)
                o[at++] = ' ';
            memcpy(o + at, sb, (size_t)n);
            at += (size_t)n;
        }
        err |= kpi_argv_push(a, o, at);
        free(o);
    }
    err |= cmd_end(h);
    x->events = cn.v[KPI_CI_events];
    if (x->recounted) {
        /* the hash's TTL renewed, and the window sketch written whole */
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%" PRId64, window_ttl(s, spec));
        cmd_begin(h);
        err |= kpi_argv_str(a, "PEXPIRE");
        err |= push_key(a, c->g->prefix, kk, 4);
        err |= kpi_argv_str(a, ttl);
        err |= cmd_end(h);
        if (ws_window) {
            size_t len =
                kpi_hll_serialize(&h->acc, s->sk_buf, KPI_HLL_DENSE_SIZE, KPI_REDIS_SPARSE_MAX);
            if (len == 0)
                return KPI_ERR_STATE;
            cmd_begin(h);
            err |= kpi_argv_str(a, "SET");
            err |= push_key(
                a, c->g->prefix,
                (struct part[]){str_part("ws"), str_part(spec->id), str_part(set), {val, vl}}, 4);
            err |= kpi_argv_push(a, s->sk_buf, len);
            err |= kpi_argv_str(a, "PX");
            err |= kpi_argv_str(a, ttl);
            err |= cmd_end(h);
        }
    }
    return err ? KPI_ERR_NOMEM : 0;
}

/* The idx sets of the hot cells' buckets and the leaderboards of the hot
 * values: one SADD per (window, bucket) and one ZADD per (window, set), as
 * flush.lua batches them. */
static int group_add(struct hot_state *h, uint64_t key, uint32_t item, uint32_t *next)
{
    int added;
    uint32_t g = map_get(&h->grp_map, key, (uint32_t)h->n_grp + 1, &added);
    if (added) {
        if (kpi_rs_grow(&h->grp, &h->grp_cap, h->n_grp + 1, sizeof(*h->grp), 256))
            return KPI_ERR_NOMEM;
        h->grp[h->n_grp++] = UINT32_MAX;
    }
    *next = h->grp[g - 1];
    h->grp[g - 1] = item;
    return 0;
}

static int write_sets(struct call *c)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    struct kpi_argv *a = &h->a;
    const struct kpi_windows *ws = s->windows;
    const struct kpi_dims *dims = s->dims;
    int err = 0;
    if (kpi_rs_mm_init(&h->grp_map, (uint32_t)h->n_hc))
        return KPI_ERR_NOMEM;
    h->n_grp = 0;
    for (size_t i = 0; i < h->n_hc && !err; i++) {
        struct hc *y = &h->hc[i];
        if (!h->hv[y->hv].slow)
            err = group_add(h, (uint64_t)y->w << 56 | (uint64_t)s->roll[y->w].cells[y->cell].bucket,
                            (uint32_t)i, &y->inext);
    }
    for (size_t gi = 0; gi < h->n_grp && !err; gi++) {
        const struct hc *y0 = &h->hc[h->grp[gi]];
        const struct kpi_window_spec *spec = &ws->w[y0->w];
        char b[24], ttl[24];
        snprintf(b, sizeof(b), "%" PRId64, s->roll[y0->w].cells[y0->cell].bucket);
        snprintf(ttl, sizeof(ttl), "%" PRId64, window_ttl(s, spec) + spec->size_ms);
        struct part ik[] = {str_part("idx"), str_part(spec->id), str_part(b)};
        uint32_t slot;
        uint32_t it = kpi_rs_mm_find(
            &h->it_map, (uint64_t)y0->w << 56 | (uint64_t)s->roll[y0->w].cells[y0->cell].bucket,
            &slot);
        if (it && is_foreign(h->rep[h->it_rep[it - 1]], "set")) {
            push_key_cmd(c, "DEL", ik, 3, &err);
            h->replaced++;
        }
        cmd_begin(h);
        err |= kpi_argv_str(a, "SADD");
        err |= push_key(a, c->g->prefix, ik, 3);
        for (uint32_t i = h->grp[gi]; i != UINT32_MAX; i = h->hc[i].inext) {
            const struct kpi_agg_cell *cell = &s->roll[h->hc[i].w].cells[h->hc[i].cell];
            uint32_t vl;
            const char *val = kpi_dims_value_label(dims, (int)cell->set, cell->vid, &vl);
            err |= push_key(a, "", (struct part[]){str_part(dims->sets[cell->set].name), {val, vl}},
                            2);
        }
        err |= cmd_end(h);
        cmd_begin(h);
        err |= kpi_argv_str(a, "PEXPIRE");
        err |= push_key(a, c->g->prefix, ik, 3);
        err |= kpi_argv_str(a, ttl);
        err |= cmd_end(h);
    }
    if (err || kpi_rs_mm_init(&h->grp_map, (uint32_t)h->n_hv))
        return KPI_ERR_NOMEM;
    h->n_grp = 0;
    for (size_t i = 0; i < h->n_hv && !err; i++) {
        struct hv *x = &h->hv[i];
        if (!x->slow && x->in_inst)
            err = group_add(h, (uint64_t)x->w << 56 | (x->key >> 32), (uint32_t)i, &x->znext);
    }
    for (size_t gi = 0; gi < h->n_grp && !err; gi++) {
        const struct hv *x0 = &h->hv[h->grp[gi]];
        const struct kpi_window_spec *spec = &ws->w[x0->w];
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%" PRId64, window_ttl(s, spec));
        struct part vk[] = {str_part("values"), str_part(spec->id),
                            str_part(dims->sets[x0->key >> 32].name)};
        size_t vt = h->vt_rep[x0->w][x0->key >> 32];
        if (vt != NO_REP && is_foreign(h->rep[vt], "zset")) {
            /* another program wrote another type there: replaced
             * (flush.lua, own_type) */
            push_key_cmd(c, "DEL", vk, 3, &err);
            h->replaced++;
        }
        cmd_begin(h);
        err |= kpi_argv_str(a, "ZADD");
        err |= push_key(a, c->g->prefix, vk, 3);
        for (uint32_t i = h->grp[gi]; i != UINT32_MAX; i = h->hv[i].znext) {
            uint32_t vl;
            const char *val =
                kpi_dims_value_label(dims, (int)(h->hv[i].key >> 32), (uint32_t)h->hv[i].key, &vl);
            err |= kpi_argv_i64(a, h->hv[i].events);
            err |= kpi_argv_push(a, val, vl);
        }
        err |= cmd_end(h);
        cmd_begin(h);
        err |= kpi_argv_str(a, "PEXPIRE");
        err |= push_key(a, c->g->prefix, vk, 3);
        err |= kpi_argv_str(a, ttl);
        err |= cmd_end(h);
    }
    return err ? KPI_ERR_NOMEM : 0;
}

/* ---- the call ---- */

static void unwatch(struct call *c)
{
    const char *argv[] = {"UNWATCH"};
    size_t lens[] = {7};
    redisReply *r = NULL;
    int sent;
    char e[64];
    if (kpi_redis_conn_command(&c->s->conn, c->g->slot, 1, argv, lens, &r, &sent, e, sizeof(e)) ==
        0)
        freeReplyObject(r);
}

/* Transactions refused by the Redis user's ACL (MULTI or EXEC: NOPERM):
 * the script alone is exact too, so use it from now on.  What = the
 * refused command's reply, for the log. */
static void transactions_refused(struct call *c, const char *what, size_t len)
{
    kpi_log(KPI_LOG_WARN, "redis",
            "%s: the Redis user may not use transactions (%.*s): the hot path is off, every "
            "flush goes through the script alone; allow +@transaction (scripts/redis-acl.sh)",
            c->s->url, (int)len, what);
    c->s->hot_on = 0;
    c->s->conn.multi_refused = 1;
}

/* Step 1's replies: the fence (HOT_DONE with *err for a replay or a
 * conflict), the marks.  -1: go on. */
static int take_step1(struct call *c, int *err, char *errstr, size_t errsz)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    const struct kpi_windows *ws = s->windows;
    const redisReply *watch = h->rep[0];
    static const char refused[] = "NOPERM: MULTI or EXEC refused";
    int no_watch = watch->type == REDIS_REPLY_ERROR && strncmp(watch->str, "NOPERM", 6) == 0;
    if (no_watch || s->conn.multi_refused) {
        /* An ACL without @transaction (an older scripts/redis-acl.sh), or
         * one that allows WATCH but not MULTI or EXEC (the connection's
         * probe, conn.h): the script alone is exact too, so use it from now
         * on. */
        transactions_refused(c, no_watch ? watch->str : refused,
                             no_watch ? watch->len : strlen(refused));
        if (!no_watch)
            unwatch(c);
        return HOT_FALLBACK;
    }
    for (size_t i = 0; i < 3; i++) {
        const redisReply *x = h->rep[i];
        if (x->type != REDIS_REPLY_ERROR)
            continue;
        if (kpi_redis_is_transient(x->str)) {
            *err = kpi_rs_reply_error(s, x, errstr, errsz, "WATCH/HMGET");
        } else {
            /* WRONGTYPE and the like: not something a retry cures.  Nothing
             * of this flush was written to the key group; stop, as the
             * script path does. */
            s->stats.io_errors++;
            *err = kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT,
                              "redis %s: key group %s: reading its offsets and marks failed: "
                              "%.*s; stopping (nothing of this flush was written to it)",
                              s->url, c->g->prefix, (int)x->len, x->str);
        }
        unwatch(c);
        return HOT_DONE;
    }
    const redisReply *off = h->rep[1], *meta = h->rep[2], *ex = h->rep[3];
    if (off->type != REDIS_REPLY_ARRAY || off->elements != c->g->n_sent + 1 ||
        meta->type != REDIS_REPLY_ARRAY || meta->elements != 2 + 3 * (size_t)ws->n) {
        *err = kpi_rs_reply_error(s, NULL, errstr, errsz, "unexpected HMGET reply");
        return HOT_DONE;
    }
    if (ex->type != REDIS_REPLY_ARRAY || ex->elements == 0) {
        kpi_redis_conn_drop(&s->conn); /* reconnecting loads the function */
        return HOT_RETRY;
    }
    /* The fence, as flush.lua step 1: all at `from` (or none) -> apply; all
     * at `to` -> a replay; else a conflict. */
    int apply = 1, dup = 1;
    size_t bad = SIZE_MAX;
    for (size_t i = 0; i < c->g->n_sent; i++) {
        const struct sent_range *sr = &c->g->sent[i];
        const redisReply *x = off->element[i + 1];
        int64_t v = 0;
        int has = !is_nil(x), num = has && parse_i64(x, &v);
        int a = !has || (num && v == sr->from);
        int d = num && v == sr->to;
        apply &= a;
        dup &= d;
        if (!a && bad == SIZE_MAX)
            bad = i;
    }
    if (!apply) {
        unwatch(c);
        if (dup) {
            s->stats.replays++;
            *err = 0;
            return HOT_DONE;
        }
        const struct sent_range *sr = &c->g->sent[bad];
        const redisReply *x = off->element[bad + 1];
        s->stats.conflicts++;
        *err = kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT,
                          "redis: partition %s: key group %s stored offset '%.*s', this delta "
                          "covers [%" PRId64 ", %" PRId64 "): another instance owns it",
                          sr->field, c->g->prefix, x->type == REDIS_REPLY_STRING ? (int)x->len : 0,
                          x->type == REDIS_REPLY_STRING ? x->str : "", sr->from, sr->to);
        return HOT_DONE;
    }
    int64_t wm = c->d ? c->d->watermark : INT64_MIN; /* idle: the watermark in meta */
    c->has_since = parse_i64(meta->element[0], &c->since);
    c->write_since = 0;
    int64_t mw;
    if (!parse_i64(meta->element[1], &mw) || (wm != INT64_MIN && wm > mw))
        mw = wm;
    c->clock_max = mw == INT64_MIN ? NO_MS : mw + ws->lateness_ms;
    int marked = 0;
    for (int w = 0; w < ws->n; w++) {
        struct hw *hw = &c->win[w];
        const struct kpi_window_spec *spec = &ws->w[w];
        int has_h = parse_i64(meta->element[2 + 3 * w], &hw->h_old);
        if (!parse_i64(meta->element[3 + 3 * w], &hw->c_old))
            hw->c_old = NO_MS;
        int has_f = parse_i64(meta->element[4 + 3 * w], &hw->f_old);
        marked |= has_h || has_f;
        hw->H = hw->Hn = has_h ? hw->h_old : NO_MS;
        if (wm != INT64_MIN && wm + ws->lateness_ms >= 0) {
            int64_t hc = kpi_bucket_start(wm + ws->lateness_ms, spec->slide_ms);
            if (hw->Hn == NO_MS || hc > hw->Hn)
                hw->Hn = hc;
        }
        hw->hot = c->has_since && has_h && has_f;
        hw->fresh = !has_h && !has_f && hw->Hn != NO_MS;
        if (hw->fresh) {
            /* the hot path sets the head: its instance is the new one, and
             * `first:` is this call's earliest cell of the window */
            hw->H = hw->Hn;
            hw->f_old = NO_MS;
            uint32_t lo, hi;
            kg_cells(c, w, &lo, &hi);
            for (uint32_t j = lo; j < hi; j++) {
                int64_t b = s->roll[w].cells[s->order[w][j]].bucket;
                if (hw->f_old == NO_MS || b < hw->f_old)
                    hw->f_old = b;
            }
            hw->hot = hw->f_old != NO_MS;
            hw->fresh = hw->hot;
        }
        hw->moving = hw->Hn != hw->H;
        hw->lo = hw->H == NO_MS ? NO_MS : hw->H - spec->size_ms + spec->slide_ms;
        hw->lon = hw->Hn == NO_MS ? NO_MS : hw->Hn - spec->size_ms + spec->slide_ms;
    }
    /* A key group without `since` is new only if no window has marks:
     * else (a group older than `since`) the script alone sets it. */
    if (!c->has_since && marked)
        for (int w = 0; w < ws->n; w++)
            c->win[w].hot = c->win[w].fresh = 0;
    return -1;
}

/* Append the script call (s->args, built without the hot cells) to the
 * transaction as one command. */
static int push_script(struct call *c)
{
    struct redis_sink *s = c->s;
    s->hot_marking = 1;
    int err = kpi_rs_build_args(s, c->kg, c->d);
    s->hot_marking = 0;
    if (err)
        return err;
    s->stats.last_args_bytes = s->args.len;
    cmd_begin(c->h);
    for (size_t i = 0; i < s->args.n && !err; i++)
        err |= kpi_argv_push(&c->h->a, s->args.buf + s->args.off[i], s->args.alen[i]);
    err |= cmd_end(c->h);
    return err ? KPI_ERR_NOMEM : 0;
}

/* The transaction's replies.  *retry: read again (WATCH failed, or a
 * queued command was MOVED); *fallback: EXEC was refused by the ACL (the
 * transaction was discarded whole), the script alone takes the flush. */
static int take_exec(struct call *c, size_t n_cmd, int *retry, int *fallback, char *errstr,
                     size_t errsz)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    const redisReply *x = h->rep[n_cmd - 1];
    *retry = *fallback = 0;
    if (x->type == REDIS_REPLY_NIL) {
        s->stats.txn_retries++; /* another writer came first: read again */
        *retry = 1;
        return 0;
    }
    if (x->type == REDIS_REPLY_ERROR && strstr(x->str, "NOPERM") &&
        strstr(x->str, "'exec' command")) {
        /* EXECABORT: an ACL changed since the connection's probe */
        transactions_refused(c, x->str, x->len);
        *fallback = 1;
        return 0;
    }
    if (x->type == REDIS_REPLY_ERROR) { /* refused whole: EXECABORT, OOM, READONLY, ... */
        /* EXECABORT names no cause ("previous errors"): the first queued
         * command Redis refused does (NOPERM for an FCALL the ACL denies,
         * a wrong argument count, ...), and that is what the operator and
         * the error counters need. */
        if (strncmp(x->str, "EXECABORT", 9) == 0)
            for (size_t i = 1; i + 1 < n_cmd; i++)
                if (h->rep[i] && h->rep[i]->type == REDIS_REPLY_ERROR)
                    return kpi_rs_reply_error(s, h->rep[i], errstr, errsz, "EXEC (queueing)");
        return kpi_rs_reply_error(s, x, errstr, errsz, "EXEC");
    }
    if (x->type != REDIS_REPLY_ARRAY || x->elements != n_cmd - 2)
        return kpi_rs_reply_error(s, NULL, errstr, errsz, "unexpected EXEC reply");
    size_t m = 0;
    for (size_t i = 0; i + 1 < x->elements; i++) {
        const redisReply *e = x->element[i];
        if (e->type != REDIS_REPLY_ERROR)
            continue;
        while (m < h->n_merge && h->merge_cmd[m] < i + 1)
            m++;
        if (m < h->n_merge && h->merge_cmd[m] == i + 1) {
            s->stats.sketch_errors++; /* a corrupt sketch: the estimate suffers, not the counts */
            continue;
        }
        s->stats.io_errors++;
        return kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT,
                          "redis %s: a write of the flush transaction failed: %.*s; not retrying "
                          "a transaction that ran part-way (see docs/exactly-once.md)",
                          s->url, (int)e->len, e->str);
    }
    const redisReply *fr = x->element[x->elements - 1];
    if (fr->type == REDIS_REPLY_ERROR) {
        /* The hot writes before it ran: whatever the error, even one that
         * would mean "not run" on its own ("Function not found" after a
         * FUNCTION DELETE in between), retrying would add them again. */
        s->stats.io_errors++;
        return kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT,
                          "redis %s: the flush function failed inside the flush transaction: "
                          "%.*s; not retrying a transaction that ran part-way (see "
                          "docs/exactly-once.md)",
                          s->url, (int)fr->len, fr->str);
    }
    int err = kpi_rs_script_reply(s, c->g, c->d, fr, errstr, errsz);
    if (err)
        return err;
    /* The hot cells' sketches, and the values whose `active` is now stale. */
    for (size_t i = 0; i < h->n_refs; i++) {
        const struct group_ref *gr = &h->refs[i];
        size_t len = h->a.alen[gr->arg];
        if (h->exact[i])
            s->stats.sketch_sets++;
        else
            s->stats.sketch_merges++;
        if (s->sketch_cache_bytes <= 0)
            continue;
        if (h->exact[i] && len <= KPI_REDIS_SPARSE_MAX)
            kpi_skc_put(&s->cache, &gr->key, s->token, s->flush_no, h->a.buf + h->a.off[gr->arg],
                        (uint32_t)len);
        else
            kpi_skc_drop(&s->cache, &gr->key);
    }
    for (size_t i = 0; i < h->n_hv; i++) {
        const struct hv *v = &h->hv[i];
        if (!v->slow && v->in_inst && !v->due && !v->recounted &&
            kpi_rs_vl_add(&c->g->dirty[v->w], v->key))
            return KPI_ERR_NOMEM;
    }
    s->stats.hot_cells += h->n_refs;
    s->stats.sketch_reads += h->reads;
    s->stats.hot_recounts += h->recounts;
    s->stats.rebuilds += h->rebuilds;
    return 0;
}

static int ensure_marks(struct redis_sink *s)
{
    for (int w = 0; w < s->windows->n; w++) {
        if (s->hot_cap[w] < s->roll[w].n) {
            size_t cap = s->roll[w].n < 1024 ? 1024 : s->roll[w].n;
            uint8_t *p = realloc(s->hot[w], cap);
            if (!p)
                return KPI_ERR_NOMEM;
            s->hot[w] = p;
            s->hot_cap[w] = cap;
        }
    }
    return 0;
}

/*
 * Send step 3: MULTI alone first, then the queued writes and EXEC.  Were
 * MULTI pipelined with the writes and refused (an ACL changed since the
 * connection's probe), Redis would run each write at once, outside any
 * transaction.  Alone, a refused MULTI leaves nothing sent: UNWATCH, and
 * the script alone takes the flush.  The writes go on the connection MULTI
 * went on (conn.connects unchanged): on another, they would run unqueued.
 * -1: the writes and EXEC were sent and their replies are in h->rep (with
 * *err, *sent, *moved as run sets them); else a HOT_ result, *err set.
 */
static int run_transaction(struct call *c, int *sent, int *moved, int *err, char *errstr,
                           size_t errsz)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    const char **argv = kpi_argv_finish(&h->a);
    if (!argv || kpi_rs_grow(&h->rep, &h->rep_cap, h->n_cmd, sizeof(*h->rep), 256)) {
        unwatch(c);
        *err = kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
        return HOT_DONE;
    }
    uint64_t connects = s->conn.connects;
    *err = kpi_redis_conn_pipeline(&s->conn, c->g->slot, 1, h->argc, argv, h->a.alen, h->rep, sent,
                                   moved, errstr, errsz);
    *sent = 0; /* MULTI alone writes nothing */
    if (*err)
        return HOT_DONE;
    const redisReply *m = h->rep[0];
    if (m->type == REDIS_REPLY_ERROR || s->conn.connects != connects) {
        int refused = m->type == REDIS_REPLY_ERROR && strstr(m->str, "NOPERM") != NULL;
        if (refused)
            transactions_refused(c, m->str, m->len);
        else if (m->type == REDIS_REPLY_ERROR)
            *err = kpi_rs_reply_error(s, m, errstr, errsz, "MULTI");
        free_replies(h, 1);
        if (s->conn.connects != connects)
            kpi_redis_conn_drop(&s->conn); /* a new connection, inside a MULTI: start afresh */
        else
            unwatch(c);
        return refused ? HOT_FALLBACK : *err ? HOT_DONE : HOT_RETRY;
    }
    size_t a0 = (size_t)h->argc[0];
    *err = kpi_redis_conn_pipeline(&s->conn, c->g->slot, h->n_cmd - 1, h->argc + 1, argv + a0,
                                   h->a.alen + a0, h->rep + 1, sent, moved, errstr, errsz);
    if (*err)
        free_replies(h, 1); /* the pipeline freed its own; MULTI's is ours */
    return -1;
}

static int hot_once(struct call *c, int *in_doubt, int *err, char *errstr, size_t errsz)
{
    struct redis_sink *s = c->s;
    struct hot_state *h = c->h;
    const struct kpi_windows *ws = s->windows;
    int sent, moved;
    s->token = kpi_rs_next_token(s);
    kpi_rs_token_hex(c->tok, s->token);
    c->now = kpi_now_ms();
    if ((*err = build_step1(c)))
        return HOT_DONE;
    if ((*err = run(c, &sent, &moved, errstr, errsz)))
        return HOT_DONE; /* only reads and WATCH were sent: nothing is in doubt */
    size_t n1 = h->n_cmd;
    int r = moved ? HOT_RETRY : take_step1(c, err, errstr, errsz);
    free_replies(h, n1);
    if (r != -1)
        return r;
    int any = 0;
    for (int w = 0; w < ws->n; w++)
        any |= c->win[w].hot;
    if (!any)
        return HOT_FALLBACK;
    if ((*err = build_step2(c)))
        return HOT_DONE;
    if (h->n_cmd == 0)
        return HOT_FALLBACK;
    if ((*err = run(c, &sent, &moved, errstr, errsz)))
        return HOT_DONE;
    size_t n2 = h->n_cmd;
    if (moved) {
        free_replies(h, n2);
        return HOT_RETRY;
    }
    demote(c);
    size_t n_hot = 0, n_trail = 0;
    for (size_t i = 0; i < h->n_hv; i++)
        n_trail += h->hv[i].trail && !h->hv[i].slow;
    for (int w = 0; w < ws->n; w++) {
        uint32_t lo, hi;
        kg_cells(c, w, &lo, &hi);
        for (uint32_t j = lo; j < hi; j++)
            s->hot[w][s->order[w][j]] = 0;
    }
    for (size_t i = 0; i < h->n_hc; i++)
        if (!h->hv[h->hc[i].hv].slow) {
            s->hot[h->hc[i].w][h->hc[i].cell] = 1;
            n_hot++;
        }
    if (!c->has_since) {
        /* a new group (every hot window fresh): `since` as the script sets
         * it from all of this call's cells */
        c->since = call_start(c, 1);
        c->write_since = c->since != NO_MS;
    }
    if ((n_hot == 0 && n_trail == 0) || since_differs(c)) {
        free_replies(h, n2);
        return HOT_FALLBACK;
    }
    if ((*err = build_step2b(c))) {
        free_replies(h, n2);
        unwatch(c);
        *err = kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
        return HOT_DONE;
    }
    if ((*err = run_step2b(c, &moved, errstr, errsz)) || moved) {
        free_step2b(h);
        free_replies(h, n2);
        return *err ? HOT_DONE : HOT_RETRY;
    }
    /* Step 3: MULTI, the hot writes, the script, EXEC. */
    uint64_t saturated = 0;
    cmds_reset(h);
    h->n_refs = h->n_merge = 0;
    h->reads = h->recounts = h->rebuilds = h->replaced = 0;
    cmd_begin(h);
    *err = kpi_argv_str(&h->a, "MULTI");
    *err |= cmd_end(h);
    if (!*err)
        *err = write_marks(c);
    if (!*err)
        *err = own_bases(c);
    for (size_t i = 0; i < h->n_g && !*err; i++) {
        struct gauge *g = &h->g[i];
        if (!g->own)
            continue;
        uint32_t vl;
        const char *val = kpi_dims_value_label(s->dims, (int)(g->key >> 32), (uint32_t)g->key, &vl);
        *err = apply_gauge(c, g, s->dims->sets[g->key >> 32].name, val, vl);
    }
    for (size_t i = 0; i < h->n_hc && !*err; i++)
        if (!h->hv[h->hc[i].hv].slow)
            *err = write_cell(c, &h->hc[i], &saturated);
    for (size_t i = 0; i < h->n_hv && !*err; i++)
        if (!h->hv[i].slow && h->hv[i].in_inst)
            *err = write_rolling(c, &h->hv[i], &saturated);
    if (!*err)
        *err = write_sets(c);
    for (int w = 0; w < ws->n; w++)
        h->due[w].n = 0;
    for (size_t i = 0; i < h->n_hv && !*err; i++)
        if (!h->hv[i].slow && h->hv[i].in_inst && h->hv[i].due)
            *err = kpi_rs_vl_add(&h->due[h->hv[i].w], h->hv[i].key);
    free_replies(h, n2);
    free_step2b(h);
    if (!*err && h->replaced)
        *err = push_meta_incr(c, "replaced", h->replaced);
    if (!*err && saturated) {
        *err = push_meta_incr(c, "saturated", saturated);
        s->stats.saturated += saturated;
    }
    if (!*err)
        *err = push_script(c);
    if (!*err) {
        cmd_begin(h);
        *err |= kpi_argv_str(&h->a, "EXEC");
        *err |= cmd_end(h);
    }
    if (*err) {
        *err = kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "redis: cannot build the flush: %s",
                          kpi_err_name(*err));
        unwatch(c);
        return HOT_DONE;
    }
    int64_t t0 = kpi_mono_us();
    int r3 = run_transaction(c, &sent, &moved, err, errstr, errsz);
    if (r3 != -1)
        return r3;
    kpi_rs_count_call(s, t0);
    if (*err) {
        s->stats.io_errors++;
        if (sent) {
            s->stats.in_doubt++;
            *in_doubt = 1;
        }
        return HOT_DONE;
    }
    size_t n3 = h->n_cmd;
    int retry = 0, fallback = 0;
    if (moved) {
        retry = 1; /* queued commands were refused: EXEC aborted */
    } else {
        *err = take_exec(c, n3, &retry, &fallback, errstr, errsz);
    }
    free_replies(h, n3);
    if (fallback)
        return HOT_FALLBACK;
    return retry && !*err ? HOT_RETRY : HOT_DONE;
}

int kpi_rs_call_hot(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d, int *in_doubt,
                    char *errstr, size_t errsz)
{
    *in_doubt = 0;
    if (kpi_rs_fallback_window(s->windows)[0] || (d && d->watermark == INT64_MIN))
        return kpi_rs_call_script(s, kg, d, in_doubt, errstr, errsz);
    if (!s->hs && !(s->hs = calloc(1, sizeof(*s->hs))))
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    if (ensure_marks(s) || kpi_rs_prepare_ranges(s, kg, d))
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    struct call c = {.s = s, .kg = kg, .g = &s->kgs[kg], .d = d, .h = s->hs};
    for (int attempt = 0; attempt < 8; attempt++) {
        int err = 0;
        int r = hot_once(&c, in_doubt, &err, errstr, errsz);
        if (r == HOT_DONE)
            return err;
        if (r == HOT_FALLBACK) {
            unwatch(&c);
            return kpi_rs_call_script(s, kg, d, in_doubt, errstr, errsz);
        }
    }
    s->stats.io_errors++;
    return kpi_seterr(errstr, errsz, KPI_ERR_IO,
                      "redis %s: key group %s: other writers kept changing it (8 attempts); "
                      "retrying later",
                      s->url, s->kgs[kg].prefix);
}

/* Whether the hot path recounted stale value key of window w itself in the
 * call being built (then it is no trailing recount of the script's). */
int kpi_rs_hot_recounted(const struct redis_sink *s, int w, uint64_t key)
{
    const struct hot_state *h = s->hs;
    uint32_t slot;
    uint32_t v = h ? kpi_rs_mm_find(&h->hv_map, (uint64_t)w << 56 ^ key, &slot) : 0;
    return v && h->hv[v - 1].trail && !h->hv[v - 1].slow && h->hv[v - 1].recounted;
}

const uint64_t *kpi_rs_hot_due(const struct redis_sink *s, int w, uint32_t *n)
{
    *n = s->hs ? s->hs->due[w].n : 0;
    return s->hs ? s->hs->due[w].v : NULL;
}

int kpi_rs_hot_owns_base(const struct redis_sink *s, uint32_t set, uint32_t vid)
{
    const struct hot_state *h = s->hs;
    uint32_t slot;
    uint32_t gi = h ? kpi_rs_mm_find(&h->g_map, (uint64_t)set << 32 | vid, &slot) : 0;
    return gi && h->g[gi - 1].own;
}

void kpi_rs_hot_free(struct hot_state *h)
{
    if (!h)
        return;
    free(h->hv);
    free(h->hc);
    for (size_t i = 0; i < h->g_init; i++) {
        free(h->g[i].hours);
        free(h->g[i].days);
    }
    free(h->g);
    free(h->hv_map.keys);
    free(h->hv_map.vals);
    free(h->hv_map.gen);
    free(h->g_map.keys);
    free(h->g_map.vals);
    free(h->g_map.gen);
    free(h->base_map.keys);
    free(h->base_map.vals);
    free(h->base_map.gen);
    free(h->b_first);
    free(h->b_next);
    kpi_argv_free(&h->a);
    kpi_argv_free(&h->sk);
    free(h->grp);
    free(h->grp_map.keys);
    free(h->grp_map.vals);
    free(h->grp_map.gen);
    free(h->it_map.keys);
    free(h->it_map.vals);
    free(h->it_map.gen);
    free(h->it_rep);
    for (int w = 0; w < KPI_MAX_WINDOWS; w++)
        free(h->due[w].v);
    free(h->argc);
    free(h->rep);
    free(h->refs);
    free(h->exact);
    free(h->merge_cmd);
    free_step2b(h);
    kpi_argv_free(&h->ga);
    free(h->gargc);
    free(h->grep);
    if (h->acc_init)
        kpi_hll_fini(&h->acc);
    free(h);
}
