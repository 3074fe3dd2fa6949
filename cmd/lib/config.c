/*
 * config.c - the configuration table and everything generated from it.
 */
#include "cmd/lib/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/dims.h"
#include "engine/err.h"
#include "sinks/redis.h"
#include "engine/window.h"

enum ktype { K_STR, K_INT, K_AUTO_INT, K_DURATION, K_DOUBLE, K_BOOL, K_ENUM };

struct kdef {
    const char *section;
    const char *name;
    enum ktype type;
    const char *def;
    double min, max;     /* K_INT, K_AUTO_INT, K_DURATION (ms), K_DOUBLE */
    const char *choices; /* K_ENUM: "a|b|c" */
    size_t off;          /* into struct kpi_config */
    size_t size;         /* K_STR: buffer size */
    const char *desc;
};

/* One row per key, by type: the field of struct kpi_config it sets is named
 * once, and only the columns its type reads are given. */
#define KEY(section, name, type, def, min, max, choices, field, desc)                              \
    {                                                                                              \
        section, name, type, def, min, max, choices, offsetof(struct kpi_config, field),           \
            sizeof(((struct kpi_config *)0)->field), desc                                          \
    }
#define STR_KEY(s, n, def, field, desc)           KEY(s, n, K_STR, def, 0, 0, NULL, field, desc)
#define BOOL_KEY(s, n, def, field, desc)          KEY(s, n, K_BOOL, def, 0, 0, NULL, field, desc)
#define ENUM_KEY(s, n, def, choices, field, desc) KEY(s, n, K_ENUM, def, 0, 0, choices, field, desc)
#define INT_KEY(s, n, def, min, max, field, desc) KEY(s, n, K_INT, def, min, max, NULL, field, desc)
/* An integer, or "auto" (stored as 0): the program works it out. */
#define AUTO_INT_KEY(s, n, def, min, max, field, desc)                                             \
    KEY(s, n, K_AUTO_INT, def, min, max, NULL, field, desc)
#define DURATION_KEY(s, n, def, min, max, field, desc)                                             \
    KEY(s, n, K_DURATION, def, min, max, NULL, field, desc)
#define SECOND_MS 1000.0 /* a K_DURATION's min and max are milliseconds */
#define MINUTE_MS (60 * SECOND_MS)
#define HOUR_MS   (60 * MINUTE_MS)
#define DAY_MS    (24 * HOUR_MS)
#define DOUBLE_KEY(s, n, def, min, max, field, desc)                                               \
    KEY(s, n, K_DOUBLE, def, min, max, NULL, field, desc)

/* Every key kpistream reads.  Keep descriptions one line: they become the
 * README's table and --help. */
static const struct kdef kpi_config_table[] = {
    STR_KEY("kafka", "bootstrap.servers", "127.0.0.1:9092", bootstrap_servers,
            "Kafka brokers (passed to librdkafka)"),
    STR_KEY("kafka", "topics", "events", topics, "comma-separated topics to consume"),
    STR_KEY("kafka", "group.id", "kpistream", group_id,
            "consumer group; also scopes the offsets stored in Redis"),
    STR_KEY(
        "kafka", "sasl.password_file", "", kafka_sasl_password_file,
        "file holding sasl.password (else env KPISTREAM_KAFKA_SASL_PASSWORD): not on the command "
        "line"),
    STR_KEY("kafka", "dead_letter_topic", "", dead_letter_topic,
            "where bad and too-late events go; empty: <first topic>.dlq; \"-\": disabled"),
    STR_KEY("redis", "url", "redis://127.0.0.1:6379", redis_url,
            "redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]"),
    STR_KEY("redis", "password_file", "", redis_password_file,
            "file holding the password for redis.url's user (else env KPISTREAM_REDIS_PASSWORD)"),
    STR_KEY("redis", "prefix", "kpi", redis_prefix,
            "first part of every key (docs/redis-schema.md)"),
    DURATION_KEY("redis", "timeout", "2s", 10, 10 * MINUTE_MS, redis_timeout_ms,
                 "connect timeout (and the alerter's command timeout)"),
    DURATION_KEY(
        "redis", "command_timeout", "10s", 100, 10 * MINUTE_MS, redis_command_timeout_ms,
        "how long one flush's Lua call may take before it is in doubt (then checked, retried)"),
    DURATION_KEY("redis", "active_refresh", "10s", 0, DAY_MS, redis_active_refresh_ms,
                 "recount a rolling hash's active subscribers at most this often (0: every flush)"),
    DURATION_KEY("redis", "ttl_margin", "10m", 0, 30 * DAY_MS, redis_ttl_margin_ms,
                 "bucket and rolling keys outlive their window by this much"),
    INT_KEY("redis", "sketch_cache_mb", "64", 0, 65536, redis_sketch_cache_mb,
            "MiB of written bucket sketches kept to SET instead of PFMERGE"),
    AUTO_INT_KEY("redis", "stream_maxlen", "auto", 10, 1e9, redis_stream_maxlen,
                 "approximate length bound of each key group's closed-bucket stream (auto: "
                 "160000 / key groups, so a group keeps about 160 000 entries per window)"),
    BOOL_KEY("redis", "hot_path", "true", redis_hot_path,
             "write a flush's common part with plain commands in MULTI/EXEC (false: all of it "
             "through the Lua script, as before)"),
    AUTO_INT_KEY("redis", "key_groups", "auto", 1, 1024, redis_key_groups,
                 "hash tags a group's keys spread over (Redis Cluster slots); fixed for the "
                 "group's life (auto: the group's; a new group gets one per 80 of "
                 "dimensions.max_values, a power of two in 16..1024: 128 by default; another "
                 "number than the group's is refused; docs/redis-schema.md)"),
    ENUM_KEY("engine", "sink", "redis", "redis|stdout", sink,
             "where KPIs go: Redis, or a table on standard output"),
    INT_KEY("engine", "workers", "2", 1, 256, workers,
            "worker threads (partitions are spread over them)"),
    DURATION_KEY("engine", "flush_interval", "1s", 1, HOUR_MS, flush_interval_ms,
                 "how often deltas are written to the sink"),
    DURATION_KEY("engine", "lateness", "30s", 0, DAY_MS, lateness_ms,
                 "allowed lateness behind the newest event time (watermark)"),
    DURATION_KEY(
        "engine", "idle_timeout", "1m", 0, DAY_MS, idle_timeout_ms,
        "a partition that took nothing for this long stops holding the watermark back (0: never)"),
    DURATION_KEY("engine", "max_skew", "5m", 0, DAY_MS, max_skew_ms,
                 "events further in the future than this are bad (ts_in_future)"),
    INT_KEY("engine", "max_string", "128", 1, 65535, max_string,
            "longest accepted string value in an event, bytes"),
    INT_KEY("engine", "max_cells", "262144", 64, 67108864, max_cells,
            "bucket x value cells a worker holds between flushes (memory bound)"),
    DURATION_KEY("engine", "retry_min", "100ms", 1, 10 * MINUTE_MS, retry_min_ms,
                 "first wait before retrying a failed flush"),
    DURATION_KEY("engine", "retry_max", "5s", 1, 10 * MINUTE_MS, retry_max_ms,
                 "longest wait between flush retries (exponential backoff)"),
    DURATION_KEY(
        "engine", "shutdown_timeout", "30s", SECOND_MS, HOUR_MS, shutdown_timeout_ms,
        "SIGTERM/SIGINT stops within this; what is not flushed by then is read again on restart"),
    STR_KEY("windows", "list", KPI_WINDOWS_DEFAULT, windows,
            "rolling windows, size/slide, comma-separated"),
    STR_KEY("dimensions", "fields", "region,plan,segment", dim_fields,
            "event keys that are dimensions"),
    STR_KEY("dimensions", "sets", "region,region+plan,segment", dim_sets,
            "grouping sets ('+' joins fields); 'all' is always kept"),
    INT_KEY("dimensions", "max_values", "10000", 1, 16777216, dim_max_values,
            "values per grouping set before new ones fold into __other__"),
    BOOL_KEY("alerts", "enabled", "true", alerts_enabled, "detect churn spikes"),
    STR_KEY("alerts", "window", "1h/1m", alerts_window,
            "the window whose churn rate is watched (one of windows.list)"),
    ENUM_KEY(
        "alerts", "kpi", "churn_rate", "churn_rate|churn_rate_monthly", alerts_kpi,
        "the churn KPI watched: churn_rate (churns / active) or churn_rate_monthly (churns / base, "
        "per 30 days: thresholds in the business's units; needs a base, docs/kpis.md)"),
    DOUBLE_KEY("alerts", "alpha", "0.1", 1e-6, 1, alert.alpha,
               "EWMA weight of each new observation in the baseline"),
    DOUBLE_KEY("alerts", "raise_k", "4", 0.01, 1000, alert.raise_k,
               "raise when the rate is this many deviations above the baseline"),
    DOUBLE_KEY("alerts", "resolve_k", "1", -1000, 1000, alert.resolve_k,
               "resolve at or below this many deviations (< raise_k)"),
    DOUBLE_KEY("alerts", "floor_rate", "0.001", 0, 1, alert.floor_rate,
               "never raise below this churn rate"),
    DOUBLE_KEY("alerts", "rel_floor", "0.1", 0, 100, alert.rel_floor,
               "deviation scale is at least this fraction of the baseline"),
    DOUBLE_KEY("alerts", "abs_floor", "0.0001", 1e-12, 1, alert.abs_floor,
               "deviation scale is at least this churn rate"),
    INT_KEY("alerts", "min_active", "100", 0, 1e12, alerts_min_active,
            "minimum active subscribers for an observation to count"),
    INT_KEY("alerts", "warmup", "10", 1, 1000000, alerts_warmup,
            "observations before a baseline is trusted"),
    INT_KEY("alerts", "stream_maxlen", "10000", 10, 1e9, alerts_stream_maxlen,
            "approximate length bound of the alert stream"),
    STR_KEY("alerts", "channel", "alerts", alerts_channel,
            "Pub/Sub channel suffix: <prefix>:alerts by default"),
    STR_KEY("alerts", "alertmanager_url", "", alerts_alertmanager_url,
            "Alertmanager base URL (http://host:9093): raises and resolves are posted to "
            "/api/v2/alerts"),
    STR_KEY("alerts", "webhook_url", "", alerts_webhook_url,
            "URL that receives the same JSON as Alertmanager (POST)"),
    DURATION_KEY("alerts", "delivery_timeout", "5s", 100, 10 * MINUTE_MS,
                 alerts_delivery_timeout_ms, "timeout of one delivery attempt"),
    DURATION_KEY("alerts", "retry_min", "1s", 10, HOUR_MS, alerts_retry_min_ms,
                 "first wait before retrying a failed delivery"),
    DURATION_KEY("alerts", "retry_max", "1m", 10, HOUR_MS, alerts_retry_max_ms,
                 "longest wait between delivery retries (exponential backoff)"),
    DURATION_KEY("alerts", "resend_interval", "1m", SECOND_MS, HOUR_MS, alerts_resend_interval_ms,
                 "re-post active alerts to Alertmanager this often (endsAt = 4 x this ahead)"),
    INT_KEY("alerts", "delivery_queue", "10000", 1, 10000000, alerts_delivery_queue,
            "alerts waiting per target before new ones are dropped (counted)"),
    STR_KEY("http", "bind", "127.0.0.1", http_bind,
            "address of the HTTP server: dashboard, API (docs/api.md), /metrics, /healthz"),
    INT_KEY("http", "port", "9464", 0, 65535, http_port, "port of the HTTP server; 0 disables it"),
    INT_KEY("http", "max_connections", "256", 1, 100000, http_max_connections,
            "concurrent HTTP connections; more wait in the listen queue"),
    DURATION_KEY("http", "connection_timeout", "30s", SECOND_MS, HOUR_MS,
                 http_connection_timeout_ms,
                 "close a connection idle (nothing read or written) this long"),
    INT_KEY("http", "threads", "2", 1, 64, http_threads,
            "HTTP server threads (each API request holds one while it reads Redis)"),
    INT_KEY("http", "sse_max_clients", "128", 0, 100000, http_sse_max_clients,
            "concurrent /api/v1/events streams; more get 503"),
    ENUM_KEY("log", "level", "info", "error|warn|info|debug", log_level, "error|warn|info|debug"),
};
#define NKEYS (sizeof(kpi_config_table) / sizeof(kpi_config_table[0]))

static const struct kdef *find(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(kpi_config_table[i].section, section) == 0 &&
            strcmp(kpi_config_table[i].name, name) == 0)
            return &kpi_config_table[i];
    return NULL;
}

static int parse_int(const char *v, double min, double max, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || (double)x < min || (double)x > max)
        return -1;
    *out = x;
    return 0;
}

static int set_value(struct kpi_config *c, const struct kdef *k, const char *v, char *errstr,
                     size_t errsz)
{
    char *p = (char *)c + k->off;
    switch (k->type) {
    case K_STR:
        if (strlen(v) >= k->size)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s.%s: longer than %zu bytes",
                              k->section, k->name, k->size - 1);
        strcpy(p, v);
        return 0;
    case K_ENUM: {
        const char *ch = k->choices;
        size_t n = strlen(v);
        for (const char *s = ch; *s;) {
            const char *e = strchr(s, '|');
            size_t len = e ? (size_t)(e - s) : strlen(s);
            if (len == n && strncmp(s, v, n) == 0 && n < k->size) {
                strcpy(p, v);
                return 0;
            }
            s += len + (e ? 1 : 0);
        }
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s.%s: '%s' is not one of %s", k->section,
                          k->name, v, ch);
    }
    case K_INT: {
        int64_t x;
        if (parse_int(v, k->min, k->max, &x))
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                              "%s.%s: '%s' is not an integer in %.0f..%.0f", k->section, k->name, v,
                              k->min, k->max);
        memcpy(p, &x, sizeof(x));
        return 0;
    }
    case K_AUTO_INT: {
        int64_t x = 0;
        if (strcasecmp(v, "auto") != 0 && parse_int(v, k->min, k->max, &x))
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                              "%s.%s: '%s' is not auto or an integer in %.0f..%.0f", k->section,
                              k->name, v, k->min, k->max);
        memcpy(p, &x, sizeof(x));
        return 0;
    }
    case K_DURATION: {
        int64_t ms;
        if (kpi_duration_parse(v, &ms) || (double)ms < k->min || (double)ms > k->max)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                              "%s.%s: '%s' is not a duration in %.0fms..%.0fms (units: ms, s, "
                              "m, h, d)",
                              k->section, k->name, v, k->min, k->max);
        memcpy(p, &ms, sizeof(ms));
        return 0;
    }
    case K_DOUBLE: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < k->min || x > k->max)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s.%s: '%s' is not a number in %g..%g",
                              k->section, k->name, v, k->min, k->max);
        memcpy(p, &x, sizeof(x));
        return 0;
    }
    case K_BOOL: {
        int b;
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
            !strcasecmp(v, "on"))
            b = 1;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
                 !strcasecmp(v, "off"))
            b = 0;
        else
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s.%s: '%s' is not true or false",
                              k->section, k->name, v);
        memcpy(p, &b, sizeof(b));
        return 0;
    }
    }
    return KPI_ERR_INVAL;
}

void kpi_config_defaults(struct kpi_config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NKEYS; i++)
        if (set_value(c, &kpi_config_table[i], kpi_config_table[i].def, NULL, 0))
            abort(); /* a default outside its own range is a bug in the table */
}

int kpi_config_set(struct kpi_config *c, const char *section, const char *key, const char *value,
                   char *errstr, size_t errsz)
{
    const struct kdef *k = find(section, key);
    if (k)
        return set_value(c, k, value, errstr, errsz);
    if (strcmp(section, "kafka") == 0) {
        /* librdkafka's own property: it validates it when the consumer is
         * configured, and the error names the key then. */
        for (int i = 0; i < c->n_kafka_props; i++)
            if (strcmp(c->kafka_props[i][0], key) == 0) {
                if (strlen(value) >= KPI_CONF_STR)
                    break;
                strcpy(c->kafka_props[i][1], value);
                return 0;
            }
        if (c->n_kafka_props == KPI_CONF_MAX_PASSTHROUGH || strlen(key) >= KPI_CONF_STR ||
            strlen(value) >= KPI_CONF_STR)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "kafka.%s: too many or too long", key);
        strcpy(c->kafka_props[c->n_kafka_props][0], key);
        strcpy(c->kafka_props[c->n_kafka_props][1], value);
        c->n_kafka_props++;
        return 0;
    }
    return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s.%s: unknown key (see kpistream --help)",
                      section, key);
}

int kpi_config_set_x(struct kpi_config *c, const char *assignment, char *errstr, size_t errsz)
{
    const char *eq = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq || dot == assignment || eq == dot + 1)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "-X %s: expected section.key=value (e.g. -X redis.url=redis://h:6379)",
                          assignment);
    char section[64], key[KPI_CONF_STR];
    size_t sl = (size_t)(dot - assignment), kl = (size_t)(eq - dot - 1);
    if (sl >= sizeof(section) || kl >= sizeof(key))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "-X %s: key too long", assignment);
    memcpy(section, assignment, sl);
    section[sl] = '\0';
    memcpy(key, dot + 1, kl);
    key[kl] = '\0';
    return kpi_config_set(c, section, key, eq + 1, errstr, errsz);
}

struct ini_ctx {
    struct kpi_config *c;
    char *errstr;
    size_t errsz;
    int err;
};

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *x = user;
    if (x->err)
        return 0;
    x->err = kpi_config_set(x->c, section, name, value, x->errstr, x->errsz);
    return x->err == 0;
}

int kpi_config_load_file(struct kpi_config *c, const char *path, char *errstr, size_t errsz)
{
    struct ini_ctx x = {c, errstr, errsz, 0};
    int rc = ini_parse(path, on_ini_entry, &x);
    if (rc < 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s: cannot read the file", path);
    if (x.err) {
        /* errstr already names the key; add where it was. */
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s (in %s, line %d)", errstr, path, rc);
        snprintf(errstr, errsz, "%s", tmp);
        return x.err;
    }
    if (rc > 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s: syntax error on line %d", path, rc);
    return 0;
}

int kpi_config_validate(const struct kpi_config *c, char *errstr, size_t errsz)
{
    char why[256];
    struct kpi_windows ws;
    if (kpi_windows_init(&ws, c->windows, c->lateness_ms, why, sizeof(why)))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "windows.list: %s", why);
    struct kpi_dims d;
    if (kpi_dims_init(&d, c->dim_fields, c->dim_sets, 1, (uint32_t)c->max_string, why, sizeof(why)))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "dimensions: %s", why);
    kpi_dims_fini(&d);
    if (c->retry_max_ms < c->retry_min_ms)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "engine.retry_max: must not be below engine.retry_min");
    if (c->topics[0] == '\0')
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "kafka.topics: no topic given");
    if (strncmp(c->redis_url, "redis://", 8) != 0 && strncmp(c->redis_url, "unix:", 5) != 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "redis.url: '%s' does not start with redis:// or unix:", c->redis_url);
    if (c->alerts_retry_max_ms < c->alerts_retry_min_ms)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "alerts.retry_max: must not be below alerts.retry_min");
    static const struct {
        const char *key;
        size_t off;
    } urls[] = {{"alerts.alertmanager_url", offsetof(struct kpi_config, alerts_alertmanager_url)},
                {"alerts.webhook_url", offsetof(struct kpi_config, alerts_webhook_url)}};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        const char *u = (const char *)c + urls[i].off;
        if (u[0] && strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s: '%s' is not an http(s):// URL",
                              urls[i].key, u);
    }
    if (c->alerts_enabled) {
        int found = 0;
        for (int i = 0; i < ws.n; i++)
            found |= strcmp(ws.w[i].name, c->alerts_window) == 0;
        if (!found)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                              "alerts.window: '%s' is not one of windows.list (%s)",
                              c->alerts_window, c->windows);
        struct kpi_alert_conf a;
        kpi_config_alert_conf(c, &a);
        if (kpi_alert_conf_check(&a, why, sizeof(why)))
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s", why);
    }
    return 0;
}

/* ---- secrets ---- */

static int read_secret(const char *key, const char *path, char *out, size_t size, char *errstr,
                       size_t errsz)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s: cannot read '%s': %s", key, path,
                          strerror(errno));
    size_t n = fread(out, 1, size - 1, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    out[n] = '\0';
    if (more)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s: '%s' is longer than %zu bytes", key,
                          path, size - 1);
    if (n && out[n - 1] == '\n')
        out[--n] = '\0';
    if (n && out[n - 1] == '\r')
        out[--n] = '\0';
    if (n == 0 || strlen(out) != n || strchr(out, '\n'))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "%s: '%s' must hold the secret on one line (empty, or NUL or newline "
                          "inside)",
                          key, path);
    return 0;
}

/* The secret from `file` (if set) or the environment variable `env`; *from
 * names where it came from, NULL when there is none. */
static int find_secret(const char *key, const char *file, const char *env, char *out, size_t size,
                       const char **from, char *errstr, size_t errsz)
{
    *from = NULL;
    if (file[0]) {
        *from = key;
        return read_secret(key, file, out, size, errstr, errsz);
    }
    const char *v = getenv(env);
    if (v && *v) {
        if (strlen(v) >= size)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s: longer than %zu bytes", env,
                              size - 1);
        strcpy(out, v);
        *from = env;
    }
    return 0;
}

/* RFC 3986 userinfo: unreserved and sub-delims stay, the rest is %-encoded
 * (the Redis URL decodes it). */
static void pct_encode(char *out, size_t size, const char *in)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && n + 4 < size; p++) {
        if (isalnum(*p) || strchr("-._~!$&'()*+,;=", *p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
}

int kpi_config_load_secrets(struct kpi_config *c, char *errstr, size_t errsz)
{
    char pw[KPI_CONF_STR];
    const char *from;
    c->redis_url_auth[0] = '\0';
    int err = find_secret("redis.password_file", c->redis_password_file, "KPISTREAM_REDIS_PASSWORD",
                          pw, sizeof(pw), &from, errstr, errsz);
    if (err)
        return err;
    if (from) {
        if (strncmp(c->redis_url, "redis://", 8) != 0)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                              "%s: a password needs a redis:// URL (unix: URLs carry none)", from);
        const char *host = c->redis_url + 8;
        const char *end = host + strcspn(host, "/?#");
        const char *at = NULL;
        for (const char *p = host; p < end; p++)
            if (*p == '@')
                at = p;
        if (at && memchr(host, ':', (size_t)(at - host)))
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                              "%s: redis.url already carries a password; give it in one place",
                              from);
        char enc[KPI_CONF_STR * 3];
        pct_encode(enc, sizeof(enc), pw);
        snprintf(c->redis_url_auth, sizeof(c->redis_url_auth), "redis://%.*s:%s@%s",
                 at ? (int)(at - host) : 0, host, enc, at ? at + 1 : host);
        memset(pw, 0, sizeof(pw));
    }
    err = find_secret("kafka.sasl.password_file", c->kafka_sasl_password_file,
                      "KPISTREAM_KAFKA_SASL_PASSWORD", pw, sizeof(pw), &from, errstr, errsz);
    if (err)
        return err;
    if (from) {
        for (int i = 0; i < c->n_kafka_props; i++)
            if (strcmp(c->kafka_props[i][0], "sasl.password") == 0)
                return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                                  "%s: kafka.sasl.password is set too; give it in one place", from);
        if (c->n_kafka_props == KPI_CONF_MAX_PASSTHROUGH)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%s: too many kafka.* keys", from);
        strcpy(c->kafka_props[c->n_kafka_props][0], "sasl.password");
        strcpy(c->kafka_props[c->n_kafka_props][1], pw);
        c->n_kafka_props++;
        memset(pw, 0, sizeof(pw));
    }
    return 0;
}

const char *kpi_config_redis_url(const struct kpi_config *c)
{
    return c->redis_url_auth[0] ? c->redis_url_auth : c->redis_url;
}

void kpi_config_engine_conf(const struct kpi_config *c, struct kpi_engine_conf *ec)
{
    kpi_engine_conf_defaults(ec);
    ec->dims = c->dim_fields;
    ec->sets = c->dim_sets;
    ec->card_limit = (uint32_t)c->dim_max_values;
    ec->windows = c->windows;
    ec->lateness_ms = c->lateness_ms;
    ec->max_skew_ms = c->max_skew_ms;
    ec->max_str_len = (uint32_t)c->max_string;
    ec->n_workers = (int)c->workers;
    ec->flush_interval_ms = c->flush_interval_ms;
    ec->max_cells = (uint32_t)c->max_cells;
    ec->retry_min_ms = c->retry_min_ms;
    ec->retry_max_ms = c->retry_max_ms;
    ec->idle_timeout_ms = c->idle_timeout_ms;
}

void kpi_config_redis_conf(const struct kpi_config *c, struct kpi_redis_conf *rc)
{
    kpi_redis_conf_defaults(rc);
    rc->url = kpi_config_redis_url(c);
    rc->prefix = c->redis_prefix;
    rc->group = c->group_id;
    rc->connect_timeout_ms = c->redis_timeout_ms;
    rc->command_timeout_ms = c->redis_command_timeout_ms;
    rc->active_refresh_ms = c->redis_active_refresh_ms;
    rc->ttl_margin_ms = c->redis_ttl_margin_ms;
    rc->sketch_cache_bytes = c->redis_sketch_cache_mb << 20;
    rc->no_hot_path = !c->redis_hot_path;
    rc->stream_maxlen = c->redis_stream_maxlen;
    rc->key_groups = c->redis_key_groups;
    rc->max_values = c->dim_max_values;
}

void kpi_config_alert_conf(const struct kpi_config *c, struct kpi_alert_conf *a)
{
    *a = c->alert;
    a->min_active = (uint64_t)c->alerts_min_active;
    a->warmup = (int)c->alerts_warmup;
}

size_t kpi_config_key_count(void)
{
    return NKEYS;
}

const char *kpi_config_key_name(size_t i, char *buf, size_t size)
{
    snprintf(buf, size, "%s.%s", kpi_config_table[i].section, kpi_config_table[i].name);
    return buf;
}

const char *kpi_config_key_default(size_t i)
{
    return kpi_config_table[i].def;
}

static const char *type_name(const struct kdef *k)
{
    switch (k->type) {
    case K_STR: return "string";
    case K_INT: return "integer";
    case K_AUTO_INT: return "integer or auto";
    case K_DURATION: return "duration";
    case K_DOUBLE: return "number";
    case K_BOOL: return "bool";
    case K_ENUM: return "choice";
    }
    return "?";
}

void kpi_config_print_reference(FILE *out, int markdown)
{
    if (markdown) {
        fprintf(out, "| key | type | default | description |\n|---|---|---|---|\n");
        for (size_t i = 0; i < NKEYS; i++) {
            const struct kdef *k = &kpi_config_table[i];
            fprintf(out, "| `%s.%s` | %s | `%s` | %s |\n", k->section, k->name, type_name(k),
                    k->def, k->desc);
        }
        fprintf(out, "| `kafka.<any>` | string | | any other librdkafka property, passed "
                     "untouched |\n");
        return;
    }
    const char *section = "";
    for (size_t i = 0; i < NKEYS; i++) {
        const struct kdef *k = &kpi_config_table[i];
        if (strcmp(section, k->section)) {
            section = k->section;
            fprintf(out, "  [%s]\n", section);
        }
        fprintf(out, "    %-28s %-8s default %-22s %s\n", k->name, type_name(k),
                k->def[0] ? k->def : "\"\"", k->desc);
    }
    fprintf(out, "    %-28s any other librdkafka property, passed untouched\n", "kafka.<any>");
}
