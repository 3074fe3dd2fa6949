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

/* ---- the string format against a reference encoder ----
 * The registers of a set of ids are computed here from Redis's definition
 * (index: the hash's low 14 bits; rank: 1 + the trailing zeros of the other
 * 50, at most 51), then encoded one register at a time, the plain way
 * (Redis's hyperloglog.c layout): kpi_hll_serialize must give these bytes. */

static void ref_registers(uint8_t *regs, uint64_t from, uint64_t n)
{
    char buf[24];
    for (uint64_t i = from; i < from + n; i++) {
        int len = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)i);
        uint64_t h = kpi_hll_hash(buf, (size_t)len);
        uint32_t idx = (uint32_t)(h & (KPI_HLL_REGISTERS - 1));
        uint64_t rest = h >> KPI_HLL_P | 1ULL << (64 - KPI_HLL_P);
        uint8_t rank = 1;
        while (!(rest & 1)) {
            rest >>= 1;
            rank++;
        }
        if (rank > regs[idx])
            regs[idx] = rank;
    }
}

/* Bytes of the reference encoding, 0 if sparse does not fit in sparse_max
 * and dense does not fit in cap either. */
static size_t ref_encode(const uint8_t *regs, uint8_t *out, size_t cap, size_t sparse_max)
{
    size_t lim = sparse_max < cap ? sparse_max : cap, n = 16;
    int ok = lim > 16;
    for (uint32_t i = 0; ok && i < KPI_HLL_REGISTERS;) {
        uint32_t run = 1;
        while (i + run < KPI_HLL_REGISTERS && regs[i + run] == regs[i])
            run++;
        i += run;
        while (ok && run) {
            uint32_t r;
            if (regs[i - 1] == 0 && run <= 64) {
                r = run;
                ok = n + 1 <= lim;
                if (ok)
                    out[n++] = (uint8_t)(r - 1);
            } else if (regs[i - 1] == 0) {
                r = run > 16384 ? 16384 : run;
                ok = n + 2 <= lim;
                if (ok) {
                    out[n++] = (uint8_t)(0x40 | (r - 1) >> 8);
                    out[n++] = (uint8_t)((r - 1) & 0xff);
                }
            } else {
                r = run > 4 ? 4 : run;
                ok = regs[i - 1] <= 32 && n + 1 <= lim;
                if (ok)
                    out[n++] = (uint8_t)(0x80 | (regs[i - 1] - 1) << 2 | (r - 1));
            }
            run -= r;
        }
    }
    memcpy(out, "HYLL", 4);
    memset(out + 4, 0, 12);
    out[15] = 0x80;
    if (ok) {
        out[4] = 1;
        return n;
    }
    if (cap < KPI_HLL_DENSE_SIZE)
        return 0;
    memset(out + 16, 0, KPI_HLL_DENSE_SIZE - 16);
    for (uint32_t i = 0; i < KPI_HLL_REGISTERS; i++)
        for (uint32_t b = 0; b < 6; b++)
            if (regs[i] >> b & 1)
                out[16 + (i * 6 + b) / 8] |= (uint8_t)(1u << ((i * 6 + b) % 8));
    return KPI_HLL_DENSE_SIZE;
}

static uint8_t want[KPI_HLL_DENSE_SIZE], got[KPI_HLL_DENSE_SIZE], regs_a[KPI_HLL_REGISTERS];

/* h (holding exactly the registers regs) serializes as the reference does,
 * for several sparse limits and buffer sizes, and its string parses back to
 * a sketch that serializes the same. */
static void check_encoding(const struct kpi_hll *h, const uint8_t *regs, const char *what)
{
    static const size_t limits[] = {3000, 0, 17, 100, 400, 12304};
    for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
        for (size_t cap = 64; cap <= KPI_HLL_DENSE_SIZE; cap += KPI_HLL_DENSE_SIZE - 64) {
            size_t wl = ref_encode(regs, want, cap, limits[l]);
            size_t gl = kpi_hll_serialize(h, got, cap, limits[l]);
            cr_assert_eq(gl, wl, "%s, sparse_max %zu, cap %zu: %zu bytes, want %zu", what,
                         limits[l], cap, gl, wl);
            cr_assert_eq(memcmp(got, want, gl), 0, "%s, sparse_max %zu: bytes differ", what,
                         limits[l]);
            if (gl == 0)
                continue;
            struct kpi_hll back;
            kpi_hll_init(&back);
            cr_assert_eq(kpi_hll_deserialize(&back, got, gl), 0);
            cr_assert_eq(kpi_hll_count(&back), kpi_hll_count(h));
            cr_assert_eq(kpi_hll_serialize(&back, want, sizeof(want), limits[l]), gl);
            cr_assert_eq(memcmp(got, want, gl), 0, "%s: parsed back, bytes differ", what);
            kpi_hll_fini(&back);
        }
    }
}

Test(hll, serializes_as_the_reference_encoder_in_every_form)
{
    static const uint64_t sizes[] = {0,   1,   2,   5,   60,   200,  287,   288,
                                     289, 383, 384, 385, 1000, 3000, 20000, 300000};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        char what[64];
        struct kpi_hll h;
        kpi_hll_init(&h);
        add_ids(&h, 7, sizes[k]);
        memset(regs_a, 0, sizeof(regs_a));
        ref_registers(regs_a, 7, sizes[k]);
        snprintf(what, sizeof(what), "%llu ids", (unsigned long long)sizes[k]);
        check_encoding(&h, regs_a, what);
        /* The same registers in a sketch that is dense in memory. */
        kpi_hll_reset(&h);
        add_ids(&h, 1000000, 5000);
        kpi_hll_reset(&h);
        add_ids(&h, 7, sizes[k]);
        snprintf(what, sizeof(what), "%llu ids, dense in memory", (unsigned long long)sizes[k]);
        check_encoding(&h, regs_a, what);
        kpi_hll_fini(&h);
    }
}

Test(hll, a_register_above_32_is_only_dense)
{
    /* Redis's sparse VAL opcode holds values up to 32; a rank of 40 (a
     * dense string read from Redis) must serialize dense. */
    memset(regs_a, 0, sizeof(regs_a));
    regs_a[5] = 40;
    regs_a[16383] = 3;
    size_t len = ref_encode(regs_a, want, sizeof(want), 0);
    cr_assert_eq(len, KPI_HLL_DENSE_SIZE);
    struct kpi_hll h;
    kpi_hll_init(&h);
    cr_assert_eq(kpi_hll_deserialize(&h, want, len), 0);
    check_encoding(&h, regs_a, "a rank of 40");
    kpi_hll_fini(&h);
}

/* merge_bytes(a, string of b) leaves a as kpi_hll_merge would. */
static void check_merge_bytes(uint64_t na, uint64_t nb, size_t sparse_max, int a_dense)
{
    struct kpi_hll a, b, all;
    kpi_hll_init(&a);
    kpi_hll_init(&b);
    kpi_hll_init(&all);
    if (a_dense) { /* a dense in memory whatever it holds */
        add_ids(&a, 5000000, 5000);
        kpi_hll_reset(&a);
    }
    add_ids(&a, 0, na);
    add_ids(&b, na / 2, nb);
    add_ids(&all, 0, na);
    add_ids(&all, na / 2, nb);
    size_t len = kpi_hll_serialize(&b, got, sizeof(got), sparse_max);
    cr_assert_gt(len, 16);
    cr_assert_eq(kpi_hll_merge_bytes(&a, got, len), 0);
    memset(regs_a, 0, sizeof(regs_a));
    ref_registers(regs_a, 0, na);
    ref_registers(regs_a, na / 2, nb);
    char what[96];
    snprintf(what, sizeof(what), "%llu ids merged with a %s string of %llu", (unsigned long long)na,
             got[4] ? "sparse" : "dense", (unsigned long long)nb);
    check_encoding(&a, regs_a, what);
    cr_assert_eq(kpi_hll_count(&a), kpi_hll_count(&all), "%s", what);
    kpi_hll_fini(&a);
    kpi_hll_fini(&b);
    kpi_hll_fini(&all);
}

Test(hll, merge_bytes_equals_the_union_in_every_form)
{
    static const uint64_t sizes[] = {0, 3, 200, 1000, 30000};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 1; j < 5; j++)
            for (int d = 0; d < 2; d++) {
                check_merge_bytes(sizes[i], sizes[j], 3000, d);
                check_merge_bytes(sizes[i], sizes[j], 0, d);
            }
}

Test(hll, merge_bytes_rejects_malformed_strings_untouched)
{
    struct kpi_hll h;
    kpi_hll_init(&h);
    add_ids(&h, 0, 100);
    size_t before = kpi_hll_serialize(&h, want, sizeof(want), 3000);
    uint8_t buf[32] = "HYLL";
    buf[4] = 1;
    buf[16] = 0x80; /* VAL 1 x1 ... */
    buf[17] = 0x7f; /* XZERO missing its second byte */
    cr_assert_eq(kpi_hll_merge_bytes(&h, buf, 18), KPI_ERR_PARSE);
    buf[17] = 0x3f; /* ZERO 64: far short of 16384 */
    cr_assert_eq(kpi_hll_merge_bytes(&h, buf, 18), KPI_ERR_PARSE);
    cr_assert_eq(kpi_hll_merge_bytes(&h, buf, 10), KPI_ERR_PARSE, "truncated header");
    buf[4] = 0;
    cr_assert_eq(kpi_hll_merge_bytes(&h, buf, sizeof(buf)), KPI_ERR_PARSE, "short dense");
    cr_assert_eq(kpi_hll_serialize(&h, got, sizeof(got), 3000), before);
    cr_assert_eq(memcmp(got, want, before), 0, "a rejected string leaves the sketch untouched");
    kpi_hll_fini(&h);
}
