/*
 * The alerter (cmd/lib/alerter.c) against a private redis-server, reading
 * through an ACL user whose password needs %-escapes in the URL (the one
 * URL parser, sinks/redis/url.h), with the group's keys written here as
 * docs/redis-schema.md lays them out (one key group):
 *  - a spike after a quiet baseline raises one alert, recorded in the alert
 *    stream, through the ACL user;
 *  - Redis refusing the dedup mark (here NOPERM; OOM and READONLY take the
 *    same path) when the alert is due: nothing is recorded, no mark is left
 *    behind, and once Redis takes it the alert is recorded (it used to be
 *    lost);
 *  - an evaluation cut short by a read error (NOPERM) is done again for the
 *    same closed bucket instead of being skipped;
 *  - a dimension value with a newline reaches the demo's line escaped;
 *  - the readers' connect (cmd/lib/redisconn.c, on sinks/redis/url.h)
 *    reports a wrong password with Redis's own words and without the
 *    password, and takes unix: URLs.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/lib/alerter.h"
#include "engine/dims.h"
#include "cmd/lib/kpiread.h"
#include "support/redis_server.h"
#include "cmd/lib/redisconn.h"
#include "engine/window.h"

#define T0       1700000000000LL /* a whole minute */
#define PASSWORD "p@ss:w%rd"
#define PW_URL   "p%%40ss%%3Aw%%25rd" /* PASSWORD %-escaped, as a printf format */

static struct kpi_test_redis srv;
static redisContext *admin;
static struct kpi_windows ws;
static struct kpi_dims dims;
static struct kpiread *store;
static struct kpi_alerter *al;
static int64_t closed;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void poll_pause(void)
{
    struct timespec ts = {0, 20000000}; /* polling interval, not synchronisation */
    nanosleep(&ts, NULL);
}

static void cmd(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(admin, fmt, arg);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s: %s", fmt, r ? r->str : admin->errstr);
    freeReplyObject(r);
}

static long long integer(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(admin, fmt, arg);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "%s", fmt);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* One value's rolling hash and leaderboard entry (key group 0 of 1). */
static void value_at(const char *value, double churn_rate)
{
    char key[256], rate[32];
    snprintf(key, sizeof(key), "kpi:{g}:kpi:1m_5s:segment:%s", value);
    snprintf(rate, sizeof(rate), "%.6f", churn_rate);
    redisReply *r = redisCommand(admin, "HSET %s events 5000 churns %d active 5000 churn_rate %s",
                                 key, (int)(churn_rate * 5000), rate);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    r = redisCommand(admin, "ZADD kpi:{g}:values:1m_5s:segment 5000 %s", value);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

/* Close one more bucket and wait until the alerter evaluated it (or, with
 * expect_done = 0, until it had every chance to: it must not). */
static void close_bucket(int expect_done)
{
    closed += 5000;
    char v[32];
    snprintf(v, sizeof(v), "%lld", (long long)closed);
    redisReply *r = redisCommand(admin, "HSET kpi:{g}:meta closed:1m_5s %s", v);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    if (!expect_done)
        return;
    int64_t deadline = mono_ms() + 10000;
    while (kpi_alerter_closed(al) != closed && mono_ms() < deadline)
        poll_pause();
    cr_assert_eq(kpi_alerter_closed(al), closed, "the alerter evaluates each closed bucket");
}

static void baseline(const char *value, int buckets)
{
    for (int i = 0; i < buckets; i++) {
        value_at(value, 0.010 + 0.001 * (i % 3));
        close_bucket(1);
    }
}

static long long alerts_logged(void)
{
    return integer("XLEN %s", "kpi:{g}:alerts");
}

static void up(void)
{
    char err[256];
    cr_assert_eq(kpi_test_redis_up(&srv, &admin, err, sizeof(err)), 0, "%s", err);
    cmd("ACL SETUSER alerter on >%s ~kpi:* &* +@all", PASSWORD);
    cr_assert_eq(kpi_windows_init(&ws, "1m/5s", 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(kpi_dims_init(&dims, "segment", "segment", 1000, 128, err, sizeof(err)), 0, "%s",
                 err);
    char url[128];
    snprintf(url, sizeof(url), "redis://alerter:" PW_URL "@127.0.0.1:%d", srv.port);
    struct kpiread_redis_conf kc = {url, "kpi", "g", 1000, 2, 1};
    store = kpiread_new_redis(&kc, &ws, &dims);
    cr_assert_not_null(store);
    closed = T0 + 60000;
    char v[32];
    snprintf(v, sizeof(v), "%lld", (long long)T0);
    cmd("HSET kpi:{g}:meta first:1m_5s %s", v);
    snprintf(v, sizeof(v), "%lld", (long long)closed);
    cmd("HSET kpi:{g}:meta closed:1m_5s %s", v);
    struct kpi_alerter_conf ac = {store, &ws, 0, "1m_5s", "alerts", 1000, 20, {0}, NULL};
    kpi_alert_conf_defaults(&ac.detector);
    ac.detector.warmup = 5;
    al = kpi_alerter_start(&ac, &dims, err, sizeof(err));
    cr_assert_not_null(al, "%s", err);
    int64_t deadline = mono_ms() + 10000;
    while (kpi_alerter_closed(al) != closed && mono_ms() < deadline)
        poll_pause();
    cr_assert_eq(kpi_alerter_closed(al), closed, "the alerter reads the group's clock");
}

static void down(void)
{
    kpi_alerter_stop(al);
    kpiread_destroy(store);
    kpi_dims_fini(&dims);
    kpi_test_redis_down(&srv, admin);
}

TestSuite(alerter, .init = up, .fini = down, .timeout = 120);

Test(alerter, an_acl_user_with_an_escaped_password_records_a_spike)
{
    baseline("youth", 8);
    cr_assert_eq(alerts_logged(), 0);
    value_at("youth", 0.2);
    close_bucket(1);
    uint64_t raised, resolved;
    kpi_alerter_counts(al, &raised, &resolved);
    cr_assert_eq(raised, 1);
    cr_assert_eq(alerts_logged(), 1);
}

Test(alerter, an_alert_whose_dedup_mark_is_refused_is_recorded_once_it_can_be)
{
    baseline("youth", 8);
    /* The mark's SET refused, as OOM, READONLY or a missing ACL grant would:
     * an error, not "another instance recorded it". */
    cmd("ACL SETUSER alerter %s", "-set");
    value_at("youth", 0.2);
    close_bucket(1);
    cr_assert_eq(kpi_alerter_pending(al), 1, "the alert waits, it is not dropped");
    cr_assert_eq(alerts_logged(), 0);
    cr_assert_eq(integer("EXISTS %s", "kpi:{g}:alertmark:1m_5s:segment:youth:1700000110000:raised"),
                 0, "no dedup mark without its alert");
    cmd("ACL SETUSER alerter %s", "+set");
    int64_t deadline = mono_ms() + 10000;
    while (alerts_logged() == 0 && mono_ms() < deadline)
        poll_pause();
    cr_assert_eq(alerts_logged(), 1, "recorded once Redis takes writes again");
    while (kpi_alerter_pending(al) != 0 && mono_ms() < deadline)
        poll_pause();
    uint64_t raised, resolved;
    kpi_alerter_counts(al, &raised, &resolved);
    cr_assert_eq(raised, 1);
}

Test(alerter, an_evaluation_cut_short_by_a_read_error_is_done_again_for_that_bucket)
{
    baseline("youth", 8);
    cmd("ACL SETUSER alerter %s", "-zrevrange");
    value_at("youth", 0.2);
    int64_t before = closed;
    close_bucket(0);
    /* The clock is readable, the values are not: the mark must stay. */
    int64_t until = mono_ms() + 500; /* 25 polls of the alerter: it tried */
    while (mono_ms() < until) {
        cr_assert_eq(kpi_alerter_closed(al), before, "not evaluated: the mark does not move");
        poll_pause();
    }
    cmd("ACL SETUSER alerter %s", "+zrevrange");
    int64_t deadline = mono_ms() + 10000;
    while (alerts_logged() == 0 && mono_ms() < deadline)
        poll_pause();
    cr_assert_eq(alerts_logged(), 1, "the spike of that bucket is seen once the read works");
    /* The alerter logs the alert, then moves its mark: wait for both. */
    while (kpi_alerter_closed(al) != closed && mono_ms() < deadline)
        poll_pause();
    cr_assert_eq(kpi_alerter_closed(al), closed);
}

Test(alerter, a_newline_in_a_value_is_escaped_in_the_demo_line)
{
    baseline("evil\nforged", 8);
    value_at("evil\nforged", 0.2);
    close_bucket(1);
    char last[256];
    kpi_alerter_last(al, last, sizeof(last));
    cr_assert(strstr(last, "evil\\x0aforged"), "%s", last);
    cr_assert_null(strchr(last, '\n'));
}

Test(alerter, readers_connect_through_the_one_url_parser_and_report_why_not)
{
    char url[320], err[256];
    snprintf(url, sizeof(url), "redis://alerter:wrong%%40secret@127.0.0.1:%d", srv.port);
    redisContext *c = kpi_redis_connect_url(url, 1000, err, sizeof(err));
    cr_assert_null(c);
    cr_assert(strstr(err, "WRONGPASS"), "%s", err);
    cr_assert_null(strstr(err, "secret"), "%s", err);
    snprintf(url, sizeof(url), "redis://alerter:" PW_URL "@127.0.0.1:%d/0", srv.port);
    c = kpi_redis_connect_url(url, 1000, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    redisFree(c);
    /* A unix socket (the old reader parser refused unix: URLs). */
    snprintf(url, sizeof(url), "unix://%s/redis.sock", srv.dir);
    c = kpi_redis_connect_url(url, 1000, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    redisReply *r = redisCommand(c, "PING");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);
}

/* A value whose window churn rate stays flat while its monthly churn over
 * the base jumps (the base shrank): with alerts.kpi = churn_rate_monthly the
 * alerter watches the monthly figure, so the jump raises an alert. */
static void value_monthly(const char *value, double monthly)
{
    char key[256], rate[32];
    snprintf(key, sizeof(key), "kpi:{g}:kpi:1m_5s:segment:%s", value);
    snprintf(rate, sizeof(rate), "%.6f", monthly);
    redisReply *r = redisCommand(admin,
                                 "HSET %s events 5000 churns 50 active 5000 churn_rate 0.01 "
                                 "churn_rate_monthly %s base 100000 base_source snapshot",
                                 key, rate);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    r = redisCommand(admin, "ZADD kpi:{g}:values:1m_5s:segment 5000 %s", value);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

Test(alerter, alerts_kpi_churn_rate_monthly_watches_the_monthly_churn)
{
    kpi_alerter_stop(al);
    char err[256];
    struct kpi_alerter_conf ac = {store, &ws, 0, "1m_5s", "alerts", 1000, 20, {0}, NULL};
    kpi_alert_conf_defaults(&ac.detector);
    ac.detector.warmup = 5;
    ac.kpi = KPI_DI_churn_rate_monthly;
    al = kpi_alerter_start(&ac, &dims, err, sizeof(err));
    cr_assert_not_null(al, "%s", err);
    for (int i = 0; i < 8; i++) {
        value_monthly("youth", 0.020 + 0.001 * (i % 3));
        close_bucket(1);
    }
    cr_assert_eq(alerts_logged(), 0);
    value_monthly("youth", 0.20); /* the window's churn_rate is still 0.01 */
    close_bucket(1);
    uint64_t raised, resolved;
    kpi_alerter_counts(al, &raised, &resolved);
    cr_assert_eq(raised, 1, "the monthly churn's jump raised it");
    redisReply *r = redisCommand(admin, "XREVRANGE kpi:{g}:alerts + - COUNT 1");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    const redisReply *f = r->element[0]->element[1];
    int found = 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (!strcmp(f->element[i]->str, "rate"))
            found = strtod(f->element[i + 1]->str, NULL) > 0.19;
    cr_assert(found, "the alert's rate is the monthly churn");
    freeReplyObject(r);
}
