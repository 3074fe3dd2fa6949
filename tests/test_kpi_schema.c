/*
 * The schema (engine/kpi_schema.h) against itself and against the docs: the
 * counter and KPI tables of docs/kpis.md and the field tables of
 * docs/redis-schema.md must name exactly what the list holds, so a counter
 * added to the list without its documentation fails here.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kpi.h"

/* ---- reading a Markdown section's tables ---- */

#define MAX_NAMES 128

struct names {
    int n;
    char name[MAX_NAMES][64];
};

static char *read_doc(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", KPI_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s exists", path);
    static char buf[4][1 << 20];
    static int next;
    char *doc = buf[next++ % 4];
    size_t n = fread(doc, 1, sizeof(buf[0]) - 1, f);
    fclose(f);
    doc[n] = '\0';
    return doc;
}

/* The `names` (identifiers only: `nps_<survey>` is a pattern, not a name) in
 * the first column of the table rows of the section whose heading line is
 * `heading`, up to the next heading.  Header and separator rows are skipped. */
static struct names table_names(const char *doc, const char *heading)
{
    struct names out = {0};
    const char *p = strstr(doc, heading);
    cr_assert_not_null(p, "the doc has the section '%s'", heading);
    p = strchr(p + 1, '\n'); /* the end of the heading line */
    int row_in_table = 0;
    while (p && *++p && *p != '#') {
        const char *eol = strchr(p, '\n');
        if (!eol)
            eol = p + strlen(p);
        if (*p != '|') {
            row_in_table = 0;
        } else if (row_in_table++ >= 2) { /* skip the header and the |---| rows */
            const char *cell_end = memchr(p + 1, '|', (size_t)(eol - p - 1));
            cr_assert_not_null(cell_end);
            for (const char *q = p + 1; q < cell_end; q++) {
                if (*q != '`')
                    continue;
                const char *e = memchr(q + 1, '`', (size_t)(cell_end - q - 1));
                cr_assert_not_null(e, "unbalanced ` in %.*s", (int)(eol - p), p);
                size_t len = (size_t)(e - q - 1);
                int ident = len > 0 && len < sizeof(out.name[0]);
                for (size_t i = 0; i < len && ident; i++)
                    ident = islower((unsigned char)q[1 + i]) || isdigit((unsigned char)q[1 + i]) ||
                            q[1 + i] == '_';
                if (ident && out.n < MAX_NAMES) {
                    memcpy(out.name[out.n], q + 1, len);
                    out.name[out.n++][len] = '\0';
                }
                q = e;
            }
        }
        p = *eol ? eol : NULL;
    }
    cr_assert_gt(out.n, 0, "section '%s' has a table", heading);
    return out;
}

static int has(const struct names *n, const char *name)
{
    for (int i = 0; i < n->n; i++)
        if (!strcmp(n->name[i], name))
            return 1;
    return 0;
}

static int in_list(const char *const *list, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name))
            return 1;
    return 0;
}

static const char *derived_name(int i)
{
    return kpi_derived_defs[i].name;
}

static void assert_counters_documented(const struct names *n, const char *where)
{
    for (int i = 0; i < KPI_NCOUNTERS; i++)
        cr_assert(has(n, kpi_counter_names[i]), "%s does not document the counter %s", where,
                  kpi_counter_names[i]);
}

static void assert_derived_documented(const struct names *n, const char *where)
{
    for (int i = 0; i < KPI_NDERIVED; i++)
        cr_assert(has(n, derived_name(i)), "%s does not document the KPI %s", where,
                  derived_name(i));
}

/* Nothing but counters, KPIs and the extras: a row for something the
 * schema does not have (any more) fails too. */
static void assert_only(const struct names *n, const char *where, const char *const *extras,
                        int n_extras)
{
    for (int i = 0; i < n->n; i++) {
        const char *x = n->name[i];
        int known = in_list(kpi_counter_names, KPI_NCOUNTERS, x) || in_list(extras, n_extras, x);
        for (int d = 0; d < KPI_NDERIVED && !known; d++)
            known = !strcmp(derived_name(d), x);
        cr_assert(known, "%s documents `%s`, which is not in engine/kpi_schema.h", where, x);
    }
}

/* ---- the list itself ---- */

Test(kpi_schema, names_are_unique_identifiers_shared_by_no_counter_and_kpi)
{
    const char *all[KPI_NCOUNTERS + KPI_NDERIVED];
    for (int i = 0; i < KPI_NCOUNTERS; i++)
        all[i] = kpi_counter_names[i];
    for (int i = 0; i < KPI_NDERIVED; i++)
        all[KPI_NCOUNTERS + i] = derived_name(i);
    for (int i = 0; i < KPI_NCOUNTERS + KPI_NDERIVED; i++) {
        cr_assert(all[i][0] &&
                      strspn(all[i], "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(all[i]),
                  "%s: lower-case identifier", all[i]);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(all[i], all[j], "one Redis hash holds them all: names differ");
        cr_assert(strcmp(all[i], "active") && all[i][0] != '_', "%s: reserved", all[i]);
    }
    cr_assert_str_eq(kpi_counter_names[KPI_CI_events], "events");
    cr_assert_eq(KPI_CI_events, 0, "events first: the Redis script's groups start with it");
}

Test(kpi_schema, counters_are_named_fields_and_array_slots_at_once)
{
    struct kpi_counters c = {0};
    c.churns = 5;
    c.nps_brand_passives = 7;
    cr_assert_eq(c.v[KPI_CI_churns], 5);
    cr_assert_eq(c.nps[KPI_SURVEY_BRAND][KPI_NPS_PASSIVES], 7);
    struct kpi_values v;
    kpi_values_compute(&v, &c, 10);
    cr_assert(v.has[KPI_DI_churn_rate] && v.has_churn_rate);
    cr_assert_float_eq(v.derived[KPI_DI_churn_rate], 0.5, 1e-12);
    cr_assert_float_eq(v.churn_rate, 0.5, 1e-12);
    cr_assert_not(v.has_churn_rate_monthly, "no base: the KPIs over the base are undefined");
    cr_assert(v.has_net_adds);
}

Test(kpi_schema, monthly_kpis_scale_the_window_to_30_days_over_the_base)
{
    struct kpi_counters c = {0};
    c.churns = 15;
    c.activations = 40;
    c.revenue = 2500000000; /* 2 500 currency units */
    struct kpi_values v;
    /* A 1-day window over a base of 10 000 at its start. */
    kpi_values_compute_base(&v, &c, 900, 1, 10000.0, 86400000);
    cr_assert(v.has_churn_rate_monthly && v.has_arpu_monthly && v.has_net_adds);
    cr_assert_float_eq(v.churn_rate_monthly, 15.0 * 30 / 10000, 1e-15);
    cr_assert_float_eq(v.arpu_monthly, 2500.0 * 30 / 10000, 1e-12);
    cr_assert_float_eq(v.net_adds, 25.0, 0);
    cr_assert_float_eq(v.base, 10000.0, 0);
    kpi_values_compute_base(&v, &c, 900, 1, 0.0, 86400000);
    cr_assert_not(v.has_churn_rate_monthly, "a base of 0 leaves them undefined, never infinite");
}

/* ---- the docs ---- */

Test(kpi_schema, docs_kpis_md_lists_every_counter_and_kpi)
{
    const char *doc = read_doc("docs/kpis.md");
    struct names c = table_names(doc, "\n## Counters (exact)");
    assert_counters_documented(&c, "docs/kpis.md, Counters");
    assert_only(&c, "docs/kpis.md, Counters", NULL, 0);
    struct names d = table_names(doc, "\n## Derived KPIs");
    assert_derived_documented(&d, "docs/kpis.md, Derived KPIs");
    /* the formula column may name counters; the first column is the KPI */
    for (int i = 0; i < d.n; i++)
        cr_assert(!in_list(kpi_counter_names, KPI_NCOUNTERS, d.name[i]),
                  "docs/kpis.md, Derived KPIs: %s is a counter", d.name[i]);
    assert_only(&d, "docs/kpis.md, Derived KPIs", NULL, 0);
}

Test(kpi_schema, docs_redis_schema_md_lists_every_field_of_the_rolling_hash)
{
    const char *doc = read_doc("docs/redis-schema.md");
    const char *where = "docs/redis-schema.md, the rolling KPIs";
    struct names n = table_names(doc, "\n### `P:kpi:<window>:<set>:<value>` (hash)");
    assert_counters_documented(&n, where);
    assert_derived_documented(&n, where);
    cr_assert(has(&n, "active"), "%s: active", where);
    cr_assert(has(&n, "base") && has(&n, "base_source"), "%s: base, base_source", where);
    static const char *const extras[] = {"active", "base", "base_source", "_ms", "_p"};
    /* active, the base, and the bookkeeping fields _ms and _p */
    assert_only(&n, where, extras, 5);
}

Test(kpi_schema, docs_redis_schema_md_lists_every_kpi_of_a_stream_entry)
{
    const char *doc = read_doc("docs/redis-schema.md");
    const char *where = "docs/redis-schema.md, stream entries";
    struct names n = table_names(doc, "\n### `P:stream:<window>` (stream)");
    assert_derived_documented(&n, where);
    cr_assert(has(&n, "base") && has(&n, "base_source"), "%s: base, base_source", where);
    static const char *const extras[] = {"bucket", "end",    "set",  "value",
                                         "rev",    "active", "base", "base_source"};
    assert_only(&n, where, extras, 8);
}

Test(kpi_schema, a_missing_counter_is_caught)
{
    /* The check itself: a table without one counter fails it. */
    static char doc[4096];
    snprintf(doc, sizeof(doc),
             "x\n## Counters (exact)\n\n| counter | counts |\n|---|---|\n| `events` | all |\n\n## "
             "Next\n| `usage` | x |\n");
    struct names n = table_names(doc, "\n## Counters (exact)");
    cr_assert_eq(n.n, 1);
    cr_assert(has(&n, "events"));
    cr_assert_not(has(&n, "usage"), "the section ends at the next heading");
}
