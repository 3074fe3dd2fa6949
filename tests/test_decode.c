/*
 * test_decode.c - the strict event decoder: every field decoded exactly, and
 * every bad-input reason produced by a message that has exactly that problem.
 *
 * Messages are built with msgpack-c's packer, or as raw bytes where the point
 * is an encoding the packer would not choose.  Every decode runs on an
 * exact-size heap copy of the message, so under ASan any read past `len` is
 * an error.
 *
 * The examples[] table names one message per outcome (a few good events and
 * one per decoder reason).  It feeds two checks, every decoder reason has an
 * example and each example decodes as named, and it is the fuzzer's seed
 * corpus: one file per example, <name>, written where KPI_WRITE_CORPUS says
 * (scripts/test.sh does it before fuzzing; nothing is committed):
 *
 *   KPI_WRITE_CORPUS=DIR ./test_decode --filter 'decode/seed_corpus*'
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/decode.h"
#include "engine/err.h"
#include "engine/hll.h"

#ifndef KPI_SOURCE_DIR
#define KPI_SOURCE_DIR "."
#endif

#define NOW     1700000000000LL
#define SKEW    60000
#define MAX_STR 64

static struct kpi_decoder dec;
static const char *dims[] = {"region", "plan", "segment"};

static void setup(void)
{
    cr_assert_eq(kpi_decoder_init(&dec, dims, 3, SKEW, MAX_STR, NULL, 0), 0);
}

/* ---- building messages ---- */

struct msg {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void m_open(struct msg *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void m_init(struct msg *m, uint32_t n_pairs)
{
    m_open(m);
    msgpack_pack_map(&m->pk, n_pairs);
}

static void m_free(struct msg *m)
{
    msgpack_sbuffer_destroy(&m->sb);
}

static void raw(struct msg *m, const void *bytes, size_t n)
{
    msgpack_sbuffer_write(&m->sb, bytes, n);
}

static void u8(struct msg *m, uint8_t b)
{
    raw(m, &b, 1);
}

static void k(struct msg *m, const char *s)
{
    msgpack_pack_str_with_body(&m->pk, s, strlen(s));
}

static void kv_str(struct msg *m, const char *key, const char *v)
{
    k(m, key);
    msgpack_pack_str_with_body(&m->pk, v, strlen(v));
}

static void kv_u(struct msg *m, const char *key, uint64_t v)
{
    k(m, key);
    msgpack_pack_uint64(&m->pk, v);
}

static void kv_i(struct msg *m, const char *key, int64_t v)
{
    k(m, key);
    msgpack_pack_int64(&m->pk, v);
}

/* An int64 header even for a value >= 0 (the packer would pick a uint). */
static void kv_int64_w(struct msg *m, const char *key, int64_t v)
{
    k(m, key);
    u8(m, 0xd3);
    for (int i = 7; i >= 0; i--)
        u8(m, (uint8_t)((uint64_t)v >> (8 * i)));
}

static void kv_f64(struct msg *m, const char *key, double v)
{
    k(m, key);
    msgpack_pack_double(&m->pk, v);
}

static void kv_f32(struct msg *m, const char *key, float v)
{
    k(m, key);
    msgpack_pack_float(&m->pk, v);
}

static void kv_nil(struct msg *m, const char *key)
{
    k(m, key);
    msgpack_pack_nil(&m->pk);
}

static void kv_bin(struct msg *m, const char *key, const char *v)
{
    k(m, key);
    msgpack_pack_bin_with_body(&m->pk, v, strlen(v));
}

static void kv_ext(struct msg *m, const char *key)
{
    k(m, key);
    msgpack_pack_ext_with_body(&m->pk, "\x01\x02\x03\x04", 4, 7);
}

/* A string header of a chosen width (8, 16 or 32 bits), which the packer
 * would not pick for a short string. */
static void str_w(struct msg *m, int bits, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    if (bits == 8) {
        u8(m, 0xd9), u8(m, (uint8_t)n);
    } else if (bits == 16) {
        u8(m, 0xda), u8(m, (uint8_t)(n >> 8)), u8(m, (uint8_t)n);
    } else {
        u8(m, 0xdb), u8(m, (uint8_t)(n >> 24)), u8(m, (uint8_t)(n >> 16));
        u8(m, (uint8_t)(n >> 8)), u8(m, (uint8_t)n);
    }
    raw(m, s, n);
}

/* type, ts (a second ago) and sub: the start of a good event, in a map of
 * 3 + extra pairs whose remaining pairs the caller adds. */
static void base(struct msg *m, const char *type, uint32_t extra)
{
    m_init(m, 3 + extra);
    kv_str(m, "type", type);
    kv_u(m, "ts", NOW - 1000);
    kv_u(m, "sub", 42);
}

/* ---- decoding ---- */

/* Decode from an exact-size heap copy, so ASan sees any read past len. */
static enum kpi_bad_reason decode_bytes(const void *bytes, size_t len, struct kpi_event *ev)
{
    void *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    if (len)
        memcpy(copy, bytes, len);
    enum kpi_bad_reason r = kpi_decode(&dec, copy, len, NOW, ev);
    free(copy);
    return r;
}

/* Decode in place (the event's strings point into m's buffer). */
static enum kpi_bad_reason decode(struct msg *m, struct kpi_event *ev)
{
    return kpi_decode(&dec, m->sb.data, m->sb.size, NOW, ev);
}

/* Decode in place, which must succeed. */
static struct kpi_event decode_ok(struct msg *m)
{
    struct kpi_event ev;
    enum kpi_bad_reason r = decode(m, &ev);
    cr_assert_eq(r, KPI_BAD_NONE, "got %s", kpi_bad_reason_name(r));
    return ev;
}

static enum kpi_bad_reason decode_and_free(struct msg *m)
{
    struct kpi_event ev;
    enum kpi_bad_reason r = decode_bytes(m->sb.data, m->sb.size, &ev);
    m_free(m);
    return r;
}

#define EXPECT(m, want)                                                                            \
    do {                                                                                           \
        enum kpi_bad_reason got_ = decode_and_free(m);                                             \
        cr_assert_eq(got_, want, "got %s, want %s", kpi_bad_reason_name(got_),                     \
                     kpi_bad_reason_name(want));                                                   \
    } while (0)

static uint64_t hash_of(const char *s)
{
    return kpi_hll_hash(s, strlen(s));
}

static int str_eq(struct kpi_strref r, const char *s)
{
    return r.ptr && r.len == strlen(s) && memcmp(r.ptr, s, r.len) == 0;
}

/* ---- examples: one message per outcome ---- */

static void ex_usage(struct msg *m)
{
    m_init(m, 9);
    kv_str(m, "type", "usage");
    kv_u(m, "ts", NOW - 5);
    kv_u(m, "sub", 46701234567ULL);
    kv_str(m, "segment", "youth"); /* not in configuration order */
    kv_str(m, "region", "eu-west");
    kv_str(m, "plan", "prepaid");
    kv_u(m, "amount", 1250000);
    kv_u(m, "bytes", 1048576);
    kv_u(m, "seconds", 60);
}

static void ex_usage_float(struct msg *m)
{
    base(m, "usage", 3);
    kv_f64(m, "amount", 12.3456789);
    kv_str(m, "region", "apac");
    k(m, "meta"); /* an unknown key holding a bit of everything */
    msgpack_pack_map(&m->pk, 3);
    k(m, "tags");
    msgpack_pack_array(&m->pk, 4);
    msgpack_pack_int(&m->pk, -70000);
    msgpack_pack_bin_with_body(&m->pk, "xy", 2);
    msgpack_pack_ext_with_body(&m->pk, "\x01", 1, 3);
    msgpack_pack_true(&m->pk);
    kv_f32(m, "ratio", 0.25f);
    kv_nil(m, "none");
}

static void ex_activation(struct msg *m)
{
    m_init(m, 5);
    kv_str(m, "type", "activation");
    kv_u(m, "ts", NOW);
    kv_str(m, "sub", "imsi-240011234567890");
    kv_str(m, "plan", "postpaid");
    kv_str(m, "channel", "web");
}

static void ex_activation_provision_ms(struct msg *m)
{
    m_init(m, 4);
    kv_str(m, "type", "activation");
    kv_u(m, "ts", NOW);
    kv_u(m, "sub", 46701234568);
    kv_u(m, "provision_ms", 4200);
}

static void ex_churn(struct msg *m)
{
    base(m, "churn", 2);
    kv_str(m, "reason", "price");
    kv_str(m, "region", "eu-north");
}

static void ex_nps(struct msg *m)
{
    base(m, "nps", 2);
    kv_u(m, "score", 9);
    kv_str(m, "survey", "brand");
}

/* map16, str8/16/32 values, an str8 key, int64 ts, int8 score. */
static void ex_nps_wide_encodings(struct msg *m)
{
    m_open(m);
    u8(m, 0xde), u8(m, 0), u8(m, 5);
    str_w(m, 8, "type"), str_w(m, 16, "nps");
    kv_int64_w(m, "ts", NOW);
    k(m, "sub"), str_w(m, 32, "46709876543");
    k(m, "score"), u8(m, 0xd0), u8(m, 7);
    k(m, "region"), str_w(m, 8, "eu-west");
}

/* A subscriber-base snapshot: no sub, a count. */
static void ex_base(struct msg *m)
{
    m_init(m, 6);
    kv_str(m, "type", "base");
    kv_u(m, "ts", NOW - 3600000);
    kv_str(m, "region", "eu-west");
    kv_str(m, "plan", "prepaid");
    kv_str(m, "segment", "youth");
    kv_u(m, "count", 1250000);
}

static void bad_missing_count(struct msg *m)
{
    m_init(m, 3);
    kv_str(m, "type", "base");
    kv_u(m, "ts", NOW);
    kv_str(m, "region", "eu-west");
}

static void bad_count_not_uint(struct msg *m)
{
    m_init(m, 3);
    kv_str(m, "type", "base");
    kv_u(m, "ts", NOW);
    kv_i(m, "count", -5);
}

static void bad_count_out_of_range(struct msg *m)
{
    m_init(m, 3);
    kv_str(m, "type", "base");
    kv_u(m, "ts", NOW);
    kv_u(m, "count", KPI_MAX_QUANTITY + 1);
}

static void bad_empty(struct msg *m)
{
    m_open(m);
}

static void bad_not_map(struct msg *m)
{
    m_open(m);
    msgpack_pack_array(&m->pk, 2);
    msgpack_pack_uint64(&m->pk, NOW);
    msgpack_pack_uint64(&m->pk, 42);
}

static void bad_truncated(struct msg *m)
{
    base(m, "usage", 1);
    k(m, "region");
    u8(m, 0xa7); /* fixstr of 7 bytes, then only 2 */
    raw(m, "eu", 2);
}

static void bad_malformed(struct msg *m)
{
    base(m, "usage", 1);
    k(m, "amount");
    u8(m, 0xc1);
}

static void bad_trailing_bytes(struct msg *m)
{
    base(m, "activation", 0);
    msgpack_pack_nil(&m->pk);
}

static void bad_key_not_string(struct msg *m)
{
    base(m, "activation", 1);
    msgpack_pack_uint64(&m->pk, 7);
    msgpack_pack_uint64(&m->pk, 7);
}

static void bad_duplicate_key(struct msg *m)
{
    base(m, "activation", 1);
    kv_u(m, "ts", NOW);
}

static void nest(struct msg *m, int levels)
{
    for (int i = 0; i < levels; i++)
        msgpack_pack_array(&m->pk, 1);
    msgpack_pack_nil(&m->pk);
}

static void bad_too_deep(struct msg *m)
{
    base(m, "activation", 1);
    k(m, "deep");
    nest(m, KPI_DECODE_MAX_DEPTH); /* the top-level map makes it one too many */
}

static void bad_nested_value(struct msg *m)
{
    base(m, "activation", 1);
    k(m, "region");
    msgpack_pack_map(&m->pk, 0);
}

static char long_str[MAX_STR + 2];

static const char *too_long(void)
{
    memset(long_str, 'x', MAX_STR + 1);
    long_str[MAX_STR + 1] = '\0';
    return long_str;
}

static void bad_oversized_string(struct msg *m)
{
    base(m, "churn", 1);
    kv_str(m, "reason", too_long());
}

static void bad_missing_type(struct msg *m)
{
    m_init(m, 2);
    kv_u(m, "ts", NOW);
    kv_u(m, "sub", 1);
}

static void bad_type_not_string(struct msg *m)
{
    m_init(m, 3);
    kv_u(m, "type", 1);
    kv_u(m, "ts", NOW);
    kv_u(m, "sub", 1);
}

static void bad_unknown_type(struct msg *m)
{
    base(m, "refund", 0);
}

static void bad_missing_ts(struct msg *m)
{
    m_init(m, 2);
    kv_str(m, "type", "churn");
    kv_u(m, "sub", 1);
}

static void bad_ts_not_uint(struct msg *m)
{
    m_init(m, 3);
    kv_str(m, "type", "churn");
    kv_i(m, "ts", -1);
    kv_u(m, "sub", 1);
}

static void bad_ts_in_future(struct msg *m)
{
    m_init(m, 3);
    kv_str(m, "type", "churn");
    kv_u(m, "ts", NOW + SKEW + 1);
    kv_u(m, "sub", 1);
}

static void bad_missing_sub(struct msg *m)
{
    m_init(m, 2);
    kv_str(m, "type", "churn");
    kv_u(m, "ts", NOW);
}

static void bad_sub_wrong_type(struct msg *m)
{
    m_init(m, 3);
    kv_str(m, "type", "churn");
    kv_u(m, "ts", NOW);
    kv_i(m, "sub", -42);
}

static void bad_dim_not_string(struct msg *m)
{
    base(m, "activation", 1);
    kv_u(m, "plan", 3);
}

static void bad_amount_not_number(struct msg *m)
{
    base(m, "usage", 1);
    kv_str(m, "amount", "12.50");
}

static void bad_amount_negative(struct msg *m)
{
    base(m, "usage", 1);
    kv_i(m, "amount", -250000);
}

static void bad_amount_not_finite(struct msg *m)
{
    base(m, "usage", 1);
    kv_f64(m, "amount", NAN);
}

static void bad_amount_out_of_range(struct msg *m)
{
    base(m, "usage", 1);
    kv_f64(m, "amount", 1e13); /* 1e19 micro-units */
}

static void bad_volume_not_uint(struct msg *m)
{
    base(m, "usage", 1);
    kv_i(m, "bytes", -1);
}

static void bad_volume_out_of_range(struct msg *m)
{
    base(m, "usage", 1);
    kv_u(m, "bytes", INT64_MAX); /* a valid uint64, and a wedge of Redis once (issue 10) */
}

static void bad_missing_score(struct msg *m)
{
    base(m, "nps", 1);
    kv_str(m, "survey", "network");
}

static void bad_score_not_uint(struct msg *m)
{
    base(m, "nps", 1);
    kv_f64(m, "score", 9.0);
}

static void bad_score_out_of_range(struct msg *m)
{
    base(m, "nps", 1);
    kv_u(m, "score", 11);
}

static void bad_survey_not_string(struct msg *m)
{
    base(m, "nps", 2);
    kv_u(m, "score", 5);
    kv_u(m, "survey", 1);
}

static void bad_unknown_survey(struct msg *m)
{
    base(m, "nps", 2);
    kv_u(m, "score", 5);
    kv_str(m, "survey", "store");
}

static void bad_reason_not_string(struct msg *m)
{
    base(m, "churn", 1);
    kv_u(m, "reason", 3);
}

static const struct example {
    const char *name; /* the corpus file; a bad example is named after its reason */
    enum kpi_bad_reason want;
    void (*build)(struct msg *m);
} examples[] = {
    {"ok_usage", KPI_BAD_NONE, ex_usage},
    {"ok_usage_float_unknown_keys", KPI_BAD_NONE, ex_usage_float},
    {"ok_activation", KPI_BAD_NONE, ex_activation},
    {"ok_activation_provision_ms", KPI_BAD_NONE, ex_activation_provision_ms},
    {"ok_churn", KPI_BAD_NONE, ex_churn},
    {"ok_nps", KPI_BAD_NONE, ex_nps},
    {"ok_nps_wide_encodings", KPI_BAD_NONE, ex_nps_wide_encodings},
    {"ok_base", KPI_BAD_NONE, ex_base},
    {"empty", KPI_BAD_EMPTY, bad_empty},
    {"not_map", KPI_BAD_NOT_MAP, bad_not_map},
    {"truncated", KPI_BAD_TRUNCATED, bad_truncated},
    {"malformed", KPI_BAD_MALFORMED, bad_malformed},
    {"trailing_bytes", KPI_BAD_TRAILING_BYTES, bad_trailing_bytes},
    {"key_not_string", KPI_BAD_KEY_NOT_STRING, bad_key_not_string},
    {"duplicate_key", KPI_BAD_DUPLICATE_KEY, bad_duplicate_key},
    {"too_deep", KPI_BAD_TOO_DEEP, bad_too_deep},
    {"nested_value", KPI_BAD_NESTED_VALUE, bad_nested_value},
    {"oversized_string", KPI_BAD_OVERSIZED_STRING, bad_oversized_string},
    {"missing_type", KPI_BAD_MISSING_TYPE, bad_missing_type},
    {"type_not_string", KPI_BAD_TYPE_NOT_STRING, bad_type_not_string},
    {"unknown_type", KPI_BAD_UNKNOWN_TYPE, bad_unknown_type},
    {"missing_ts", KPI_BAD_MISSING_TS, bad_missing_ts},
    {"ts_not_uint", KPI_BAD_TS_NOT_UINT, bad_ts_not_uint},
    {"ts_in_future", KPI_BAD_TS_IN_FUTURE, bad_ts_in_future},
    {"missing_sub", KPI_BAD_MISSING_SUB, bad_missing_sub},
    {"sub_wrong_type", KPI_BAD_SUB_WRONG_TYPE, bad_sub_wrong_type},
    {"dim_not_string", KPI_BAD_DIM_NOT_STRING, bad_dim_not_string},
    {"amount_not_number", KPI_BAD_AMOUNT_NOT_NUMBER, bad_amount_not_number},
    {"amount_negative", KPI_BAD_AMOUNT_NEGATIVE, bad_amount_negative},
    {"amount_not_finite", KPI_BAD_AMOUNT_NOT_FINITE, bad_amount_not_finite},
    {"amount_out_of_range", KPI_BAD_AMOUNT_OUT_OF_RANGE, bad_amount_out_of_range},
    {"volume_not_uint", KPI_BAD_VOLUME_NOT_UINT, bad_volume_not_uint},
    {"volume_out_of_range", KPI_BAD_VOLUME_OUT_OF_RANGE, bad_volume_out_of_range},
    {"missing_score", KPI_BAD_MISSING_SCORE, bad_missing_score},
    {"score_not_uint", KPI_BAD_SCORE_NOT_UINT, bad_score_not_uint},
    {"score_out_of_range", KPI_BAD_SCORE_OUT_OF_RANGE, bad_score_out_of_range},
    {"survey_not_string", KPI_BAD_SURVEY_NOT_STRING, bad_survey_not_string},
    {"unknown_survey", KPI_BAD_UNKNOWN_SURVEY, bad_unknown_survey},
    {"reason_not_string", KPI_BAD_REASON_NOT_STRING, bad_reason_not_string},
    {"missing_count", KPI_BAD_MISSING_COUNT, bad_missing_count},
    {"count_not_uint", KPI_BAD_COUNT_NOT_UINT, bad_count_not_uint},
    {"count_out_of_range", KPI_BAD_COUNT_OUT_OF_RANGE, bad_count_out_of_range},
};
#define N_EXAMPLES (sizeof(examples) / sizeof(examples[0]))

/* More messages with one problem each, checked with the example of their
 * reason (expect_example): one key/value pair; before it a good event's
 * type, ts and sub when `base` names the type, or just the type `typed`
 * (then sub after it); with `tail`, ts and sub after it. */
enum pair_kind { P_U, P_I, P_I64W, P_F64, P_F32, P_STR, P_BIN, P_NIL, P_TRUE };
#define U(x)    .kind = P_U, .u = (x)
#define I(x)    .kind = P_I, .i = (x)
#define I64W(x) .kind = P_I64W, .i = (x) /* an int64 header even for x >= 0 */
#define F64(x)  .kind = P_F64, .f = (x)
#define F32(x)  .kind = P_F32, .f = (x)
#define STR(x)  .kind = P_STR, .s = (x)
#define BIN(x)  .kind = P_BIN, .s = (x)
#define NIL     .kind = P_NIL
#define TRUE_   .kind = P_TRUE

static const struct pair_case {
    const char *base, *typed, *key;
    int tail;
    enum pair_kind kind;
    uint64_t u;
    int64_t i;
    double f;
    const char *s;
    enum kpi_bad_reason want;
} pair_cases[] = {
    {.key = "type", BIN("usage"), .tail = 1, .want = KPI_BAD_TYPE_NOT_STRING},
    {.key = "ts", F64((double)NOW), .want = KPI_BAD_TS_NOT_UINT},
    {.key = "ts", STR("2026-11-24"), .want = KPI_BAD_TS_NOT_UINT},
    {.key = "ts", I64W(-NOW), .want = KPI_BAD_TS_NOT_UINT},
    {.typed = "churn", .key = "ts", U(UINT64_MAX), .want = KPI_BAD_TS_IN_FUTURE},
    {.key = "sub", F64(1.0), .want = KPI_BAD_SUB_WRONG_TYPE},
    {.key = "sub", STR(""), .want = KPI_BAD_SUB_WRONG_TYPE},
    {.key = "sub", NIL, .want = KPI_BAD_SUB_WRONG_TYPE},
    {.key = "sub", BIN("42"), .want = KPI_BAD_SUB_WRONG_TYPE},
    {.key = "region", BIN("eu"), .want = KPI_BAD_DIM_NOT_STRING},
    {.key = "segment", NIL, .want = KPI_BAD_DIM_NOT_STRING},
    {.key = "amount", NIL, .want = KPI_BAD_AMOUNT_NOT_NUMBER},
    {.key = "amount", TRUE_, .want = KPI_BAD_AMOUNT_NOT_NUMBER},
    {.key = "amount", I(INT64_MIN), .want = KPI_BAD_AMOUNT_NEGATIVE},
    {.key = "amount", F64(-0.01), .want = KPI_BAD_AMOUNT_NEGATIVE},
    {.key = "amount",
     F64(-1e-300),
     .want = KPI_BAD_AMOUNT_NEGATIVE}, /* rounds to 0, but is below zero */
    {.key = "amount", F32(INFINITY), .want = KPI_BAD_AMOUNT_NOT_FINITE},
    {.key = "amount", F64(-INFINITY), .want = KPI_BAD_AMOUNT_NOT_FINITE},
    {.key = "amount", U(KPI_MAX_QUANTITY + 1), .want = KPI_BAD_AMOUNT_OUT_OF_RANGE},
    {.key = "amount", U(INT64_MAX), .want = KPI_BAD_AMOUNT_OUT_OF_RANGE},
    {.key = "amount",
     F64(9007199254.740994),
     .want = KPI_BAD_AMOUNT_OUT_OF_RANGE}, /* just above 2^53 micro-units */
    {.key = "amount",
     F64(9223372036854.775808),
     .want = KPI_BAD_AMOUNT_OUT_OF_RANGE}, /* 2^63 micro-units */
    {.key = "amount", F32(1e30f), .want = KPI_BAD_AMOUNT_OUT_OF_RANGE},
    {.key = "seconds", STR("60"), .want = KPI_BAD_VOLUME_NOT_UINT},
    {.key = "bytes", F64(1.5), .want = KPI_BAD_VOLUME_NOT_UINT},
    {.key = "bytes", I(-1), .want = KPI_BAD_VOLUME_NOT_UINT},
    {.base = "activation", .key = "provision_ms", F64(4.2), .want = KPI_BAD_VOLUME_NOT_UINT},
    {.base = "activation", .key = "provision_ms", I(-1), .want = KPI_BAD_VOLUME_NOT_UINT},
    {.base = "activation", .key = "provision_ms", STR("4200"), .want = KPI_BAD_VOLUME_NOT_UINT},
    {.key = "seconds", U(KPI_MAX_QUANTITY + 1), .want = KPI_BAD_VOLUME_OUT_OF_RANGE},
    {.key = "bytes", U(UINT64_MAX), .want = KPI_BAD_VOLUME_OUT_OF_RANGE},
    {.base = "activation",
     .key = "provision_ms",
     U(KPI_MAX_QUANTITY + 1),
     .want = KPI_BAD_VOLUME_OUT_OF_RANGE},
    {.key = "score",
     I(-1),
     .want = KPI_BAD_SCORE_NOT_UINT}, /* negative: not a uint, rather than out of range */
    {.key = "score", STR("9"), .want = KPI_BAD_SCORE_NOT_UINT},
    {.key = "score", U(255), .want = KPI_BAD_SCORE_OUT_OF_RANGE},
    {.key = "score", U(UINT64_MAX), .want = KPI_BAD_SCORE_OUT_OF_RANGE},
    {.key = "survey", BIN("brand"), .want = KPI_BAD_SURVEY_NOT_STRING},
    {.key = "reason", NIL, .want = KPI_BAD_REASON_NOT_STRING},
};

static void build_pair(struct msg *m, const struct pair_case *c)
{
    uint32_t n = 1 + (c->typed ? 2 : 0) + (c->tail ? 2 : 0);
    if (c->base)
        base(m, c->base, n);
    else
        m_init(m, n);
    if (c->typed)
        kv_str(m, "type", c->typed);
    switch (c->kind) {
    case P_U: kv_u(m, c->key, c->u); break;
    case P_I: kv_i(m, c->key, c->i); break;
    case P_I64W: kv_int64_w(m, c->key, c->i); break;
    case P_F64: kv_f64(m, c->key, c->f); break;
    case P_F32: kv_f32(m, c->key, (float)c->f); break;
    case P_STR: kv_str(m, c->key, c->s); break;
    case P_BIN: kv_bin(m, c->key, c->s); break;
    case P_NIL: kv_nil(m, c->key); break;
    case P_TRUE:
        k(m, c->key);
        msgpack_pack_true(&m->pk);
        break;
    }
    if (c->typed)
        kv_u(m, "sub", 1);
    if (c->tail) {
        kv_u(m, "ts", NOW);
        kv_u(m, "sub", 1);
    }
}

/* And raw bytes, for encodings the packer would not choose. */
#define RAW(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static const struct raw_case {
    const uint8_t *bytes;
    size_t len;
    enum kpi_bad_reason want;
} raw_cases[] = {
    {RAW(0xa3, 'a', 'b', 'c'), KPI_BAD_NOT_MAP},    /* str */
    {RAW(0xc0), KPI_BAD_NOT_MAP},                   /* nil */
    {RAW(0xc4, 0x01, 0x80), KPI_BAD_NOT_MAP},       /* bin */
    {RAW(0x83, 0xa4, 't', 'y'), KPI_BAD_TRUNCATED}, /* in_key */
    {RAW(0x81, 0xa6, 'a', 'm', 'o', 'u', 'n', 't', 0xcb, 0x40, 0x09),
     KPI_BAD_TRUNCATED},                  /* in_float */
    {RAW(0xde, 0x00), KPI_BAD_TRUNCATED}, /* in_map16_header */
    {RAW(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01, 0xa1, 'b'), KPI_BAD_TRUNCATED}, /* b */
    {RAW(0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0),
     KPI_BAD_TRUNCATED}, /* array32 */
    {RAW(0x81, 0xa1, 'x', 0x81, 0xa1, 'y', 0xde, 0x10, 0x00, 0xc0), KPI_BAD_TRUNCATED}, /* map16 */
    {RAW(0x81, 0xa4, 't', 'y', 'p', 'e', 0xdb, 0xff, 0xff, 0xff, 0xff, 'n'),
     KPI_BAD_TRUNCATED},                                                                 /* str32 */
    {RAW(0x81, 0xa1, 'x', 0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01, 0x00), KPI_BAD_TRUNCATED}, /* ext32 */
    {RAW(0xc1), KPI_BAD_MALFORMED},                                                      /* top */
    {RAW(0x81, 0xa1, 'x', 0x91, 0xc1), KPI_BAD_MALFORMED},                          /* nested */
    {RAW(0x81, 0xa2, 't', 's', 0xff), KPI_BAD_TS_NOT_UINT},                         /* neg_fixint */
    {RAW(0x81, 0xa3, 's', 'u', 'b', 0xe0), KPI_BAD_SUB_WRONG_TYPE},                 /* neg_fixint */
    {RAW(0x81, 0xa6, 'a', 'm', 'o', 'u', 'n', 't', 0xff), KPI_BAD_AMOUNT_NEGATIVE}, /* neg_fixint */
};

/* Build the example for a reason and check it decodes to exactly that. */
static void expect_example(enum kpi_bad_reason want)
{
    size_t found = 0;
    for (size_t i = 0; i < N_EXAMPLES; i++)
        if (examples[i].want == want) {
            struct msg m;
            examples[i].build(&m);
            EXPECT(&m, want);
            found++;
        }
    cr_assert_eq(found, 1, "%zu examples for %s", found, kpi_bad_reason_name(want));
    for (size_t i = 0; i < sizeof(pair_cases) / sizeof(pair_cases[0]); i++)
        if (pair_cases[i].want == want) {
            struct msg m;
            build_pair(&m, &pair_cases[i]);
            enum kpi_bad_reason got = decode_and_free(&m);
            cr_assert_eq(got, want, "%s case %zu (%s): got %s", kpi_bad_reason_name(want), i,
                         pair_cases[i].key, kpi_bad_reason_name(got));
        }
    for (size_t i = 0; i < sizeof(raw_cases) / sizeof(raw_cases[0]); i++)
        if (raw_cases[i].want == want) {
            struct kpi_event ev;
            enum kpi_bad_reason got = decode_bytes(raw_cases[i].bytes, raw_cases[i].len, &ev);
            cr_assert_eq(got, want, "%s raw case %zu: got %s", kpi_bad_reason_name(want), i,
                         kpi_bad_reason_name(got));
        }
}

TestSuite(decode, .init = setup);

/* ---- good events ---- */

Test(decode, decodes_a_usage_event_with_every_field_exactly)
{
    struct msg m;
    ex_usage(&m);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.type, KPI_EV_USAGE);
    cr_assert_eq(ev.ts_ms, NOW - 5);
    cr_assert_eq(ev.sub_hash, hash_of("46701234567"));
    cr_assert_eq(ev.amount_micros, 1250000, "an int amount is micro-units");
    cr_assert_eq(ev.bytes, 1048576);
    cr_assert_eq(ev.seconds, 60);
    cr_assert(str_eq(ev.dims[0], "eu-west"), "dims[0] is region");
    cr_assert(str_eq(ev.dims[1], "prepaid"), "dims[1] is plan");
    cr_assert(str_eq(ev.dims[2], "youth"), "dims[2] is segment");
    for (int i = 0; i < 3; i++)
        cr_assert(ev.dims[i].ptr > m.sb.data &&
                      ev.dims[i].ptr + ev.dims[i].len <= m.sb.data + m.sb.size,
                  "strings point into the message");
    cr_assert_null(ev.reason.ptr);
    m_free(&m);
}

Test(decode, decodes_a_base_snapshot_without_a_subscriber)
{
    struct msg m;
    ex_base(&m);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.type, KPI_EV_BASE);
    cr_assert_eq(ev.ts_ms, NOW - 3600000);
    cr_assert_eq(ev.count, 1250000);
    cr_assert_eq(ev.sub_hash, 0, "a snapshot has no subscriber");
    cr_assert(str_eq(ev.dims[0], "eu-west"));
    cr_assert(str_eq(ev.dims[2], "youth"));
    m_free(&m);
}

Test(decode, base_count_bound_is_inclusive_and_count_is_ignored_elsewhere)
{
    struct msg m;
    m_init(&m, 3);
    kv_str(&m, "type", "base");
    kv_u(&m, "ts", NOW);
    kv_u(&m, "count", KPI_MAX_QUANTITY);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.count, KPI_MAX_QUANTITY);
    m_free(&m);
    base(&m, "churn", 1);
    kv_u(&m, "count", 7);
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE, "a churn may carry count; it does not count");
    m_free(&m);
    base(&m, "churn", 1);
    kv_str(&m, "count", "7");
    EXPECT(&m, KPI_BAD_COUNT_NOT_UINT);
}

Test(decode, decodes_an_activation_event)
{
    struct msg m;
    ex_activation(&m);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.type, KPI_EV_ACTIVATION);
    cr_assert_eq(ev.ts_ms, NOW);
    cr_assert_eq(ev.sub_hash, hash_of("imsi-240011234567890"));
    cr_assert_null(ev.dims[0].ptr);
    cr_assert(str_eq(ev.dims[1], "postpaid"));
    cr_assert_eq(ev.amount_micros, 0);
    cr_assert_eq(ev.bytes, 0);
    cr_assert_eq(ev.seconds, 0);
    cr_assert_not(ev.has_provision_ms, "provision_ms is optional");
    cr_assert_eq(ev.provision_ms, 0);
    m_free(&m);
}

Test(decode, decodes_provision_ms_including_zero_and_2_pow_53)
{
    struct msg m;
    ex_activation_provision_ms(&m);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.type, KPI_EV_ACTIVATION);
    cr_assert(ev.has_provision_ms);
    cr_assert_eq(ev.provision_ms, 4200);
    m_free(&m);
    static const uint64_t ok[] = {0, 1, KPI_MAX_QUANTITY};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        base(&m, "activation", 1);
        kv_u(&m, "provision_ms", ok[i]);
        cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
        cr_assert(ev.has_provision_ms, "%llu: present, even when 0", (unsigned long long)ok[i]);
        cr_assert_eq(ev.provision_ms, ok[i]);
        m_free(&m);
    }
    /* Known keys are validated on every type, and decoded; kpi.h decides
     * that only activations count it. */
    base(&m, "usage", 1);
    kv_u(&m, "provision_ms", 7);
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert(ev.has_provision_ms);
    m_free(&m);
}

Test(decode, decodes_a_churn_event_with_its_reason)
{
    struct msg m;
    ex_churn(&m);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.type, KPI_EV_CHURN);
    cr_assert_eq(ev.ts_ms, NOW - 1000);
    cr_assert_eq(ev.sub_hash, hash_of("42"));
    cr_assert(str_eq(ev.reason, "price"));
    cr_assert(str_eq(ev.dims[0], "eu-north"));
    m_free(&m);
}

Test(decode, decodes_an_nps_event_with_score_and_survey)
{
    struct msg m;
    ex_nps(&m);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.type, KPI_EV_NPS);
    cr_assert_eq(ev.score, 9);
    cr_assert_eq(ev.survey, KPI_SURVEY_BRAND);
    m_free(&m);
}

Test(decode, nps_survey_defaults_to_network)
{
    struct msg m;
    base(&m, "nps", 1);
    kv_u(&m, "score", 0);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.survey, KPI_SURVEY_NETWORK);
    cr_assert_eq(ev.score, 0);
    m_free(&m);
    base(&m, "nps", 2);
    kv_u(&m, "score", 10);
    kv_str(&m, "survey", "network");
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_eq(ev.survey, KPI_SURVEY_NETWORK);
    cr_assert_eq(ev.score, 10);
    m_free(&m);
}

Test(decode, accepts_every_string_integer_and_map_width)
{
    struct msg m;
    ex_nps_wide_encodings(&m);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.type, KPI_EV_NPS);
    cr_assert_eq(ev.ts_ms, NOW);
    cr_assert_eq(ev.sub_hash, hash_of("46709876543"));
    cr_assert_eq(ev.score, 7);
    cr_assert(str_eq(ev.dims[0], "eu-west"));
    m_free(&m);

    /* map32 at the top, str16 key, int16 and int32 holding values >= 0 */
    m_open(&m);
    u8(&m, 0xdf), u8(&m, 0), u8(&m, 0), u8(&m, 0), u8(&m, 4);
    str_w(&m, 16, "type"), str_w(&m, 8, "usage");
    k(&m, "ts"), msgpack_pack_uint64(&m.pk, NOW);
    k(&m, "sub"), u8(&m, 0xd1), u8(&m, 0x01), u8(&m, 0x00); /* int16 256 */
    k(&m, "seconds"), u8(&m, 0xd2), u8(&m, 0), u8(&m, 1), u8(&m, 0), u8(&m, 0);
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_eq(ev.sub_hash, hash_of("256"));
    cr_assert_eq(ev.seconds, 65536);
    m_free(&m);
}

/* The micro-units of a usage event whose amount is the float v (float32
 * with is_f32), which must decode. */
static int64_t amount_micros_of(double v, int is_f32)
{
    struct msg m;
    base(&m, "usage", 1);
    if (is_f32)
        kv_f32(&m, "amount", (float)v);
    else
        kv_f64(&m, "amount", v);
    int64_t micros = decode_ok(&m).amount_micros;
    m_free(&m);
    return micros;
}

Test(decode, float_amount_is_currency_rounded_to_the_nearest_micro_unit)
{
    static const struct {
        double in;
        int64_t micros;
    } cases[] = {
        {12.3456789, 12345679}, /* 12345678.9 */
        {19.99, 19990000},      /* 19989999.999999996 */
        {2.5000004, 2500000},   /* 2500000.4 */
        {2.5000006, 2500001},   /* 2500000.6 */
        {0.0, 0},
        {9.0e9, 9000000000000000LL}, /* near the 2^53 bound, exact */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t micros = amount_micros_of(cases[i].in, 0);
        cr_assert_eq(micros, cases[i].micros, "%.17g -> %lld", cases[i].in, (long long)micros);
    }
}

Test(decode, float32_amount_is_accepted)
{
    cr_assert_eq(amount_micros_of(1.25, 1), 1250000);
}

Test(decode, negative_zero_amount_is_zero)
{
    cr_assert_eq(amount_micros_of(-0.0, 0), 0);
}

Test(decode, int_amount_up_to_2_pow_53_is_micro_units)
{
    struct msg m;
    base(&m, "usage", 3);
    kv_u(&m, "amount", KPI_MAX_QUANTITY);
    kv_u(&m, "bytes", KPI_MAX_QUANTITY);
    kv_u(&m, "seconds", KPI_MAX_QUANTITY);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.amount_micros, (int64_t)KPI_MAX_QUANTITY);
    cr_assert_eq(ev.bytes, KPI_MAX_QUANTITY);
    cr_assert_eq(ev.seconds, KPI_MAX_QUANTITY);
    m_free(&m);
}

Test(decode, uint_and_string_subscriber_ids_hash_the_same)
{
    static const uint64_t ids[] = {0, 7, 42, 100, 46701234567ULL, UINT64_MAX};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char digits[24];
        snprintf(digits, sizeof(digits), "%llu", (unsigned long long)ids[i]);
        struct msg a, b;
        m_init(&a, 3);
        kv_str(&a, "type", "activation");
        kv_u(&a, "ts", NOW);
        kv_u(&a, "sub", ids[i]);
        m_init(&b, 3);
        kv_str(&b, "type", "activation");
        kv_u(&b, "ts", NOW);
        kv_str(&b, "sub", digits);
        struct kpi_event ea, eb;
        cr_assert_eq(decode(&a, &ea), KPI_BAD_NONE);
        cr_assert_eq(decode(&b, &eb), KPI_BAD_NONE);
        cr_assert_eq(ea.sub_hash, eb.sub_hash, "sub %s", digits);
        cr_assert_eq(ea.sub_hash, hash_of(digits), "Redis's PFADD of \"%s\" agrees", digits);
        m_free(&a);
        m_free(&b);
    }
}

Test(decode, missing_dimensions_are_null)
{
    struct msg m;
    base(&m, "activation", 1);
    kv_str(&m, "segment", "smb");
    struct kpi_event ev = decode_ok(&m);
    cr_assert_null(ev.dims[0].ptr);
    cr_assert_null(ev.dims[1].ptr);
    cr_assert(str_eq(ev.dims[2], "smb"));
    m_free(&m);
}

Test(decode, empty_dimension_string_is_present_and_empty)
{
    struct msg m;
    base(&m, "activation", 1);
    kv_str(&m, "region", "");
    struct kpi_event ev = decode_ok(&m);
    cr_assert_not_null(ev.dims[0].ptr);
    cr_assert_eq(ev.dims[0].len, 0);
    m_free(&m);
}

Test(decode, ignores_unknown_keys_of_any_shape)
{
    struct msg m;
    ex_usage_float(&m);
    struct kpi_event ev = decode_ok(&m);
    cr_assert_eq(ev.amount_micros, 12345679);
    cr_assert(str_eq(ev.dims[0], "apac"));
    m_free(&m);

    base(&m, "activation", 4);
    kv_bin(&m, "blob", "\x01\x02");
    kv_ext(&m, "ext");
    k(&m, "big");
    msgpack_pack_str_with_body(&m.pk, too_long(), MAX_STR + 1); /* no limit on unknown keys */
    k(&m, "empty");
    msgpack_pack_array(&m.pk, 0);
    EXPECT(&m, KPI_BAD_NONE);
}

Test(decode, skips_unknown_values_nested_up_to_the_depth_limit)
{
    struct msg m;
    base(&m, "activation", 1);
    k(&m, "deep");
    nest(&m, KPI_DECODE_MAX_DEPTH - 1); /* with the top-level map: exactly the limit */
    EXPECT(&m, KPI_BAD_NONE);

    base(&m, "activation", 1);
    k(&m, "deep");
    for (int i = 0; i < KPI_DECODE_MAX_DEPTH - 1; i++) {
        msgpack_pack_map(&m.pk, 1);
        k(&m, "k");
    }
    msgpack_pack_nil(&m.pk);
    EXPECT(&m, KPI_BAD_NONE);
}

Test(decode, accepts_a_ts_exactly_at_the_skew_limit)
{
    struct msg m;
    m_init(&m, 3);
    kv_str(&m, "type", "activation");
    kv_u(&m, "ts", NOW + SKEW);
    kv_u(&m, "sub", 1);
    EXPECT(&m, KPI_BAD_NONE);
}

Test(decode, accepts_strings_exactly_at_the_length_limit)
{
    char s[MAX_STR + 1];
    memset(s, 'y', MAX_STR);
    s[MAX_STR] = '\0';
    struct msg m;
    m_init(&m, 6);
    kv_str(&m, "type", "churn");
    kv_u(&m, "ts", NOW);
    kv_str(&m, "sub", s);
    kv_str(&m, "region", s);
    kv_str(&m, "reason", s);
    kv_str(&m, "segment", s);
    EXPECT(&m, KPI_BAD_NONE);
}

Test(decode, validates_known_keys_the_event_type_does_not_use)
{
    struct msg m;
    base(&m, "churn", 1);
    kv_u(&m, "score", 11);
    EXPECT(&m, KPI_BAD_SCORE_OUT_OF_RANGE);
    base(&m, "activation", 1);
    kv_str(&m, "amount", "free");
    EXPECT(&m, KPI_BAD_AMOUNT_NOT_NUMBER);
    base(&m, "usage", 1);
    kv_u(&m, "reason", 1);
    EXPECT(&m, KPI_BAD_REASON_NOT_STRING);
    base(&m, "churn", 1);
    kv_str(&m, "survey", "shop");
    EXPECT(&m, KPI_BAD_UNKNOWN_SURVEY);
}

Test(decode, decodes_with_no_dimensions_configured)
{
    struct kpi_decoder d0;
    cr_assert_eq(kpi_decoder_init(&d0, NULL, 0, SKEW, MAX_STR, NULL, 0), 0);
    struct msg m;
    base(&m, "activation", 1);
    kv_u(&m, "region", 5); /* not a dimension here: an unknown key */
    struct kpi_event ev;
    cr_assert_eq(kpi_decode(&d0, m.sb.data, m.sb.size, NOW, &ev), KPI_BAD_NONE);
    m_free(&m);
}

/* ---- one test per reason ---- */

Test(decode, rejects_an_empty_message)
{
    expect_example(KPI_BAD_EMPTY);
}

Test(decode, rejects_a_top_level_value_that_is_not_a_map)
{
    expect_example(KPI_BAD_NOT_MAP);
}

Test(decode, rejects_a_message_that_ends_inside_a_value)
{
    expect_example(KPI_BAD_TRUNCATED);
}

Test(decode, rejects_a_map32_claiming_four_billion_pairs_as_truncated)
{
    expect_example(KPI_BAD_TRUNCATED); /* and the raw cases: map32 */
}

Test(decode, rejects_nested_counts_larger_than_the_bytes_left_as_truncated)
{
    expect_example(KPI_BAD_TRUNCATED); /* and the raw cases: array32, map16, str32, ext32 */
}

Test(decode, rejects_the_never_used_byte_as_malformed)
{
    expect_example(KPI_BAD_MALFORMED);
}

Test(decode, rejects_trailing_bytes_after_the_map)
{
    expect_example(KPI_BAD_TRAILING_BYTES);
}

Test(decode, rejects_a_key_that_is_not_a_string)
{
    expect_example(KPI_BAD_KEY_NOT_STRING);
    struct msg m;
    base(&m, "activation", 1);
    msgpack_pack_bin_with_body(&m.pk, "type", 4);
    msgpack_pack_uint64(&m.pk, 1);
    EXPECT(&m, KPI_BAD_KEY_NOT_STRING);
}

Test(decode, rejects_a_known_key_given_twice)
{
    expect_example(KPI_BAD_DUPLICATE_KEY);
    struct msg m;
    base(&m, "activation", 2);
    kv_str(&m, "plan", "a");
    kv_str(&m, "plan", "a");
    EXPECT(&m, KPI_BAD_DUPLICATE_KEY);
}

Test(decode, rejects_nesting_deeper_than_the_limit)
{
    expect_example(KPI_BAD_TOO_DEEP);
}

Test(decode, rejects_a_map_or_array_where_a_known_key_needs_a_scalar)
{
    expect_example(KPI_BAD_NESTED_VALUE);
    struct msg m;
    base(&m, "usage", 1);
    k(&m, "amount");
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_uint64(&m.pk, 5);
    EXPECT(&m, KPI_BAD_NESTED_VALUE);
}

Test(decode, rejects_a_string_longer_than_the_limit)
{
    expect_example(KPI_BAD_OVERSIZED_STRING);
    struct msg m;
    m_init(&m, 1);
    kv_str(&m, "type", too_long());
    EXPECT(&m, KPI_BAD_OVERSIZED_STRING);
    static const char *keys[] = {"sub", "region", "survey", "reason"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        m_init(&m, 4);
        kv_str(&m, "type", "nps");
        kv_u(&m, "ts", NOW);
        kv_u(&m, "score", 1);
        kv_str(&m, keys[i], too_long());
        EXPECT(&m, KPI_BAD_OVERSIZED_STRING);
    }
}

Test(decode, rejects_a_message_without_type)
{
    expect_example(KPI_BAD_MISSING_TYPE);
}

Test(decode, rejects_a_type_that_is_not_a_string)
{
    expect_example(KPI_BAD_TYPE_NOT_STRING);
}

Test(decode, rejects_an_unknown_type)
{
    expect_example(KPI_BAD_UNKNOWN_TYPE);
    struct msg m;
    base(&m, "Usage", 0); /* names are case-sensitive */
    EXPECT(&m, KPI_BAD_UNKNOWN_TYPE);
}

Test(decode, rejects_a_message_without_ts)
{
    expect_example(KPI_BAD_MISSING_TS);
}

Test(decode, rejects_a_ts_that_is_not_a_uint)
{
    expect_example(KPI_BAD_TS_NOT_UINT);
}

Test(decode, rejects_a_ts_beyond_the_clock_skew)
{
    expect_example(KPI_BAD_TS_IN_FUTURE);
}

Test(decode, rejects_a_message_without_sub)
{
    expect_example(KPI_BAD_MISSING_SUB);
}

Test(decode, rejects_a_sub_that_is_neither_a_uint_nor_a_non_empty_string)
{
    expect_example(KPI_BAD_SUB_WRONG_TYPE);
}

Test(decode, rejects_a_dimension_that_is_not_a_string)
{
    expect_example(KPI_BAD_DIM_NOT_STRING);
}

Test(decode, rejects_an_amount_that_is_not_a_number)
{
    expect_example(KPI_BAD_AMOUNT_NOT_NUMBER);
}

Test(decode, rejects_a_negative_amount)
{
    expect_example(KPI_BAD_AMOUNT_NEGATIVE);
}

Test(decode, rejects_a_nan_or_infinite_amount)
{
    expect_example(KPI_BAD_AMOUNT_NOT_FINITE);
}

Test(decode, rejects_an_amount_beyond_2_pow_53_micro_units)
{
    expect_example(KPI_BAD_AMOUNT_OUT_OF_RANGE);
}

Test(decode, rejects_a_volume_that_is_not_a_uint)
{
    expect_example(KPI_BAD_VOLUME_NOT_UINT);
}

Test(decode, rejects_a_volume_above_2_pow_53)
{
    expect_example(KPI_BAD_VOLUME_OUT_OF_RANGE);
}

Test(decode, rejects_an_nps_event_without_score)
{
    expect_example(KPI_BAD_MISSING_SCORE);
}

Test(decode, rejects_a_score_that_is_not_a_uint)
{
    expect_example(KPI_BAD_SCORE_NOT_UINT);
}

Test(decode, rejects_score_above_ten)
{
    expect_example(KPI_BAD_SCORE_OUT_OF_RANGE);
}

Test(decode, rejects_a_survey_that_is_not_a_string)
{
    expect_example(KPI_BAD_SURVEY_NOT_STRING);
}

Test(decode, rejects_an_unknown_survey)
{
    expect_example(KPI_BAD_UNKNOWN_SURVEY);
}

Test(decode, rejects_a_churn_reason_that_is_not_a_string)
{
    expect_example(KPI_BAD_REASON_NOT_STRING);
}

Test(decode, rejects_ext_under_any_known_key_as_that_keys_wrong_type)
{
    static const struct {
        const char *key;
        enum kpi_bad_reason want;
    } cases[] = {
        {"type", KPI_BAD_TYPE_NOT_STRING},         {"ts", KPI_BAD_TS_NOT_UINT},
        {"sub", KPI_BAD_SUB_WRONG_TYPE},           {"region", KPI_BAD_DIM_NOT_STRING},
        {"amount", KPI_BAD_AMOUNT_NOT_NUMBER},     {"bytes", KPI_BAD_VOLUME_NOT_UINT},
        {"seconds", KPI_BAD_VOLUME_NOT_UINT},      {"score", KPI_BAD_SCORE_NOT_UINT},
        {"survey", KPI_BAD_SURVEY_NOT_STRING},     {"reason", KPI_BAD_REASON_NOT_STRING},
        {"provision_ms", KPI_BAD_VOLUME_NOT_UINT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct msg m;
        m_init(&m, 1);
        kv_ext(&m, cases[i].key);
        struct kpi_event ev;
        enum kpi_bad_reason got = decode_bytes(m.sb.data, m.sb.size, &ev);
        cr_assert_eq(got, cases[i].want, "%s: got %s", cases[i].key, kpi_bad_reason_name(got));
        m_free(&m);
    }
}

/* ---- whole-decoder properties ---- */

Test(decode, every_prefix_of_a_valid_message_is_truncated)
{
    for (size_t e = 0; e < N_EXAMPLES; e++) {
        if (examples[e].want != KPI_BAD_NONE)
            continue;
        struct msg m;
        examples[e].build(&m);
        struct kpi_event ev;
        cr_assert_eq(decode_bytes(m.sb.data, m.sb.size, &ev), KPI_BAD_NONE, "%s", examples[e].name);
        for (size_t len = 0; len < m.sb.size; len++) {
            enum kpi_bad_reason r = decode_bytes(m.sb.data, len, &ev);
            cr_assert_eq(r, len ? KPI_BAD_TRUNCATED : KPI_BAD_EMPTY, "%s, prefix %zu of %zu: %s",
                         examples[e].name, len, m.sb.size, kpi_bad_reason_name(r));
        }
        m_free(&m);
    }
}

Test(decode, every_decoder_reason_has_an_example_that_produces_exactly_it)
{
    for (int r = KPI_BAD_NONE + 1; r < KPI_BAD__COUNT; r++) {
        if (r == KPI_BAD_TOO_LATE)
            continue; /* the windows' reason, never the decoder's */
        size_t found = 0;
        for (size_t i = 0; i < N_EXAMPLES; i++)
            if (examples[i].want == (enum kpi_bad_reason)r) {
                found++;
                cr_assert_str_eq(examples[i].name, kpi_bad_reason_name((enum kpi_bad_reason)r));
            }
        cr_assert_eq(found, 1, "%s has %zu examples", kpi_bad_reason_name((enum kpi_bad_reason)r),
                     found);
    }
    for (size_t i = 0; i < N_EXAMPLES; i++) {
        struct msg m;
        examples[i].build(&m);
        struct kpi_event ev;
        enum kpi_bad_reason got = decode_bytes(m.sb.data, m.sb.size, &ev);
        cr_assert_eq(got, examples[i].want, "%s: got %s", examples[i].name,
                     kpi_bad_reason_name(got));
        m_free(&m);
    }
}

/* The fuzzer's seeds are the examples, byte for byte: written to the
 * directory KPI_WRITE_CORPUS names (default: fuzz-corpus in the build tree),
 * then read back. */
Test(decode, seed_corpus_is_written_from_the_examples)
{
    const char *out = getenv("KPI_WRITE_CORPUS");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", out && *out ? out : KPI_BINARY_DIR "/fuzz-corpus");
    cr_assert(mkdir(dir, 0755) == 0 || errno == EEXIST, "%s: %s", dir, strerror(errno));
    for (size_t i = 0; i < N_EXAMPLES; i++) {
        struct msg m;
        examples[i].build(&m);
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, examples[i].name);
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        if (m.sb.size)
            cr_assert_eq(fwrite(m.sb.data, 1, m.sb.size, f), m.sb.size);
        cr_assert_eq(fclose(f), 0);
        f = fopen(path, "rb");
        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        char buf[1024];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        cr_assert(n == m.sb.size && (n == 0 || memcmp(buf, m.sb.data, n) == 0),
                  "%s differs from its example", path);
        m_free(&m);
    }
}

Test(decode, every_reason_has_a_distinct_stable_name)
{
    for (int a = 0; a < KPI_BAD__COUNT; a++) {
        const char *n = kpi_bad_reason_name((enum kpi_bad_reason)a);
        cr_assert(n && *n && strcmp(n, "unknown"), "reason %d has a name", a);
        for (const char *c = n; *c; c++)
            cr_assert((*c >= 'a' && *c <= 'z') || *c == '_', "%s is snake_case", n);
        for (int b = 0; b < a; b++)
            cr_assert_str_neq(n, kpi_bad_reason_name((enum kpi_bad_reason)b));
    }
    cr_assert_str_eq(kpi_bad_reason_name(KPI_BAD_NOT_MAP), "not_map");
    cr_assert_str_eq(kpi_bad_reason_name(KPI_BAD_TRUNCATED), "truncated");
    cr_assert_str_eq(kpi_bad_reason_name(KPI_BAD_SCORE_OUT_OF_RANGE), "score_out_of_range");
    cr_assert_str_eq(kpi_bad_reason_name(KPI_BAD_TOO_LATE), "too_late");
    cr_assert_str_eq(kpi_bad_reason_name(KPI_BAD__COUNT), "unknown");
    cr_assert_str_eq(kpi_bad_reason_name((enum kpi_bad_reason) - 1), "unknown");
}

/* ---- decoder configuration ---- */

Test(decode, init_rejects_a_dimension_named_like_a_reserved_key)
{
    static const char *reserved[] = {"type",    "ts",    "sub",    "amount", "bytes",
                                     "seconds", "score", "survey", "reason", "provision_ms"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        struct kpi_decoder d;
        char err[128] = "";
        const char *names[] = {"region", reserved[i]};
        cr_assert_eq(kpi_decoder_init(&d, names, 2, 0, 64, err, sizeof(err)), KPI_ERR_INVAL);
        cr_assert(strstr(err, reserved[i]), "errstr names '%s': %s", reserved[i], err);
    }
}

Test(decode, init_rejects_a_dimension_listed_twice)
{
    struct kpi_decoder d;
    char err[128] = "";
    const char *names[] = {"plan", "region", "plan"};
    cr_assert_eq(kpi_decoder_init(&d, names, 3, 0, 64, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "'plan'"), "%s", err);
}

Test(decode, init_rejects_an_empty_dimension_name)
{
    struct kpi_decoder d;
    char err[128] = "";
    const char *names[] = {"region", ""};
    cr_assert_eq(kpi_decoder_init(&d, names, 2, 0, 64, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "dimension 1"), "%s", err);
    const char *null_name[] = {NULL};
    cr_assert_eq(kpi_decoder_init(&d, null_name, 1, 0, 64, err, sizeof(err)), KPI_ERR_INVAL);
}

Test(decode, init_rejects_more_dimensions_than_kpi_max_dims)
{
    struct kpi_decoder d;
    char err[128] = "";
    char bufs[KPI_MAX_DIMS + 1][16];
    const char *names[KPI_MAX_DIMS + 1];
    for (int i = 0; i <= KPI_MAX_DIMS; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "d%d", i);
        names[i] = bufs[i];
    }
    cr_assert_eq(kpi_decoder_init(&d, names, KPI_MAX_DIMS, 0, 64, err, sizeof(err)), 0);
    cr_assert_eq(kpi_decoder_init(&d, names, KPI_MAX_DIMS + 1, 0, 64, err, sizeof(err)),
                 KPI_ERR_INVAL);
    cr_assert_eq(kpi_decoder_init(&d, names, -1, 0, 64, err, sizeof(err)), KPI_ERR_INVAL);
}

Test(decode, init_rejects_negative_skew_and_zero_string_limit)
{
    struct kpi_decoder d;
    char err[128] = "";
    cr_assert_eq(kpi_decoder_init(&d, dims, 3, -1, 64, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "max_skew_ms"), "%s", err);
    cr_assert_eq(kpi_decoder_init(&d, dims, 3, 0, 0, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "max_str_len"), "%s", err);
}

/* ---- event.h ---- */

Test(event, type_names_are_stable_and_lower_case)
{
    cr_assert_str_eq(kpi_event_type_name(KPI_EV_USAGE), "usage");
    cr_assert_str_eq(kpi_event_type_name(KPI_EV_ACTIVATION), "activation");
    cr_assert_str_eq(kpi_event_type_name(KPI_EV_CHURN), "churn");
    cr_assert_str_eq(kpi_event_type_name(KPI_EV_NPS), "nps");
    cr_assert_str_eq(kpi_event_type_name(KPI_EV__COUNT), "unknown");
}
