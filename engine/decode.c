/*
 * decode.c - the strict event decoder (see decode.h and docs/events.md).
 *
 * A hand-written msgpack walker: one pass over the bytes, a switch on each
 * value's first byte, keys matched by length and then bytes, no allocation,
 * no read past `len`.  Known keys are validated whenever present; unknown
 * keys' values are skipped whatever they are (nested up to MAX_DEPTH).  The
 * first problem met in the walk decides the reason; the presence checks
 * (type, ts, sub, nps score) and the clock-skew check come after the walk.
 * Every count read from the message is checked against the bytes left
 * before it is trusted, so a lying header costs O(1), not a long loop.
 */
#include "decode.h"

#include <math.h>
#include <string.h>

#include "err.h"
#include "hash.h"

#define MAX_DEPTH 32
#define HLL_SEED  0xadc83b19ULL /* Redis's HyperLogLog hash seed (hll.h) */

static const char *const reason_names[KPI_BAD__COUNT] = {
    [KPI_BAD_NONE] = "none",
    [KPI_BAD_EMPTY] = "empty",
    [KPI_BAD_NOT_MAP] = "not_map",
    [KPI_BAD_TRUNCATED] = "truncated",
    [KPI_BAD_MALFORMED] = "malformed",
    [KPI_BAD_TRAILING_BYTES] = "trailing_bytes",
    [KPI_BAD_KEY_NOT_STRING] = "key_not_string",
    [KPI_BAD_DUPLICATE_KEY] = "duplicate_key",
    [KPI_BAD_TOO_DEEP] = "too_deep",
    [KPI_BAD_NESTED_VALUE] = "nested_value",
    [KPI_BAD_OVERSIZED_STRING] = "oversized_string",
    [KPI_BAD_MISSING_TYPE] = "missing_type",
    [KPI_BAD_TYPE_NOT_STRING] = "type_not_string",
    [KPI_BAD_UNKNOWN_TYPE] = "unknown_type",
    [KPI_BAD_MISSING_TS] = "missing_ts",
    [KPI_BAD_TS_NOT_UINT] = "ts_not_uint",
    [KPI_BAD_TS_IN_FUTURE] = "ts_in_future",
    [KPI_BAD_MISSING_SUB] = "missing_sub",
    [KPI_BAD_SUB_WRONG_TYPE] = "sub_wrong_type",
    [KPI_BAD_DIM_NOT_STRING] = "dim_not_string",
    [KPI_BAD_AMOUNT_NOT_NUMBER] = "amount_not_number",
    [KPI_BAD_AMOUNT_NEGATIVE] = "amount_negative",
    [KPI_BAD_AMOUNT_NOT_FINITE] = "amount_not_finite",
    [KPI_BAD_AMOUNT_OUT_OF_RANGE] = "amount_out_of_range",
    [KPI_BAD_VOLUME_NOT_UINT] = "volume_not_uint",
    [KPI_BAD_MISSING_SCORE] = "missing_score",
    [KPI_BAD_SCORE_NOT_UINT] = "score_not_uint",
    [KPI_BAD_SCORE_OUT_OF_RANGE] = "score_out_of_range",
    [KPI_BAD_SURVEY_NOT_STRING] = "survey_not_string",
    [KPI_BAD_UNKNOWN_SURVEY] = "unknown_survey",
    [KPI_BAD_REASON_NOT_STRING] = "reason_not_string",
    [KPI_BAD_TOO_LATE] = "too_late",
};

const char *kpi_bad_reason_name(enum kpi_bad_reason r)
{
    return (unsigned)r < KPI_BAD__COUNT && reason_names[r] ? reason_names[r] : "unknown";
}

/* The keys the contract knows; dimension keys come from the configuration. */
static const char *const reserved[] = {"type",    "ts",    "sub",    "amount", "bytes",
                                       "seconds", "score", "survey", "reason"};

int kpi_decoder_init(struct kpi_decoder *d, const char *const *dim_names, int n_dims,
                     int64_t max_skew_ms, uint32_t max_str_len, char *errstr, size_t errsz)
{
    memset(d, 0, sizeof(*d));
    if (n_dims < 0 || n_dims > KPI_MAX_DIMS)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "at most %d dimensions", KPI_MAX_DIMS);
    if (max_skew_ms < 0 || max_str_len == 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "bad decoder limits");
    for (int i = 0; i < n_dims; i++) {
        const char *name = dim_names[i];
        if (!name || !*name)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "dimension %d has no name", i);
        for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
            if (strcmp(name, reserved[k]) == 0)
                return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                                  "dimension '%s' is a reserved event key", name);
        for (int j = 0; j < i; j++)
            if (strcmp(name, dim_names[j]) == 0)
                return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "dimension '%s' is listed twice",
                                  name);
        d->dim_names[i] = name;
        d->dim_name_lens[i] = (uint32_t)strlen(name);
    }
    d->n_dims = n_dims;
    d->max_skew_ms = max_skew_ms;
    d->max_str_len = max_str_len;
    return 0;
}

/* ---- reading msgpack ---- */

struct rd {
    const uint8_t *p, *end;
};

enum vkind { V_UINT, V_NINT, V_FLOAT, V_STR, V_BIN, V_NIL, V_BOOL, V_MAP, V_ARRAY, V_EXT };

struct val {
    enum vkind k;
    uint64_t u;    /* V_UINT */
    int64_t i;     /* V_NINT */
    double f;      /* V_FLOAT */
    const char *s; /* V_STR */
    uint32_t len;  /* V_STR length; V_MAP / V_ARRAY element count */
};

static inline uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static inline int need(const struct rd *r, size_t n)
{
    return (size_t)(r->end - r->p) >= n;
}

/* Read one value's header (and its payload for scalars and strings).  For a
 * map or array only the header is consumed: v->len elements follow. */
static enum kpi_bad_reason read_val(struct rd *r, struct val *v)
{
    if (!need(r, 1))
        return KPI_BAD_TRUNCATED;
    uint8_t b = *r->p++;
    size_t n = 0; /* payload bytes to take for str/bin/ext */
    if (b <= 0x7f) {
        v->k = V_UINT;
        v->u = b;
        return KPI_BAD_NONE;
    }
    if (b >= 0xe0) {
        v->k = V_NINT;
        v->i = (int8_t)b;
        return KPI_BAD_NONE;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        v->k = V_STR;
        n = b & 0x1f;
        goto str;
    }
    if (b >= 0x80 && b <= 0x8f) {
        v->k = V_MAP;
        v->len = b & 0x0f;
        return KPI_BAD_NONE;
    }
    if (b >= 0x90 && b <= 0x9f) {
        v->k = V_ARRAY;
        v->len = b & 0x0f;
        return KPI_BAD_NONE;
    }
    switch (b) {
    case 0xc0: v->k = V_NIL; return KPI_BAD_NONE;
    case 0xc1: return KPI_BAD_MALFORMED;
    case 0xc2:
    case 0xc3:
        v->k = V_BOOL;
        v->u = b & 1;
        return KPI_BAD_NONE;
    case 0xc4:
    case 0xc5:
    case 0xc6: {
        int w = 1 << (b - 0xc4);
        if (!need(r, (size_t)w))
            return KPI_BAD_TRUNCATED;
        n = be(r->p, w);
        r->p += w;
        v->k = V_BIN;
        goto take;
    }
    case 0xc7:
    case 0xc8:
    case 0xc9: {
        int w = 1 << (b - 0xc7);
        if (!need(r, (size_t)w + 1))
            return KPI_BAD_TRUNCATED;
        n = be(r->p, w) + 1; /* + the type byte */
        r->p += w;
        v->k = V_EXT;
        goto take;
    }
    case 0xca:
        if (!need(r, 4))
            return KPI_BAD_TRUNCATED;
        {
            uint32_t x = (uint32_t)be(r->p, 4);
            float f;
            memcpy(&f, &x, 4);
            v->f = f;
        }
        r->p += 4;
        v->k = V_FLOAT;
        return KPI_BAD_NONE;
    case 0xcb:
        if (!need(r, 8))
            return KPI_BAD_TRUNCATED;
        {
            uint64_t x = be(r->p, 8);
            memcpy(&v->f, &x, 8);
        }
        r->p += 8;
        v->k = V_FLOAT;
        return KPI_BAD_NONE;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        int w = 1 << (b - 0xcc);
        if (!need(r, (size_t)w))
            return KPI_BAD_TRUNCATED;
        v->u = be(r->p, w);
        r->p += w;
        v->k = V_UINT;
        return KPI_BAD_NONE;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        int w = 1 << (b - 0xd0);
        if (!need(r, (size_t)w))
            return KPI_BAD_TRUNCATED;
        uint64_t x = be(r->p, w);
        r->p += w;
        /* sign-extend a w-byte two's complement value */
        int64_t s = w == 8 ? (int64_t)x : (int64_t)(x << (64 - 8 * w)) >> (64 - 8 * w);
        if (s >= 0) {
            v->k = V_UINT; /* msgpack allows non-negative values in int types */
            v->u = (uint64_t)s;
        } else {
            v->k = V_NINT;
            v->i = s;
        }
        return KPI_BAD_NONE;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        n = (size_t)(1u << (b - 0xd4)) + 1;
        v->k = V_EXT;
        goto take;
    case 0xd9:
    case 0xda:
    case 0xdb: {
        int w = 1 << (b - 0xd9);
        if (!need(r, (size_t)w))
            return KPI_BAD_TRUNCATED;
        n = be(r->p, w);
        r->p += w;
        v->k = V_STR;
        goto str;
    }
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf: {
        int w = b == 0xdc || b == 0xde ? 2 : 4;
        if (!need(r, (size_t)w))
            return KPI_BAD_TRUNCATED;
        v->len = (uint32_t)be(r->p, w);
        r->p += w;
        v->k = b <= 0xdd ? V_ARRAY : V_MAP;
        return KPI_BAD_NONE;
    }
    }
    return KPI_BAD_MALFORMED; /* not reached: every byte is covered above */
str:
    if (!need(r, n))
        return KPI_BAD_TRUNCATED;
    v->s = (const char *)r->p;
    v->len = (uint32_t)n;
    r->p += n;
    return KPI_BAD_NONE;
take:
    if (!need(r, n))
        return KPI_BAD_TRUNCATED;
    r->p += n;
    return KPI_BAD_NONE;
}

/* Elements a container header promises, checked against the bytes left
 * (every element takes at least one byte). */
static enum kpi_bad_reason check_count(const struct rd *r, const struct val *v)
{
    uint64_t elems = v->k == V_MAP ? 2ull * v->len : v->len;
    return elems > (uint64_t)(r->end - r->p) ? KPI_BAD_TRUNCATED : KPI_BAD_NONE;
}

/* Skip the contents of a value whose header was just read. */
static enum kpi_bad_reason skip_contents(struct rd *r, const struct val *v, int depth)
{
    if (v->k != V_MAP && v->k != V_ARRAY)
        return KPI_BAD_NONE;
    if (depth >= MAX_DEPTH)
        return KPI_BAD_TOO_DEEP;
    enum kpi_bad_reason e = check_count(r, v);
    if (e)
        return e;
    uint64_t elems = v->k == V_MAP ? 2ull * v->len : v->len;
    for (uint64_t i = 0; i < elems; i++) {
        struct val x;
        if ((e = read_val(r, &x)) || (e = skip_contents(r, &x, depth + 1)))
            return e;
    }
    return KPI_BAD_NONE;
}

/* ---- the event contract ---- */

enum key {
    K_TYPE,
    K_TS,
    K_SUB,
    K_AMOUNT,
    K_BYTES,
    K_SECONDS,
    K_SCORE,
    K_SURVEY,
    K_REASON,
    K_DIM0, /* K_DIM0 + i: dimension i */
    K_UNKNOWN = 63
};

static inline int key_is(const struct val *k, const char *s, uint32_t n)
{
    return k->len == n && memcmp(k->s, s, n) == 0;
}

static int match_key(const struct kpi_decoder *d, const struct val *k)
{
    switch (k->len) {
    case 2:
        if (key_is(k, "ts", 2))
            return K_TS;
        break;
    case 3:
        if (key_is(k, "sub", 3))
            return K_SUB;
        break;
    case 4:
        if (key_is(k, "type", 4))
            return K_TYPE;
        break;
    case 5:
        if (key_is(k, "score", 5))
            return K_SCORE;
        if (key_is(k, "bytes", 5))
            return K_BYTES;
        break;
    case 6:
        if (key_is(k, "amount", 6))
            return K_AMOUNT;
        if (key_is(k, "survey", 6))
            return K_SURVEY;
        if (key_is(k, "reason", 6))
            return K_REASON;
        break;
    case 7:
        if (key_is(k, "seconds", 7))
            return K_SECONDS;
        break;
    }
    for (int i = 0; i < d->n_dims; i++)
        if (k->len == d->dim_name_lens[i] && memcmp(k->s, d->dim_names[i], k->len) == 0)
            return K_DIM0 + i;
    return K_UNKNOWN;
}

/* Decimal digits of u into buf (at least 20 bytes); returns the length. */
static uint32_t utoa(uint64_t u, char *buf)
{
    char tmp[20];
    uint32_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    for (uint32_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static enum kpi_bad_reason check_str(const struct kpi_decoder *d, const struct val *v,
                                     enum kpi_bad_reason wrong_type)
{
    if (v->k != V_STR)
        return wrong_type;
    return v->len > d->max_str_len ? KPI_BAD_OVERSIZED_STRING : KPI_BAD_NONE;
}

static enum kpi_bad_reason take(const struct kpi_decoder *d, int key, const struct val *v,
                                struct kpi_event *ev)
{
    enum kpi_bad_reason e;
    if (v->k == V_MAP || v->k == V_ARRAY)
        return KPI_BAD_NESTED_VALUE;
    switch (key) {
    case K_TYPE:
        if ((e = check_str(d, v, KPI_BAD_TYPE_NOT_STRING)))
            return e;
        if (v->len == 5 && !memcmp(v->s, "usage", 5))
            ev->type = KPI_EV_USAGE;
        else if (v->len == 10 && !memcmp(v->s, "activation", 10))
            ev->type = KPI_EV_ACTIVATION;
        else if (v->len == 5 && !memcmp(v->s, "churn", 5))
            ev->type = KPI_EV_CHURN;
        else if (v->len == 3 && !memcmp(v->s, "nps", 3))
            ev->type = KPI_EV_NPS;
        else
            return KPI_BAD_UNKNOWN_TYPE;
        return KPI_BAD_NONE;
    case K_TS:
        if (v->k != V_UINT)
            return KPI_BAD_TS_NOT_UINT;
        if (v->u > (uint64_t)INT64_MAX)
            return KPI_BAD_TS_IN_FUTURE;
        ev->ts_ms = (int64_t)v->u;
        return KPI_BAD_NONE;
    case K_SUB:
        if (v->k == V_UINT) {
            char digits[20];
            uint32_t n = utoa(v->u, digits);
            ev->sub_hash = kpi_murmur64a(digits, n, HLL_SEED);
            return KPI_BAD_NONE;
        }
        if (v->k != V_STR || v->len == 0)
            return KPI_BAD_SUB_WRONG_TYPE;
        if (v->len > d->max_str_len)
            return KPI_BAD_OVERSIZED_STRING;
        ev->sub_hash = kpi_murmur64a(v->s, v->len, HLL_SEED);
        return KPI_BAD_NONE;
    case K_AMOUNT:
        if (v->k == V_UINT) {
            if (v->u > (uint64_t)INT64_MAX)
                return KPI_BAD_AMOUNT_OUT_OF_RANGE;
            ev->amount_micros = (int64_t)v->u;
            return KPI_BAD_NONE;
        }
        if (v->k == V_NINT)
            return KPI_BAD_AMOUNT_NEGATIVE;
        if (v->k != V_FLOAT)
            return KPI_BAD_AMOUNT_NOT_NUMBER;
        if (!isfinite(v->f))
            return KPI_BAD_AMOUNT_NOT_FINITE;
        if (v->f < 0)
            return KPI_BAD_AMOUNT_NEGATIVE; /* -0.0 is not < 0: it is 0 */
        if (v->f * 1e6 >= 9.2e18)
            return KPI_BAD_AMOUNT_OUT_OF_RANGE;
        ev->amount_micros = llround(v->f * 1e6);
        return KPI_BAD_NONE;
    case K_BYTES:
    case K_SECONDS:
        if (v->k != V_UINT || v->u > (uint64_t)INT64_MAX)
            return KPI_BAD_VOLUME_NOT_UINT;
        if (key == K_BYTES)
            ev->bytes = v->u;
        else
            ev->seconds = v->u;
        return KPI_BAD_NONE;
    case K_SCORE:
        if (v->k == V_NINT || (v->k == V_UINT && v->u > 10))
            return KPI_BAD_SCORE_OUT_OF_RANGE;
        if (v->k != V_UINT)
            return KPI_BAD_SCORE_NOT_UINT;
        ev->score = (uint8_t)v->u;
        return KPI_BAD_NONE;
    case K_SURVEY:
        if ((e = check_str(d, v, KPI_BAD_SURVEY_NOT_STRING)))
            return e;
        if (v->len == 7 && !memcmp(v->s, "network", 7))
            ev->survey = KPI_SURVEY_NETWORK;
        else if (v->len == 5 && !memcmp(v->s, "brand", 5))
            ev->survey = KPI_SURVEY_BRAND;
        else
            return KPI_BAD_UNKNOWN_SURVEY;
        return KPI_BAD_NONE;
    case K_REASON:
        if (v->k == V_NIL)
            return KPI_BAD_NONE;
        if ((e = check_str(d, v, KPI_BAD_REASON_NOT_STRING)))
            return e;
        ev->reason.ptr = v->s;
        ev->reason.len = v->len;
        return KPI_BAD_NONE;
    default: /* a dimension */
        if (v->k == V_NIL)
            return KPI_BAD_NONE; /* nil: the dimension is absent (__none__) */
        if ((e = check_str(d, v, KPI_BAD_DIM_NOT_STRING)))
            return e;
        ev->dims[key - K_DIM0].ptr = v->s;
        ev->dims[key - K_DIM0].len = v->len;
        return KPI_BAD_NONE;
    }
}

enum kpi_bad_reason kpi_decode(const struct kpi_decoder *d, const void *msg, size_t len,
                               int64_t now_ms, struct kpi_event *ev)
{
    if (len == 0)
        return KPI_BAD_EMPTY;
    struct rd r = {msg, (const uint8_t *)msg + len};
    struct val top;
    enum kpi_bad_reason e = read_val(&r, &top);
    if (e)
        return e;
    if (top.k != V_MAP)
        return KPI_BAD_NOT_MAP;
    if ((e = check_count(&r, &top)))
        return e;

    ev->type = KPI_EV__COUNT;
    ev->amount_micros = 0;
    ev->bytes = ev->seconds = 0;
    ev->score = 0;
    ev->survey = KPI_SURVEY_NETWORK;
    ev->reason.ptr = NULL;
    ev->reason.len = 0;
    for (int i = 0; i < d->n_dims; i++)
        ev->dims[i].ptr = NULL, ev->dims[i].len = 0;
    uint64_t seen = 0;

    for (uint32_t i = 0; i < top.len; i++) {
        struct val k, v;
        if ((e = read_val(&r, &k)))
            return e;
        if (k.k != V_STR) {
            /* still report truncation or malformation of the rest first? no:
             * the key is what is wrong here. */
            return KPI_BAD_KEY_NOT_STRING;
        }
        int key = match_key(d, &k);
        if ((e = read_val(&r, &v)))
            return e;
        if (key == K_UNKNOWN) {
            if ((e = skip_contents(&r, &v, 1)))
                return e;
            continue;
        }
        if (seen & (1ull << key))
            return KPI_BAD_DUPLICATE_KEY;
        seen |= 1ull << key;
        if ((e = take(d, key, &v, ev)))
            return e;
    }
    if (r.p != r.end)
        return KPI_BAD_TRAILING_BYTES;
    if (!(seen & 1ull << K_TYPE))
        return KPI_BAD_MISSING_TYPE;
    if (!(seen & 1ull << K_TS))
        return KPI_BAD_MISSING_TS;
    if (!(seen & 1ull << K_SUB))
        return KPI_BAD_MISSING_SUB;
    if (ev->type == KPI_EV_NPS && !(seen & 1ull << K_SCORE))
        return KPI_BAD_MISSING_SCORE;
    if (ev->ts_ms > now_ms + d->max_skew_ms)
        return KPI_BAD_TS_IN_FUTURE;
    return KPI_BAD_NONE;
}
