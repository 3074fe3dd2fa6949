/* The traffic generator and its truth: deterministic, decodable exactly as
 * described, bad events of every kind, realistic mix and skew, exact tallies. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/decode.h"
#include "engine/err.h"
#include "gen/truth.h"
#include "engine/hll.h"
#include "engine/kpi.h"

#define START 1700000000000LL
#define NOW   (START + 10LL * 86400000) /* the decoder's clock: after every event */

static struct kpi_decoder dec;
static const char *const dims[] = {"region", "plan", "segment"};

static void setup(void)
{
    cr_assert_eq(kpi_decoder_init(&dec, dims, 3, 300000, KPI_MAX_STR_DEFAULT, NULL, 0), 0);
}

TestSuite(gen, .init = setup);
TestSuite(truth, .init = setup);

static struct kpi_gen *gen_new(uint64_t seed, double bad)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.seed = seed;
    c.bad_ratio = bad;
    struct kpi_gen *g = kpi_gen_new(&c);
    cr_assert_not_null(g);
    return g;
}

/* The first n events of a generator, concatenated, with their lengths. */
static uint8_t *stream(struct kpi_gen *g, int n, size_t *total)
{
    uint8_t *out = malloc((size_t)n * KPI_GEN_EVENT_MAX);
    size_t used = 0, len;
    struct kpi_gen_info in;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(kpi_gen_next(g, out + used, KPI_GEN_EVENT_MAX, &len, &in), 0);
        used += len;
    }
    *total = used;
    return out;
}

Test(gen, same_seed_gives_identical_bytes)
{
    struct kpi_gen *a = gen_new(7, 0.05), *b = gen_new(7, 0.05);
    size_t la, lb;
    uint8_t *sa = stream(a, 20000, &la), *sb = stream(b, 20000, &lb);
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(sa, sb, la), 0);
    free(sa);
    free(sb);
    kpi_gen_destroy(a);
    kpi_gen_destroy(b);
}

Test(gen, different_seeds_give_different_bytes)
{
    struct kpi_gen *a = gen_new(7, 0.05), *b = gen_new(8, 0.05);
    size_t la, lb;
    uint8_t *sa = stream(a, 20000, &la), *sb = stream(b, 20000, &lb);
    cr_assert(la != lb || memcmp(sa, sb, la) != 0);
    free(sa);
    free(sb);
    kpi_gen_destroy(a);
    kpi_gen_destroy(b);
}

static int strref_is(struct kpi_strref r, const char *s)
{
    return r.ptr && r.len == strlen(s) && memcmp(r.ptr, s, r.len) == 0;
}

Test(gen, good_events_decode_to_exactly_what_info_says)
{
    struct kpi_gen *g = gen_new(3, 0);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    int strs = 0, floats = 0, reasons = 0, no_bytes = 0;
    for (int i = 0; i < 100000; i++) {
        cr_assert_eq(kpi_gen_next(g, buf, sizeof(buf), &len, &in), 0);
        cr_assert_not(in.is_bad);
        struct kpi_event ev;
        enum kpi_bad_reason r = kpi_decode(&dec, buf, len, NOW, &ev);
        cr_assert_eq(r, KPI_BAD_NONE, "event %d: %s", i, kpi_bad_reason_name(r));
        cr_assert_eq(ev.type, in.type);
        cr_assert_eq(ev.ts_ms, in.ts_ms);
        cr_assert_eq(in.sub_id, kpi_gen_sub_id(g, in.sub));
        char digits[24];
        int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)in.sub_id);
        cr_assert_eq(ev.sub_hash, kpi_hll_hash(digits, (size_t)n), "event %d: sub", i);
        cr_assert(strref_is(ev.dims[0], in.region_name));
        cr_assert(strref_is(ev.dims[1], in.plan_name));
        cr_assert(strref_is(ev.dims[2], in.segment_name));
        cr_assert_str_eq(in.region_name, kpi_gen_region_name(in.region));
        cr_assert_str_eq(in.plan_name, kpi_gen_plan_name(in.plan));
        cr_assert_str_eq(in.segment_name, kpi_gen_segment_name(in.segment));
        cr_assert_eq(ev.amount_micros, in.amount_micros, "event %d: amount", i);
        cr_assert_eq(ev.bytes, in.bytes);
        cr_assert_eq(ev.seconds, in.seconds);
        cr_assert_eq(ev.has_provision_ms, in.has_provision_ms, "event %d: provision_ms", i);
        cr_assert_eq(ev.provision_ms, in.provision_ms);
        if (in.type == KPI_EV_USAGE) {
            cr_assert_gt(in.amount_micros, 0);
            no_bytes += in.bytes == 0;
        }
        if (in.type == KPI_EV_NPS) {
            cr_assert_eq(ev.score, in.score);
            cr_assert_eq(ev.survey, in.survey);
        }
        if (in.type == KPI_EV_CHURN) {
            if (in.reason_text) {
                cr_assert(strref_is(ev.reason, in.reason_text));
                reasons++;
            } else {
                cr_assert_null(ev.reason.ptr);
            }
        }
        strs += in.is_sub_str;
        floats += memmem(buf, len, "\246amount\313", 8) != NULL; /* "amount": float 64 */
    }
    /* Both encodings of sub and amount, and the optional fields, do occur. */
    cr_assert(strs > 5000 && strs < 20000, "subscribers sent as str: %d", strs);
    cr_assert(floats > 5000 && floats < 20000, "float amounts: %d", floats);
    cr_assert_gt(reasons, 0);
    cr_assert_gt(no_bytes, 0);
    kpi_gen_destroy(g);
}

Test(gen, bad_events_decode_to_their_intended_reason)
{
    struct kpi_gen *g = gen_new(4, 1.0);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    uint64_t seen[KPI_BAD__COUNT] = {0};
    for (int i = 0; i < 100 * (KPI_BAD__COUNT - 2); i++) {
        cr_assert_eq(kpi_gen_next(g, buf, sizeof(buf), &len, &in), 0);
        cr_assert(in.is_bad);
        cr_assert_eq(in.type, KPI_EV__COUNT);
        struct kpi_event ev;
        enum kpi_bad_reason r = kpi_decode(&dec, buf, len, NOW, &ev);
        cr_assert_eq(r, in.reason, "event %d: decoded as %s, meant %s", i, kpi_bad_reason_name(r),
                     kpi_bad_reason_name(in.reason));
        seen[r]++;
    }
    /* Every reason the decoder has, except too_late (the window's, not the
     * decoder's), in equal numbers. */
    for (int r = 1; r < KPI_BAD__COUNT; r++) {
        if (r == KPI_BAD_TOO_LATE)
            cr_assert_eq(seen[r], 0);
        else
            cr_assert_eq(seen[r], 100, "%s: %llu", kpi_bad_reason_name((enum kpi_bad_reason)r),
                         (unsigned long long)seen[r]);
    }
    kpi_gen_destroy(g);
}

Test(gen, bad_kinds_limits_the_rotation)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.bad_ratio = 1;
    c.bad_kinds = 1ULL << KPI_BAD_NOT_MAP | 1ULL << KPI_BAD_SCORE_OUT_OF_RANGE;
    struct kpi_gen *g = kpi_gen_new(&c);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(kpi_gen_next(g, buf, sizeof(buf), &len, &in), 0);
        cr_assert_eq(in.reason, i % 2 ? KPI_BAD_SCORE_OUT_OF_RANGE : KPI_BAD_NOT_MAP);
    }
    kpi_gen_destroy(g);
    c.bad_kinds = 1ULL << KPI_BAD_TOO_LATE;
    cr_assert_null(kpi_gen_new(&c), "too_late is not the decoder's to report");
}

Test(gen, oversized_strings_exceed_the_configured_limit)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.bad_ratio = 1;
    c.bad_kinds = 1ULL << KPI_BAD_OVERSIZED_STRING;
    c.max_str_len = 1000;
    struct kpi_gen *g = kpi_gen_new(&c);
    struct kpi_decoder d1000;
    cr_assert_eq(kpi_decoder_init(&d1000, dims, 3, 300000, 1000, NULL, 0), 0);
    size_t cap = kpi_gen_event_max(g);
    cr_assert_geq(cap, 1001);
    uint8_t *buf = malloc(cap);
    size_t len;
    struct kpi_gen_info in;
    cr_assert_eq(kpi_gen_next(g, buf, KPI_GEN_EVENT_MAX, &len, &in), KPI_ERR_FULL);
    cr_assert_eq(kpi_gen_next(g, buf, cap, &len, &in), 0);
    struct kpi_event ev;
    cr_assert_eq(kpi_decode(&d1000, buf, len, NOW, &ev), KPI_BAD_OVERSIZED_STRING);
    free(buf);
    kpi_gen_destroy(g);

    /* Up to 200 bytes of limit, KPI_GEN_EVENT_MAX still holds every event. */
    c.max_str_len = 200;
    g = kpi_gen_new(&c);
    cr_assert_eq(kpi_gen_event_max(g), KPI_GEN_EVENT_MAX);
    uint8_t small[KPI_GEN_EVENT_MAX];
    cr_assert_eq(kpi_gen_next(g, small, sizeof(small), &len, &in), 0);
    cr_assert_gt(len, 201);
    kpi_gen_destroy(g);
}

Test(gen, every_event_fits_in_the_documented_bound)
{
    struct kpi_gen *g = gen_new(5, 0.2);
    cr_assert_eq(kpi_gen_event_max(g), KPI_GEN_EVENT_MAX);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len, longest = 0;
    struct kpi_gen_info in;
    for (int i = 0; i < 100000; i++) {
        cr_assert_eq(kpi_gen_next(g, buf, sizeof(buf), &len, &in), 0);
        if (len > longest)
            longest = len;
    }
    cr_assert_leq(longest, KPI_GEN_EVENT_MAX);
    /* Too small a buffer: KPI_ERR_FULL, no write past it, and the stream goes on. */
    uint8_t small[16 + 8];
    memset(small + 16, 0x5a, 8);
    int full = 0;
    for (int i = 0; i < 100; i++)
        full += kpi_gen_next(g, small, 16, &len, &in) == KPI_ERR_FULL;
    cr_assert_gt(full, 90);
    for (int i = 16; i < 24; i++)
        cr_assert_eq(small[i], 0x5a);
    cr_assert_eq(kpi_gen_count(g), 100100);
    kpi_gen_destroy(g);
}

Test(gen, bad_ratio_is_honoured)
{
    struct kpi_gen *g = gen_new(6, 0.05);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    int bad = 0;
    for (int i = 0; i < 100000; i++) {
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        bad += in.is_bad;
    }
    cr_assert(bad > 4700 && bad < 5300, "bad: %d of 100000", bad);
    kpi_gen_destroy(g);
}

static void type_shares(const struct kpi_gen_conf *c, int n, double share[KPI_EV__COUNT])
{
    struct kpi_gen *g = kpi_gen_new(c);
    cr_assert_not_null(g);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    int count[KPI_EV__COUNT] = {0};
    for (int i = 0; i < n; i++) {
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        count[in.type]++;
    }
    for (int t = 0; t < KPI_EV__COUNT; t++)
        share[t] = (double)count[t] / n;
    kpi_gen_destroy(g);
}

Test(gen, type_mix_matches_the_configured_shares)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    double s[KPI_EV__COUNT];
    type_shares(&c, 200000, s); /* 3% nps, 1% activation, 0.5% churn, usage the rest */
    cr_assert(s[KPI_EV_USAGE] > 0.950 && s[KPI_EV_USAGE] < 0.960, "usage %.4f", s[KPI_EV_USAGE]);
    cr_assert(s[KPI_EV_NPS] > 0.027 && s[KPI_EV_NPS] < 0.033, "nps %.4f", s[KPI_EV_NPS]);
    cr_assert(s[KPI_EV_ACTIVATION] > 0.008 && s[KPI_EV_ACTIVATION] < 0.012, "activation %.4f",
              s[KPI_EV_ACTIVATION]);
    cr_assert(s[KPI_EV_CHURN] > 0.004 && s[KPI_EV_CHURN] < 0.006, "churn %.4f", s[KPI_EV_CHURN]);

    c.nps_rate = 0.06;
    c.activation_rate = 0.03;
    c.churn_rate = 0.01;
    type_shares(&c, 100000, s);
    cr_assert(s[KPI_EV_USAGE] > 0.85 && s[KPI_EV_USAGE] < 0.95, "usage %.4f", s[KPI_EV_USAGE]);
    cr_assert(s[KPI_EV_CHURN] > 0.008 && s[KPI_EV_CHURN] < 0.012, "churn %.4f", s[KPI_EV_CHURN]);
}

Test(gen, three_activations_in_four_say_how_long_provisioning_took)
{
    struct kpi_gen *g = gen_new(5, 0);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    int act = 0, with = 0, slow = 0;
    for (int i = 0; i < 200000; i++) {
        cr_assert_eq(kpi_gen_next(g, buf, sizeof(buf), &len, &in), 0);
        int sent = memmem(buf, len, "\254provision_ms", 13) != NULL;
        cr_assert_eq(sent, in.has_provision_ms, "event %d: provision_ms sent as info says", i);
        if (in.type != KPI_EV_ACTIVATION) {
            cr_assert_not(sent, "only activations carry provision_ms");
            continue;
        }
        act++;
        if (!in.has_provision_ms) {
            cr_assert_eq(in.provision_ms, 0);
            continue;
        }
        with++;
        cr_assert(in.provision_ms >= 200 && in.provision_ms < 7200000, "%llu",
                  (unsigned long long)in.provision_ms);
        slow += in.provision_ms >= 120000;
    }
    cr_assert_gt(act, 1000);
    cr_assert(with > act * 0.70 && with < act * 0.80, "%d of %d", with, act);
    cr_assert(slow > with * 0.08 && slow < with * 0.17, "%d of %d over 2 min", slow, with);
    kpi_gen_destroy(g);
}

Test(gen, nps_leans_to_7_to_10_and_one_answer_in_three_is_brand)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.nps_rate = 1;
    c.activation_rate = c.churn_rate = 0;
    struct kpi_gen *g = kpi_gen_new(&c);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    int n = 60000, brand = 0, high = 0, prom = 0, det = 0, no_survey = 0;
    for (int i = 0; i < n; i++) {
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        cr_assert_eq(in.type, KPI_EV_NPS);
        cr_assert_leq(in.score, 10);
        brand += in.survey == KPI_SURVEY_BRAND;
        high += in.score >= 7;
        prom += in.score >= 9;
        det += in.score <= 6;
        no_survey += memmem(buf, len, "survey", 6) == NULL;
    }
    cr_assert(fabs((double)brand / n - 1.0 / 3) < 0.01, "brand share %.3f", (double)brand / n);
    cr_assert_gt((double)high / n, 0.75, "scores 7..10: %.3f", (double)high / n);
    double nps = 100.0 * (prom - det) / n;
    cr_assert(nps > 15 && nps < 35, "NPS %.1f", nps);
    cr_assert_gt(no_survey, n / 5, "network answers often omit the default survey key");
    kpi_gen_destroy(g);
}

static int cmp_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x < y) - (x > y);
}

Test(gen, activity_follows_zipf_with_the_configured_exponent)
{
    enum { SUBS = 10000, N = 2000000 };
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.subscribers = SUBS;
    c.zipf_s = 1.1;
    struct kpi_gen *g = kpi_gen_new(&c);
    uint32_t *per = calloc(SUBS, sizeof(*per));
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    for (int i = 0; i < N; i++) {
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        cr_assert_lt(in.sub, SUBS);
        per[in.sub]++;
    }
    /* The busy ones are spread over the subscriber numbers. */
    uint32_t *copy = malloc(SUBS * sizeof(*copy));
    memcpy(copy, per, SUBS * sizeof(*copy));
    uint64_t lo = SUBS, hi = 0;
    for (int k = 0; k < 10; k++) {
        uint64_t best = 0;
        for (uint64_t s = 0; s < SUBS; s++)
            if (copy[s] > copy[best])
                best = s;
        copy[best] = 0;
        lo = best < lo ? best : lo;
        hi = best > hi ? best : hi;
    }
    cr_assert_gt(hi - lo, SUBS / 2, "the ten busiest are numbers %llu..%llu",
                 (unsigned long long)lo, (unsigned long long)hi);
    free(copy);
    qsort(per, SUBS, sizeof(*per), cmp_desc);
    /* P(rank k) = k^-s / H(N, s): the busiest subscriber's share... */
    double h = 0;
    for (int k = 1; k <= SUBS; k++)
        h += pow(k, -1.1);
    double top = (double)per[0] / N, expect = 1 / h;
    cr_assert(fabs(top - expect) < 0.05 * expect, "top share %.4f, Zipf %.4f", top, expect);
    /* ...and the slope of log(count) over log(rank) for ranks 1..100 is -s. */
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int k = 1; k <= 100; k++) {
        double x = log(k), y = log(per[k - 1]);
        sx += x, sy += y, sxx += x * x, sxy += x * y;
    }
    double slope = (100 * sxy - sx * sy) / (100 * sxx - sx * sx);
    cr_assert(fabs(slope + 1.1) < 0.1, "log-log slope %.3f", slope);
    free(per);
    kpi_gen_destroy(g);
}

Test(gen, attributes_are_fixed_per_subscriber_and_regions_are_skewed)
{
    struct kpi_gen *g = gen_new(9, 0);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    static int16_t seen[100000][4];
    memset(seen, -1, sizeof(seen));
    int region[8] = {0}, youth_prepaid = 0, youth = 0, ent_business = 0, ent = 0;
    for (int i = 0; i < 200000; i++) {
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        int16_t *s = seen[in.sub];
        if (s[0] < 0) {
            s[0] = (int16_t)in.region, s[1] = (int16_t)in.plan, s[2] = (int16_t)in.segment;
            s[3] = (int16_t)in.is_sub_str;
            region[in.region]++;
            if (in.segment == kpi_gen_segment_index("youth"))
                youth++, youth_prepaid += in.plan == 0;
            if (in.segment == kpi_gen_segment_index("enterprise"))
                ent++, ent_business += in.plan == 5;
        } else {
            cr_assert(s[0] == in.region && s[1] == in.plan && s[2] == in.segment &&
                      s[3] == in.is_sub_str);
        }
    }
    cr_assert_eq(kpi_gen_n_regions(), 8);
    cr_assert_str_eq(kpi_gen_region_name(0), "eu-west");
    for (int r = 1; r < 8; r++)
        cr_assert_gt(region[r - 1], region[r], "region %d is not smaller than %d", r, r - 1);
    cr_assert_gt(region[0], 3 * region[7]);
    cr_assert_gt(youth_prepaid * 2, youth, "youth is mostly prepaid");
    cr_assert_gt(ent_business * 2, ent, "enterprise is mostly business");
    kpi_gen_destroy(g);
}

Test(gen, sites_add_a_fixed_home_site_per_subscriber_with_n_values)
{
    static const char *const dims4[] = {"region", "plan", "segment", "site"};
    struct kpi_decoder d4;
    cr_assert_eq(kpi_decoder_init(&d4, dims4, 4, 300000, KPI_MAX_STR_DEFAULT, NULL, 0), 0);
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.seed = 4;
    c.sites = 50;
    c.subscribers = 20000;
    struct kpi_gen *g = kpi_gen_new(&c);
    cr_assert_not_null(g);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    static int site_of[20000];
    memset(site_of, -1, sizeof(site_of));
    int used[50] = {0}, n_used = 0;
    for (int i = 0; i < 100000; i++) {
        cr_assert_eq(kpi_gen_next(g, buf, sizeof(buf), &len, &in), 0);
        struct kpi_event ev;
        enum kpi_bad_reason r = kpi_decode(&d4, buf, len, NOW, &ev);
        cr_assert_eq(r, KPI_BAD_NONE, "event %d: %s", i, kpi_bad_reason_name(r));
        cr_assert(strref_is(ev.dims[0], in.region_name)); /* the others are unchanged */
        cr_assert_not_null(ev.dims[3].ptr, "event %d has no site", i);
        char v[32];
        cr_assert_lt(ev.dims[3].len, sizeof(v));
        memcpy(v, ev.dims[3].ptr, ev.dims[3].len);
        v[ev.dims[3].len] = '\0';
        int n = -1;
        cr_assert_eq(sscanf(v, "site-%d", &n), 1, "site value '%s'", v);
        cr_assert(n >= 0 && n < 50, "site value '%s'", v);
        if (site_of[in.sub] < 0)
            site_of[in.sub] = n;
        cr_assert_eq(site_of[in.sub], n, "subscriber %llu moved site", (unsigned long long)in.sub);
        n_used += !used[n]++;
    }
    cr_assert_eq(n_used, 50, "every site is someone's home");
    kpi_gen_destroy(g);
}

Test(gen, event_time_advances_at_the_rate_with_bounded_jitter)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.events_per_sec = 1000;
    c.jitter_ms = 500;
    struct kpi_gen *g = kpi_gen_new(&c);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    int64_t max_ts = 0;
    int out_of_order = 0;
    for (int i = 0; i < 50000; i++) {
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        int64_t now = START + i; /* one event per ms of event time */
        cr_assert(in.ts_ms <= now && in.ts_ms >= now - 500, "event %d at %lld", i,
                  (long long)(in.ts_ms - START));
        out_of_order += in.ts_ms < max_ts;
        if (in.ts_ms > max_ts)
            max_ts = in.ts_ms;
    }
    cr_assert_gt(out_of_order, 10000, "events arrive out of order");
    kpi_gen_destroy(g);
}

/* Churn share of the events matching `pick` before, during and after a spike
 * at event-time offsets [100 s, 200 s) (events 100000..199999). */
static void spike_run(struct kpi_gen_conf *c, int (*pick)(const struct kpi_gen_info *),
                      double share[3], double other[3])
{
    struct kpi_gen *g = kpi_gen_new(c);
    cr_assert_not_null(g);
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    double n[3] = {0}, churn[3] = {0}, on[3] = {0}, ochurn[3] = {0};
    for (int i = 0; i < 300000; i++) {
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        int64_t off = in.ts_ms - c->start_ts_ms;
        int phase = off < 100000 ? 0 : off < 200000 ? 1 : 2;
        if (pick(&in)) {
            n[phase]++;
            churn[phase] += in.type == KPI_EV_CHURN;
        } else {
            on[phase]++;
            ochurn[phase] += in.type == KPI_EV_CHURN;
        }
    }
    for (int p = 0; p < 3; p++) {
        share[p] = churn[p] / n[p];
        other[p] = ochurn[p] / on[p];
    }
    kpi_gen_destroy(g);
}

static int is_youth(const struct kpi_gen_info *in)
{
    return strcmp(in->segment_name, "youth") == 0;
}

static int is_latam(const struct kpi_gen_info *in)
{
    return strcmp(in->region_name, "latam") == 0;
}

static void spike_conf(struct kpi_gen_conf *c)
{
    kpi_gen_conf_defaults(c);
    c->events_per_sec = 1000;
    c->churn_rate = 0.01;
    c->spike_factor = 8;
    c->spike_start_ms = 100000;
    c->spike_end_ms = 200000;
}

/* spike_run with the spike on a segment or a region ("" for none). */
static void spike_on(const char *segment, const char *region,
                     int (*pick)(const struct kpi_gen_info *), double share[3], double other[3])
{
    struct kpi_gen_conf c;
    spike_conf(&c);
    snprintf(c.spike_segment, sizeof(c.spike_segment), "%s", segment);
    snprintf(c.spike_region, sizeof(c.spike_region), "%s", region);
    spike_run(&c, pick, share, other);
}

Test(gen, spike_multiplies_churn_in_its_segment_within_its_interval_only)
{
    double s[3], o[3];
    spike_on("youth", "", is_youth, s, o);
    cr_assert(s[0] > 0.007 && s[0] < 0.013, "before: %.4f", s[0]);
    cr_assert(s[1] > 0.065 && s[1] < 0.095, "during: %.4f (8 x 0.01)", s[1]);
    cr_assert(s[2] > 0.007 && s[2] < 0.013, "after: %.4f", s[2]);
    for (int p = 0; p < 3; p++)
        cr_assert(o[p] > 0.008 && o[p] < 0.012, "other segments, phase %d: %.4f", p, o[p]);
}

Test(gen, spike_can_target_a_region)
{
    double s[3], o[3];
    spike_on("", "latam", is_latam, s, o);
    cr_assert(s[1] > 0.06 && s[1] < 0.10, "during: %.4f", s[1]);
    cr_assert(s[0] < 0.015 && s[2] < 0.015, "outside: %.4f %.4f", s[0], s[2]);
    cr_assert(o[1] > 0.008 && o[1] < 0.012, "other regions during: %.4f", o[1]);
}

Test(gen, invalid_settings_are_named)
{
    struct kpi_gen_conf c;
    char err[256];
    kpi_gen_conf_defaults(&c);
    cr_assert_eq(kpi_gen_conf_validate(&c, err, sizeof(err)), 0);
    c.subscribers = 0;
    cr_assert_eq(kpi_gen_conf_validate(&c, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "subscribers"), "%s", err);
    cr_assert_null(kpi_gen_new(&c));
    kpi_gen_conf_defaults(&c);
    strcpy(c.spike_segment, "teenagers");
    cr_assert_eq(kpi_gen_conf_validate(&c, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "spike_segment") && strstr(err, "teenagers"), "%s", err);
    kpi_gen_conf_defaults(&c);
    c.churn_rate = 0.99;
    cr_assert_eq(kpi_gen_conf_validate(&c, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "churn_rate"), "%s", err);
    kpi_gen_conf_defaults(&c);
    c.bad_ratio = NAN;
    cr_assert_eq(kpi_gen_conf_validate(&c, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "bad_ratio"), "%s", err);
    kpi_gen_conf_defaults(&c);
    c.start_ts_ms = 1000; /* with 2 s of jitter, times would go negative */
    cr_assert_eq(kpi_gen_conf_validate(&c, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "start_ts_ms"), "%s", err);
}

/* ---- the truth ---- */

#define BUCKET 5000
#define NSETS  4
static const char *const set_names[NSETS] = {"all", "region", "region+plan", "segment"};

/* The label of a decoded event in a set, the engine's way. */
static void label_of(const struct kpi_event *ev, int set, char *out, size_t cap)
{
    struct kpi_strref r = ev->dims[0], p = ev->dims[1], s = ev->dims[2];
    switch (set) {
    case 0: snprintf(out, cap, "all"); break;
    case 1: snprintf(out, cap, "%.*s", (int)r.len, r.ptr); break;
    case 2: snprintf(out, cap, "%.*s|%.*s", (int)r.len, r.ptr, (int)p.len, p.ptr); break;
    default: snprintf(out, cap, "%.*s", (int)s.len, s.ptr); break;
    }
}

/* A recount by brute force, from the *decoded* events: a flat list of
 * (bucket, set, label) cells, counted with the engine's kpi_counters_count,
 * and distinct subscribers by a bitmap per cell. */
struct recount_cell {
    int64_t bucket;
    int set;
    char label[64];
    struct kpi_counters c;
    uint8_t *seen;
    uint64_t active;
};

struct recount {
    struct recount_cell *cells;
    int n, cap;
};

static struct recount_cell *recount_cell(struct recount *rc, int64_t bucket, int set,
                                         const char *label, uint64_t subs)
{
    for (int i = 0; i < rc->n; i++)
        if (rc->cells[i].bucket == bucket && rc->cells[i].set == set &&
            strcmp(rc->cells[i].label, label) == 0)
            return &rc->cells[i];
    if (rc->n == rc->cap) {
        rc->cap = rc->cap ? 2 * rc->cap : 256;
        rc->cells = realloc(rc->cells, (size_t)rc->cap * sizeof(*rc->cells));
    }
    struct recount_cell *c = &rc->cells[rc->n++];
    memset(c, 0, sizeof(*c));
    c->bucket = bucket;
    c->set = set;
    snprintf(c->label, sizeof(c->label), "%s", label);
    c->seen = calloc(subs, 1);
    return c;
}

static struct kpi_gen_conf truth_gen_conf(void)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.seed = 21;
    c.subscribers = 3000;
    c.events_per_sec = 2000; /* 60000 events: 30 s, 7 buckets */
    c.bad_ratio = 0.02;
    return c;
}

static void truth_init(struct kpi_gen_truth *t, uint64_t subs, uint32_t max_buckets)
{
    struct kpi_gen_truth_conf tc;
    kpi_gen_truth_conf_defaults(&tc);
    tc.subscribers = subs;
    tc.bucket_ms = BUCKET;
    tc.sets = "region,region+plan,segment";
    tc.max_buckets = max_buckets;
    char err[256];
    cr_assert_eq(kpi_gen_truth_init(t, &tc, err, sizeof(err)), 0, "%s", err);
}

/* A generator with a truth gen_conf and the truth of what it makes;
 * truth_run_next makes the next event into buf/len/in and counts it. */
struct truth_run {
    struct kpi_gen_conf c;
    struct kpi_gen *g;
    struct kpi_gen_truth t;
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
};

static void truth_run_start(struct truth_run *tr, struct kpi_gen_conf c, uint32_t max_buckets)
{
    tr->c = c;
    tr->g = kpi_gen_new(&tr->c);
    cr_assert_not_null(tr->g);
    truth_init(&tr->t, c.subscribers, max_buckets);
}

static void truth_run_next(struct truth_run *tr)
{
    cr_assert_eq(kpi_gen_next(tr->g, tr->buf, sizeof(tr->buf), &tr->len, &tr->in), 0);
    kpi_gen_truth_add(&tr->t, &tr->in);
}

static void truth_run_fini(struct truth_run *tr)
{
    kpi_gen_truth_fini(&tr->t);
    kpi_gen_destroy(tr->g);
}

Test(truth, tallies_equal_a_recount_of_the_decoded_events)
{
    struct truth_run tr;
    truth_run_start(&tr, truth_gen_conf(), 64);
    struct recount rc = {0};
    struct kpi_counters total = {0};
    uint64_t bad_by_reason[KPI_BAD__COUNT] = {0}, bad = 0;
    uint8_t *all_seen = calloc(tr.c.subscribers, 1);
    uint64_t distinct = 0;
    const int n = 60000;
    for (int i = 0; i < n; i++) {
        truth_run_next(&tr);
        struct kpi_event ev;
        enum kpi_bad_reason r = kpi_decode(&dec, tr.buf, tr.len, NOW, &ev);
        if (r) {
            bad++;
            bad_by_reason[r]++;
            continue;
        }
        kpi_counters_count(&total, &ev);
        if (!all_seen[tr.in.sub]) {
            all_seen[tr.in.sub] = 1;
            distinct++;
        }
        int64_t bucket = ev.ts_ms - ev.ts_ms % BUCKET;
        for (int s = 0; s < NSETS; s++) {
            char label[64];
            label_of(&ev, s, label, sizeof(label));
            struct recount_cell *cell = recount_cell(&rc, bucket, s, label, tr.c.subscribers);
            kpi_counters_count(&cell->c, &ev);
            if (!cell->seen[tr.in.sub]) {
                cell->seen[tr.in.sub] = 1;
                cell->active++;
            }
        }
    }
    cr_assert_eq(tr.t.events, (uint64_t)n);
    cr_assert_eq(tr.t.bad, bad);
    cr_assert_eq(tr.t.good, (uint64_t)total.events);
    for (int r = 0; r < KPI_BAD__COUNT; r++)
        cr_assert_eq(tr.t.bad_by_reason[r], bad_by_reason[r]);
    cr_assert_eq(tr.t.by_type[KPI_EV_USAGE], (uint64_t)total.usage);
    cr_assert_eq(tr.t.by_type[KPI_EV_ACTIVATION], (uint64_t)total.activations);
    cr_assert_eq(tr.t.by_type[KPI_EV_CHURN], (uint64_t)total.churns);
    cr_assert_eq(tr.t.revenue, total.revenue);
    cr_assert_eq(tr.t.bytes, total.bytes);
    cr_assert_eq(tr.t.seconds, total.seconds);
    for (int s = 0; s < KPI_SURVEY__COUNT; s++)
        for (int k = 0; k < 3; k++)
            cr_assert_eq(tr.t.nps[s][k], (uint64_t)total.nps[s][k]);
    for (int k = 0; k < KPI_NCOUNTERS; k++)
        cr_assert_eq(tr.t.counters.v[k], total.v[k], "counter %s", kpi_counter_names[k]);
    cr_assert_gt(total.provisioned, 0, "the traffic exercises every counter...");
    cr_assert_gt(total.provision_ms, 0);
    cr_assert_lt(total.provisioned, total.activations, "...and activations without it");
    cr_assert_eq(tr.t.distinct, distinct);
    cr_assert_eq(kpi_gen_truth_untracked(&tr.t), 0);

    int cells = 0;
    for (int i = 0; i < rc.n; i++) {
        struct recount_cell *e = &rc.cells[i];
        const struct kpi_gen_cell *got =
            kpi_gen_truth_cell(&tr.t, set_names[e->set], e->label, e->bucket);
        cr_assert_not_null(got, "cell %s=%s @%lld", set_names[e->set], e->label,
                           (long long)e->bucket);
        cr_assert_eq(memcmp(&got->c, &e->c, sizeof(e->c)), 0, "counters of %s=%s @%lld",
                     set_names[e->set], e->label, (long long)e->bucket);
        cr_assert_eq(got->active, e->active, "active of %s=%s", set_names[e->set], e->label);
        cr_assert_eq(kpi_gen_truth_distinct(&tr.t, set_names[e->set], e->label, e->bucket,
                                            e->bucket + BUCKET),
                     (int64_t)e->active);
        cells++;
        free(e->seen);
    }
    cr_assert_gt(cells, 200);
    cr_assert_null(kpi_gen_truth_cell(&tr.t, "region", "atlantis", START));
    cr_assert_null(kpi_gen_truth_cell(&tr.t, "plan", "prepaid", START), "no such set");
    cr_assert_null(kpi_gen_truth_cell(&tr.t, "region", "eu-west", START - 3600000), "no events");
    free(rc.cells);
    free(all_seen);
    truth_run_fini(&tr);
}

Test(truth, distinct_over_a_window_is_the_exact_union)
{
    struct truth_run tr;
    truth_run_start(&tr, truth_gen_conf(), 64);
    uint8_t *seen = calloc(tr.c.subscribers, 1), *seen_youth = calloc(tr.c.subscribers, 1);
    int64_t from = START + 10000, to = START + 25000; /* three buckets */
    int64_t n = 0, n_youth = 0;
    for (int i = 0; i < 60000; i++) {
        truth_run_next(&tr);
        if (tr.in.is_bad || tr.in.ts_ms < from || tr.in.ts_ms >= to)
            continue;
        n += !seen[tr.in.sub];
        seen[tr.in.sub] = 1;
        if (strcmp(tr.in.segment_name, "youth") == 0) {
            n_youth += !seen_youth[tr.in.sub];
            seen_youth[tr.in.sub] = 1;
        }
    }
    cr_assert_gt(n, 1000);
    cr_assert_eq(kpi_gen_truth_distinct(&tr.t, "all", "all", from, to), n);
    cr_assert_eq(kpi_gen_truth_distinct(&tr.t, "segment", "youth", from, to), n_youth);
    cr_assert_eq(kpi_gen_truth_distinct(&tr.t, "all", "all", INT64_MIN, INT64_MAX),
                 (int64_t)tr.t.distinct);
    cr_assert_eq(kpi_gen_truth_distinct(&tr.t, "segment", "teens", from, to), -1);
    free(seen);
    free(seen_youth);
    truth_run_fini(&tr);
}

Test(truth, a_zeroed_truth_keeps_the_totals_only)
{
    struct truth_run tr; /* tr.t is the full truth */
    truth_run_start(&tr, truth_gen_conf(), 64);
    struct kpi_gen_truth plain;
    memset(&plain, 0, sizeof(plain));
    for (int i = 0; i < 20000; i++) {
        truth_run_next(&tr);
        kpi_gen_truth_add(&plain, &tr.in);
    }
    cr_assert_eq(plain.good, tr.t.good);
    cr_assert_eq(plain.revenue, tr.t.revenue);
    cr_assert_eq(memcmp(plain.bad_by_reason, tr.t.bad_by_reason, sizeof(plain.bad_by_reason)), 0);
    cr_assert_eq(plain.distinct, 0);
    cr_assert_null(kpi_gen_truth_cell(&plain, "all", "all", START));
    cr_assert_eq(kpi_gen_truth_distinct(&plain, "all", "all", START, START + BUCKET), -1);
    kpi_gen_truth_fini(&plain); /* a no-op */
    truth_run_fini(&tr);
}

Test(truth, buckets_past_the_limit_are_counted_as_untracked)
{
    struct kpi_gen_conf c = truth_gen_conf();
    c.jitter_ms = 0;
    struct truth_run tr;
    truth_run_start(&tr, c, 2); /* 10 s of the 30 */
    uint64_t late = 0;
    for (int i = 0; i < 60000; i++) {
        truth_run_next(&tr);
        late += !tr.in.is_bad && tr.in.ts_ms >= START + 2 * BUCKET;
    }
    cr_assert_gt(late, 0);
    cr_assert_eq(kpi_gen_truth_untracked(&tr.t), late);
    cr_assert_eq(tr.t.good, tr.t.events - tr.t.bad, "totals still count everything");
    cr_assert_not_null(kpi_gen_truth_cell(&tr.t, "all", "all", START + BUCKET));
    cr_assert_null(kpi_gen_truth_cell(&tr.t, "all", "all", START + 2 * BUCKET));
    cr_assert_eq(kpi_gen_truth_distinct(&tr.t, "all", "all", START, START + BUCKET), -1);
    truth_run_fini(&tr);
}

Test(truth, json_holds_the_totals_and_one_line_per_cell)
{
    struct truth_run tr;
    truth_run_start(&tr, truth_gen_conf(), 64);
    for (int i = 0; i < 20000; i++) {
        truth_run_next(&tr);
    }
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    cr_assert_eq(kpi_gen_truth_write_json(f, &tr.t), 0);
    fclose(f);
    char want[128];
    snprintf(want, sizeof(want), "{\"events\":20000,\"good\":%llu,\"bad\":%llu,",
             (unsigned long long)tr.t.good, (unsigned long long)tr.t.bad);
    cr_assert(strncmp(text, want, strlen(want)) == 0, "%.200s", text);
    snprintf(want, sizeof(want), "\"distinct_subscribers\":%llu,",
             (unsigned long long)tr.t.distinct);
    cr_assert(strstr(text, want), "%s", want);
    cr_assert(strstr(text, "\"bad_by_reason\":{\"empty\":"));
    snprintf(want, sizeof(want), ",\"provision_ms\":%lld,\"provisioned\":%lld}",
             (long long)tr.t.counters.provision_ms, (long long)tr.t.counters.provisioned);
    cr_assert(strstr(text, want), "every counter of the schema: %s", want);
    cr_assert(strstr(text, "\"sets\":[\"all\",\"region\",\"region+plan\",\"segment\"]"));
    const struct kpi_gen_cell *cell =
        kpi_gen_truth_cell(&tr.t, "region+plan", "eu-west|prepaid", START + BUCKET);
    cr_assert_not_null(cell);
    snprintf(want, sizeof(want),
             "{\"bucket\":%lld,\"set\":\"region+plan\",\"value\":\"eu-west|prepaid\","
             "\"events\":%lld,",
             START + BUCKET, (long long)cell->c.events);
    cr_assert(strstr(text, want), "%s", want);
    cr_assert_eq(strcmp(text + size - 3, "]}\n"), 0);
    int opens = 0, closes = 0;
    for (const char *p = text; *p; p++)
        opens += *p == '{' || *p == '[', closes += *p == '}' || *p == ']';
    cr_assert_eq(opens, closes);
    free(text);
    truth_run_fini(&tr);
}

Test(truth, bad_grouping_sets_are_named)
{
    struct kpi_gen_truth t;
    struct kpi_gen_truth_conf tc;
    kpi_gen_truth_conf_defaults(&tc);
    char err[256];
    tc.sets = "region,cell";
    cr_assert_eq(kpi_gen_truth_init(&t, &tc, err, sizeof(err)), KPI_ERR_INVAL);
    cr_assert(strstr(err, "'cell'"), "%s", err);
    tc.sets = "region+region";
    cr_assert_eq(kpi_gen_truth_init(&t, &tc, err, sizeof(err)), KPI_ERR_INVAL);
    tc.sets = "region,region";
    cr_assert_eq(kpi_gen_truth_init(&t, &tc, err, sizeof(err)), KPI_ERR_INVAL);
    tc.sets = "all; segment+plan";
    cr_assert_eq(kpi_gen_truth_init(&t, &tc, err, sizeof(err)), 0, "%s", err);
    kpi_gen_truth_fini(&t);
}

/* ---- base snapshots ---- */

/* The engine's rule (docs/kpis.md, "Subscriber base"), applied per finest
 * combination to what was generated: the newest snapshot hour's count plus
 * the net adds of events from that hour on.  It must give the generator's
 * own ground truth, initial base + every net add. */
Test(gen, base_snapshots_plus_net_adds_since_equal_the_truth)
{
    enum { NC = KPI_GEN_NREG * KPI_GEN_NPLAN * KPI_GEN_NSEG, HOURS = 4 };
    const int64_t H = 3600000;
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.events_per_sec = 40;
    c.start_ts_ms = 1700000000000LL - 1700000000000LL % H + 500; /* within the jitter */
    c.base_every_ms = H;
    struct kpi_gen *g = kpi_gen_new(&c);
    cr_assert_not_null(g);
    struct kpi_gen_truth t;
    memset(&t, 0, sizeof(t));
    static int64_t snap_hour[NC], snap[NC], net[NC][HOURS + 1];
    int snapshots = 0;
    uint8_t buf[KPI_GEN_EVENT_MAX];
    size_t len;
    struct kpi_gen_info in;
    const int64_t h0 = c.start_ts_ms - c.start_ts_ms % H;
    for (uint64_t i = 0; i < (uint64_t)(c.events_per_sec * 3.5 * 3600); i++) {
        cr_assert_eq(kpi_gen_next(g, buf, sizeof(buf), &len, &in), 0);
        kpi_gen_truth_add(&t, &in);
        struct kpi_event ev;
        cr_assert_eq(kpi_decode(&dec, buf, len, in.ts_ms + 1000, &ev), KPI_BAD_NONE);
        int ci = (in.region * KPI_GEN_NPLAN + in.plan) * KPI_GEN_NSEG + in.segment;
        int64_t hour = (in.ts_ms - h0) / H;
        cr_assert(hour >= -1 && hour <= HOURS);
        if (in.type == KPI_EV_BASE) {
            cr_assert_eq(ev.type, KPI_EV_BASE);
            cr_assert_eq(ev.count, in.count);
            cr_assert_geq(hour, 0, "a snapshot is never before the first hour");
            cr_assert_geq(hour, snap_hour[ci], "snapshots come in hour order");
            snap_hour[ci] = hour;
            snap[ci] = (int64_t)in.count;
            snapshots++;
        } else if (in.type == KPI_EV_ACTIVATION || in.type == KPI_EV_CHURN) {
            if (hour >= 0)
                net[ci][hour] += in.type == KPI_EV_ACTIVATION ? 1 : -1;
        }
    }
    cr_assert_eq(snapshots, NC * HOURS, "one snapshot per combination per hour: %d", snapshots);
    int64_t want_all = 0, got_all = 0;
    for (int r = 0; r < KPI_GEN_NREG; r++)
        for (int p = 0; p < KPI_GEN_NPLAN; p++)
            for (int s = 0; s < KPI_GEN_NSEG; s++) {
                int ci = (r * KPI_GEN_NPLAN + p) * KPI_GEN_NSEG + s;
                int64_t got = snap[ci];
                for (int h = (int)snap_hour[ci]; h <= HOURS; h++)
                    got += net[ci][h];
                int64_t want = t.base_init[r][p][s] + t.net_adds[r][p][s];
                cr_assert_eq(got, want, "combination %d: %lld, want %lld", ci, (long long)got,
                             (long long)want);
                got_all += got;
                want_all += want;
            }
    int64_t b;
    cr_assert_eq(kpi_gen_truth_base(&t, "all", "all", &b), 0);
    cr_assert_eq(b, want_all);
    cr_assert_eq(kpi_gen_truth_base(&t, "region+segment", "eu-west|youth", &b), 0);
    cr_assert_eq(kpi_gen_truth_base(&t, "region", "nowhere", &b), -1);
    /* Sized for 2 % a month at the churn rate: 40/s x 0.5 % x 30 d / 2 %. */
    cr_assert_float_eq((double)got_all, 40 * 0.005 * 2592000 / 0.02,
                       40 * 0.005 * 2592000 / 0.02 * 0.01);
    kpi_gen_destroy(g);
}
