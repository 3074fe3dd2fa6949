/*
 * A stand-in for <criterion/criterion.h>, used only when the concurrency tests
 * are built with ThreadSanitizer.
 *
 * Why: Criterion runs every test in a sandboxed child process whose shared
 * arena it maps at a fixed address, which collides with ThreadSanitizer's
 * shadow memory ("Could not initialize inheritable arena", Criterion issue
 * #274, open upstream).  This header offers the subset of Criterion's API our
 * tests use, runs the tests in-process one after another, and ends with the
 * plain "N passed, N failed" line.  The test sources are unchanged: CMake puts
 * this directory first on the include path for TSan builds only.
 */
#ifndef KPI_TSAN_SHIM_CRITERION_H
#define KPI_TSAN_SHIM_CRITERION_H

#include <math.h>
#include <setjmp.h>
#include <string.h>

typedef void (*kpi_shim_fn)(void);
void kpi_shim_register(const char *suite, const char *name, kpi_shim_fn fn);
/* fmt may be empty (no message): not declared printf-like for that reason. */
void kpi_shim_check(int ok, const char *expr, const char *file, int line, const char *fmt, ...);

#define Test(suite, name, ...)                                                                     \
    static void suite##_##name(void);                                                              \
    __attribute__((constructor)) static void suite##_##name##_reg(void)                            \
    {                                                                                              \
        kpi_shim_register(#suite, #name, suite##_##name);                                          \
    }                                                                                              \
    static void suite##_##name(void)

#define KPI_SHIM_CHECK(ok, expr, ...)                                                              \
    kpi_shim_check((ok), (expr), __FILE__, __LINE__, "" __VA_ARGS__)
#define cr_assert(c, ...)           KPI_SHIM_CHECK(!!(c), #c, __VA_ARGS__)
#define cr_assert_not(c, ...)       KPI_SHIM_CHECK(!(c), "!(" #c ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...)     KPI_SHIM_CHECK((a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...)    KPI_SHIM_CHECK((a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...)     KPI_SHIM_CHECK((a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...)    KPI_SHIM_CHECK((a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...)     KPI_SHIM_CHECK((a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...)    KPI_SHIM_CHECK((a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...)      KPI_SHIM_CHECK((p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...)  KPI_SHIM_CHECK((p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) KPI_SHIM_CHECK(strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...)                                                         \
    KPI_SHIM_CHECK(fabs((double)(a) - (double)(b)) <= (eps), #a " ~= " #b, __VA_ARGS__)

#endif
