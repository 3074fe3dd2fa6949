/*
 * hll.c - HyperLogLog sketches byte-compatible with Redis (see hll.h).
 *
 * In memory a sketch has two forms, chosen for the per-event path:
 *
 *   sparse (small sets)                     dense (large sets)
 *   tab: open-addressing set of uint32      regs: one byte per register
 *   +---------------------+                 +----+----+----+-- ... --+----+
 *   | idx << 8 | rank     |  0 = empty      | r0 | r1 | r2 |         |r16383|
 *   +---------------------+                 +----+----+----+-- ... --+----+
 *   grows 16 -> ... -> 512 entries,          16 KiB, allocated once when the
 *   then the sketch turns dense              set outgrows the table
 *
 * A register holds the largest "rank" seen for its index: with Redis's hash
 * (MurmurHash64A, seed 0xadc83b19) the low 14 bits pick the register and the
 * rank is 1 + the number of trailing zeros of the remaining 50 bits (at most
 * 51).  Both forms hold exactly the same registers; only the cost differs.
 * One byte per register (not Redis's 6 bits) keeps an update to one load and
 * one store; the 6-bit packing happens when serializing.
 *
 * On the wire (kpi_hll_serialize / _deserialize) a sketch is a Redis HLL
 * string: 16-byte header ("HYLL", encoding, 3 unused bytes, 8-byte cached
 * cardinality whose top bit marks it stale), then either
 *
 *   dense:  16384 registers of 6 bits, little-endian bit order (register i at
 *           bit 6*i), 12288 bytes;
 *   sparse: opcodes covering the 16384 registers in order:
 *             ZERO   00xxxxxx            run of xxxxxx+1 zero registers (1..64)
 *             XZERO  01xxxxxx yyyyyyyy   run of (xxxxxx<<8|yyyyyyyy)+1 zeros (1..16384)
 *             VAL    1vvvvvxx            run of xx+1 registers of value vvvvv+1
 *                                        (values 1..32, runs 1..4)
 *
 * The estimator is Redis's (Ertl's improved raw estimator over the register
 * histogram, "New cardinality estimation algorithms for HyperLogLog
 * sketches", 2017), so kpi_hll_count returns what PFCOUNT returns.
 */
#include "engine/hll.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

#define HDR         16
#define DENSE_BYTES ((KPI_HLL_REGISTERS * 6 + 7) / 8)
#define Q           (64 - KPI_HLL_P)
#define TAB_MIN     16
#define TAB_MAX     512 /* entries; past 3/4 of this the sketch turns dense */

static inline uint32_t reg_index(uint64_t hash)
{
    return (uint32_t)(hash & (KPI_HLL_REGISTERS - 1));
}

static inline uint8_t reg_rank(uint64_t hash)
{
    uint64_t rest = (hash >> KPI_HLL_P) | (1ULL << Q);
    return (uint8_t)(__builtin_ctzll(rest) + 1);
}

void kpi_hll_init(struct kpi_hll *h)
{
    memset(h, 0, sizeof(*h));
}

void kpi_hll_fini(struct kpi_hll *h)
{
    free(h->regs);
    free(h->tab);
    kpi_hll_init(h); /* empty again, as a sketch just initialised */
}

void kpi_hll_reset(struct kpi_hll *h)
{
    if (h->nz == 0)
        return;
    if (h->dense)
        memset(h->regs, 0, KPI_HLL_REGISTERS);
    else
        memset(h->tab, 0, (size_t)h->tab_cap * sizeof(*h->tab));
    h->nz = 0;
}

int kpi_hll_is_empty(const struct kpi_hll *h)
{
    return h->nz == 0;
}

size_t kpi_hll_memory(const struct kpi_hll *h)
{
    return (h->regs ? KPI_HLL_REGISTERS : 0) + (size_t)h->tab_cap * sizeof(*h->tab);
}

/* ---- the sparse table ---- */

static inline uint32_t slot_of(uint32_t idx, uint32_t cap)
{
    return (idx * 0x9e3779b1u) >> 18 & (cap - 1); /* spread: indexes are small */
}

/* Set register idx to max(current, rank) in the table; returns 1 if changed. */
static int tab_set(uint32_t *tab, uint32_t cap, uint32_t idx, uint8_t rank, uint32_t *nz)
{
    for (uint32_t i = slot_of(idx, cap);; i = (i + 1) & (cap - 1)) {
        uint32_t e = tab[i];
        if (e == 0) {
            tab[i] = idx << 8 | rank;
            (*nz)++;
            return 1;
        }
        if (e >> 8 == idx) {
            if ((e & 0xff) >= rank)
                return 0;
            tab[i] = idx << 8 | rank;
            return 1;
        }
    }
}

static int to_dense(struct kpi_hll *h)
{
    if (!h->regs) {
        h->regs = calloc(1, KPI_HLL_REGISTERS);
        if (!h->regs)
            return KPI_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < h->tab_cap; i++)
        if (h->tab[i])
            h->regs[h->tab[i] >> 8] = (uint8_t)(h->tab[i] & 0xff);
    free(h->tab);
    h->tab = NULL;
    h->tab_cap = 0;
    h->dense = 1;
    return 0;
}

static int tab_grow(struct kpi_hll *h)
{
    uint32_t cap = h->tab_cap ? h->tab_cap * 2u : TAB_MIN;
    if (cap > TAB_MAX)
        return to_dense(h);
    uint32_t *t = calloc(cap, sizeof(*t));
    if (!t)
        return to_dense(h); /* dense may still fit; else NOMEM from there */
    uint32_t nz = 0;
    for (uint32_t i = 0; i < h->tab_cap; i++)
        if (h->tab[i])
            tab_set(t, cap, h->tab[i] >> 8, (uint8_t)(h->tab[i] & 0xff), &nz);
    free(h->tab);
    h->tab = t;
    h->tab_cap = (uint16_t)cap;
    return 0;
}

/* Set one register (any form); 1 if it changed, 0 if not, <0 on NOMEM. */
static int set_reg(struct kpi_hll *h, uint32_t idx, uint8_t rank)
{
    if (h->dense) {
        uint8_t *r = &h->regs[idx];
        if (*r >= rank)
            return 0;
        h->nz += *r == 0;
        *r = rank;
        return 1;
    }
    if ((h->nz + 1) * 4 > (uint32_t)h->tab_cap * 3) {
        int err = tab_grow(h);
        if (err)
            return err;
        if (h->dense)
            return set_reg(h, idx, rank);
    }
    return tab_set(h->tab, h->tab_cap, idx, rank, &h->nz);
}

int kpi_hll_add_hash(struct kpi_hll *h, uint64_t hash)
{
    return set_reg(h, reg_index(hash), reg_rank(hash));
}

int kpi_hll_merge(struct kpi_hll *dst, const struct kpi_hll *src)
{
    if (src->nz == 0)
        return 0;
    if (src->dense) {
        if (!dst->dense) {
            int err = to_dense(dst);
            if (err)
                return err;
        }
        uint32_t nz = 0;
        for (uint32_t i = 0; i < KPI_HLL_REGISTERS; i++) {
            uint8_t a = dst->regs[i], b = src->regs[i];
            uint8_t m = a > b ? a : b;
            dst->regs[i] = m;
            nz += m != 0;
        }
        dst->nz = nz;
        return 0;
    }
    for (uint32_t i = 0; i < src->tab_cap; i++)
        if (src->tab[i]) {
            int err = set_reg(dst, src->tab[i] >> 8, (uint8_t)(src->tab[i] & 0xff));
            if (err < 0)
                return err;
        }
    return 0;
}

/* ---- estimator (Redis's hllCount for a register histogram) ---- */

static double hll_sigma(double x)
{
    if (x == 1.)
        return INFINITY;
    double z_prev, y = 1, z = x;
    do {
        x *= x;
        z_prev = z;
        z += x * y;
        y += y;
    } while (z_prev != z);
    return z;
}

static double hll_tau(double x)
{
    if (x == 0. || x == 1.)
        return 0.;
    double z_prev, y = 1.0, z = 1 - x;
    do {
        x = sqrt(x);
        z_prev = z;
        y *= 0.5;
        z -= pow(1 - x, 2) * y;
    } while (z_prev != z);
    return z / 3;
}

uint64_t kpi_hll_count(const struct kpi_hll *h)
{
    int histo[64] = {0};
    if (h->dense) {
        /* Four histograms, summed after: consecutive registers often have
         * the same value, and one table would make each increment wait for
         * the one before. */
        int part[4][64];
        memset(part, 0, sizeof(part));
        for (uint32_t i = 0; i < KPI_HLL_REGISTERS; i += 4) {
            part[0][h->regs[i] & 63]++;
            part[1][h->regs[i + 1] & 63]++;
            part[2][h->regs[i + 2] & 63]++;
            part[3][h->regs[i + 3] & 63]++;
        }
        for (int j = 0; j < 64; j++)
            histo[j] = part[0][j] + part[1][j] + part[2][j] + part[3][j];
    } else {
        histo[0] = (int)(KPI_HLL_REGISTERS - h->nz);
        for (uint32_t i = 0; i < h->tab_cap; i++)
            if (h->tab[i])
                histo[h->tab[i] & 0xff]++;
    }
    const double m = KPI_HLL_REGISTERS;
    double z = m * hll_tau((m - histo[Q + 1]) / m);
    for (int j = Q; j >= 1; --j) {
        z += histo[j];
        z *= 0.5;
    }
    z += m * hll_sigma(histo[0] / m);
    return (uint64_t)llroundl(0.721347520444481703680 * m * m / z);
}

/* ---- Redis string format ---- */

static void header(uint8_t *out, int encoding)
{
    memcpy(out, "HYLL", 4);
    out[4] = (uint8_t)encoding;
    memset(out + 5, 0, 11);
    out[15] = 0x80; /* cached cardinality invalid: Redis recomputes it */
}

/* The sparse encoder writes opcodes through an enc; put_* return -1 once
 * cap would be passed (the string does not fit) or a value is above 32. */
struct enc {
    uint8_t *out;
    size_t n, cap;
};

static int put_zeros(struct enc *e, uint32_t run)
{
    while (run) {
        if (run <= 64) {
            if (e->n + 1 > e->cap)
                return -1;
            e->out[e->n++] = (uint8_t)(run - 1);
            run = 0;
        } else {
            uint32_t r = run > KPI_HLL_REGISTERS ? KPI_HLL_REGISTERS : run;
            if (e->n + 2 > e->cap)
                return -1;
            e->out[e->n++] = (uint8_t)(0x40 | (r - 1) >> 8);
            e->out[e->n++] = (uint8_t)((r - 1) & 0xff);
            run -= r;
        }
    }
    return 0;
}

static int put_vals(struct enc *e, uint8_t v, uint32_t run)
{
    if (v > 32)
        return -1;
    while (run) {
        uint32_t r = run > 4 ? 4 : run;
        if (e->n + 1 > e->cap)
            return -1;
        e->out[e->n++] = (uint8_t)(0x80 | (v - 1) << 2 | (r - 1));
        run -= r;
    }
    return 0;
}

/* Length of the run of zero registers from i (8 at a time: a sparse string
 * is mostly zero runs, and a dense-form sketch may hold few registers). */
static uint32_t zero_run(const uint8_t *regs, uint32_t i)
{
    uint32_t j = i;
    while (j + 8 <= KPI_HLL_REGISTERS) {
        uint64_t w;
        memcpy(&w, regs + j, 8);
        if (w)
            break;
        j += 8;
    }
    while (j < KPI_HLL_REGISTERS && regs[j] == 0)
        j++;
    return j - i;
}

/* Sparse opcodes of dense-form registers. */
static int sparse_of_regs(const uint8_t *regs, struct enc *e)
{
    uint32_t i = 0;
    while (i < KPI_HLL_REGISTERS) {
        uint8_t v = regs[i];
        uint32_t run;
        if (v == 0) {
            run = zero_run(regs, i);
            if (put_zeros(e, run))
                return -1;
        } else {
            run = 1;
            while (i + run < KPI_HLL_REGISTERS && regs[i + run] == v)
                run++;
            if (put_vals(e, v, run))
                return -1;
        }
        i += run;
    }
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sparse opcodes of a table-form sketch: its entries sorted by index (idx <<
 * 8 | rank sorts so), with the zero runs between them.  The same bytes as
 * sparse_of_regs over the same registers. */
static int sparse_of_tab(const struct kpi_hll *h, struct enc *e)
{
    uint32_t ent[TAB_MAX], m = 0;
    for (uint32_t i = 0; i < h->tab_cap; i++)
        if (h->tab[i])
            ent[m++] = h->tab[i];
    qsort(ent, m, sizeof(ent[0]), cmp_u32);
    uint32_t next = 0; /* the first register not yet encoded */
    for (uint32_t k = 0; k < m;) {
        uint32_t idx = ent[k] >> 8, run = 1;
        uint8_t v = (uint8_t)(ent[k] & 0xff);
        if (idx > next && put_zeros(e, idx - next))
            return -1;
        while (k + run < m && ent[k + run] >> 8 == idx + run && (ent[k + run] & 0xff) == v)
            run++;
        if (put_vals(e, v, run))
            return -1;
        next = idx + run;
        k += run;
    }
    return next < KPI_HLL_REGISTERS ? put_zeros(e, KPI_HLL_REGISTERS - next) : 0;
}

/* Registers i..i+3 packed into 24 bits at bit 6*i: 3 bytes per 4 registers. */
static void pack_dense(const uint8_t *regs, uint8_t *p)
{
    for (uint32_t i = 0; i < KPI_HLL_REGISTERS; i += 4, p += 3) {
        uint32_t w = (uint32_t)(regs[i] & 63) | (uint32_t)(regs[i + 1] & 63) << 6 |
                     (uint32_t)(regs[i + 2] & 63) << 12 | (uint32_t)(regs[i + 3] & 63) << 18;
        p[0] = (uint8_t)w;
        p[1] = (uint8_t)(w >> 8);
        p[2] = (uint8_t)(w >> 16);
    }
}

size_t kpi_hll_serialize(const struct kpi_hll *h, uint8_t *out, size_t cap, size_t sparse_max)
{
    if (cap < HDR + 2)
        return 0;
    size_t lim = sparse_max < cap ? sparse_max : cap;
    /* Sparse needs a byte per 4 registers that are not zero, at least. */
    if (lim > HDR && (h->nz + 3) / 4 <= lim - HDR) {
        struct enc e = {out + HDR, 0, lim - HDR};
        if ((h->dense ? sparse_of_regs(h->regs, &e) : sparse_of_tab(h, &e)) == 0) {
            header(out, 1);
            return HDR + e.n;
        }
    }
    if (cap < KPI_HLL_DENSE_SIZE)
        return 0;
    header(out, 0);
    if (h->dense) {
        pack_dense(h->regs, out + HDR);
    } else {
        uint8_t regs[KPI_HLL_REGISTERS];
        memset(regs, 0, sizeof(regs));
        for (uint32_t i = 0; i < h->tab_cap; i++)
            if (h->tab[i])
                regs[h->tab[i] >> 8] = (uint8_t)(h->tab[i] & 0xff);
        pack_dense(regs, out + HDR);
    }
    return KPI_HLL_DENSE_SIZE;
}

/* One sparse opcode at p[*k] of n bytes: its run of registers and their
 * value (0 for ZERO and XZERO); *k moves past it.  0, or -1 when an XZERO
 * lacks its second byte. */
static int sparse_op(const uint8_t *p, size_t n, size_t *k, uint32_t *run, uint8_t *v)
{
    uint8_t op = p[*k];
    *v = 0;
    *run = 0;
    if ((op & 0xc0) == 0x40) {
        if (*k + 1 >= n)
            return -1;
        *run = ((op & 0x3fu) << 8 | p[*k + 1]) + 1;
        *k += 2;
        return 0;
    }
    if ((op & 0xc0) == 0) {
        *run = (op & 0x3fu) + 1;
    } else {
        *run = (op & 3u) + 1;
        *v = (uint8_t)(((op >> 2) & 0x1f) + 1);
    }
    (*k)++;
    return 0;
}

/* Check a Redis HLL string: 0 (dense: *sparse 0; sparse: its opcodes cover
 * exactly the 16384 registers, *sparse 1) or KPI_ERR_PARSE. */
static int check_string(const uint8_t *in, size_t len, int *sparse)
{
    if (len < HDR || memcmp(in, "HYLL", 4) != 0 || in[4] > 1)
        return KPI_ERR_PARSE;
    *sparse = in[4] == 1;
    if (!*sparse)
        return len == KPI_HLL_DENSE_SIZE ? 0 : KPI_ERR_PARSE;
    uint32_t idx = 0, run;
    uint8_t v;
    for (size_t k = 0; k < len - HDR;) {
        if (sparse_op(in + HDR, len - HDR, &k, &run, &v) || (idx += run) > KPI_HLL_REGISTERS)
            return KPI_ERR_PARSE;
    }
    return idx == KPI_HLL_REGISTERS ? 0 : KPI_ERR_PARSE;
}

/* h's registers := max(h's, a dense string's), or := the string's when
 * `replace` (h already dense, or turned dense here). */
static int load_dense(struct kpi_hll *h, const uint8_t *p, int replace)
{
    if (!h->dense) {
        int err = to_dense(h);
        if (err)
            return err;
    }
    uint8_t *r = h->regs;
    uint32_t nz = 0;
    for (uint32_t i = 0; i < KPI_HLL_REGISTERS; i += 4, p += 3) {
        uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
        for (uint32_t j = 0; j < 4; j++) {
            uint8_t b = (uint8_t)(w >> (6 * j) & 63);
            uint8_t m = replace || b > r[i + j] ? b : r[i + j];
            r[i + j] = m;
            nz += m != 0;
        }
    }
    h->nz = nz;
    return 0;
}

/* h ∪= a checked sparse string: only its value runs touch h. */
static int load_sparse(struct kpi_hll *h, const uint8_t *p, size_t n)
{
    uint32_t idx = 0, run;
    uint8_t v;
    for (size_t k = 0; k < n;) {
        sparse_op(p, n, &k, &run, &v); /* checked: cannot fail */
        for (uint32_t r = 0; v && r < run; r++) {
            int err = set_reg(h, idx + r, v);
            if (err < 0)
                return err;
        }
        idx += run;
    }
    return 0;
}

int kpi_hll_merge_bytes(struct kpi_hll *h, const uint8_t *in, size_t len)
{
    int sparse;
    int err = check_string(in, len, &sparse);
    if (err)
        return err;
    return sparse ? load_sparse(h, in + HDR, len - HDR) : load_dense(h, in + HDR, 0);
}

int kpi_hll_deserialize(struct kpi_hll *h, const uint8_t *in, size_t len)
{
    int sparse;
    int err = check_string(in, len, &sparse);
    if (err)
        return err;
    if (!sparse && h->dense)
        return load_dense(h, in + HDR, 1);
    kpi_hll_reset(h);
    return sparse ? load_sparse(h, in + HDR, len - HDR) : load_dense(h, in + HDR, 0);
}
