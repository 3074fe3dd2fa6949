/* window.c - parsing window specs and durations (see window.h for the model). */
#include "engine/window.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/list.h"
#include "engine/err.h"

int kpi_duration_parse(const char *s, int64_t *ms)
{
    if (!s || !isdigit((unsigned char)*s))
        return KPI_ERR_INVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return KPI_ERR_INVAL;
    int64_t mult;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60 * 1000;
    else if (strcmp(end, "h") == 0)
        mult = 3600 * 1000;
    else if (strcmp(end, "d") == 0)
        mult = 86400 * 1000;
    else
        return KPI_ERR_INVAL;
    if (v > (unsigned long long)(INT64_MAX / mult))
        return KPI_ERR_INVAL;
    *ms = (int64_t)v * mult;
    return 0;
}

int kpi_window_parse(const char *spec, struct kpi_window_spec *w, char *errstr, size_t errsz)
{
    memset(w, 0, sizeof(*w));
    size_t len = strlen(spec);
    const char *slash = strchr(spec, '/');
    if (!slash || len >= KPI_WINDOW_NAME_MAX)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "window '%s' is not of the form size/slide (e.g. 1h/1m)", spec);
    char size[KPI_WINDOW_NAME_MAX], slide[KPI_WINDOW_NAME_MAX];
    memcpy(size, spec, (size_t)(slash - spec));
    size[slash - spec] = '\0';
    strcpy(slide, slash + 1);
    if (kpi_duration_parse(size, &w->size_ms) || w->size_ms <= 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "window '%s': bad size '%s'", spec, size);
    if (kpi_duration_parse(slide, &w->slide_ms) || w->slide_ms <= 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "window '%s': bad slide '%s'", spec, slide);
    if (w->size_ms % w->slide_ms)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "window '%s': size must be a multiple of the slide", spec);
    if (w->size_ms / w->slide_ms > 100000)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "window '%s': more than 100000 buckets per window", spec);
    memcpy(w->name, spec, len + 1);
    memcpy(w->id, spec, len + 1);
    w->id[slash - spec] = '_';
    return 0;
}

int64_t kpi_gcd(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int kpi_windows_init(struct kpi_windows *ws, const char *specs, int64_t lateness_ms, char *errstr,
                     size_t errsz)
{
    memset(ws, 0, sizeof(*ws));
    if (lateness_ms < 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "lateness must not be negative");
    ws->lateness_ms = lateness_ms;
    const char *p = specs ? specs : "", *s;
    size_t len;
    while ((s = kpi_list_next(&p, ", ", &len))) {
        char one[KPI_WINDOW_NAME_MAX * 2];
        if (len >= sizeof(one))
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "window '%.*s' is too long", (int)len,
                              s);
        memcpy(one, s, len);
        one[len] = '\0';
        if (ws->n == KPI_MAX_WINDOWS)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "at most %d windows", KPI_MAX_WINDOWS);
        int err = kpi_window_parse(one, &ws->w[ws->n], errstr, errsz);
        if (err)
            return err;
        for (int i = 0; i < ws->n; i++)
            if (strcmp(ws->w[i].id, ws->w[ws->n].id) == 0)
                return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "window '%s' is listed twice", one);
        ws->base_ms = ws->n ? kpi_gcd(ws->base_ms, ws->w[ws->n].slide_ms) : ws->w[ws->n].slide_ms;
        if (ws->w[ws->n].size_ms > ws->longest_ms)
            ws->longest_ms = ws->w[ws->n].size_ms;
        ws->n++;
    }
    if (ws->n == 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "no window configured");
    return 0;
}
