/*
 * truth.c - the truth oracle (see truth.h).
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
#include "gen/truth.h"

#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "engine/kpi_schema.h"
#include "gen/population.h"

#define TRUTH_DIMS     3 /* region, plan, segment */
#define TRUTH_MAX_SETS 16
static const char *const truth_dim_names[TRUTH_DIMS] = {"region", "plan", "segment"};
static const int truth_dim_size[TRUTH_DIMS] = {KPI_GEN_NREG, KPI_GEN_NPLAN, KPI_GEN_NSEG};
static const char *const *const truth_dim_values[TRUTH_DIMS] = {kpi_gen_regions, kpi_gen_plans,
                                                                kpi_gen_segments};

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

/* Which dimension values a (set, value) pair pins: want[d] = index, or -1. */
static int pin_value(const char *set, const char *value, int want[TRUTH_DIMS])
{
    for (int d = 0; d < TRUTH_DIMS; d++)
        want[d] = -1;
    if (!strcmp(set, "all"))
        return strcmp(value, "all") ? -1 : 0;
    const char *sp = set, *vp = value;
    while (*sp) {
        size_t sn = strcspn(sp, "+"), vn = strcspn(vp, "|");
        int d = truth_dim_index(sp, sn);
        if (d < 0 || !vn)
            return -1;
        int found = -1;
        for (int i = 0; i < truth_dim_size[d]; i++)
            if (strlen(truth_dim_values[d][i]) == vn && !memcmp(truth_dim_values[d][i], vp, vn))
                found = i;
        if (found < 0)
            return -1;
        want[d] = found;
        sp += sn + (sp[sn] == '+');
        vp += vn + (vp[vn] == '|');
    }
    return *vp ? -1 : 0;
}

int kpi_gen_truth_base(const struct kpi_gen_truth *t, const char *set, const char *value,
                       int64_t *base)
{
    int want[TRUTH_DIMS];
    if (pin_value(set, value, want))
        return -1;
    int64_t sum = 0;
    for (int r = 0; r < KPI_GEN_NREG; r++)
        for (int p = 0; p < KPI_GEN_NPLAN; p++)
            for (int s = 0; s < KPI_GEN_NSEG; s++) {
                if ((want[0] >= 0 && r != want[0]) || (want[1] >= 0 && p != want[1]) ||
                    (want[2] >= 0 && s != want[2]))
                    continue;
                if (!t->has_base[r][p][s])
                    return -1;
                sum += t->base_init[r][p][s] + t->net_adds[r][p][s];
            }
    *base = sum;
    return 0;
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
    if (in->type == KPI_EV_BASE) { /* a gauge: in no counter, no cell */
        t->by_type[KPI_EV_BASE]++;
        t->base_init[in->region][in->plan][in->segment] = in->base_init;
        t->has_base[in->region][in->plan][in->segment] = 1;
        return;
    }
    count(&t->counters, in);
    if ((unsigned)in->type < KPI_EV__COUNT)
        t->by_type[in->type]++;
    if (in->type == KPI_EV_ACTIVATION || in->type == KPI_EV_CHURN)
        t->net_adds[in->region][in->plan][in->segment] += in->type == KPI_EV_ACTIVATION ? 1 : -1;
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
        int v = kpi_gen_name_index(truth_dim_values[di], truth_dim_size[di], p, n);
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
 *   when base snapshots were made (gen.h),
 *    "bases": [{"set", "value", "base": the expected subscriber base, or
 *               null when unknown}, ...] for every value of every set
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
        if (!kpi_gen_can_make((enum kpi_bad_reason)i))
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
    for (int i = 0; i < KPI_GEN_NSEG; i++)
        fprintf(out, "%s\"%s\":%llu", i ? "," : "", kpi_gen_segments[i],
                (unsigned long long)t->churns_by_segment[i]);
    fputs("},\n\"counters\":{", out);
    write_counters(out, &t->counters);
    fputc('}', out);
    if (t->by_type[KPI_EV_BASE]) {
        /* The expected bases: every value of every set, known or null. */
        fputs(",\n\"bases\":[", out);
        static const struct tset all = {"all", 0, {0}, 1, 0};
        int n_sets = d ? d->n_sets : 1;
        const char *sep = "\n";
        for (int si = 0; si < n_sets; si++) {
            const struct tset *ts = d ? &d->sets[si] : &all;
            for (uint32_t v = 0; v < ts->n_values; v++) {
                char label[128];
                char *buf = NULL;
                size_t len = 0;
                FILE *lf = open_memstream(&buf, &len);
                if (!lf)
                    return KPI_ERR_NOMEM;
                if (ts->n_dims)
                    write_label(lf, ts, v);
                else
                    fputs("all", lf);
                fclose(lf);
                snprintf(label, sizeof(label), "%s", buf ? buf : "");
                free(buf);
                int64_t b;
                fprintf(out, "%s{\"set\":\"%s\",\"value\":\"%s\",\"base\":", sep, ts->name, label);
                if (kpi_gen_truth_base(t, ts->name, label, &b) == 0)
                    fprintf(out, "%lld}", (long long)b);
                else
                    fputs("null}", out);
                sep = ",\n";
            }
        }
        fputc(']', out);
    }
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
