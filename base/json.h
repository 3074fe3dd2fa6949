/* json.h - the few JSON writers kpistream needs: strings, numbers and
 * int64s, written straight to a FILE (the HTTP API, the event stream, alert
 * delivery, the stdout sink).  Output only: kpistream never parses JSON. */
#ifndef KPI_BASE_JSON_H
#define KPI_BASE_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A JSON string of n bytes: quotes, backslashes and control bytes escaped;
 * bytes >= 0x80 pass through (values are UTF-8 by convention). */
void kpi_json_strn(FILE *f, const char *s, size_t n);
void kpi_json_str(FILE *f, const char *s);
/* `,"key":` then the string s: one member of an object being written. */
void kpi_json_member_str(FILE *f, const char *key, const char *s);
/* A number with 10 significant digits (what the Redis hash holds), or null. */
void kpi_json_num(FILE *f, int has, double v);
/* An int64, or null for INT64_MIN (unknown). */
void kpi_json_i64(FILE *f, int64_t v);

#endif
