/*
 * chaos_tool.c - the fault campaign's two helpers (tests/chaos/chaos.sh).
 *
 *   kpi-chaos-tool hostile BROKERS TOPIC
 *       produce one round of hostile events (below) and print
 *       "hostile: <messages> messages, <good> good, <revenue> revenue, <bad> bad"
 *   kpi-chaos-tool dlq BROKERS TOPIC
 *       read the dead-letter topic from its start to its end and print
 *       "dlq: <n> dead letters, <d> distinct" where distinct counts the
 *       (kpi.topic, kpi.partition, kpi.offset) headers once: dead letters are
 *       at least once (a replay after kill -9 produces them again), and the
 *       campaign checks that the distinct ones are exactly the bad events.
 *
 * Hostile events, each round: valid ones whose dimension values hold NUL,
 * newline, CR, glob characters and braces, whose subscriber ids are glob
 * patterns, one with a 1 MB value under an unknown key and one nested 31
 * levels deep (the limit is 32); bad ones nested 128 levels, with a 1 MB
 * dimension value or subscriber id, a NUL inside the type, a dimension
 * nested 128 levels and a timestamp a day ahead.  Every valid one is a usage
 * event of 1.5 currency units at the current time.
 */
#include <librdkafka/rdkafka.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sources/kafka_client.h"

#define BIG          1000000 /* "1 MB" */
#define GOOD_AMOUNT  1500000 /* micro-units */
#define MAX_DISTINCT (1 << 22)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

#define LIT(pk, s) str(pk, s, sizeof(s) - 1)

static void nest(msgpack_packer *pk, int levels)
{
    for (int i = 0; i < levels - 1; i++)
        msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 0);
}

/* A usage event with the given sub and dimensions (lengths explicit: NUL
 * inside), plus `extra` more key/value pairs that the caller packs. */
static void usage(msgpack_packer *pk, const char *sub, size_t sub_len, const char *const dims[3],
                  const size_t lens[3], int extra, int64_t ts)
{
    msgpack_pack_map(pk, 7 + (size_t)extra);
    LIT(pk, "type");
    LIT(pk, "usage");
    LIT(pk, "ts");
    msgpack_pack_uint64(pk, (uint64_t)ts);
    LIT(pk, "sub");
    str(pk, sub, sub_len);
    LIT(pk, "amount");
    msgpack_pack_int64(pk, GOOD_AMOUNT);
    static const char *const names[3] = {"region", "plan", "segment"};
    for (int i = 0; i < 3; i++) {
        str(pk, names[i], strlen(names[i]));
        str(pk, dims[i], lens[i]);
    }
}

struct out {
    rd_kafka_t *rk;
    const char *topic;
    int messages, failed;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct out *o = opaque;
    if (m->err) {
        fprintf(stderr, "hostile: delivery failed: %s\n", rd_kafka_err2str(m->err));
        o->failed++;
    }
}

static void emit(struct out *o, msgpack_sbuffer *b)
{
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(o->rk, RD_KAFKA_V_TOPIC(o->topic),
                                  RD_KAFKA_V_VALUE(b->data, b->size),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(o->rk, 10);
    if (e) {
        fprintf(stderr, "hostile: produce: %s\n", rd_kafka_err2str(e));
        o->failed++;
    }
    o->messages++;
    msgpack_sbuffer_clear(b);
}

static int hostile(const char *brokers, const char *topic)
{
    char err[256];
    const char *const kv[][2] = {{"bootstrap.servers", brokers},
                                 {"message.max.bytes", "2000000"},
                                 {"enable.idempotence", "true"}};
    rd_kafka_conf_t *c = kpi_kafka_conf_from(kv, sizeof(kv) / sizeof(kv[0]), err, sizeof(err));
    if (!c) {
        fprintf(stderr, "hostile: %s\n", err);
        return 2;
    }
    struct out o = {.topic = topic};
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_conf_set_opaque(c, &o);
    if (!(o.rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err)))) {
        fprintf(stderr, "hostile: %s\n", err);
        return 2;
    }
    char *big = malloc(BIG);
    memset(big, 'x', BIG);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    const int64_t ts = now_ms();
    int good = 0, bad = 0;

    /* Valid: subscribers and values holding NULs, line breaks and Redis's
     * glob and hash-tag characters. */
    static const struct {
        const char *sub;
        size_t sub_len;
        const char *d[3];
        size_t l[3];
    } odd[] = {
        {"sub\0nul", 7, {"eu\0west", "pre\npaid", "a\r\nb"}, {7, 8, 4}},
        {"*", 1, {"*", "[a-z]?", "{x}:*"}, {1, 6, 5}},
        {"[^a]*?", 6, {"kpi:{g}:*", "\\*\\?", "}{"}, {9, 4, 2}},
    };
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        usage(&pk, odd[i].sub, odd[i].sub_len, odd[i].d, odd[i].l, 0, ts);
        emit(&o, &b), good++;
    }
    {
        const char *d[3] = {"eu-west", "prepaid", "youth"};
        const size_t l[3] = {7, 7, 5};
        usage(&pk, "big-unknown", 11, d, l, 1, ts);
        LIT(&pk, "blob");
        str(&pk, big, BIG);
        emit(&o, &b), good++;
        usage(&pk, "deep-31", 7, d, l, 1, ts);
        LIT(&pk, "deep");
        nest(&pk, 31); /* + the top-level map: 32 levels, the limit */
        emit(&o, &b), good++;
    }
    /* Bad. */
    {
        const char *d[3] = {"eu-west", "prepaid", "youth"};
        const size_t l[3] = {7, 7, 5};
        usage(&pk, "deep-128", 8, d, l, 1, ts); /* too_deep */
        LIT(&pk, "deep");
        nest(&pk, 127);
        emit(&o, &b), bad++;
        const char *d2[3] = {big, "prepaid", "youth"};
        const size_t l2[3] = {BIG, 7, 5};
        usage(&pk, "big-region", 10, d2, l2, 0, ts); /* oversized_string */
        emit(&o, &b), bad++;
        usage(&pk, big, BIG, d, l, 0, ts); /* oversized_string */
        emit(&o, &b), bad++;
        usage(&pk, "future", 6, d, l, 0, ts + 86400000); /* ts_in_future */
        emit(&o, &b), bad++;
        msgpack_pack_map(&pk, 4); /* nested_value: a dimension that is 128 levels deep */
        LIT(&pk, "type");
        LIT(&pk, "usage");
        LIT(&pk, "ts");
        msgpack_pack_uint64(&pk, (uint64_t)ts);
        LIT(&pk, "sub");
        LIT(&pk, "nested-dim");
        LIT(&pk, "region");
        nest(&pk, 128);
        emit(&o, &b), bad++;
        msgpack_pack_map(&pk, 3); /* unknown_type: a NUL inside "usage" */
        LIT(&pk, "type");
        str(&pk, "usa\0ge", 6);
        LIT(&pk, "ts");
        msgpack_pack_uint64(&pk, (uint64_t)ts);
        LIT(&pk, "sub");
        LIT(&pk, "nul-type");
        emit(&o, &b), bad++;
    }
    while (rd_kafka_outq_len(o.rk) > 0)
        rd_kafka_flush(o.rk, 1000);
    msgpack_sbuffer_destroy(&b);
    free(big);
    rd_kafka_destroy(o.rk);
    if (o.failed)
        return 1;
    printf("hostile: %d messages, %d good, %lld revenue, %d bad\n", o.messages, good,
           (long long)good * GOOD_AMOUNT, bad);
    return 0;
}

/* ---- dlq ---- */

static uint64_t *seen; /* open addressing set of (partition << 48 | offset) + 1 */
static size_t n_seen;

static int seen_add(uint64_t key)
{
    key++;
    size_t h = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 40) & (MAX_DISTINCT - 1);
    while (seen[h]) {
        if (seen[h] == key)
            return 0;
        h = (h + 1) & (MAX_DISTINCT - 1);
    }
    seen[h] = key;
    n_seen++;
    return 1;
}

static long long header_ll(rd_kafka_headers_t *h, const char *name)
{
    const void *v;
    size_t n;
    char buf[32];
    if (!h || rd_kafka_header_get_last(h, name, &v, &n) || n >= sizeof(buf))
        return -1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return atoll(buf);
}

static int dlq(const char *brokers, const char *topic)
{
    char err[256];
    const char *const kv[][2] = {{"bootstrap.servers", brokers},
                                 {"group.id", "kpi-chaos-tool"},
                                 {"enable.auto.commit", "false"}};
    rd_kafka_t *rk =
        kpi_kafka_client_from(RD_KAFKA_CONSUMER, kv, sizeof(kv) / sizeof(kv[0]), err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "dlq: %s\n", err);
        return 2;
    }
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1 || md->topics[0].err) {
        printf("dlq: 0 dead letters, 0 distinct\n"); /* no such topic: none */
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return 0;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    int64_t *hi = calloc((size_t)np, sizeof(*hi));
    int64_t left = 0;
    for (int p = 0; p < np; p++) {
        int64_t lo = 0;
        rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p], 10000);
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = lo;
        left += hi[p] - lo;
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    seen = calloc(MAX_DISTINCT, sizeof(*seen));
    long long total = 0;
    int idle = 0;
    while (left > 0 && idle < 30) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m) {
            idle++;
            continue;
        }
        idle = 0;
        if (!m->err && m->partition >= 0 && m->partition < np) {
            if (m->offset < hi[m->partition])
                left--;
            total++;
            rd_kafka_headers_t *h = NULL;
            rd_kafka_message_headers(m, &h);
            long long part = header_ll(h, "kpi.partition"), off = header_ll(h, "kpi.offset");
            if (part >= 0 && off >= 0)
                seen_add((uint64_t)part << 48 | (uint64_t)off);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(hi);
    free(seen);
    if (left > 0) {
        fprintf(stderr, "dlq: %lld dead letters could not be read\n", (long long)left);
        return 1;
    }
    printf("dlq: %lld dead letters, %zu distinct\n", total, n_seen);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "hostile") == 0)
        return hostile(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "dlq") == 0)
        return dlq(argv[2], argv[3]);
    fprintf(stderr, "usage: kpi-chaos-tool hostile|dlq BROKERS TOPIC\n");
    return 2;
}
