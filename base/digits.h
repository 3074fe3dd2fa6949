/*
 * digits.h - decimal digits without printf, for the per-event and per-flush
 * paths that format many integers (engine/decode.c: subscriber ids;
 * sinks/redis: counters and RESP headers).
 */
#ifndef KPI_BASE_DIGITS_H
#define KPI_BASE_DIGITS_H

#include <stdint.h>

/* Decimal digits of u, written backwards ending at `end` (room for 20);
 * returns the count.  Two digits per division: subscriber ids (MSISDNs,
 * IMSIs) have 10-15. */
static inline uint32_t kpi_utoa_back(uint64_t u, char *end)
{
    static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
                                   "25262728293031323334353637383940414243444546474849"
                                   "50515253545556575859606162636465666768697071727374"
                                   "75767778798081828384858687888990919293949596979899";
    char *p = end;
    while (u >= 100) {
        const char *two = pairs + 2 * (u % 100);
        u /= 100;
        *--p = two[1];
        *--p = two[0];
    }
    if (u >= 10) {
        *--p = pairs[2 * u + 1];
        *--p = pairs[2 * u];
    } else {
        *--p = (char)('0' + u);
    }
    return (uint32_t)(end - p);
}

#endif
