/*
 * kpi_schema_lua.c - print the Lua prologue of the Redis flush script from
 * engine/kpi_schema.h.
 *
 * The build runs it and puts its output in front of sinks/redis/flush.lua
 * (cmake/embed.cmake), so the script's counter list and formulas are the
 * engine's, never a copy:
 *
 *   CF              the counters, in struct kpi_counters order (the order of
 *                   the counter masks and values the sink sends)
 *   DF              the derived KPIs, in kpi_values order
 *   DERIVED_INPUT   [counter index] = true for the counters the formulas read
 *   derived_values  (c, active, v, base, span): sets v[i], per DF index, to
 *                   the KPI as a number, or false when undefined
 *                   (denominator <= 0); c holds counters by CF index, base
 *                   is the subscriber base (0: unknown), span the window's
 *                   size or the bucket's width in ms
 *
 * A formula is the C text of kpi_schema.h with KPI_C(name) replaced by
 * c[<index of name>], KPI_ACTIVE by active, KPI_BASE by base and KPI_SPAN_MS
 * by span; the schema allows nothing in
 * formulas that reads differently in C and Lua (numbers, + - * / and
 * parentheses), and this program refuses anything else, so the build fails
 * rather than the script computing something the engine does not.
 *
 *   kpi_schema_lua OUT
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kpi_schema.h"

#define NAME_(name, when, add, doc) #name,
static const char *const counters[] = {KPI_COUNTERS(NAME_)};
#undef NAME_
#define NCOUNTERS ((int)(sizeof(counters) / sizeof(counters[0])))

struct derived {
    const char *name, *num, *den;
};
#define DERIVED_(name, num, den, head, fmt, scale, doc) {#name, #num, #den},
static const struct derived derived[] = {KPI_DERIVED(DERIVED_)};
#undef DERIVED_
#define NDERIVED ((int)(sizeof(derived) / sizeof(derived[0])))

static int counter_index(const char *name, size_t len)
{
    for (int i = 0; i < NCOUNTERS; i++)
        if (strlen(counters[i]) == len && !memcmp(counters[i], name, len))
            return i;
    return -1;
}

/* Translate formula text to Lua into out; marks the counters it reads in
 * used[].  0, or -1 (message on stderr) for anything the schema forbids. */
static int to_lua(const char *kpi, const char *src, char *out, size_t cap, int *used)
{
    size_t n = 0;
    const char *p = src;
    while (*p) {
        char piece[64];
        if (!strncmp(p, "KPI_C(", 6)) {
            const char *name = p + 6, *end = strchr(name, ')');
            int i = end ? counter_index(name, (size_t)(end - name)) : -1;
            if (i < 0) {
                fprintf(stderr, "kpi_schema_lua: %s: no such counter in '%s'\n", kpi, src);
                return -1;
            }
            used[i] = 1;
            snprintf(piece, sizeof(piece), "c[%d]", i + 1);
            p = end + 1;
        } else if (!strncmp(p, "KPI_ACTIVE", 10)) {
            snprintf(piece, sizeof(piece), "active");
            p += 10;
        } else if (!strncmp(p, "KPI_BASE", 8)) {
            snprintf(piece, sizeof(piece), "base");
            p += 8;
        } else if (!strncmp(p, "KPI_SPAN_MS", 11)) {
            snprintf(piece, sizeof(piece), "span");
            p += 11;
        } else if (isdigit((unsigned char)*p) || *p == '.') {
            /* a decimal number: digits, '.', an exponent */
            size_t k = 0;
            while (k + 1 < sizeof(piece) &&
                   (isdigit((unsigned char)p[k]) || p[k] == '.' ||
                    ((p[k] == 'e' || p[k] == 'E') && isdigit((unsigned char)p[k + 1])) ||
                    ((p[k] == '-' || p[k] == '+') && k && (p[k - 1] == 'e' || p[k - 1] == 'E'))))
                k++;
            memcpy(piece, p, k);
            piece[k] = '\0';
            p += k;
        } else if (strchr("+-*/() ", *p)) {
            piece[0] = *p++;
            piece[1] = '\0';
        } else {
            fprintf(stderr, "kpi_schema_lua: %s: '%c' is not allowed in a formula: '%s'\n", kpi, *p,
                    src);
            return -1;
        }
        size_t k = strlen(piece);
        if (n + k + 1 > cap) {
            fprintf(stderr, "kpi_schema_lua: %s: formula too long\n", kpi);
            return -1;
        }
        memcpy(out + n, piece, k + 1);
        n += k;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: kpi_schema_lua OUT\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    int used[NCOUNTERS] = {0};
    static char num[NDERIVED][1024], den[NDERIVED][1024];
    for (int i = 0; i < NDERIVED; i++)
        if (to_lua(derived[i].name, derived[i].num, num[i], sizeof(num[i]), used) ||
            to_lua(derived[i].name, derived[i].den, den[i], sizeof(den[i]), used))
            return 1;

    fputs("-- Generated at build time from engine/kpi_schema.h by tools/kpi_schema_lua.c;\n"
          "-- do not edit.  Counters by CF index, in the order of struct kpi_counters.\n"
          "local CF = {",
          f);
    for (int i = 0; i < NCOUNTERS; i++)
        fprintf(f, "%s'%s'", i ? ", " : "", counters[i]);
    fputs("}\n-- The derived KPIs, in the order of struct kpi_values.\nlocal DF = {", f);
    for (int i = 0; i < NDERIVED; i++)
        fprintf(f, "%s'%s'", i ? ", " : "", derived[i].name);
    fputs("}\n-- Counters the formulas read.\nlocal DERIVED_INPUT = {", f);
    for (int i = 0, first = 1; i < NCOUNTERS; i++)
        if (used[i]) {
            fprintf(f, "%s[%d] = true", first ? "" : ", ", i + 1);
            first = 0;
        }
    fputs("}\n"
          "-- The formulas of engine/kpi.c: v[i] per DF index, a number, or false\n"
          "-- when undefined (denominator <= 0).\n"
          "local function derived_values(c, active, v, base, span)\n"
          "    local d\n",
          f);
    for (int i = 0; i < NDERIVED; i++)
        fprintf(f,
                "    d = %s -- %s\n"
                "    if d > 0 then v[%d] = (%s) / d else v[%d] = false end\n",
                den[i], derived[i].name, i + 1, num[i], i + 1);
    fputs("end\n", f);
    if (fclose(f) != 0) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}
