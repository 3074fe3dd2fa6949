/*
 * kafka_util.h - test helpers for a real broker: where it is, a unique topic
 * with N partitions, producing generator traffic with an exact tally, and
 * reading a topic back (dead letters).
 */
#ifndef KPI_TEST_KAFKA_UTIL_H
#define KPI_TEST_KAFKA_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "gen/truth.h"

/* "127.0.0.1:<KPI_KAFKA_PORT or 9092>". */
const char *kt_brokers(void);
/* A fresh topic name with `prefix`; created with `partitions`.  0 or -1. */
int kt_create_topic(char *name, size_t size, const char *prefix, int partitions);
/* Produce n generator events (keyed by subscriber) with conf, tallying truth. */
int kt_produce(const char *topic, const struct kpi_gen_conf *conf, uint64_t n,
               struct kpi_gen_truth *truth);
/* Produce one message as is to a partition, and wait for its delivery.  0 or -1. */
int kt_produce_raw(const char *topic, int32_t partition, const void *msg, size_t len);
/* Read every message of a topic from the beginning until `expect` arrived or
 * timeout_ms passed; counts per reason header into by_reason.  Returns the
 * number read. */
int64_t kt_read_dlq(const char *topic, int64_t expect, int64_t timeout_ms, uint64_t by_reason[],
                    int n_reasons, int *headers_ok);
/* Run a shell command from the repository root; its exit status. */
int kt_sh(const char *cmd);

/* The broker's SASL_SSL listener (scripts/services.sh): "127.0.0.1:<port>"
 * (KPI_KAFKA_SASL_PORT, else KPI_KAFKA_PORT + 1000). */
const char *kt_sasl_brokers(void);
/* A file of the services' test TLS directory (KPI_SERVICES_DIR, else
 * <repo>/.services, then /tls/<name>): ca.pem, kafka_password. */
const char *kt_tls_file(const char *name);
/* librdkafka properties for the user `kpi` over SASL_SSL (SASL/PLAIN; the
 * test CA), with `password` (the real one: kt_sasl_password()). */
void kt_sasl_props(const char *(*props)[2], const char *password);
/* The SASL user's password (from kt_tls_file("kafka_password")). */
const char *kt_sasl_password(void);
#define KT_SASL_PROPS 5

#endif
