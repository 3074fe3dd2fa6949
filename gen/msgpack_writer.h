/*
 * msgpack_writer.h - the few msgpack encodings the traffic generator needs,
 * written by hand straight into the caller's buffer.
 *
 * The generator (gen.c) makes millions of events a second for the benchmarks
 * and kpistream-gen, one msgpack map each.  msgpack-c would allocate (a
 * packer over an sbuffer) and go through a callback per write; this writer
 * does neither: a struct kpi_mp_writer is a cursor [p, end) over the caller's
 * buffer, and each function appends one value in the shortest encoding the
 * msgpack spec allows for it (positive fixint, uint 8/16/32/64, negative
 * fixint, int 64, float 64, fixstr, str 8/16).  They are static inline so
 * the compiler folds them into the generator's per-event code.
 *
 * Running out of room is not an error at each call: the writer sets `full`,
 * stops writing and lets the caller check once at the end of the event
 * (kpi_gen_next returns KPI_ERR_FULL then).  Big-endian integers are written
 * with one 8-byte store when the buffer has room for it, the common case.
 *
 * Only what the generator writes is here: maps and arrays have their header
 * byte written by the caller (0x80 | pairs, 0x90 | items), since the
 * generator knows how many pairs an event has, or patches the byte.
 */
#ifndef KPI_GEN_MSGPACK_WRITER_H
#define KPI_GEN_MSGPACK_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct kpi_mp_writer {
    uint8_t *p, *end;
    int full;
};

static inline void kpi_mp_raw(struct kpi_mp_writer *w, const void *s, size_t n)
{
    if ((size_t)(w->end - w->p) < n) {
        w->full = 1;
        w->p = w->end;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

static inline void kpi_mp_u8(struct kpi_mp_writer *w, uint8_t b)
{
    if (w->p == w->end) {
        w->full = 1;
        return;
    }
    *w->p++ = b;
}

/* A tag byte and the low n bytes of v, big-endian (n = 1, 2, 4, 8). */
static inline void kpi_mp_be(struct kpi_mp_writer *w, uint8_t tag, uint64_t v, int n)
{
    if ((size_t)(w->end - w->p) >= 9) { /* room for a whole word: one store */
        uint64_t be = __builtin_bswap64(v << (8 * (8 - n)));
        w->p[0] = tag;
        memcpy(w->p + 1, &be, 8);
        w->p += n + 1;
        return;
    }
    uint8_t b[9];
    b[0] = tag;
    for (int i = 0; i < n; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    kpi_mp_raw(w, b, (size_t)n + 1);
}

static inline __attribute__((always_inline)) void kpi_mp_uint(struct kpi_mp_writer *w, uint64_t v)
{
    if (v < 128)
        kpi_mp_u8(w, (uint8_t)v);
    else if (v < 256)
        kpi_mp_be(w, 0xcc, v, 1);
    else if (v < 65536)
        kpi_mp_be(w, 0xcd, v, 2);
    else if (v < 4294967296ULL)
        kpi_mp_be(w, 0xce, v, 4);
    else
        kpi_mp_be(w, 0xcf, v, 8);
}

static inline void kpi_mp_int(struct kpi_mp_writer *w, int64_t v)
{
    if (v >= 0)
        kpi_mp_uint(w, (uint64_t)v);
    else if (v >= -32)
        kpi_mp_u8(w, (uint8_t)(int8_t)v);
    else
        kpi_mp_be(w, 0xd3, (uint64_t)v, 8);
}

static inline void kpi_mp_double(struct kpi_mp_writer *w, double d)
{
    uint64_t x;
    memcpy(&x, &d, 8);
    kpi_mp_be(w, 0xcb, x, 8);
}

static inline void kpi_mp_strn(struct kpi_mp_writer *w, const char *s, size_t n)
{
    if (n < 32)
        kpi_mp_u8(w, (uint8_t)(0xa0 | n));
    else if (n < 256)
        kpi_mp_be(w, 0xd9, n, 1);
    else
        kpi_mp_be(w, 0xda, n, 2);
    kpi_mp_raw(w, s, n);
}

static inline void kpi_mp_str(struct kpi_mp_writer *w, const char *s)
{
    kpi_mp_strn(w, s, strlen(s));
}

/* Decimal digits of u (for a str of digits); returns the length (at most 20). */
static inline size_t kpi_mp_utoa(uint64_t u, char *out)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

#endif
