/*
 * delta_copy.c - counters of an engine delta kept across calls (redis_int.h).
 *
 * The sink keeps, per key group, the counters of a call whose reply was lost
 * (in doubt) and of the part of the engine's pending delta a key group has
 * already applied, so that a retry sends only what is new
 * (docs/exactly-once.md, "Lost replies").  Sketches are not copied: merging a
 * sketch twice changes nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "sinks/redis/redis_int.h"

void kpi_dcopy_clear(struct kpi_dcopy *c)
{
    if (c->cells.cells)
        kpi_agg_reset(&c->cells);
    c->n_ranges = 0;
    c->valid = 0;
}

void kpi_dcopy_free(struct kpi_dcopy *c)
{
    if (c->cells.cells)
        kpi_agg_fini(&c->cells);
    free(c->ranges);
    memset(c, 0, sizeof(*c));
}

int kpi_dcopy_copy(struct kpi_dcopy *c, const struct kpi_delta *d,
                   int (*keep)(void *ctx, uint32_t set, uint32_t vid), void *ctx)
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
        if (keep && !keep(ctx, src->set, src->vid))
            continue;
        struct kpi_agg_cell *dst = kpi_agg_get(&c->cells, src->bucket, src->set, src->vid);
        dst->c = src->c;
        dst->snap = src->snap;
        dst->snaps = src->snaps;
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

void kpi_dcopy_swap(struct kpi_dcopy *a, struct kpi_dcopy *b)
{
    struct kpi_dcopy t = *a;
    *a = *b;
    *b = t;
}

int64_t kpi_dcopy_range_to(const struct kpi_dcopy *c, const char *topic, int32_t partition)
{
    if (!c->valid)
        return -1;
    for (size_t i = 0; i < c->n_ranges; i++)
        if (c->ranges[i].partition == partition && strcmp(c->ranges[i].topic, topic) == 0)
            return c->ranges[i].to;
    return -1;
}
