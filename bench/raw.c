/*
 * raw.c - `kpistream-bench raw` and `kpistream-bench measure`.
 *
 * raw: the baseline of the end-to-end benchmark: consume a topic with
 * librdkafka alone, with the consumer settings kpistream uses (a group,
 * cooperative-sticky, the same fetch settings), counting messages and
 * touching every payload byte, until every partition reaches the end offset
 * it had at assignment.
 *
 * measure: run a command and report its wall time, CPU time and peak RSS
 * (wait4's rusage), so the benchmark script needs no other tool.
 */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "sources/kafka_client.h"

int bench_raw(int argc, char **argv)
{
    const char *brokers = "127.0.0.1:9092", *topic = "events", *group = "kpistream-raw";
    static const struct option lo[] = {
        {"brokers", 1, 0, 'b'}, {"topic", 1, 0, 't'}, {"group", 1, 0, 'g'}, {0, 0, 0, 0}};
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "b:t:g:", lo, NULL)) != -1) {
        if (c == 'b')
            brokers = optarg;
        else if (c == 't')
            topic = optarg;
        else if (c == 'g')
            group = optarg;
        else
            return 2;
    }
    char err[512];
    const char *const kv[][2] = {{"bootstrap.servers", brokers},
                                 {"group.id", group},
                                 {"enable.auto.commit", "false"},
                                 {"auto.offset.reset", "earliest"},
                                 {"partition.assignment.strategy", "cooperative-sticky"},
                                 {"queued.min.messages", "10000000"},
                                 {"queued.max.messages.kbytes", "32768"},
                                 {"fetch.wait.max.ms", "50"},
                                 {"enable.partition.eof", "true"}};
    rd_kafka_t *rk =
        kpi_kafka_client_from(RD_KAFKA_CONSUMER, kv, sizeof(kv) / sizeof(kv[0]), err, sizeof(err));
    if (!rk || kpi_kafka_subscribe_one(rk, topic, err, sizeof(err))) {
        fprintf(stderr, "raw: %s\n", err);
        return 2;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    rd_kafka_message_t *msgs[1024];
    unsigned long long n = 0, bytes = 0, sum = 0;
    int eof[1024] = {0}, n_eof = 0, n_parts = -1;
    double t0 = kpi_mono_s();
    while (n_parts < 0 || n_eof < n_parts) {
        ssize_t k = rd_kafka_consume_batch_queue(q, 100, msgs, 1024);
        for (ssize_t i = 0; i < k; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (!m->err) {
                n++;
                bytes += m->len;
                for (size_t b = 0; b < m->len; b += 64)
                    sum += ((const unsigned char *)m->payload)[b];
            } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->partition < 1024 &&
                       !eof[m->partition]) {
                eof[m->partition] = 1;
                n_eof++;
            }
            rd_kafka_message_destroy(m);
        }
        if (n_parts < 0) {
            rd_kafka_topic_partition_list_t *a = NULL;
            if (!rd_kafka_assignment(rk, &a) && a) {
                if (a->cnt > 0)
                    n_parts = a->cnt;
                rd_kafka_topic_partition_list_destroy(a);
            }
        }
    }
    double dt = kpi_mono_s() - t0;
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    printf("raw: %llu messages (%llu bytes, checksum %llu) in %.2f s, %.0f msg/s\n", n, bytes,
           sum % 1000, dt, (double)n / dt);
    return 0;
}

int bench_measure(int argc, char **argv)
{
    int i = 2;
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i >= argc) {
        fprintf(stderr, "usage: kpistream-bench measure -- COMMAND [ARGS...]\n");
        return 2;
    }
    double t0 = kpi_mono_s();
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[i], argv + i);
        _exit(127);
    }
    int st;
    struct rusage ru;
    wait4(pid, &st, 0, &ru);
    double wall = kpi_mono_s() - t0;
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    fprintf(stderr, "measure: wall=%.2f cpu=%.2f maxrss_kb=%ld exit=%d\n", wall, cpu, ru.ru_maxrss,
            WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
