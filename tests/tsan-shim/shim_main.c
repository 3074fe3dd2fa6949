/* The runner behind tests/tsan-shim/criterion/criterion.h (see there for why). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "criterion/criterion.h"

#define MAX_TESTS 256

static struct {
    const char *suite, *name;
    kpi_shim_fn fn;
} tests[MAX_TESTS];
static int n_tests;
static jmp_buf on_failure;
static pthread_t runner;

void kpi_shim_register(const char *suite, const char *name, kpi_shim_fn fn)
{
    if (n_tests < MAX_TESTS) {
        tests[n_tests].suite = suite;
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

void kpi_shim_check(int ok, const char *expr, const char *file, int line, const char *fmt, ...)
{
    if (ok)
        return;
    fprintf(stderr, "%s:%d: assertion failed: %s", file, line, expr);
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    if (pthread_equal(pthread_self(), runner))
        longjmp(on_failure, 1);
    abort(); /* a failure in a helper thread ends the run */
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 && strncmp(argv[1], "--", 2) ? argv[1] : NULL;
    volatile int passed = 0, failed = 0;
    runner = pthread_self();
    for (volatile int i = 0; i < n_tests; i++) {
        if (only && !strstr(tests[i].name, only))
            continue;
        if (setjmp(on_failure) == 0) {
            tests[i].fn();
            passed++;
            fprintf(stderr, "[PASS] %s::%s\n", tests[i].suite, tests[i].name);
        } else {
            failed++;
            fprintf(stderr, "[FAIL] %s::%s\n", tests[i].suite, tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
