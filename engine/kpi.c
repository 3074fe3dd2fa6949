/* kpi.c - counter arithmetic and KPI formulas (see kpi.h for definitions). */
#include "kpi.h"

#include <string.h>

#define NCOUNTERS (sizeof(struct kpi_counters) / sizeof(int64_t))

void kpi_counters_add(struct kpi_counters *dst, const struct kpi_counters *src)
{
    int64_t *d = (int64_t *)dst;
    const int64_t *s = (const int64_t *)src;
    for (size_t i = 0; i < NCOUNTERS; i++)
        d[i] = kpi_sat_add(d[i], s[i]);
}

void kpi_counters_sub(struct kpi_counters *dst, const struct kpi_counters *src)
{
    int64_t *d = (int64_t *)dst;
    const int64_t *s = (const int64_t *)src;
    for (size_t i = 0; i < NCOUNTERS; i++)
        d[i] = kpi_sat_add(d[i], s[i] == INT64_MIN ? INT64_MAX : -s[i]);
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

static int responses(const int64_t counts[3])
{
    return counts[0] + counts[1] + counts[2] > 0;
}

void kpi_values_compute(struct kpi_values *v, const struct kpi_counters *c, uint64_t active)
{
    memset(v, 0, sizeof(*v));
    v->c = *c;
    v->active = active;
    if (active > 0) {
        v->has_churn_rate = v->has_arpu = 1;
        v->churn_rate = (double)c->churns / (double)active;
        v->arpu = (double)c->revenue / 1e6 / (double)active;
    }
    if ((v->has_nps_network = responses(c->nps[KPI_SURVEY_NETWORK])))
        v->nps_network = kpi_nps(c->nps[KPI_SURVEY_NETWORK]);
    if ((v->has_nps_brand = responses(c->nps[KPI_SURVEY_BRAND])))
        v->nps_brand = kpi_nps(c->nps[KPI_SURVEY_BRAND]);
}
