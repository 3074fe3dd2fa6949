/*
 * kpiread.h - every read of the group's KPIs by the HTTP API, the alerter and
 * the demo, in one place.
 *
 * Two stores answer the same questions:
 *
 *   Redis   the group's keys as docs/redis-schema.md lays them out.  This
 *           file's .c is the ONLY place outside the sink that knows a key
 *           name: when the layout changes (schema v2 splits a group's keys
 *           into key groups, each with its own leaderboard and stream), the
 *           readers change here and nowhere else.  The alerter's two writes
 *           (the once-per-group marker and the alert stream) live here too,
 *           for the same reason.
 *   memory  the in-memory sink's state (sinks/stdout.h) of this process, for
 *           the demo without Redis; alerts are kept in a bounded ring.
 *
 * Every call is bounded: a page reads at most `limit` hashes, a search reads
 * the leaderboard in chunks up to KPIREAD_SCAN_MAX members, a series reads
 * the stream back in chunks up to KPIREAD_SCAN_MAX entries.  Nothing scans
 * the keyspace except kpiread_wipe_group (the demo's fresh start).
 *
 * Thread safety: every function may be called from any thread.  The Redis
 * store keeps a small pool of connection sets (one per concurrent caller, up
 * to `pool`; callers beyond wait), each routing commands by slot to a
 * standalone Redis or the masters of a Redis Cluster (sinks/redis/conn.h),
 * and reconnects after an error; an unreachable Redis is KPI_ERR_IO.
 */
#ifndef KPI_KPIREAD_H
#define KPI_KPIREAD_H

#include <stddef.h>
#include <stdint.h>

#include "engine/dims.h"
#include "engine/kpi.h"
#include "sinks/sink.h"
#include "engine/window.h"

/* Members of a leaderboard or entries of a stream one request may read. */
#define KPIREAD_SCAN_MAX 100000

struct kpiread;

struct kpiread_redis_conf {
    const char *url;     /* redis:// or unix: URL */
    const char *prefix;  /* "kpi" */
    const char *group;   /* the consumer group: the hash tag */
    int64_t timeout_ms;  /* connect and command timeout */
    int pool;            /* connections kept at most (>= 1) */
    uint32_t key_groups; /* redis.key_groups; 0: auto, the group's (docs/redis-schema.md) */
};

/* The configuration is copied; windows and dims must outlive the reader.
 * Redis need not be up.  NULL only when out of memory. */
struct kpiread *kpiread_new_redis(const struct kpiread_redis_conf *c,
                                  const struct kpi_windows *windows, const struct kpi_dims *dims);
/* Reads the in-memory sink `sink` (sinks/stdout.h) that engine `e` flushes
 * to; both must outlive the reader.  alerts_keep: alerts remembered (ring). */
struct kpi_engine;
struct kpiread *kpiread_new_memory(const struct kpi_sink *sink, struct kpi_engine *e,
                                   size_t alerts_keep);
void kpiread_destroy(struct kpiread *r);
/* "redis" or "memory". */
const char *kpiread_store(const struct kpiread *r);

/* The group's clock.  Fields unknown yet are INT64_MIN (flushes 0). */
struct kpiread_meta {
    uint64_t flushes;                /* deltas applied, all instances */
    int64_t as_of_ms;                /* wall clock of the last applied delta */
    int64_t watermark_ms;            /* event-time watermark */
    int64_t head[KPI_MAX_WINDOWS];   /* per window: newest bucket of the current instance */
    int64_t closed[KPI_MAX_WINDOWS]; /* per window: every bucket before it is closed */
    int64_t first[KPI_MAX_WINDOWS];  /* per window: the oldest bucket ever written */
};
int kpiread_meta(struct kpiread *r, struct kpiread_meta *m, char *errstr, size_t errstr_size);

struct kpiread_row {
    char *value; /* NUL-terminated (values are bytes; a NUL inside is not expected) */
    struct kpi_values v;
};
struct kpiread_page {
    struct kpiread_row *rows;
    size_t n;
    uint64_t total;  /* values in the set (matching q when given) */
    int total_exact; /* 0 when a search stopped at KPIREAD_SCAN_MAX */
};
/* The values of a grouping set in the current instance of window `w` (an
 * index into the windows), by events descending, rows [offset, offset +
 * limit), those containing q (case-insensitive) when q is non-empty.  A value
 * whose hash vanished between the leaderboard and the hash (it expired) is
 * left out of the page.  set must be a configured set name ("all" too). */
int kpiread_values(struct kpiread *r, int w, const char *set, uint64_t offset, uint32_t limit,
                   const char *q, struct kpiread_page *out, char *errstr, size_t errstr_size);
void kpiread_page_free(struct kpiread_page *p);

/* One value's rolling KPIs.  *found = 0 (and zero counters) when it has no
 * data in the current instance. */
int kpiread_hash(struct kpiread *r, int w, const char *set, const char *value,
                 struct kpi_values *out, int *found, char *errstr, size_t errstr_size);

/* Closed buckets' own KPIs, oldest first, the last `max` closed buckets of
 * the value that have data (the highest `rev` of each). */
struct kpiread_point {
    int64_t bucket, end;
    int64_t rev;
    struct kpi_values v;
};
int kpiread_series(struct kpiread *r, int w, const char *set, const char *value,
                   struct kpiread_point *out, size_t max, size_t *n, char *errstr,
                   size_t errstr_size);

/* ---- alerts ---- */

struct kpiread_alert {
    char id[48]; /* position in the alert log: "<ms>-<seq>", increasing */
    int raised;  /* 1 raised, 0 resolved */
    char window[KPI_WINDOW_NAME_MAX];
    char set[KPI_SET_NAME_MAX];
    char value[512];
    double rate, baseline, threshold;
    uint64_t active;
    int64_t bucket_end;
};
/* after == NULL: the newest `limit` alerts, newest first.  Else the alerts
 * logged after the id `after`, oldest first, at most `limit`.  *out is
 * malloc'd (free it). */
int kpiread_alerts(struct kpiread *r, const char *after, size_t limit, struct kpiread_alert **out,
                   size_t *n, char *errstr, size_t errstr_size);
/* The id of the newest alert ("0-0" when none): where a follower starts. */
int kpiread_alerts_last_id(struct kpiread *r, char *id, size_t size, char *errstr,
                           size_t errstr_size);
/* Record an alert once per group: 1 if this call recorded it (the caller
 * delivers it; also when an earlier call of this reader recorded it and its
 * reply was lost), 0 if another instance already had (same window, set,
 * value, bucket_end and state), <0 on error, when nothing was recorded and
 * the caller must try again.  Appends to the alert log (bounded by maxlen)
 * and publishes `json` on the alert channel `channel`, all in one atomic
 * step. */
int kpiread_alert_record(struct kpiread *r, const struct kpiread_alert *a, const char *json,
                         const char *channel, int64_t maxlen, char *errstr, size_t errstr_size);

/* Delete every key of the group (the demo's fresh start; Redis only). */
int kpiread_wipe_group(struct kpiread *r, char *errstr, size_t errstr_size);
/* 0 when the store answers (PING). */
int kpiread_ping(struct kpiread *r, char *errstr, size_t errstr_size);

#endif
