/*
 * sink.c - the Redis sink (see sinks/redis.h for the contract, flush.lua for
 * what one call does in Redis, docs/redis-schema.md for the keys and
 * docs/exactly-once.md for why it is exactly once).
 *
 * Key groups.  The group's values are spread over K key groups
 * (engine/keygroup.h); each has its own hash tag, so its own Redis Cluster
 * slot, and its own per-partition offsets.  One flush is K calls of the
 * script, one per key group, each carrying that key group's cells and every
 * offset range of the delta: each call is fenced and atomic on its own.  The
 * engine's flush succeeds when all K have applied the delta.
 *
 * One flush:
 *   1. For every key group whose previous call failed after the script may
 *      have run, ask Redis (HMGET of its offsets) whether it did, and if so
 *      make that attempt's counters the key group's "applied base".
 *   2. Roll the delta's base-bucket cells, minus the applied base of their
 *      key group, up into every window's buckets, and sort them by key group.
 *   3. Per key group: build the script's flat ARGV (offset ranges starting
 *      where that key group's applied part ends, a member table, per window
 *      its buckets' counters and sketches, and the values whose `active` this
 *      sink left stale last time), FCALL it on the key group's node.  With
 *      the hot path (hot.c, the default), the common cells are computed here
 *      and written with plain commands in one MULTI/EXEC with that FCALL,
 *      which then carries only the other cells.
 *   4. If a call fails, the key groups already applied in this flush keep
 *      what they applied as their base, so the engine's retry of the same
 *      delta sends them only what is new.
 *
 * In-doubt calls.  A lost reply leaves the sink not knowing whether Redis
 * applied the call; the engine keeps the delta and, by the time it retries,
 * has usually merged more events into it, so the retry is neither the same
 * delta (a "dup") nor one that starts at the stored offset.  So the sink
 * keeps the counters of the in-doubt attempt (not its sketches: merging a
 * sketch twice changes nothing) and, once it knows the attempt was applied,
 * subtracts them from every later attempt of the same delta (same seq) and
 * starts its ranges where the applied attempt ended.  The key group's offsets
 * decide: after the attempt they are either all its `to` (applied) or all
 * unchanged; Redis runs the script atomically, so nothing in between exists.
 *
 * Resuming.  A kill -9 between the K calls of a flush leaves key groups whose
 * offsets differ for a partition.  load_offset answers the smallest, and
 * load_floors every key group's own, which the source hands to the engine
 * (kpi_engine_input_open_floors): replayed events count only for the key
 * groups that do not hold them yet, and each key group's ranges start at its
 * own stored offset.
 *
 * Stale `active`.  A value written without a recount of its distinct
 * subscribers (rate-limited: redis.active_refresh) is "dirty"; the script
 * says which.  The sink recounts every dirty value it did not write again in
 * its next call to that key group, and calls the key groups holding dirty
 * values when the engine is idle (the idle callback), so within two flush
 * intervals of the last event every rolling hash is exact.
 */
#include "sinks/redis.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "engine/err.h"
#include "engine/hash.h"
#include "engine/keygroup.h"
#include "redis_flush_lua.h"
#include "sinks/redis/redis_int.h"

void kpi_redis_conf_defaults(struct kpi_redis_conf *c)
{
    *c = (struct kpi_redis_conf){
        .url = KPI_REDIS_URL_DEFAULT,
        .prefix = KPI_REDIS_PREFIX_DEFAULT,
        .group = KPI_REDIS_GROUP_DEFAULT,
        .connect_timeout_ms = 2000,
        .command_timeout_ms = 10000,
        .stream_maxlen = 0,
        .ttl_margin_ms = 600000,
        .active_refresh_ms = 10000,
        .sketch_cache_bytes = 64 << 20,
        .layout_check_ms = 1000,
        .key_groups = 0,
    };
}

uint32_t kpi_redis_auto_key_groups(int64_t max_values)
{
    if (max_values <= 0)
        max_values = 10000; /* dimensions.max_values's default */
    uint32_t k = 16;
    while (k < KPI_MAX_KEY_GROUPS && (int64_t)k * 80 < max_values)
        k *= 2;
    return k;
}

/* ---- (set, value id) -> member index of one call ---- */

int kpi_rs_mm_init(struct member_map *m, uint32_t want)
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
uint32_t kpi_rs_mm_find(const struct member_map *m, uint64_t key, uint32_t *slot)
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

/* ---- the sink ---- */

void kpi_rs_range_field(char *out, size_t cap, const char *topic, int32_t partition)
{
    snprintf(out, cap, "%s:%" PRId32, topic, partition);
}

int kpi_rs_reply_error(struct redis_sink *s, const redisReply *r, char *errstr, size_t errsz,
                       const char *what)
{
    kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis %s: %s: %.*s", s->url, what, r ? (int)r->len : 0,
               r ? r->str : "");
    s->stats.io_errors++;
    return KPI_ERR_IO;
}

/* With mu held. */
static void publish_stats(struct redis_sink *s)
{
    pthread_mutex_lock(&s->stats_mu);
    s->published = s->stats;
    s->published_k = s->k;
    pthread_mutex_unlock(&s->stats_mu);
}

const uint32_t kpi_redis_call_bucket_us[KPI_REDIS_CALL_BUCKETS] = {
    1000,   2500,   5000,    10000,   25000,   50000,   100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000};

void kpi_rs_count_call(struct redis_sink *s, int64_t t0_us)
{
    uint64_t us = (uint64_t)(kpi_mono_us() - t0_us);
    int b = 0;
    while (b < KPI_REDIS_CALL_BUCKETS && us > kpi_redis_call_bucket_us[b])
        b++;
    s->stats.call_hist[b]++;
    s->stats.call_us_sum += us;
    s->stats.last_call_us = us;
    s->stats.calls++;
    kpi_rs_sync_conn_stats(s);
    publish_stats(s);
}

void kpi_rs_sync_conn_stats(struct redis_sink *s)
{
    s->stats.connects = s->conn.connects;
    s->stats.script_loads = s->conn.script_loads;
    s->stats.redirects = s->conn.redirects;
    s->stats.round_trips = s->conn.round_trips;
}

/* ---- key groups of values ---- */

uint32_t kpi_rs_kg_of(struct redis_sink *s, const struct kpi_dims *dims, uint32_t set, uint32_t vid)
{
    if (s->k == 1)
        return 0;
    if (vid >= s->kg_of_cap[set]) {
        uint32_t cap = s->kg_of_cap[set] ? s->kg_of_cap[set] : 1024;
        while (cap <= vid)
            cap *= 2;
        uint16_t *p = realloc(s->kg_of[set], cap * sizeof(*p));
        if (!p) /* computing it every time is slower, not wrong */
            goto compute;
        memset(p + s->kg_of_cap[set], 0, (cap - s->kg_of_cap[set]) * sizeof(*p));
        s->kg_of[set] = p;
        s->kg_of_cap[set] = cap;
    }
    if (s->kg_of[set][vid])
        return s->kg_of[set][vid] - 1u;
compute:;
    uint32_t len;
    const char *v = kpi_dims_value_label(dims, (int)set, vid, &len);
    uint32_t kg = kpi_keygroup(dims->sets[set].name, v, len, s->k);
    if (vid < s->kg_of_cap[set])
        s->kg_of[set][vid] = (uint16_t)(kg + 1);
    return kg;
}

struct kg_filter {
    struct redis_sink *s;
    const struct kpi_dims *dims;
    uint32_t kg;
};

static int kg_keep(void *ctx, uint32_t set, uint32_t vid)
{
    struct kg_filter *f = ctx;
    return kpi_rs_kg_of(f->s, f->dims, set, vid) == f->kg;
}

static int kg_copy(struct redis_sink *s, struct kpi_dcopy *c, const struct kpi_delta *d,
                   uint32_t kg)
{
    struct kg_filter f = {s, d->dims, kg};
    return kpi_dcopy_copy(c, d, s->k > 1 ? kg_keep : NULL, &f);
}

static const int64_t *floors_of(const struct redis_sink *s, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < s->n_floors; i++)
        if (s->floors[i].partition == partition && strcmp(s->floors[i].topic, topic) == 0)
            return s->floors[i].at;
    return NULL;
}

/* Room for `need` elements of `elem` bytes in *arrp (an array pointer whose
 * capacity is *cap), doubling from at least `first`: the one growth rule of
 * the sink's arrays.  On failure the array is left as it was. */
int kpi_rs_grow(void *arrp, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : first;
    while (nc < need)
        nc *= 2;
    void *arr;
    memcpy(&arr, arrp, sizeof(arr));
    void *p = realloc(arr, nc * elem);
    if (!p)
        return KPI_ERR_NOMEM;
    memcpy(arrp, &p, sizeof(p));
    *cap = nc;
    return 0;
}

int kpi_rs_vl_add(struct value_list *l, uint64_t v)
{
    if (kpi_rs_grow(&l->v, &l->cap, (size_t)l->n + 1, sizeof(*l->v), 256))
        return KPI_ERR_NOMEM;
    l->v[l->n++] = v;
    return 0;
}

/* ---- in-doubt resolution ---- */

/* Ask Redis whether key group g's in-doubt call was applied.  0 (resolved
 * either way), KPI_ERR_IO (ask again next time) or KPI_ERR_CONFLICT. */
static int resolve_in_doubt(struct redis_sink *s, struct keygroup *g, char *errstr, size_t errsz)
{
    int any_progress = 0;
    for (size_t i = 0; i < g->n_sent; i++)
        if (g->sent[i].to != g->sent[i].from)
            any_progress = 1;
    if (!any_progress) {
        /* Nothing to tell it by, and nothing in it that a second application
         * would count twice: just send again. */
        kpi_dcopy_clear(&g->attempt);
        return 0;
    }
    const char **argv = malloc((g->n_sent + 2) * sizeof(*argv));
    size_t *lens = malloc((g->n_sent + 2) * sizeof(*lens));
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    }
    argv[0] = "HMGET";
    argv[1] = g->offsets_key;
    for (size_t i = 0; i < g->n_sent; i++)
        argv[i + 2] = g->sent[i].field;
    for (size_t i = 0; i < g->n_sent + 2; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = NULL;
    int sent = 0;
    int err = kpi_redis_conn_command(&s->conn, g->slot, (int)(g->n_sent + 2), argv, lens, &r, &sent,
                                     errstr, errsz);
    free(argv);
    free(lens);
    if (err) {
        s->stats.io_errors++;
        return err;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != g->n_sent) {
        err = kpi_rs_reply_error(s, r, errstr, errsz, "HMGET offsets");
        freeReplyObject(r);
        return err;
    }
    int all_to = 1, all_from = 1;
    for (size_t i = 0; i < g->n_sent; i++) {
        const redisReply *e = r->element[i];
        int64_t stored = -1;
        if (e->type == REDIS_REPLY_STRING)
            stored = strtoll(e->str, NULL, 10);
        if (stored != g->sent[i].to)
            all_to = 0;
        if (!(e->type == REDIS_REPLY_NIL || stored == g->sent[i].from))
            all_from = 0;
    }
    freeReplyObject(r);
    if (all_to) {
        /* Applied: that attempt's delta is now the applied base. */
        kpi_dcopy_swap(&g->base, &g->attempt);
    } else if (!all_from) {
        kpi_dcopy_clear(&g->attempt);
        kpi_dcopy_clear(&g->base);
        s->stats.conflicts++;
        return kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT,
                          "redis: after a lost reply the offsets of key group %s match "
                          "neither before nor after that flush: another instance wrote them",
                          g->prefix);
    }
    kpi_dcopy_clear(&g->attempt);
    return 0;
}

/* ---- building a call ---- */

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
        if (s->hours.cells)
            kpi_agg_fini(&s->hours);
        s->roll_cap = 0;
        for (int w = 0; w < d->windows->n; w++)
            if (kpi_agg_init(&s->roll[w], cap))
                return KPI_ERR_NOMEM;
        if (kpi_agg_init(&s->hours, cap))
            return KPI_ERR_NOMEM;
        s->roll_cap = cap;
    } else {
        for (int w = 0; w < d->windows->n; w++) {
            if (!s->roll[w].cells && kpi_agg_init(&s->roll[w], s->roll_cap))
                return KPI_ERR_NOMEM;
            kpi_agg_reset(&s->roll[w]);
        }
        kpi_agg_reset(&s->hours);
    }
    if (s->order_cap < s->roll_cap) {
        for (int w = 0; w < KPI_MAX_WINDOWS; w++) {
            free(s->order[w]);
            if (!(s->order[w] = malloc(s->roll_cap * sizeof(uint32_t))))
                return KPI_ERR_NOMEM;
        }
        s->order_cap = s->roll_cap;
    }
    return 0;
}

/* Roll the delta (minus each key group's applied base) up into every
 * window's buckets, then list each window's cells by key group. */
static int rollup(struct redis_sink *s, const struct kpi_delta *d)
{
    const struct kpi_windows *ws = d->windows;
    for (uint32_t i = 0; i < d->cells->n; i++) {
        const struct kpi_agg_cell *cell = &d->cells->cells[i];
        struct kpi_counters c = cell->c;
        int64_t snap = cell->snap, snaps = cell->snaps;
        const struct keygroup *g = &s->kgs[kpi_rs_kg_of(s, d->dims, cell->set, cell->vid)];
        if (g->base.valid) {
            const struct kpi_agg_cell *b =
                kpi_agg_find(&g->base.cells, cell->bucket, cell->set, cell->vid);
            if (b) {
                kpi_counters_sub(&c, &b->c);
                snap -= b->snap;
                snaps -= b->snaps;
            }
        }
        if (snaps || c.activations || c.churns) {
            /* The subscriber base's share: per hour (flush.lua, apply_base). */
            int64_t hour = kpi_bucket_start(cell->bucket, 3600000);
            struct kpi_agg_cell *h = kpi_agg_get(&s->hours, hour, cell->set, cell->vid);
            if (!h)
                return KPI_ERR_FULL;
            h->c.activations += c.activations;
            h->c.churns += c.churns;
            h->snap += snap;
            h->snaps += snaps;
        }
        if (kpi_counters_is_zero(&c))
            continue; /* all of it is in Redis already, sketch included (a
                         snapshot-only cell has nothing for the windows) */
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
    /* Counting sort of each window's cells by key group. */
    for (int w = 0; w < ws->n; w++) {
        uint32_t *st = s->kg_starts[w];
        memset(st, 0, (s->k + 1) * sizeof(*st));
        for (uint32_t i = 0; i < s->roll[w].n; i++) {
            const struct kpi_agg_cell *c = &s->roll[w].cells[i];
            st[kpi_rs_kg_of(s, d->dims, c->set, c->vid) + 1]++;
        }
        for (uint32_t g = 0; g < s->k; g++)
            st[g + 1] += st[g];
        uint32_t *pos = s->kg_start;
        memcpy(pos, st, s->k * sizeof(*pos));
        for (uint32_t i = 0; i < s->roll[w].n; i++) {
            const struct kpi_agg_cell *c = &s->roll[w].cells[i];
            s->order[w][pos[kpi_rs_kg_of(s, d->dims, c->set, c->vid)]++] = i;
        }
    }
    return 0;
}

/* A member: its set's name, its value's label and its recount phase (a
 * stable hash of both, so recounts of different values spread out). */
uint32_t kpi_rs_member_phase(const struct kpi_dims *dims, uint32_t set, uint32_t vid)
{
    const char *sname = dims->sets[set].name;
    uint32_t vl;
    const char *v = kpi_dims_value_label(dims, (int)set, vid, &vl);
    uint64_t h = kpi_murmur64a(v, vl, 7) ^ kpi_murmur64a(sname, strlen(sname), 11);
    return (uint32_t)(h % 1000);
}

static int push_member(struct redis_sink *s, const struct kpi_dims *dims, uint32_t set,
                       uint32_t vid)
{
    const char *sname = dims->sets[set].name;
    uint32_t vl;
    const char *v = kpi_dims_value_label(dims, (int)set, vid, &vl);
    if (kpi_argv_str(&s->args, sname) || kpi_argv_push(&s->args, v, vl) ||
        kpi_argv_i64(&s->args, kpi_rs_member_phase(dims, set, vid)))
        return KPI_ERR_NOMEM;
    return 0;
}

/* The member index of (set, vid) in this call, adding it if new. */
static int member(struct redis_sink *s, const struct kpi_dims *dims, uint32_t set, uint32_t vid,
                  uint32_t *idx)
{
    uint64_t key = (uint64_t)set << 32 | vid;
    uint32_t slot = 0;
    if ((*idx = kpi_rs_mm_find(&s->members, key, &slot)))
        return 0;
    s->members.keys[slot] = key;
    s->members.vals[slot] = *idx = ++s->members.n;
    s->members.gen[slot] = s->members.cur_gen;
    return push_member(s, dims, set, vid);
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A write token no other call, of this sink or another, will ever use. */
uint64_t kpi_rs_next_token(struct redis_sink *s)
{
    uint64_t x = s->token_seed ^ ++s->token_ctr;
    return splitmix(&x) | 1;
}

void kpi_rs_token_hex(char out[17], uint64_t t)
{
    snprintf(out, 17, "%016" PRIx64, t);
}

/* Push a window bucket's expected token and sketch: the cached bytes plus
 * this delta when the cache has the bucket and the result stays sparse,
 * else "" and the delta's own sketch (for Redis to merge). */
int kpi_rs_push_sketch(struct redis_sink *s, struct kpi_argv *a, struct group_ref *g,
                       const struct kpi_hll *delta)
{
    struct kpi_skc_entry *e = s->sketch_cache_bytes > 0 ? kpi_skc_find(&s->cache, &g->key) : NULL;
    if (e && e->len) {
        size_t len = 0;
        if (kpi_hll_deserialize(&s->scratch, e->bytes, e->len) == 0 &&
            kpi_hll_merge(&s->scratch, delta) == 0)
            len =
                kpi_hll_serialize(&s->scratch, s->sk_buf, KPI_HLL_DENSE_SIZE, KPI_REDIS_SPARSE_MAX);
        if (len > 0 && len <= KPI_REDIS_SPARSE_MAX) {
            char tok[17];
            kpi_rs_token_hex(tok, e->token);
            if (kpi_argv_str(a, tok) || kpi_argv_push(a, s->sk_buf, len))
                return KPI_ERR_NOMEM;
            g->arg = a->n - 1;
            return 0;
        }
        kpi_skc_drop(&s->cache, &g->key);
    }
    if (kpi_argv_str(a, ""))
        return KPI_ERR_NOMEM;
    char *p = kpi_argv_begin(a, KPI_HLL_DENSE_SIZE);
    if (!p)
        return KPI_ERR_NOMEM;
    size_t len = kpi_hll_serialize(delta, (uint8_t *)p, KPI_HLL_DENSE_SIZE, KPI_REDIS_SPARSE_MAX);
    if (len == 0)
        return KPI_ERR_STATE;
    kpi_argv_commit(a, len);
    g->arg = a->n - 1;
    return 0;
}

/* After an applied call: remember the sketches Redis now holds exactly
 * (exact[i] == '1': the script SET what group i sent). */
void kpi_rs_update_cache(struct redis_sink *s, const char *exact, size_t n)
{
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
        if (is_exact && len <= KPI_REDIS_SPARSE_MAX)
            kpi_skc_put(&s->cache, &g->key, s->token, s->flush_no,
                        s->args.buf + s->args.off[g->arg], (uint32_t)len);
        else
            kpi_skc_drop(&s->cache, &g->key);
    }
}

/* Where key group g's range for r starts: past what g already applied of
 * this delta (its base) and past what it stored before this instance
 * resumed the partition (its floor). */
static int64_t range_from(const struct redis_sink *s, const struct keygroup *g, uint32_t kg,
                          const struct kpi_offset_range *r)
{
    int64_t from = r->from;
    int64_t bt = kpi_dcopy_range_to(&g->base, r->topic, r->partition);
    if (bt >= r->from && bt <= r->to)
        from = bt;
    const int64_t *f = floors_of(s, r->topic, r->partition);
    if (f && f[kg] > from)
        from = f[kg];
    return from;
}

/* The script's arguments for key group kg: d's ranges and the rolled-up
 * cells of that key group.  d may be NULL: an idle call that only recounts
 * the key group's dirty values. */
/* The window whose distinct subscribers stand in for the base of a value
 * without snapshots ("active base", docs/kpis.md): the longest of at least
 * 28 days, or none. */
const char *kpi_rs_fallback_window(const struct kpi_windows *ws)
{
    const struct kpi_window_spec *best = NULL;
    for (int w = 0; w < ws->n; w++)
        if (ws->w[w].size_ms >= 28 * 86400000LL && (!best || ws->w[w].size_ms > best->size_ms))
            best = &ws->w[w];
    return best ? best->id : "";
}

/* The base section of a call (flush.lua, parse_base): the key group's
 * per-hour net adds and snapshots. */
static int push_base(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d)
{
    struct kpi_argv *a = &s->args;
    int err = kpi_argv_str(a, kpi_rs_fallback_window(s->windows));
    size_t n_arg = a->n;
    int64_t n = 0;
    err |= kpi_argv_str(a, "0000000000");
    for (uint32_t i = 0; d && i < s->hours.n && !err; i++) {
        const struct kpi_agg_cell *h = &s->hours.cells[i];
        if (kpi_rs_kg_of(s, s->dims, h->set, h->vid) != kg ||
            (s->hot_marking && kpi_rs_hot_owns_base(s, h->set, h->vid)))
            continue;
        uint32_t slot;
        err |= kpi_argv_i64(a, kpi_rs_mm_find(&s->members, (uint64_t)h->set << 32 | h->vid, &slot));
        err |= kpi_argv_i64(a, h->bucket);
        err |= kpi_argv_i64(a, h->c.activations - h->c.churns);
        err |= kpi_argv_i64(a, h->snaps);
        err |= kpi_argv_i64(a, h->snap);
        n++;
    }
    err |= kpi_argv_set_i64(a, n_arg, n);
    return err ? KPI_ERR_NOMEM : 0;
}

/* Key group kg's offset ranges for d (none when d is NULL), as the flush
 * sends and fences them, in g->sent. */
int kpi_rs_prepare_ranges(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d)
{
    struct keygroup *g = &s->kgs[kg];
    size_t n_ranges = d ? d->n_ranges : 0;
    if (kpi_rs_grow(&g->sent, &g->sent_cap, n_ranges, sizeof(*g->sent), 16))
        return KPI_ERR_NOMEM;
    g->n_sent = 0;
    for (size_t i = 0; i < n_ranges; i++) {
        const struct kpi_offset_range *r = &d->ranges[i];
        struct sent_range *sr = &g->sent[g->n_sent++];
        kpi_rs_range_field(sr->field, sizeof(sr->field), r->topic, r->partition);
        sr->from = range_from(s, g, kg, r);
        sr->to = r->to > sr->from ? r->to : sr->from;
    }
    return 0;
}

/* The script's arguments for key group kg, in s->args (s->token is the
 * call's write token).  Cells the hot path wrote (s->hot[w][cell] != 0)
 * are left out of the windows' groups, but their values stay members, so
 * that they count as written by this call (not trailing). */
int kpi_rs_build_args(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d)
{
    struct keygroup *g = &s->kgs[kg];
    struct kpi_argv *a = &s->args;
    const struct kpi_windows *ws = s->windows;
    const struct kpi_dims *dims = s->dims;
    int err = 0;
    kpi_argv_reset(a);
    err |= kpi_argv_str(a, "FCALL");
    err |= kpi_argv_str(a, s->conn.fn);
    err |= kpi_argv_str(a, "1");
    err |= kpi_argv_str(a, g->offsets_key);
    err |= kpi_argv_str(a, "2");
    err |= kpi_argv_str(a, g->prefix);
    err |= kpi_argv_i64(a, kpi_now_ms());
    int64_t wm = d ? d->watermark : INT64_MIN;
    if (wm == INT64_MIN)
        err |= kpi_argv_str(a, "");
    else
        err |= kpi_argv_i64(a, wm);
    err |= kpi_argv_i64(a, ws->lateness_ms);
    err |= kpi_argv_i64(a, s->stream_maxlen);
    err |= kpi_argv_i64(a, s->active_refresh_ms);
    char tok[17];
    kpi_rs_token_hex(tok, s->token);
    err |= kpi_argv_str(a, tok);

    if (kpi_rs_prepare_ranges(s, kg, d))
        return KPI_ERR_NOMEM;
    err |= kpi_argv_i64(a, (int64_t)g->n_sent);
    for (size_t i = 0; i < g->n_sent; i++) {
        const struct sent_range *sr = &g->sent[i];
        err |= kpi_argv_str(a, sr->field);
        err |= kpi_argv_i64(a, sr->from);
        err |= kpi_argv_i64(a, sr->to);
    }
    if (err)
        return KPI_ERR_NOMEM;

    /* Members: every (set, value) of the key group's window buckets, and
     * its dirty values. */
    uint32_t n_groups = 0, n_dirty = 0;
    for (int w = 0; w < ws->n; w++) {
        if (d)
            n_groups += s->kg_starts[w][kg + 1] - s->kg_starts[w][kg];
        n_dirty += g->dirty[w].n;
    }
    if (kpi_rs_grow(&s->grefs, &s->grefs_cap, n_groups, sizeof(*s->grefs), 256))
        return KPI_ERR_NOMEM;
    s->n_grefs = 0;
    if ((err = kpi_rs_mm_init(&s->members, n_groups + n_dirty + (d ? s->hours.n : 0))))
        return err;
    size_t n_members_arg = a->n;
    err |= kpi_argv_str(a, "0000000000");
    for (int w = 0; w < ws->n && d; w++)
        for (uint32_t j = s->kg_starts[w][kg]; j < s->kg_starts[w][kg + 1] && !err; j++) {
            const struct kpi_agg_cell *c = &s->roll[w].cells[s->order[w][j]];
            uint32_t m;
            err |= member(s, dims, c->set, c->vid, &m);
        }
    /* Every delta cell rolls up into every window, so the members so far
     * are the values this call writes, in every window. */
    const uint32_t n_written = s->members.n;
    for (int w = 0; w < ws->n && !err; w++)
        for (uint32_t j = 0; j < g->dirty[w].n && !err; j++) {
            uint32_t m;
            err |=
                member(s, dims, (uint32_t)(g->dirty[w].v[j] >> 32), (uint32_t)g->dirty[w].v[j], &m);
        }
    /* Values with only a base entry (a snapshot): members too, after the
     * trailing ones so that n_written keeps its meaning. */
    for (uint32_t i = 0; d && i < s->hours.n && !err; i++) {
        const struct kpi_agg_cell *h = &s->hours.cells[i];
        uint32_t m;
        if (kpi_rs_kg_of(s, dims, h->set, h->vid) == kg)
            err |= member(s, dims, h->set, h->vid, &m);
    }
    err |= kpi_argv_set_i64(a, n_members_arg, s->members.n);

    /* Windows: their buckets, then the values to recount. */
    err |= kpi_argv_i64(a, ws->n);
    for (int w = 0; w < ws->n && !err; w++) {
        const struct kpi_window_spec *spec = &ws->w[w];
        int64_t ttl = spec->size_ms + spec->slide_ms + ws->lateness_ms + s->ttl_margin_ms;
        uint32_t lo = d ? s->kg_starts[w][kg] : 0, hi = d ? s->kg_starts[w][kg + 1] : 0;
        err |= kpi_argv_str(a, spec->id);
        err |= kpi_argv_i64(a, spec->size_ms);
        err |= kpi_argv_i64(a, spec->slide_ms);
        err |= kpi_argv_i64(a, ttl);
        err |= kpi_argv_i64(a, ttl);
        size_t n_groups_arg = a->n;
        int64_t n_sent_groups = 0;
        err |= kpi_argv_str(a, "0000000000");
        for (uint32_t j = lo; j < hi && !err; j++) {
            if (s->hot_marking && s->hot[w][s->order[w][j]])
                continue;
            n_sent_groups++;
            const struct kpi_agg_cell *c = &s->roll[w].cells[s->order[w][j]];
            uint32_t slot;
            uint32_t m = kpi_rs_mm_find(&s->members, (uint64_t)c->set << 32 | c->vid, &slot);
            err |= kpi_argv_i64(a, m);
            err |= kpi_argv_i64(a, c->bucket);
            const int64_t *cv = (const int64_t *)&c->c;
            const int nc = (int)(sizeof(c->c) / sizeof(int64_t));
            int64_t mask = 0;
            for (int q = 0; q < nc; q++)
                if (cv[q])
                    mask |= (int64_t)1 << q;
            err |= kpi_argv_i64(a, mask);
            for (int q = 0; q < nc; q++)
                if (cv[q])
                    err |= kpi_argv_i64(a, cv[q]);
            struct group_ref *gr = &s->grefs[s->n_grefs++];
            gr->key.bucket = c->bucket;
            gr->key.set = c->set;
            gr->key.vid = c->vid;
            gr->key.win = (uint32_t)w;
            if ((err = kpi_rs_push_sketch(s, a, gr, &c->hll)))
                return err;
        }
        err |= kpi_argv_set_i64(a, n_groups_arg, n_sent_groups);
        /* Trailing recounts: dirty values this call does not write. */
        size_t n_trail_arg = a->n;
        uint32_t n_trail = 0;
        err |= kpi_argv_str(a, "0000000000");
        for (uint32_t j = 0; j < g->dirty[w].n && !err; j++) {
            uint32_t slot;
            uint32_t m = kpi_rs_mm_find(&s->members, g->dirty[w].v[j], &slot);
            if (m <= n_written)
                continue; /* written by this call: recounted if due, else dirty again */
            if (s->hot_marking && kpi_rs_hot_recounted(s, w, g->dirty[w].v[j]))
                continue; /* recounted by the hot path, in the same transaction */
            err |= kpi_argv_i64(a, m);
            n_trail++;
        }
        if (s->hot_marking) {
            uint32_t nd;
            const uint64_t *due = kpi_rs_hot_due(s, w, &nd);
            for (uint32_t j = 0; j < nd && !err; j++) {
                uint32_t slot;
                uint32_t m = kpi_rs_mm_find(&s->members, due[j], &slot);
                if (m) {
                    err |= kpi_argv_i64(a, m);
                    n_trail++;
                }
            }
        }
        err |= kpi_argv_set_i64(a, n_trail_arg, n_trail);
    }
    if (!err)
        err = push_base(s, kg, d);
    return err ? KPI_ERR_NOMEM : 0;
}

/* From the script's reply: the values of window w whose `active` it left
 * stale (dirty[m - 1] == '1' for member m) become the key group's dirty list. */
int kpi_rs_take_dirty(struct redis_sink *s, struct keygroup *g, const redisReply *r)
{
    const struct kpi_windows *ws = s->windows;
    for (int w = 0; w < ws->n; w++) {
        g->dirty[w].n = 0;
        if (r->elements < (size_t)(7 + w))
            continue;
        const redisReply *e = r->element[6 + w];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        for (uint32_t slot = 0; slot <= s->members.mask; slot++) {
            if (s->members.gen[slot] != s->members.cur_gen)
                continue;
            uint32_t m = s->members.vals[slot];
            if (m >= 1 && m <= e->len && e->str[m - 1] == '1' &&
                kpi_rs_vl_add(&g->dirty[w], s->members.keys[slot]))
                return KPI_ERR_NOMEM;
        }
    }
    return 0;
}

/* ---- one call ---- */

/* Take the script's reply r for key group g's call of delta d (NULL: an
 * idle recount).  0 (applied, or a replay), or an error: KPI_ERR_CONFLICT
 * when fenced or when the script failed (it may have run part-way),
 * KPI_ERR_IO when Redis refused it (not run: retry). */
int kpi_rs_script_reply(struct redis_sink *s, struct keygroup *g, const struct kpi_delta *d,
                        const redisReply *r, char *errstr, size_t errsz)
{
    int err = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        const char *st = r->element[0]->str;
        if (strcmp(st, "ok") == 0 && r->elements >= 6) {
            if (d && d->n_ranges + d->cells->n > 0)
                s->stats.flushes++;
            s->stats.stream_entries += (uint64_t)r->element[1]->integer;
            s->stats.rebuilds += (uint64_t)r->element[2]->integer;
            s->stats.sketch_errors += (uint64_t)r->element[3]->integer;
            s->stats.saturated += (uint64_t)r->element[5]->integer;
            kpi_rs_update_cache(s, r->element[4]->str ? r->element[4]->str : "",
                                r->element[4]->len);
            err = kpi_rs_take_dirty(s, g, r);
        } else if (strcmp(st, "dup") == 0) {
            s->stats.replays++;
        } else if (strcmp(st, "conflict") == 0 && r->elements >= 5) {
            s->stats.conflicts++;
            err = kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT,
                             "redis: partition %s: key group %s stored offset '%s', this "
                             "delta covers [%s, %s): another instance owns it",
                             r->element[1]->str, g->prefix, r->element[2]->str, r->element[3]->str,
                             r->element[4]->str);
        } else {
            err = kpi_rs_reply_error(s, NULL, errstr, errsz, "unexpected script reply");
        }
    } else if (r->type == REDIS_REPLY_ERROR && !kpi_redis_is_transient(r->str)) {
        s->stats.io_errors++;
        err = kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT,
                         "redis %s: the flush script failed: %.*s; not retrying a script that "
                         "may have run part-way (see docs/exactly-once.md)",
                         s->url, (int)r->len, r->str);
    } else {
        err = kpi_rs_reply_error(s, r, errstr, errsz, "FCALL");
    }
    return err;
}

/* Run key group kg's call as one script call.  0: applied (or a replay);
 * KPI_ERR_IO: not applied, or in doubt (*in_doubt = 1); KPI_ERR_CONFLICT:
 * fenced. */
int kpi_rs_call_script(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d, int *in_doubt,
                       char *errstr, size_t errsz)
{
    struct keygroup *g = &s->kgs[kg];
    *in_doubt = 0;
    s->token = kpi_rs_next_token(s);
    int err = kpi_rs_build_args(s, kg, d);
    if (err)
        return kpi_seterr(errstr, errsz, err, "redis: cannot build the flush: %s",
                          kpi_err_name(err));
    s->stats.last_args_bytes = s->args.len;
    const char **argv = kpi_argv_finish(&s->args);
    if (!argv)
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    redisReply *r = NULL;
    int sent = 0;
    int64_t t0 = kpi_mono_us();
    err = kpi_redis_conn_command(&s->conn, g->slot, (int)s->args.n, argv, s->args.alen, &r, &sent,
                                 errstr, errsz);
    kpi_rs_count_call(s, t0);
    if (err) {
        s->stats.io_errors++;
        if (sent) {
            s->stats.in_doubt++;
            *in_doubt = 1;
        }
        return err;
    }
    err = kpi_rs_script_reply(s, g, d, r, errstr, errsz);
    freeReplyObject(r);
    return err;
}

/* Whether key group kg has nothing of d to write: no cell in any window, no
 * hour of the subscriber base, no stale value to recount.  Its call only
 * moves its offsets and marks (and its windows' heads, in flush.lua), which
 * one script call does in one round trip and a handful of commands, where
 * the hot path's WATCH and reads, then its transaction, take two round
 * trips and twice the commands for the same.  With many key groups and few
 * values most key groups are such (bench/RESULTS.md). */
static int kg_empty(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d)
{
    if (!d)
        return 0; /* an idle recount: the hot path recounts in the sink */
    for (int w = 0; w < s->windows->n; w++)
        if (s->kg_starts[w][kg] != s->kg_starts[w][kg + 1] || s->kgs[kg].dirty[w].n)
            return 0;
    return !s->kgs[kg].hours;
}

/* Key group kg's share of d (NULL: an idle recount): through the hot path
 * (hot.c) when it is on and there is something to write, else one script
 * call. */
static int call_kg(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d, int *in_doubt,
                   char *errstr, size_t errsz)
{
    if (s->hot_on && !kg_empty(s, kg, d))
        return kpi_rs_call_hot(s, kg, d, in_doubt, errstr, errsz);
    return kpi_rs_call_script(s, kg, d, in_doubt, errstr, errsz);
}

/* ---- the sink callbacks ---- */

static int set_k(struct redis_sink *s, uint32_t k);
static int check_layout(struct redis_sink *s, char *errstr, size_t errsz);

static int flush_once(struct redis_sink *s, const struct kpi_delta *d, char *errstr, size_t errsz)
{
    uint64_t connects = s->conn.connects;
    int err = !s->layout_ok || kpi_mono_ms() - s->layout_checked_ms >= s->layout_check_ms
                  ? check_layout(s, errstr, errsz)
                  : 0;
    if (err) {
        s->retry_now = err == KPI_ERR_IO && s->conn.connects == connects; /* as below */
        return err;
    }
    s->dims = d->dims;
    s->windows = d->windows;
    s->flush_no++;
    s->last_watermark = d->watermark;
    for (uint32_t kg = 0; kg < s->k; kg++) {
        struct keygroup *g = &s->kgs[kg];
        err = g->attempt.valid ? resolve_in_doubt(s, g, errstr, errsz) : 0;
        if (err)
            return err;
        if (g->base.valid && g->base.seq != d->seq)
            kpi_dcopy_clear(&g->base); /* the engine moved on: not part of this delta */
        g->applied = 0;
    }
    if ((err = ensure_scratch(s, d)) || (err = rollup(s, d)))
        return kpi_seterr(errstr, errsz, err, "redis: cannot build the flush: %s",
                          kpi_err_name(err));
    for (uint32_t kg = 0; kg < s->k; kg++)
        s->kgs[kg].hours = 0;
    for (uint32_t i = 0; i < s->hours.n; i++)
        s->kgs[kpi_rs_kg_of(s, s->dims, s->hours.cells[i].set, s->hours.cells[i].vid)].hours = 1;
    for (uint32_t kg = 0; kg < s->k; kg++) {
        int in_doubt = 0;
        connects = s->conn.connects;
        err = call_kg(s, kg, d, &in_doubt, errstr, errsz);
        kpi_rs_sync_conn_stats(s); /* a replay or an error returns before the call's own sync */
        if (err) {
            /* A connection that died while idle (Redis restarted, a proxy
             * timed it out) is only found out by using it: the caller tries
             * once more at once (resolving this call first) instead of
             * waiting for the engine's retry. */
            s->retry_now = err == KPI_ERR_IO && s->conn.connects == connects;
            struct keygroup *g = &s->kgs[kg];
            if (in_doubt) {
                kpi_skc_clear(&s->cache); /* the tokens may have moved on */
                if (kg_copy(s, &g->attempt, d, kg) != 0)
                    kpi_dcopy_clear(&g->attempt); /* the next call risks a fence, never a double */
            }
            /* Key groups that applied this delta keep it as their base. */
            for (uint32_t j = 0; j < kg; j++)
                if (s->kgs[j].applied && kg_copy(s, &s->kgs[j].base, d, j) != 0)
                    kpi_dcopy_clear(&s->kgs[j].base);
            return err;
        }
        s->kgs[kg].applied = 1;
    }
    for (uint32_t kg = 0; kg < s->k; kg++)
        kpi_dcopy_clear(&s->kgs[kg].base);
    if (s->sketch_cache_bytes > 0)
        kpi_skc_evict(&s->cache, s->flush_no, (size_t)s->sketch_cache_bytes);
    return 0;
}

static int redis_flush(void *self, const struct kpi_delta *d, char *errstr, size_t errsz)
{
    struct redis_sink *s = self;
    pthread_mutex_lock(&s->mu);
    s->retry_now = 0;
    int err = flush_once(s, d, errstr, errsz);
    if (err == KPI_ERR_IO && s->retry_now)
        err = flush_once(s, d, errstr, errsz);
    publish_stats(s);
    pthread_mutex_unlock(&s->mu);
    return err;
}

/* The engine is idle: recount the values whose `active` this sink left
 * stale, one call per key group that has any. */
static int redis_idle(void *self, char *errstr, size_t errsz)
{
    struct redis_sink *s = self;
    int err = 0;
    pthread_mutex_lock(&s->mu);
    for (uint32_t kg = 0; kg < s->k && !err && s->windows; kg++) {
        struct keygroup *g = &s->kgs[kg];
        uint32_t n = 0;
        for (int w = 0; w < s->windows->n; w++)
            n += g->dirty[w].n;
        if (n == 0 || g->attempt.valid)
            continue; /* an in-doubt key group is resolved by the next flush first */
        int in_doubt = 0;
        err = call_kg(s, kg, NULL, &in_doubt, errstr, errsz);
        if (err == 0)
            s->stats.recount_calls++;
    }
    publish_stats(s);
    pthread_mutex_unlock(&s->mu);
    return err == KPI_ERR_CONFLICT ? KPI_ERR_IO : err;
}

static int record_floors(struct redis_sink *s, const char *topic, int32_t partition,
                         const int64_t *at)
{
    struct floors *f = NULL;
    for (size_t i = 0; i < s->n_floors && !f; i++)
        if (s->floors[i].partition == partition && strcmp(s->floors[i].topic, topic) == 0)
            f = &s->floors[i];
    if (!f) {
        struct floors *nf = realloc(s->floors, (s->n_floors + 1) * sizeof(*nf));
        if (!nf)
            return KPI_ERR_NOMEM;
        s->floors = nf;
        f = &s->floors[s->n_floors++];
        memset(f, 0, sizeof(*f));
        snprintf(f->topic, sizeof(f->topic), "%s", topic);
        f->partition = partition;
        if (!(f->at = malloc(s->k * sizeof(int64_t)))) {
            s->n_floors--;
            return KPI_ERR_NOMEM;
        }
    }
    memcpy(f->at, at, s->k * sizeof(int64_t));
    return 0;
}

/*
 * The number of key groups K is part of the key layout: each value's keys and
 * each key group's offsets fence live under a hash tag that depends on K
 * (keys.c).  A group restarted with another `redis.key_groups` would find
 * none of its offsets, re-apply events the old layout already holds, and
 * leave readers two half-layouts.  So the first sink of a group records K
 * in <prefix>:{<group>}:key_groups (SET NX, no TTL, like the offsets), and
 * every sink of the group must find its own K there before it reads an
 * offset or writes a flush, hence before it writes anything.  An auto sink
 * (`redis.key_groups = auto`, the default) has no K of its own: it records
 * kpi_redis_auto_key_groups() for a new group and adopts the one it finds
 * otherwise, so an upgrade keeps an older group's K and instances of a
 * group cannot disagree.
 *
 * Checked before the sink's first read, and again before a flush once the
 * last check is layout_check_ms old (struct kpi_redis_conf: 1 s, so every
 * flush at the default interval), with one command (SET NX GET, Redis 7.0):
 * readers find a group's keys only through this key, so one deleted while
 * the sink runs (FLUSHALL, an operator's cleanup) is recorded again by the
 * next flush, before anything else is written; and a K other than ours that
 * another sink recorded since fails the flush before it writes (retried
 * like any Redis error, with the message naming the key) instead of mixing
 * two layouts.
 */
static int check_layout(struct redis_sink *s, char *errstr, size_t errsz)
{
    uint32_t want = s->k ? s->k : s->new_k;
    char k[16];
    int kl = snprintf(k, sizeof(k), "%" PRIu32, want);
    const char *argv[5] = {"SET", s->layout_key, k, "NX", "GET"};
    size_t len[5] = {3, strlen(s->layout_key), (size_t)kl, 2, 3};
    redisReply *r = NULL;
    int sent = 0;
    int err =
        kpi_redis_conn_command(&s->conn, s->layout_slot, 5, argv, len, &r, &sent, errstr, errsz);
    if (err)
        return err;
    int stored = r->type == REDIS_REPLY_NIL; /* else somebody recorded a K before */
    uint32_t found = want;
    if (r->type == REDIS_REPLY_STRING && kpi_redis_parse_key_groups(r->str, &found))
        err = kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                         "the group's key groups in %s (%s) are '%s', not 1..%d: set "
                         "redis.key_groups, or use a new group id",
                         s->layout_key, s->url, r->str, KPI_MAX_KEY_GROUPS);
    else if (r->type == REDIS_REPLY_STRING && s->k && found != s->k && s->k_set)
        err = kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                         "redis.key_groups is %s, but the group's keys in %s were written "
                         "with %s key groups (%s): use that value (or auto), or a new group id",
                         k, s->url, r->str, s->layout_key);
    else if (r->type == REDIS_REPLY_STRING && s->k && found != s->k)
        err = kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                         "this sink writes the group's keys over %s key groups, but %s (%s) now "
                         "records %s: another sink recorded it since; nothing written",
                         k, s->layout_key, s->url, r->str);
    else if (r->type == REDIS_REPLY_ERROR)
        err = kpi_rs_reply_error(s, r, errstr, errsz, "SET key_groups");
    else if (r->type != REDIS_REPLY_STRING && !stored)
        err = kpi_seterr(errstr, errsz, KPI_ERR_IO, "unexpected reply to SET %s NX GET",
                         s->layout_key);
    freeReplyObject(r);
    if (err)
        return err;
    if (stored && s->layout_ok)
        kpi_log(KPI_LOG_WARN, "redis",
                "%s: %s was missing (the group's keys deleted?): recorded %s key groups again",
                s->url, s->layout_key, k);
    if (!s->k && set_k(s, found) != 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    if (!s->layout_ok && !s->k_set)
        kpi_log(KPI_LOG_INFO, "redis",
                "%s: the group's keys are spread over %" PRIu32 " key groups (%s %s; "
                "redis.key_groups = auto), streams bounded at %" PRId64 " entries each",
                s->url, s->k, stored ? "new group, recorded in" : "recorded in", s->layout_key,
                s->stream_maxlen);
    s->layout_ok = 1;
    s->layout_checked_ms = kpi_mono_ms();
    return 0;
}

static int redis_load_offset(void *self, const char *topic, int32_t partition, int64_t *offset,
                             char *errstr, size_t errsz)
{
    struct redis_sink *s = self;
    char field[KPI_TOPIC_MAX + 16];
    kpi_rs_range_field(field, sizeof(field), topic, partition);
    pthread_mutex_lock(&s->mu);
    int64_t *at = NULL;
    struct kpi_redis_cmd *cmds = NULL;
    const char **argv = NULL;
    int err = s->layout_ok ? 0 : check_layout(s, errstr, errsz);
    if (err)
        goto out;
    at = malloc(s->k * sizeof(int64_t));
    cmds = calloc(s->k, sizeof(*cmds));
    argv = malloc(3 * (size_t)s->k * sizeof(*argv));
    if (!at || !cmds || !argv) {
        err = kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* Every key group's offset of the partition, read in one round trip
     * per node (K round trips in turn would make an assignment cost K
     * network round trips per partition). */
    for (uint32_t kg = 0; kg < s->k; kg++) {
        const char **a = &argv[3 * (size_t)kg];
        a[0] = "HGET";
        a[1] = s->kgs[kg].offsets_key;
        a[2] = field;
        cmds[kg] = (struct kpi_redis_cmd){.slot = s->kgs[kg].slot, .argc = 3, .argv = a};
    }
    err = kpi_redis_conn_batch(&s->conn, cmds, s->k, errstr, errsz);
    int64_t lo = INT64_MAX;
    int any_missing = 0;
    for (uint32_t kg = 0; kg < s->k && !err; kg++) {
        const redisReply *r = cmds[kg].reply;
        if (r->type == REDIS_REPLY_NIL) {
            at[kg] = -1;
            any_missing = 1;
        } else if (r->type == REDIS_REPLY_STRING) {
            char *end;
            errno = 0;
            long long v = strtoll(r->str, &end, 10);
            if (errno || *end || v < 0)
                err = kpi_seterr(errstr, errsz, KPI_ERR_PARSE, "redis: offset of %s in %s is '%s'",
                                 field, s->kgs[kg].offsets_key, r->str);
            at[kg] = v;
            if (v < lo)
                lo = v;
        } else {
            err = kpi_rs_reply_error(s, r, errstr, errsz, "HGET offsets");
        }
    }
    for (uint32_t kg = 0; kg < s->k; kg++)
        if (cmds[kg].reply)
            freeReplyObject(cmds[kg].reply);
    kpi_rs_sync_conn_stats(s);
    if (!err) {
        /* A key group with no offset never applied this partition (a first
         * flush cut short): resume from the consumer's start, like a new
         * group, and let the others skip what they hold. */
        *offset = any_missing || lo == INT64_MAX ? -1 : lo;
        err = record_floors(s, topic, partition, at);
    }
out:
    free(at);
    free(cmds);
    free(argv);
    publish_stats(s); /* the K the layout check adopted */
    pthread_mutex_unlock(&s->mu);
    return err;
}

static int redis_load_floors(void *self, const char *topic, int32_t partition, int64_t *floors,
                             uint32_t max, uint32_t *n)
{
    struct redis_sink *s = self;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    const int64_t *f = floors_of(s, topic, partition);
    int differ = 0;
    for (uint32_t kg = 1; f && kg < s->k; kg++)
        if (f[kg] != f[0])
            differ = 1;
    if (f && differ && s->k <= max) {
        memcpy(floors, f, s->k * sizeof(int64_t));
        *n = s->k;
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void redis_destroy(void *self)
{
    struct redis_sink *s = self;
    if (!s)
        return;
    kpi_redis_conn_fini(&s->conn);
    kpi_redis_addr_fini(&s->conn.addr);
    for (int w = 0; w < KPI_MAX_WINDOWS; w++) {
        if (s->roll[w].cells)
            kpi_agg_fini(&s->roll[w]);
        free(s->order[w]);
        free(s->kg_starts[w]);
    }
    if (s->hours.cells)
        kpi_agg_fini(&s->hours);
    for (uint32_t kg = 0; s->kgs && kg < s->k; kg++) {
        struct keygroup *g = &s->kgs[kg];
        kpi_dcopy_free(&g->base);
        kpi_dcopy_free(&g->attempt);
        free(g->sent);
        free(g->prefix);
        free(g->offsets_key);
        for (int w = 0; w < KPI_MAX_WINDOWS; w++)
            free(g->dirty[w].v);
    }
    free(s->kgs);
    for (int i = 0; i < KPI_MAX_SETS; i++)
        free(s->kg_of[i]);
    for (size_t i = 0; i < s->n_floors; i++)
        free(s->floors[i].at);
    free(s->floors);
    free(s->kg_start);
    mm_free(&s->members);
    kpi_argv_free(&s->args);
    kpi_skc_free(&s->cache);
    free(s->grefs);
    kpi_rs_hot_free(s->hs);
    for (int w = 0; w < KPI_MAX_WINDOWS; w++)
        free(s->hot[w]);
    free(s->sk_buf);
    kpi_hll_fini(&s->scratch);
    free(s->url);
    free(s->prefix);
    free(s->group);
    free(s->layout_key);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->stats_mu);
    free(s);
}

static const struct kpi_sink_ops redis_ops = {
    .name = "redis",
    .flush = redis_flush,
    .load_offset = redis_load_offset,
    .load_floors = redis_load_floors,
    .idle = redis_idle,
    .destroy = redis_destroy,
};

static int init_keygroup(struct redis_sink *s, uint32_t kg)
{
    struct keygroup *g = &s->kgs[kg];
    const char *prefix = s->prefix, *group = s->group;
    size_t n = strlen(prefix) + strlen(group) + 24;
    g->prefix = malloc(n);
    g->offsets_key = malloc(n + 8);
    if (!g->prefix || !g->offsets_key || kpi_redis_kg_prefix(g->prefix, n, prefix, group, s->k, kg))
        return KPI_ERR_NOMEM;
    snprintf(g->offsets_key, n + 8, "%soffsets", g->prefix);
    /* The slot of the hash tag: what is between the braces. */
    const char *tag = strchr(g->prefix, '{') + 1;
    g->slot = kpi_crc16(tag, (size_t)(strchr(tag, '}') - tag)) & (KPI_REDIS_SLOTS - 1);
    return 0;
}

/* Sets the sink's K and makes its key groups: at creation for a configured
 * K, at the layout check for an auto one.  An auto stream bound keeps a
 * group's streams at KPI_REDIS_STREAM_ENTRIES_AUTO entries per window in
 * all, whatever K.  0, or KPI_ERR_NOMEM (the sink stays without K). */
static int set_k(struct redis_sink *s, uint32_t k)
{
    if (s->stream_maxlen_auto) {
        s->stream_maxlen = (KPI_REDIS_STREAM_ENTRIES_AUTO + k - 1) / k;
        if (s->stream_maxlen < 10)
            s->stream_maxlen = 10;
    }
    s->kgs = calloc(k, sizeof(*s->kgs));
    s->kg_start = malloc((k + 1) * sizeof(uint32_t));
    int nomem = !s->kgs || !s->kg_start;
    for (int w = 0; w < KPI_MAX_WINDOWS && !nomem; w++)
        nomem = !(s->kg_starts[w] = calloc(k + 1, sizeof(uint32_t)));
    s->k = k; /* redis_destroy frees the key groups made so far */
    for (uint32_t kg = 0; kg < k && !nomem; kg++)
        nomem = init_keygroup(s, kg) != 0;
    return nomem ? KPI_ERR_NOMEM : 0;
}

struct kpi_sink kpi_sink_redis_new(const struct kpi_redis_conf *conf, char *errstr, size_t errsz)
{
    struct kpi_sink none = {NULL, NULL};
    struct kpi_redis_conf def;
    kpi_redis_conf_defaults(&def);
    const char *url = conf && conf->url ? conf->url : def.url;
    const char *prefix = conf && conf->prefix ? conf->prefix : def.prefix;
    const char *group = conf && conf->group ? conf->group : def.group;
    int64_t k = conf && conf->key_groups > 0 ? conf->key_groups : def.key_groups; /* 0: auto */
#define OR_DEFAULT(f) (conf && conf->f > 0 ? conf->f : def.f)
    if (!*prefix || strpbrk(prefix, "{}")) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                   "redis key prefix '%s' must be non-empty and hold no '{' or '}'", prefix);
        return none;
    }
    if (!*group || strpbrk(group, "{}") || strlen(group) > 200) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                   "redis group '%s' must be non-empty, at most 200 bytes and hold no '{' or "
                   "'}' (it is the keys' hash tag)",
                   group);
        return none;
    }
    if (k > KPI_MAX_KEY_GROUPS) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "redis key_groups %" PRId64 " is above %d", k,
                   KPI_MAX_KEY_GROUPS);
        return none;
    }
    struct redis_sink *s = calloc(1, sizeof(*s));
    if (!s) {
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
        return none;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->stats_mu, NULL);
    kpi_redis_conn_init(&s->conn, kpi_redis_flush_lua);
    s->conn.connect_timeout_ms = OR_DEFAULT(connect_timeout_ms);
    s->conn.command_timeout_ms = OR_DEFAULT(command_timeout_ms);
    s->stream_maxlen = OR_DEFAULT(stream_maxlen);
    s->stream_maxlen_auto = s->stream_maxlen <= 0;
    s->new_k = kpi_redis_auto_key_groups(conf ? conf->max_values : 0);
    s->ttl_margin_ms = conf && conf->ttl_margin_ms >= 0 ? conf->ttl_margin_ms : def.ttl_margin_ms;
    s->layout_check_ms =
        conf && conf->layout_check_ms >= 0 ? conf->layout_check_ms : def.layout_check_ms;
    s->active_refresh_ms =
        conf && conf->active_refresh_ms >= 0 ? conf->active_refresh_ms : def.active_refresh_ms;
    s->hot_on = conf ? !conf->no_hot_path : 1;
    s->conn.probe_multi = s->hot_on;
    s->sketch_cache_bytes =
        conf && conf->sketch_cache_bytes >= 0 ? conf->sketch_cache_bytes : def.sketch_cache_bytes;
#undef OR_DEFAULT
    kpi_hll_init(&s->scratch);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t seed = (uint64_t)now.tv_nsec ^ (uint64_t)now.tv_sec << 30 ^ (uint64_t)getpid() << 16 ^
                    (uint64_t)(uintptr_t)s;
    s->token_seed = splitmix(&seed);
    s->url = kpi_redis_url_redact(url);
    s->conn.url = s->url;
    s->sk_buf = malloc(KPI_HLL_DENSE_SIZE);
    s->prefix = strdup(prefix);
    s->group = strdup(group);
    int nomem = !s->url || !s->sk_buf || !s->prefix || !s->group;
    s->k_set = k > 0;
    if (!nomem && k > 0) /* else the layout check adopts the group's K */
        nomem = set_k(s, (uint32_t)k) != 0;
    size_t ln = strlen(prefix) + strlen(group) + 16;
    if (!nomem && (s->layout_key = malloc(ln)) != NULL) {
        snprintf(s->layout_key, ln, "%s:{%s}:key_groups", prefix, group);
        s->layout_slot = kpi_crc16(group, strlen(group)) & (KPI_REDIS_SLOTS - 1);
    }
    nomem = nomem || !s->layout_key;
    if (nomem) {
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
        redis_destroy(s);
        return none;
    }
    if (kpi_redis_url_parse(url, &s->conn.addr, errstr, errsz)) {
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

void kpi_sink_redis_write_metrics(const struct kpi_sink *sink, FILE *out)
{
    struct redis_sink *s = sink->self;
    pthread_mutex_lock(&s->stats_mu);
    struct kpi_redis_stats st = s->published;
    uint32_t k = s->published_k;
    pthread_mutex_unlock(&s->stats_mu);
    fprintf(out,
            "# HELP kpistream_redis_key_groups Key groups the group's keys are spread over.\n"
            "# TYPE kpistream_redis_key_groups gauge\n"
            "kpistream_redis_key_groups %" PRIu32 "\n",
            k);
    fprintf(out, "# HELP kpistream_redis_call_duration_seconds Round trip of each key group's "
                 "call (a transaction or a script call): how long it could keep Redis from "
                 "every other client.\n"
                 "# TYPE kpistream_redis_call_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < KPI_REDIS_CALL_BUCKETS; b++) {
        cum += st.call_hist[b];
        fprintf(out, "kpistream_redis_call_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                kpi_redis_call_bucket_us[b] / 1e6, cum);
    }
    cum += st.call_hist[KPI_REDIS_CALL_BUCKETS];
    fprintf(out,
            "kpistream_redis_call_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
            "kpistream_redis_call_duration_seconds_sum %.6f\n"
            "kpistream_redis_call_duration_seconds_count %" PRIu64 "\n",
            cum, (double)st.call_us_sum / 1e6, cum);
#define COUNTER(name, help, v)                                                                     \
    fprintf(out,                                                                                   \
            "# HELP kpistream_redis_" name "_total " help "\n"                                     \
            "# TYPE kpistream_redis_" name "_total counter\n"                                      \
            "kpistream_redis_" name "_total %" PRIu64 "\n",                                        \
            (uint64_t)(v))
    COUNTER("calls", "Key-group calls: flushes, and recounts when idle.", st.calls);
    COUNTER("call_errors", "Failed calls (connection, timeout, error reply), each retried.",
            st.io_errors);
    COUNTER("in_doubt", "Calls whose reply was lost, settled from the stored offsets.",
            st.in_doubt);
    COUNTER("redirects", "MOVED and ASK replies followed (Redis Cluster).", st.redirects);
    COUNTER("connects", "Connections made (first ones and reconnections).", st.connects);
    COUNTER("round_trips", "Requests to Redis written and waited for (a command or a pipeline).",
            st.round_trips);
    COUNTER("transaction_retries", "Transactions run again: another writer came first.",
            st.txn_retries);
    COUNTER("cells", "(window, bucket, value) cells written.", st.sketch_sets + st.sketch_merges);
    COUNTER("saturated", "Counter updates that would have passed 2^63 - 1, set to it.",
            st.saturated);
#undef COUNTER
}

const char *kpi_sink_redis_key_prefix(const struct kpi_sink *sink, uint32_t kg)
{
    const struct redis_sink *s = sink->self;
    return s->k ? s->kgs[kg < s->k ? kg : 0].prefix : NULL;
}

uint32_t kpi_sink_redis_key_groups(const struct kpi_sink *sink)
{
    struct redis_sink *s = sink->self;
    pthread_mutex_lock(&s->stats_mu);
    uint32_t k = s->published_k;
    pthread_mutex_unlock(&s->stats_mu);
    return k;
}
