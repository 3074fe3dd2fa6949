/*
 * TLS to Redis through the stunnel sidecar (README, "Redis over TLS"):
 * tests/support/redis-tls.sh generates a test CA and a server certificate
 * with openssl (nothing committed), starts a redis-server that listens only
 * on --tls-port, and two stunnel clients.  The Redis sink flushes through the
 * one that trusts the CA and the counters arrive; the port itself refuses a
 * plaintext client; the stunnel that trusts another CA lets nothing through
 * (the certificate is verified), and the sink reports it as a failed flush,
 * never as applied.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/aggregate.h"
#include "engine/dims.h"
#include "engine/err.h"
#include "engine/hll.h"
#include "sinks/redis.h"
#include "engine/window.h"
#include "support/redis_sink.h"

#define T0 1700000040000LL

static char dir[] = "/tmp/kpi-test-tls-XXXXXX";
static int tls_port, good_port, bad_port;

static void up(void)
{
    cr_assert_not_null(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "bash %s/tests/support/redis-tls.sh up %s", KPI_SOURCE_DIR, dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int n = fscanf(p, "%d %d %d", &tls_port, &good_port, &bad_port);
    cr_assert_eq(pclose(p), 0, "redis-tls.sh up failed (stunnel4 and openssl installed?)");
    cr_assert_eq(n, 3);
}

static void down(void)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "bash %s/tests/support/redis-tls.sh down %s", KPI_SOURCE_DIR, dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(redis_tls, .init = up, .fini = down, .timeout = 120);

static struct kpi_sink sink_at(int port)
{
    char url[64], err[256];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    struct kpi_sink s = kt_redis_sink(url, 2000, err, sizeof(err));
    cr_assert_not_null(s.ops, "%s", err);
    return s;
}

/* Three usage events of eu-west in one bucket, offsets [0, 3) of events:0. */
static int flush_three(struct kpi_sink *s, char *err, size_t errsz)
{
    char e[256];
    struct kpi_dims dims;
    struct kpi_windows ws;
    struct kpi_agg cells;
    cr_assert_eq(kpi_dims_init(&dims, "region", "region", 100, 64, e, sizeof(e)), 0, "%s", e);
    cr_assert_eq(kpi_windows_init(&ws, "1m/5s", 0, e, sizeof(e)), 0, "%s", e);
    cr_assert_eq(kpi_agg_init(&cells, 1024), 0);
    for (int i = 0; i < 3; i++) {
        struct kpi_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = KPI_EV_USAGE;
        ev.ts_ms = T0 + 100 * i;
        char sub[8];
        snprintf(sub, sizeof(sub), "%d", i);
        ev.sub_hash = kpi_hll_hash(sub, strlen(sub));
        ev.amount_micros = 1000000;
        ev.dims[0].ptr = "eu-west";
        ev.dims[0].len = 7;
        for (int set = 0; set < dims.n_sets; set++) {
            uint32_t vid = kpi_dims_value_id(&dims, set, &ev);
            struct kpi_agg_cell *c = kpi_agg_get(&cells, T0, (uint32_t)set, vid);
            kpi_counters_count(&c->c, &ev);
            kpi_hll_add_hash(&c->hll, ev.sub_hash);
        }
    }
    struct kpi_offset_range r = {.from = 0, .to = 3, .partition = 0};
    strcpy(r.topic, "events");
    struct kpi_delta d = {1, &dims, &ws, &cells, &r, 1, T0 + 300, INT64_MIN};
    int rc = s->ops->flush(s->self, &d, err, errsz);
    kpi_agg_fini(&cells);
    kpi_dims_fini(&dims);
    return rc;
}

Test(redis_tls, the_sink_writes_through_the_sidecar_and_the_port_is_tls_only)
{
    struct kpi_sink s = sink_at(good_port);
    char err[512] = "";
    cr_assert_eq(flush_three(&s, err, sizeof(err)), 0, "%s", err);
    kpi_sink_destroy(&s);

    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", good_port, tv);
    cr_assert(c && !c->err);
    redisReply *r = redisCommand(c, "HGET kpi:{kpistream}:kpi:1m_5s:all:all events");
    cr_assert(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "3") == 0,
              "the counters arrived over TLS");
    freeReplyObject(r);
    redisFree(c);

    /* Plaintext to the TLS port: no answer a client could take for Redis. */
    c = redisConnectWithTimeout("127.0.0.1", tls_port, tv);
    cr_assert(c);
    if (!c->err) {
        redisSetTimeout(c, tv);
        r = redisCommand(c, "PING");
        cr_assert(!r || r->type != REDIS_REPLY_STATUS, "the TLS port answered plaintext");
        if (r)
            freeReplyObject(r);
    }
    redisFree(c);
}

Test(redis_tls, a_sidecar_that_cannot_verify_the_certificate_lets_nothing_through)
{
    struct kpi_sink s = sink_at(bad_port);
    char err[512] = "";
    int rc = flush_three(&s, err, sizeof(err));
    cr_assert_eq(rc, KPI_ERR_IO, "a failed flush, to retry: %s", err);
    kpi_sink_destroy(&s);
    char log[600];
    snprintf(log, sizeof(log), "grep -q 'certificate verify failed' %s/stunnel-bad.log", dir);
    cr_assert_eq(system(log), 0, "stunnel refused the unverifiable certificate");
}
