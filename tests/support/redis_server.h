/*
 * redis_server.h - a private redis-server for one test process.
 *
 * Tests that need Redis start their own Debian redis-server on a free
 * loopback port, in a fresh directory, with the AOF on and fsync'd on every
 * write (so a SHUTDOWN NOSAVE followed by a start keeps what was acknowledged,
 * as a production Redis configured for exactly-once would), and stop it at the
 * end.  It also listens on the unix socket <dir>/redis.sock.  Readiness is waited for by retrying
 * PING with a bounded deadline, never by sleeping a fixed time.  KPI_TEST_NO_AOF=1 turns
 * persistence off.
 */
#ifndef KPI_TEST_REDIS_SERVER_H
#define KPI_TEST_REDIS_SERVER_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <sys/types.h>

struct kpi_test_redis {
    int port;
    pid_t pid;     /* 0 when stopped */
    char dir[256]; /* data directory (kept across restarts) */
};

/* Pick a free port and a new directory, start, wait until PING answers. */
int kpi_test_redis_start(struct kpi_test_redis *r, char *errstr, size_t errstr_size);
/* Start again on the same port and directory (after kpi_test_redis_stop). */
int kpi_test_redis_start_again(struct kpi_test_redis *r, char *errstr, size_t errstr_size);
/* SHUTDOWN NOSAVE (scripts and unsynced data are gone), then start again. */
int kpi_test_redis_restart(struct kpi_test_redis *r, char *errstr, size_t errstr_size);
/* SHUTDOWN NOSAVE and reap the process; the directory stays for a restart. */
void kpi_test_redis_stop(struct kpi_test_redis *r);
/* Stop, then remove the data directory: the end of a test process. */
void kpi_test_redis_destroy(struct kpi_test_redis *r);
/* A new connection (caller frees with redisFree); may carry c->err. */
redisContext *kpi_test_redis_connect(const struct kpi_test_redis *r);
/* A suite's private server and its connection: start r and connect *c;
 * 0, or -1 with errstr set.  kpi_test_redis_down frees both. */
int kpi_test_redis_up(struct kpi_test_redis *r, redisContext **c, char *errstr, size_t errstr_size);
void kpi_test_redis_down(struct kpi_test_redis *r, redisContext *c);

#endif
