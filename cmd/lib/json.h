/* json.h - the few JSON writers the HTTP API, SSE and alert delivery need
 * (output only: kpistream never parses JSON). */
#ifndef KPI_JSON_H
#define KPI_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/kpi.h"

/* A JSON string of n bytes: quotes, backslashes and control bytes escaped;
 * bytes >= 0x80 pass through (values are UTF-8 by convention). */
void kpi_json_strn(FILE *f, const char *s, size_t n);
void kpi_json_str(FILE *f, const char *s);
/* A number with 10 significant digits (what the Redis hash holds), or null. */
void kpi_json_num(FILE *f, int has, double v);
/* An int64, or null for INT64_MIN (unknown). */
void kpi_json_i64(FILE *f, int64_t v);
/* The rolling hash's public fields of v, every counter and KPI of
 * engine/kpi_schema.h, as `"events":1,...,"nps_brand":null,...` (no braces). */
void kpi_json_values(FILE *f, const struct kpi_values *v);

#endif
