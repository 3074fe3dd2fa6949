/*
 * gen.c - the traffic generator (see gen.h for what the traffic looks like and
 * why; population.c for who the subscribers are, msgpack_writer.h for the
 * encoding, truth.c for the tally of what was generated).
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
 *      (msgpack_writer.h)
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
 */
#include "gen/gen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "engine/window.h"
#include "gen/msgpack_writer.h"
#include "gen/population.h"

#define SUB_ID_BASE 46700000000ULL /* MSISDN-like */

/* ---- the traffic's shape ---- */

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
    uint32_t region_cum[KPI_GEN_NREG], segment_cum[KPI_GEN_NSEG],
        plan_cum[KPI_GEN_NSEG][KPI_GEN_NPLAN];
    struct enc region_enc[KPI_GEN_NREG], plan_enc[KPI_GEN_NPLAN], segment_enc[KPI_GEN_NSEG];
    enum kpi_bad_reason bad[N_BAD_MAX];
    int n_bad;
    uint64_t bad_i;
    /* Base snapshots (gen.h): per combination, the initial base, every net
     * add so far, and those with ts >= base_t (the pending snapshot's hour). */
    int64_t base_init[KPI_GEN_NREG][KPI_GEN_NPLAN][KPI_GEN_NSEG];
    int64_t base_net[KPI_GEN_NREG][KPI_GEN_NPLAN][KPI_GEN_NSEG];
    int64_t base_after[KPI_GEN_NREG][KPI_GEN_NPLAN][KPI_GEN_NSEG];
    int64_t base_t;    /* the pending snapshot's hour */
    int base_emitting; /* combinations of the pending snapshot emitted so far */
    uint64_t n_snap;   /* snapshot events made (they do not advance event time) */
};

#define GEN_HOUR_MS 3600000LL

void kpi_gen_conf_defaults(struct kpi_gen_conf *c)
{
    *c = (struct kpi_gen_conf){
        .seed = 1,
        .subscribers = 100000,
        .zipf_s = 1.1,
        .start_ts_ms = 1700000000000LL,
        .events_per_sec = 10000,
        .jitter_ms = 2000,
        .nps_rate = 0.03,
        .activation_rate = 0.01,
        .churn_rate = 0.005,
        .max_str_len = KPI_MAX_STR_DEFAULT,
        .spike_factor = 1,
        .base_monthly_churn = 0.02,
    };
}

int kpi_gen_can_make(enum kpi_bad_reason r)
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
            if ((c->bad_kinds >> r & 1) && !kpi_gen_can_make((enum kpi_bad_reason)r))
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
    if (c->base_every_ms < 0 || c->base_every_ms % GEN_HOUR_MS)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "base_every_ms: must be 0 or a multiple of 1 h (snapshots are hourly)");
    if (c->base_every_ms && !(c->base_monthly_churn > 0 && c->base_monthly_churn <= 1))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "base_monthly_churn: must be in (0, 1]");
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
    while (n > 1 && kpi_gcd((int64_t)step, (int64_t)n) != 1)
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
    double region_w[KPI_GEN_NREG];
    for (int i = 0; i < KPI_GEN_NREG; i++)
        region_w[i] = 1.0 / (i + 1);
    cumulate(region_w, KPI_GEN_NREG, g->region_cum);
    cumulate(kpi_gen_segment_w, KPI_GEN_NSEG, g->segment_cum);
    for (int s = 0; s < KPI_GEN_NSEG; s++)
        cumulate(kpi_gen_plan_w[s], KPI_GEN_NPLAN, g->plan_cum[s]);
    for (int i = 0; i < KPI_GEN_NREG; i++)
        enc_name(&g->region_enc[i], kpi_gen_regions[i]);
    for (int i = 0; i < KPI_GEN_NPLAN; i++)
        enc_name(&g->plan_enc[i], kpi_gen_plans[i]);
    for (int i = 0; i < KPI_GEN_NSEG; i++)
        enc_name(&g->segment_enc[i], kpi_gen_segments[i]);
    for (int r = 0; r < KPI_BAD__COUNT; r++)
        if (kpi_gen_can_make((enum kpi_bad_reason)r) && (!c->bad_kinds || (c->bad_kinds >> r & 1)))
            g->bad[g->n_bad++] = (enum kpi_bad_reason)r;
    if (c->base_every_ms) {
        /* Each combination's share of the population, from the same
         * cumulative tables attrs() draws with. */
        double b = c->events_per_sec * (1 - c->bad_ratio) * c->churn_rate * 2592000.0 /
                   c->base_monthly_churn;
        for (int r = 0; r < KPI_GEN_NREG; r++)
            for (int s = 0; s < KPI_GEN_NSEG; s++)
                for (int p = 0; p < KPI_GEN_NPLAN; p++) {
                    double pr = (g->region_cum[r] - (r ? g->region_cum[r - 1] : 0)) / 65536.0;
                    double ps = (g->segment_cum[s] - (s ? g->segment_cum[s - 1] : 0)) / 65536.0;
                    double pp = (g->plan_cum[s][p] - (p ? g->plan_cum[s][p - 1] : 0)) / 65536.0;
                    g->base_init[r][p][s] = llround(b * pr * ps * pp);
                }
        g->base_t = c->start_ts_ms - c->start_ts_ms % GEN_HOUR_MS;
    }
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
    in->region = pick16((uint32_t)(h & 0xffff), g->region_cum, KPI_GEN_NREG);
    in->segment = pick16((uint32_t)(h >> 16 & 0xffff), g->segment_cum, KPI_GEN_NSEG);
    in->plan = pick16((uint32_t)(h >> 32 & 0xffff), g->plan_cum[in->segment], KPI_GEN_NPLAN);
    in->is_sub_str = (h >> 48 & 0xff) < 26; /* about one in ten */
    in->region_name = kpi_gen_regions[in->region];
    in->plan_name = kpi_gen_plans[in->plan];
    in->segment_name = kpi_gen_segments[in->segment];
}

/* Keys and type names with their msgpack fixstr header byte, 0xa0 | length,
 * written in octal (0240 | length) so no letter reads as a hex digit. */
#define K(w, lit) kpi_mp_raw((w), lit, sizeof(lit) - 1)
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

static inline void kv_type(struct kpi_mp_writer *w, enum kpi_event_type t)
{
    K(w, K_TYPE);
    kpi_mp_raw(w, type_enc[t], type_enc_len[t]);
}

static inline void kv_ts(struct kpi_mp_writer *w, int64_t ts)
{
    K(w, K_TS);
    kpi_mp_uint(w, (uint64_t)ts);
}

static inline void kv_sub(struct kpi_mp_writer *w, const struct kpi_gen_info *in)
{
    K(w, K_SUB);
    if (in->is_sub_str) {
        char digits[20];
        kpi_mp_strn(w, digits, kpi_mp_utoa(in->sub_id, digits));
    } else {
        kpi_mp_uint(w, in->sub_id);
    }
}

/* region, plan, segment: three pairs. */
static inline void kv_dims(struct kpi_mp_writer *w, const struct kpi_gen *g,
                           const struct kpi_gen_info *in)
{
    K(w, K_REGION);
    kpi_mp_raw(w, g->region_enc[in->region].b, g->region_enc[in->region].len);
    K(w, K_PLAN);
    kpi_mp_raw(w, g->plan_enc[in->plan].b, g->plan_enc[in->plan].len);
    K(w, K_SEGMENT);
    kpi_mp_raw(w, g->segment_enc[in->segment].b, g->segment_enc[in->segment].len);
}

/* site: the subscriber's home cell site, when conf.sites is set. */
static inline void kv_site(struct kpi_mp_writer *w, const struct kpi_gen *g,
                           const struct kpi_gen_info *in)
{
    char v[32] = "site-";
    uint64_t x = in->sub * 0xd6e8feb86659fd93ULL;
    size_t n = 5 + kpi_mp_utoa(splitmix(&x) % g->c.sites, v + 5);
    K(w, "\244site");
    kpi_mp_strn(w, v, n);
}

/* type, ts, sub: the three pairs every event needs. */
static inline void kv_head(struct kpi_mp_writer *w, enum kpi_event_type t,
                           const struct kpi_gen_info *in)
{
    kv_type(w, t);
    kv_ts(w, in->ts_ms);
    kv_sub(w, in);
}

/* ---- bad events: one generator per decoder reason ---- */

static void encode_bad(struct kpi_gen *g, struct kpi_mp_writer *w, struct kpi_gen_info *in)
{
    enum kpi_bad_reason r = g->bad[g->bad_i++ % (uint64_t)g->n_bad];
    in->is_bad = 1;
    in->reason = r;
    in->type = KPI_EV__COUNT;
    switch (r) {
    case KPI_BAD_EMPTY:
        return; /* zero bytes */
    /* not_map: an array of two values */
    case KPI_BAD_NOT_MAP: kpi_mp_u8(w, 0x92), kv_ts(w, in->ts_ms); return;
    case KPI_BAD_TRUNCATED: /* cut inside ts's 8 bytes */
        kpi_mp_u8(w, 0x86), kv_type(w, KPI_EV_USAGE), K(w, K_TS);
        kpi_mp_be(w, 0xcf, (uint64_t)in->ts_ms >> 32, 4);
        return;
    case KPI_BAD_MALFORMED: /* the reserved byte 0xc1 as a value */
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), kpi_mp_u8(w, 0xc1);
        return;
    case KPI_BAD_TRAILING_BYTES: /* a good event, then a nil */
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), kpi_mp_uint(w, 1000);
        kpi_mp_u8(w, 0xc0);
        return;
    case KPI_BAD_KEY_NOT_STRING:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), kpi_mp_uint(w, 7), kpi_mp_uint(w, 1);
        return;
    case KPI_BAD_DUPLICATE_KEY:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), kv_ts(w, in->ts_ms);
        return;
    case KPI_BAD_TOO_DEEP: /* an unknown key holding 40 nested arrays */
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_CELL);
        for (int i = 0; i < 40; i++)
            kpi_mp_u8(w, 0x91);
        kpi_mp_u8(w, 0xc0);
        return;
    case KPI_BAD_NESTED_VALUE: /* amount: [] */
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), kpi_mp_u8(w, 0x90);
        return;
    case KPI_BAD_OVERSIZED_STRING: { /* a churn reason one byte too long */
        static const char x[64] = "too expensive; too expensive; too expensive; too expensive; ";
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_CHURN, in), K(w, K_REASON);
        size_t n = (size_t)g->c.max_str_len + 1;
        if (n < 256)
            kpi_mp_be(w, 0xd9, n, 1);
        else
            kpi_mp_be(w, 0xda, n, 2);
        for (size_t k = 0; k < n; k += 60)
            kpi_mp_raw(w, x, n - k < 60 ? n - k : 60);
        return;
    }
    case KPI_BAD_MISSING_TYPE:
        kpi_mp_u8(w, 0x85), kv_ts(w, in->ts_ms), kv_sub(w, in), kv_dims(w, g, in);
        return;
    case KPI_BAD_TYPE_NOT_STRING:
        kpi_mp_u8(w, 0x83), K(w, K_TYPE), kpi_mp_uint(w, 1), kv_ts(w, in->ts_ms), kv_sub(w, in);
        return;
    case KPI_BAD_UNKNOWN_TYPE:
        kpi_mp_u8(w, 0x83), K(w, K_TYPE), kpi_mp_str(w, "refund"), kv_ts(w, in->ts_ms),
            kv_sub(w, in);
        return;
    case KPI_BAD_MISSING_TS:
        kpi_mp_u8(w, 0x85), kv_type(w, KPI_EV_USAGE), kv_sub(w, in), kv_dims(w, g, in);
        return;
    case KPI_BAD_TS_NOT_UINT: { /* the time as a string */
        char digits[20];
        kpi_mp_u8(w, 0x83), kv_type(w, KPI_EV_USAGE), K(w, K_TS);
        kpi_mp_strn(w, digits, kpi_mp_utoa((uint64_t)in->ts_ms, digits));
        kv_sub(w, in);
        return;
    }
    case KPI_BAD_TS_IN_FUTURE: /* nanoseconds instead of milliseconds */
        kpi_mp_u8(w, 0x83), kv_type(w, KPI_EV_USAGE), K(w, K_TS);
        kpi_mp_uint(w, in->ts_ms < 9000000000000LL ? (uint64_t)in->ts_ms * 1000000u : UINT64_MAX);
        kv_sub(w, in);
        return;
    case KPI_BAD_MISSING_SUB:
        kpi_mp_u8(w, 0x85), kv_type(w, KPI_EV_USAGE), kv_ts(w, in->ts_ms), kv_dims(w, g, in);
        return;
    case KPI_BAD_SUB_WRONG_TYPE: /* sub: nil */
        kpi_mp_u8(w, 0x83), kv_type(w, KPI_EV_USAGE), kv_ts(w, in->ts_ms), K(w, K_SUB);
        kpi_mp_u8(w, 0xc0);
        return;
    case KPI_BAD_DIM_NOT_STRING: /* region: 7 */
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_REGION), kpi_mp_uint(w, 7);
        return;
    case KPI_BAD_AMOUNT_NOT_NUMBER:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), kpi_mp_str(w, "1.25");
        return;
    case KPI_BAD_AMOUNT_NEGATIVE: /* a refund sent as usage */
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), kpi_mp_int(w, -250000);
        return;
    case KPI_BAD_AMOUNT_NOT_FINITE:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), kpi_mp_double(w, NAN);
        return;
    case KPI_BAD_AMOUNT_OUT_OF_RANGE: /* 10^13 currency units: above 2^53 micro-units */
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_AMOUNT), kpi_mp_double(w, 1e13);
        return;
    case KPI_BAD_VOLUME_NOT_UINT:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_BYTES), kpi_mp_int(w, -1);
        return;
    case KPI_BAD_VOLUME_OUT_OF_RANGE: /* a valid uint64 whose sums would overflow */
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_USAGE, in), K(w, K_BYTES), kpi_mp_uint(w, INT64_MAX);
        return;
    case KPI_BAD_MISSING_SCORE:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_NPS, in), K(w, K_SURVEY), kpi_mp_str(w, "network");
        return;
    case KPI_BAD_SCORE_NOT_UINT:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_NPS, in), K(w, K_SCORE), kpi_mp_double(w, 8.5);
        return;
    case KPI_BAD_SCORE_OUT_OF_RANGE:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_NPS, in), K(w, K_SCORE), kpi_mp_uint(w, 11);
        return;
    case KPI_BAD_SURVEY_NOT_STRING:
        kpi_mp_u8(w, 0x85), kv_head(w, KPI_EV_NPS, in), K(w, K_SCORE), kpi_mp_uint(w, 9);
        K(w, K_SURVEY), kpi_mp_uint(w, 1);
        return;
    case KPI_BAD_UNKNOWN_SURVEY:
        kpi_mp_u8(w, 0x85), kv_head(w, KPI_EV_NPS, in), K(w, K_SCORE), kpi_mp_uint(w, 9);
        K(w, K_SURVEY), kpi_mp_str(w, "store");
        return;
    case KPI_BAD_REASON_NOT_STRING:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_CHURN, in), K(w, K_REASON), kpi_mp_uint(w, 3);
        return;
    case KPI_BAD_MISSING_COUNT: kpi_mp_u8(w, 0x83), kv_head(w, KPI_EV_BASE, in); return;
    case KPI_BAD_COUNT_NOT_UINT:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_BASE, in), K(w, K_COUNT), kpi_mp_double(w, 12.5);
        return;
    case KPI_BAD_COUNT_OUT_OF_RANGE:
        kpi_mp_u8(w, 0x84), kv_head(w, KPI_EV_BASE, in), K(w, K_COUNT),
            kpi_mp_uint(w, KPI_MAX_QUANTITY + 1);
        return;
    default: return; /* not made (kpi_gen_can_make) */
    }
}

/* ---- good events ---- */

static void encode_usage(struct kpi_gen *g, struct kpi_mp_writer *w, struct kpi_gen_info *in,
                         uint8_t *map)
{
    uint64_t r = next_u64(g), r2 = next_u64(g);
    unsigned pairs = 7;
    K(w, K_AMOUNT);
    if ((r & 7) == 0) { /* a float of currency units, in whole cents */
        double units = (double)(1 + (r >> 3 & 0xff)) / 100.0; /* 0.01 .. 2.56 */
        kpi_mp_double(w, units);
        in->amount_micros = llround(units * 1e6); /* as the decoder rounds it */
    } else { /* micro-units, 1 .. 2.1 currency units, log-uniform-ish */
        in->amount_micros = (int64_t)((1 + (r >> 3 & 0xffff)) << (r >> 19 & 0xff) % 6);
        kpi_mp_uint(w, (uint64_t)in->amount_micros);
    }
    unsigned kind = (unsigned)(r >> 27 & 0xf); /* 10/16 data, 5/16 voice, 1/16 sms */
    if (kind < 10) {
        in->bytes = (r >> 31 & 0x3fffff) + 1;
        K(w, K_BYTES), kpi_mp_uint(w, in->bytes);
        pairs++;
    }
    if (kind < 15) {
        in->seconds = (r >> 53 & 0x3ff) + 1;
        K(w, K_SECONDS), kpi_mp_uint(w, in->seconds);
        pairs++;
    }
    if ((r2 & 7) == 0) { /* a key the contract does not know */
        K(w, K_CELL), kpi_mp_uint(w, r2 >> 3 & 0xffff);
        pairs++;
    }
    *map = (uint8_t)(0x80 | pairs);
}

/* The next combination's snapshot of the pending hour g->base_t. */
static int next_snapshot(struct kpi_gen *g, struct kpi_mp_writer *w, int64_t now,
                         struct kpi_gen_info *in)
{
    int i = g->base_emitting++;
    in->type = KPI_EV_BASE;
    in->region = i / (KPI_GEN_NPLAN * KPI_GEN_NSEG);
    in->plan = i / KPI_GEN_NSEG % KPI_GEN_NPLAN;
    in->segment = i % KPI_GEN_NSEG;
    in->region_name = kpi_gen_regions[in->region];
    in->plan_name = kpi_gen_plans[in->plan];
    in->segment_name = kpi_gen_segments[in->segment];
    int64_t ts = now - g->c.jitter_ms; /* in the hour: >= base_t, as now passed it */
    in->ts_ms = ts < g->base_t + GEN_HOUR_MS ? ts : g->base_t + GEN_HOUR_MS - 1;
    in->base_init = g->base_init[in->region][in->plan][in->segment];
    int64_t v = in->base_init + g->base_net[in->region][in->plan][in->segment] -
                g->base_after[in->region][in->plan][in->segment];
    in->count = v > 0 ? (uint64_t)v : 0;
    kpi_mp_u8(w, 0x86);
    K(w, K_TYPE), kpi_mp_raw(w, type_enc[KPI_EV_BASE], type_enc_len[KPI_EV_BASE]);
    kv_ts(w, in->ts_ms);
    kv_dims(w, g, in);
    K(w, K_COUNT), kpi_mp_uint(w, in->count);
    if (g->base_emitting == KPI_GEN_NREG * KPI_GEN_NPLAN * KPI_GEN_NSEG) {
        /* Every event so far has ts < the next snapshot's hour. */
        g->base_emitting = 0;
        g->base_t += g->c.base_every_ms;
        memset(g->base_after, 0, sizeof(g->base_after));
    }
    return w->full ? KPI_ERR_FULL : 0;
}

int kpi_gen_next(struct kpi_gen *g, uint8_t *buf, size_t cap, size_t *len, struct kpi_gen_info *in)
{
    const struct kpi_gen_conf *c = &g->c;
    struct kpi_mp_writer w = {buf, buf + cap, 0};
    memset(in, 0, sizeof(*in));
    int64_t now = c->start_ts_ms + (int64_t)((double)(g->n - g->n_snap) * g->ms_per_event);
    if (c->base_every_ms && (g->base_emitting || now - c->jitter_ms >= g->base_t)) {
        g->n++;
        g->n_snap++;
        int rc = next_snapshot(g, &w, now, in);
        *len = rc ? 0 : (size_t)(w.p - buf);
        return rc;
    }
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
        kpi_mp_u8(&w, 0x86); /* type, ts, sub, region, plan, segment; patched below */
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
            K(&w, K_SCORE), kpi_mp_uint(&w, in->score);
            if (in->survey == KPI_SURVEY_BRAND) {
                K(&w, K_SURVEY), kpi_mp_str(&w, "brand");
            } else if (u >> 22 & 1) { /* "network" is the default: often omitted */
                K(&w, K_SURVEY), kpi_mp_str(&w, "network");
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
                K(&w, K_PROV), kpi_mp_uint(&w, in->provision_ms);
                if (!w.full)
                    *map = 0x87;
            }
            break;
        }
        case KPI_EV_CHURN:
            if ((u & 3) != 0) { /* three in four say why */
                in->reason_text = churn_reasons[u >> 2 & 7];
                K(&w, K_REASON), kpi_mp_str(&w, in->reason_text);
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
        if (c->base_every_ms && (in->type == KPI_EV_ACTIVATION || in->type == KPI_EV_CHURN)) {
            int d = in->type == KPI_EV_ACTIVATION ? 1 : -1;
            g->base_net[in->region][in->plan][in->segment] += d;
            if (in->ts_ms >= g->base_t)
                g->base_after[in->region][in->plan][in->segment] += d;
        }
    }
    if (w.full) {
        *len = 0;
        return KPI_ERR_FULL;
    }
    *len = (size_t)(w.p - buf);
    return 0;
}
