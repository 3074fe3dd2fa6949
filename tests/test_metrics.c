/*
 * test_metrics.c - kpistream's HTTP server (cmd/lib/metrics.c) on its own,
 * over a loopback socket: /metrics in the Prometheus text format with the
 * extras appended, /healthz following the health callback, 404 elsewhere,
 * http.port 0 turning it off and a taken port named in the error.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/lib/metrics.h"
#include "engine/engine.h"
#include "support/http_client.h"

static struct kpi_engine *e;
static struct kpi_metrics *m;

static void start(void)
{
    struct kpi_engine_conf ec;
    kpi_engine_conf_defaults(&ec);
    char err[256];
    e = kpi_engine_new(&ec, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    struct kpi_http_conf hc = {"127.0.0.1", -1, 16, 5, 1};
    m = kpi_metrics_start(&hc, e, err, sizeof(err));
    cr_assert_not_null(m, "%s", err);
    cr_assert_gt(kpi_metrics_port(m), 0);
}

static void stop(void)
{
    kpi_metrics_stop(m);
    kpi_engine_destroy(e);
}

TestSuite(metrics, .init = start, .fini = stop, .timeout = 60);

static void extra(void *opaque, FILE *out)
{
    fprintf(out, "# TYPE test_extra gauge\ntest_extra %d\n", *(int *)opaque);
}

static int health_answer;

static int health(void *opaque, char *why, size_t size)
{
    (void)opaque;
    if (!health_answer)
        snprintf(why, size, "the test says so");
    return health_answer;
}

Test(metrics, metrics_is_prometheus_text_with_the_extras_appended)
{
    static int value = 42;
    kpi_metrics_set_extra(m, extra, &value);
    char *b;
    cr_assert_eq(kt_http_get(kpi_metrics_port(m), "/metrics", &b), 200, "%s", b);
    cr_assert(strstr(b, "# TYPE kpistream_events_total counter\n"), "%s", b);
    cr_assert(strstr(b, "# HELP "), "%s", b);
    cr_assert(strstr(b, "\ntest_extra 42\n"), "%s", b);
    /* Every sample line is `name{labels} value` or `name value`. */
    for (char *line = strtok(b, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        cr_assert(strncmp(line, "kpistream_", 10) == 0 || strncmp(line, "test_extra", 10) == 0,
                  "%s", line);
        cr_assert_not_null(strrchr(line, ' '), "%s", line);
    }
    free(b);
}

Test(metrics, healthz_follows_the_health_callback)
{
    char *b;
    cr_assert_eq(kt_http_get(kpi_metrics_port(m), "/healthz", &b), 200, "%s", b);
    free(b);
    health_answer = 0;
    kpi_metrics_set_health(m, health, NULL);
    cr_assert_eq(kt_http_get(kpi_metrics_port(m), "/healthz", &b), 503, "%s", b);
    cr_assert(strstr(b, "the test says so"), "%s", b);
    free(b);
    health_answer = 1;
    cr_assert_eq(kt_http_get(kpi_metrics_port(m), "/healthz", &b), 200, "%s", b);
    free(b);
}

Test(metrics, an_unknown_path_is_not_found)
{
    char *b;
    cr_assert_eq(kt_http_get(kpi_metrics_port(m), "/nothing-here", &b), 404, "%s", b);
    free(b);
}

Test(metrics, port_zero_turns_the_server_off_and_a_taken_port_is_named)
{
    char err[256] = "";
    struct kpi_http_conf off = {"127.0.0.1", 0, 0, 0, 0};
    cr_assert_null(kpi_metrics_start(&off, e, err, sizeof(err)));
    cr_assert_str_empty(err);
    struct kpi_http_conf taken = {"127.0.0.1", kpi_metrics_port(m), 0, 0, 0};
    cr_assert_null(kpi_metrics_start(&taken, e, err, sizeof(err)));
    cr_assert(strstr(err, "http.port"), "%s", err);
}
