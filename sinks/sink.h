/*
 * sink.h - the interface every sink implements (Fluent Bit's output plugins
 * are the model: a struct of callbacks, the core never includes a sink's
 * headers).
 *
 * A sink receives the engine's deltas (engine.h: struct kpi_delta): the
 * counters and sketches of every (base bucket, grouping-set value) that
 * changed since the last applied delta, and for every input (partition) the
 * offset range [from, to) whose events they hold.  A sink that stores offsets
 * (Redis) applies a delta atomically and only if its stored offset for every
 * range equals `from`, which makes replays harmless and fences zombies; it
 * also answers where a partition resumes (load_offset).
 */
#ifndef KPI_SINK_H
#define KPI_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct kpi_sink_ops {
    const char *name;
    /* Apply a delta.  0: applied (or already applied before: a replay);
     * KPI_ERR_IO: not applied, retry later; KPI_ERR_CONFLICT: the stored
     * offsets show another instance consumed these inputs (fenced). */
    int (*flush)(void *self, const struct kpi_delta *d, char *errstr, size_t errstr_size);
    /* Where a partition resumes: *offset = the stored next offset, or -1 when
     * the sink holds none (start from the consumer's default).  0 or
     * KPI_ERR_IO.  NULL for sinks that store no offsets. */
    int (*load_offset)(void *self, const char *topic, int32_t partition, int64_t *offset,
                       char *errstr, size_t errstr_size);
    /* After load_offset, for a sink with key groups (engine/keygroup.h):
     * when its key groups stored different offsets for the partition,
     * floors[kg] = each one's (n = the number of key groups), to hand to
     * kpi_engine_input_open_floors; else *n = 0.  NULL: none. */
    int (*load_floors)(void *self, const char *topic, int32_t partition, int64_t *floors,
                       uint32_t max, uint32_t *n);
    /* The engine had nothing to flush this interval: a chance to finish
     * deferred work (the Redis sink recounts stale `active`).  0 or a
     * kpi_err (retried at the next idle interval).  NULL: none. */
    int (*idle)(void *self, char *errstr, size_t errstr_size);
    void (*destroy)(void *self);
};

struct kpi_sink {
    const struct kpi_sink_ops *ops;
    void *self;
};

/* Adapt a sink to the engine's flush target. */
static inline struct kpi_flush_target kpi_sink_target(struct kpi_sink *s)
{
    struct kpi_flush_target t = {s->self, s->ops->flush, s->ops->idle};
    return t;
}

static inline void kpi_sink_destroy(struct kpi_sink *s)
{
    if (s && s->ops && s->ops->destroy)
        s->ops->destroy(s->self);
}

#endif
