/*
 * fuzz_decode.c - libFuzzer target for the event decoder.
 *
 * Feeds arbitrary bytes to kpi_decode with the default dimensions
 * (region, plan, segment) and checks what a caller relies on: the result is a
 * decoder reason (never too_late), and on success every string points inside
 * the input within the length limit and every field is in range.  ASan and
 * UBSan, built in with the fuzzer, catch any read past the input (libFuzzer
 * hands over an exact-size buffer).
 *
 * Seeds: one message per outcome, written by tests/test_decode.c
 * (KPI_WRITE_CORPUS=DIR test_decode --filter 'decode/seed_corpus*'; the
 * ASan build writes them to build-asan/fuzz-corpus), never committed.
 * Run on a copy, since libFuzzer adds what it finds to its first directory:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -std=c11 -I. \
 *       fuzz/fuzz_decode.c engine/decode.c engine/event.c engine/hash.c engine/err.c \
 *       -o /tmp/fuzz_decode
 *   cp -r build-asan/fuzz-corpus /tmp/corpus && /tmp/fuzz_decode -max_total_time=60 /tmp/corpus
 *
 * or with CMake: CC=clang cmake -S . -B build-fuzz -DKPI_FUZZ=ON.
 */
#include <stdint.h>
#include <stdlib.h>

#include "engine/decode.h"

#define NOW     1700000000000LL
#define SKEW    300000
#define MAX_STR 64
#define N_DIMS  3

static int inside(const struct kpi_strref *s, const uint8_t *data, size_t size)
{
    if (!s->ptr)
        return 1;
    const uint8_t *p = (const uint8_t *)s->ptr;
    return p >= data && s->len <= size && p - data <= (ptrdiff_t)(size - s->len) &&
           s->len <= MAX_STR;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct kpi_decoder dec;
    static int ready;
    if (!ready) {
        static const char *dims[N_DIMS] = {"region", "plan", "segment"};
        if (kpi_decoder_init(&dec, dims, N_DIMS, SKEW, MAX_STR, NULL, 0))
            abort();
        ready = 1;
    }
    struct kpi_event ev;
    enum kpi_bad_reason r = kpi_decode(&dec, data, size, NOW, &ev);
    if ((unsigned)r >= KPI_BAD__COUNT || r == KPI_BAD_TOO_LATE)
        abort();
    if ((size == 0) != (r == KPI_BAD_EMPTY))
        abort();
    if (r != KPI_BAD_NONE)
        return 0;
    if ((unsigned)ev.type >= KPI_EV__COUNT)
        abort();
    if (ev.ts_ms < 0 || ev.ts_ms > NOW + SKEW)
        abort();
    if (ev.amount_micros < 0 || (int64_t)ev.bytes < 0 || (int64_t)ev.seconds < 0)
        abort();
    if (ev.score > 10 || ev.survey >= KPI_SURVEY__COUNT)
        abort();
    if (!inside(&ev.reason, data, size))
        abort();
    for (int i = 0; i < N_DIMS; i++)
        if (!inside(&ev.dims[i], data, size))
            abort();
    return 0;
}
