/*
 * stdout.c - the in-memory sink (see stdout.h).
 *
 * State, per window: a table of entries, one per (grouping set, value) ever
 * seen, each with a ring of 2 * (size / slide) bucket slots.  A window bucket
 * b lives in slot (b / slide) mod ring while it is inside
 * [head - size + slide, head + size]: the current instance plus as much
 * again ahead of the head (inputs whose event time is ahead of the slowest).
 * Data behind the instance is not kept (nothing reports it) and data further
 * ahead is counted and dropped (it would need an input a whole window ahead
 * of the slowest one).  A slot is reset when a newer bucket claims it, so
 * nothing is ever subtracted: a query sums the slots inside the instance and
 * unions their sketches, and each entry caches its last result until a cell
 * lands in it or the head moves.
 */
#include "sinks/stdout.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "engine/err.h"
#include "engine/hash.h"

struct slot {
    int64_t bucket; /* INT64_MIN: empty */
    struct kpi_counters c;
    struct kpi_hll hll;
};

struct entry {
    uint32_t set, vid;
    char *label;
    uint32_t label_len;
    struct slot *slots; /* [ring] */
    int dirty;          /* a cell landed since `cached` was computed */
    int64_t cached_head;
    struct kpi_values cached;
};

struct win {
    struct kpi_window_spec spec;
    int64_t head; /* INT64_MIN: none yet */
    uint32_t ring;
    struct entry *e;
    uint32_t n, cap;
    uint32_t *index; /* open addressing: 0 empty, else entry + 1 */
    uint32_t mask;
};

struct stdout_sink {
    pthread_mutex_t mu;
    FILE *out;
    int json;
    int top;
    int ready; /* windows and sets known (from the first delta) */
    int n_windows;
    struct win w[KPI_MAX_WINDOWS];
    int64_t lateness_ms;
    int n_sets;
    char set_names[KPI_MAX_SETS][KPI_SET_NAME_MAX];
    uint64_t flushes;
    uint64_t dropped_ahead;
    int64_t watermark;
    struct kpi_hll scratch;
};

/* ---- entries ---- */

static uint32_t entry_hash(uint32_t set, uint32_t vid)
{
    uint64_t x = ((uint64_t)set << 32 | vid) * 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(x >> 32);
}

static uint32_t entry_hash_of(const void *w, uint32_t i)
{
    const struct entry *e = &((const struct win *)w)->e[i];
    return entry_hash(e->set, e->vid);
}

static int win_grow_index(struct win *w)
{
    uint32_t slots = w->mask ? (w->mask + 1) * 2 : 64;
    return kpi_hash_index_rebuild(&w->index, &w->mask, slots, w->n, entry_hash_of, w)
               ? KPI_ERR_NOMEM
               : 0;
}

static struct entry *win_find(const struct win *w, uint32_t set, uint32_t vid)
{
    if (!w->index)
        return NULL;
    uint32_t h = entry_hash(set, vid) & w->mask;
    while (w->index[h]) {
        struct entry *e = &w->e[w->index[h] - 1];
        if (e->set == set && e->vid == vid)
            return e;
        h = (h + 1) & w->mask;
    }
    return NULL;
}

static struct entry *win_get(struct win *w, const struct kpi_dims *dims, uint32_t set, uint32_t vid)
{
    struct entry *e = win_find(w, set, vid);
    if (e)
        return e;
    if ((w->n + 1) * 2 > w->mask + 1 && win_grow_index(w))
        return NULL;
    if (w->n == w->cap) {
        uint32_t cap = w->cap ? w->cap * 2 : 64;
        struct entry *ne = realloc(w->e, cap * sizeof(*ne));
        if (!ne)
            return NULL;
        w->e = ne;
        w->cap = cap;
    }
    e = &w->e[w->n];
    memset(e, 0, sizeof(*e));
    e->set = set;
    e->vid = vid;
    uint32_t len;
    const char *l = kpi_dims_value_label(dims, (int)set, vid, &len);
    e->label = malloc(len + 1);
    e->slots = calloc(w->ring, sizeof(*e->slots));
    if (!e->label || !e->slots) {
        free(e->label);
        free(e->slots);
        return NULL;
    }
    memcpy(e->label, l, len);
    e->label[len] = '\0';
    e->label_len = len;
    for (uint32_t i = 0; i < w->ring; i++) {
        e->slots[i].bucket = INT64_MIN;
        kpi_hll_init(&e->slots[i].hll);
    }
    e->cached_head = INT64_MIN;
    uint32_t h = entry_hash(set, vid) & w->mask;
    while (w->index[h])
        h = (h + 1) & w->mask;
    w->index[h] = ++w->n;
    return e;
}

static void win_free(struct win *w)
{
    for (uint32_t i = 0; i < w->n; i++) {
        for (uint32_t k = 0; k < w->ring; k++)
            kpi_hll_fini(&w->e[i].slots[k].hll);
        free(w->e[i].slots);
        free(w->e[i].label);
    }
    free(w->e);
    free(w->index);
    memset(w, 0, sizeof(*w));
}

/* The entry's KPIs for the window's current instance (cached). */
static const struct kpi_values *entry_values(struct stdout_sink *s, struct win *w, struct entry *e,
                                             int *changed)
{
    if (!e->dirty && e->cached_head == w->head) {
        if (changed)
            *changed = 0;
        return &e->cached;
    }
    struct kpi_counters sum = {0};
    kpi_hll_reset(&s->scratch);
    if (w->head != INT64_MIN) {
        int64_t lo = w->head - w->spec.size_ms + w->spec.slide_ms;
        for (uint32_t k = 0; k < w->ring; k++) {
            const struct slot *sl = &e->slots[k];
            if (sl->bucket == INT64_MIN || sl->bucket < lo || sl->bucket > w->head)
                continue;
            kpi_counters_add(&sum, &sl->c);
            kpi_hll_merge(&s->scratch, &sl->hll);
        }
    }
    struct kpi_values v;
    kpi_values_compute(&v, &sum, kpi_hll_count(&s->scratch));
    if (changed)
        *changed = memcmp(&v, &e->cached, sizeof(v)) != 0;
    e->cached = v;
    e->cached_head = w->head;
    e->dirty = 0;
    return &e->cached;
}

/* ---- printing ---- */

static void fmt_time(char *buf, size_t cap, int64_t ms)
{
    if (ms == INT64_MIN) {
        snprintf(buf, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_json(struct stdout_sink *s, struct win *w, const struct entry *e,
                       const struct kpi_values *v)
{
    FILE *f = s->out;
    fputs("{\"window\":", f);
    kpi_json_str(f, w->spec.name);
    kpi_json_member_str(f, "set", s->set_names[e->set]);
    fputs(",\"value\":", f);
    kpi_json_strn(f, e->label, e->label_len);
    int64_t start = w->head - w->spec.size_ms + w->spec.slide_ms, end = w->head + w->spec.slide_ms;
    fprintf(f, ",\"start\":%" PRId64 ",\"end\":%" PRId64 ",", start, end);
    kpi_values_write_json(f, v);
    fputs("}\n", f);
}

static void print_row(struct stdout_sink *s, const struct win *w, const struct entry *e,
                      const struct kpi_values *v)
{
    fprintf(s->out, "%-8s %-14s %-24.*s %10" PRId64 " %14.2f %6" PRId64 " %6" PRId64 " %8" PRIu64,
            w->spec.name, s->set_names[e->set], e->label_len > 24 ? 24 : (int)e->label_len,
            e->label, v->c.events, (double)v->c.revenue / 1e6, v->c.activations, v->c.churns,
            v->active);
    for (int i = 0; i < KPI_NDERIVED; i++) {
        const struct kpi_derived_def *k = &kpi_derived_defs[i];
        char cell[24] = "-";
        if (v->has[i])
            snprintf(cell, sizeof(cell), k->fmt, v->derived[i] * k->scale);
        fprintf(s->out, " %9s", cell);
    }
    fputc('\n', s->out);
}

static int by_events_desc(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
    if (x->cached.c.events != y->cached.c.events)
        return x->cached.c.events < y->cached.c.events ? 1 : -1;
    return strcmp(x->label, y->label);
}

static void print_table(struct stdout_sink *s, const struct kpi_delta *d)
{
    char wm[32];
    fmt_time(wm, sizeof(wm), d->watermark);
    fprintf(s->out, "-- flush %" PRIu64 "  watermark %s  delta cells %u\n", s->flushes, wm,
            d->cells->n);
    fprintf(s->out, "%-8s %-14s %-24s %10s %14s %6s %6s %8s", "window", "set", "value", "events",
            "revenue", "activ", "churns", "active");
    for (int i = 0; i < KPI_NDERIVED; i++)
        fprintf(s->out, " %9s", kpi_derived_defs[i].head);
    fputc('\n', s->out);
    for (int wi = 0; wi < s->n_windows; wi++) {
        struct win *w = &s->w[wi];
        struct entry **list = malloc((w->n ? w->n : 1) * sizeof(*list));
        if (!list)
            return;
        for (int set = 0; set < s->n_sets; set++) {
            uint32_t n = 0;
            for (uint32_t i = 0; i < w->n; i++)
                if (w->e[i].set == (uint32_t)set) {
                    entry_values(s, w, &w->e[i], NULL);
                    if (w->e[i].cached.c.events > 0 || set == 0)
                        list[n++] = &w->e[i];
                }
            qsort(list, n, sizeof(*list), by_events_desc);
            for (uint32_t i = 0; i < n && i < (uint32_t)s->top; i++)
                print_row(s, w, list[i], &list[i]->cached);
        }
        free(list);
    }
    fflush(s->out);
}

/* ---- the sink ---- */

static int setup(struct stdout_sink *s, const struct kpi_delta *d)
{
    s->n_windows = d->windows->n;
    s->lateness_ms = d->windows->lateness_ms;
    for (int i = 0; i < s->n_windows; i++) {
        struct win *w = &s->w[i];
        w->spec = d->windows->w[i];
        w->head = INT64_MIN;
        w->ring = (uint32_t)(2 * kpi_window_buckets(&w->spec));
        if (win_grow_index(w))
            return KPI_ERR_NOMEM;
    }
    s->n_sets = d->dims->n_sets;
    for (int i = 0; i < s->n_sets; i++)
        snprintf(s->set_names[i], sizeof(s->set_names[i]), "%s", d->dims->sets[i].name);
    s->ready = 1;
    return 0;
}

static int stdout_flush(void *self, const struct kpi_delta *d, char *errstr, size_t errsz)
{
    struct stdout_sink *s = self;
    int err = 0;
    pthread_mutex_lock(&s->mu);
    if (!s->ready && (err = setup(s, d)))
        goto out;
    if (d->watermark != INT64_MIN && (s->watermark == INT64_MIN || d->watermark > s->watermark))
        s->watermark = d->watermark;
    for (int wi = 0; wi < s->n_windows; wi++) {
        struct win *w = &s->w[wi];
        const int64_t slide = w->spec.slide_ms, size = w->spec.size_ms;
        if (d->watermark != INT64_MIN) {
            int64_t clock = d->watermark + s->lateness_ms;
            if (clock >= 0 && (w->head == INT64_MIN || kpi_bucket_start(clock, slide) > w->head))
                w->head = kpi_bucket_start(clock, slide);
        } else {
            /* No watermark yet: the newest bucket stands in for it. */
            for (uint32_t i = 0; i < d->cells->n; i++) {
                int64_t b = kpi_bucket_start(d->cells->cells[i].bucket, slide);
                if (w->head == INT64_MIN || b > w->head)
                    w->head = b;
            }
        }
        for (uint32_t i = 0; i < d->cells->n; i++) {
            const struct kpi_agg_cell *c = &d->cells->cells[i];
            int64_t b = kpi_bucket_start(c->bucket, slide);
            if (w->head != INT64_MIN && b < w->head - size + slide)
                continue; /* behind the current instance: never reported again */
            if (w->head != INT64_MIN && b > w->head + size) {
                s->dropped_ahead++;
                continue;
            }
            struct entry *e = win_get(w, d->dims, c->set, c->vid);
            if (!e) {
                err = kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "stdout sink: out of memory");
                goto out;
            }
            struct slot *sl = &e->slots[(uint64_t)(b / slide) % w->ring];
            if (sl->bucket != b) {
                memset(&sl->c, 0, sizeof(sl->c));
                kpi_hll_reset(&sl->hll);
                sl->bucket = b;
            }
            kpi_counters_add(&sl->c, &c->c);
            if (kpi_hll_merge(&sl->hll, &c->hll)) {
                err = kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "stdout sink: out of memory");
                goto out;
            }
            e->dirty = 1;
        }
    }
    s->flushes++;
    if (!s->out)
        goto out;
    if (s->json) {
        for (int wi = 0; wi < s->n_windows; wi++) {
            struct win *w = &s->w[wi];
            for (uint32_t i = 0; i < w->n; i++) {
                int changed;
                const struct kpi_values *v = entry_values(s, w, &w->e[i], &changed);
                if (changed)
                    print_json(s, w, &w->e[i], v);
            }
        }
        fflush(s->out);
    } else {
        print_table(s, d);
    }
out:
    pthread_mutex_unlock(&s->mu);
    return err;
}

static void stdout_destroy(void *self)
{
    struct stdout_sink *s = self;
    if (!s)
        return;
    for (int i = 0; i < KPI_MAX_WINDOWS; i++)
        win_free(&s->w[i]);
    kpi_hll_fini(&s->scratch);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const struct kpi_sink_ops stdout_ops = {
    .name = "stdout",
    .flush = stdout_flush,
    .destroy = stdout_destroy, /* stores no offsets: no load_offset */
};

struct kpi_sink kpi_sink_stdout_new(FILE *out, int json, int top, char *errstr, size_t errsz)
{
    struct kpi_sink none = {NULL, NULL};
    struct stdout_sink *s = calloc(1, sizeof(*s));
    if (!s) {
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
        return none;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->out = out;
    s->json = json;
    s->top = top > 0 ? top : 5;
    s->watermark = INT64_MIN;
    kpi_hll_init(&s->scratch);
    struct kpi_sink sink = {&stdout_ops, s};
    return sink;
}

/* The window and set index a reader names, or NULL / -1.  Caller holds mu. */
static struct win *find_win(struct stdout_sink *s, const char *window)
{
    for (int i = 0; i < s->n_windows; i++)
        if (strcmp(s->w[i].spec.name, window) == 0 || strcmp(s->w[i].spec.id, window) == 0)
            return &s->w[i];
    return NULL;
}

static int find_set(const struct stdout_sink *s, const char *set)
{
    for (int i = 0; i < s->n_sets; i++)
        if (strcmp(s->set_names[i], set) == 0)
            return i;
    return -1;
}

int kpi_sink_stdout_state(const struct kpi_sink *sink, const char *window, int64_t *head,
                          int64_t *watermark, uint64_t *flushes)
{
    struct stdout_sink *s = sink->self;
    int err = 0;
    pthread_mutex_lock(&s->mu);
    struct win *w = s->ready ? find_win(s, window) : NULL;
    if (!s->ready)
        err = KPI_ERR_STATE;
    else if (!w)
        err = KPI_ERR_INVAL;
    else {
        *head = w->head;
        *watermark = s->watermark;
        *flushes = s->flushes;
    }
    pthread_mutex_unlock(&s->mu);
    return err;
}

/* The entry of `value` in set si of window w, or NULL. */
static struct entry *find_value(struct win *w, int si, const char *value)
{
    size_t vl = strlen(value);
    for (uint32_t i = 0; i < w->n; i++)
        if (w->e[i].set == (uint32_t)si && w->e[i].label_len == vl &&
            memcmp(w->e[i].label, value, vl) == 0)
            return &w->e[i];
    return NULL;
}

/* Locks the sink and finds the window, the set's index and, when value is
 * not NULL, its entry (NULL when the window holds none): *err is 0,
 * KPI_ERR_STATE before the first flush or KPI_ERR_INVAL for an unknown
 * window or set.  The caller unlocks s->mu. */
static struct stdout_sink *lock_find(const struct kpi_sink *sink, const char *window,
                                     const char *set, const char *value, struct win **w, int *si,
                                     struct entry **e, int *err)
{
    struct stdout_sink *s = sink->self;
    pthread_mutex_lock(&s->mu);
    *err = KPI_ERR_STATE;
    *e = NULL;
    if (s->ready) {
        *w = find_win(s, window);
        *si = find_set(s, set);
        *err = *w && *si >= 0 ? 0 : KPI_ERR_INVAL;
        if (!*err && value)
            *e = find_value(*w, *si, value);
    }
    return s;
}

int kpi_sink_stdout_each(const struct kpi_sink *sink, const char *window, const char *set,
                         void (*fn)(void *opaque, const char *value, size_t len,
                                    const struct kpi_values *v),
                         void *opaque)
{
    struct win *w;
    struct entry *none;
    int si, err;
    struct stdout_sink *s = lock_find(sink, window, set, NULL, &w, &si, &none, &err);
    if (!err)
        for (uint32_t i = 0; i < w->n; i++) {
            struct entry *e = &w->e[i];
            if (e->set != (uint32_t)si)
                continue;
            const struct kpi_values *v = entry_values(s, w, e, NULL);
            if (v->c.events > 0 || si == 0)
                fn(opaque, e->label, e->label_len, v);
        }
    pthread_mutex_unlock(&s->mu);
    return err;
}

int kpi_sink_stdout_buckets(const struct kpi_sink *sink, const char *window, const char *set,
                            const char *value,
                            void (*fn)(void *opaque, int64_t bucket, const struct kpi_values *v),
                            void *opaque)
{
    struct win *w;
    struct entry *e;
    int si, err;
    struct stdout_sink *s = lock_find(sink, window, set, value, &w, &si, &e, &err);
    if (!e || w->head == INT64_MIN)
        goto out;
    /* The ring's slots in bucket order: slot (b / slide) mod ring. */
    const int64_t slide = w->spec.slide_ms;
    int64_t lo = w->head - w->spec.size_ms + slide;
    for (int64_t b = lo; b <= w->head; b += slide) {
        const struct slot *sl = &e->slots[(uint64_t)(b / slide) % w->ring];
        if (sl->bucket != b)
            continue;
        struct kpi_values v;
        kpi_values_compute(&v, &sl->c, kpi_hll_count(&sl->hll));
        fn(opaque, b, &v);
    }
out:
    pthread_mutex_unlock(&s->mu);
    return err;
}

int kpi_sink_stdout_query(const struct kpi_sink *sink, const char *window, const char *set,
                          const char *value, struct kpi_values *out, int64_t *start, int64_t *end)
{
    struct win *w;
    struct entry *e;
    int si, err;
    struct stdout_sink *s = lock_find(sink, window, set, value, &w, &si, &e, &err);
    if (err)
        goto out;
    if (e) {
        *out = *entry_values(s, w, e, NULL);
    } else {
        struct kpi_counters zero = {0};
        kpi_values_compute(out, &zero, 0);
    }
    if (start)
        *start = w->head == INT64_MIN ? INT64_MIN : w->head - w->spec.size_ms + w->spec.slide_ms;
    if (end)
        *end = w->head == INT64_MIN ? INT64_MIN : w->head + w->spec.slide_ms;
out:
    pthread_mutex_unlock(&s->mu);
    return err;
}
