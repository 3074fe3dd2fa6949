/*
 * population.h - who the generated subscribers are: the regions, plans and
 * segments the traffic generator (gen.c) spreads them over, and the weights
 * it spreads them with.
 *
 * One table per dimension, shared by the generator (which draws each
 * subscriber's attributes from the weights) and the truth oracle (truth.c,
 * which labels its cells with the same names and indexes them in the same
 * order).  Keeping them in one place is what lets the truth label a value
 * exactly as the engine will: "eu-west|prepaid".
 *
 *   regions   8, Zipf-like: weight 1/k for the k-th (eu-west largest, mea
 *             smallest); the generator computes those weights itself
 *   segments  5, fixed shares (consumer 52 %, youth 18 %, ...)
 *   plans     6, a distribution per segment (youth mostly prepaid,
 *             enterprise mostly business)
 *
 * A subscriber's attributes are a function of its number alone (gen.c,
 * attrs()): the population does not depend on the seed.
 */
#ifndef KPI_GEN_POPULATION_H
#define KPI_GEN_POPULATION_H

#include <stddef.h>

#define KPI_GEN_NREG  8
#define KPI_GEN_NPLAN 6
#define KPI_GEN_NSEG  5

/* Largest first. */
extern const char *const kpi_gen_regions[KPI_GEN_NREG];
extern const char *const kpi_gen_plans[KPI_GEN_NPLAN];
extern const char *const kpi_gen_segments[KPI_GEN_NSEG];
/* Share of each segment. */
extern const double kpi_gen_segment_w[KPI_GEN_NSEG];
/* Share of each plan within a segment: [segment][plan]. */
extern const double kpi_gen_plan_w[KPI_GEN_NSEG][KPI_GEN_NPLAN];

/* The index of names[i] equal to name[0, len), or -1. */
int kpi_gen_name_index(const char *const *names, int n, const char *name, size_t len);

int kpi_gen_n_regions(void);
int kpi_gen_n_plans(void);
int kpi_gen_n_segments(void);
/* The i-th name, or NULL when i is out of range. */
const char *kpi_gen_region_name(int i);
const char *kpi_gen_plan_name(int i);
const char *kpi_gen_segment_name(int i);
/* Index of a name, or -1. */
int kpi_gen_region_index(const char *name);
int kpi_gen_segment_index(const char *name);

#endif
