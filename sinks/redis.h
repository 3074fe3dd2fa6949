/*
 * redis.h - the Redis sink: every engine delta becomes one atomic Lua call
 * (sinks/redis/flush.lua, a Redis function run with FCALL) that checks and advances the
 * consumer group's per-partition offsets, adds the counters to per-bucket
 * hashes, merges the sketches, keeps a rolling "current window" KPI hash per
 * (window, grouping-set value) and appends closed buckets to per-window
 * streams.  Key schema: docs/redis-schema.md.  Why it is exactly-once:
 * docs/exactly-once.md.
 *
 * The C side does everything that needs no Redis state: it rolls the delta's
 * base-bucket cells up into every window's buckets (counters summed, sketches
 * merged with kpi_hll_merge) and serializes each window bucket's sketch in
 * Redis's own HLL format, so the script only adds, SETs or PFMERGEs.
 *
 * Failures.  Any connection error frees the connection and returns
 * KPI_ERR_IO; the engine keeps the delta and retries with backoff, and the
 * next call reconnects (connect/command timeouts from the configuration).
 * The sink keeps no data of its own, with one exception that makes lost
 * replies safe: when a call failed after the script may have run, the sink
 * remembers the counters of that attempt, asks Redis on the next call whether
 * it was applied (its offsets tell), and if so sends only what the engine
 * added since.  A function that Redis lost (a restart without persistence,
 * FUNCTION FLUSH) is loaded again (conn.h).
 *
 * Thread safety: flush (the engine's flusher thread), load_offset (the
 * source's rebalance callback) and kpi_sink_redis_get_stats may be called from
 * different threads; the sink serialises them on its one connection.
 */
#ifndef KPI_SINK_REDIS_H
#define KPI_SINK_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sinks/sink.h"

#define KPI_REDIS_URL_DEFAULT    "redis://127.0.0.1:6379"
#define KPI_REDIS_PREFIX_DEFAULT "kpi"
#define KPI_REDIS_GROUP_DEFAULT  "kpistream"

struct kpi_redis_conf {
    /* redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N];
     * user and password may be %-encoded.  NULL: KPI_REDIS_URL_DEFAULT. */
    const char *url;
    /* First component of every key ("acme:kpi" is fine).  No '{' or '}'.  NULL: "kpi". */
    const char *prefix;
    /* Consumer group id: offsets are per group, and the group is the hash tag
     * of every key ("kpi:{<group>}:..."), so one Lua call touches one Redis
     * Cluster slot.  No '{' or '}'.  NULL: "kpistream". */
    const char *group;
    int64_t connect_timeout_ms; /* default 2000 */
    int64_t command_timeout_ms; /* default 10000; a flush's Lua call must fit */
    /* Each key group's per-window streams: XADD MAXLEN ~ N.  Default 0
     * (auto): KPI_REDIS_STREAM_ENTRIES_AUTO / K, so that a group keeps
     * about that many entries per window whatever its K. */
    int64_t stream_maxlen;
    /* Bucket keys live window size + slide + lateness + this margin after
     * their last write; rolling keys as long after theirs (docs/redis-schema.md).
     * Default 600000 (10 min). */
    int64_t ttl_margin_ms;
    /* The rolling hashes' `active` (and the KPIs derived from it) is
     * recounted at most every min(slide, this) ms per value, jittered per
     * value (counters are always current); 0 recounts on every flush.
     * Default 10000.  See docs/redis-schema.md, "Cost". */
    int64_t active_refresh_ms;
    /* Sketches of the buckets still being written that this sink keeps to
     * turn Redis-side PFMERGEs into SETs, in bytes.  Default 64 MiB; 0 turns
     * the cache off. */
    int64_t sketch_cache_bytes;
    /* Key groups (engine/keygroup.h): the group's values are spread over
     * this many hash tags, each with its own offsets fence, so one group can
     * use every master of a Redis Cluster and no single call holds a whole
     * flush.  1 keeps every key under "{<group>}".  All instances of a
     * group must agree, so the first sink records K in Redis.  Default 0
     * (auto): the K the group recorded, or kpi_redis_auto_key_groups(
     * max_values) for a new group (docs/redis-schema.md, "Key groups"). */
    int64_t key_groups;
    /* dimensions.max_values, the most values a grouping set can have: what
     * an auto K is sized for.  Default 0: 10 000, the engine's default. */
    int64_t max_values;
    /* 1: every key group's call is one script call, as before the hot path
     * (sinks/redis/hot.c).  Default 0: the common part of a flush is
     * computed in the sink and written with plain commands, in one
     * MULTI/EXEC with the script. */
    int no_hot_path;
    /* A flush checks the group's recorded K again (sink.c, check_layout)
     * when its last check is at least this old, in ms: every flush at the
     * default 1 s interval.  Default 1000; 0: before every flush. */
    int64_t layout_check_ms;
};

/* The K an auto sink records for a new group whose sets may hold
 * max_values values: about one key group per 80 values, which keeps each
 * call of a 1 s flush near 20 ms (README, "High cardinality"), as a power
 * of two from 16 to 1 024.  128 for the default 10 000 values
 * (KPI_REDIS_KEY_GROUPS_DEFAULT).  Groups made with another K keep it. */
uint32_t kpi_redis_auto_key_groups(int64_t max_values);
#define KPI_REDIS_KEY_GROUPS_DEFAULT 128
/* An auto redis.stream_maxlen: a group's streams keep about this many
 * entries per window in all (10 000 per key group at K = 16). */
#define KPI_REDIS_STREAM_ENTRIES_AUTO 160000

void kpi_redis_conf_defaults(struct kpi_redis_conf *c);

/* A Redis sink (ops: flush, load_offset, destroy).  The configuration is
 * copied.  It does not need Redis to be up: it connects on first use, and
 * returns ops == NULL (with errstr set) only for a bad configuration. */
struct kpi_sink kpi_sink_redis_new(const struct kpi_redis_conf *conf, char *errstr,
                                   size_t errstr_size);

/* The bounds of kpi_redis_stats.call_hist, in microseconds: 1 ms to 10 s,
 * with 50 ms (the longest call a dashboard should wait for) among them. */
#define KPI_REDIS_CALL_BUCKETS 13
extern const uint32_t kpi_redis_call_bucket_us[KPI_REDIS_CALL_BUCKETS];

struct kpi_redis_stats {
    uint64_t flushes;         /* deltas applied */
    uint64_t calls;           /* script calls (K per flush, plus idle recounts) */
    uint64_t replays;         /* deltas Redis already held ("dup") */
    uint64_t conflicts;       /* deltas refused: another writer owns a partition */
    uint64_t io_errors;       /* failed calls (connection, timeout, error reply) */
    uint64_t connects;        /* successful (re)connections */
    uint64_t script_loads;    /* FUNCTION LOADs (one per connection) */
    uint64_t in_doubt;        /* calls whose outcome had to be asked afterwards */
    uint64_t stream_entries;  /* closed-bucket and amendment entries appended */
    uint64_t rebuilds;        /* rolling hashes rebuilt from their buckets */
    uint64_t sketch_errors;   /* HLL commands Redis refused (estimate affected) */
    uint64_t sketch_sets;     /* bucket sketches written whole (no merge in Redis) */
    uint64_t sketch_merges;   /* bucket sketches Redis had to PFMERGE */
    uint64_t redirects;       /* MOVED/ASK replies followed (Redis Cluster) */
    uint64_t round_trips;     /* requests written and waited for (conn.h) */
    uint64_t saturated;       /* counters that would have passed int64 (set to the limit) */
    uint64_t recount_calls;   /* idle calls that only recounted stale `active` */
    uint64_t hot_cells;       /* window buckets written by the hot path (not the script) */
    uint64_t txn_retries;     /* hot-path transactions run again: another writer came first */
    uint64_t sketch_reads;    /* bucket sketches another writer touched, read and merged here */
    uint64_t hot_recounts;    /* `active` recounts done here from the sketches (not in Redis) */
    uint64_t last_call_us;    /* round trip of the last flush call */
    uint64_t last_args_bytes; /* payload size of the last flush call */
    /* Key-group calls by round trip: call_hist[i] counts those of at most
     * kpi_redis_call_bucket_us[i] (and more than the bucket before); the
     * last, the slower ones.  A round trip bounds from above how long the
     * call (a transaction or a script call) kept Redis from every other
     * client. */
    uint64_t call_hist[KPI_REDIS_CALL_BUCKETS + 1];
    uint64_t call_us_sum;
};

/* Counters of a sink made by kpi_sink_redis_new.  Thread-safe. */
void kpi_sink_redis_get_stats(const struct kpi_sink *s, struct kpi_redis_stats *out);

/* /metrics lines of the sink (Prometheus text format): its calls, their
 * round trips, errors, redirects and the rest of kpi_redis_stats that an
 * operator watches (README, "Metrics").  Thread-safe. */
void kpi_sink_redis_write_metrics(const struct kpi_sink *s, FILE *out);

/* Key group kg's key prefix with its hash tag, "kpi:{group.3}:" ("kpi:{group}:"
 * with one key group), as the sink builds it. */
const char *kpi_sink_redis_key_prefix(const struct kpi_sink *s, uint32_t kg);
/* The sink's number of key groups: 0 for an auto sink until its first
 * load_offset or flush has read the group's K. */
uint32_t kpi_sink_redis_key_groups(const struct kpi_sink *s);

/* Key names for readers (the alerter, the demo view, the HTTP API, tests):
 * the prefix "kpi:{group.kg}:" of key group kg of K ("kpi:{group}:" when K
 * is 1), and of the key group holding a grouping-set value (CRC16 of
 * "<set>:<value>" mod K, engine/keygroup.h).  0, or KPI_ERR_INVAL when cap
 * is too small. */
int kpi_redis_kg_prefix(char *out, size_t cap, const char *prefix, const char *group, uint32_t k,
                        uint32_t kg);
/* The K recorded in <prefix>:{<group>}:key_groups (docs/redis-schema.md):
 * 0 with *k set when text is a decimal in 1..KPI_MAX_KEY_GROUPS, else -1. */
int kpi_redis_parse_key_groups(const char *text, uint32_t *k);
int kpi_redis_value_prefix(char *out, size_t cap, const char *prefix, const char *group, uint32_t k,
                           const char *set, const char *value, size_t value_len);

#endif
