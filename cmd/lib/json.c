/* json.c - see json.h. */
#include "json.h"

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
    const struct kpi_counters *c = &v->c;
    fprintf(f,
            "\"events\":%" PRId64 ",\"usage\":%" PRId64 ",\"revenue\":%" PRId64
            ",\"activations\":%" PRId64 ",\"churns\":%" PRId64 ",\"bytes\":%" PRId64
            ",\"seconds\":%" PRId64 ",\"nps_network_promoters\":%" PRId64
            ",\"nps_network_passives\":%" PRId64 ",\"nps_network_detractors\":%" PRId64
            ",\"nps_brand_promoters\":%" PRId64 ",\"nps_brand_passives\":%" PRId64
            ",\"nps_brand_detractors\":%" PRId64 ",\"active\":%" PRIu64,
            c->events, c->usage, c->revenue, c->activations, c->churns, c->bytes, c->seconds,
            c->nps[0][0], c->nps[0][1], c->nps[0][2], c->nps[1][0], c->nps[1][1], c->nps[1][2],
            v->active);
    fputs(",\"churn_rate\":", f);
    kpi_json_num(f, v->has_churn_rate, v->churn_rate);
    fputs(",\"arpu\":", f);
    kpi_json_num(f, v->has_arpu, v->arpu);
    fputs(",\"nps_network\":", f);
    kpi_json_num(f, v->has_nps_network, v->nps_network);
    fputs(",\"nps_brand\":", f);
    kpi_json_num(f, v->has_nps_brand, v->nps_brand);
}
