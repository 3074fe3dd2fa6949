/* kafka_util.c - see kafka_util.h. */
#include "support/kafka_util.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/decode.h"
#include "sources/kafka_client.h"

const char *kt_brokers(void)
{
    static char b[64];
    const char *p = getenv("KPI_KAFKA_PORT");
    snprintf(b, sizeof(b), "127.0.0.1:%s", p && *p ? p : "9092");
    return b;
}

const char *kt_sasl_brokers(void)
{
    static char b[64];
    const char *p = getenv("KPI_KAFKA_SASL_PORT");
    const char *k = getenv("KPI_KAFKA_PORT");
    int port = p && *p ? atoi(p) : (k && *k ? atoi(k) : 9092) + 1000;
    snprintf(b, sizeof(b), "127.0.0.1:%d", port);
    return b;
}

const char *kt_tls_file(const char *name)
{
    static char path[4][512];
    static int next;
    char *out = path[next++ % 4];
    const char *d = getenv("KPI_SERVICES_DIR");
    if (d && *d)
        snprintf(out, 512, "%s/tls/%s", d, name);
    else
        snprintf(out, 512, "%s/.services/tls/%s", KPI_SOURCE_DIR, name);
    return out;
}

const char *kt_sasl_password(void)
{
    static char pw[128];
    FILE *f = fopen(kt_tls_file("kafka_password"), "r");
    pw[0] = '\0';
    if (f) {
        if (fgets(pw, sizeof(pw), f))
            pw[strcspn(pw, "\r\n")] = '\0';
        fclose(f);
    }
    return pw;
}

void kt_sasl_props(const char *(*props)[2], const char *password)
{
    static const char *const names[KT_SASL_PROPS] = {"security.protocol", "sasl.mechanisms",
                                                     "sasl.username", "sasl.password",
                                                     "ssl.ca.location"};
    /* PLAIN: Debian 12's librdkafka 2.0.2 cannot do SCRAM with a Kafka 4.x
     * broker (librdkafka #4895, fixed in 2.6.1); over TLS either way. */
    const char *values[KT_SASL_PROPS] = {"SASL_SSL", "PLAIN", "kpi", password,
                                         kt_tls_file("ca.pem")};
    for (int i = 0; i < KT_SASL_PROPS; i++) {
        props[i][0] = names[i];
        props[i][1] = values[i];
    }
}

int kt_sh(const char *cmd)
{
    char full[1024];
    snprintf(full, sizeof(full), "cd '%s' && %s", KPI_SOURCE_DIR, cmd);
    return system(full);
}

/* A producer on the test broker, with extra settings (name, value, ...,
 * NULL; or NULL for none), or NULL. */
static rd_kafka_t *producer(const char *const *settings)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", kt_brokers(), err, sizeof(err));
    for (; settings && settings[0]; settings += 2)
        rd_kafka_conf_set(c, settings[0], settings[1], err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    if (!rk)
        rd_kafka_conf_destroy(c);
    return rk;
}

int kt_create_topic(char *name, size_t size, const char *prefix, int partitions)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(name, size, "%s-%d-%ld%03ld", prefix, (int)getpid(), (long)ts.tv_sec % 100000,
             ts.tv_nsec / 1000000);
    rd_kafka_t *rk = producer(NULL);
    if (!rk)
        return -1;
    char err[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, partitions, 1, err, sizeof(err));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = -1;
    if (ev) {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
        rc = (n == 1 && rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_NO_ERROR) ? 0 : -1;
        if (rc)
            fprintf(stderr, "create topic %s: %s\n", name,
                    n ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

int kt_produce(const char *topic, const struct kpi_gen_conf *conf, uint64_t n,
               struct kpi_gen_truth *truth)
{
    static const char *const batched[] = {"linger.ms", "5", "enable.idempotence", "true", NULL};
    rd_kafka_t *rk = producer(batched);
    if (!rk)
        return -1;
    int rc = kt_produce_with(rk, topic, conf, n, truth);
    rd_kafka_destroy(rk);
    return rc;
}

int kt_produce_with(rd_kafka_t *rk, const char *topic, const struct kpi_gen_conf *conf, uint64_t n,
                    struct kpi_gen_truth *truth)
{
    struct kpi_gen *g = kpi_gen_new(conf);
    if (!g)
        return -1;
    uint8_t buf[512];
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        struct kpi_gen_info in;
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        char key[24];
        int kl = snprintf(key, sizeof(key), "%llu", (unsigned long long)in.sub);
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(buf, len),
                                 RD_KAFKA_V_KEY(key, (size_t)kl),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        kpi_gen_truth_add(truth, &in);
    }
    kpi_gen_destroy(g);
    return rd_kafka_flush(rk, 60000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

int kt_produce_raw(const char *topic, int32_t partition, const void *msg, size_t len)
{
    rd_kafka_t *rk = producer(NULL);
    if (!rk)
        return -1;
    int rc = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                               RD_KAFKA_V_VALUE((void *)msg, len),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)
                 ? -1
                 : 0;
    if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        rc = -1;
    rd_kafka_destroy(rk);
    return rc;
}

int64_t kt_read_dlq(const char *topic, int64_t expect, int64_t timeout_ms, uint64_t by_reason[],
                    int n_reasons, int *headers_ok)
{
    char err[512], group[128];
    snprintf(group, sizeof(group), "dlq-reader-%d", (int)getpid());
    const char *const kv[][2] = {{"bootstrap.servers", kt_brokers()},
                                 {"group.id", group},
                                 {"auto.offset.reset", "earliest"}};
    rd_kafka_t *rk =
        kpi_kafka_client_from(RD_KAFKA_CONSUMER, kv, sizeof(kv) / sizeof(kv[0]), err, sizeof(err));
    if (!rk || kpi_kafka_subscribe_one(rk, topic, err, sizeof(err))) {
        fprintf(stderr, "kt_read_dlq: %s\n", err);
        if (rk)
            rd_kafka_destroy(rk);
        return -1;
    }
    int64_t got = 0;
    *headers_ok = 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (got >= expect || (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 > deadline)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err) {
            got++;
            rd_kafka_headers_t *h = NULL;
            const void *v;
            size_t vl;
            if (rd_kafka_message_headers(m, &h) ||
                rd_kafka_header_get_last(h, "kpi.reason", &v, &vl) ||
                rd_kafka_header_get_last(h, "kpi.topic", &v, &vl) ||
                rd_kafka_header_get_last(h, "kpi.partition", &v, &vl) ||
                rd_kafka_header_get_last(h, "kpi.offset", &v, &vl)) {
                *headers_ok = 0;
            } else {
                rd_kafka_header_get_last(h, "kpi.reason", &v, &vl);
                for (int r = 0; r < n_reasons; r++) {
                    const char *name = kpi_bad_reason_name((enum kpi_bad_reason)r);
                    if (strlen(name) == vl && memcmp(name, v, vl) == 0)
                        by_reason[r]++;
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got;
}
