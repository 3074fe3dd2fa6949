/*
 * dims.h - dimensions, grouping sets and their value ids.
 *
 * An engine is configured with dimension fields (e.g. region, plan, segment)
 * and grouping sets: combinations of them to aggregate by (e.g. "region",
 * "region+plan", "segment").  Set 0 is always "all", the total, with the one
 * value "all".  An event's value in a set is its dimension values joined by
 * '|' ("eu-west|prepaid"); a missing dimension counts as "__none__".  Values
 * are interned into small per-set ids shared by all workers (intern.h); past
 * the set's cardinality limit new values fold into id 0, "__other__".
 */
#ifndef KPI_DIMS_H
#define KPI_DIMS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"
#include "engine/intern.h"

#define KPI_MAX_SETS     16
#define KPI_DIM_NAME_MAX 32
#define KPI_SET_NAME_MAX (KPI_MAX_DIMS * (KPI_DIM_NAME_MAX + 1))
#define KPI_VALUE_OTHER  0u /* "__other__": folded past the cardinality limit */
#define KPI_VALUE_ALL    1u /* the one value of set 0 */
#define KPI_OTHER_LABEL  "__other__"
#define KPI_NONE_LABEL   "__none__"

struct kpi_grouping_set {
    char name[KPI_SET_NAME_MAX]; /* "all", "region", "region+plan" */
    int n_dims;
    uint8_t dims[KPI_MAX_DIMS]; /* dimension indexes, in the order named */
};

struct kpi_dims {
    int n_dims;
    char dim_names[KPI_MAX_DIMS][KPI_DIM_NAME_MAX];
    const char *dim_name_ptrs[KPI_MAX_DIMS]; /* for kpi_decoder_init */
    int n_sets;                              /* including set 0, "all" */
    struct kpi_grouping_set sets[KPI_MAX_SETS];
    uint32_t card_limit;                    /* per set */
    uint32_t max_value_len;                 /* longest joined value */
    struct kpi_intern intern[KPI_MAX_SETS]; /* intern[0] unused */
};

/* dims_csv: "region,plan,segment"; sets: grouping sets separated by ',' or
 * ';', dimensions joined by '+': "region,region+plan,segment" ("all" may be
 * listed; it is always present).  max_str_len bounds one dimension value.
 * 0, or KPI_ERR_INVAL / KPI_ERR_NOMEM with a message naming the bad part. */
int kpi_dims_init(struct kpi_dims *d, const char *dims_csv, const char *sets, uint32_t card_limit,
                  uint32_t max_str_len, char *errstr, size_t errstr_size);
void kpi_dims_fini(struct kpi_dims *d);

/* The id of ev's value in grouping set `set` (1 <= set < n_sets); set 0 is
 * always KPI_VALUE_ALL.  Lock-free; may return KPI_VALUE_OTHER. */
uint32_t kpi_dims_value_id(struct kpi_dims *d, int set, const struct kpi_event *ev);

/* The label of a value id (see kpi_intern_key for when an id may be read).
 * Returns "all" for set 0 and "__other__" for KPI_VALUE_OTHER. */
const char *kpi_dims_value_label(const struct kpi_dims *d, int set, uint32_t id, uint32_t *len);

/* Values interned so far in a set (not counting "__other__"). */
uint32_t kpi_dims_value_count(const struct kpi_dims *d, int set);

/* Index of a grouping set by name, or -1. */
int kpi_dims_set_index(const struct kpi_dims *d, const char *name);

#endif
