/*
 * gen.c - the traffic generator (see gen.h).
 *
 * Sampling is O(1) per event with no tables: activity follows a continuous
 * power law inverted in closed form (rank = ((N^(1-s) - 1) u + 1)^(1/(1-s))),
 * and ranks map to subscriber numbers through a fixed bijection
 * (rank * P mod N, P prime and coprime to N) so busy subscribers are spread
 * over the id space.  A subscriber's region, plan and segment are functions of
 * its number (a hash through skewed weight tables), so they never change.
 * msgpack is written by hand into the caller's buffer.
 */
#include "gen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kpi.h"

static const char *const regions[] = {"eu-west", "eu-north", "eu-south", "us-east",
                                      "us-west", "latam",    "apac",     "mea"};
static const double region_w[] = {0.24, 0.10, 0.12, 0.20, 0.12, 0.08, 0.10, 0.04};
static const char *const plans[] = {"prepaid",    "postpaid-s", "postpaid-m",
                                    "postpaid-l", "family",     "business"};
static const double plan_w[] = {0.38, 0.18, 0.16, 0.08, 0.12, 0.08};
static const char *const segments[] = {"consumer", "youth", "senior", "smb", "enterprise"};
static const double segment_w[] = {0.52, 0.18, 0.14, 0.11, 0.05};
#define NREG  8
#define NPLAN 6
#define NSEG  5

int kpi_gen_n_regions(void)
{
    return NREG;
}
int kpi_gen_n_plans(void)
{
    return NPLAN;
}
int kpi_gen_n_segments(void)
{
    return NSEG;
}
const char *kpi_gen_region_name(int i)
{
    return regions[i];
}
const char *kpi_gen_plan_name(int i)
{
    return plans[i];
}
const char *kpi_gen_segment_name(int i)
{
    return segments[i];
}

struct kpi_gen {
    struct kpi_gen_conf c;
    uint64_t s[4]; /* xoshiro256** state */
    uint64_t n;    /* events generated */
    uint64_t prime;
    double zipf_a; /* N^(1-s) - 1 */
    int spike_seg;
    uint64_t bad_i;
};

void kpi_gen_conf_defaults(struct kpi_gen_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->seed = 1;
    c->subscribers = 100000;
    c->zipf_s = 1.1;
    c->start_ts_ms = 1700000000000LL;
    c->events_per_sec = 10000;
    c->jitter_ms = 2000;
    c->churn_rate = 0.005;
    c->spike_factor = 1;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t next_u64(struct kpi_gen *g)
{
    uint64_t *s = g->s;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static inline double unif(struct kpi_gen *g)
{
    return (double)(next_u64(g) >> 11) * 0x1.0p-53;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

struct kpi_gen *kpi_gen_new(const struct kpi_gen_conf *c)
{
    if (c->subscribers < 1 || c->zipf_s <= 0 || c->zipf_s == 1 || c->events_per_sec <= 0 ||
        c->bad_ratio < 0 || c->bad_ratio > 1 || c->jitter_ms < 0)
        return NULL;
    struct kpi_gen *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->c = *c;
    uint64_t x = c->seed;
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix(&x);
    g->prime = 2654435761ULL;
    while (gcd(g->prime, c->subscribers) != 1)
        g->prime += 2;
    g->zipf_a = pow((double)c->subscribers, 1 - c->zipf_s) - 1;
    g->spike_seg = -1;
    for (int i = 0; i < NSEG; i++)
        if (strcmp(segments[i], c->spike_segment) == 0)
            g->spike_seg = i;
    return g;
}

void kpi_gen_destroy(struct kpi_gen *g)
{
    free(g);
}

uint64_t kpi_gen_sub_id(const struct kpi_gen *g, uint64_t sub)
{
    (void)g;
    return 46700000000ULL + sub; /* MSISDN-like */
}

static int pick(uint64_t h, const double *w, int n)
{
    double u = (double)(h >> 11) * 0x1.0p-53, acc = 0;
    for (int i = 0; i < n - 1; i++)
        if (u < (acc += w[i]))
            return i;
    return n - 1;
}

static void attrs(uint64_t sub, int *region, int *plan, int *segment)
{
    uint64_t x = sub * 0x9e3779b97f4a7c15ULL;
    *region = pick(splitmix(&x), region_w, NREG);
    *plan = pick(splitmix(&x), plan_w, NPLAN);
    *segment = pick(splitmix(&x), segment_w, NSEG);
}

/* ---- msgpack writing ---- */

struct w {
    uint8_t *p, *end;
    int full;
};

static inline void put(struct w *w, const void *s, size_t n)
{
    if ((size_t)(w->end - w->p) < n) {
        w->full = 1;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

static inline void put1(struct w *w, uint8_t b)
{
    put(w, &b, 1);
}

static void put_be(struct w *w, uint64_t v, int n)
{
    uint8_t b[8];
    for (int i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    put(w, b, (size_t)n);
}

static void put_map(struct w *w, unsigned n)
{
    put1(w, (uint8_t)(0x80 | n)); /* n <= 15 here */
}

static void put_str(struct w *w, const char *s)
{
    size_t n = strlen(s);
    if (n < 32) {
        put1(w, (uint8_t)(0xa0 | n));
    } else {
        put1(w, 0xd9);
        put1(w, (uint8_t)n);
    }
    put(w, s, n);
}

static void put_uint(struct w *w, uint64_t v)
{
    if (v < 128)
        put1(w, (uint8_t)v);
    else if (v < 256)
        put1(w, 0xcc), put1(w, (uint8_t)v);
    else if (v < 65536)
        put1(w, 0xcd), put_be(w, v, 2);
    else if (v < 4294967296ULL)
        put1(w, 0xce), put_be(w, v, 4);
    else
        put1(w, 0xcf), put_be(w, v, 8);
}

static void put_double(struct w *w, double d)
{
    uint64_t x;
    memcpy(&x, &d, 8);
    put1(w, 0xcb);
    put_be(w, x, 8);
}

static void put_neg(struct w *w, int64_t v)
{
    put1(w, 0xd3);
    put_be(w, (uint64_t)v, 8);
}

static void kv_str(struct w *w, const char *k, const char *v)
{
    put_str(w, k);
    put_str(w, v);
}

static void kv_uint(struct w *w, const char *k, uint64_t v)
{
    put_str(w, k);
    put_uint(w, v);
}

/* ---- events ---- */

static const enum kpi_bad_reason bad_kinds[] = {
    KPI_BAD_NOT_MAP,
    KPI_BAD_TRUNCATED,
    KPI_BAD_MISSING_TYPE,
    KPI_BAD_UNKNOWN_TYPE,
    KPI_BAD_TS_NOT_UINT,
    KPI_BAD_MISSING_SUB,
    KPI_BAD_SCORE_OUT_OF_RANGE,
    KPI_BAD_AMOUNT_NEGATIVE,
    KPI_BAD_AMOUNT_NOT_FINITE,
    KPI_BAD_OVERSIZED_STRING,
    KPI_BAD_NESTED_VALUE,
    KPI_BAD_SUB_WRONG_TYPE,
    KPI_BAD_MISSING_SCORE,
    KPI_BAD_UNKNOWN_SURVEY,
    KPI_BAD_DUPLICATE_KEY,
    KPI_BAD_TRAILING_BYTES,
    KPI_BAD_MALFORMED,
    KPI_BAD_EMPTY,
};
#define NBAD (sizeof(bad_kinds) / sizeof(bad_kinds[0]))

static void encode_bad(struct kpi_gen *g, struct w *w, struct kpi_gen_info *in, uint64_t sub_id)
{
    enum kpi_bad_reason r = bad_kinds[g->bad_i++ % NBAD];
    in->is_bad = 1;
    in->reason = r;
    char big[300];
    switch (r) {
    case KPI_BAD_NOT_MAP: put1(w, 0x92), put_uint(w, 1), put_uint(w, 2); return;
    case KPI_BAD_TRUNCATED: put_map(w, 3), kv_str(w, "type", "usage"); return;
    case KPI_BAD_MISSING_TYPE:
        put_map(w, 2), kv_uint(w, "ts", (uint64_t)in->ts_ms), kv_uint(w, "sub", sub_id);
        return;
    case KPI_BAD_UNKNOWN_TYPE:
        put_map(w, 3), kv_str(w, "type", "refund"), kv_uint(w, "ts", (uint64_t)in->ts_ms);
        kv_uint(w, "sub", sub_id);
        return;
    case KPI_BAD_TS_NOT_UINT:
        put_map(w, 3), kv_str(w, "type", "usage"), put_str(w, "ts"), put_neg(w, -5);
        kv_uint(w, "sub", sub_id);
        return;
    case KPI_BAD_MISSING_SUB:
        put_map(w, 2), kv_str(w, "type", "usage"), kv_uint(w, "ts", (uint64_t)in->ts_ms);
        return;
    case KPI_BAD_SCORE_OUT_OF_RANGE:
    case KPI_BAD_MISSING_SCORE:
    case KPI_BAD_UNKNOWN_SURVEY:
        put_map(w, r == KPI_BAD_MISSING_SCORE ? 3 : 4), kv_str(w, "type", "nps");
        kv_uint(w, "ts", (uint64_t)in->ts_ms), kv_uint(w, "sub", sub_id);
        if (r == KPI_BAD_SCORE_OUT_OF_RANGE)
            kv_uint(w, "score", 11);
        else if (r == KPI_BAD_UNKNOWN_SURVEY)
            kv_str(w, "survey", "store");
        return;
    case KPI_BAD_AMOUNT_NEGATIVE:
    case KPI_BAD_AMOUNT_NOT_FINITE:
        put_map(w, 4), kv_str(w, "type", "usage"), kv_uint(w, "ts", (uint64_t)in->ts_ms);
        kv_uint(w, "sub", sub_id), put_str(w, "amount");
        if (r == KPI_BAD_AMOUNT_NEGATIVE)
            put_neg(w, -100);
        else
            put_double(w, NAN);
        return;
    case KPI_BAD_OVERSIZED_STRING:
        memset(big, 'x', 200);
        big[200] = '\0';
        put_map(w, 4), kv_str(w, "type", "usage"), kv_uint(w, "ts", (uint64_t)in->ts_ms);
        kv_uint(w, "sub", sub_id), kv_str(w, "region", big);
        return;
    case KPI_BAD_NESTED_VALUE:
        put_map(w, 4), kv_str(w, "type", "usage"), kv_uint(w, "ts", (uint64_t)in->ts_ms);
        kv_uint(w, "sub", sub_id), put_str(w, "plan"), put1(w, 0x90);
        return;
    case KPI_BAD_SUB_WRONG_TYPE:
        put_map(w, 3), kv_str(w, "type", "usage"), kv_uint(w, "ts", (uint64_t)in->ts_ms);
        put_str(w, "sub"), put_double(w, 1.5);
        return;
    case KPI_BAD_DUPLICATE_KEY:
        put_map(w, 4), kv_str(w, "type", "usage"), kv_uint(w, "ts", (uint64_t)in->ts_ms);
        kv_uint(w, "sub", sub_id), kv_uint(w, "ts", (uint64_t)in->ts_ms);
        return;
    case KPI_BAD_TRAILING_BYTES:
        put_map(w, 3), kv_str(w, "type", "usage"), kv_uint(w, "ts", (uint64_t)in->ts_ms);
        kv_uint(w, "sub", sub_id), put1(w, 0xc0);
        return;
    case KPI_BAD_MALFORMED: put_map(w, 1), put_str(w, "type"), put1(w, 0xc1); return;
    default: return; /* KPI_BAD_EMPTY: nothing at all */
    }
}

int kpi_gen_next(struct kpi_gen *g, uint8_t *buf, size_t cap, size_t *len, struct kpi_gen_info *in)
{
    struct w w = {buf, buf + cap, 0};
    memset(in, 0, sizeof(*in));
    const struct kpi_gen_conf *c = &g->c;
    int64_t now = c->start_ts_ms + (int64_t)((double)g->n * 1000.0 / c->events_per_sec);
    g->n++;
    in->ts_ms = now - (c->jitter_ms ? (int64_t)(next_u64(g) % (uint64_t)(c->jitter_ms + 1)) : 0);
    double x = pow(g->zipf_a * unif(g) + 1, 1 / (1 - c->zipf_s));
    uint64_t rank = (uint64_t)x - 1;
    if (rank >= c->subscribers)
        rank = c->subscribers - 1;
    in->sub = rank * g->prime % c->subscribers;
    attrs(in->sub, &in->region, &in->plan, &in->segment);
    uint64_t sub_id = kpi_gen_sub_id(g, in->sub);

    if (c->bad_ratio > 0 && unif(g) < c->bad_ratio) {
        encode_bad(g, &w, in, sub_id);
    } else {
        double churn = c->churn_rate;
        int64_t off = now - c->start_ts_ms;
        if (in->segment == g->spike_seg && off >= c->spike_start_ms && off < c->spike_end_ms)
            churn *= c->spike_factor;
        double u = unif(g);
        in->type = u < 0.03           ? KPI_EV_NPS
                   : u < 0.04         ? KPI_EV_ACTIVATION
                   : u < 0.04 + churn ? KPI_EV_CHURN
                                      : KPI_EV_USAGE;
        unsigned pairs = 6;
        if (in->type == KPI_EV_USAGE)
            pairs += 3;
        else if (in->type == KPI_EV_NPS)
            pairs += 2;
        else if (in->type == KPI_EV_CHURN)
            pairs += 1;
        put_map(&w, pairs);
        kv_str(&w, "type", kpi_event_type_name(in->type));
        kv_uint(&w, "ts", (uint64_t)in->ts_ms);
        if (in->sub % 10 == 0) { /* some producers send ids as strings */
            char digits[24];
            snprintf(digits, sizeof(digits), "%llu", (unsigned long long)sub_id);
            kv_str(&w, "sub", digits);
        } else {
            kv_uint(&w, "sub", sub_id);
        }
        kv_str(&w, "region", regions[in->region]);
        kv_str(&w, "plan", plans[in->plan]);
        kv_str(&w, "segment", segments[in->segment]);
        switch (in->type) {
        case KPI_EV_USAGE: {
            uint64_t r = next_u64(g);
            put_str(&w, "amount");
            if (r % 8 == 0) { /* a float in currency units, whole cents */
                double cents = (double)(r >> 40 & 0x3ff);
                put_double(&w, cents / 100.0);
                in->amount_micros = llround(cents / 100.0 * 1e6);
            } else {
                in->amount_micros = (int64_t)(r >> 32 & 0xfffff); /* up to ~1.05 */
                put_uint(&w, (uint64_t)in->amount_micros);
            }
            kv_uint(&w, "bytes", r & 0xfffff);
            kv_uint(&w, "seconds", r >> 20 & 0x3ff);
            break;
        }
        case KPI_EV_NPS: {
            uint64_t r = next_u64(g);
            static const uint8_t scores[16] = {10, 9, 9, 8, 8, 7, 7, 10, 9, 6, 5, 3, 8, 9, 0, 10};
            in->score = scores[r & 15];
            in->survey = (r >> 8) % 3 == 0 ? KPI_SURVEY_BRAND : KPI_SURVEY_NETWORK;
            kv_uint(&w, "score", in->score);
            kv_str(&w, "survey", in->survey == KPI_SURVEY_BRAND ? "brand" : "network");
            break;
        }
        case KPI_EV_CHURN: kv_str(&w, "reason", "price"); break;
        default: break;
        }
    }
    if (w.full)
        return KPI_ERR_FULL;
    *len = (size_t)(w.p - buf);
    return 0;
}

void kpi_gen_truth_add(struct kpi_gen_truth *t, const struct kpi_gen_info *in)
{
    t->events++;
    if (in->is_bad) {
        t->bad++;
        t->bad_by_reason[in->reason]++;
        return;
    }
    t->good++;
    t->by_type[in->type]++;
    if (in->type == KPI_EV_USAGE)
        t->revenue += in->amount_micros;
    if (in->type == KPI_EV_CHURN)
        t->churns_by_segment[in->segment]++;
    if (in->type == KPI_EV_NPS)
        t->nps[in->survey][in->score >= 9   ? KPI_NPS_PROMOTERS
                           : in->score >= 7 ? KPI_NPS_PASSIVES
                                            : KPI_NPS_DETRACTORS]++;
}

void kpi_gen_truth_write_json(FILE *out, const struct kpi_gen_truth *t)
{
    fprintf(out, "{\"events\":%llu,\"good\":%llu,\"bad\":%llu,\"revenue_micros\":%lld",
            (unsigned long long)t->events, (unsigned long long)t->good, (unsigned long long)t->bad,
            (long long)t->revenue);
    fprintf(out, ",\"by_type\":{");
    for (int i = 0; i < KPI_EV__COUNT; i++)
        fprintf(out, "%s\"%s\":%llu", i ? "," : "", kpi_event_type_name((enum kpi_event_type)i),
                (unsigned long long)t->by_type[i]);
    fprintf(out, "},\"bad_by_reason\":{");
    int first = 1;
    for (int i = 1; i < KPI_BAD__COUNT; i++)
        if (t->bad_by_reason[i]) {
            fprintf(out, "%s\"%s\":%llu", first ? "" : ",",
                    kpi_bad_reason_name((enum kpi_bad_reason)i),
                    (unsigned long long)t->bad_by_reason[i]);
            first = 0;
        }
    fprintf(out, "},\"nps\":{\"network\":[%llu,%llu,%llu],\"brand\":[%llu,%llu,%llu]}",
            (unsigned long long)t->nps[0][0], (unsigned long long)t->nps[0][1],
            (unsigned long long)t->nps[0][2], (unsigned long long)t->nps[1][0],
            (unsigned long long)t->nps[1][1], (unsigned long long)t->nps[1][2]);
    fprintf(out, ",\"churns_by_segment\":{");
    for (int i = 0; i < NSEG; i++)
        fprintf(out, "%s\"%s\":%llu", i ? "," : "", segments[i],
                (unsigned long long)t->churns_by_segment[i]);
    fprintf(out, "}}\n");
}
