/* HyperLogLog: accuracy, both in-memory forms, merges, and the Redis string
 * format (round trips and malformed input). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/err.h"
#include "engine/hll.h"

static void add_ids(struct kpi_hll *h, uint64_t from, uint64_t n)
{
    char buf[24];
    for (uint64_t i = from; i < from + n; i++) {
        int len = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)i);
        cr_assert_geq(kpi_hll_add_hash(h, kpi_hll_hash(buf, (size_t)len)), 0);
    }
}

static void assert_within_2pct(uint64_t n)
{
    struct kpi_hll h;
    kpi_hll_init(&h);
    add_ids(&h, 0, n);
    add_ids(&h, 0, n / 2); /* duplicates change nothing */
    double est = (double)kpi_hll_count(&h);
    double err = est / (double)n - 1.0;
    cr_assert(err > -0.02 && err < 0.02, "%llu ids estimated as %.0f (%.2f%%)",
              (unsigned long long)n, est, err * 100);
    kpi_hll_fini(&h);
}

Test(hll, counts_within_2_percent_of_1e3_ids)
{
    assert_within_2pct(1000);
}

Test(hll, counts_within_2_percent_of_1e5_ids)
{
    assert_within_2pct(100000);
}

Test(hll, counts_within_2_percent_of_1e6_ids)
{
    assert_within_2pct(1000000);
}

Test(hll, empty_sketch_counts_zero)
{
    struct kpi_hll h;
    kpi_hll_init(&h);
    cr_assert(kpi_hll_is_empty(&h));
    cr_assert_eq(kpi_hll_count(&h), 0);
    kpi_hll_fini(&h);
}

Test(hll, small_sets_are_exact)
{
    struct kpi_hll h;
    kpi_hll_init(&h);
    add_ids(&h, 0, 10);
    cr_assert_eq(kpi_hll_count(&h), 10);
    cr_assert_lt(kpi_hll_memory(&h), 1024, "a small set stays sparse");
    kpi_hll_fini(&h);
}

Test(hll, turning_dense_keeps_the_same_count)
{
    /* Same registers reached two ways: one sketch grows past the sparse
     * table, the other is a merge into a sketch that is already dense. */
    struct kpi_hll grown, dense, small;
    kpi_hll_init(&grown);
    kpi_hll_init(&dense);
    kpi_hll_init(&small);
    add_ids(&small, 0, 300);
    add_ids(&grown, 0, 300);
    add_ids(&dense, 1000000, 5000); /* dense now */
    struct kpi_hll both;
    kpi_hll_init(&both);
    kpi_hll_merge(&both, &dense);
    kpi_hll_merge(&both, &small);
    add_ids(&grown, 1000000, 5000);
    cr_assert_geq(kpi_hll_memory(&grown), KPI_HLL_REGISTERS, "grown sketch is dense");
    cr_assert_eq(kpi_hll_count(&grown), kpi_hll_count(&both));
    kpi_hll_fini(&grown);
    kpi_hll_fini(&dense);
    kpi_hll_fini(&small);
    kpi_hll_fini(&both);
}

static void check_merge(uint64_t na, uint64_t nb)
{
    struct kpi_hll a, b, all;
    kpi_hll_init(&a);
    kpi_hll_init(&b);
    kpi_hll_init(&all);
    add_ids(&a, 0, na);
    add_ids(&b, na / 2, nb); /* overlapping */
    add_ids(&all, 0, na);
    add_ids(&all, na / 2, nb);
    cr_assert_eq(kpi_hll_merge(&a, &b), 0);
    cr_assert_eq(kpi_hll_count(&a), kpi_hll_count(&all), "merge of %llu and %llu ids",
                 (unsigned long long)na, (unsigned long long)nb);
    kpi_hll_fini(&a);
    kpi_hll_fini(&b);
    kpi_hll_fini(&all);
}

Test(hll, merge_equals_the_union_sparse_sparse)
{
    check_merge(40, 60);
}

Test(hll, merge_equals_the_union_sparse_dense)
{
    check_merge(40, 20000);
}

Test(hll, merge_equals_the_union_dense_sparse)
{
    check_merge(20000, 40);
}

Test(hll, merge_equals_the_union_dense_dense)
{
    check_merge(20000, 30000);
}

static void round_trip(uint64_t n, size_t sparse_max, int want_encoding)
{
    static uint8_t a[KPI_HLL_DENSE_SIZE], b[KPI_HLL_DENSE_SIZE];
    struct kpi_hll h, back;
    kpi_hll_init(&h);
    kpi_hll_init(&back);
    add_ids(&h, 0, n);
    size_t len = kpi_hll_serialize(&h, a, sizeof(a), sparse_max);
    cr_assert_gt(len, 16);
    cr_assert_eq(memcmp(a, "HYLL", 4), 0);
    cr_assert_eq(a[4], want_encoding);
    cr_assert_eq(a[15] & 0x80, 0x80, "cached cardinality marked stale");
    cr_assert_eq(kpi_hll_deserialize(&back, a, len), 0);
    cr_assert_eq(kpi_hll_count(&back), kpi_hll_count(&h));
    size_t len2 = kpi_hll_serialize(&back, b, sizeof(b), sparse_max);
    cr_assert_eq(len2, len);
    cr_assert_eq(memcmp(a, b, len), 0, "re-serialized bytes are identical");
    kpi_hll_fini(&h);
    kpi_hll_fini(&back);
}

Test(hll, sparse_string_round_trips)
{
    round_trip(200, 3000, 1);
}

Test(hll, dense_string_round_trips)
{
    round_trip(50000, 3000, 0);
}

Test(hll, small_set_serializes_dense_when_sparse_is_not_allowed)
{
    round_trip(200, 0, 0);
}

Test(hll, empty_sketch_serializes_as_redis_empty_sparse)
{
    uint8_t out[64];
    struct kpi_hll h;
    kpi_hll_init(&h);
    size_t len = kpi_hll_serialize(&h, out, sizeof(out), 3000);
    /* Header + XZERO covering all 16384 registers: 0x7f 0xff. */
    cr_assert_eq(len, 18);
    cr_assert_eq(out[4], 1);
    cr_assert_eq(out[16], 0x7f);
    cr_assert_eq(out[17], 0xff);
    kpi_hll_fini(&h);
}

Test(hll, deserialize_rejects_malformed_strings)
{
    struct kpi_hll h;
    kpi_hll_init(&h);
    uint8_t buf[KPI_HLL_DENSE_SIZE + 1];
    memset(buf, 0, sizeof(buf));
    memcpy(buf, "HYLL", 4);
    cr_assert_eq(kpi_hll_deserialize(&h, buf, 10), KPI_ERR_PARSE, "truncated header");
    cr_assert_eq(kpi_hll_deserialize(&h, buf, KPI_HLL_DENSE_SIZE - 1), KPI_ERR_PARSE,
                 "short dense");
    cr_assert_eq(kpi_hll_deserialize(&h, buf, KPI_HLL_DENSE_SIZE + 1), KPI_ERR_PARSE, "long dense");
    buf[4] = 2;
    cr_assert_eq(kpi_hll_deserialize(&h, buf, KPI_HLL_DENSE_SIZE), KPI_ERR_PARSE, "encoding 2");
    memcpy(buf, "HYLX", 4);
    buf[4] = 0;
    cr_assert_eq(kpi_hll_deserialize(&h, buf, KPI_HLL_DENSE_SIZE), KPI_ERR_PARSE, "bad magic");
    memcpy(buf, "HYLL", 4);
    buf[4] = 1;
    buf[16] = 0x7f; /* XZERO 16384 ... */
    buf[17] = 0xff;
    buf[18] = 0x80; /* ... then one more register: overrun */
    cr_assert_eq(kpi_hll_deserialize(&h, buf, 19), KPI_ERR_PARSE, "sparse overrun");
    buf[16] = 0x3f; /* ZERO 64: far short of 16384 */
    cr_assert_eq(kpi_hll_deserialize(&h, buf, 17), KPI_ERR_PARSE, "sparse underrun");
    buf[16] = 0x40; /* XZERO missing its second byte */
    cr_assert_eq(kpi_hll_deserialize(&h, buf, 17), KPI_ERR_PARSE, "sparse truncated");
    cr_assert(kpi_hll_is_empty(&h), "a rejected string leaves the sketch untouched");
    kpi_hll_fini(&h);
}
