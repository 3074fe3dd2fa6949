/* Dimensions and grouping sets: configuration, labels, __none__ and __other__. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/dims.h"
#include "support/dims_event.h"
#include "engine/err.h"

static const char *label(struct kpi_dims *d, int set, uint32_t id)
{
    static char buf[256];
    uint32_t len;
    const char *s = kpi_dims_value_label(d, set, id, &len);
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

Test(dims, set_zero_is_always_all)
{
    struct kpi_dims d;
    cr_assert_eq(
        kpi_dims_init(&d, "region,plan,segment", "region,region+plan,segment", 100, 64, NULL, 0),
        0);
    cr_assert_eq(d.n_sets, 4);
    cr_assert_str_eq(d.sets[0].name, "all");
    cr_assert_str_eq(d.sets[2].name, "region+plan");
    cr_assert_eq(d.sets[2].n_dims, 2);
    struct kpi_event e = kt_event_dims("eu", "gold", "smb");
    cr_assert_eq(kpi_dims_value_id(&d, 0, &e), KPI_VALUE_ALL);
    cr_assert_str_eq(label(&d, 0, KPI_VALUE_ALL), "all");
    kpi_dims_fini(&d);
}

Test(dims, joins_combination_values_with_a_bar)
{
    struct kpi_dims d;
    cr_assert_eq(kpi_dims_init(&d, "region,plan,segment", "region+plan", 100, 64, NULL, 0), 0);
    struct kpi_event e = kt_event_dims("eu", "gold", "smb");
    uint32_t id = kpi_dims_value_id(&d, 1, &e);
    cr_assert_str_eq(label(&d, 1, id), "eu|gold");
    struct kpi_event same = kt_event_dims("eu", "gold", "consumer");
    cr_assert_eq(kpi_dims_value_id(&d, 1, &same), id);
    kpi_dims_fini(&d);
}

Test(dims, missing_dimension_counts_as_none)
{
    struct kpi_dims d;
    cr_assert_eq(kpi_dims_init(&d, "region,plan,segment", "region", 100, 64, NULL, 0), 0);
    struct kpi_event e = kt_event_dims(NULL, "gold", "smb");
    cr_assert_str_eq(label(&d, 1, kpi_dims_value_id(&d, 1, &e)), "__none__");
    kpi_dims_fini(&d);
}

Test(dims, folds_values_past_the_cardinality_limit_into_other)
{
    struct kpi_dims d;
    cr_assert_eq(kpi_dims_init(&d, "region", "region", 2, 64, NULL, 0), 0);
    struct kpi_event a = kt_event_dims("a", NULL, NULL), b = kt_event_dims("b", NULL, NULL),
                     c = kt_event_dims("c", NULL, NULL);
    cr_assert_neq(kpi_dims_value_id(&d, 1, &a), KPI_VALUE_OTHER);
    cr_assert_neq(kpi_dims_value_id(&d, 1, &b), KPI_VALUE_OTHER);
    cr_assert_eq(kpi_dims_value_id(&d, 1, &c), KPI_VALUE_OTHER);
    cr_assert_str_eq(label(&d, 1, KPI_VALUE_OTHER), "__other__");
    cr_assert_eq(kpi_dims_value_count(&d, 1), 2);
    kpi_dims_fini(&d);
}

Test(dims, bad_configuration_names_the_culprit)
{
    struct kpi_dims d;
    char err[200] = "";
    cr_assert_eq(kpi_dims_init(&d, "region,plan", "region+tariff", 10, 64, err, sizeof(err)),
                 KPI_ERR_INVAL);
    cr_assert(strstr(err, "tariff"), "%s", err);
    cr_assert_eq(kpi_dims_init(&d, "region,region", "region", 10, 64, err, sizeof(err)),
                 KPI_ERR_INVAL);
    cr_assert(strstr(err, "region"), "%s", err);
    cr_assert_eq(kpi_dims_init(&d, "reg ion!", "", 10, 64, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert_eq(kpi_dims_init(&d, "region", "region,region", 10, 64, err, sizeof(err)),
                 KPI_ERR_INVAL);
    cr_assert_eq(kpi_dims_init(&d, "region", "region", 0, 64, err, sizeof(err)), KPI_ERR_INVAL);
}

Test(dims, finds_sets_by_name)
{
    struct kpi_dims d;
    cr_assert_eq(kpi_dims_init(&d, "region,plan", "all,plan,region+plan", 10, 64, NULL, 0), 0);
    cr_assert_eq(d.n_sets, 3, "'all' listed explicitly is not added twice");
    cr_assert_eq(kpi_dims_set_index(&d, "region+plan"), 2);
    cr_assert_eq(kpi_dims_set_index(&d, "segment"), -1);
    kpi_dims_fini(&d);
}
