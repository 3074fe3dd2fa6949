/* text.h - small text helpers the tests share when they read what a program
 * or module wrote (logs, outputs). */
#ifndef KPI_TEST_TEXT_H
#define KPI_TEST_TEXT_H

/* How many times needle occurs in hay, without overlaps. */
int kt_count_of(const char *hay, const char *needle);

/* The first of the needles (a NULL-terminated list) that hay does not
 * contain, or NULL when it contains them all. */
const char *kt_first_missing(const char *hay, ...);

/* In a Criterion test: hay contains every needle given; a failure names the
 * first missing one and prints hay. */
#define KT_ASSERT_CONTAINS(hay, ...)                                                               \
    do {                                                                                           \
        const char *missing_ = kt_first_missing(hay, __VA_ARGS__, (const char *)NULL);             \
        cr_assert_null(missing_, "no %s in %s", missing_ ? missing_ : "", hay);                    \
    } while (0)

#endif
