/* population.c - the generated population's dimensions (see population.h). */
#include "gen/population.h"

#include <string.h>

/* Largest first: regions follow a Zipf law (weight 1/k). */
const char *const kpi_gen_regions[KPI_GEN_NREG] = {"eu-west", "us-east",  "eu-north", "apac",
                                                   "us-west", "eu-south", "latam",    "mea"};
const char *const kpi_gen_plans[KPI_GEN_NPLAN] = {"prepaid",    "postpaid-s", "postpaid-m",
                                                  "postpaid-l", "family",     "business"};
const char *const kpi_gen_segments[KPI_GEN_NSEG] = {"consumer", "youth", "senior", "smb",
                                                    "enterprise"};
const double kpi_gen_segment_w[KPI_GEN_NSEG] = {0.52, 0.18, 0.14, 0.11, 0.05};
/* A subscriber's plan depends on its segment. */
const double kpi_gen_plan_w[KPI_GEN_NSEG][KPI_GEN_NPLAN] = {
    {0.35, 0.20, 0.20, 0.08, 0.17, 0.00}, /* consumer */
    {0.70, 0.15, 0.10, 0.03, 0.02, 0.00}, /* youth */
    {0.45, 0.30, 0.12, 0.03, 0.10, 0.00}, /* senior */
    {0.05, 0.10, 0.15, 0.15, 0.00, 0.55}, /* smb */
    {0.00, 0.02, 0.05, 0.13, 0.00, 0.80}, /* enterprise */
};

int kpi_gen_n_regions(void)
{
    return KPI_GEN_NREG;
}
int kpi_gen_n_plans(void)
{
    return KPI_GEN_NPLAN;
}
int kpi_gen_n_segments(void)
{
    return KPI_GEN_NSEG;
}
const char *kpi_gen_region_name(int i)
{
    return i >= 0 && i < KPI_GEN_NREG ? kpi_gen_regions[i] : NULL;
}
const char *kpi_gen_plan_name(int i)
{
    return i >= 0 && i < KPI_GEN_NPLAN ? kpi_gen_plans[i] : NULL;
}
const char *kpi_gen_segment_name(int i)
{
    return i >= 0 && i < KPI_GEN_NSEG ? kpi_gen_segments[i] : NULL;
}

int kpi_gen_name_index(const char *const *names, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return i;
    return -1;
}

int kpi_gen_region_index(const char *name)
{
    return name ? kpi_gen_name_index(kpi_gen_regions, KPI_GEN_NREG, name, strlen(name)) : -1;
}

int kpi_gen_segment_index(const char *name)
{
    return name ? kpi_gen_name_index(kpi_gen_segments, KPI_GEN_NSEG, name, strlen(name)) : -1;
}
