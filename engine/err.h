/*
 * err.h - kpistream's error codes.
 *
 * Every fallible function returns 0 on success or a negative kpi_err.  Where a
 * human needs more than the code, the function also takes a caller-supplied
 * `char *errstr, size_t errstr_size` (librdkafka's convention) and writes a
 * one-line message there.
 */
#ifndef KPI_ERR_H
#define KPI_ERR_H

#include <stddef.h>

enum kpi_err {
    KPI_OK = 0,
    KPI_ERR_INVAL = -1,    /* bad argument or configuration value */
    KPI_ERR_NOMEM = -2,    /* allocation failed */
    KPI_ERR_FULL = -3,     /* a bounded structure is full */
    KPI_ERR_IO = -4,       /* a remote system failed (network, Redis, Kafka) */
    KPI_ERR_CONFLICT = -5, /* fenced: another writer owns what we tried to write */
    KPI_ERR_PARSE = -6,    /* malformed external data */
    KPI_ERR_STATE = -7,    /* called in the wrong state */
};

/* Stable lower-case name of an error code ("inval", "nomem", ...). */
const char *kpi_err_name(int err);

/* snprintf into errstr when errstr is non-NULL; returns err for tail calls. */
int kpi_seterr(char *errstr, size_t errstr_size, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
