/* json.c - see json.h. */
#include "cmd/lib/json.h"

#include <inttypes.h>
#include <string.h>

void kpi_json_strn(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void kpi_json_str(FILE *f, const char *s)
{
    kpi_json_strn(f, s, strlen(s));
}

void kpi_json_num(FILE *f, int has, double v)
{
    if (has)
        fprintf(f, "%.10g", v);
    else
        fputs("null", f);
}

void kpi_json_i64(FILE *f, int64_t v)
{
    if (v == INT64_MIN)
        fputs("null", f);
    else
        fprintf(f, "%" PRId64, v);
}

void kpi_json_values(FILE *f, const struct kpi_values *v)
{
    for (int i = 0; i < KPI_NCOUNTERS; i++)
        fprintf(f, "%s\"%s\":%" PRId64, i ? "," : "", kpi_counter_names[i], v->c.v[i]);
    fprintf(f, ",\"active\":%" PRIu64, v->active);
    for (int i = 0; i < KPI_NDERIVED; i++) {
        fprintf(f, ",\"%s\":", kpi_derived_defs[i].name);
        kpi_json_num(f, v->has[i], v->derived[i]);
    }
    if (v->has_base)
        fprintf(f, ",\"base\":%.0f", v->base); /* an integer: every digit */
    else
        fputs(",\"base\":null", f);
    static const char *const src[] = {"null", "\"snapshot\"", "\"active\""};
    fprintf(f, ",\"base_source\":%s", src[(unsigned)v->base_source < 3 ? v->base_source : 0]);
}
