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

#endif
