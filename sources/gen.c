/*
 * gen.c - the traffic generator and its truth (see gen.h for what the traffic
 * looks like and why).
 *
 * Per event, in order, all O(1) and allocation-free:
 *
 *   1. event time: now = start + i * ms_per_event; ts = now - jitter
 *   2. subscriber: one draw from the alias table (below)
 *   3. attributes: region, plan, segment and "sent as str" from one hash of
 *      the subscriber number, through cumulative 16-bit weight tables
 *   4. bad or good; for bad, the next reason of the rotation
 *   5. type (with the spike's churn multiplier), then its payload
 *   6. msgpack written byte by byte into the caller's buffer
 *
 * Alias table (Walker 1977, Vose 1991).  Subscriber s has weight
 * (rank(s) + 1)^-s where rank is a fixed bijection of 0..N-1
 * (s = rank * P mod N, P an odd constant coprime to N).  Vose's construction
 * turns the N weights into N columns of equal mass 1/N, each holding at most
 * two subscribers: itself with probability thr/2^32 and its alias otherwise.
 * A draw is one 64-bit random number: the low half picks the column
 * (multiply-shift, no modulo), the high half compares with thr.  Each column
 * is one uint64 (thr << 32 | alias), so a draw is one memory access.
 *
 *   column:   0        1        2       ...  N-1
 *           +--------+--------+--------+---+--------+
 *   entry:  |thr|alia|thr|alia|thr|alia|...|thr|alia|     u32 < thr ? col : alias
 *           +--------+--------+--------+---+--------+
 *
 * The truth keeps, per bucket, one cell (kpi_counters + distinct count) per
 * value of every grouping set, in one array: set k's values start at
 * sets[k].first.  A value's index is its dimensions' indexes in mixed radix
 * (region 8, plan 6, segment 5), so no hashing of labels on the event path.
 * Buckets are found through a small open-addressing index on the bucket
 * start, with the last bucket cached (events come in time order, give or take
 * the jitter).  Distinct subscribers are exact: one bitmap over the
 * population per bucket and one overall; a subscriber's first event in a
 * bucket adds one to the `active` of each of its cells.
 */
#include "gen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* ---- the population's attributes ---- */

#define NREG  8
#define NPLAN 6
#define NSEG  5

/* Largest first: regions follow a Zipf law (weight 1/k). */
static const char *const regions[NREG] = {"eu-west", "us-east",  "eu-north", "apac",
                                          "us-west", "eu-south", "latam",    "mea"};
static const char *const plans[NPLAN] = {"prepaid",    "postpaid-s", "postpaid-m",
                                         "postpaid-l", "family",     "business"};
static const char *const segments[NSEG] = {"consumer", "youth", "senior", "smb", "enterprise"};
static const double segment_w[NSEG] = {0.52, 0.18, 0.14, 0.11, 0.05};
/* A subscriber's plan depends on its segment. */
static const double plan_w[NSEG][NPLAN] = {
    {0.35, 0.20, 0.20, 0.08, 0.17, 0.00}, /* consumer */
    {0.70, 0.15, 0.10, 0.03, 0.02, 0.00}, /* youth */
    {0.45, 0.30, 0.12, 0.03, 0.10, 0.00}, /* senior */
    {0.05, 0.10, 0.15, 0.15, 0.00, 0.55}, /* smb */
    {0.00, 0.02, 0.05, 0.13, 0.00, 0.80}, /* enterprise */
};
static const char *const churn_reasons[8] = {"price",   "coverage", "competitor", "moved",
                                             "service", "billing",  "price",      "coverage"};
/* NPS scores, 64 equally likely slots: skewed to 7..10. */
static const uint8_t nps_scores[64] = {
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,       /* 14 */
    9,  9,  9,  9,  9,  9,  9,  9,  9,  9,  9,  9,  9,  9,  9, 9, /* 16 */
    8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,                /* 12 */
    7,  7,  7,  7,  7,  7,  7,  7,                                /* 8 */
    6,  6,  6,  6,  5,  5,  5,  4,  4,  3,  3,  2,  1,  0,        /* 14 */
};

#define SUB_ID_BASE 46700000000ULL /* MSISDN-like */

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
    return i >= 0 && i < NREG ? regions[i] : NULL;
}
const char *kpi_gen_plan_name(int i)
{
    return i >= 0 && i < NPLAN ? plans[i] : NULL;
}
const char *kpi_gen_segment_name(int i)
{
    return i >= 0 && i < NSEG ? segments[i] : NULL;
}

static int index_of(const char *const *names, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return i;
    return -1;
}

int kpi_gen_region_index(const char *name)
{
    return name ? index_of(regions, NREG, name, strlen(name)) : -1;
}

int kpi_gen_segment_index(const char *name)
{
    return name ? index_of(segments, NSEG, name, strlen(name)) : -1;
}

/* Cumulative thresholds out of 65536 for weights w[0..n). */
static void cumulate(const double *w, int n, uint32_t *cum)
{
    double sum = 0, acc = 0;
    for (int i = 0; i < n; i++)
        sum += w[i];
    for (int i = 0; i < n; i++) {
        acc += w[i];
        cum[i] = (uint32_t)llround(acc / sum * 65536.0);
    }
    cum[n - 1] = 65536;
}

static inline int pick16(uint32_t u16, const uint32_t *cum, int n)
{
    int i = 0;
    while (i < n - 1 && u16 >= cum[i])
        i++;
    return i;
}

/* Encoded msgpack fixstr of a short name: header byte + bytes. */
struct enc {
    uint8_t b[KPI_GEN_NAME_MAX];
    uint8_t len;
};

static void enc_name(struct enc *e, const char *s)
{
    size_t n = strlen(s);
    e->b[0] = (uint8_t)(0xa0 | n);
    memcpy(e->b + 1, s, n);
    e->len = (uint8_t)(n + 1);
}

/* ---- the generator ---- */

enum { N_BAD_MAX = KPI_BAD__COUNT };

/* Subscriber draws are made this many events ahead and their alias column
 * prefetched: with a large population the table is far bigger than the
 * caches, and one miss per event would otherwise halve the rate. */
#define AHEAD 8

struct kpi_gen {
    struct kpi_gen_conf c;
    uint64_t s[4];     /* xoshiro256** state */
    uint64_t sub_s[4]; /* its own stream for subscriber draws, drawn AHEAD events early */
    uint64_t ahead[AHEAD];
    uint64_t n;      /* events generated */
    uint64_t *alias; /* subscribers entries: thr << 32 | alias */
    double ms_per_event;
    uint64_t t_bad; /* thresholds on 53-bit uniforms */
    uint64_t t_nps, t_act, t_churn, t_churn_spike;
    int spike_seg, spike_reg;
    uint32_t region_cum[NREG], segment_cum[NSEG], plan_cum[NSEG][NPLAN];
    struct enc region_enc[NREG], plan_enc[NPLAN], segment_enc[NSEG];
    enum kpi_bad_reason bad[N_BAD_MAX];
    int n_bad;
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
    c->nps_rate = 0.03;
    c->activation_rate = 0.01;
    c->churn_rate = 0.005;
    c->max_str_len = KPI_MAX_STR_DEFAULT;
    c->spike_factor = 1;
}

/* The reasons the generator can make: every decoder reason. */
static int can_make(enum kpi_bad_reason r)
{
    return r > KPI_BAD_NONE && r < KPI_BAD__COUNT && r != KPI_BAD_TOO_LATE;
}

static int is_rate(double x)
{
    return x >= 0 && x <= 1; /* false for NaN */
}

int kpi_gen_conf_validate(const struct kpi_gen_conf *c, char *errstr, size_t errsz)
{
    if (c->subscribers < 1 || c->subscribers > KPI_GEN_MAX_SUBSCRIBERS)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "subscribers: must be 1..%d",
                          KPI_GEN_MAX_SUBSCRIBERS);
    if (!(c->zipf_s > 0 && c->zipf_s < 10))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "zipf_s: must be in (0, 10)");
    if (c->jitter_ms < 0 || c->jitter_ms > INT32_MAX)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "jitter_ms: must be 0..%d", INT32_MAX);
    if (c->start_ts_ms < c->jitter_ms || c->start_ts_ms > 9000000000000LL)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "start_ts_ms: must be jitter_ms..9000000000000 (no negative times)");
    if (!(c->events_per_sec > 0 && c->events_per_sec <= 1e12))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "events_per_sec: must be > 0");
    if (!is_rate(c->bad_ratio))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "bad_ratio: must be 0..1");
    if (!is_rate(c->nps_rate) || !is_rate(c->activation_rate) || !is_rate(c->churn_rate) ||
        c->nps_rate + c->activation_rate + c->churn_rate > 1)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "nps_rate, activation_rate, churn_rate: must be 0..1 and sum to <= 1");
    if (c->max_str_len > 65535)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "max_str_len: must be <= 65535");
    if (c->bad_kinds) {
        for (int r = 0; r < 64; r++)
            if ((c->bad_kinds >> r & 1) && !can_make((enum kpi_bad_reason)r))
                return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                                  "bad_kinds: the generator cannot make reason %d", r);
    }
    if (c->spike_segment[0] && kpi_gen_segment_index(c->spike_segment) < 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "spike_segment: no segment '%.32s'",
                          c->spike_segment);
    if (c->spike_region[0] && kpi_gen_region_index(c->spike_region) < 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "spike_region: no region '%.32s'",
                          c->spike_region);
    if (!(c->spike_factor >= 0 && c->spike_factor <= 1e6))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "spike_factor: must be 0..1e6");
    if (c->spike_end_ms < c->spike_start_ms)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "spike_end_ms: must not be before spike_start_ms");
    return 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t xoshiro(uint64_t *s)
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static inline uint64_t next_u64(struct kpi_gen *g)
{
    return xoshiro(g->s);
}

static inline uint64_t alias_col(const struct kpi_gen *g, uint64_t r)
{
    return ((r & 0xffffffffULL) * g->c.subscribers) >> 32;
}

/* The random number of the subscriber draw AHEAD events from now. */
static inline void draw_ahead(struct kpi_gen *g, unsigned slot)
{
    uint64_t r = xoshiro(g->sub_s);
    g->ahead[slot] = r;
    __builtin_prefetch(&g->alias[alias_col(g, r)]);
}

static inline uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A probability as a threshold on (next_u64 >> 11), a 53-bit uniform. */
static uint64_t threshold(double p)
{
    if (p <= 0)
        return 0;
    if (p >= 1)
        return 1ULL << 53;
    return (uint64_t)(p * 9007199254740992.0);
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

/* Vose's alias method over the Zipf weights (see the top of the file). */
static int build_alias(struct kpi_gen *g)
{
    uint64_t n = g->c.subscribers;
    double *p = malloc(n * sizeof(*p));
    uint32_t *work = malloc(n * sizeof(*work)); /* small from the front, large from the back */
    g->alias = malloc(n * sizeof(*g->alias));
    if (!p || !work || !g->alias) {
        free(p);
        free(work);
        return KPI_ERR_NOMEM;
    }
    uint64_t step = 2654435761ULL % n, sub = 0;
    while (n > 1 && gcd(step, n) != 1)
        step++;
    double sum = 0;
    for (uint64_t rank = 0; rank < n; rank++) {
        double w = exp(-g->c.zipf_s * log((double)(rank + 1)));
        p[sub] = w;
        sum += w;
        sub += step;
        if (sub >= n)
            sub -= n;
    }
    uint64_t ns = 0, nl = n;
    for (uint64_t i = 0; i < n; i++) {
        p[i] = p[i] * (double)n / sum;
        if (p[i] < 1)
            work[ns++] = (uint32_t)i;
        else
            work[--nl] = (uint32_t)i;
    }
    for (uint64_t i = 0; i < n; i++)
        g->alias[i] = 0xffffffffULL << 32 | i; /* full column: always itself */
    while (ns > 0 && nl < n) {
        uint32_t s = work[--ns], l = work[nl];
        double thr = p[s] * 4294967296.0;
        g->alias[s] = (uint64_t)(thr >= 4294967295.0 ? 4294967295.0 : thr) << 32 | l;
        p[l] -= 1 - p[s];
        if (p[l] < 1) {
            nl++;
            work[ns++] = l;
        }
    }
    /* What is left is 1 up to rounding: full columns, as initialised. */
    free(p);
    free(work);
    return 0;
}

struct kpi_gen *kpi_gen_new(const struct kpi_gen_conf *c)
{
    if (kpi_gen_conf_validate(c, NULL, 0))
        return NULL;
    struct kpi_gen *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->c = *c;
    if (!g->c.max_str_len)
        g->c.max_str_len = KPI_MAX_STR_DEFAULT;
    uint64_t x = c->seed;
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix(&x);
    for (int i = 0; i < 4; i++)
        g->sub_s[i] = splitmix(&x);
    if (build_alias(g)) {
        kpi_gen_destroy(g);
        return NULL;
    }
    for (unsigned i = 0; i < AHEAD; i++)
        draw_ahead(g, i);
    g->ms_per_event = 1000.0 / c->events_per_sec;
    g->t_bad = threshold(c->bad_ratio);
    g->t_nps = threshold(c->nps_rate);
    g->t_act = threshold(c->nps_rate + c->activation_rate);
    g->t_churn = threshold(c->nps_rate + c->activation_rate + c->churn_rate);
    g->t_churn_spike =
        threshold(c->nps_rate + c->activation_rate + c->churn_rate * c->spike_factor);
    g->spike_seg = c->spike_segment[0] ? kpi_gen_segment_index(c->spike_segment) : -1;
    g->spike_reg = c->spike_region[0] ? kpi_gen_region_index(c->spike_region) : -1;
    double region_w[NREG];
    for (int i = 0; i < NREG; i++)
        region_w[i] = 1.0 / (i + 1);
    cumulate(region_w, NREG, g->region_cum);
    cumulate(segment_w, NSEG, g->segment_cum);
    for (int s = 0; s < NSEG; s++)
        cumulate(plan_w[s], NPLAN, g->plan_cum[s]);
    for (int i = 0; i < NREG; i++)
        enc_name(&g->region_enc[i], regions[i]);
    for (int i = 0; i < NPLAN; i++)
        enc_name(&g->plan_enc[i], plans[i]);
    for (int i = 0; i < NSEG; i++)
        enc_name(&g->segment_enc[i], segments[i]);
    for (int r = 0; r < KPI_BAD__COUNT; r++)
        if (can_make((enum kpi_bad_reason)r) && (!c->bad_kinds || (c->bad_kinds >> r & 1)))
            g->bad[g->n_bad++] = (enum kpi_bad_reason)r;
    return g;
}

void kpi_gen_destroy(struct kpi_gen *g)
{
    if (!g)
        return;
    free(g->alias);
    free(g);
}

size_t kpi_gen_event_max(const struct kpi_gen *g)
{
    /* The longest event is oversized_string's: map 1, type 11, ts 12, sub <= 16,
     * "reason" 7, str16 header 3, then max_str_len + 1 bytes. */
    size_t oversized = (size_t)g->c.max_str_len + 1 + 50;
    return oversized > KPI_GEN_EVENT_MAX ? oversized : KPI_GEN_EVENT_MAX;
}

uint64_t kpi_gen_count(const struct kpi_gen *g)
{
    return g->n;
}

uint64_t kpi_gen_sub_id(const struct kpi_gen *g, uint64_t sub)
{
    (void)g;
    return SUB_ID_BASE + sub;
}

/* A subscriber's fixed attributes: a function of its number alone. */
static inline void attrs(const struct kpi_gen *g, struct kpi_gen_info *in)
{
    uint64_t x = in->sub * 0x9e3779b97f4a7c15ULL;
    uint64_t h = splitmix(&x);
    in->region = pick16((uint32_t)(h & 0xffff), g->region_cum, NREG);
    in->segment = pick16((uint32_t)(h >> 16 & 0xffff), g->segment_cum, NSEG);
    in->plan = pick16((uint32_t)(h >> 32 & 0xffff), g->plan_cum[in->segment], NPLAN);
    in->is_sub_str = (h >> 48 & 0xff) < 26; /* about one in ten */
    in->region_name = regions[in->region];
    in->plan_name = plans[in->plan];
    in->segment_name = segments[in->segment];
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
        w->p = w->end;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

static inline void put1(struct w *w, uint8_t b)
{
    if (w->p == w->end) {
        w->full = 1;
        return;
    }
    *w->p++ = b;
}

/* A tag byte and the low n bytes of v, big-endian (n = 1, 2, 4, 8). */
static inline void put_be(struct w *w, uint8_t tag, uint64_t v, int n)
{
    if ((size_t)(w->end - w->p) >= 9) { /* room for a whole word: one store */
        uint64_t be = __builtin_bswap64(v << (8 * (8 - n)));
        w->p[0] = tag;
        memcpy(w->p + 1, &be, 8);
        w->p += n + 1;
        return;
    }
    uint8_t b[9];
    b[0] = tag;
    for (int i = 0; i < n; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    put(w, b, (size_t)n + 1);
}

static inline __attribute__((always_inline)) void put_uint(struct w *w, uint64_t v)
{
    if (v < 128)
        put1(w, (uint8_t)v);
    else if (v < 256)
        put_be(w, 0xcc, v, 1);
    else if (v < 65536)
        put_be(w, 0xcd, v, 2);
    else if (v < 4294967296ULL)
        put_be(w, 0xce, v, 4);
    else
        put_be(w, 0xcf, v, 8);
}

static inline void put_int(struct w *w, int64_t v)
{
    if (v >= 0)
        put_uint(w, (uint64_t)v);
    else if (v >= -32)
        put1(w, (uint8_t)(int8_t)v);
    else
        put_be(w, 0xd3, (uint64_t)v, 8);
}

static inline void put_double(struct w *w, double d)
{
    uint64_t x;
    memcpy(&x, &d, 8);
    put_be(w, 0xcb, x, 8);
}

static void put_strn(struct w *w, const char *s, size_t n)
{
    if (n < 32)
        put1(w, (uint8_t)(0xa0 | n));
    else if (n < 256)
        put_be(w, 0xd9, n, 1);
    else
        put_be(w, 0xda, n, 2);
    put(w, s, n);
}

static inline void put_str(struct w *w, const char *s)
{
    put_strn(w, s, strlen(s));
}

/* Keys and type names with their msgpack fixstr header byte, 0xa0 | length,
 * written in octal (0240 | length) so no letter reads as a hex digit. */
#define K(w, lit) put((w), lit, sizeof(lit) - 1)
#define K_TYPE    "\244type"
#define K_TS      "\242ts"
#define K_SUB     "\243sub"
#define K_REGION  "\246region"
#define K_PLAN    "\244plan"
#define K_SEGMENT "\247segment"
#define K_AMOUNT  "\246amount"
#define K_BYTES   "\245bytes"
#define K_SECONDS "\247seconds"
#define K_SCORE   "\245score"
#define K_SURVEY  "\246survey"
#define K_REASON  "\246reason"
#define K_CELL    "\244cell"
#define K_PROV    "\254provision_ms"
#define K_COUNT   "\245count"

static const char *const type_enc[KPI_EV__COUNT] = {
    [KPI_EV_USAGE] = "\245usage", [KPI_EV_ACTIVATION] = "\252activation",
    [KPI_EV_CHURN] = "\245churn", [KPI_EV_NPS] = "\243nps",
    [KPI_EV_BASE] = "\244base",
};
static const uint8_t type_enc_len[KPI_EV__COUNT] = {6, 11, 6, 4, 5};

/* Decimal digits of u; returns the length (at most 20). */
static inline size_t utoa(uint64_t u, char *out)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static inline void kv_type(struct w *w, enum kpi_event_type t)
{
    K(w, K_TYPE);
    put(w, type_enc[t], type_enc_len[t]);
}

static inline void kv_ts(struct w *w, int64_t ts)
{
    K(w, K_TS);
    put_uint(w, (uint64_t)ts);
}

static inline void kv_sub(struct w *w, const struct kpi_gen_info *in)
{
    K(w, K_SUB);
    if (in->is_sub_str) {
        char digits[20];
        put_strn(w, digits, utoa(in->sub_id, digits));
    } else {
        put_uint(w, in->sub_id);
    }
}

/* region, plan, segment: three pairs. */
static inline void kv_dims(struct w *w, const struct kpi_gen *g, const struct kpi_gen_info *in)
{
    K(w, K_REGION);
    put(w, g->region_enc[in->region].b, g->region_enc[in->region].len);
    K(w, K_PLAN);
    put(w, g->plan_enc[in->plan].b, g->plan_enc[in->plan].len);
    K(w, K_SEGMENT);
    put(w, g->segment_enc[in->segment].b, g->segment_enc[in->segment].len);
}

/* site: the subscriber's home cell site, when conf.sites is set. */
static inline void kv_site(struct w *w, const struct kpi_gen *g, const struct kpi_gen_info *in)
{
    char v[32] = "site-";
    uint64_t x = in->sub * 0xd6e8feb86659fd93ULL;
    size_t n = 5 + utoa(splitmix(&x) % g->c.sites, v + 5);
    K(w, "\244site");
    put_strn(w, v, n);
}

/* type, ts, sub: the three pairs every event needs. */
static inline void kv_head(struct w *w, enum kpi_event_type t, const struct kpi_gen_info *in)
{
    kv_type(w, t);
    kv_ts(w, in->ts_ms);
    kv_sub(w, in);
}

/* ---- bad events: one generator per decoder reason ---- */

static void encode_bad(struct kpi_gen *g, struct w *w, struct kpi_gen_info *in)
{
    enum kpi_bad_reason r = g->bad[g->bad_i++ % (uint64_t)g->n_bad];
    in->is_bad = 1;
    in->reason = r;
    in->type = KPI_EV__COUNT;
    switch (r) {
    case KPI_BAD_EMPTY:
        return; /* zero bytes */
    /* not_map: an array of two values */
    case KPI_BAD_NOT_MAP: put1(w, 0x92), kv_ts(w, in->ts_ms); return;
    case KPI_BAD_TRUNCATED: /* cut inside ts's 8 bytes */
        put1(w, 0x86), kv_type(w, KPI_EV_USAGE), K(w, K_TS);
        put_be(w, 0xcf, (uint64_t)in->ts_ms >> 32, 4);
        return;
    case KPI_BAD_MALFORMED: /* the reserved byte 0xc1 as a value */
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), put1(w, 0xc1);
        return;
    case KPI_BAD_TRAILING_BYTES: /* a good event, then a nil */
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), put_uint(w, 1000);
        put1(w, 0xc0);
        return;
    case KPI_BAD_KEY_NOT_STRING:
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), put_uint(w, 7), put_uint(w, 1);
        return;
    case KPI_BAD_DUPLICATE_KEY:
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), kv_ts(w, in->ts_ms);
        return;
    case KPI_BAD_TOO_DEEP: /* an unknown key holding 40 nested arrays */
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_CELL);
        for (int i = 0; i < 40; i++)
            put1(w, 0x91);
        put1(w, 0xc0);
        return;
    case KPI_BAD_NESTED_VALUE: /* amount: [] */
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), put1(w, 0x90);
        return;
    case KPI_BAD_OVERSIZED_STRING: { /* a churn reason one byte too long */
        static const char x[64] = "too expensive; too expensive; too expensive; too expensive; ";
        put1(w, 0x84), kv_head(w, KPI_EV_CHURN, in), K(w, K_REASON);
        size_t n = (size_t)g->c.max_str_len + 1;
        if (n < 256)
            put_be(w, 0xd9, n, 1);
        else
            put_be(w, 0xda, n, 2);
        for (size_t k = 0; k < n; k += 60)
            put(w, x, n - k < 60 ? n - k : 60);
        return;
    }
    case KPI_BAD_MISSING_TYPE:
        put1(w, 0x85), kv_ts(w, in->ts_ms), kv_sub(w, in), kv_dims(w, g, in);
        return;
    case KPI_BAD_TYPE_NOT_STRING:
        put1(w, 0x83), K(w, K_TYPE), put_uint(w, 1), kv_ts(w, in->ts_ms), kv_sub(w, in);
        return;
    case KPI_BAD_UNKNOWN_TYPE:
        put1(w, 0x83), K(w, K_TYPE), put_str(w, "refund"), kv_ts(w, in->ts_ms), kv_sub(w, in);
        return;
    case KPI_BAD_MISSING_TS:
        put1(w, 0x85), kv_type(w, KPI_EV_USAGE), kv_sub(w, in), kv_dims(w, g, in);
        return;
    case KPI_BAD_TS_NOT_UINT: { /* the time as a string */
        char digits[20];
        put1(w, 0x83), kv_type(w, KPI_EV_USAGE), K(w, K_TS);
        put_strn(w, digits, utoa((uint64_t)in->ts_ms, digits));
        kv_sub(w, in);
        return;
    }
    case KPI_BAD_TS_IN_FUTURE: /* nanoseconds instead of milliseconds */
        put1(w, 0x83), kv_type(w, KPI_EV_USAGE), K(w, K_TS);
        put_uint(w, in->ts_ms < 9000000000000LL ? (uint64_t)in->ts_ms * 1000000u : UINT64_MAX);
        kv_sub(w, in);
        return;
    case KPI_BAD_MISSING_SUB:
        put1(w, 0x85), kv_type(w, KPI_EV_USAGE), kv_ts(w, in->ts_ms), kv_dims(w, g, in);
        return;
    case KPI_BAD_SUB_WRONG_TYPE: /* sub: nil */
        put1(w, 0x83), kv_type(w, KPI_EV_USAGE), kv_ts(w, in->ts_ms), K(w, K_SUB);
        put1(w, 0xc0);
        return;
    case KPI_BAD_DIM_NOT_STRING: /* region: 7 */
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_REGION), put_uint(w, 7);
        return;
    case KPI_BAD_AMOUNT_NOT_NUMBER:
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), put_str(w, "1.25");
        return;
    case KPI_BAD_AMOUNT_NEGATIVE: /* a refund sent as usage */
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), put_int(w, -250000);
        return;
    case KPI_BAD_AMOUNT_NOT_FINITE:
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), put_double(w, NAN);
        return;
    case KPI_BAD_AMOUNT_OUT_OF_RANGE: /* 10^13 currency units: above 2^53 micro-units */
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), put_double(w, 1e13);
        return;
    case KPI_BAD_VOLUME_NOT_UINT:
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_BYTES), put_int(w, -1);
        return;
    case KPI_BAD_VOLUME_OUT_OF_RANGE: /* a valid uint64 whose sums would overflow */
        put1(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_BYTES), put_uint(w, INT64_MAX);
        return;
    case KPI_BAD_MISSING_SCORE:
        put1(w, 0x84), kv_head(w, KPI_EV_NPS, in), K(w, K_SURVEY), put_str(w, "network");
        return;
    case KPI_BAD_SCORE_NOT_UINT:
        put1(w, 0x84), kv_head(w, KPI_EV_NPS, in), K(w, K_SCORE), put_double(w, 8.5);
        return;
    case KPI_BAD_SCORE_OUT_OF_RANGE:
        put1(w, 0x84), kv_head(w, KPI_EV_NPS, in), K(w, K_SCORE), put_uint(w, 11);
        return;
    case KPI_BAD_SURVEY_NOT_STRING:
        put1(w, 0x85), kv_head(w, KPI_EV_NPS, in), K(w, K_SCORE), put_uint(w, 9);
        K(w, K_SURVEY), put_uint(w, 1);
        return;
    case KPI_BAD_UNKNOWN_SURVEY:
        put1(w, 0x85), kv_head(w, KPI_EV_NPS, in), K(w, K_SCORE), put_uint(w, 9);
        K(w, K_SURVEY), put_str(w, "store");
        return;
    case KPI_BAD_REASON_NOT_STRING:
        put1(w, 0x84), kv_head(w, KPI_EV_CHURN, in), K(w, K_REASON), put_uint(w, 3);
        return;
    case KPI_BAD_MISSING_COUNT: put1(w, 0x83), kv_head(w, KPI_EV_BASE, in); return;
    case KPI_BAD_COUNT_NOT_UINT:
        put1(w, 0x84), kv_head(w, KPI_EV_BASE, in), K(w, K_COUNT), put_double(w, 12.5);
        return;
    case KPI_BAD_COUNT_OUT_OF_RANGE:
        put1(w, 0x84), kv_head(w, KPI_EV_BASE, in), K(w, K_COUNT),
            put_uint(w, KPI_MAX_QUANTITY + 1);
        return;
    default: return; /* not made (can_make) */
    }
}

/* ---- good events ---- */

static void encode_usage(struct kpi_gen *g, struct w *w, struct kpi_gen_info *in, uint8_t *map)
{
    uint64_t r = next_u64(g), r2 = next_u64(g);
    unsigned pairs = 7;
    K(w, K_AMOUNT);
    if ((r & 7) == 0) { /* a float of currency units, in whole cents */
        double units = (double)(1 + (r >> 3 & 0xff)) / 100.0; /* 0.01 .. 2.56 */
        put_double(w, units);
        in->amount_micros = llround(units * 1e6); /* as the decoder rounds it */
    } else { /* micro-units, 1 .. 2.1 currency units, log-uniform-ish */
        in->amount_micros = (int64_t)((1 + (r >> 3 & 0xffff)) << (r >> 19 & 0xff) % 6);
        put_uint(w, (uint64_t)in->amount_micros);
    }
    unsigned kind = (unsigned)(r >> 27 & 0xf); /* 10/16 data, 5/16 voice, 1/16 sms */
    if (kind < 10) {
        in->bytes = (r >> 31 & 0x3fffff) + 1;
        K(w, K_BYTES), put_uint(w, in->bytes);
        pairs++;
    }
    if (kind < 15) {
        in->seconds = (r >> 53 & 0x3ff) + 1;
        K(w, K_SECONDS), put_uint(w, in->seconds);
        pairs++;
    }
    if ((r2 & 7) == 0) { /* a key the contract does not know */
        K(w, K_CELL), put_uint(w, r2 >> 3 & 0xffff);
        pairs++;
    }
    *map = (uint8_t)(0x80 | pairs);
}

int kpi_gen_next(struct kpi_gen *g, uint8_t *buf, size_t cap, size_t *len, struct kpi_gen_info *in)
{
    const struct kpi_gen_conf *c = &g->c;
    struct w w = {buf, buf + cap, 0};
    memset(in, 0, sizeof(*in));
    int64_t now = c->start_ts_ms + (int64_t)((double)g->n * g->ms_per_event);
    unsigned slot = (unsigned)(g->n % AHEAD);
    g->n++;

    uint64_t r = next_u64(g);
    in->ts_ms = now - (int64_t)(((r >> 32) * (uint64_t)(c->jitter_ms + 1)) >> 32);
    r = g->ahead[slot];
    draw_ahead(g, slot);
    uint64_t col = alias_col(g, r), e = g->alias[col];
    in->sub = (r >> 32) < (e >> 32) ? col : (uint32_t)e;
    in->sub_id = SUB_ID_BASE + in->sub;
    attrs(g, in);

    if (g->t_bad && (next_u64(g) >> 11) < g->t_bad) {
        encode_bad(g, &w, in);
    } else {
        int64_t off = in->ts_ms - c->start_ts_ms;
        int spiking = (in->segment == g->spike_seg || in->region == g->spike_reg) &&
                      off >= c->spike_start_ms && off < c->spike_end_ms;
        uint64_t u = next_u64(g);
        uint64_t u53 = u >> 11;
        in->type = u53 < g->t_nps                                    ? KPI_EV_NPS
                   : u53 < g->t_act                                  ? KPI_EV_ACTIVATION
                   : u53 < (spiking ? g->t_churn_spike : g->t_churn) ? KPI_EV_CHURN
                                                                     : KPI_EV_USAGE;
        uint8_t *map = w.p;
        put1(&w, 0x86); /* type, ts, sub, region, plan, segment; patched below */
        kv_head(&w, in->type, in);
        kv_dims(&w, g, in);
        switch (in->type) {
        case KPI_EV_USAGE: {
            uint8_t m;
            encode_usage(g, &w, in, &m);
            if (!w.full)
                *map = m;
            break;
        }
        case KPI_EV_NPS:
            in->score = nps_scores[u & 63];
            in->survey = (u >> 6 & 0xffff) % 3 == 0 ? KPI_SURVEY_BRAND : KPI_SURVEY_NETWORK;
            K(&w, K_SCORE), put_uint(&w, in->score);
            if (in->survey == KPI_SURVEY_BRAND) {
                K(&w, K_SURVEY), put_str(&w, "brand");
            } else if (u >> 22 & 1) { /* "network" is the default: often omitted */
                K(&w, K_SURVEY), put_str(&w, "network");
            }
            if (!w.full)
                *map = (uint8_t)(0x86 + 1 + (in->survey == KPI_SURVEY_BRAND || (u >> 22 & 1)));
            break;
        case KPI_EV_ACTIVATION: {
            /* Three in four say how long provisioning took: mostly seconds
             * to two minutes, one in eight up to two hours. */
            uint64_t v = next_u64(g);
            if ((v & 3) != 0) {
                in->has_provision_ms = 1;
                in->provision_ms =
                    (v >> 2 & 15) < 14 ? 200 + (v >> 8) % 120000 : 120000 + (v >> 8) % 7080000;
                K(&w, K_PROV), put_uint(&w, in->provision_ms);
                if (!w.full)
                    *map = 0x87;
            }
            break;
        }
        case KPI_EV_CHURN:
            if ((u & 3) != 0) { /* three in four say why */
                in->reason_text = churn_reasons[u >> 2 & 7];
                K(&w, K_REASON), put_str(&w, in->reason_text);
                if (!w.full)
                    *map = 0x87;
            }
            break;
        default: break;
        }
        if (g->c.sites) {
            kv_site(&w, g, in);
            if (!w.full)
                *map = (uint8_t)(*map + 1);
        }
    }
    if (w.full) {
        *len = 0;
        return KPI_ERR_FULL;
    }
    *len = (size_t)(w.p - buf);
    return 0;
}

/* ---- the truth ---- */

#define TRUTH_DIMS     3 /* region, plan, segment */
#define TRUTH_MAX_SETS 16
static const char *const truth_dim_names[TRUTH_DIMS] = {"region", "plan", "segment"};
static const int truth_dim_size[TRUTH_DIMS] = {NREG, NPLAN, NSEG};
static const char *const *const truth_dim_values[TRUTH_DIMS] = {regions, plans, segments};

struct tset {
    char name[64];
    int n_dims; /* 0 for "all" */
    int dims[TRUTH_DIMS];
    uint32_t n_values;
    uint32_t first; /* its first cell in a bucket's array */
};

struct tbucket {
    int64_t start;
    struct kpi_gen_cell *cells;
    uint64_t *bits; /* distinct subscribers in the bucket, or NULL */
};

struct kpi_gen_truth_detail {
    uint64_t subscribers;
    size_t words; /* of a bitmap over the population */
    int64_t bucket_ms;
    int n_sets;
    struct tset sets[TRUTH_MAX_SETS];
    uint32_t n_cells; /* per bucket */
    uint32_t max_buckets, n_buckets;
    struct tbucket *buckets;
    uint32_t *index; /* open addressing on start: bucket number + 1, 0 empty */
    uint32_t index_mask;
    uint32_t last; /* bucket number + 1 of the last hit, 0 none */
    uint64_t *all_bits;
    uint16_t *attrs; /* per subscriber: 0x8000 | region | plan << 4 | segment << 8 */
    uint64_t untracked;
};

void kpi_gen_truth_conf_defaults(struct kpi_gen_truth_conf *tc)
{
    memset(tc, 0, sizeof(*tc));
    tc->subscribers = 100000;
    tc->bucket_ms = 5000;
    tc->sets = NULL;
    tc->max_buckets = 4096;
}

static int truth_dim_index(const char *s, size_t n)
{
    for (int i = 0; i < TRUTH_DIMS; i++)
        if (strlen(truth_dim_names[i]) == n && memcmp(truth_dim_names[i], s, n) == 0)
            return i;
    return -1;
}

static int parse_sets(struct kpi_gen_truth_detail *d, const char *spec, char *errstr, size_t errsz)
{
    d->n_sets = 1;
    strcpy(d->sets[0].name, "all");
    d->sets[0].n_values = 1;
    const char *p = spec;
    while (*p) {
        size_t n = strcspn(p, ",;");
        const char *item = p;
        p += n;
        if (*p)
            p++;
        while (n && (*item == ' ' || *item == '\t'))
            item++, n--;
        while (n && (item[n - 1] == ' ' || item[n - 1] == '\t'))
            n--;
        if (n == 0 || (n == 3 && memcmp(item, "all", 3) == 0))
            continue;
        if (d->n_sets == TRUTH_MAX_SETS)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "sets: more than %d", TRUTH_MAX_SETS);
        struct tset *s = &d->sets[d->n_sets];
        memset(s, 0, sizeof(*s));
        if (n >= sizeof(s->name))
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "sets: '%.*s' is too long", (int)n,
                              item);
        memcpy(s->name, item, n);
        s->n_values = 1;
        for (const char *q = item, *end = item + n; q < end;) {
            size_t k = 0;
            while (q + k < end && q[k] != '+')
                k++;
            int di = truth_dim_index(q, k);
            if (di < 0)
                return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                                  "sets: '%.*s' is not region, plan or segment", (int)k, q);
            for (int j = 0; j < s->n_dims; j++)
                if (s->dims[j] == di)
                    return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                                      "sets: '%s' names a dimension twice", s->name);
            s->dims[s->n_dims++] = di;
            s->n_values *= (uint32_t)truth_dim_size[di];
            q += k + (q + k < end);
        }
        for (int j = 0; j < d->n_sets; j++)
            if (strcmp(d->sets[j].name, s->name) == 0)
                return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "sets: '%s' is listed twice",
                                  s->name);
        d->n_sets++;
    }
    uint32_t first = 0;
    for (int i = 0; i < d->n_sets; i++) {
        d->sets[i].first = first;
        first += d->sets[i].n_values;
    }
    d->n_cells = first;
    return 0;
}

int kpi_gen_truth_init(struct kpi_gen_truth *t, const struct kpi_gen_truth_conf *tc, char *errstr,
                       size_t errsz)
{
    struct kpi_gen_truth_conf def;
    if (!tc) {
        kpi_gen_truth_conf_defaults(&def);
        tc = &def;
    }
    memset(t, 0, sizeof(*t));
    if (tc->subscribers > KPI_GEN_MAX_SUBSCRIBERS)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "subscribers: at most %d",
                          KPI_GEN_MAX_SUBSCRIBERS);
    if (tc->bucket_ms < 0)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "bucket_ms: must be >= 0");
    if (tc->bucket_ms > 0 && (tc->max_buckets < 1 || tc->max_buckets > (1u << 24)))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "max_buckets: must be 1..%u", 1u << 24);
    struct kpi_gen_truth_detail *d = calloc(1, sizeof(*d));
    if (!d)
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    int rc = parse_sets(d, tc->sets ? tc->sets : "region,region+plan,segment", errstr, errsz);
    if (rc) {
        free(d);
        return rc;
    }
    d->subscribers = tc->subscribers;
    d->words = (size_t)((tc->subscribers + 63) / 64);
    d->bucket_ms = tc->bucket_ms;
    if (d->subscribers) {
        d->all_bits = calloc(d->words, sizeof(uint64_t));
        d->attrs = calloc((size_t)d->subscribers, sizeof(uint16_t));
    }
    if (d->bucket_ms) {
        d->max_buckets = tc->max_buckets;
        uint32_t cap = 16;
        while (cap < 2 * d->max_buckets)
            cap *= 2;
        d->index_mask = cap - 1;
        d->index = calloc(cap, sizeof(uint32_t));
        d->buckets = calloc(d->max_buckets, sizeof(struct tbucket));
    }
    t->detail = d;
    if ((d->subscribers && (!d->all_bits || !d->attrs)) ||
        (d->bucket_ms && (!d->index || !d->buckets))) {
        kpi_gen_truth_fini(t);
        return kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
    }
    return 0;
}

void kpi_gen_truth_fini(struct kpi_gen_truth *t)
{
    struct kpi_gen_truth_detail *d = t->detail;
    if (!d)
        return;
    for (uint32_t i = 0; i < d->n_buckets; i++)
        free(d->buckets[i].cells); /* the bitmap shares the allocation */
    free(d->buckets);
    free(d->index);
    free(d->all_bits);
    free(d->attrs);
    free(d);
    t->detail = NULL;
}

uint64_t kpi_gen_truth_untracked(const struct kpi_gen_truth *t)
{
    return t->detail ? t->detail->untracked : 0;
}

static inline uint32_t hash_start(int64_t start)
{
    uint64_t x = (uint64_t)start * 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(x >> 32);
}

static int64_t floor_bucket(int64_t ts, int64_t width)
{
    int64_t m = ts % width;
    return ts - (m < 0 ? m + width : m);
}

/* The bucket starting at `start`, created if new; NULL past max_buckets. */
static struct tbucket *bucket_get(struct kpi_gen_truth_detail *d, int64_t start, int create)
{
    if (d->last && d->buckets[d->last - 1].start == start)
        return &d->buckets[d->last - 1];
    for (uint32_t h = hash_start(start) & d->index_mask;; h = (h + 1) & d->index_mask) {
        uint32_t k = d->index[h];
        if (k == 0) {
            if (!create || d->n_buckets == d->max_buckets)
                return NULL;
            size_t cells = (size_t)d->n_cells * sizeof(struct kpi_gen_cell);
            size_t bits = d->words * sizeof(uint64_t);
            struct kpi_gen_cell *mem = calloc(1, cells + bits);
            if (!mem)
                return NULL;
            struct tbucket *b = &d->buckets[d->n_buckets];
            b->start = start;
            b->cells = mem;
            b->bits = d->words ? (uint64_t *)((char *)mem + cells) : NULL;
            d->index[h] = ++d->n_buckets;
            d->last = d->n_buckets;
            return b;
        }
        if (d->buckets[k - 1].start == start) {
            d->last = k;
            return &d->buckets[k - 1];
        }
    }
}

static inline uint32_t value_of(const struct tset *s, const int idx[TRUTH_DIMS])
{
    uint32_t v = 0;
    for (int j = 0; j < s->n_dims; j++)
        v = v * (uint32_t)truth_dim_size[s->dims[j]] + (uint32_t)idx[s->dims[j]];
    return v;
}

/* The engine's counting rules (kpi_schema.h), applied to what was generated
 * rather than to what a decoder read. */
static inline void count(struct kpi_counters *c, const struct kpi_gen_info *e)
{
    KPI_COUNTERS(KPI_COUNTER_RULE)
}

void kpi_gen_truth_add(struct kpi_gen_truth *t, const struct kpi_gen_info *in)
{
    t->events++;
    if (in->is_bad) {
        t->bad++;
        if ((unsigned)in->reason < KPI_BAD__COUNT)
            t->bad_by_reason[in->reason]++;
        return;
    }
    t->good++;
    count(&t->counters, in);
    if ((unsigned)in->type < KPI_EV__COUNT)
        t->by_type[in->type]++;
    switch (in->type) {
    case KPI_EV_USAGE:
        t->revenue += in->amount_micros;
        t->bytes += (int64_t)in->bytes;
        t->seconds += (int64_t)in->seconds;
        break;
    case KPI_EV_CHURN:
        if ((unsigned)in->segment < 16)
            t->churns_by_segment[in->segment]++;
        break;
    case KPI_EV_NPS:
        t->nps[in->survey][in->score >= 9   ? KPI_NPS_PROMOTERS
                           : in->score >= 7 ? KPI_NPS_PASSIVES
                                            : KPI_NPS_DETRACTORS]++;
        break;
    default: break;
    }
    struct kpi_gen_truth_detail *d = t->detail;
    if (!d)
        return;
    int known = in->sub < d->subscribers;
    uint64_t word = in->sub / 64, bit = 1ULL << (in->sub % 64);
    if (known && !(d->all_bits[word] & bit)) {
        d->all_bits[word] |= bit;
        t->distinct++;
        d->attrs[in->sub] = (uint16_t)(0x8000 | in->region | in->plan << 4 | in->segment << 8);
    }
    if (!d->bucket_ms)
        return;
    struct tbucket *b = bucket_get(d, floor_bucket(in->ts_ms, d->bucket_ms), 1);
    if (!b) {
        d->untracked++;
        return;
    }
    int first = known && !(b->bits[word] & bit);
    if (first)
        b->bits[word] |= bit;
    const int idx[TRUTH_DIMS] = {in->region, in->plan, in->segment};
    for (int s = 0; s < d->n_sets; s++) {
        struct kpi_gen_cell *cell = &b->cells[d->sets[s].first + value_of(&d->sets[s], idx)];
        count(&cell->c, in);
        cell->active += (uint64_t)first;
    }
}

static int set_index(const struct kpi_gen_truth_detail *d, const char *name)
{
    for (int i = 0; i < d->n_sets; i++)
        if (strcmp(d->sets[i].name, name) == 0)
            return i;
    return -1;
}

/* The index of a label ("eu-west|prepaid") in a set, or -1. */
static int64_t value_index(const struct tset *s, const char *label)
{
    if (s->n_dims == 0)
        return strcmp(label, "all") == 0 ? 0 : -1;
    int idx[TRUTH_DIMS] = {0, 0, 0};
    const char *p = label;
    for (int j = 0; j < s->n_dims; j++) {
        size_t n = strcspn(p, "|");
        int di = s->dims[j];
        int v = index_of(truth_dim_values[di], truth_dim_size[di], p, n);
        if (v < 0)
            return -1;
        idx[di] = v;
        p += n;
        if (j < s->n_dims - 1) {
            if (*p != '|')
                return -1;
            p++;
        }
    }
    return *p ? -1 : (int64_t)value_of(s, idx);
}

const struct kpi_gen_cell *kpi_gen_truth_cell(const struct kpi_gen_truth *t, const char *set,
                                              const char *value, int64_t bucket_start)
{
    struct kpi_gen_truth_detail *d = t->detail;
    if (!d || !d->bucket_ms)
        return NULL;
    int s = set_index(d, set);
    int64_t v = s < 0 ? -1 : value_index(&d->sets[s], value);
    if (v < 0)
        return NULL;
    uint32_t last = d->last; /* a lookup must not move the cache: keep it const */
    struct tbucket *b = bucket_get(d, bucket_start, 0);
    d->last = last;
    if (!b)
        return NULL;
    const struct kpi_gen_cell *c = &b->cells[d->sets[s].first + (uint32_t)v];
    return c->c.events ? c : NULL;
}

int64_t kpi_gen_truth_distinct(const struct kpi_gen_truth *t, const char *set, const char *value,
                               int64_t from_ms, int64_t to_ms)
{
    const struct kpi_gen_truth_detail *d = t->detail;
    if (!d || !d->bucket_ms || !d->subscribers || d->untracked)
        return -1;
    int s = set_index(d, set);
    int64_t v = s < 0 ? -1 : value_index(&d->sets[s], value);
    if (v < 0)
        return -1;
    const struct tset *ts = &d->sets[s];
    int64_t n = 0;
    for (size_t w = 0; w < d->words; w++) {
        uint64_t word = 0;
        for (uint32_t i = 0; i < d->n_buckets; i++)
            if (d->buckets[i].start >= from_ms && d->buckets[i].start < to_ms)
                word |= d->buckets[i].bits[w];
        if (ts->n_dims == 0) {
            n += __builtin_popcountll(word);
            continue;
        }
        while (word) {
            uint64_t sub = w * 64 + (uint64_t)__builtin_ctzll(word);
            word &= word - 1;
            uint16_t a = d->attrs[sub];
            const int idx[TRUTH_DIMS] = {a & 15, a >> 4 & 15, a >> 8 & 15};
            n += value_of(ts, idx) == (uint32_t)v;
        }
    }
    return n;
}

static int cmp_bucket(const void *a, const void *b)
{
    int64_t x = (*(const struct tbucket *const *)a)->start;
    int64_t y = (*(const struct tbucket *const *)b)->start;
    return (x > y) - (x < y);
}

/* Write a set's value label ("eu-west|prepaid") for value index v. */
static void write_label(FILE *out, const struct tset *s, uint32_t v)
{
    if (s->n_dims == 0) {
        fputs("all", out);
        return;
    }
    int idx[TRUTH_DIMS];
    for (int j = s->n_dims - 1; j >= 0; j--) {
        int di = s->dims[j];
        idx[j] = (int)(v % (uint32_t)truth_dim_size[di]);
        v /= (uint32_t)truth_dim_size[di];
    }
    for (int j = 0; j < s->n_dims; j++)
        fprintf(out, "%s%s", j ? "|" : "", truth_dim_values[s->dims[j]][idx[j]]);
}

/* Every counter of the schema, as "name":value pairs. */
static void write_counters(FILE *out, const struct kpi_counters *c)
{
    for (int i = 0; i < KPI_NCOUNTERS; i++)
        fprintf(out, "%s\"%s\":%lld", i ? "," : "", kpi_counter_names[i], (long long)c->v[i]);
}

/*
 * The JSON:
 *
 *   {"events", "good", "bad", "revenue_micros", "bytes", "seconds",
 *    "distinct_subscribers" (null without tracking),
 *    "by_type": {"usage": n, ...}, "bad_by_reason": {"empty": n, ...} (every
 *    reason the generator makes), "nps": {"network": {"promoters",
 *    "passives", "detractors"}, "brand": {...}}, "churns_by_segment": {...},
 *    "counters": {every counter of engine/kpi_schema.h: "events", "usage",
 *                 "revenue" (micro-units), ...}
 *   and, with per-bucket tracking,
 *    "bucket_ms", "sets": ["all", "region", ...], "untracked_events",
 *    "cells": [{"bucket": start_ms, "set", "value", then every counter of
 *               engine/kpi_schema.h ("events", "usage", ...), "active"}, ...]}
 *
 * Cells are sorted by bucket, then set, then value; cells without events are
 * left out.  One cell per line, so line tools work on it too.
 */
int kpi_gen_truth_write_json(FILE *out, const struct kpi_gen_truth *t)
{
    const struct kpi_gen_truth_detail *d = t->detail;
    fprintf(out,
            "{\"events\":%llu,\"good\":%llu,\"bad\":%llu,\"revenue_micros\":%lld,"
            "\"bytes\":%lld,\"seconds\":%lld,",
            (unsigned long long)t->events, (unsigned long long)t->good, (unsigned long long)t->bad,
            (long long)t->revenue, (long long)t->bytes, (long long)t->seconds);
    if (d && d->subscribers)
        fprintf(out, "\"distinct_subscribers\":%llu,", (unsigned long long)t->distinct);
    else
        fputs("\"distinct_subscribers\":null,", out);
    fputs("\n\"by_type\":{", out);
    for (int i = 0; i < KPI_EV__COUNT; i++)
        fprintf(out, "%s\"%s\":%llu", i ? "," : "", kpi_event_type_name((enum kpi_event_type)i),
                (unsigned long long)t->by_type[i]);
    fputs("},\n\"bad_by_reason\":{", out);
    int first = 1;
    for (int i = 0; i < KPI_BAD__COUNT; i++) {
        if (!can_make((enum kpi_bad_reason)i))
            continue;
        fprintf(out, "%s\"%s\":%llu", first ? "" : ",", kpi_bad_reason_name((enum kpi_bad_reason)i),
                (unsigned long long)t->bad_by_reason[i]);
        first = 0;
    }
    fputs("},\n\"nps\":{", out);
    for (int s = 0; s < KPI_SURVEY__COUNT; s++)
        fprintf(out, "%s\"%s\":{\"promoters\":%llu,\"passives\":%llu,\"detractors\":%llu}",
                s ? "," : "", s == KPI_SURVEY_BRAND ? "brand" : "network",
                (unsigned long long)t->nps[s][0], (unsigned long long)t->nps[s][1],
                (unsigned long long)t->nps[s][2]);
    fputs("},\n\"churns_by_segment\":{", out);
    for (int i = 0; i < NSEG; i++)
        fprintf(out, "%s\"%s\":%llu", i ? "," : "", segments[i],
                (unsigned long long)t->churns_by_segment[i]);
    fputs("},\n\"counters\":{", out);
    write_counters(out, &t->counters);
    fputc('}', out);
    if (d && d->bucket_ms) {
        fprintf(out, ",\n\"bucket_ms\":%lld,\"sets\":[", (long long)d->bucket_ms);
        for (int s = 0; s < d->n_sets; s++)
            fprintf(out, "%s\"%s\"", s ? "," : "", d->sets[s].name);
        fprintf(out, "],\"untracked_events\":%llu,\n\"cells\":[", (unsigned long long)d->untracked);
        const struct tbucket **order = malloc((d->n_buckets + 1) * sizeof(*order));
        if (!order)
            return KPI_ERR_NOMEM;
        for (uint32_t i = 0; i < d->n_buckets; i++)
            order[i] = &d->buckets[i];
        qsort(order, d->n_buckets, sizeof(*order), cmp_bucket);
        const char *sep = "\n";
        for (uint32_t i = 0; i < d->n_buckets; i++) {
            const struct tbucket *b = order[i];
            for (int s = 0; s < d->n_sets; s++) {
                const struct tset *ts = &d->sets[s];
                for (uint32_t v = 0; v < ts->n_values; v++) {
                    const struct kpi_gen_cell *cell = &b->cells[ts->first + v];
                    const struct kpi_counters *c = &cell->c;
                    if (!c->events)
                        continue;
                    fprintf(out, "%s{\"bucket\":%lld,\"set\":\"%s\",\"value\":\"", sep,
                            (long long)b->start, ts->name);
                    write_label(out, ts, v);
                    fputs("\",", out);
                    write_counters(out, c);
                    if (d->subscribers)
                        fprintf(out, ",\"active\":%llu}", (unsigned long long)cell->active);
                    else
                        fputs(",\"active\":null}", out);
                    sep = ",\n";
                }
            }
        }
        free(order);
        fputs("]", out);
    }
    fputs("}\n", out);
    return fflush(out) == 0 && !ferror(out) ? 0 : KPI_ERR_IO;
}
