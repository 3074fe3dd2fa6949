/* err.c - names and formatting for kpi_err codes (see err.h). */
#include "engine/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *kpi_err_name(int err)
{
    switch (err) {
    case KPI_OK: return "ok";
    case KPI_ERR_INVAL: return "inval";
    case KPI_ERR_NOMEM: return "nomem";
    case KPI_ERR_FULL: return "full";
    case KPI_ERR_IO: return "io";
    case KPI_ERR_CONFLICT: return "conflict";
    case KPI_ERR_PARSE: return "parse";
    case KPI_ERR_STATE: return "state";
    }
    return "unknown";
}

int kpi_seterr(char *errstr, size_t errstr_size, int err, const char *fmt, ...)
{
    if (errstr && errstr_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}
