/* The strict decoder: every field decoded exactly, and every bad-input
 * reason produced by a message that has exactly that problem. */
#include <criterion/criterion.h>
#include <math.h>
#include <msgpack.h>
#include <string.h>

#include "decode.h"
#include "err.h"
#include "hash.h"

#define NOW 1700000000000LL

static struct kpi_decoder dec;
static const char *dims[] = {"region", "plan", "segment"};

static void setup(void)
{
    cr_assert_eq(kpi_decoder_init(&dec, dims, 3, 60000, 64, NULL, 0), 0);
}

/* A tiny builder over msgpack-c's packer. */
struct msg {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void m_init(struct msg *m, uint32_t n_pairs)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&m->pk, n_pairs);
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

static enum kpi_bad_reason decode(struct msg *m, struct kpi_event *ev)
{
    enum kpi_bad_reason r = kpi_decode(&dec, m->sb.data, m->sb.size, NOW, ev);
    return r;
}

static enum kpi_bad_reason decode_free(struct msg *m)
{
    struct kpi_event ev;
    enum kpi_bad_reason r = decode(m, &ev);
    msgpack_sbuffer_destroy(&m->sb);
    return r;
}

/* A valid usage event with `extra` more pairs to be added by the caller. */
static void base(struct msg *m, const char *type, uint32_t extra)
{
    m_init(m, 3 + extra);
    kv_str(m, "type", type);
    kv_u(m, "ts", NOW - 1000);
    kv_u(m, "sub", 42);
}

#define EXPECT(m, reason)                                                                          \
    do {                                                                                           \
        enum kpi_bad_reason got_ = decode_free(m);                                                 \
        cr_assert_eq(got_, reason, "got %s, want %s", kpi_bad_reason_name(got_),                   \
                     kpi_bad_reason_name(reason));                                                 \
    } while (0)

static uint64_t hash_of(const char *s)
{
    return kpi_murmur64a(s, strlen(s), 0xadc83b19ULL);
}

TestSuite(decode, .init = setup);

Test(decode, decodes_a_usage_event_exactly)
{
    struct msg m;
    m_init(&m, 9);
    kv_str(&m, "type", "usage");
    kv_u(&m, "ts", NOW - 5);
    kv_str(&m, "sub", "46701234567");
    kv_str(&m, "region", "eu-west");
    kv_str(&m, "plan", "prepaid");
    kv_str(&m, "segment", "youth");
    kv_u(&m, "amount", 1250000);
    kv_u(&m, "bytes", 1048576);
    kv_u(&m, "seconds", 60);
    struct kpi_event ev;
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_eq(ev.type, KPI_EV_USAGE);
    cr_assert_eq(ev.ts_ms, NOW - 5);
    cr_assert_eq(ev.sub_hash, hash_of("46701234567"));
    cr_assert_eq(ev.amount_micros, 1250000);
    cr_assert_eq(ev.bytes, 1048576);
    cr_assert_eq(ev.seconds, 60);
    cr_assert_eq(ev.dims[0].len, 7);
    cr_assert_eq(memcmp(ev.dims[0].ptr, "eu-west", 7), 0);
    cr_assert_eq(memcmp(ev.dims[2].ptr, "youth", 5), 0);
    cr_assert(ev.dims[0].ptr >= m.sb.data && ev.dims[0].ptr < m.sb.data + m.sb.size,
              "strings point into the message");
    msgpack_sbuffer_destroy(&m.sb);
}

Test(decode, float_amount_is_currency_rounded_to_micro_units)
{
    struct msg m;
    base(&m, "usage", 1);
    k(&m, "amount");
    msgpack_pack_double(&m.pk, 12.3456789);
    struct kpi_event ev;
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_eq(ev.amount_micros, 12345679);
    msgpack_sbuffer_destroy(&m.sb);

    base(&m, "usage", 1);
    k(&m, "amount");
    msgpack_pack_float(&m.pk, 0.5f);
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_eq(ev.amount_micros, 500000);
    msgpack_sbuffer_destroy(&m.sb);

    base(&m, "usage", 1);
    k(&m, "amount");
    msgpack_pack_double(&m.pk, -0.0);
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_eq(ev.amount_micros, 0);
    msgpack_sbuffer_destroy(&m.sb);
}

Test(decode, decodes_nps_with_survey_and_defaults_to_network)
{
    struct msg m;
    base(&m, "nps", 2);
    kv_u(&m, "score", 9);
    kv_str(&m, "survey", "brand");
    struct kpi_event ev;
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_eq(ev.type, KPI_EV_NPS);
    cr_assert_eq(ev.score, 9);
    cr_assert_eq(ev.survey, KPI_SURVEY_BRAND);
    msgpack_sbuffer_destroy(&m.sb);
    base(&m, "nps", 1);
    kv_u(&m, "score", 0);
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_eq(ev.survey, KPI_SURVEY_NETWORK);
    cr_assert_eq(ev.score, 0);
    msgpack_sbuffer_destroy(&m.sb);
}

Test(decode, decodes_activation_and_churn_with_reason)
{
    struct msg m;
    base(&m, "activation", 0);
    struct kpi_event ev;
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_eq(ev.type, KPI_EV_ACTIVATION);
    msgpack_sbuffer_destroy(&m.sb);
    base(&m, "churn", 1);
    kv_str(&m, "reason", "price");
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_eq(ev.type, KPI_EV_CHURN);
    cr_assert_eq(ev.reason.len, 5);
    msgpack_sbuffer_destroy(&m.sb);
}

Test(decode, uint_and_string_subscriber_ids_hash_the_same)
{
    struct msg a, b;
    m_init(&a, 3);
    kv_str(&a, "type", "activation");
    kv_u(&a, "ts", NOW);
    kv_u(&a, "sub", 18446744073709551615ULL);
    m_init(&b, 3);
    kv_str(&b, "type", "activation");
    kv_u(&b, "ts", NOW);
    kv_str(&b, "sub", "18446744073709551615");
    struct kpi_event ea, eb;
    cr_assert_eq(decode(&a, &ea), KPI_BAD_NONE);
    cr_assert_eq(decode(&b, &eb), KPI_BAD_NONE);
    cr_assert_eq(ea.sub_hash, eb.sub_hash);
    cr_assert_eq(ea.sub_hash, hash_of("18446744073709551615"));
    msgpack_sbuffer_destroy(&a.sb);
    msgpack_sbuffer_destroy(&b.sb);
}

Test(decode, missing_and_nil_dimensions_are_absent)
{
    struct msg m;
    base(&m, "activation", 1);
    k(&m, "region");
    msgpack_pack_nil(&m.pk);
    struct kpi_event ev;
    cr_assert_eq(decode(&m, &ev), KPI_BAD_NONE);
    cr_assert_null(ev.dims[0].ptr);
    cr_assert_null(ev.dims[1].ptr);
    msgpack_sbuffer_destroy(&m.sb);
}

Test(decode, ignores_unknown_keys_of_any_shape)
{
    struct msg m;
    base(&m, "activation", 3);
    kv_str(&m, "channel", "web");
    k(&m, "meta");
    msgpack_pack_map(&m.pk, 1);
    k(&m, "tags");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_int(&m.pk, -5);
    msgpack_pack_bin_with_body(&m.pk, "xy", 2);
    k(&m, "ratio");
    msgpack_pack_double(&m.pk, 0.25);
    cr_assert_eq(decode_free(&m), KPI_BAD_NONE);
}

Test(decode, accepts_a_ts_exactly_at_the_skew_limit)
{
    struct msg m;
    m_init(&m, 3);
    kv_str(&m, "type", "activation");
    kv_u(&m, "ts", NOW + 60000);
    kv_u(&m, "sub", 1);
    EXPECT(&m, KPI_BAD_NONE);
}

/* ---- one test per reason ---- */

Test(decode, rejects_empty_message)
{
    struct kpi_event ev;
    cr_assert_eq(kpi_decode(&dec, "", 0, NOW, &ev), KPI_BAD_EMPTY);
}

Test(decode, rejects_a_top_level_array_as_not_map)
{
    const uint8_t b[] = {0x92, 0x01, 0x02};
    struct kpi_event ev;
    cr_assert_eq(kpi_decode(&dec, b, sizeof(b), NOW, &ev), KPI_BAD_NOT_MAP);
    const uint8_t s[] = {0xa3, 'a', 'b', 'c'};
    cr_assert_eq(kpi_decode(&dec, s, sizeof(s), NOW, &ev), KPI_BAD_NOT_MAP);
}

Test(decode, rejects_truncated_message)
{
    const uint8_t b[] = {0x83, 0xa4, 't', 'y', 'p', 'e', 0xa5, 'u', 's'};
    struct kpi_event ev;
    cr_assert_eq(kpi_decode(&dec, b, sizeof(b), NOW, &ev), KPI_BAD_TRUNCATED);
}

Test(decode, rejects_a_map_header_that_promises_more_than_the_bytes)
{
    const uint8_t b[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01};
    struct kpi_event ev;
    cr_assert_eq(kpi_decode(&dec, b, sizeof(b), NOW, &ev), KPI_BAD_TRUNCATED);
}

Test(decode, rejects_the_never_used_byte_as_malformed)
{
    const uint8_t b[] = {0x81, 0xa1, 'x', 0xc1};
    struct kpi_event ev;
    cr_assert_eq(kpi_decode(&dec, b, sizeof(b), NOW, &ev), KPI_BAD_MALFORMED);
}

Test(decode, rejects_trailing_bytes)
{
    struct msg m;
    base(&m, "activation", 0);
    msgpack_pack_nil(&m.pk);
    EXPECT(&m, KPI_BAD_TRAILING_BYTES);
}

Test(decode, rejects_a_non_string_key)
{
    struct msg m;
    base(&m, "activation", 1);
    msgpack_pack_int(&m.pk, 7);
    msgpack_pack_int(&m.pk, 7);
    EXPECT(&m, KPI_BAD_KEY_NOT_STRING);
}

Test(decode, rejects_a_duplicate_known_key)
{
    struct msg m;
    base(&m, "activation", 1);
    kv_u(&m, "ts", NOW);
    EXPECT(&m, KPI_BAD_DUPLICATE_KEY);
}

Test(decode, rejects_nesting_deeper_than_the_limit)
{
    struct msg m;
    base(&m, "activation", 1);
    k(&m, "deep");
    for (int i = 0; i < 40; i++)
        msgpack_pack_array(&m.pk, 1);
    msgpack_pack_nil(&m.pk);
    EXPECT(&m, KPI_BAD_TOO_DEEP);
}

Test(decode, rejects_a_map_where_a_scalar_belongs)
{
    struct msg m;
    base(&m, "activation", 1);
    k(&m, "region");
    msgpack_pack_map(&m.pk, 0);
    EXPECT(&m, KPI_BAD_NESTED_VALUE);
}

Test(decode, rejects_an_oversized_string)
{
    char big[100];
    memset(big, 'x', sizeof(big) - 1);
    big[99] = '\0';
    struct msg m;
    base(&m, "activation", 1);
    kv_str(&m, "region", big);
    EXPECT(&m, KPI_BAD_OVERSIZED_STRING);
}

Test(decode, rejects_missing_type)
{
    struct msg m;
    m_init(&m, 2);
    kv_u(&m, "ts", NOW);
    kv_u(&m, "sub", 1);
    EXPECT(&m, KPI_BAD_MISSING_TYPE);
}

Test(decode, rejects_a_type_that_is_not_a_string)
{
    struct msg m;
    m_init(&m, 3);
    kv_u(&m, "type", 1);
    kv_u(&m, "ts", NOW);
    kv_u(&m, "sub", 1);
    EXPECT(&m, KPI_BAD_TYPE_NOT_STRING);
}

Test(decode, rejects_an_unknown_type)
{
    struct msg m;
    base(&m, "refund", 0);
    EXPECT(&m, KPI_BAD_UNKNOWN_TYPE);
}

Test(decode, rejects_missing_ts)
{
    struct msg m;
    m_init(&m, 2);
    kv_str(&m, "type", "churn");
    kv_u(&m, "sub", 1);
    EXPECT(&m, KPI_BAD_MISSING_TS);
}

Test(decode, rejects_a_negative_or_string_ts)
{
    struct msg m;
    m_init(&m, 3);
    kv_str(&m, "type", "churn");
    k(&m, "ts");
    msgpack_pack_int64(&m.pk, -1);
    kv_u(&m, "sub", 1);
    EXPECT(&m, KPI_BAD_TS_NOT_UINT);
    m_init(&m, 3);
    kv_str(&m, "type", "churn");
    kv_str(&m, "ts", "2026-11-24");
    kv_u(&m, "sub", 1);
    EXPECT(&m, KPI_BAD_TS_NOT_UINT);
}

Test(decode, rejects_a_ts_beyond_the_clock_skew)
{
    struct msg m;
    m_init(&m, 3);
    kv_str(&m, "type", "churn");
    kv_u(&m, "ts", NOW + 60001);
    kv_u(&m, "sub", 1);
    EXPECT(&m, KPI_BAD_TS_IN_FUTURE);
}

Test(decode, rejects_missing_sub)
{
    struct msg m;
    m_init(&m, 2);
    kv_str(&m, "type", "churn");
    kv_u(&m, "ts", NOW);
    EXPECT(&m, KPI_BAD_MISSING_SUB);
}

Test(decode, rejects_a_sub_of_the_wrong_type_or_empty)
{
    struct msg m;
    m_init(&m, 3);
    kv_str(&m, "type", "churn");
    kv_u(&m, "ts", NOW);
    k(&m, "sub");
    msgpack_pack_double(&m.pk, 1.5);
    EXPECT(&m, KPI_BAD_SUB_WRONG_TYPE);
    m_init(&m, 3);
    kv_str(&m, "type", "churn");
    kv_u(&m, "ts", NOW);
    kv_str(&m, "sub", "");
    EXPECT(&m, KPI_BAD_SUB_WRONG_TYPE);
}

Test(decode, rejects_a_dimension_that_is_not_a_string)
{
    struct msg m;
    base(&m, "activation", 1);
    kv_u(&m, "plan", 3);
    EXPECT(&m, KPI_BAD_DIM_NOT_STRING);
}

Test(decode, rejects_an_amount_that_is_not_a_number)
{
    struct msg m;
    base(&m, "usage", 1);
    kv_str(&m, "amount", "12.50");
    EXPECT(&m, KPI_BAD_AMOUNT_NOT_NUMBER);
}

Test(decode, rejects_negative_amounts_int_and_float)
{
    struct msg m;
    base(&m, "usage", 1);
    k(&m, "amount");
    msgpack_pack_int(&m.pk, -3);
    EXPECT(&m, KPI_BAD_AMOUNT_NEGATIVE);
    base(&m, "usage", 1);
    k(&m, "amount");
    msgpack_pack_double(&m.pk, -0.01);
    EXPECT(&m, KPI_BAD_AMOUNT_NEGATIVE);
}

Test(decode, rejects_nan_and_infinite_amounts)
{
    struct msg m;
    base(&m, "usage", 1);
    k(&m, "amount");
    msgpack_pack_double(&m.pk, NAN);
    EXPECT(&m, KPI_BAD_AMOUNT_NOT_FINITE);
    base(&m, "usage", 1);
    k(&m, "amount");
    msgpack_pack_float(&m.pk, INFINITY);
    EXPECT(&m, KPI_BAD_AMOUNT_NOT_FINITE);
}

Test(decode, rejects_amounts_beyond_int64_micro_units)
{
    struct msg m;
    base(&m, "usage", 1);
    k(&m, "amount");
    msgpack_pack_double(&m.pk, 1e13);
    EXPECT(&m, KPI_BAD_AMOUNT_OUT_OF_RANGE);
    base(&m, "usage", 1);
    kv_u(&m, "amount", (uint64_t)INT64_MAX + 1);
    EXPECT(&m, KPI_BAD_AMOUNT_OUT_OF_RANGE);
}

Test(decode, rejects_volumes_that_are_not_uints)
{
    struct msg m;
    base(&m, "usage", 1);
    k(&m, "bytes");
    msgpack_pack_int(&m.pk, -1);
    EXPECT(&m, KPI_BAD_VOLUME_NOT_UINT);
    base(&m, "usage", 1);
    kv_str(&m, "seconds", "60");
    EXPECT(&m, KPI_BAD_VOLUME_NOT_UINT);
}

Test(decode, rejects_nps_without_score)
{
    struct msg m;
    base(&m, "nps", 0);
    EXPECT(&m, KPI_BAD_MISSING_SCORE);
}

Test(decode, rejects_a_score_that_is_not_a_uint)
{
    struct msg m;
    base(&m, "nps", 1);
    k(&m, "score");
    msgpack_pack_double(&m.pk, 9.0);
    EXPECT(&m, KPI_BAD_SCORE_NOT_UINT);
}

Test(decode, rejects_score_above_ten_or_negative)
{
    struct msg m;
    base(&m, "nps", 1);
    kv_u(&m, "score", 11);
    EXPECT(&m, KPI_BAD_SCORE_OUT_OF_RANGE);
    base(&m, "nps", 1);
    k(&m, "score");
    msgpack_pack_int(&m.pk, -1);
    EXPECT(&m, KPI_BAD_SCORE_OUT_OF_RANGE);
    /* Validated on any event type that carries it. */
    base(&m, "churn", 1);
    kv_u(&m, "score", 12);
    EXPECT(&m, KPI_BAD_SCORE_OUT_OF_RANGE);
}

Test(decode, rejects_a_survey_that_is_not_a_string)
{
    struct msg m;
    base(&m, "nps", 2);
    kv_u(&m, "score", 5);
    kv_u(&m, "survey", 1);
    EXPECT(&m, KPI_BAD_SURVEY_NOT_STRING);
}

Test(decode, rejects_an_unknown_survey)
{
    struct msg m;
    base(&m, "nps", 2);
    kv_u(&m, "score", 5);
    kv_str(&m, "survey", "store");
    EXPECT(&m, KPI_BAD_UNKNOWN_SURVEY);
}

Test(decode, rejects_a_churn_reason_that_is_not_a_string)
{
    struct msg m;
    base(&m, "churn", 1);
    kv_u(&m, "reason", 3);
    EXPECT(&m, KPI_BAD_REASON_NOT_STRING);
}

Test(decode, every_prefix_of_a_valid_message_is_truncated)
{
    struct msg m;
    m_init(&m, 6);
    kv_str(&m, "type", "usage");
    kv_u(&m, "ts", NOW);
    kv_u(&m, "sub", 123456789);
    kv_str(&m, "region", "apac");
    k(&m, "amount");
    msgpack_pack_double(&m.pk, 3.25);
    k(&m, "x");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_int(&m.pk, -70000);
    msgpack_pack_bin_with_body(&m.pk, "abc", 3);
    struct kpi_event ev;
    cr_assert_eq(kpi_decode(&dec, m.sb.data, m.sb.size, NOW, &ev), KPI_BAD_NONE);
    for (size_t len = 0; len < m.sb.size; len++) {
        /* An exact-size heap copy, so ASan catches any read past len. */
        char *copy = malloc(len ? len : 1);
        memcpy(copy, m.sb.data, len);
        enum kpi_bad_reason r = kpi_decode(&dec, copy, len, NOW, &ev);
        cr_assert_eq(r, len ? KPI_BAD_TRUNCATED : KPI_BAD_EMPTY, "prefix %zu: %s", len,
                     kpi_bad_reason_name(r));
        free(copy);
    }
    msgpack_sbuffer_destroy(&m.sb);
}

Test(decode, every_reason_has_a_distinct_stable_name)
{
    for (int a = 0; a < KPI_BAD__COUNT; a++) {
        const char *n = kpi_bad_reason_name((enum kpi_bad_reason)a);
        cr_assert(n && *n && strcmp(n, "unknown"), "reason %d has a name", a);
        for (int b = 0; b < a; b++)
            cr_assert_str_neq(n, kpi_bad_reason_name((enum kpi_bad_reason)b));
    }
    cr_assert_str_eq(kpi_bad_reason_name(KPI_BAD_SCORE_OUT_OF_RANGE), "score_out_of_range");
    cr_assert_str_eq(kpi_bad_reason_name(KPI_BAD_TOO_LATE), "too_late");
}

Test(decode, init_rejects_reserved_and_duplicate_dimension_names)
{
    struct kpi_decoder d;
    char err[128] = "";
    const char *a[] = {"region", "score"};
    cr_assert_eq(kpi_decoder_init(&d, a, 2, 0, 64, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "score"), "%s", err);
    const char *b[] = {"plan", "plan"};
    cr_assert_eq(kpi_decoder_init(&d, b, 2, 0, 64, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "plan"), "%s", err);
}
