/*
 * redis_int.h - what the files of the Redis sink share; not for users of the
 * sink (they include sinks/redis.h).
 *
 *   url.c           the one Redis URL parser (url.h)
 *   conn.c          connections: one Redis, or a Redis Cluster (MOVED/ASK)
 *   argv.c          the flat argument list of one command
 *   sketch_cache.c  the sketches this sink wrote last (turns PFMERGEs into SETs)
 *   delta_copy.c    counters of applied or in-doubt calls (lost replies)
 *   sink.c          a flush: key groups, arguments, the script, its reply
 *   hot.c           the hot path: a flush's common cells in C, in MULTI/EXEC
 *                   with the script call (WATCH-fenced)
 *   flush.lua       what one call does inside Redis
 */
#ifndef KPI_SINK_REDIS_INT_H
#define KPI_SINK_REDIS_INT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/aggregate.h"
#include "engine/engine.h"
#include "sinks/redis.h"
#include "sinks/redis/conn.h"
#include "sinks/redis/url.h"

#define KPI_REDIS_SPARSE_MAX 3000 /* Redis's default hll-sparse-max-bytes */

/* ---- argv.c ---- */

struct kpi_argv {
    char *buf;
    size_t len, cap;
    size_t *off, *alen;
    size_t n, ncap;
    const char **ptrs;
    size_t ptrs_cap;
};

/* Room for one argument of up to `bytes`; commit it with kpi_argv_commit. */
char *kpi_argv_begin(struct kpi_argv *a, size_t bytes);
void kpi_argv_commit(struct kpi_argv *a, size_t bytes);
int kpi_argv_push(struct kpi_argv *a, const void *p, size_t len);
int kpi_argv_str(struct kpi_argv *a, const char *s);
int kpi_argv_i64(struct kpi_argv *a, int64_t v);
/* Overwrite argument i (pushed as a placeholder) with a number. */
int kpi_argv_set_i64(struct kpi_argv *a, size_t i, int64_t v);
/* Pointers to every argument (valid until the next push), or NULL. */
const char **kpi_argv_finish(struct kpi_argv *a);
void kpi_argv_reset(struct kpi_argv *a);
void kpi_argv_free(struct kpi_argv *a);

/* ---- sketch_cache.c ---- */

struct kpi_skc_key {
    int64_t bucket;
    uint32_t set, vid;
    uint32_t win;
};

struct kpi_skc_entry {
    struct kpi_skc_key key;
    uint64_t token;
    uint64_t used; /* flush number of the last write */
    uint32_t len;  /* 0: dead */
    uint8_t *bytes;
};

struct kpi_skc {
    struct kpi_skc_entry *e;
    uint32_t n, cap;
    uint32_t *index; /* 0 empty, else entry + 1 */
    uint32_t mask;
    size_t bytes;
};

struct kpi_skc_entry *kpi_skc_find(struct kpi_skc *c, const struct kpi_skc_key *k);
void kpi_skc_drop(struct kpi_skc *c, const struct kpi_skc_key *k);
void kpi_skc_put(struct kpi_skc *c, const struct kpi_skc_key *k, uint64_t token, uint64_t used,
                 const void *bytes, uint32_t len);
/* Keep the entries written in the last two flushes, and at most max_bytes. */
void kpi_skc_evict(struct kpi_skc *c, uint64_t now, size_t max_bytes);
void kpi_skc_clear(struct kpi_skc *c);
void kpi_skc_free(struct kpi_skc *c);

/* ---- delta_copy.c ---- */

struct kpi_dcopy_range {
    char topic[KPI_TOPIC_MAX + 1];
    int32_t partition;
    int64_t to;
};

/* Counters (and range ends) of an engine delta, identified by its seq. */
struct kpi_dcopy {
    int valid;
    uint64_t seq;
    struct kpi_agg cells; /* counters only; sketches stay empty */
    struct kpi_dcopy_range *ranges;
    size_t n_ranges;
};

/* Copy the counters of the cells of d that keep(ctx, set, vid) accepts, and
 * the ends of d's ranges. */
int kpi_dcopy_copy(struct kpi_dcopy *c, const struct kpi_delta *d,
                   int (*keep)(void *ctx, uint32_t set, uint32_t vid), void *ctx);
void kpi_dcopy_clear(struct kpi_dcopy *c);
void kpi_dcopy_free(struct kpi_dcopy *c);
void kpi_dcopy_swap(struct kpi_dcopy *a, struct kpi_dcopy *b);
/* Where the copy's range of a partition ended, or -1. */
int64_t kpi_dcopy_range_to(const struct kpi_dcopy *c, const char *topic, int32_t partition);

/* ---- conn.c: sinks/redis/conn.h ---- */

/* ---- sink.c: the sink's state (hot.c writes part of a flush) ---- */

#include <pthread.h>

#include "engine/hll.h"

/* (set, value id) -> member index of one call */
struct member_map {
    uint64_t *keys; /* set << 32 | vid */
    uint32_t *vals; /* 1-based member index */
    uint32_t *gen;  /* entry valid when gen[i] == cur_gen */
    uint32_t mask;
    uint32_t cur_gen;
    uint32_t n;
};

/* What a call sent for one window bucket, for updating the sketch cache. */
struct group_ref {
    struct kpi_skc_key key;
    size_t arg; /* index of the sketch argument */
};

struct sent_range {
    char field[KPI_TOPIC_MAX + 16];
    int64_t from, to;
};

/* (set, vid) pairs, e.g. the values of a key group whose `active` is stale. */
struct value_list {
    uint64_t *v; /* set << 32 | vid */
    uint32_t n;
    size_t cap;
};

struct keygroup {
    char *prefix;             /* "kpi:{group.7}:" ("kpi:{group}:" when K = 1) */
    char *offsets_key;        /* prefix + "offsets" */
    int slot;                 /* Redis Cluster slot of its hash tag */
    struct kpi_dcopy base;    /* applied part of the engine's pending delta */
    struct kpi_dcopy attempt; /* the in-doubt call's delta, if any */
    struct sent_range *sent;  /* the in-doubt call's ranges as sent */
    size_t n_sent, sent_cap;
    int applied; /* applied in the current flush (step 4) */
    int hours;   /* the current flush has base-gauge hours in it (flush_once) */
    struct value_list dirty[KPI_MAX_WINDOWS];
};

/* The offsets every key group stored for a partition, from load_offset. */
struct floors {
    char topic[KPI_TOPIC_MAX + 1];
    int32_t partition;
    int64_t *at; /* [k]; -1: none stored */
};

struct redis_sink {
    pthread_mutex_t mu;
    /* configuration */
    char *url;        /* for messages: the password replaced by "***" */
    char *layout_key; /* "<prefix>:{<group>}:key_groups": K of the group's layout */
    int layout_slot;
    int layout_ok;                              /* the stored K matched ours, or was adopted */
    int64_t layout_check_ms, layout_checked_ms; /* check_layout: how often, and when last */
    uint32_t k;           /* 0 until an auto sink has read or recorded the group's K */
    uint32_t new_k;       /* the K an auto sink records for a new group */
    int k_set;            /* redis.key_groups was a number, not auto */
    char *prefix, *group; /* redis.prefix, the group id: key groups are made from them */
    int64_t stream_maxlen, ttl_margin_ms, active_refresh_ms, sketch_cache_bytes;
    int stream_maxlen_auto; /* redis.stream_maxlen = auto: set with K (set_k) */
    struct kpi_redis_conn conn;
    struct keygroup *kgs;
    uint16_t *kg_of[KPI_MAX_SETS]; /* per set, by vid: key group + 1 (0: unknown) */
    uint32_t kg_of_cap[KPI_MAX_SETS];
    struct floors *floors;
    size_t n_floors;
    const struct kpi_dims *dims;       /* of the last delta (for idle calls) */
    const struct kpi_windows *windows; /* likewise */
    int64_t last_watermark;            /* of the last delta */
    int retry_now; /* the last call failed on a connection that was already open */
    /* scratch, reused across flushes */
    struct kpi_agg roll[KPI_MAX_WINDOWS];
    /* The delta's subscriber-base part, per (hour, set, vid): net adds in
     * c.activations and c.churns, snapshots in snap and snaps. */
    struct kpi_agg hours;
    uint32_t roll_cap;
    uint32_t *order[KPI_MAX_WINDOWS]; /* roll cell indexes sorted by key group */
    uint32_t order_cap;
    uint32_t *kg_start; /* [k + 1] per window, rebuilt per window */
    uint32_t *kg_starts[KPI_MAX_WINDOWS];
    struct member_map members;
    struct kpi_argv args;
    struct kpi_skc cache;
    struct group_ref *grefs;
    size_t n_grefs, grefs_cap;
    struct kpi_hll scratch;
    uint8_t *sk_buf; /* KPI_HLL_DENSE_SIZE */
    uint64_t flush_no;
    uint64_t token_seed, token_ctr, token; /* this call's write token */
    /* The hot path (hot.c). */
    int hot_on;                    /* redis.hot_path */
    int hot_marking;               /* kpi_rs_build_args leaves out the cells in hot[] */
    uint8_t *hot[KPI_MAX_WINDOWS]; /* per roll cell: written by the hot path */
    size_t hot_cap[KPI_MAX_WINDOWS];
    struct hot_state *hs;
    struct kpi_redis_stats stats;
    /* A copy of stats for /metrics, taken after every call and flush under
     * stats_mu: a scrape must not wait for mu, which a flush holds for as
     * long as Redis takes. */
    pthread_mutex_t stats_mu;
    struct kpi_redis_stats published;
    uint32_t published_k; /* s->k, for a scrape (0 until the layout is read) */
};

/* sink.c's pieces that hot.c uses */
int kpi_rs_mm_init(struct member_map *m, uint32_t want);
uint32_t kpi_rs_mm_find(const struct member_map *m, uint64_t key, uint32_t *slot);
uint32_t kpi_rs_kg_of(struct redis_sink *s, const struct kpi_dims *dims, uint32_t set,
                      uint32_t vid);
int kpi_rs_grow(void *arrp, size_t *cap, size_t need, size_t elem, size_t first);
int kpi_rs_vl_add(struct value_list *l, uint64_t v);
void kpi_rs_range_field(char *out, size_t cap, const char *topic, int32_t partition);
int kpi_rs_reply_error(struct redis_sink *s, const redisReply *r, char *errstr, size_t errsz,
                       const char *what);
void kpi_rs_sync_conn_stats(struct redis_sink *s);
/* Count a key-group call that started at t0_us (kpi_mono_us): calls, its
 * round trip in the histogram, and the connection's counters. */
void kpi_rs_count_call(struct redis_sink *s, int64_t t0_us);
uint64_t kpi_rs_next_token(struct redis_sink *s);
void kpi_rs_token_hex(char out[17], uint64_t t);
int kpi_rs_push_sketch(struct redis_sink *s, struct kpi_argv *a, struct group_ref *g,
                       const struct kpi_hll *delta);
void kpi_rs_update_cache(struct redis_sink *s, const char *exact, size_t n);
int kpi_rs_take_dirty(struct redis_sink *s, struct keygroup *g, const redisReply *r);
int kpi_rs_prepare_ranges(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d);
int kpi_rs_build_args(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d);
int kpi_rs_script_reply(struct redis_sink *s, struct keygroup *g, const struct kpi_delta *d,
                        const redisReply *r, char *errstr, size_t errsz);
int kpi_rs_call_script(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d, int *in_doubt,
                       char *errstr, size_t errsz);
/* A value's recount phase, 0..999 (flush.lua: the jitter of `active`'s refresh). */
uint32_t kpi_rs_member_phase(const struct kpi_dims *dims, uint32_t set, uint32_t vid);
/* The active-base fallback window's id, or "" (docs/kpis.md). */
const char *kpi_rs_fallback_window(const struct kpi_windows *ws);

/* ---- hot.c ---- */

/* Key group kg's share of d through the hot path (the file's comment);
 * the same contract as kpi_rs_call_script. */
int kpi_rs_call_hot(struct redis_sink *s, uint32_t kg, const struct kpi_delta *d, int *in_doubt,
                    char *errstr, size_t errsz);
void kpi_rs_hot_free(struct hot_state *h);
/* While the hot path builds its script call: whether it applies (set, vid)'s
 * base entries itself (the script must not). */
int kpi_rs_hot_owns_base(const struct redis_sink *s, uint32_t set, uint32_t vid);
/* ... and the values of window w it wrote whose `active` is due: the
 * script recounts them (as trailing values). */
const uint64_t *kpi_rs_hot_due(const struct redis_sink *s, int w, uint32_t *n);
int kpi_rs_hot_recounted(const struct redis_sink *s, int w, uint64_t key);

#endif
