/*
 * kafka_instance.h - one kpistream instance inside a test: an engine and
 * the Kafka source feeding it, writing into a mem_sink, with the source's
 * run loop on its own thread, as cmd/kpistream.c wires them.
 */
#ifndef KPI_TEST_KAFKA_INSTANCE_H
#define KPI_TEST_KAFKA_INSTANCE_H

#include <pthread.h>
#include <stdint.h>

#include "engine/engine.h"
#include "sources/kafka.h"
#include "support/mem_sink.h"

struct kt_instance {
    struct kpi_engine *e;
    struct kpi_source src;
    struct kpi_sink store;
    pthread_t th;
    int rc;        /* what the source's run returned */
    char err[512]; /* and its message */
};

/* Engine settings for replayed history: two workers, flushes every
 * flush_interval_ms, nothing late and no time in the future (generator
 * traffic carries old timestamps). */
void kt_engine_conf_replay(struct kpi_engine_conf *ec, int64_t flush_interval_ms);

/* Starts an instance consuming as kc says into ms.  0, or -1 with err set
 * (nothing left running). */
int kt_instance_start(struct kt_instance *in, const struct kpi_engine_conf *ec,
                      const struct kpi_kafka_conf *kc, struct mem_sink *ms, char *err,
                      size_t errsz);
/* Asks the instance to stop (as SIGTERM does), then joins it. */
void kt_instance_stop(struct kt_instance *in);
/* The same for two instances at once: both are asked first, so they leave
 * the group together. */
void kt_instance_stop2(struct kt_instance *a, struct kt_instance *b);
/* Waits for the run loop to return (exit on EOF, or a stop), then stops and
 * destroys the instance; in->rc and in->err stay readable. */
void kt_instance_join(struct kt_instance *in);

#endif
