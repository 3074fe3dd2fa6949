/*
 * conn.h - connections to one Redis or to a Redis Cluster, for every Redis
 * client of kpistream: the sink (sinks/redis/sink.c) and the readers (the
 * API, the alerter and the demo view, through cmd/lib/kpiread.c).
 *
 * Standalone Redis: one node, the configured address.  Redis Cluster: the
 * configured address is the seed; a slot's node is learnt from MOVED replies
 * (and ASK is followed once), so nothing is asked up front and the same code
 * serves both.  A node whose connection fails, or that answers READONLY (a
 * replica after a failover), is forgotten with its slots: the next call goes
 * to the seed, which redirects again.  The routing argument is in conn.c.
 *
 * One struct kpi_redis_conn is one thread's: it is not locked.
 */
#ifndef KPI_SINK_REDIS_CONN_H
#define KPI_SINK_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "sinks/redis/url.h"

#define KPI_REDIS_SLOTS     16384
#define KPI_REDIS_MAX_NODES 64 /* cluster nodes one connection set talks to */

struct kpi_redis_node {
    char *host; /* NULL: the configured address (maybe a unix socket) */
    int port;
    redisContext *ctx;
};

struct kpi_redis_conn {
    struct kpi_redis_addr addr;
    const char *url; /* redacted, for messages */
    int64_t connect_timeout_ms, command_timeout_ms;
    const char *script; /* loaded on every new connection (NULL: none) */
    /* The script is loaded as a Redis function (FUNCTION LOAD REPLACE of a
     * library kpistream_<h> holding one function kpistream_flush_<h>, h a
     * hash of the script), not into the script cache: a function is kept
     * in the RDB and AOF and replicated, and SCRIPT FLUSH does not remove
     * it, so it cannot disappear inside a flush transaction
     * (docs/exactly-once.md, "What can still fail inside EXEC"). */
    char lib_name[32]; /* "kpistream_" + 16 hex digits */
    char fn[40];       /* "kpistream_flush_" + the same digits: what FCALL names */
    char *lib;         /* the library's code, made on the first connection */
    char *wbuf;        /* commands as RESP, kept from call to call (conn.c) */
    size_t wcap;
    /* Try an empty MULTI/EXEC on every new connection (the hot path's
     * transactions).  An ACL that allows WATCH but refuses MULTI would
     * otherwise let the commands meant for a transaction run one by one
     * (a refused EXEC discards the transaction).  Refused (NOPERM):
     * multi_refused is set for good, probing stops, and the caller must not
     * send MULTI on this set of connections. */
    int probe_multi, multi_refused;
    struct kpi_redis_node nodes[KPI_REDIS_MAX_NODES];
    int n_nodes;
    int16_t slot_node[KPI_REDIS_SLOTS]; /* -1: ask the seed */
    uint64_t connects, script_loads, redirects, io_errors;
    /* Requests written and waited for: a command, or a pipeline (to one
     * node); across a network each one costs a round trip. */
    uint64_t round_trips;
    char *own_url; /* kpi_redis_conn_new's redacted copy of the url */
};

void kpi_redis_conn_init(struct kpi_redis_conn *c, const char *script);
void kpi_redis_conn_fini(struct kpi_redis_conn *c);
/* Drop every connection (the next command reconnects). */
void kpi_redis_conn_drop(struct kpi_redis_conn *c);

/* A connection set for `url` (sinks/redis/url.h) with no script; nothing is
 * connected until the first command.  NULL with errstr set when the url
 * does not parse or memory runs out.  Free with kpi_redis_conn_free. */
struct kpi_redis_conn *kpi_redis_conn_new(const char *url, int64_t timeout_ms, char *errstr,
                                          size_t errstr_size);
void kpi_redis_conn_free(struct kpi_redis_conn *c);

/* The cluster slot of a key: CRC16 of its hash tag (the part between the
 * first '{' and the next '}', when not empty), else of the whole key. */
int kpi_redis_key_slot(const char *key, size_t len);

/* Run one command on the node that owns `slot`: connects (AUTH, SELECT,
 * FUNCTION LOAD) when needed, follows MOVED and ASK, loads the function
 * again when Redis does not know it ("Function not found": argv[1] of an
 * FCALL is replaced by the function's name).  0 with
 * *out set (possibly an error reply: the caller decides), or KPI_ERR_IO when
 * no reply came; then *sent tells whether the command may have reached Redis
 * (the outcome is in doubt) and the connection has been dropped. */
int kpi_redis_conn_command(struct kpi_redis_conn *c, int slot, int argc, const char **argv,
                           size_t *lens, redisReply **out, int *sent, char *errstr,
                           size_t errstr_size);

/* One command of a batch: its slot and arguments (lens may be NULL: C
 * strings), and, after kpi_redis_conn_batch, its reply (the caller frees it;
 * possibly an error reply). */
struct kpi_redis_cmd {
    int slot;
    int argc;
    const char **argv;
    size_t *lens;
    redisReply *reply;
};

/* Run read commands pipelined: one round trip per node for the commands
 * whose slot it owns (every command, against a standalone Redis), and a
 * command redirected by MOVED or ASK again on its own through
 * kpi_redis_conn_command.  Not for writes whose outcome matters when a
 * connection is lost: the commands are run at least once.  0 with every
 * reply set, or KPI_ERR_IO (errstr set; no reply is left to free). */
int kpi_redis_conn_batch(struct kpi_redis_conn *c, struct kpi_redis_cmd *cmds, size_t n,
                         char *errstr, size_t errstr_size);

/* Send n commands (command i is the next argc[i] entries of argv and lens)
 * to the node that owns `slot`, in one write, and read every reply into
 * replies[i] (the caller frees them), without following redirections: a
 * MOVED reply updates the route and sets *moved, so the caller can run the
 * whole sequence again (a transaction must stay on one connection).  For
 * WATCH ... MULTI ... EXEC.  KPI_ERR_IO when a reply did not come; then
 * *sent says whether anything was written (the connection is dropped, and
 * every reply freed). */
int kpi_redis_conn_pipeline(struct kpi_redis_conn *c, int slot, size_t n, const int *argc,
                            const char **argv, const size_t *lens, redisReply **replies, int *sent,
                            int *moved, char *errstr, size_t errstr_size);

/* Error replies that mean "not run, try again later" (a function Redis does
 * not know included: it ran nothing). */
int kpi_redis_is_transient(const char *err);
/* "ERR Function not found": an FCALL of a function Redis does not hold. */
int kpi_redis_is_no_function(const char *err);

#endif
