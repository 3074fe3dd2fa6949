/* The traffic generator: deterministic, decodable, tagged bad events, skew. */
#include <criterion/criterion.h>
#include <string.h>

#include "decode.h"
#include "gen.h"
#include "hash.h"

static struct kpi_decoder dec;

static void setup(void)
{
    static const char *dims[] = {"region", "plan", "segment"};
    cr_assert_eq(kpi_decoder_init(&dec, dims, 3, 86400000LL * 365 * 100, 128, NULL, 0), 0);
}

TestSuite(gen, .init = setup);

static uint64_t digest(uint64_t seed, int n)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.seed = seed;
    c.bad_ratio = 0.05;
    struct kpi_gen *g = kpi_gen_new(&c);
    uint8_t buf[256];
    size_t len;
    struct kpi_gen_info in;
    uint64_t h = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(kpi_gen_next(g, buf, sizeof(buf), &len, &in), 0);
        h = kpi_murmur64a(buf, len, h);
    }
    kpi_gen_destroy(g);
    return h;
}

Test(gen, same_seed_gives_the_same_bytes)
{
    cr_assert_eq(digest(7, 5000), digest(7, 5000));
    cr_assert_neq(digest(7, 5000), digest(8, 5000));
}

Test(gen, good_events_decode_to_what_info_says)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    struct kpi_gen *g = kpi_gen_new(&c);
    uint8_t buf[256];
    size_t len;
    struct kpi_gen_info in;
    for (int i = 0; i < 20000; i++) {
        cr_assert_eq(kpi_gen_next(g, buf, sizeof(buf), &len, &in), 0);
        struct kpi_event ev;
        enum kpi_bad_reason r = kpi_decode(&dec, buf, len, c.start_ts_ms + 86400000, &ev);
        cr_assert_eq(r, KPI_BAD_NONE, "event %d: %s", i, kpi_bad_reason_name(r));
        cr_assert_eq(ev.type, in.type);
        cr_assert_eq(ev.ts_ms, in.ts_ms);
        char digits[24];
        int n =
            snprintf(digits, sizeof(digits), "%llu", (unsigned long long)kpi_gen_sub_id(g, in.sub));
        cr_assert_eq(ev.sub_hash, kpi_murmur64a(digits, (size_t)n, 0xadc83b19ULL));
        cr_assert_eq(ev.amount_micros, in.amount_micros);
        cr_assert_eq(memcmp(ev.dims[0].ptr, kpi_gen_region_name(in.region), ev.dims[0].len), 0);
        cr_assert_eq(memcmp(ev.dims[2].ptr, kpi_gen_segment_name(in.segment), ev.dims[2].len), 0);
        if (in.type == KPI_EV_NPS) {
            cr_assert_eq(ev.score, in.score);
            cr_assert_eq(ev.survey, in.survey);
        }
    }
    kpi_gen_destroy(g);
}

Test(gen, bad_events_produce_their_intended_reason)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.bad_ratio = 1.0;
    struct kpi_gen *g = kpi_gen_new(&c);
    uint8_t buf[512];
    size_t len;
    struct kpi_gen_info in;
    int kinds = 0;
    uint64_t seen[KPI_BAD__COUNT] = {0};
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(kpi_gen_next(g, buf, sizeof(buf), &len, &in), 0);
        cr_assert(in.is_bad);
        struct kpi_event ev;
        enum kpi_bad_reason r = kpi_decode(&dec, buf, len, c.start_ts_ms + 86400000, &ev);
        cr_assert_eq(r, in.reason, "got %s, meant %s", kpi_bad_reason_name(r),
                     kpi_bad_reason_name(in.reason));
        if (!seen[r]++)
            kinds++;
    }
    cr_assert_geq(kinds, 15, "many kinds of bad input");
    kpi_gen_destroy(g);
}

Test(gen, type_mix_and_activity_skew_are_realistic)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.subscribers = 100000;
    struct kpi_gen *g = kpi_gen_new(&c);
    uint8_t buf[256];
    size_t len;
    struct kpi_gen_info in;
    struct kpi_gen_truth t;
    memset(&t, 0, sizeof(t));
    static uint32_t per_sub[100000];
    memset(per_sub, 0, sizeof(per_sub));
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        kpi_gen_truth_add(&t, &in);
        per_sub[in.sub]++;
    }
    double usage = (double)t.by_type[KPI_EV_USAGE] / n;
    cr_assert(usage > 0.90 && usage < 0.97, "usage share %.3f", usage);
    cr_assert_gt(t.by_type[KPI_EV_CHURN], 0);
    cr_assert_gt(t.by_type[KPI_EV_NPS], 0);
    /* Zipf-like: the busiest 1% of subscribers make well over 1% of events. */
    uint32_t top = 0;
    uint64_t top_events = 0;
    for (int k = 0; k < 1000; k++) {
        uint32_t best = 0;
        for (int s = 0; s < 100000; s++)
            if (per_sub[s] > per_sub[best])
                best = (uint32_t)s;
        top_events += per_sub[best];
        per_sub[best] = 0;
        top = best;
    }
    (void)top;
    cr_assert_gt((double)top_events / n, 0.2, "top 1%% made %.3f of events",
                 (double)top_events / n);
    kpi_gen_destroy(g);
}

Test(gen, spike_multiplies_churn_in_its_segment_and_interval)
{
    struct kpi_gen_conf c;
    kpi_gen_conf_defaults(&c);
    c.events_per_sec = 1000;
    strcpy(c.spike_segment, "youth");
    c.spike_factor = 10;
    c.spike_start_ms = 100000; /* events 100000..199999 */
    c.spike_end_ms = 200000;
    struct kpi_gen *g = kpi_gen_new(&c);
    uint8_t buf[256];
    size_t len;
    struct kpi_gen_info in;
    uint64_t youth_before = 0, churn_before = 0, youth_during = 0, churn_during = 0;
    for (int i = 0; i < 200000; i++) {
        kpi_gen_next(g, buf, sizeof(buf), &len, &in);
        if (in.segment != 1)
            continue;
        if (i < 100000) {
            youth_before++;
            churn_before += in.type == KPI_EV_CHURN;
        } else {
            youth_during++;
            churn_during += in.type == KPI_EV_CHURN;
        }
    }
    double before = (double)churn_before / youth_before,
           during = (double)churn_during / youth_during;
    cr_assert(during > 5 * before, "churn share %.4f before, %.4f during", before, during);
    kpi_gen_destroy(g);
}
