/* delta_fixture.c - see delta_fixture.h. */
#include "support/delta_fixture.h"

#include <string.h>

/* The example is written as positional initialisers that leave the trailing
 * fields zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "engine/hll.h"

int kt_fx_init(struct kt_fixture *f, const char *windows, int64_t lateness_ms, uint32_t max_values,
               uint32_t cells, int32_t partition, char *err, size_t errsz)
{
    memset(f, 0, sizeof(*f));
    if (kpi_dims_init(&f->dims, "region,plan", "region,region+plan", max_values, 64, err, errsz))
        return -1;
    if (kpi_windows_init(&f->windows, windows, lateness_ms, err, errsz)) {
        kpi_dims_fini(&f->dims);
        return -1;
    }
    if (kpi_agg_init(&f->cells, cells)) {
        kpi_dims_fini(&f->dims);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    strcpy(f->range.topic, "events");
    f->range.partition = partition;
    f->seq = 1;
    f->watermark = f->prev_watermark = INT64_MIN;
    return 0;
}

void kt_fx_fini(struct kt_fixture *f)
{
    kpi_agg_fini(&f->cells);
    kpi_dims_fini(&f->dims);
}

int kt_fx_add_hash(struct kt_fixture *f, struct kt_event s, uint64_t sub_hash)
{
    struct kpi_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = s.type;
    ev.ts_ms = s.ts;
    ev.sub_hash = sub_hash;
    ev.amount_micros = s.amount;
    ev.score = (uint8_t)s.score;
    ev.survey = (uint8_t)s.survey;
    ev.has_provision_ms = (uint8_t)s.has_provision_ms;
    ev.provision_ms = s.provision_ms;
    if (s.region) {
        ev.dims[0].ptr = s.region;
        ev.dims[0].len = (uint32_t)strlen(s.region);
    }
    if (s.plan) {
        ev.dims[1].ptr = s.plan;
        ev.dims[1].len = (uint32_t)strlen(s.plan);
    }
    int64_t bucket = kpi_bucket_start(s.ts, f->windows.base_ms);
    for (int set = 0; set < f->dims.n_sets; set++) {
        uint32_t vid = kpi_dims_value_id(&f->dims, set, &ev);
        struct kpi_agg_cell *c = kpi_agg_get(&f->cells, bucket, (uint32_t)set, vid);
        if (!c)
            return -1;
        if (s.type == KPI_EV_BASE) { /* as the engine does (engine.c, add_event) */
            c->snap += (int64_t)s.count;
            c->snaps++;
            continue;
        }
        kpi_counters_count(&c->c, &ev);
        if (kpi_hll_add_hash(&c->hll, ev.sub_hash) < 0)
            return -1;
    }
    f->range.to++;
    return 0;
}

int kt_fx_add(struct kt_fixture *f, struct kt_event s)
{
    return kt_fx_add_hash(f, s, s.sub ? kpi_hll_hash(s.sub, strlen(s.sub)) : 0);
}

int kt_fx_example(struct kt_fixture *f, int64_t t)
{
    static const struct kt_event ex[] = {
        {KPI_EV_USAGE, 100, "1", "eu-west", "prepaid", 2500000},
        {KPI_EV_USAGE, 1200, "2", "eu-west", "postpaid", 1500000},
        {KPI_EV_NPS, 2300, "1", "eu-west", "prepaid", 0, 10, 0},
        {KPI_EV_CHURN, 6000, "3", "eu-west", "prepaid"},
        {KPI_EV_NPS, 7000, "4", "us-east", "prepaid", 0, 5, 0},
        {KPI_EV_ACTIVATION, 8000, "4", "us-east", "prepaid"},
        {KPI_EV_NPS, 9000, "2", "eu-west", "postpaid", 0, 8, 1},
    };
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
        struct kt_event e = ex[i];
        e.ts += t;
        if (kt_fx_add(f, e))
            return -1;
    }
    return 0;
}

struct kpi_delta kt_fx_delta(struct kt_fixture *f, int64_t watermark)
{
    struct kpi_delta d = {
        .seq = f->seq,
        .dims = &f->dims,
        .windows = &f->windows,
        .cells = &f->cells,
        .ranges = &f->range,
        .n_ranges = f->range.to > f->range.from,
        .watermark = watermark,
        .prev_watermark = f->prev_watermark,
    };
    return d;
}

int kt_fx_flush(struct kt_fixture *f, struct kpi_sink *sink, int64_t watermark, char *err,
                size_t errsz)
{
    f->watermark = watermark;
    struct kpi_delta d = kt_fx_delta(f, watermark);
    int rc = sink->ops->flush(sink->self, &d, err, errsz);
    if (rc == 0) {
        f->seq++;
        f->prev_watermark = watermark;
        f->range.from = f->range.to;
        kpi_agg_reset(&f->cells);
    }
    return rc;
}
