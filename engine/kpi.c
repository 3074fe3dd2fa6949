/* kpi.c - counter arithmetic and KPI formulas (see kpi.h and kpi_schema.h). */
#include "engine/kpi.h"

#include <inttypes.h>
#include <string.h>

#include "base/json.h"

#define NAME_(name, when, add, doc) #name,
const char *const kpi_counter_names[KPI_NCOUNTERS] = {KPI_COUNTERS(NAME_)};
#undef NAME_

#define DEF_(name, num, den, head, fmt, scale, doc) {#name, head, fmt, scale},
const struct kpi_derived_def kpi_derived_defs[KPI_NDERIVED] = {KPI_DERIVED(DEF_)};
#undef DEF_

void kpi_counters_add(struct kpi_counters *dst, const struct kpi_counters *src)
{
    for (size_t i = 0; i < KPI_NCOUNTERS; i++)
        dst->v[i] = kpi_sat_add(dst->v[i], src->v[i]);
}

void kpi_counters_sub(struct kpi_counters *dst, const struct kpi_counters *src)
{
    for (size_t i = 0; i < KPI_NCOUNTERS; i++)
        dst->v[i] = kpi_sat_add(dst->v[i], src->v[i] == INT64_MIN ? INT64_MAX : -src->v[i]);
}

int kpi_counters_is_zero(const struct kpi_counters *c)
{
    static const struct kpi_counters zero;
    return memcmp(c, &zero, sizeof(zero)) == 0;
}

double kpi_nps(const int64_t counts[3])
{
    int64_t n = counts[KPI_NPS_PROMOTERS] + counts[KPI_NPS_PASSIVES] + counts[KPI_NPS_DETRACTORS];
    if (n <= 0)
        return 0.0;
    return 100.0 * (double)(counts[KPI_NPS_PROMOTERS] - counts[KPI_NPS_DETRACTORS]) / (double)n;
}

/* The formulas, as kpi_schema.h writes them: name = num / den when den > 0.
 * The Redis script computes the same expressions (tools/kpi_schema_lua.c). */
#define KPI_C(name) ((double)c->name)
#define KPI_ACTIVE  ((double)active)
#define KPI_BASE    (has_base ? base : 0.0)
#define KPI_SPAN_MS ((double)span_ms)
#define FORMULA_(name, num, den, head, fmt, scale, doc)                                            \
    {                                                                                              \
        double d = (den);                                                                          \
        if ((v->has_##name = d > 0))                                                               \
            v->name = (num) / d;                                                                   \
    }

void kpi_values_compute_base(struct kpi_values *v, const struct kpi_counters *c, uint64_t active,
                             int has_base, double base, int64_t span_ms)
{
    memset(v, 0, sizeof(*v));
    v->c = *c;
    v->active = active;
    v->has_base = has_base;
    v->base = has_base ? base : 0.0;
    v->base_source = has_base ? KPI_BASE_SNAPSHOT : KPI_BASE_NONE;
    KPI_DERIVED(FORMULA_)
}

void kpi_values_compute(struct kpi_values *v, const struct kpi_counters *c, uint64_t active)
{
    kpi_values_compute_base(v, c, active, 0, 0.0, 0);
}

void kpi_values_write_json(FILE *f, const struct kpi_values *v)
{
    for (int i = 0; i < KPI_NCOUNTERS; i++)
        fprintf(f, "%s\"%s\":%" PRId64, i ? "," : "", kpi_counter_names[i], v->c.v[i]);
    fprintf(f, ",\"active\":%" PRIu64, v->active);
    for (int i = 0; i < KPI_NDERIVED; i++) {
        fprintf(f, ",\"%s\":", kpi_derived_defs[i].name);
        kpi_json_num(f, v->has[i], v->derived[i]);
    }
    if (v->has_base)
        fprintf(f, ",\"base\":%.0f", v->base); /* an integer: every digit */
    else
        fputs(",\"base\":null", f);
    static const char *const src[] = {"null", "\"snapshot\"", "\"active\""};
    fprintf(f, ",\"base_source\":%s", src[(unsigned)v->base_source < 3 ? v->base_source : 0]);
}
