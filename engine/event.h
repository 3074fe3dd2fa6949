/*
 * event.h - the decoded form of one subscriber event.
 *
 * The decoder (decode.h) fills a caller-owned struct kpi_event from one msgpack
 * message without allocating: strings are (pointer, length) references into the
 * message buffer, so an event is only valid while its message is.  The input
 * contract itself (keys, types, bad-input reasons) is documented in
 * docs/events.md.
 */
#ifndef KPI_EVENT_H
#define KPI_EVENT_H

#include <stdint.h>

#define KPI_MAX_DIMS        8   /* dimension fields an engine can be configured with */
#define KPI_MAX_STR_DEFAULT 128 /* default limit on any string value, in bytes */

enum kpi_event_type {
    KPI_EV_USAGE = 0,
    KPI_EV_ACTIVATION,
    KPI_EV_CHURN,
    KPI_EV_NPS,
    KPI_EV_BASE, /* a subscriber-base snapshot (docs/events.md): no sub, a count */
    KPI_EV__COUNT
};

enum kpi_survey {
    KPI_SURVEY_NETWORK = 0, /* the default, and the headline NPS */
    KPI_SURVEY_BRAND = 1,
    KPI_SURVEY__COUNT
};

/* A string inside the message buffer; not NUL-terminated.  ptr == NULL: absent. */
struct kpi_strref {
    const char *ptr;
    uint32_t len;
};

struct kpi_event {
    enum kpi_event_type type;
    int64_t ts_ms;                        /* event time, ms since the Unix epoch */
    uint64_t sub_hash;                    /* kpi_hll_hash() of the canonical subscriber id:
                                             its decimal digits for a uint, its bytes for a str */
    int64_t amount_micros;                /* usage: revenue in micro-units (0 when absent) */
    uint64_t bytes;                       /* usage: optional volume (0 when absent) */
    uint64_t seconds;                     /* usage: optional volume (0 when absent) */
    uint8_t score;                        /* nps: 0..10 */
    uint8_t survey;                       /* nps: enum kpi_survey */
    uint8_t has_provision_ms;             /* activation: provision_ms was sent */
    uint64_t provision_ms;                /* activation: time to provision, ms (0: absent) */
    uint64_t count;                       /* base: subscribers at ts (0 when absent) */
    struct kpi_strref reason;             /* churn: optional */
    struct kpi_strref dims[KPI_MAX_DIMS]; /* by configured dimension index;
                                             ptr == NULL when the key is absent */
};

/* Stable lower-case name of an event type ("usage", ...). */
const char *kpi_event_type_name(enum kpi_event_type t);

#endif
