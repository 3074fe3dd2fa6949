/*
 * conn.c - connections to one Redis or a Redis Cluster (conn.h): the sink's,
 * and the readers' (cmd/lib/kpiread.c).
 *
 * Routing.  Every command names the slot of the keys it touches (the key
 * group's hash tag).  Slots start unknown and go to the seed (the configured
 * address); a cluster node that does not own the slot answers
 * `MOVED <slot> <host>:<port>`, which is remembered, so after one redirect per
 * slot every command goes straight to its master.  `ASK` (a slot being
 * migrated) is followed once, with ASKING, without remembering it.  Against a
 * standalone Redis nothing is ever redirected and everything goes to the seed.
 *
 * Failures.  A command that got no reply drops its connection and returns
 * KPI_ERR_IO with *sent = 1: it may have run (the sink resolves that from the
 * offsets).  A node that cannot be reached is forgotten with its slots, so the
 * next call asks the seed (or, if the seed is the one that died, any other
 * node this sink knows) and is redirected to the new master after a failover.
 * READONLY (the address now points at a replica: a Sentinel or managed
 * failover) drops the connection, so the next call reconnects and resolves
 * the address again (a host name is looked up again by every connect, a unix
 * socket path opened again); so does any connection error, and a storm of
 * more than 16 redirections drops every connection and route.  MOVED, ASK,
 * READONLY, CLUSTERDOWN and TRYAGAIN all mean "not run", so retrying them
 * never applies anything twice.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "sinks/redis/conn.h"

#include "base/digits.h"
#include "engine/err.h"
#include "engine/hash.h"
#include "engine/keygroup.h"

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

void kpi_redis_conn_init(struct kpi_redis_conn *c, const char *script)
{
    memset(c->nodes, 0, sizeof(c->nodes));
    c->n_nodes = 1; /* node 0: the seed, the configured address */
    c->script = script;
    c->lib = NULL;
    c->wbuf = NULL;
    c->wcap = 0;
    c->probe_multi = c->multi_refused = 0;
    c->lib_name[0] = c->fn[0] = '\0';
    if (script) {
        uint64_t h = kpi_murmur64a(script, strlen(script), 0);
        snprintf(c->lib_name, sizeof(c->lib_name), "kpistream_%016" PRIx64, h);
        snprintf(c->fn, sizeof(c->fn), "kpistream_flush_%016" PRIx64, h);
    }
    c->own_url = NULL;
    for (int i = 0; i < KPI_REDIS_SLOTS; i++)
        c->slot_node[i] = -1;
}

static void node_disconnect(struct kpi_redis_conn *c, int i)
{
    if (c->nodes[i].ctx) {
        redisFree(c->nodes[i].ctx);
        c->nodes[i].ctx = NULL;
    }
}

/* Forget node i's connection and the slots routed to it. */
static void node_forget(struct kpi_redis_conn *c, int i)
{
    node_disconnect(c, i);
    for (int s = 0; s < KPI_REDIS_SLOTS; s++)
        if (c->slot_node[s] == i)
            c->slot_node[s] = -1;
}

void kpi_redis_conn_drop(struct kpi_redis_conn *c)
{
    for (int i = 0; i < c->n_nodes; i++)
        node_disconnect(c, i);
}

void kpi_redis_conn_fini(struct kpi_redis_conn *c)
{
    kpi_redis_conn_drop(c);
    for (int i = 0; i < c->n_nodes; i++)
        free(c->nodes[i].host);
    c->n_nodes = 0;
    free(c->lib);
    c->lib = NULL;
    free(c->wbuf);
    c->wbuf = NULL;
    c->wcap = 0;
}

/* The function library: the script as the body of its one function, whose
 * arguments take the names the script reads (KEYS, ARGV).  0 or NOMEM. */
static int make_lib(struct kpi_redis_conn *c)
{
    static const char head[] =
        "#!lua name=%s\nredis.register_function('%s', function(KEYS, ARGV)\n";
    static const char tail[] = "\nend)\n";
    if (c->lib)
        return 0;
    size_t n =
        sizeof(head) + sizeof(c->lib_name) + sizeof(c->fn) + strlen(c->script) + sizeof(tail);
    c->lib = malloc(n);
    if (!c->lib)
        return KPI_ERR_NOMEM;
    int k = snprintf(c->lib, n, head, c->lib_name, c->fn);
    snprintf(c->lib + k, n - (size_t)k, "%s%s", c->script, tail);
    return 0;
}

static int conn_error(struct kpi_redis_conn *c, int node, char *errstr, size_t errsz,
                      const char *what)
{
    const redisContext *ctx = c->nodes[node].ctx;
    const char *why = ctx && ctx->err ? ctx->errstr : "connection lost";
    if (node == 0)
        kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis %s: %s: %s", c->url, what, why);
    else
        kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis %s:%d (cluster node): %s: %s",
                   c->nodes[node].host, c->nodes[node].port, what, why);
    node_forget(c, node);
    c->io_errors++;
    return KPI_ERR_IO;
}

/* AUTH, SELECT (standalone seed only), FUNCTION LOAD and the MULTI/EXEC
 * probe in one round trip. */
static int node_connect(struct kpi_redis_conn *c, int i, char *errstr, size_t errsz)
{
    struct kpi_redis_node *n = &c->nodes[i];
    if (n->ctx)
        return 0;
    struct timeval ct = tv_ms(c->connect_timeout_ms);
    if (i == 0)
        n->ctx = c->addr.unix_path ? redisConnectUnixWithTimeout(c->addr.unix_path, ct)
                                   : redisConnectWithTimeout(c->addr.host, c->addr.port, ct);
    else
        n->ctx = redisConnectWithTimeout(n->host, n->port, ct);
    if (!n->ctx || n->ctx->err)
        return conn_error(c, i, errstr, errsz, "connect");
    if (redisSetTimeout(n->ctx, tv_ms(c->command_timeout_ms)) != REDIS_OK)
        return conn_error(c, i, errstr, errsz, "set timeout");
    const char *what[5];
    int k = 0;
    if (c->addr.password) {
        if (c->addr.user)
            redisAppendCommand(n->ctx, "AUTH %s %s", c->addr.user, c->addr.password);
        else
            redisAppendCommand(n->ctx, "AUTH %s", c->addr.password);
        what[k++] = "AUTH";
    }
    if (c->addr.db && i == 0) {
        redisAppendCommand(n->ctx, "SELECT %d", c->addr.db);
        what[k++] = "SELECT";
    }
    if (c->script) {
        if (make_lib(c)) {
            node_disconnect(c, i);
            return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "redis %s: out of memory", c->url);
        }
        redisAppendCommand(n->ctx, "FUNCTION LOAD REPLACE %s", c->lib);
        what[k++] = "FUNCTION LOAD";
    }
    if (c->probe_multi) {
        redisAppendCommand(n->ctx, "MULTI");
        what[k++] = "MULTI";
        redisAppendCommand(n->ctx, "EXEC");
        what[k++] = "EXEC";
    }
    int err = 0;
    c->round_trips += k > 0;
    for (int j = 0; j < k; j++) {
        void *rv = NULL;
        if (redisGetReply(n->ctx, &rv) != REDIS_OK)
            return conn_error(c, i, errstr, errsz, "connect handshake");
        redisReply *r = rv;
        int probe = strcmp(what[j], "MULTI") == 0 || strcmp(what[j], "EXEC") == 0;
        if (!err && probe && r->type == REDIS_REPLY_ERROR &&
            (strstr(r->str, "NOPERM") || c->multi_refused)) {
            /* Refused by the ACL: MULTI (then EXEC fails "without MULTI"),
             * or EXEC ("EXECABORT ... NOPERM": Redis discards the
             * transaction, the connection is not left inside it). */
            c->multi_refused = 1;
            c->probe_multi = 0;
        } else if (!err && r->type == REDIS_REPLY_ERROR && strcmp(what[j], "FUNCTION LOAD") == 0 &&
                   strncmp(r->str, "READONLY", 8) == 0) {
            /* A replica (a cluster seed that a failover demoted): it
             * redirects what is sent to it (MOVED), or answers READONLY
             * to the flush itself, which forgets it.  Functions reach a
             * replica by replication; the master's connection loads it. */
        } else if (!err && r->type == REDIS_REPLY_ERROR) {
            err = kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis %s: %s: %.*s", c->url, what[j],
                             (int)r->len, r->str);
        } else if (!err && strcmp(what[j], "FUNCTION LOAD") == 0) {
            if (r->type == REDIS_REPLY_STRING && strlen(c->lib_name) == r->len &&
                memcmp(r->str, c->lib_name, r->len) == 0) {
                c->script_loads++;
            } else {
                err = kpi_seterr(errstr, errsz, KPI_ERR_IO,
                                 "redis %s: FUNCTION LOAD: unexpected reply", c->url);
            }
        }
        freeReplyObject(r);
    }
    if (err) {
        c->io_errors++;
        node_disconnect(c, i);
        return err;
    }
    c->connects++;
    return 0;
}

/* The node for "host:port" (added if new), or -1 when the table is full. */
static int node_index(struct kpi_redis_conn *c, const char *hostport)
{
    const char *colon = strrchr(hostport, ':');
    if (!colon)
        return -1;
    int port = atoi(colon + 1);
    size_t hl = (size_t)(colon - hostport);
    for (int i = 1; i < c->n_nodes; i++)
        if (c->nodes[i].port == port && strlen(c->nodes[i].host) == hl &&
            memcmp(c->nodes[i].host, hostport, hl) == 0)
            return i;
    if (c->n_nodes == KPI_REDIS_MAX_NODES)
        return -1;
    struct kpi_redis_node *n = &c->nodes[c->n_nodes];
    if (!(n->host = strndup(hostport, hl)))
        return -1;
    n->port = port;
    n->ctx = NULL;
    return c->n_nodes++;
}

/* Where a slot goes: its known master, else the seed, else (the seed down)
 * any node that answers. */
static int pick_node(struct kpi_redis_conn *c, int slot, char *errstr, size_t errsz)
{
    if (slot >= 0 && c->slot_node[slot] >= 0 &&
        node_connect(c, c->slot_node[slot], errstr, errsz) == 0)
        return c->slot_node[slot];
    for (int i = 0; i < c->n_nodes; i++)
        if (node_connect(c, i, errstr, errsz) == 0)
            return i;
    return -1;
}

static int starts_with_code(const char *s, const char *code)
{
    size_t n = strlen(code);
    return strncmp(s, code, n) == 0 && (s[n] == ' ' || s[n] == '\0');
}

int kpi_redis_conn_command(struct kpi_redis_conn *c, int slot, int argc, const char **argv,
                           size_t *lens, redisReply **out, int *sent, char *errstr, size_t errsz)
{
    *sent = 0;
    *out = NULL;
    int is_fcall = argc > 1 && lens[0] == 5 && memcmp(argv[0], "FCALL", 5) == 0;
    int asking = -1, reloaded = 0;
    for (int hop = 0; hop < 16; hop++) {
        int ni = asking >= 0 ? asking : pick_node(c, slot, errstr, errsz);
        if (ni < 0)
            return KPI_ERR_IO;
        if (node_connect(c, ni, errstr, errsz))
            return KPI_ERR_IO;
        redisContext *ctx = c->nodes[ni].ctx;
        if (is_fcall) {
            argv[1] = c->fn;
            lens[1] = strlen(c->fn);
        }
        if (asking >= 0) {
            c->round_trips++;
            redisReply *a = redisCommand(ctx, "ASKING");
            if (!a)
                return conn_error(c, ni, errstr, errsz, "ASKING");
            freeReplyObject(a);
            asking = -1;
        }
        c->round_trips++;
        redisReply *r = redisCommandArgv(ctx, argc, argv, lens);
        if (!r) {
            *sent = 1;
            return conn_error(c, ni, errstr, errsz, is_fcall ? "FCALL" : "command");
        }
        if (r->type == REDIS_REPLY_ERROR) {
            int moved = starts_with_code(r->str, "MOVED"), ask = starts_with_code(r->str, "ASK");
            if (moved || ask) {
                /* "MOVED 3999 127.0.0.1:6381" */
                const char *hp = strrchr(r->str, ' ');
                int target = hp ? node_index(c, hp + 1) : -1;
                if (target >= 0) {
                    c->redirects++;
                    if (moved && slot >= 0)
                        c->slot_node[slot] = (int16_t)target;
                    else
                        asking = target;
                    freeReplyObject(r);
                    continue;
                }
            } else if (is_fcall && !reloaded && kpi_redis_is_no_function(r->str)) {
                freeReplyObject(r);
                reloaded = 1;
                node_disconnect(c, ni); /* reconnecting loads the function */
                continue;
            } else if (starts_with_code(r->str, "READONLY")) {
                node_forget(c, ni); /* a replica now: resolve the address again next time */
            }
        }
        *out = r;
        return 0;
    }
    /* A redirection storm (a cluster reconfiguring, a proxy pointing at the
     * wrong nodes): forget every connection and route, so the next call
     * starts again from the configured address, resolved anew. */
    for (int i = 0; i < c->n_nodes; i++)
        node_forget(c, i);
    c->io_errors++;
    return kpi_seterr(errstr, errsz, KPI_ERR_IO, "redis %s: too many cluster redirections", c->url);
}

struct kpi_redis_conn *kpi_redis_conn_new(const char *url, int64_t timeout_ms, char *errstr,
                                          size_t errsz)
{
    struct kpi_redis_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "redis: out of memory");
        return NULL;
    }
    kpi_redis_conn_init(c, NULL);
    if (kpi_redis_url_parse(url, &c->addr, errstr, errsz)) {
        free(c);
        return NULL;
    }
    if (!(c->own_url = kpi_redis_url_redact(url))) {
        kpi_redis_addr_fini(&c->addr);
        free(c);
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "redis: out of memory");
        return NULL;
    }
    c->url = c->own_url;
    c->connect_timeout_ms = c->command_timeout_ms = timeout_ms;
    return c;
}

void kpi_redis_conn_free(struct kpi_redis_conn *c)
{
    if (!c)
        return;
    kpi_redis_conn_fini(c);
    kpi_redis_addr_fini(&c->addr);
    free(c->own_url);
    free(c);
}

int kpi_redis_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return kpi_crc16(open + 1, (size_t)(close - open - 1)) & (KPI_REDIS_SLOTS - 1);
    }
    return kpi_crc16(key, len) & (KPI_REDIS_SLOTS - 1);
}

/* Pipelining.  Commands are sent to the node their slot is routed to, all of
 * one node's in one write, and their replies read in order.  A reply that
 * says the command ran elsewhere (MOVED, ASK) sends that command
 * again alone, through kpi_redis_conn_command, which follows the redirection
 * and learns the route.  A lost connection fails the whole batch: readers
 * simply ask again. */
static void batch_free(struct kpi_redis_cmd *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cmds[i].reply) {
            freeReplyObject(cmds[i].reply);
            cmds[i].reply = NULL;
        }
}

static int batch_rerun(struct kpi_redis_conn *c, struct kpi_redis_cmd *cmd, char *errstr,
                       size_t errsz)
{
    size_t *lens = cmd->lens;
    if (!lens) {
        if (!(lens = malloc((size_t)cmd->argc * sizeof(*lens))))
            return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "redis: out of memory");
        for (int a = 0; a < cmd->argc; a++)
            lens[a] = strlen(cmd->argv[a]);
    }
    int sent;
    int err = kpi_redis_conn_command(c, cmd->slot, cmd->argc, cmd->argv, lens, &cmd->reply, &sent,
                                     errstr, errsz);
    if (lens != cmd->lens)
        free(lens);
    return err;
}

/* A RESP header: type, v in decimal, CRLF. */
static char *put_len(char *o, char type, uint64_t v)
{
    char tmp[24];
    uint32_t k = kpi_utoa_back(v, tmp + sizeof(tmp));
    *o++ = type;
    memcpy(o, tmp + sizeof(tmp) - k, k);
    o += k;
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

/* The length of argument i: lens[i], or, with no lens (as hiredis allows),
 * its strlen. */
static size_t arg_len(const char **argv, const size_t *lens, size_t i)
{
    return lens ? lens[i] : strlen(argv[i]);
}

/* n commands (argc[i] arguments each, consecutive in argv and in lens, which
 * may be NULL) as RESP in c->wbuf: *len bytes.  redisAppendCommandArgv does the same per
 * command, but builds each argument's header with an sds printf and copies
 * each command twice: at 10 000 values that was the largest part of the
 * sink thread's own CPU (bench/RESULTS.md).  The buffer is kept from call
 * to call: a new one of megabytes is fresh pages, zeroed by the kernel.
 * 0, or -1 out of memory. */
static int format_commands(struct kpi_redis_conn *c, size_t n, const int *argc, const char **argv,
                           const size_t *lens, size_t *len)
{
    size_t total = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        total += 24;
        for (int j = 0; j < argc[i]; j++, at++)
            total += 26 + arg_len(argv, lens, at);
    }
    if (total > c->wcap) {
        char *b = realloc(c->wbuf, total);
        if (!b)
            return -1;
        c->wbuf = b;
        c->wcap = total;
    }
    char *o = c->wbuf;
    at = 0;
    for (size_t i = 0; i < n; i++) {
        o = put_len(o, '*', (uint64_t)argc[i]);
        for (int j = 0; j < argc[i]; j++, at++) {
            size_t n_at = arg_len(argv, lens, at);
            o = put_len(o, '$', n_at);
            memcpy(o, argv[at], n_at);
            o += n_at;
            *o++ = '\r';
            *o++ = '\n';
        }
    }
    *len = (size_t)(o - c->wbuf);
    return 0;
}

/* Append n commands to ctx's output buffer (a batch: the replies are read
 * with redisGetReply).  0, or -1 out of memory (nothing appended). */
static int append_commands(struct kpi_redis_conn *c, redisContext *ctx, size_t n, const int *argc,
                           const char **argv, const size_t *lens)
{
    size_t len;
    if (format_commands(c, n, argc, argv, lens, &len))
        return -1;
    return redisAppendFormattedCommand(ctx, c->wbuf, len) == REDIS_OK ? 0 : -1;
}

/* Send n commands now, straight from c->wbuf to the socket, when nothing
 * else is queued on ctx (else through its output buffer, as a batch): the
 * replies are then read with redisGetReply, which finds nothing to write.
 * A failure marks ctx as redisBufferWrite would (the caller drops it).
 * 0, -1 out of memory (nothing sent), -2 the write failed. */
static int send_commands(struct kpi_redis_conn *c, redisContext *ctx, size_t n, const int *argc,
                         const char **argv, const size_t *lens)
{
    if (sdslen(ctx->obuf) > 0)
        return append_commands(c, ctx, n, argc, argv, lens);
    size_t len;
    if (format_commands(c, n, argc, argv, lens, &len))
        return -1;
    const char *p = c->wbuf;
    while (len > 0) {
        ssize_t k = send(ctx->fd, p, len, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            ctx->err = REDIS_ERR_IO;
            snprintf(ctx->errstr, sizeof(ctx->errstr), "%s",
                     k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? "write timed out"
                                                                        : strerror(errno));
            return -2;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

int kpi_redis_conn_batch(struct kpi_redis_conn *c, struct kpi_redis_cmd *cmds, size_t n,
                         char *errstr, size_t errsz)
{
    for (size_t i = 0; i < n; i++)
        cmds[i].reply = NULL;
    if (n == 0)
        return 0;
    int *node = malloc(n * sizeof(*node));
    if (!node)
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "redis: out of memory");
    int err = 0;
    for (size_t i = 0; i < n && !err; i++)
        if ((node[i] = pick_node(c, cmds[i].slot, errstr, errsz)) < 0)
            err = KPI_ERR_IO;
    /* Routes may have changed while connecting (a node forgotten): check
     * each node's connection once more when its turn comes. */
    for (int ni = 0; ni < c->n_nodes && !err; ni++) {
        size_t queued = 0;
        for (size_t i = 0; i < n; i++)
            if (node[i] == ni)
                queued++;
        if (!queued)
            continue;
        if ((err = node_connect(c, ni, errstr, errsz)))
            break;
        redisContext *ctx = c->nodes[ni].ctx;
        for (size_t i = 0; i < n && !err; i++)
            if (node[i] == ni &&
                append_commands(c, ctx, 1, &cmds[i].argc, cmds[i].argv, cmds[i].lens))
                err = kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "redis: out of memory");
        if (err) {
            node_forget(c, ni); /* not half a batch on the connection */
            break;
        }
        c->round_trips++;
        for (size_t i = 0; i < n && !err; i++) {
            if (node[i] != ni)
                continue;
            void *rv = NULL;
            if (redisGetReply(ctx, &rv) != REDIS_OK || !rv)
                err = conn_error(c, ni, errstr, errsz, "pipelined command");
            cmds[i].reply = rv;
        }
    }
    free(node);
    for (size_t i = 0; i < n && !err; i++) {
        redisReply *r = cmds[i].reply;
        if (r->type != REDIS_REPLY_ERROR ||
            !(starts_with_code(r->str, "MOVED") || starts_with_code(r->str, "ASK")))
            continue;
        if (starts_with_code(r->str, "MOVED")) {
            const char *hp = strrchr(r->str, ' ');
            int target = hp ? node_index(c, hp + 1) : -1;
            if (target >= 0 && cmds[i].slot >= 0)
                c->slot_node[cmds[i].slot] = (int16_t)target;
        }
        freeReplyObject(r);
        cmds[i].reply = NULL;
        err = batch_rerun(c, &cmds[i], errstr, errsz);
    }
    if (err)
        batch_free(cmds, n);
    return err;
}

int kpi_redis_conn_pipeline(struct kpi_redis_conn *c, int slot, size_t n, const int *argc,
                            const char **argv, const size_t *lens, redisReply **replies, int *sent,
                            int *moved, char *errstr, size_t errsz)
{
    *sent = *moved = 0;
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    int ni = pick_node(c, slot, errstr, errsz);
    if (ni < 0)
        return KPI_ERR_IO;
    redisContext *ctx = c->nodes[ni].ctx;
    *sent = 1;
    c->round_trips++;
    int rc = send_commands(c, ctx, n, argc, argv, lens);
    if (rc == -1) {
        *sent = 0;
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "redis: out of memory");
    }
    if (rc == -2)
        return conn_error(c, ni, errstr, errsz, "pipelined transaction");
    for (size_t i = 0; i < n; i++) {
        void *rv = NULL;
        if (redisGetReply(ctx, &rv) != REDIS_OK || !rv) {
            for (size_t j = 0; j < i; j++) {
                freeReplyObject(replies[j]);
                replies[j] = NULL;
            }
            return conn_error(c, ni, errstr, errsz, "pipelined transaction");
        }
        replies[i] = rv;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *r = replies[i];
        if (r->type != REDIS_REPLY_ERROR)
            continue;
        if (starts_with_code(r->str, "MOVED")) {
            const char *hp = strrchr(r->str, ' ');
            int target = hp ? node_index(c, hp + 1) : -1;
            if (target >= 0 && slot >= 0) {
                c->slot_node[slot] = (int16_t)target;
                c->redirects++;
                *moved = 1;
            }
        } else if (starts_with_code(r->str, "READONLY")) {
            node_forget(c, ni);
        }
    }
    return 0;
}

int kpi_redis_is_no_function(const char *err)
{
    static const char msg[] = "ERR Function not found";
    return strncmp(err, msg, sizeof(msg) - 1) == 0;
}

int kpi_redis_is_transient(const char *err)
{
    static const char *const codes[] = {
        "BUSY",        "LOADING",    "OOM",       "MASTERDOWN", "READONLY", "TRYAGAIN",
        "CLUSTERDOWN", "NOREPLICAS", "NOSCRIPT",  "MOVED",      "ASK",      "NOAUTH",
        "NOPERM",      "MISCONF",    "EXECABORT", "UNBLOCKED",  "WRONGPASS"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (starts_with_code(err, codes[i]))
            return 1;
    return kpi_redis_is_no_function(err);
}
