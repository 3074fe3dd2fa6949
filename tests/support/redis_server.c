/* redis_server.c - start and stop a private redis-server for a test (see the header). */
#include "support/redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_DEADLINE_MS 10000

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

redisContext *kpi_test_redis_connect(const struct kpi_test_redis *r)
{
    struct timeval tv = {2, 0};
    return redisConnectWithTimeout("127.0.0.1", r->port, tv);
}

static int answers_ping(const struct kpi_test_redis *r)
{
    redisContext *c = kpi_test_redis_connect(r);
    int ok = 0;
    if (c && !c->err) {
        redisReply *rep = redisCommand(c, "PING");
        ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
        if (rep)
            freeReplyObject(rep);
    }
    if (c)
        redisFree(c);
    return ok;
}

int kpi_test_redis_start_again(struct kpi_test_redis *r, char *errstr, size_t errsz)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(errstr, errsz, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0) {
            dup2(dn, 1);
            dup2(dn, 2);
        }
        const char *aof = getenv("KPI_TEST_NO_AOF") ? "no" : "yes";
        char sock[300];
        snprintf(sock, sizeof(sock), "%s/redis.sock", r->dir);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", aof, "--appendfsync", "always", "--dir", r->dir, "--unixsocket",
               sock, (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    long long deadline = mono_ms() + START_DEADLINE_MS;
    while (mono_ms() < deadline) {
        if (answers_ping(r))
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            r->pid = 0;
            snprintf(errstr, errsz, "redis-server exited at start (port %d; is it installed?)",
                     r->port);
            return -1;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL); /* polling interval while waiting for PONG */
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    r->pid = 0;
    snprintf(errstr, errsz, "redis-server did not answer PING on port %d within %d ms", r->port,
             START_DEADLINE_MS);
    return -1;
}

int kpi_test_redis_start(struct kpi_test_redis *r, char *errstr, size_t errsz)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/kpi-test-redis-XXXXXX");
    if (!mkdtemp(r->dir)) {
        snprintf(errstr, errsz, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    r->port = free_port();
    if (r->port <= 0) {
        snprintf(errstr, errsz, "no free loopback port");
        return -1;
    }
    return kpi_test_redis_start_again(r, errstr, errsz);
}

void kpi_test_redis_stop(struct kpi_test_redis *r)
{
    if (r->pid <= 0)
        return;
    redisContext *c = kpi_test_redis_connect(r);
    if (c && !c->err) {
        redisReply *rep = redisCommand(c, "SHUTDOWN NOSAVE");
        if (rep)
            freeReplyObject(rep);
    }
    if (c)
        redisFree(c);
    /* SHUTDOWN normally ends it; if the connection failed, make sure. */
    if (waitpid(r->pid, NULL, WNOHANG) == 0) {
        long long deadline = mono_ms() + 5000;
        while (waitpid(r->pid, NULL, WNOHANG) == 0 && mono_ms() < deadline) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        if (kill(r->pid, 0) == 0) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
        }
    }
    r->pid = 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void kpi_test_redis_destroy(struct kpi_test_redis *r)
{
    kpi_test_redis_stop(r);
    if (r->dir[0] && strncmp(r->dir, "/tmp/kpi-test-redis-", 20) == 0)
        nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    r->dir[0] = '\0';
}

int kpi_test_redis_restart(struct kpi_test_redis *r, char *errstr, size_t errsz)
{
    kpi_test_redis_stop(r);
    return kpi_test_redis_start_again(r, errstr, errsz);
}

int kpi_test_redis_up(struct kpi_test_redis *r, redisContext **c, char *errstr, size_t errstr_size)
{
    *c = NULL;
    if (kpi_test_redis_start(r, errstr, errstr_size))
        return -1;
    *c = kpi_test_redis_connect(r);
    if (!*c || (*c)->err) {
        snprintf(errstr, errstr_size, "cannot connect to the redis-server on port %d: %s", r->port,
                 *c ? (*c)->errstr : "out of memory");
        return -1;
    }
    return 0;
}

void kpi_test_redis_down(struct kpi_test_redis *r, redisContext *c)
{
    if (c)
        redisFree(c);
    kpi_test_redis_destroy(r);
}
