/*
 * kafka_client.h - librdkafka plumbing for the consumers that stand beside
 * the source: the raw-consumer baseline (bench/raw.c) and the tests' readers
 * (tests/support/kafka_util.c).
 */
#ifndef KPI_SOURCE_KAFKA_CLIENT_H
#define KPI_SOURCE_KAFKA_CLIENT_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* A configuration holding the n key/value pairs of kv, set in order; NULL
 * with errstr naming the pair librdkafka refused. */
rd_kafka_conf_t *kpi_kafka_conf_from(const char *const kv[][2], size_t n, char *errstr,
                                     size_t errsz);

/* A consumer over conf (which it takes), polled through its consumer queue
 * and subscribed to topic in its group; NULL with errstr set on failure. */
rd_kafka_t *kpi_kafka_consumer_subscribed(rd_kafka_conf_t *conf, const char *topic, char *errstr,
                                          size_t errsz);

#endif
