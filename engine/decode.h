/*
 * decode.h - strict, allocation-free decoder of the event contract.
 *
 * One msgpack map per message (docs/events.md).  The decoder walks the bytes
 * itself instead of building a msgpack-c object tree: it never allocates,
 * never reads past `len`, and classifies every way a message can be bad with
 * its own reason code.  Reason names are stable: they appear in dead-letter
 * headers and in metrics.
 */
#ifndef KPI_DECODE_H
#define KPI_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"

/* Deepest nesting of maps/arrays the decoder follows under an unknown key,
 * counting the top-level map as level 1. */
#define KPI_DECODE_MAX_DEPTH 32
/* The largest amount (micro-units), bytes, seconds or provision_ms one event may carry:
 * 2^53, about 9 x 10^9 currency units, 9 PB, 285 million years.  Bounding
 * inputs is what keeps sums exact where they are doubles (Redis's Lua) and
 * far from int64's limit everywhere else (kpi_sat_add, docs/events.md). */
#define KPI_MAX_QUANTITY (1ULL << 53)

enum kpi_bad_reason {
    KPI_BAD_NONE = 0,
    KPI_BAD_EMPTY,            /* zero-length message */
    KPI_BAD_NOT_MAP,          /* top-level value is not a map */
    KPI_BAD_TRUNCATED,        /* message ends inside a value, or a map/array header
                                 promises more elements than bytes are left */
    KPI_BAD_MALFORMED,        /* invalid msgpack (reserved byte 0xc1, ...) */
    KPI_BAD_TRAILING_BYTES,   /* bytes after the top-level map */
    KPI_BAD_KEY_NOT_STRING,   /* a map key is not a string */
    KPI_BAD_DUPLICATE_KEY,    /* a known key appears twice */
    KPI_BAD_TOO_DEEP,         /* an unknown key's value nests maps/arrays beyond
                                 KPI_DECODE_MAX_DEPTH levels */
    KPI_BAD_NESTED_VALUE,     /* map/array where a known key needs a scalar or str */
    KPI_BAD_OVERSIZED_STRING, /* a str value of a known key (type, sub, dims, survey,
                                 reason) longer than max_str_len */
    KPI_BAD_MISSING_TYPE,
    KPI_BAD_TYPE_NOT_STRING, /* not a str (bin, nil, ext, a number...) */
    KPI_BAD_UNKNOWN_TYPE,    /* not usage, activation, churn, nps or base */
    KPI_BAD_MISSING_TS,
    KPI_BAD_TS_NOT_UINT,  /* a negative int, float, str, ... */
    KPI_BAD_TS_IN_FUTURE, /* ts > now_ms + max_skew_ms (checked last) */
    KPI_BAD_MISSING_SUB,
    KPI_BAD_SUB_WRONG_TYPE,      /* not a uint or str (a negative int...), or an empty str */
    KPI_BAD_DIM_NOT_STRING,      /* a configured dimension key's value is not a str */
    KPI_BAD_AMOUNT_NOT_NUMBER,   /* not an int or float (str, nil, ext...) */
    KPI_BAD_AMOUNT_NEGATIVE,     /* a negative int, or a float < 0 (-0.0 is 0) */
    KPI_BAD_AMOUNT_NOT_FINITE,   /* NaN or infinity */
    KPI_BAD_AMOUNT_OUT_OF_RANGE, /* above KPI_MAX_QUANTITY micro-units */
    KPI_BAD_VOLUME_NOT_UINT,     /* bytes / seconds / provision_ms: not a uint */
    KPI_BAD_VOLUME_OUT_OF_RANGE, /* bytes / seconds / provision_ms: above KPI_MAX_QUANTITY */
    KPI_BAD_MISSING_SCORE,       /* nps without score */
    KPI_BAD_SCORE_NOT_UINT,      /* a negative int, float, str, ... */
    KPI_BAD_SCORE_OUT_OF_RANGE,  /* a uint above 10 */
    KPI_BAD_SURVEY_NOT_STRING,
    KPI_BAD_UNKNOWN_SURVEY, /* not "network" or "brand" */
    KPI_BAD_REASON_NOT_STRING,
    KPI_BAD_MISSING_COUNT,      /* base without count */
    KPI_BAD_COUNT_NOT_UINT,     /* count: a negative int, float, str, ... */
    KPI_BAD_COUNT_OUT_OF_RANGE, /* count: above KPI_MAX_QUANTITY */
    KPI_BAD_TOO_LATE,           /* not a decoder reason: the watermark passed
                                   the event's bucket (window.h) */
    KPI_BAD__COUNT
};

/* Stable snake_case name ("not_map", "score_out_of_range", "too_late", ...). */
const char *kpi_bad_reason_name(enum kpi_bad_reason r);

struct kpi_decoder {
    int n_dims;
    const char *dim_names[KPI_MAX_DIMS]; /* not owned; must outlive the decoder */
    uint32_t dim_name_lens[KPI_MAX_DIMS];
    int64_t max_skew_ms;  /* ts may be at most now + max_skew_ms */
    uint32_t max_str_len; /* longest accepted string value, in bytes */
};

/* Configure a decoder.  dim_names: the keys that are dimensions, in dimension
 * index order (event.dims[i] holds dim_names[i]'s value).  0 or KPI_ERR_INVAL
 * (too many dims, an empty name, a dim named like a reserved key, duplicate
 * names; errstr names the offending dimension).  dim_name_lens is computed
 * here, so the per-event path never calls strlen. */
int kpi_decoder_init(struct kpi_decoder *d, const char *const *dim_names, int n_dims,
                     int64_t max_skew_ms, uint32_t max_str_len, char *errstr, size_t errstr_size);

/* Decode one message.  now_ms is the wall clock used for the skew check.
 * Returns KPI_BAD_NONE and fills *ev, or the reason the message is bad (then
 * *ev is unspecified).  Thread-safe: the decoder is read-only. */
enum kpi_bad_reason kpi_decode(const struct kpi_decoder *d, const void *msg, size_t len,
                               int64_t now_ms, struct kpi_event *ev);

#endif
