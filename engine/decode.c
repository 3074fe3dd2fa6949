/*
 * decode.c - the strict event decoder (see decode.h and docs/events.md).
 *
 * This is the per-event hot path, so it is a hand-written msgpack walker
 * rather than msgpack-c's unpacker: one pass over the bytes, no object tree,
 * no allocation, no strlen, and nothing read past `len`.
 *
 *   message  = map                       fixmap 0x80-0x8f, map16 0xde, map32 0xdf
 *   map      = N x (key value)           keys must be strings (fixstr/str8/16/32)
 *   key      = known key                 type ts sub amount bytes seconds score
 *                                        survey reason provision_ms count, or a configured
 *                                        dimension
 *            | unknown key               value skipped whatever it is; containers
 *                                        nested at most MAX_DEPTH levels, counting
 *                                        the top-level map as level 1
 *
 * Each value is read by read_val(): a switch on its first byte that consumes
 * the whole value for scalars, strings, bin and ext, and only the header for
 * maps and arrays (their elements follow).  Strings are returned as pointers
 * into the message.  Every length or element count read from the message is
 * checked against the bytes left before it is trusted: a str32 or map32
 * header that claims more than the message holds is TRUNCATED at once (an
 * element takes at least one byte, so a map of N pairs needs 2N bytes), and
 * every step of the skip loop consumes at least one byte, so skipping is
 * O(len) whatever the headers claim.
 *
 * Keys are matched by length first (a switch), then by bytes; the dimension
 * names come from the decoder's table.  A bit per known key catches
 * duplicates.  Known keys are validated when they are met, whatever the event
 * type, so the first problem in byte order decides the reason; after the walk
 * come trailing bytes, the presence checks (type, ts, sub except for base, score
 * for nps, count for base) and
 * last the clock-skew check, which is the only one that depends on the wall
 * clock.
 *
 * The subscriber id is hashed with Redis's HyperLogLog hash (kpi_hll_hash).
 * A uint id is first written as its decimal digits, so `sub: 42` and
 * `sub: "42"` are the same subscriber, and `PFADD key 42` in Redis agrees.
 */
#include "engine/decode.h"

#include <math.h>
#include <string.h>

#include "base/digits.h"
#include "engine/err.h"
#include "engine/hll.h"

#define MAX_DEPTH KPI_DECODE_MAX_DEPTH

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
    [KPI_BAD_VOLUME_OUT_OF_RANGE] = "volume_out_of_range",
    [KPI_BAD_MISSING_SCORE] = "missing_score",
    [KPI_BAD_SCORE_NOT_UINT] = "score_not_uint",
    [KPI_BAD_SCORE_OUT_OF_RANGE] = "score_out_of_range",
    [KPI_BAD_SURVEY_NOT_STRING] = "survey_not_string",
    [KPI_BAD_UNKNOWN_SURVEY] = "unknown_survey",
    [KPI_BAD_REASON_NOT_STRING] = "reason_not_string",
    [KPI_BAD_MISSING_COUNT] = "missing_count",
    [KPI_BAD_COUNT_NOT_UINT] = "count_not_uint",
    [KPI_BAD_COUNT_OUT_OF_RANGE] = "count_out_of_range",
    [KPI_BAD_TOO_LATE] = "too_late",
};

const char *kpi_bad_reason_name(enum kpi_bad_reason r)
{
    return (unsigned)r < KPI_BAD__COUNT && reason_names[r] ? reason_names[r] : "unknown";
}

/* The keys the contract knows; dimension keys come from the configuration. */
static const char *const reserved[] = {"type",   "ts",           "sub",   "amount",
                                       "bytes",  "seconds",      "score", "survey",
                                       "reason", "provision_ms", "count"};

int kpi_decoder_init(struct kpi_decoder *d, const char *const *dim_names, int n_dims,
                     int64_t max_skew_ms, uint32_t max_str_len, char *errstr, size_t errsz)
{
    memset(d, 0, sizeof(*d));
    if (n_dims < 0 || n_dims > KPI_MAX_DIMS)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%d dimensions: at most %d are supported",
                          n_dims, KPI_MAX_DIMS);
    if (n_dims > 0 && !dim_names)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "%d dimensions but no names", n_dims);
    if (max_skew_ms < 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "max_skew_ms %lld: must be >= 0",
                          (long long)max_skew_ms);
    if (max_str_len == 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "max_str_len 0: must be >= 1");
    for (int i = 0; i < n_dims; i++) {
        const char *name = dim_names[i];
        if (!name || !*name)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "dimension %d has an empty name", i);
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
    uint32_t len;  /* V_STR: bytes; V_MAP: pairs; V_ARRAY: elements */
    uint64_t u;    /* V_UINT (any integer encoding holding a value >= 0) */
    double f;      /* V_FLOAT (float32 widened exactly) */
    const char *s; /* V_STR */
};

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static inline size_t left(const struct rd *r)
{
    return (size_t)(r->end - r->p);
}

/* Take the n-byte payload of a str, bin or ext whose header was just read
 * (checked against the bytes left: n comes from the message). */
static inline enum kpi_bad_reason payload(struct rd *r, struct val *v, size_t n)
{
    if (left(r) < n)
        return KPI_BAD_TRUNCATED;
    v->s = (const char *)r->p;
    v->len = (uint32_t)n;
    r->p += n;
    return KPI_BAD_NONE;
}

/* The w-byte (1, 2, 4 or 8) big-endian unsigned integer at p. */
static inline uint64_t be_n(const uint8_t *p, unsigned w)
{
    return w == 1 ? p[0] : w == 2 ? be16(p) : w == 4 ? be32(p) : be64(p);
}

/* A str, bin or ext of kind k whose header goes on with a w-byte length and
 * `type` more bytes (ext's type byte), then the payload. */
static inline enum kpi_bad_reason sized(struct rd *r, struct val *v, enum vkind k, unsigned w,
                                        unsigned type)
{
    if (left(r) < w + type)
        return KPI_BAD_TRUNCATED;
    v->k = k;
    size_t n = (size_t)be_n(r->p, w);
    r->p += w + type;
    return payload(r, v, n);
}

/* A uint, or the element count of an array or map (k), held in the next w
 * bytes. */
static inline enum kpi_bad_reason counted(struct rd *r, struct val *v, enum vkind k, unsigned w)
{
    if (left(r) < w)
        return KPI_BAD_TRUNCATED;
    v->k = k;
    if (k == V_UINT)
        v->u = be_n(r->p, w);
    else
        v->len = (uint32_t)be_n(r->p, w);
    r->p += w;
    return KPI_BAD_NONE;
}

/* Everything but positive fixint and fixstr (read_val's fast path).  r->p is
 * past the first byte b.  The 8-, 16- and 32-bit forms of a type share a
 * case; b's low bits give the width. */
static enum kpi_bad_reason read_val_slow(struct rd *r, struct val *v, uint8_t b)
{
    if (b >= 0xe0) { /* negative fixint */
        v->k = V_NINT;
        return KPI_BAD_NONE;
    }
    if (b <= 0x8f) {
        v->k = V_MAP;
        v->len = b & 0x0f;
        return KPI_BAD_NONE;
    }
    if (b <= 0x9f) {
        v->k = V_ARRAY;
        v->len = b & 0x0f;
        return KPI_BAD_NONE;
    }
    size_t n = left(r);
    switch (b) {
    case 0xc0: v->k = V_NIL; return KPI_BAD_NONE;
    case 0xc1: return KPI_BAD_MALFORMED; /* "never used" in the msgpack spec */
    case 0xc2:
    case 0xc3: v->k = V_BOOL; return KPI_BAD_NONE;
    case 0xc4:
    case 0xc5:
    case 0xc6: /* bin 8/16/32: skipped like a string, but not one */
        return sized(r, v, V_BIN, 1u << (b - 0xc4), 0);
    case 0xc7:
    case 0xc8:
    case 0xc9: /* ext 8/16/32: length, type byte, data */
        return sized(r, v, V_EXT, 1u << (b - 0xc7), 1);
    case 0xca: { /* float32 */
        if (n < 4)
            return KPI_BAD_TRUNCATED;
        uint32_t x = be32(r->p);
        float f;
        memcpy(&f, &x, sizeof(f));
        v->k = V_FLOAT;
        v->f = f;
        r->p += 4;
        return KPI_BAD_NONE;
    }
    case 0xcb: { /* float64 */
        if (n < 8)
            return KPI_BAD_TRUNCATED;
        uint64_t x = be64(r->p);
        memcpy(&v->f, &x, sizeof(v->f));
        v->k = V_FLOAT;
        r->p += 8;
        return KPI_BAD_NONE;
    }
    case 0xcc: /* uint 8/16/32/64 */
    case 0xcd:
    case 0xce:
    case 0xcf: return counted(r, v, V_UINT, 1u << (b - 0xcc));
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: { /* int 8/16/32/64: a producer may use them for values >= 0 too */
        unsigned w = 1u << (b - 0xd0);
        if (n < w)
            return KPI_BAD_TRUNCATED;
        int64_t s = w == 1   ? (int8_t)r->p[0]
                    : w == 2 ? (int16_t)be16(r->p)
                    : w == 4 ? (int32_t)be32(r->p)
                             : (int64_t)be64(r->p);
        r->p += w;
        v->k = s < 0 ? V_NINT : V_UINT;
        v->u = (uint64_t)s;
        return KPI_BAD_NONE;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: /* fixext 1/2/4/8/16: type byte, data */
        v->k = V_EXT;
        return payload(r, v, 1 + (1u << (b - 0xd4)));
    case 0xd9: /* str 8/16/32 */
    case 0xda:
    case 0xdb: return sized(r, v, V_STR, 1u << (b - 0xd9), 0);
    case 0xdc: /* array 16/32 */
    case 0xdd: return counted(r, v, V_ARRAY, b == 0xdc ? 2 : 4);
    case 0xde: /* map 16/32 */
    case 0xdf: return counted(r, v, V_MAP, b == 0xde ? 2 : 4);
    }
    return KPI_BAD_MALFORMED; /* not reached: 0xa0-0xbf and 0x00-0x7f are read_val's */
}

/* Read one value: all of it for scalars, strings, bin and ext; only the
 * header for a map or array, whose v->len elements follow. */
static inline enum kpi_bad_reason read_val(struct rd *r, struct val *v)
{
    if (r->p == r->end)
        return KPI_BAD_TRUNCATED;
    uint8_t b = *r->p++;
    if (b <= 0x7f) {
        v->k = V_UINT;
        v->u = b;
        return KPI_BAD_NONE;
    }
    if ((b & 0xe0) == 0xa0) {
        v->k = V_STR;
        return payload(r, v, b & 0x1f);
    }
    if (b == 0xcf) /* ts and numeric subscriber ids */
        return counted(r, v, V_UINT, 8);
    if (b == 0xce) /* amounts, volumes */
        return counted(r, v, V_UINT, 4);
    return read_val_slow(r, v, b);
}

static inline int is_container(const struct val *v)
{
    return v->k == V_MAP || v->k == V_ARRAY;
}

/* Elements a container header promises: 2 per map pair. */
static inline uint64_t elems(const struct val *v)
{
    return v->k == V_MAP ? 2 * (uint64_t)v->len : v->len;
}

/* Skip the elements of the container v, whose header was just read at nesting
 * `level` (the top-level map is level 1).  Iterative, with a stack of
 * elements still to read per level. */
static enum kpi_bad_reason skip_container(struct rd *r, const struct val *v, int level)
{
    uint64_t todo[MAX_DEPTH];
    int sp = 0; /* todo[0 .. sp-1] is the stack; level + sp - 1 is the innermost's level */
    if (level > MAX_DEPTH)
        return KPI_BAD_TOO_DEEP;
    if (elems(v) > left(r))
        return KPI_BAD_TRUNCATED;
    todo[sp++] = elems(v);
    while (sp > 0) {
        if (todo[sp - 1] == 0) {
            sp--;
            continue;
        }
        todo[sp - 1]--;
        struct val x;
        enum kpi_bad_reason e = read_val(r, &x);
        if (e)
            return e;
        if (!is_container(&x))
            continue;
        if (level + sp > MAX_DEPTH)
            return KPI_BAD_TOO_DEEP;
        if (elems(&x) > left(r))
            return KPI_BAD_TRUNCATED;
        todo[sp++] = elems(&x);
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
    K_PROVISION_MS,
    K_COUNT,
    K_DIM0, /* K_DIM0 + i: dimension i */
    K_UNKNOWN = K_DIM0 + KPI_MAX_DIMS
};

/* The string v, whose length is already known to be the literal's, is
 * `lit`: the length comes from the literal, so memcmp compiles to a few
 * compares.  STR_IS checks the length too. */
#define KEY_IS(v, lit) (memcmp((v)->s, lit, sizeof(lit) - 1) == 0)
#define STR_IS(v, lit) ((v)->len == sizeof(lit) - 1 && KEY_IS(v, lit))

/* The reserved key k names, by length first; K_UNKNOWN for none. */
static inline int match_reserved(const struct val *k)
{
    switch (k->len) {
    case 2: return KEY_IS(k, "ts") ? K_TS : K_UNKNOWN;
    case 3: return KEY_IS(k, "sub") ? K_SUB : K_UNKNOWN;
    case 4: return KEY_IS(k, "type") ? K_TYPE : K_UNKNOWN;
    case 5:
        return KEY_IS(k, "bytes")   ? K_BYTES
               : KEY_IS(k, "score") ? K_SCORE
               : KEY_IS(k, "count") ? K_COUNT
                                    : K_UNKNOWN;
    case 6:
        return KEY_IS(k, "amount")   ? K_AMOUNT
               : KEY_IS(k, "survey") ? K_SURVEY
               : KEY_IS(k, "reason") ? K_REASON
                                     : K_UNKNOWN;
    case 7: return KEY_IS(k, "seconds") ? K_SECONDS : K_UNKNOWN;
    case 12: return KEY_IS(k, "provision_ms") ? K_PROVISION_MS : K_UNKNOWN;
    }
    return K_UNKNOWN;
}

static inline int match_key(const struct kpi_decoder *d, const struct val *k)
{
    int key = match_reserved(k);
    if (key != K_UNKNOWN)
        return key;
    for (int i = 0; i < d->n_dims; i++)
        if (k->len == d->dim_name_lens[i] && memcmp(k->s, d->dim_names[i], k->len) == 0)
            return K_DIM0 + i;
    return K_UNKNOWN;
}

/* A string value: the key's own wrong-type reason, or oversized. */
static inline enum kpi_bad_reason check_str(const struct kpi_decoder *d, const struct val *v,
                                            enum kpi_bad_reason wrong_type)
{
    if (v->k != V_STR)
        return wrong_type;
    return v->len > d->max_str_len ? KPI_BAD_OVERSIZED_STRING : KPI_BAD_NONE;
}

/* A uint value: the key's own not-a-uint reason (negative ints included),
 * or its out-of-range reason above max. */
static inline enum kpi_bad_reason check_uint(const struct val *v, uint64_t max,
                                             enum kpi_bad_reason not_uint,
                                             enum kpi_bad_reason out_of_range)
{
    if (v->k != V_UINT)
        return not_uint;
    return v->u > max ? out_of_range : KPI_BAD_NONE;
}

/* A string value taken into *out (it points into the message). */
static inline enum kpi_bad_reason take_str(const struct kpi_decoder *d, const struct val *v,
                                           enum kpi_bad_reason wrong_type, struct kpi_strref *out)
{
    enum kpi_bad_reason e = check_str(d, v, wrong_type);
    if (e == KPI_BAD_NONE) {
        out->ptr = v->s;
        out->len = v->len;
    }
    return e;
}

/* Validate a known key's value and store it.  *ts holds ts as read (its skew
 * check waits for the end of the walk). */
static inline enum kpi_bad_reason take(const struct kpi_decoder *d, int key, const struct val *v,
                                       struct kpi_event *ev, uint64_t *ts)
{
    enum kpi_bad_reason e;
    if (is_container(v))
        return KPI_BAD_NESTED_VALUE;
    switch (key) {
    case K_TYPE:
        if ((e = check_str(d, v, KPI_BAD_TYPE_NOT_STRING)))
            return e;
        ev->type = STR_IS(v, "usage")        ? KPI_EV_USAGE
                   : STR_IS(v, "activation") ? KPI_EV_ACTIVATION
                   : STR_IS(v, "churn")      ? KPI_EV_CHURN
                   : STR_IS(v, "nps")        ? KPI_EV_NPS
                   : STR_IS(v, "base")       ? KPI_EV_BASE
                                             : KPI_EV__COUNT;
        return ev->type == KPI_EV__COUNT ? KPI_BAD_UNKNOWN_TYPE : KPI_BAD_NONE;
    case K_TS:
        if (v->k != V_UINT)
            return KPI_BAD_TS_NOT_UINT;
        *ts = v->u;
        return KPI_BAD_NONE;
    case K_SUB:
        if (v->k == V_UINT) {
            char digits[20]; /* UINT64_MAX has 20 */
            uint32_t n = kpi_utoa_back(v->u, digits + sizeof(digits));
            ev->sub_hash = kpi_hll_hash(digits + sizeof(digits) - n, n);
            return KPI_BAD_NONE;
        }
        if (v->k != V_STR || v->len == 0)
            return KPI_BAD_SUB_WRONG_TYPE;
        if (v->len > d->max_str_len)
            return KPI_BAD_OVERSIZED_STRING;
        ev->sub_hash = kpi_hll_hash(v->s, v->len);
        return KPI_BAD_NONE;
    case K_AMOUNT:
        if (v->k == V_UINT) { /* micro-units */
            if (v->u > KPI_MAX_QUANTITY)
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
        {
            /* Currency units: round half away from zero to micro-units. */
            double x = v->f * 1e6;
            if (!(x <= (double)KPI_MAX_QUANTITY))
                return KPI_BAD_AMOUNT_OUT_OF_RANGE;
            ev->amount_micros = llround(x);
        }
        return KPI_BAD_NONE;
    case K_BYTES:
    case K_SECONDS:
    case K_PROVISION_MS:
        if ((e = check_uint(v, KPI_MAX_QUANTITY, KPI_BAD_VOLUME_NOT_UINT,
                            KPI_BAD_VOLUME_OUT_OF_RANGE)))
            return e;
        if (key == K_BYTES)
            ev->bytes = v->u;
        else if (key == K_SECONDS)
            ev->seconds = v->u;
        else {
            ev->provision_ms = v->u;
            ev->has_provision_ms = 1;
        }
        return KPI_BAD_NONE;
    case K_COUNT:
        if ((e = check_uint(v, KPI_MAX_QUANTITY, KPI_BAD_COUNT_NOT_UINT,
                            KPI_BAD_COUNT_OUT_OF_RANGE)))
            return e;
        ev->count = v->u;
        return KPI_BAD_NONE;
    case K_SCORE:
        if ((e = check_uint(v, 10, KPI_BAD_SCORE_NOT_UINT, KPI_BAD_SCORE_OUT_OF_RANGE)))
            return e;
        ev->score = (uint8_t)v->u;
        return KPI_BAD_NONE;
    case K_SURVEY:
        if ((e = check_str(d, v, KPI_BAD_SURVEY_NOT_STRING)))
            return e;
        if (STR_IS(v, "network"))
            ev->survey = KPI_SURVEY_NETWORK;
        else if (STR_IS(v, "brand"))
            ev->survey = KPI_SURVEY_BRAND;
        else
            return KPI_BAD_UNKNOWN_SURVEY;
        return KPI_BAD_NONE;
    case K_REASON: return take_str(d, v, KPI_BAD_REASON_NOT_STRING, &ev->reason);
    default: /* a dimension */
        return take_str(d, v, KPI_BAD_DIM_NOT_STRING, &ev->dims[key - K_DIM0]);
    }
}

#define BIT(k) (1u << (k))

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
    if (elems(&top) > left(&r))
        return KPI_BAD_TRUNCATED;

    ev->type = KPI_EV__COUNT;
    ev->amount_micros = 0;
    ev->bytes = ev->seconds = 0;
    ev->provision_ms = 0;
    ev->has_provision_ms = 0;
    ev->score = 0;
    ev->survey = KPI_SURVEY_NETWORK;
    ev->count = 0;
    ev->sub_hash = 0;
    ev->reason.ptr = NULL;
    ev->reason.len = 0;
    for (int i = 0; i < d->n_dims; i++) {
        ev->dims[i].ptr = NULL;
        ev->dims[i].len = 0;
    }
    uint32_t seen = 0;
    uint64_t ts = 0;

    for (uint32_t i = 0; i < top.len; i++) {
        struct val k, v;
        if ((e = read_val(&r, &k)))
            return e;
        if (k.k != V_STR)
            return KPI_BAD_KEY_NOT_STRING;
        int key = match_key(d, &k);
        if ((e = read_val(&r, &v)))
            return e;
        if (key == K_UNKNOWN) {
            if (is_container(&v) && (e = skip_container(&r, &v, 2)))
                return e;
            continue;
        }
        if (seen & BIT(key))
            return KPI_BAD_DUPLICATE_KEY;
        seen |= BIT(key);
        if ((e = take(d, key, &v, ev, &ts)))
            return e;
    }
    if (r.p != r.end)
        return KPI_BAD_TRAILING_BYTES;
    if (!(seen & BIT(K_TYPE)))
        return KPI_BAD_MISSING_TYPE;
    if (!(seen & BIT(K_TS)))
        return KPI_BAD_MISSING_TS;
    /* A base snapshot is about a dimension combination, not a subscriber. */
    if (ev->type != KPI_EV_BASE && !(seen & BIT(K_SUB)))
        return KPI_BAD_MISSING_SUB;
    if (ev->type == KPI_EV_NPS && !(seen & BIT(K_SCORE)))
        return KPI_BAD_MISSING_SCORE;
    if (ev->type == KPI_EV_BASE && !(seen & BIT(K_COUNT)))
        return KPI_BAD_MISSING_COUNT;
    /* ts > now + skew, without overflowing either side. */
    if (ts > (uint64_t)INT64_MAX || (int64_t)ts - d->max_skew_ms > now_ms)
        return KPI_BAD_TS_IN_FUTURE;
    ev->ts_ms = (int64_t)ts;
    return KPI_BAD_NONE;
}
