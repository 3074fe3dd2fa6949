/* The lock-free interner: ids, the limit, and concurrent inserts (run under
 * ThreadSanitizer in CI: label "concurrency"). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/hash.h"
#include "engine/intern.h"

static uint32_t get(struct kpi_intern *t, const char *s)
{
    return kpi_intern_get(t, s, (uint32_t)strlen(s), kpi_murmur64a(s, strlen(s), 7));
}

static void init_ok(struct kpi_intern *t, uint32_t limit, uint32_t max_key)
{
    cr_assert_eq(kpi_intern_init(t, limit, max_key), 0, "init(%u, %u)", limit, max_key);
}

/* The table holds exactly n keys; then it is freed. */
static void expect_size_and_fini(struct kpi_intern *t, uint32_t n)
{
    cr_assert_eq(kpi_intern_size(t), n);
    kpi_intern_fini(t);
}

Test(intern, same_key_gets_same_id_and_keys_read_back)
{
    struct kpi_intern t;
    init_ok(&t, 10, 32);
    uint32_t a = get(&t, "eu-west"), b = get(&t, "us-east");
    cr_assert_neq(a, KPI_INTERN_FULL);
    cr_assert_neq(b, KPI_INTERN_FULL);
    cr_assert_neq(a, b);
    cr_assert_eq(get(&t, "eu-west"), a);
    uint32_t len;
    const char *k = kpi_intern_key(&t, b, &len);
    cr_assert_eq(len, 7);
    cr_assert_eq(memcmp(k, "us-east", 7), 0);
    expect_size_and_fini(&t, 2);
}

Test(intern, folds_new_keys_past_the_limit)
{
    struct kpi_intern t;
    init_ok(&t, 3, 32);
    cr_assert_neq(get(&t, "a"), KPI_INTERN_FULL);
    cr_assert_neq(get(&t, "b"), KPI_INTERN_FULL);
    cr_assert_neq(get(&t, "c"), KPI_INTERN_FULL);
    cr_assert_eq(get(&t, "d"), KPI_INTERN_FULL);
    cr_assert_neq(get(&t, "a"), KPI_INTERN_FULL, "known keys still resolve when full");
    expect_size_and_fini(&t, 3);
}

Test(intern, rejects_keys_longer_than_the_maximum)
{
    struct kpi_intern t;
    init_ok(&t, 3, 4);
    cr_assert_eq(get(&t, "toolong"), KPI_INTERN_FULL);
    expect_size_and_fini(&t, 0);
}

Test(intern, colliding_hashes_keep_keys_apart)
{
    struct kpi_intern t;
    init_ok(&t, 8, 8);
    /* Same hash for different keys: the table must compare bytes. */
    uint32_t a = kpi_intern_get(&t, "x", 1, 42), b = kpi_intern_get(&t, "y", 1, 42);
    cr_assert_neq(a, b);
    cr_assert_eq(kpi_intern_get(&t, "y", 1, 42), b);
    kpi_intern_fini(&t);
}

#define THREADS 4
#define KEYS    2000

struct racer {
    struct kpi_intern *t;
    uint32_t ids[KEYS];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    char key[16];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "v%d", i);
        r->ids[i] = get(r->t, key);
    }
    return NULL;
}

Test(intern, concurrent_inserts_agree_on_every_id)
{
    struct kpi_intern t;
    cr_assert_eq(kpi_intern_init(&t, KEYS * 2, 16), 0);
    static struct racer r[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i].t = &t;
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    char key[16];
    for (int k = 0; k < KEYS; k++) {
        cr_assert_neq(r[0].ids[k], KPI_INTERN_FULL);
        for (int i = 1; i < THREADS; i++)
            cr_assert_eq(r[i].ids[k], r[0].ids[k], "key %d: thread %d got %u, thread 0 %u", k, i,
                         r[i].ids[k], r[0].ids[k]);
        uint32_t len;
        const char *s = kpi_intern_key(&t, r[0].ids[k], &len);
        snprintf(key, sizeof(key), "v%d", k);
        cr_assert_eq(len, strlen(key));
        cr_assert_eq(memcmp(s, key, len), 0);
    }
    kpi_intern_fini(&t);
}
