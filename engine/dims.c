/*
 * dims.c - grouping-set configuration and value interning (see dims.h).
 *
 * The per-event cost is one join of at most KPI_MAX_DIMS short strings into a
 * stack buffer, one hash and one lock-free table probe per grouping set.
 */
#include "engine/dims.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/list.h"
#include "engine/err.h"
#include "engine/hash.h"

#define INTERN_SEED 0x6b7069737472ULL /* any constant unlike the HLL seed */

static int find_dim(const struct kpi_dims *d, const char *name, size_t len)
{
    for (int i = 0; i < d->n_dims; i++)
        if (strlen(d->dim_names[i]) == len && memcmp(d->dim_names[i], name, len) == 0)
            return i;
    return -1;
}

static int valid_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static int parse_dims(struct kpi_dims *d, const char *csv, char *errstr, size_t errsz)
{
    const char *p = csv, *s;
    size_t len;
    while ((s = kpi_list_next(&p, ", ", &len))) {
        if (d->n_dims == KPI_MAX_DIMS)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "at most %d dimensions", KPI_MAX_DIMS);
        if (len >= KPI_DIM_NAME_MAX)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "dimension name '%.*s' is too long",
                              (int)len, s);
        for (size_t i = 0; i < len; i++)
            if (!valid_name_char(s[i]))
                return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                                  "dimension name '%.*s' has a character outside [A-Za-z0-9_.-]",
                                  (int)len, s);
        if (find_dim(d, s, len) >= 0)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "dimension '%.*s' is listed twice",
                              (int)len, s);
        memcpy(d->dim_names[d->n_dims], s, len);
        d->dim_names[d->n_dims][len] = '\0';
        d->dim_name_ptrs[d->n_dims] = d->dim_names[d->n_dims];
        d->n_dims++;
    }
    return 0;
}

static int parse_set(struct kpi_dims *d, const char *s, size_t len, char *errstr, size_t errsz)
{
    if (len == 3 && memcmp(s, "all", 3) == 0)
        return 0;
    if (d->n_sets == KPI_MAX_SETS)
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "at most %d grouping sets",
                          KPI_MAX_SETS - 1);
    struct kpi_grouping_set *g = &d->sets[d->n_sets];
    memset(g, 0, sizeof(*g));
    uint32_t seen = 0;
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *q = p;
        while (q < end && *q != '+')
            q++;
        int di = find_dim(d, p, (size_t)(q - p));
        if (di < 0)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                              "grouping set '%.*s' names '%.*s', which is not a dimension",
                              (int)len, s, (int)(q - p), p);
        if (seen & (1u << di))
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                              "grouping set '%.*s' names a dimension twice", (int)len, s);
        seen |= 1u << di;
        g->dims[g->n_dims++] = (uint8_t)di;
        p = q + 1;
    }
    if (len >= sizeof(g->name))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "grouping set name too long");
    memcpy(g->name, s, len);
    g->name[len] = '\0';
    for (int i = 1; i < d->n_sets; i++)
        if (strcmp(d->sets[i].name, g->name) == 0)
            return kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "grouping set '%s' is listed twice",
                              g->name);
    d->n_sets++;
    return 0;
}

int kpi_dims_init(struct kpi_dims *d, const char *dims_csv, const char *sets, uint32_t card_limit,
                  uint32_t max_str_len, char *errstr, size_t errsz)
{
    int err;
    memset(d, 0, sizeof(*d));
    if (card_limit < 1 || card_limit > (1u << 24))
        return kpi_seterr(errstr, errsz, KPI_ERR_INVAL,
                          "cardinality limit %u is outside 1..16777216", card_limit);
    d->card_limit = card_limit;
    if ((err = parse_dims(d, dims_csv ? dims_csv : "", errstr, errsz)))
        return err;
    strcpy(d->sets[0].name, "all");
    d->n_sets = 1;
    const char *p = sets ? sets : "", *s;
    size_t len;
    while ((s = kpi_list_next(&p, ", ;", &len)))
        if ((err = parse_set(d, s, len, errstr, errsz)))
            return err;
    d->max_value_len = (max_str_len + 1) * KPI_MAX_DIMS;
    for (int i = 1; i < d->n_sets; i++) {
        uint32_t max_key = (max_str_len + 1) * (uint32_t)d->sets[i].n_dims;
        if ((err = kpi_intern_init(&d->intern[i], card_limit, max_key))) {
            kpi_dims_fini(d);
            return kpi_seterr(errstr, errsz, err, "cannot allocate %u values for set '%s'",
                              card_limit, d->sets[i].name);
        }
    }
    return 0;
}

void kpi_dims_fini(struct kpi_dims *d)
{
    for (int i = 1; i < d->n_sets; i++)
        if (d->intern[i].slots)
            kpi_intern_fini(&d->intern[i]);
}

uint32_t kpi_dims_value_id(struct kpi_dims *d, int set, const struct kpi_event *ev)
{
    if (set == 0)
        return KPI_VALUE_ALL;
    const struct kpi_grouping_set *g = &d->sets[set];
    char buf[(KPI_MAX_STR_DEFAULT + 1) * KPI_MAX_DIMS];
    char *key = buf;
    size_t cap = d->intern[set].max_key;
    if (cap > sizeof(buf))
        key = __builtin_alloca(cap); /* bounded by max_str_len * n_dims, set at init */
    size_t n = 0;
    for (int i = 0; i < g->n_dims; i++) {
        const struct kpi_strref *v = &ev->dims[g->dims[i]];
        const char *s = v->ptr ? v->ptr : KPI_NONE_LABEL;
        size_t len = v->ptr ? v->len : sizeof(KPI_NONE_LABEL) - 1;
        if (i)
            key[n++] = '|';
        if (n + len > cap)
            return KPI_VALUE_OTHER;
        memcpy(key + n, s, len);
        n += len;
    }
    uint32_t id =
        kpi_intern_get(&d->intern[set], key, (uint32_t)n, kpi_murmur64a(key, n, INTERN_SEED));
    return id; /* KPI_INTERN_FULL == KPI_VALUE_OTHER */
}

const char *kpi_dims_value_label(const struct kpi_dims *d, int set, uint32_t id, uint32_t *len)
{
    if (set == 0) {
        *len = 3;
        return "all";
    }
    if (id == KPI_VALUE_OTHER) {
        *len = sizeof(KPI_OTHER_LABEL) - 1;
        return KPI_OTHER_LABEL;
    }
    return kpi_intern_key(&d->intern[set], id, len);
}

uint32_t kpi_dims_value_count(const struct kpi_dims *d, int set)
{
    return set == 0 ? 1 : kpi_intern_size(&d->intern[set]);
}

int kpi_dims_set_index(const struct kpi_dims *d, const char *name)
{
    for (int i = 0; i < d->n_sets; i++)
        if (strcmp(d->sets[i].name, name) == 0)
            return i;
    return -1;
}
