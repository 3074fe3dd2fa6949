/* text.h - small text helpers the tests share when they read what a program
 * or module wrote (logs, outputs). */
#ifndef KPI_TEST_TEXT_H
#define KPI_TEST_TEXT_H

/* How many times needle occurs in hay, without overlaps. */
int kt_count_of(const char *hay, const char *needle);

#endif
