/*
 * test_offset_order.c - a partition's messages reach the engine in offset
 * order, each once, whatever the consumer library delivers
 * (sources/offset_order.h).
 */
#include <criterion/criterion.h>

#include "sources/offset_order.h"

static struct kpi_offset_gap fresh(void)
{
    struct kpi_offset_gap g;
    kpi_offset_gap_reset(&g);
    return g;
}

/* One message: the offset expected, the one delivered, the fetch (batch) it came
 * in, and the verdict it must get. */
struct step {
    int64_t expect, got;
    uint64_t batch;
    enum kpi_offset_verdict want;
};

/* The steps, in order, on a fresh gap; returns the gap as they leave it. */
static struct kpi_offset_gap run_steps(const struct step *s, size_t n)
{
    struct kpi_offset_gap g = fresh();
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(kpi_offset_check(&g, s[i].expect, s[i].got, s[i].batch), s[i].want,
                     "step %zu: expect %lld, got %lld, batch %llu", i, (long long)s[i].expect,
                     (long long)s[i].got, (unsigned long long)s[i].batch);
    return g;
}

#define STEPS(...)                                                                                 \
    run_steps((const struct step[]){__VA_ARGS__},                                                  \
              sizeof((const struct step[]){__VA_ARGS__}) / sizeof(struct step))

Test(offset_order, the_expected_offset_is_taken)
{
    STEPS({10, 10, 1, KPI_OFFSET_TAKE});
}

Test(offset_order, a_redelivered_offset_is_skipped_not_counted_again)
{
    STEPS({10, 7, 1, KPI_OFFSET_REDELIVERY}, {10, 9, 1, KPI_OFFSET_REDELIVERY},
          {10, 10, 1, KPI_OFFSET_TAKE});
}

/* What the campaign's broker restart produced: the stream jumps from 100 to
 * 112.  The worker seeks back, drops the rest of that batch, and the
 * re-fetch delivers 100 in order. */
Test(offset_order, a_skipped_range_is_read_again_before_anything_past_it)
{
    struct kpi_offset_gap g = STEPS({100, 112, 5, KPI_OFFSET_SEEK}, {100, 113, 5, KPI_OFFSET_WAIT},
                                    {100, 114, 5, KPI_OFFSET_WAIT}, {100, 100, 6, KPI_OFFSET_TAKE});
    cr_assert_eq(g.at, -1, "the gap is forgotten once the expected offset came");
}

/* A transactional producer's commit marker takes an offset no message has:
 * the re-fetch starts past it again, so the gap is real. */
Test(offset_order, a_gap_the_refetch_confirms_is_accepted)
{
    STEPS({50, 51, 1, KPI_OFFSET_SEEK}, {50, 51, 2, KPI_OFFSET_GAP_REAL},
          {52, 52, 2, KPI_OFFSET_TAKE});
}

Test(offset_order, a_refetch_elsewhere_seeks_again_a_bounded_number_of_times)
{
    STEPS({50, 60, 1, KPI_OFFSET_SEEK}, {50, 70, 2, KPI_OFFSET_SEEK}, {50, 80, 3, KPI_OFFSET_SEEK},
          {50, 90, 4, KPI_OFFSET_GAP_REAL});
}
