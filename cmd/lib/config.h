/*
 * config.h - kpistream's configuration: one table declares every key.
 *
 * Each key has a section, a name, a type, a default, a range and a
 * description (config.c: kpi_config_table).  Parsing the INI file, the
 * `-X section.key=value` overrides, validation messages, `--help` and the
 * README's configuration reference are all generated from that table, so they
 * cannot drift apart (a test compares the README with the table).
 *
 * `kafka.*` keys other than the ones in the table go to librdkafka untouched,
 * as kcat does.
 */
#ifndef KPI_CONFIG_H
#define KPI_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/alert.h"
#include "engine/engine.h"

#define KPI_CONF_MAX_PASSTHROUGH 128
#define KPI_CONF_STR             512

struct kpi_config {
    /* [kafka] (kpistream's own; other kafka.* keys pass through) */
    char topics[KPI_CONF_STR];
    char group_id[KPI_CONF_STR];
    char dead_letter_topic[KPI_CONF_STR];
    char bootstrap_servers[KPI_CONF_STR];
    char kafka_sasl_password_file[KPI_CONF_STR];
    int n_kafka_props;
    char kafka_props[KPI_CONF_MAX_PASSTHROUGH][2][KPI_CONF_STR]; /* name, value */
    /* [redis] */
    char redis_url[KPI_CONF_STR];
    char redis_password_file[KPI_CONF_STR];
    /* redis_url with the password from redis_password_file or the
     * environment, built by kpi_config_load_secrets ("" if none): what the
     * clients connect with.  Never printed. */
    char redis_url_auth[KPI_CONF_STR * 4];
    char redis_prefix[64];
    int64_t redis_timeout_ms;
    int64_t redis_command_timeout_ms;
    int64_t redis_active_refresh_ms;
    int64_t redis_key_groups;
    int64_t redis_ttl_margin_ms;
    int64_t redis_sketch_cache_mb;
    int redis_hot_path;
    int64_t redis_stream_maxlen;
    /* [engine] */
    char sink[16];
    int64_t workers;
    int64_t flush_interval_ms;
    int64_t lateness_ms;
    int64_t idle_timeout_ms;
    int64_t max_skew_ms;
    int64_t max_string;
    int64_t max_cells;
    int64_t retry_min_ms;
    int64_t retry_max_ms;
    int64_t shutdown_timeout_ms;
    /* [windows] */
    char windows[KPI_CONF_STR];
    /* [dimensions] */
    char dim_fields[KPI_CONF_STR];
    char dim_sets[KPI_CONF_STR];
    int64_t dim_max_values;
    /* [alerts] */
    int alerts_enabled;
    char alerts_window[32];
    char alerts_kpi[24];
    struct kpi_alert_conf alert;
    int64_t alerts_min_active;
    int64_t alerts_warmup;
    int64_t alerts_stream_maxlen;
    char alerts_channel[128];
    char alerts_alertmanager_url[KPI_CONF_STR];
    char alerts_webhook_url[KPI_CONF_STR];
    int64_t alerts_delivery_timeout_ms;
    int64_t alerts_retry_min_ms;
    int64_t alerts_retry_max_ms;
    int64_t alerts_resend_interval_ms;
    int64_t alerts_delivery_queue;
    /* [http] */
    char http_bind[64];
    int64_t http_port;
    int64_t http_max_connections;
    int64_t http_connection_timeout_ms;
    int64_t http_threads;
    int64_t http_sse_max_clients;
    /* [log] */
    char log_level[16];
};

/* Fill every key with its default. */
void kpi_config_defaults(struct kpi_config *c);

/* Set one key ("section.key" or section + key) from its text.  Returns 0, or
 * KPI_ERR_INVAL with "section.key: why" in errstr. */
int kpi_config_set(struct kpi_config *c, const char *section, const char *key, const char *value,
                   char *errstr, size_t errstr_size);
/* -X form: "section.key=value". */
int kpi_config_set_x(struct kpi_config *c, const char *assignment, char *errstr,
                     size_t errstr_size);
/* Read an INI file over the current values. */
int kpi_config_load_file(struct kpi_config *c, const char *path, char *errstr, size_t errstr_size);
/* Cross-key checks after all sources are applied (windows parse, dims, alert
 * thresholds...).  0 or KPI_ERR_INVAL naming the key. */
int kpi_config_validate(const struct kpi_config *c, char *errstr, size_t errstr_size);

/* Read the secrets that do not belong on a command line (ps shows it) or
 * in the file: the Redis password from redis.password_file, else from the
 * environment variable KPISTREAM_REDIS_PASSWORD, goes into the user/password
 * of redis.url (kpi_config_redis_url); the Kafka SASL password from
 * kafka.sasl.password_file, else KPISTREAM_KAFKA_SASL_PASSWORD, becomes the
 * librdkafka property sasl.password.  One trailing newline is dropped.  A
 * secret given twice (a password in redis.url and a file, say) is an error.
 * 0 or KPI_ERR_INVAL naming the key. */
int kpi_config_load_secrets(struct kpi_config *c, char *errstr, size_t errstr_size);

/* The Redis URL to connect with (with the password kpi_config_load_secrets
 * read, if any): for clients, never for messages. */
const char *kpi_config_redis_url(const struct kpi_config *c);

/* The engine settings this configuration describes. */
void kpi_config_engine_conf(const struct kpi_config *c, struct kpi_engine_conf *ec);

/* The Redis sink settings; the strings point into c. */
struct kpi_redis_conf;
void kpi_config_redis_conf(const struct kpi_config *c, struct kpi_redis_conf *rc);

/* The alert detector settings. */
void kpi_config_alert_conf(const struct kpi_config *c, struct kpi_alert_conf *a);

/* Number of keys in the table, and key i as "section.key" (for tests). */
size_t kpi_config_key_count(void);
const char *kpi_config_key_name(size_t i, char *buf, size_t size);
const char *kpi_config_key_default(size_t i);

/* Print the reference: markdown = 1 for the README's table, 0 for --help. */
void kpi_config_print_reference(FILE *out, int markdown);

#endif
