/*
 * demo.h - `kpistream --demo`: the zero-setup demo.
 *
 * The demo runs the real service (cmd/kpistream.c wires the same engine,
 * sink, source, HTTP server and alerter as in production) with two things
 * swapped in:
 *
 *   - the Kafka cluster is librdkafka's embedded mock cluster (one broker,
 *     topic `events` with 4 partitions), fed by a thread that runs the
 *     built-in traffic generator (gen/gen.h) at 20 000 events/s with event
 *     time following the wall clock, and a churn spike in the `youth`
 *     segment from 100 s to 150 s (after the 1-minute window filled and the
 *     alert baseline's warmup);
 *   - the terminal shows a live view, redrawn every second: the rate, the
 *     KPIs of every window over "all", the segments over the second window
 *     and the churn-spike alerts.
 *
 * Its keys are confined: whatever a --config file or -X says, the demo writes
 * only under KPI_DEMO_PREFIX:{KPI_DEMO_GROUP}: (and wipes those keys when it
 * starts), so pointing it at a production Redis leaves every other key alone.
 * Without a Redis it goes on with the KPIs kept in memory.
 */
#ifndef KPI_CMD_DEMO_H
#define KPI_CMD_DEMO_H

#include <stddef.h>

#include "cmd/lib/alerter.h"
#include "cmd/lib/config.h"
#include "engine/engine.h"
#include "cmd/lib/kpiread.h"

#define KPI_DEMO_PREFIX "kpi-demo"
#define KPI_DEMO_GROUP  "kpistream-demo"

struct kpi_demo;

/* The demo's defaults, set before the configuration file and -X (which still
 * win, except for the two below). */
void kpi_demo_config_defaults(struct kpi_config *cfg);

/* After the file and -X: forces redis.prefix and kafka.group.id back to the
 * demo's, saying so on stderr when they had been changed. */
void kpi_demo_config_confine(struct kpi_config *cfg);

/* 1 when a Redis answers at redis.url.  Otherwise says how to start one on
 * stderr, waits 3 s so the message can be read, and returns 0: the demo then
 * keeps its KPIs in memory. */
int kpi_demo_redis_answers(const struct kpi_config *cfg);

/* Starts the embedded cluster and the traffic thread.  NULL with err set on
 * failure.  kpi_demo_stop() ends both (after the consumer is gone). */
struct kpi_demo *kpi_demo_start(char *err, size_t errsz);
const char *kpi_demo_bootstraps(const struct kpi_demo *d);

/* Starts the live view over the engine's statistics and the KPIs `store`
 * reads (redis: whether they come from Redis, for the header line); the
 * alerter may be NULL; url is the dashboard's address or "".  The view stops
 * in kpi_demo_stop(), so store, engine and alerter must outlive that. */
void kpi_demo_view_start(struct kpi_demo *d, struct kpi_engine *e, struct kpiread *store, int redis,
                         struct kpi_alerter *alerter, const char *url);

/* Stops the view and the traffic thread, destroys the cluster.  NULL is a
 * no-op. */
void kpi_demo_stop(struct kpi_demo *d);

#endif
