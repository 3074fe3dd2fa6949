/*
 * kafka_client.h - librdkafka plumbing for the clients that stand beside
 * the source: the raw-consumer baseline (bench/raw.c), the tests' readers
 * (tests/support/kafka_util.c) and the fault campaign's tool
 * (tests/chaos/chaos_tool.c).
 */
#ifndef KPI_SOURCE_KAFKA_CLIENT_H
#define KPI_SOURCE_KAFKA_CLIENT_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* A configuration holding the n key/value pairs of kv, set in order; NULL
 * with errstr naming the pair librdkafka refused. */
rd_kafka_conf_t *kpi_kafka_conf_from(const char *const kv[][2], size_t n, char *errstr,
                                     size_t errsz);

/* A client of `type` configured with the n pairs of kv; NULL with errstr
 * set on failure. */
rd_kafka_t *kpi_kafka_client_from(rd_kafka_type_t type, const char *const kv[][2], size_t n,
                                  char *errstr, size_t errsz);

/* Points the consumer rk's polling at its consumer queue and subscribes it
 * to topic in its group; 0, or -1 with errstr set. */
int kpi_kafka_subscribe_one(rd_kafka_t *rk, const char *topic, char *errstr, size_t errsz);

#endif
