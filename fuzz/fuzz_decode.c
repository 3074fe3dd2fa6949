/*
 * fuzz_decode.c - libFuzzer target for the event decoder.
 *
 * Feeds arbitrary bytes to kpi_decode and checks the invariants a caller
 * relies on: the result is a valid reason, and on success every string points
 * inside the input, respects the length limit, and the fields are in range.
 * ASan/UBSan (enabled with the fuzzer) catch any read past the input.
 *
 *   CC=clang cmake -S . -B build-fuzz -DKPI_FUZZ=ON && cmake --build build-fuzz --target
 * fuzz_decode
 *   ./build-fuzz/fuzz_decode -max_total_time=60 fuzz/corpus
 */
#include <stdint.h>
#include <stdlib.h>

#include "decode.h"

#define MAX_STR 64

static int inside(const struct kpi_strref *s, const uint8_t *data, size_t size)
{
    if (!s->ptr)
        return 1;
    const uint8_t *p = (const uint8_t *)s->ptr;
    return p >= data && p + s->len <= data + size && s->len <= MAX_STR;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct kpi_decoder dec;
    static int ready;
    if (!ready) {
        static const char *dims[] = {"region", "plan", "segment"};
        if (kpi_decoder_init(&dec, dims, 3, 300000, MAX_STR, NULL, 0))
            abort();
        ready = 1;
    }
    struct kpi_event ev;
    enum kpi_bad_reason r = kpi_decode(&dec, data, size, 1700000000000LL, &ev);
    if ((unsigned)r >= KPI_BAD__COUNT || r == KPI_BAD_TOO_LATE)
        abort();
    if (r != KPI_BAD_NONE)
        return 0;
    if ((unsigned)ev.type >= KPI_EV__COUNT || ev.amount_micros < 0 || ev.ts_ms < 0 ||
        ev.ts_ms > 1700000000000LL + 300000 || (ev.type == KPI_EV_NPS && ev.score > 10) ||
        ev.survey >= KPI_SURVEY__COUNT || !inside(&ev.reason, data, size))
        abort();
    for (int i = 0; i < 3; i++)
        if (!inside(&ev.dims[i], data, size))
            abort();
    return 0;
}
