/* kafka_client.c - librdkafka plumbing beside the source (see kafka_client.h). */
#include "sources/kafka_client.h"

#include <stdio.h>

rd_kafka_conf_t *kpi_kafka_conf_from(const char *const kv[][2], size_t n, char *errstr,
                                     size_t errsz)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    for (size_t i = 0; i < n; i++)
        if (rd_kafka_conf_set(c, kv[i][0], kv[i][1], errstr, errsz) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(c);
            return NULL;
        }
    return c;
}

rd_kafka_t *kpi_kafka_client_from(rd_kafka_type_t type, const char *const kv[][2], size_t n,
                                  char *errstr, size_t errsz)
{
    rd_kafka_conf_t *c = kpi_kafka_conf_from(kv, n, errstr, errsz);
    if (!c)
        return NULL;
    rd_kafka_t *rk = rd_kafka_new(type, c, errstr, errsz);
    if (!rk)
        rd_kafka_conf_destroy(c); /* rd_kafka_new takes it only on success */
    return rk;
}

int kpi_kafka_subscribe_one(rd_kafka_t *rk, const char *topic, char *errstr, size_t errsz)
{
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    if (err) {
        snprintf(errstr, errsz, "subscribe to %s: %s", topic, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}
