/*
 * kafka.h - the Kafka source: a librdkafka consumer group feeding the
 * engine's workers through librdkafka's per-partition queues.
 */
#ifndef KPI_SOURCE_KAFKA_H
#define KPI_SOURCE_KAFKA_H

#include <stdint.h>
#include <stdio.h>

#include "engine/engine.h"
#include "sinks/sink.h"
#include "sources/source.h"

struct kpi_kafka_conf {
    const char *brokers; /* bootstrap.servers */
    const char *topics;  /* comma-separated */
    const char *group_id;
    const char *dlq_topic; /* NULL or "": "<first topic>.dlq"; "-": no dead-letter topic */
    int exit_on_eof;       /* stop once every partition reached its end offset at assignment */
    int n_props;           /* librdkafka properties passed untouched */
    const char *const (*props)[2];
    int64_t offset_retry_ms; /* how long assignment retries the offset store (default 60000) */
    /* Once stopped, the final flush, leaving the group and everything else
     * the source waits for end within this (default 30000); a revocation
     * waits this long for its flush.  What is not flushed in time is not
     * acknowledged (read again by the next owner). */
    int64_t shutdown_timeout_ms;
};

void kpi_kafka_conf_defaults(struct kpi_kafka_conf *c);

/* The source feeds `engine` (whose flush target it wraps, so dead-letter
 * deliveries are confirmed before offsets are stored) and asks `store` where
 * partitions resume (may be NULL: start from the beginning).  ops == NULL on
 * error, with errstr naming the problem (a bad librdkafka property is named). */
struct kpi_source kpi_source_kafka_new(const struct kpi_kafka_conf *conf, struct kpi_engine *engine,
                                       struct kpi_sink *store, char *errstr, size_t errstr_size);

struct kpi_kafka_stats {
    uint64_t dlq_produced;  /* messages sent to the dead-letter topic */
    uint64_t dlq_retried;   /* dead-letter deliveries that failed and were sent again */
    uint64_t dlq_errors;    /* failed dead-letter produce or delivery attempts */
    size_t dlq_undelivered; /* dead letters waiting to be produced again */
    int dlq_blocked;        /* the last flush was held back by undelivered dead letters */
    uint64_t rebalances;
    uint64_t assigned;     /* partitions currently assigned */
    uint64_t paused_times; /* pauses for backpressure */
    int joined;            /* the consumer has had a group member id (joined) */
};
void kpi_source_kafka_get_stats(const struct kpi_source *s, struct kpi_kafka_stats *out);

/* Prometheus lines: consumer lag per partition and the counters above. */
void kpi_source_kafka_write_metrics(void *source_self, FILE *out);

/* 1 if the source is healthy; else 0 and the reason in why (today: dead
 * letters that cannot be delivered, which hold every offset back). */
int kpi_source_kafka_health(void *source_self, char *why, size_t why_size);

#endif
