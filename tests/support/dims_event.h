/* dims_event.h - events that carry only dimension values, for the tests of
 * dimensions, grouping sets and the tuple cache. */
#ifndef KPI_TEST_DIMS_EVENT_H
#define KPI_TEST_DIMS_EVENT_H

#include "engine/event.h"

/* An all-zero event whose dimensions 0, 1 and 2 are d0, d1 and d2 (a NULL
 * one is absent).  The strings are not copied. */
struct kpi_event kt_event_dims(const char *d0, const char *d1, const char *d2);

#endif
