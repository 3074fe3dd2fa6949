/* The worker's tuple cache: always the ids kpi_dims_value_id gives, through
 * hits, slot collisions, absent dimensions, the cardinality limit and tuples
 * too long to cache. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/dims.h"
#include "support/dims_event.h"
#include "engine/tuple_cache.h"

/* Two engines' worth of state fed the same events: one through the cache,
 * one through kpi_dims_value_id directly.  Interning is first come, first
 * served, so feeding both in the same order must give equal ids. */
struct pair {
    struct kpi_dims cached, direct;
    struct kpi_tcache tc;
};

static void pair_init(struct pair *p, uint32_t limit)
{
    const char *sets = "region,region+plan,segment,region+plan+segment";
    cr_assert_eq(kpi_dims_init(&p->cached, "region,plan,segment", sets, limit, 128, NULL, 0), 0);
    cr_assert_eq(kpi_dims_init(&p->direct, "region,plan,segment", sets, limit, 128, NULL, 0), 0);
    cr_assert_eq(kpi_tcache_init(&p->tc), 0);
}

static void pair_fini(struct pair *p)
{
    kpi_tcache_fini(&p->tc);
    kpi_dims_fini(&p->cached);
    kpi_dims_fini(&p->direct);
}

static void check(struct pair *p, const struct kpi_event *e)
{
    uint32_t got[KPI_MAX_SETS];
    kpi_tcache_value_ids(&p->tc, &p->cached, e, got);
    for (int s = 0; s < p->direct.n_sets; s++) {
        uint32_t want = kpi_dims_value_id(&p->direct, s, e);
        cr_assert_eq(got[s], want, "set %d: cached id %u, direct id %u", s, got[s], want);
    }
}

Test(tuple_cache, repeated_tuples_hit_and_give_the_interned_ids)
{
    struct pair p;
    pair_init(&p, 1000);
    static const char *regions[] = {"eu-west", "eu-north", "apac", NULL};
    static const char *plans[] = {"prepaid", "postpaid", NULL};
    static const char *segs[] = {"youth", "consumer", "__none__", NULL};
    for (int round = 0; round < 3; round++)
        for (int r = 0; r < 4; r++)
            for (int l = 0; l < 3; l++)
                for (int g = 0; g < 4; g++) {
                    struct kpi_event e = kt_event_dims(regions[r], plans[l], segs[g]);
                    check(&p, &e);
                }
    cr_assert_eq(p.tc.misses, 4 * 3 * 4, "one miss per distinct tuple");
    cr_assert_eq(p.tc.hits, 2 * 4 * 3 * 4);
    pair_fini(&p);
}

Test(tuple_cache, more_tuples_than_slots_still_give_exact_ids)
{
    struct pair p;
    pair_init(&p, 100000);
    char a[32], b[32];
    /* 3 x the slots, visited twice in a scrambled order: collisions replace
     * slots, and every answer must still be the interned id. */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3 * KPI_TCACHE_SLOTS; i++) {
            int k = (int)(((unsigned)i * 2654435761u) % (3u * KPI_TCACHE_SLOTS));
            snprintf(a, sizeof(a), "r%d", k % 97);
            snprintf(b, sizeof(b), "p%d", k);
            struct kpi_event e = kt_event_dims(a, b, k % 3 ? "smb" : NULL);
            check(&p, &e);
        }
    cr_assert_gt(p.tc.misses, 3 * KPI_TCACHE_SLOTS, "collisions did happen");
    pair_fini(&p);
}

Test(tuple_cache, values_past_the_limit_stay_other_through_the_cache)
{
    struct pair p;
    pair_init(&p, 5);
    char a[32];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 20; i++) {
            snprintf(a, sizeof(a), "region-%d", i);
            struct kpi_event e = kt_event_dims(a, "prepaid", "youth");
            check(&p, &e);
        }
    uint32_t ids[KPI_MAX_SETS];
    struct kpi_event late = kt_event_dims("region-19", "prepaid", "youth");
    kpi_tcache_value_ids(&p.tc, &p.cached, &late, ids);
    cr_assert_eq(ids[1], KPI_VALUE_OTHER, "region-19 came after the limit of 5");
    pair_fini(&p);
}

Test(tuple_cache, tuples_too_long_for_a_slot_bypass_it)
{
    struct pair p;
    pair_init(&p, 1000);
    char longv[100];
    memset(longv, 'x', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    for (int i = 0; i < 3; i++) {
        struct kpi_event e = kt_event_dims(longv, "prepaid", "youth");
        check(&p, &e);
    }
    cr_assert_eq(p.tc.bypassed, 3);
    cr_assert_eq(p.tc.hits + p.tc.misses, 0);
    pair_fini(&p);
}
