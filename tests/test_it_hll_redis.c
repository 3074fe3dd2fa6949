/*
 * The engine's sketches in a real redis-server: what the engine writes is
 * read by PFCOUNT / PFMERGE exactly as the engine reads it, and what Redis
 * writes the engine reads back.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/hll.h"
#include "support/redis_server.h"

static struct kpi_test_redis srv;
static redisContext *c;

static void up(void)
{
    char err[256];
    cr_assert_eq(kpi_test_redis_up(&srv, &c, err, sizeof(err)), 0, "%s", err);
}

static void down(void)
{
    kpi_test_redis_down(&srv, c);
}

TestSuite(hll_redis, .init = up, .fini = down);

static void add_ids(struct kpi_hll *h, const char *pfadd_key, int from, int n)
{
    char buf[24];
    for (int i = from; i < from + n; i++) {
        int len = snprintf(buf, sizeof(buf), "%d", i);
        kpi_hll_add_hash(h, kpi_hll_hash(buf, (size_t)len));
        if (pfadd_key)
            redisAppendCommand(c, "PFADD %s %b", pfadd_key, buf, (size_t)len);
    }
    if (pfadd_key)
        for (int i = 0; i < n; i++) {
            redisReply *r;
            cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
            freeReplyObject(r);
        }
}

static long long pfcount(const char *key)
{
    redisReply *r = redisCommand(c, "PFCOUNT %s", key);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "PFCOUNT %s: %s", key,
              r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void set_sketch(const char *key, const struct kpi_hll *h, size_t sparse_max)
{
    static uint8_t buf[KPI_HLL_DENSE_SIZE];
    size_t n = kpi_hll_serialize(h, buf, sizeof(buf), sparse_max);
    cr_assert_gt(n, 0);
    redisReply *r = redisCommand(c, "SET %s %b", key, buf, n);
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

static void pfcount_matches(int n, size_t sparse_max)
{
    struct kpi_hll h;
    kpi_hll_init(&h);
    add_ids(&h, NULL, 0, n);
    set_sketch("eng", &h, sparse_max);
    cr_assert_eq(pfcount("eng"), (long long)kpi_hll_count(&h), "%d ids", n);
    kpi_hll_fini(&h);
}

Test(hll_redis, pfcount_of_engine_sparse_bytes_equals_engine_count)
{
    pfcount_matches(50, 3000);
}

Test(hll_redis, pfcount_of_engine_dense_bytes_equals_engine_count)
{
    pfcount_matches(100000, 3000);
    pfcount_matches(50, 0);
}

Test(hll_redis, pfmerge_of_engine_sketches_equals_engine_merge)
{
    struct kpi_hll a, b;
    kpi_hll_init(&a);
    kpi_hll_init(&b);
    add_ids(&a, NULL, 0, 30000);
    add_ids(&b, NULL, 20000, 50);
    set_sketch("a", &a, 3000);
    set_sketch("b", &b, 3000);
    redisReply *r = redisCommand(c, "PFMERGE m a b");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    cr_assert_eq(kpi_hll_merge(&a, &b), 0);
    cr_assert_eq(pfcount("m"), (long long)kpi_hll_count(&a));
    kpi_hll_fini(&a);
    kpi_hll_fini(&b);
}

static void redis_to_engine(int n)
{
    struct kpi_hll mine, back;
    kpi_hll_init(&mine);
    kpi_hll_init(&back);
    redisReply *r = redisCommand(c, "DEL ref");
    freeReplyObject(r);
    add_ids(&mine, "ref", 0, n);
    r = redisCommand(c, "GET ref");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    cr_assert_eq(kpi_hll_deserialize(&back, (const uint8_t *)r->str, r->len), 0);
    freeReplyObject(r);
    long long redis = pfcount("ref");
    cr_assert_eq((long long)kpi_hll_count(&back), redis);
    cr_assert_eq((long long)kpi_hll_count(&mine), redis, "same registers from the same ids");
    kpi_hll_fini(&mine);
    kpi_hll_fini(&back);
}

Test(hll_redis, redis_sparse_bytes_read_back_to_the_same_count)
{
    redis_to_engine(100);
}

Test(hll_redis, redis_dense_bytes_read_back_to_the_same_count)
{
    redis_to_engine(20000);
}

Test(hll_redis, redis_accepts_pfadd_into_engine_bytes)
{
    struct kpi_hll h;
    kpi_hll_init(&h);
    add_ids(&h, NULL, 0, 10);
    set_sketch("k", &h, 3000);
    redisReply *r = redisCommand(c, "PFADD k new-subscriber");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    cr_assert_eq(pfcount("k"), 11);
    kpi_hll_fini(&h);
}
