/* Configuration: every key, bad values named with their key, -X over the
 * file, kafka.* passthrough, and the README reference generated from the
 * table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/lib/config.h"
#include "sinks/redis.h"
#include "engine/err.h"

static char err[512];

static void set_ok(struct kpi_config *c, const char *x)
{
    int rc = kpi_config_set_x(c, x, err, sizeof(err));
    cr_assert_eq(rc, 0, "-X %s: %s", x, err);
}

static void set_bad(struct kpi_config *c, const char *x, const char *key)
{
    err[0] = '\0';
    cr_assert_eq(kpi_config_set_x(c, x, err, sizeof(err)), KPI_ERR_INVAL, "-X %s accepted", x);
    cr_assert(strstr(err, key), "message for -X %s names %s: %s", x, key, err);
}

Test(config, defaults_validate)
{
    struct kpi_config c;
    kpi_config_defaults(&c);
    cr_assert_eq(kpi_config_validate(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.topics, "events");
    cr_assert_str_eq(c.redis_url, "redis://127.0.0.1:6379");
    cr_assert_eq(c.flush_interval_ms, 1000);
    cr_assert_eq(c.workers, 2);
}

Test(config, every_key_accepts_its_own_default_through_x)
{
    struct kpi_config c;
    kpi_config_defaults(&c);
    char name[128], x[1024];
    for (size_t i = 0; i < kpi_config_key_count(); i++) {
        snprintf(x, sizeof(x), "%s=%s", kpi_config_key_name(i, name, sizeof(name)),
                 kpi_config_key_default(i));
        set_ok(&c, x);
    }
    cr_assert_eq(c.n_kafka_props, 0, "documented kafka keys are not passed through");
}

Test(config, typed_values_parse)
{
    struct kpi_config c;
    kpi_config_defaults(&c);
    set_ok(&c, "engine.flush_interval=250ms");
    set_ok(&c, "engine.workers=4");
    set_ok(&c, "alerts.raise_k=3.5");
    set_ok(&c, "alerts.enabled=off");
    set_ok(&c, "engine.sink=stdout");
    set_ok(&c, "windows.list=1m/10s,1h/1m");
    cr_assert_eq(c.flush_interval_ms, 250);
    cr_assert_eq(c.workers, 4);
    cr_assert_float_eq(c.alert.raise_k, 3.5, 1e-12);
    cr_assert_eq(c.alerts_enabled, 0);
    cr_assert_str_eq(c.sink, "stdout");
}

/* -X x is refused with a message naming key, for each pair {x, key}. */
static void expect_refused(const char *const (*cases)[2], size_t n)
{
    struct kpi_config c;
    kpi_config_defaults(&c);
    for (size_t i = 0; i < n; i++)
        set_bad(&c, cases[i][0], cases[i][1]);
}

Test(config, bad_values_name_their_key)
{
    static const char *const cases[][2] = {
        {"engine.workers=0", "engine.workers"},
        {"engine.workers=two", "engine.workers"},
        {"engine.workers=9999", "engine.workers"},
        {"engine.flush_interval=soon", "engine.flush_interval"},
        {"engine.lateness=-1s", "engine.lateness"},
        {"engine.sink=kafka", "engine.sink"},
        {"alerts.enabled=maybe", "alerts.enabled"},
        {"alerts.alpha=2", "alerts.alpha"},
        {"alerts.alpha=nan", "alerts.alpha"},
        {"http.port=70000", "http.port"},
        {"log.level=loud", "log.level"},
        {"redis.key_groups=0", "redis.key_groups"},
        {"redis.key_groups=1025", "redis.key_groups"},
        {"redis.key_groups=many", "redis.key_groups"},
        {"redis.stream_maxlen=9", "redis.stream_maxlen"},
    };
    expect_refused(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, unknown_keys_and_malformed_x_are_rejected)
{
    static const char *const cases[][2] = {
        {"engine.wrokers=2", "engine.wrokers"},
        {"nosuch.key=1", "nosuch.key"},
        {"workers=2", "workers"},
        {"engine.workers", "engine.workers"},
    };
    expect_refused(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, cross_key_checks_name_the_key)
{
    /* Each value is fine alone, and wrong with the other keys' defaults. */
    static const struct {
        const char *x, *named;
    } cases[] = {
        {"windows.list=1h/7m", "windows.list"},      {"alerts.window=2h/1m", "alerts.window"},
        {"dimensions.sets=region+tariff", "tariff"}, {"alerts.resolve_k=5", "resolve_k"},
        {"redis.url=http://x", "redis.url"},
    };
    struct kpi_config c;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kpi_config_defaults(&c);
        set_ok(&c, cases[i].x);
        cr_assert_eq(kpi_config_validate(&c, err, sizeof(err)), KPI_ERR_INVAL, "-X %s", cases[i].x);
        cr_assert(strstr(err, cases[i].named), "-X %s: %s", cases[i].x, err);
    }

    kpi_config_defaults(&c);
    set_ok(&c, "redis.url=unix:///run/redis/redis.sock?db=2");
    cr_assert_eq(kpi_config_validate(&c, err, sizeof(err)), 0, "the sink takes unix: URLs: %s",
                 err);
}

/* redis.key_groups and redis.stream_maxlen set to k and maxlen reach the
 * sink's configuration as want_k and want_maxlen (auto: 0). */
static void expect_auto_keys(struct kpi_config *c, const char *k, const char *maxlen,
                             int64_t want_k, int64_t want_maxlen)
{
    char x[64];
    snprintf(x, sizeof(x), "redis.key_groups=%s", k);
    set_ok(c, x);
    snprintf(x, sizeof(x), "redis.stream_maxlen=%s", maxlen);
    set_ok(c, x);
    struct kpi_redis_conf rc;
    kpi_config_redis_conf(c, &rc);
    cr_assert_eq(rc.key_groups, want_k, "redis.key_groups=%s", k);
    cr_assert_eq(rc.stream_maxlen, want_maxlen, "redis.stream_maxlen=%s", maxlen);
}

Test(config, redis_sink_keys_reach_the_sink_conf)
{
    struct kpi_config c;
    kpi_config_defaults(&c);
    struct kpi_redis_conf rc, def;
    kpi_redis_conf_defaults(&def);
    kpi_config_redis_conf(&c, &rc);
    cr_assert_eq(rc.command_timeout_ms, def.command_timeout_ms, "table default = sink default");
    cr_assert_eq(rc.active_refresh_ms, def.active_refresh_ms);
    cr_assert_eq(rc.ttl_margin_ms, def.ttl_margin_ms);
    cr_assert_eq(rc.sketch_cache_bytes, def.sketch_cache_bytes);
    cr_assert_eq(rc.key_groups, 0, "auto: the group's K (128 for a new group)");
    cr_assert_eq(rc.stream_maxlen, 0, "auto: 160000 / K");
    cr_assert_eq(def.key_groups, 0);
    cr_assert_eq(def.stream_maxlen, 0);
    expect_auto_keys(&c, "16", "5000", 16, 5000);
    expect_auto_keys(&c, "AUTO", "auto", 0, 0);
    kpi_config_redis_conf(&c, &rc);
    cr_assert_eq(rc.max_values, c.dim_max_values, "an auto K is sized for max_values");
    set_ok(&c, "dimensions.max_values=200000");
    kpi_config_redis_conf(&c, &rc);
    cr_assert_eq(rc.max_values, 200000);
    set_ok(&c, "redis.command_timeout=30s");
    set_ok(&c, "redis.active_refresh=0");
    set_ok(&c, "redis.ttl_margin=1h");
    set_ok(&c, "redis.sketch_cache_mb=0");
    set_ok(&c, "redis.timeout=500ms");
    kpi_config_redis_conf(&c, &rc);
    cr_assert_eq(rc.command_timeout_ms, 30000);
    cr_assert_eq(rc.active_refresh_ms, 0);
    cr_assert_eq(rc.ttl_margin_ms, 3600000);
    cr_assert_eq(rc.sketch_cache_bytes, 0);
    cr_assert_eq(rc.connect_timeout_ms, 500);
    cr_assert_str_eq(rc.group, c.group_id);

    cr_assert_eq(kpi_config_set_x(&c, "redis.command_timeout=10ms", err, sizeof(err)),
                 KPI_ERR_INVAL);
    cr_assert(strstr(err, "redis.command_timeout"), "%s", err);
    cr_assert_eq(kpi_config_set_x(&c, "redis.sketch_cache_mb=-1", err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "redis.sketch_cache_mb"), "%s", err);
}

/* An auto K for a new group: one key group per 80 values of a set, a power
 * of two in 16..1024 (sinks/redis.h). */
Test(config, an_auto_key_group_count_follows_max_values)
{
    cr_assert_eq(kpi_redis_auto_key_groups(0), 128, "unset: the default 10 000 values");
    cr_assert_eq(kpi_redis_auto_key_groups(10000), KPI_REDIS_KEY_GROUPS_DEFAULT);
    cr_assert_eq(kpi_redis_auto_key_groups(10240), 128);
    cr_assert_eq(kpi_redis_auto_key_groups(10241), 256);
    cr_assert_eq(kpi_redis_auto_key_groups(1), 16, "at least 16: a cluster's masters share");
    cr_assert_eq(kpi_redis_auto_key_groups(1280), 16);
    cr_assert_eq(kpi_redis_auto_key_groups(1281), 32);
    cr_assert_eq(kpi_redis_auto_key_groups(100000), 1024, "at most KPI_MAX_KEY_GROUPS");
    cr_assert_eq(kpi_redis_auto_key_groups(16777216), 1024);
}

Test(config, kafka_properties_pass_through_untouched)
{
    struct kpi_config c;
    kpi_config_defaults(&c);
    set_ok(&c, "kafka.fetch.max.bytes=1048576");
    set_ok(&c, "kafka.security.protocol=plaintext");
    set_ok(&c, "kafka.fetch.max.bytes=2097152"); /* later wins, no duplicate */
    cr_assert_eq(c.n_kafka_props, 2);
    cr_assert_str_eq(c.kafka_props[0][0], "fetch.max.bytes");
    cr_assert_str_eq(c.kafka_props[0][1], "2097152");
    cr_assert_str_eq(c.kafka_props[1][0], "security.protocol");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/kpi-test-config-%d.ini", (int)getpid());
    write_file(path, text);
    return path;
}

Test(config, file_values_load_and_x_overrides_them)
{
    struct kpi_config c;
    kpi_config_defaults(&c);
    const char *p = write_tmp("[engine]\nworkers = 3\nflush_interval = 2s\n"
                              "[kafka]\ntopics = a,b\nsession.timeout.ms = 10000\n");
    cr_assert_eq(kpi_config_load_file(&c, p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.workers, 3);
    cr_assert_str_eq(c.topics, "a,b");
    cr_assert_eq(c.n_kafka_props, 1);
    set_ok(&c, "engine.workers=5");
    cr_assert_eq(c.workers, 5);
    cr_assert_eq(c.flush_interval_ms, 2000, "untouched keys keep the file's value");
    remove(p);
}

Test(config, bad_file_value_names_key_file_and_line)
{
    struct kpi_config c;
    kpi_config_defaults(&c);
    const char *p = write_tmp("[engine]\nworkers = 2\nlateness = forever\n");
    cr_assert_eq(kpi_config_load_file(&c, p, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "engine.lateness"), "%s", err);
    cr_assert(strstr(err, "line 3"), "%s", err);
    remove(p);
}

Test(config, missing_file_is_an_error)
{
    struct kpi_config c;
    kpi_config_defaults(&c);
    cr_assert_eq(kpi_config_load_file(&c, "/nonexistent/kpi.ini", err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "/nonexistent/kpi.ini"), "%s", err);
}

Test(config, readme_reference_is_generated_from_the_table)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    kpi_config_print_reference(m, 1);
    fclose(m);
    FILE *f = fopen(KPI_SOURCE_DIR "/README.md", "r");
    cr_assert_not_null(f, "README.md exists");
    static char readme[1 << 20];
    size_t n = fread(readme, 1, sizeof(readme) - 1, f);
    readme[n] = '\0';
    fclose(f);
    cr_assert(strstr(readme, buf),
              "README.md holds the reference exactly as `kpistream --help-config` prints it");
    free(buf);
}

/* ---- secrets: from a file or the environment, never the command line ---- */

/* A secret file for the key file_key holding text: its path, and the -X
 * assignment that names it. */
struct secret_file {
    char path[64];
    char x[128];
};

static void secret_file(struct secret_file *f, const char *file_key, const char *text)
{
    snprintf(f->path, sizeof(f->path), "/tmp/kpi-test-%s-%d", file_key, (int)getpid());
    write_file(f->path, text);
    snprintf(f->x, sizeof(f->x), "%s=%s", file_key, f->path);
}

/* The defaults, then -X x1 and (unless NULL) x2, then the secrets loaded. */
static int load_secrets_with(struct kpi_config *c, const char *x1, const char *x2)
{
    kpi_config_defaults(c);
    set_ok(c, x1);
    if (x2)
        set_ok(c, x2);
    return kpi_config_load_secrets(c, err, sizeof(err));
}

Test(config, the_redis_password_comes_from_a_file_into_the_urls_user)
{
    struct secret_file pw;
    secret_file(&pw, "redis.password_file", "s3cr:et@/%x\n");
    struct kpi_config c;
    cr_assert_eq(load_secrets_with(&c, "redis.url=redis://kpistream@redis.internal:6380/2", pw.x),
                 0, "%s", err);
    cr_assert_str_eq(kpi_config_redis_url(&c),
                     "redis://kpistream:s3cr%3Aet%40%2F%25x@redis.internal:6380/2");
    cr_assert_str_eq(c.redis_url, "redis://kpistream@redis.internal:6380/2",
                     "the configured URL (used in messages) has no password");
    struct kpi_redis_conf rc;
    kpi_config_redis_conf(&c, &rc);
    cr_assert_str_eq(rc.url, kpi_config_redis_url(&c), "the sink connects with it");
    unlink(pw.path);
}

Test(config, the_redis_password_may_come_from_the_environment)
{
    setenv("KPISTREAM_REDIS_PASSWORD", "from-env", 1);
    struct kpi_config c;
    kpi_config_defaults(&c);
    cr_assert_eq(kpi_config_load_secrets(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(kpi_config_redis_url(&c), "redis://:from-env@127.0.0.1:6379");
    unsetenv("KPISTREAM_REDIS_PASSWORD");
    kpi_config_defaults(&c);
    cr_assert_eq(kpi_config_load_secrets(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(kpi_config_redis_url(&c), "redis://127.0.0.1:6379", "no secret: as given");
}

Test(config, a_secret_given_twice_or_unreadable_is_refused_naming_the_key)
{
    struct secret_file pw;
    secret_file(&pw, "redis.password_file", "pw\n");
    struct kpi_config c;
    cr_assert_eq(load_secrets_with(&c, "redis.url=redis://kpistream:inline@127.0.0.1:6379", pw.x),
                 KPI_ERR_INVAL);
    cr_assert(strstr(err, "redis.password_file") && strstr(err, "already"), "%s", err);

    cr_assert_eq(load_secrets_with(&c, "redis.url=unix:///run/redis.sock", pw.x), KPI_ERR_INVAL);
    cr_assert(strstr(err, "redis.password_file"), "%s", err);

    cr_assert_eq(load_secrets_with(&c, "redis.password_file=/nonexistent/pw", NULL), KPI_ERR_INVAL);
    cr_assert(strstr(err, "redis.password_file") && strstr(err, "/nonexistent/pw"), "%s", err);

    write_file(pw.path, "\n");
    cr_assert_eq(load_secrets_with(&c, pw.x, NULL), KPI_ERR_INVAL, "empty");
    unlink(pw.path);
}

Test(config, the_kafka_sasl_password_comes_from_a_file_as_sasl_password)
{
    struct secret_file pw;
    secret_file(&pw, "kafka.sasl.password_file", "kafka-secret\r\n");
    struct kpi_config c;
    cr_assert_eq(load_secrets_with(&c, "kafka.sasl.username=kpistream", pw.x), 0, "%s", err);
    int found = 0;
    for (int i = 0; i < c.n_kafka_props; i++)
        if (!strcmp(c.kafka_props[i][0], "sasl.password"))
            found = !strcmp(c.kafka_props[i][1], "kafka-secret");
    cr_assert(found, "passed to librdkafka as sasl.password, newline dropped");
    cr_assert_eq(c.n_kafka_props, 2, "the file's own key is not passed through");

    cr_assert_eq(load_secrets_with(&c, "kafka.sasl.password=inline", pw.x), KPI_ERR_INVAL);
    cr_assert(strstr(err, "kafka.sasl.password_file"), "%s", err);
    unlink(pw.path);
}
