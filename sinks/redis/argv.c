/*
 * argv.c - the flat argument list of one Redis command (redis_int.h).
 *
 * All argument bytes live in one growing buffer; arguments are recorded as
 * offsets and turned into pointers only once the buffer stops moving, so a
 * flush of a million arguments costs a few reallocs, not a million mallocs.
 */
#include <stdlib.h>
#include <string.h>

#include "base/digits.h"
#include "engine/err.h"
#include "sinks/redis/redis_int.h"

static int kpi_argv_reserve(struct kpi_argv *a, size_t bytes)
{
    if (a->len + bytes > a->cap || !a->buf) { /* a first, empty argument needs a buffer too */
        size_t cap = a->cap ? a->cap : 65536;
        while (cap < a->len + bytes)
            cap *= 2;
        char *b = realloc(a->buf, cap);
        if (!b)
            return KPI_ERR_NOMEM;
        a->buf = b;
        a->cap = cap;
    }
    if (a->n == a->ncap) {
        /* off[] and alen[] share one block, off first: alen moves up when
         * it grows (and stays one contiguous array, as hiredis wants it) */
        size_t ncap = a->ncap ? a->ncap * 2 : 4096;
        size_t *o = realloc(a->off, 2 * ncap * sizeof(*o));
        if (!o)
            return KPI_ERR_NOMEM;
        memmove(o + ncap, o + a->ncap, a->n * sizeof(*o));
        a->off = o;
        a->alen = o + ncap;
        a->ncap = ncap;
    }
    return 0;
}

/* Room for one argument of up to `bytes`; commit it with kpi_argv_commit. */
char *kpi_argv_begin(struct kpi_argv *a, size_t bytes)
{
    return kpi_argv_reserve(a, bytes) ? NULL : a->buf + a->len;
}

void kpi_argv_commit(struct kpi_argv *a, size_t bytes)
{
    a->off[a->n] = a->len;
    a->alen[a->n] = bytes;
    a->n++;
    a->len += bytes;
}

int kpi_argv_push(struct kpi_argv *a, const void *p, size_t len)
{
    char *d = kpi_argv_begin(a, len);
    if (!d)
        return KPI_ERR_NOMEM;
    memcpy(d, p, len);
    kpi_argv_commit(a, len);
    return 0;
}

int kpi_argv_str(struct kpi_argv *a, const char *s)
{
    return kpi_argv_push(a, s, strlen(s));
}

/* v in decimal, as printf's %" PRId64 " writes it, ending at end; returns
 * the start.  A flush formats a few numbers per field it writes, and
 * snprintf was a visible part of the sink thread's time. */
static char *i64_str(char *end, int64_t v)
{
    end -= kpi_utoa_back(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, end);
    if (v < 0)
        *--end = '-';
    return end;
}

int kpi_argv_i64(struct kpi_argv *a, int64_t v)
{
    char tmp[24];
    const char *d = i64_str(tmp + sizeof(tmp), v);
    return kpi_argv_push(a, d, (size_t)(tmp + sizeof(tmp) - d));
}

/* Overwrite argument i (pushed as a placeholder) with a number. */
int kpi_argv_set_i64(struct kpi_argv *a, size_t i, int64_t v)
{
    char tmp[24];
    const char *d = i64_str(tmp + sizeof(tmp), v);
    size_t n = (size_t)(tmp + sizeof(tmp) - d);
    if (n > a->alen[i])
        return KPI_ERR_STATE;
    memcpy(a->buf + a->off[i], d, n);
    a->alen[i] = n;
    return 0;
}

const char **kpi_argv_finish(struct kpi_argv *a)
{
    if (a->ptrs_cap < a->n) {
        const char **p = realloc(a->ptrs, a->n * sizeof(*p));
        if (!p)
            return NULL;
        a->ptrs = p;
        a->ptrs_cap = a->n;
    }
    for (size_t i = 0; i < a->n; i++)
        a->ptrs[i] = a->buf + a->off[i];
    return a->ptrs;
}

void kpi_argv_reset(struct kpi_argv *a)
{
    a->len = 0;
    a->n = 0;
}

void kpi_argv_free(struct kpi_argv *a)
{
    free(a->buf);
    free(a->off); /* and alen, in the same block */
    free(a->ptrs);
    memset(a, 0, sizeof(*a));
}
