/*
 * engine.c - engine construction, inputs and the workers' per-event path.
 *
 * The per-event path (kpi_worker_process) is: one acquire load of the input's
 * state word, decode, a late check against the worker's cached watermark, one
 * cell lookup per grouping set in the worker's own buffer, counter adds and a
 * sketch update per cell.  No lock, no atomic read-modify-write, no
 * allocation in the steady state.  Everything shared with the flusher goes
 * through the shard handshake (shard.h) at checkpoints.
 */
#include "engine/engine_int.h"
#include "engine/keygroup.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/err.h"

void kpi_engine_conf_defaults(struct kpi_engine_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->dims = "region,plan,segment";
    c->sets = "region,region+plan,segment";
    c->card_limit = 10000;
    c->windows = KPI_WINDOWS_DEFAULT;
    c->lateness_ms = 30000;
    c->max_skew_ms = 300000;
    c->max_str_len = KPI_MAX_STR_DEFAULT;
    c->n_workers = 2;
    c->flush_interval_ms = 1000;
    c->max_cells = 262144;
    c->retry_min_ms = 100;
    c->retry_max_ms = 5000;
    c->idle_timeout_ms = 60000;
}

struct kpi_engine *kpi_engine_new(const struct kpi_engine_conf *conf, char *errstr, size_t errsz)
{
    struct kpi_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory");
        return NULL;
    }
    e->conf = *conf;
    /* Own copies of the strings the caller may free. */
    e->conf_strs[0] = strdup(conf->dims ? conf->dims : "");
    e->conf_strs[1] = strdup(conf->sets ? conf->sets : "");
    e->conf_strs[2] = strdup(conf->windows ? conf->windows : "");
    e->conf.dims = e->conf_strs[0];
    e->conf.sets = e->conf_strs[1];
    e->conf.windows = e->conf_strs[2];
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&e->watermark, INT64_MIN);
    atomic_init(&e->backpressured, 0);
    atomic_init(&e->fenced, 0);
    atomic_init(&e->workers_released, 0);
    atomic_init(&e->quit, 0);
    e->applied_watermark = INT64_MIN;

    if (conf->n_workers < 1 || conf->n_workers > 256) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "workers must be 1..256, not %d", conf->n_workers);
        goto fail;
    }
    if (conf->flush_interval_ms < 1 || conf->max_cells < 64 || conf->retry_min_ms < 1 ||
        conf->retry_max_ms < conf->retry_min_ms || conf->max_skew_ms < 0 || conf->max_str_len < 1 ||
        conf->max_str_len > 65535 || conf->idle_timeout_ms < 0) {
        kpi_seterr(errstr, errsz, KPI_ERR_INVAL, "engine settings out of range");
        goto fail;
    }
    if (kpi_dims_init(&e->dims, e->conf.dims, e->conf.sets, conf->card_limit, conf->max_str_len,
                      errstr, errsz))
        goto fail;
    if (kpi_windows_init(&e->windows, e->conf.windows, conf->lateness_ms, errstr, errsz))
        goto fail;
    if (kpi_decoder_init(&e->decoder, e->dims.dim_name_ptrs, e->dims.n_dims, conf->max_skew_ms,
                         conf->max_str_len, errstr, errsz))
        goto fail;
    e->n_workers = conf->n_workers;
    e->workers = calloc((size_t)e->n_workers, sizeof(*e->workers));
    if (!e->workers)
        goto nomem;
    for (int i = 0; i < e->n_workers; i++) {
        struct kpi_worker *w = calloc(1, sizeof(*w));
        if (!w)
            goto nomem;
        e->workers[i] = w;
        w->e = e;
        w->idx = i;
        w->watermark = INT64_MIN;
        if (kpi_shard_init(&w->shard, conf->max_cells) || kpi_tcache_init(&w->tcache))
            goto nomem;
        w->cur = &w->shard.buf[0];
    }
    /* The pending delta absorbs every shard's retired buffer each cycle, and
     * keeps absorbing while the sink is down, so it is sized for a few. */
    if (kpi_agg_init(&e->pending, conf->max_cells * (uint32_t)e->n_workers * 2))
        goto nomem;
    e->ranges = calloc(KPI_MAX_INPUTS, sizeof(*e->ranges));
    if (!e->ranges)
        goto nomem;
    return e;
nomem:
    kpi_seterr(errstr, errsz, KPI_ERR_NOMEM, "out of memory for the engine's state");
fail:
    kpi_engine_destroy(e);
    return NULL;
}

void kpi_engine_destroy(struct kpi_engine *e)
{
    if (!e)
        return;
    kpi_engine_stop(e);
    if (e->workers) {
        for (int i = 0; i < e->n_workers; i++)
            if (e->workers[i]) {
                kpi_shard_fini(&e->workers[i]->shard);
                kpi_tcache_fini(&e->workers[i]->tcache);
                free(e->workers[i]);
            }
        free(e->workers);
    }
    kpi_agg_fini(&e->pending);
    for (int i = 0; i < KPI_MAX_INPUTS; i++)
        free(e->inputs[i].kg_floor);
    free(e->ranges);
    kpi_dims_fini(&e->dims);
    for (int i = 0; i < 3; i++)
        free(e->conf_strs[i]);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

const struct kpi_dims *kpi_engine_dims(const struct kpi_engine *e)
{
    return &e->dims;
}

const struct kpi_windows *kpi_engine_windows(const struct kpi_engine *e)
{
    return &e->windows;
}

const struct kpi_engine_conf *kpi_engine_conf(const struct kpi_engine *e)
{
    return &e->conf;
}

void kpi_engine_set_target(struct kpi_engine *e, const struct kpi_flush_target *t)
{
    pthread_mutex_lock(&e->mu);
    e->target = *t;
    pthread_mutex_unlock(&e->mu);
}

void kpi_engine_set_error_hooks(struct kpi_engine *e, const struct kpi_flush_error_hooks *h)
{
    pthread_mutex_lock(&e->mu);
    e->err_hooks = *h;
    pthread_mutex_unlock(&e->mu);
}

void kpi_engine_set_wake(struct kpi_engine *e, void (*wake)(void *, int), void *opaque)
{
    pthread_mutex_lock(&e->mu);
    e->wake = wake;
    e->wake_opaque = opaque;
    pthread_mutex_unlock(&e->mu);
}

/* ---- inputs (control thread) ---- */

int kpi_engine_input_open(struct kpi_engine *e, const char *topic, int32_t partition, int worker,
                          int64_t start_offset)
{
    return kpi_engine_input_open_floors(e, topic, partition, worker, start_offset, NULL, 0);
}

int kpi_engine_input_open_floors(struct kpi_engine *e, const char *topic, int32_t partition,
                                 int worker, int64_t start_offset, const int64_t *floors,
                                 uint32_t n_floors)
{
    if (worker < 0 || worker >= e->n_workers || strlen(topic) > KPI_TOPIC_MAX || start_offset < 0 ||
        n_floors > KPI_MAX_KEY_GROUPS || (n_floors && !floors))
        return KPI_ERR_INVAL;
    pthread_mutex_lock(&e->mu);
    int id = -1;
    int64_t floor_max = start_offset;
    for (uint32_t k = 0; k < n_floors; k++)
        if (floors[k] > floor_max)
            floor_max = floors[k];
    for (int i = 0; i < KPI_MAX_INPUTS; i++) {
        struct kpi_input *in = &e->inputs[i];
        if (in->partition != partition || strcmp(in->topic, topic) != 0)
            continue;
        if (in->open) {
            pthread_mutex_unlock(&e->mu);
            return KPI_ERR_STATE;
        }
        if (in->taken_to > in->flushed_to && in->flushed_to == start_offset &&
            floor_max == start_offset) {
            /* The partition comes back while what this instance took of it
             * is still pending (its revocation flush failed) and nobody
             * stored anything past it: continue that range, same generation
             * (a flush in flight still credits it), and let the consumer
             * resume after it (kpi_engine_input_resume_at).  A second input
             * over [start, ...) would count those events twice.  If someone
             * did store past it, the pending range no longer starts at the
             * stored offset and the sink fences it: a fresh input below. */
            in->open = 1;
            in->worker = worker;
            in->active_at = kpi_mono_ms();
            atomic_store_explicit(&in->state, in->gen << 1, memory_order_release);
            pthread_mutex_unlock(&e->mu);
            return i;
        }
    }
    for (int i = 0; i < KPI_MAX_INPUTS; i++) {
        struct kpi_input *in = &e->inputs[i];
        /* A closed input whose range is not yet applied keeps its slot. */
        if (id < 0 && !in->open && in->taken_to == in->flushed_to)
            id = i;
    }
    if (id < 0) {
        pthread_mutex_unlock(&e->mu);
        return KPI_ERR_FULL;
    }
    struct kpi_input *in = &e->inputs[id];
    in->open = 1;
    strcpy(in->topic, topic);
    in->partition = partition;
    in->worker = worker;
    in->gen++;
    in->flushed_to = in->taken_to = start_offset;
    in->max_ts = -1;
    in->kg_n = 0;
    in->floor_max = start_offset;
    for (uint32_t k = 0; k < n_floors; k++)
        if (floors[k] > in->floor_max)
            in->floor_max = floors[k];
    if (in->floor_max > start_offset) {
        if (!in->kg_floor && !(in->kg_floor = malloc(KPI_MAX_KEY_GROUPS * sizeof(int64_t)))) {
            in->open = 0;
            pthread_mutex_unlock(&e->mu);
            return KPI_ERR_NOMEM;
        }
        memcpy(in->kg_floor, floors, n_floors * sizeof(int64_t));
        in->kg_n = n_floors;
    }
    in->active_at = kpi_mono_ms();
    /* release: the worker that sees the new generation also sees the fields
     * above (it reads none of them today, but the order costs nothing). */
    atomic_store_explicit(&in->state, in->gen << 1, memory_order_release);
    pthread_mutex_unlock(&e->mu);
    return id;
}

/* One of an open input's offsets, read under the lock: taken_to, or with
 * is_flushed flushed_to; -1 for an input that is not open. */
static int64_t input_offset(struct kpi_engine *e, int input, int is_flushed)
{
    if (input < 0 || input >= KPI_MAX_INPUTS)
        return -1;
    pthread_mutex_lock(&e->mu);
    const struct kpi_input *in = &e->inputs[input];
    int64_t v = !in->open ? -1 : is_flushed ? in->flushed_to : in->taken_to;
    pthread_mutex_unlock(&e->mu);
    return v;
}

int64_t kpi_engine_input_resume_at(struct kpi_engine *e, int input)
{
    return input_offset(e, input, 0);
}

int kpi_engine_input_find(struct kpi_engine *e, const char *topic, int32_t partition)
{
    int id = -1;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < KPI_MAX_INPUTS && id < 0; i++)
        if (e->inputs[i].open && e->inputs[i].partition == partition &&
            strcmp(e->inputs[i].topic, topic) == 0)
            id = i;
    pthread_mutex_unlock(&e->mu);
    return id;
}

/* Ends the input's generation (revoke), and with is_close also forgets it
 * (close). */
static void input_end(struct kpi_engine *e, int input, int is_close)
{
    if (input < 0 || input >= KPI_MAX_INPUTS)
        return;
    pthread_mutex_lock(&e->mu);
    struct kpi_input *in = &e->inputs[input];
    /* The argument for this order is in engine_int.h. */
    atomic_store_explicit(&in->state, in->gen << 1 | 1u, memory_order_release);
    if (is_close) {
        in->open = 0;
        in->max_ts = -1;
    }
    pthread_mutex_unlock(&e->mu);
}

void kpi_engine_input_revoke(struct kpi_engine *e, int input)
{
    input_end(e, input, 0);
}

void kpi_engine_input_close(struct kpi_engine *e, int input)
{
    input_end(e, input, 1);
}

int64_t kpi_engine_input_flushed(struct kpi_engine *e, int input)
{
    return input_offset(e, input, 1);
}

int kpi_engine_is_backpressured(const struct kpi_engine *e)
{
    return atomic_load_explicit(&e->backpressured, memory_order_relaxed);
}

int kpi_engine_is_fenced(const struct kpi_engine *e)
{
    return atomic_load_explicit(&e->fenced, memory_order_relaxed);
}

int64_t kpi_engine_watermark(const struct kpi_engine *e)
{
    return atomic_load_explicit(&e->watermark, memory_order_relaxed);
}

void kpi_engine_get_stats(struct kpi_engine *e, struct kpi_engine_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
    out->watermark = kpi_engine_watermark(e);
    out->backpressured = kpi_engine_is_backpressured(e);
    out->fenced = kpi_engine_is_fenced(e);
}

size_t kpi_engine_flush_latencies(struct kpi_engine *e, uint32_t *out, size_t max)
{
    pthread_mutex_lock(&e->mu);
    uint64_t n = e->n_flush_lat < KPI_FLUSH_LAT_KEEP ? e->n_flush_lat : KPI_FLUSH_LAT_KEEP;
    if (n > max)
        n = max;
    for (uint64_t i = 0; i < n; i++)
        out[i] = e->flush_lat_us[(e->n_flush_lat - n + i) % KPI_FLUSH_LAT_KEEP];
    pthread_mutex_unlock(&e->mu);
    return (size_t)n;
}

/* ---- workers ---- */

struct kpi_worker *kpi_engine_worker(struct kpi_engine *e, int idx)
{
    return idx >= 0 && idx < e->n_workers ? e->workers[idx] : NULL;
}

/* Record the worker's progress on every input it touched this epoch into the
 * buffer about to be retired. */
static void write_progress(struct kpi_worker *w)
{
    struct kpi_shard_buf *b = w->cur;
    for (uint32_t i = 0; i < w->n_touched; i++) {
        uint32_t id = w->touched[i];
        struct kpi_progress *p = &b->progress[b->n_progress++];
        p->input = id;
        p->gen = w->in[id].gen;
        p->next_offset = w->in[id].next_offset;
        p->max_ts = w->in[id].max_ts;
    }
    w->n_touched = 0;
}

void kpi_worker_checkpoint(struct kpi_worker *w)
{
    struct kpi_shard *s = &w->shard;
    /* acquire: pairs with the flusher's release in kpi_shard_request_flip;
     * makes the reset of the buffer we switch to (and any revoked bit stored
     * before the flip) visible. */
    uint64_t req = atomic_load_explicit(&s->epoch_req, memory_order_acquire);
    if (req == w->epoch)
        return;
    write_progress(w);
    w->epoch = req;
    w->cur = &s->buf[req & 1];
    /* relaxed: the watermark is advisory and monotonic; a stale one only
     * accepts an event a fresher one would call late, and it was stored
     * before the flip we just acquired anyway. */
    w->watermark = atomic_load_explicit(&w->e->watermark, memory_order_relaxed);
    /* release: everything written into the retired buffer, progress
     * included, happens-before the flusher's acquire of epoch_ack. */
    atomic_store_explicit(&s->epoch_ack, req, memory_order_release);
}

void kpi_worker_detach(struct kpi_worker *w)
{
    kpi_worker_checkpoint(w);
    write_progress(w);
    /* release: pairs with the acquire in kpi_shard_flip_done. */
    atomic_store_explicit(&w->shard.detached, 1, memory_order_release);
}

/* The buffer is full: ask the flusher for an early flip and wait for it.
 * This is backpressure, so waiting (politely) is the point; but not past a
 * shutdown: once the workers are released, give up and return -1 (the sink
 * may be down for good, and the process must still stop in time). */
static int wait_for_flip(struct kpi_worker *w)
{
    struct kpi_shard *s = &w->shard;
    atomic_store_explicit(&s->want_flip, 1, memory_order_relaxed);
    pthread_mutex_lock(&w->e->mu);
    pthread_cond_broadcast(&w->e->cv);
    pthread_mutex_unlock(&w->e->mu);
    uint64_t before = w->epoch;
    for (unsigned spins = 0; w->epoch == before; spins++) {
        if (atomic_load_explicit(&w->e->workers_released, memory_order_relaxed))
            return -1;
        if (spins < 64) {
            sched_yield();
        } else {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        kpi_worker_checkpoint(w);
    }
    return 0;
}

void kpi_engine_release_workers(struct kpi_engine *e)
{
    atomic_store_explicit(&e->workers_released, 1, memory_order_relaxed);
}

int kpi_worker_stopped(const struct kpi_worker *w)
{
    return w->stopped;
}

static inline struct kpi_worker_input *input_view(struct kpi_worker *w, int input, int *revoked)
{
    /* acquire: pairs with the release stores in input_open/revoke/close. */
    uint32_t st = atomic_load_explicit(&w->e->inputs[input].state, memory_order_acquire);
    struct kpi_worker_input *wi = &w->in[input];
    if ((st >> 1) != wi->gen) {
        wi->gen = st >> 1;
        wi->next_offset = -1;
        wi->max_ts = -1;
        wi->touched_epoch_plus1 = 0;
        /* Written before the release store we just acquired (input_open). */
        const struct kpi_input *in = &w->e->inputs[input];
        wi->kg_n = in->kg_n;
        wi->kg_floor = in->kg_floor;
        wi->floor_max = in->kg_n ? in->floor_max : INT64_MIN;
    }
    *revoked = st & 1;
    return wi;
}

static inline void consume_offset(struct kpi_worker *w, struct kpi_worker_input *wi, int input,
                                  int64_t offset)
{
    if (offset + 1 > wi->next_offset)
        wi->next_offset = offset + 1;
    if (wi->touched_epoch_plus1 != w->epoch + 1) {
        wi->touched_epoch_plus1 = (uint32_t)(w->epoch + 1);
        w->touched[w->n_touched++] = (uint32_t)input;
    }
}

/* Whether the value (set, vid)'s key group stored offsets past `offset`
 * (keygroup.h): only while a resumed partition replays what some key groups
 * already hold, so the CRC per (event, set) is off the steady-state path. */
static int below_floor(const struct kpi_engine *e, const struct kpi_worker_input *wi, int set,
                       uint32_t vid, int64_t offset)
{
    uint32_t len;
    const char *v = kpi_dims_value_label(&e->dims, set, vid, &len);
    uint32_t kg = kpi_keygroup(e->dims.sets[set].name, v, len, wi->kg_n);
    return offset < wi->kg_floor[kg];
}

/* Returns the event's reason, or -1 when it was not taken (the workers were
 * released while it waited for room): its offset is not consumed, and the
 * worker takes nothing more (w->stopped), so no later offset of any input
 * can be consumed past it. */
static int add_event(struct kpi_worker *w, struct kpi_worker_input *wi, int input, int64_t offset,
                     const struct kpi_event *ev)
{
    struct kpi_engine *e = w->e;
    if (kpi_windows_is_late(&e->windows, ev->ts_ms, w->watermark)) {
        w->cur->stats.bad[KPI_BAD_TOO_LATE]++;
        consume_offset(w, wi, input, offset);
        return KPI_BAD_TOO_LATE;
    }
    const int64_t bucket = kpi_bucket_start(ev->ts_ms, e->windows.base_ms);
    const int n_sets = e->dims.n_sets;
    uint32_t vids[KPI_MAX_SETS];
    struct kpi_agg_cell *cells[KPI_MAX_SETS];
    kpi_tcache_value_ids(&w->tcache, &e->dims, ev, vids);
    /* Find every cell before touching any, so a full buffer never leaves an
     * event half-counted. */
    for (;;) {
        int s = 0;
        for (; s < n_sets; s++)
            if (!(cells[s] = kpi_agg_get(&w->cur->agg, bucket, (uint32_t)s, vids[s])))
                break;
        if (s == n_sets)
            break;
        if (wait_for_flip(w)) {
            w->stopped = 1;
            return -1;
        }
    }
    const int is_base = ev->type == KPI_EV_BASE;
    if (!is_base)
        for (int s = 0; s < n_sets; s++)
            kpi_hll_prefetch(&cells[s]->hll, ev->sub_hash);
    struct kpi_shard_stats *st = &w->cur->stats;
    for (int s = 0; s < n_sets; s++) {
        if (offset < wi->floor_max && below_floor(e, wi, s, vids[s], offset))
            continue; /* that value's key group already holds this event */
        if (is_base) {
            /* A snapshot is a gauge, not activity: no counter, no subscriber. */
            cells[s]->snap = kpi_sat_add(cells[s]->snap, (int64_t)ev->count);
            cells[s]->snaps++;
            continue;
        }
        kpi_counters_count(&cells[s]->c, ev);
        if (kpi_hll_add_hash(&cells[s]->hll, ev->sub_hash) < 0)
            st->hll_nomem++;
        if (s && vids[s] == KPI_VALUE_OTHER)
            st->overflow[s]++;
    }
    st->good++;
    st->by_type[ev->type]++;
    if (ev->ts_ms > wi->max_ts)
        wi->max_ts = ev->ts_ms;
    consume_offset(w, wi, input, offset);
    return KPI_BAD_NONE;
}

/* The worker's view of the input, or NULL when the event is to be dropped:
 * the worker is stopped, or the input was revoked (counted). */
static inline struct kpi_worker_input *live_input(struct kpi_worker *w, int input)
{
    if (w->stopped)
        return NULL;
    int revoked;
    struct kpi_worker_input *wi = input_view(w, input, &revoked);
    if (revoked) {
        w->cur->stats.revoked++;
        return NULL;
    }
    return wi;
}

enum kpi_bad_reason kpi_worker_add(struct kpi_worker *w, int input, int64_t offset,
                                   const struct kpi_event *ev)
{
    struct kpi_worker_input *wi = live_input(w, input);
    if (!wi)
        return KPI_BAD_NONE;
    int r = add_event(w, wi, input, offset, ev);
    return r < 0 ? KPI_BAD_NONE : (enum kpi_bad_reason)r;
}

enum kpi_bad_reason kpi_worker_process(struct kpi_worker *w, int input, int64_t offset,
                                       const void *msg, size_t len, int64_t now_ms, int *dropped)
{
    if (dropped)
        *dropped = 1;
    struct kpi_worker_input *wi = live_input(w, input);
    if (!wi)
        return KPI_BAD_NONE;
    struct kpi_event ev;
    enum kpi_bad_reason r = kpi_decode(&w->e->decoder, msg, len, now_ms, &ev);
    if (r != KPI_BAD_NONE) {
        w->cur->stats.bad[r]++;
        consume_offset(w, wi, input, offset);
        if (dropped)
            *dropped = 0;
        return r;
    }
    int rr = add_event(w, wi, input, offset, &ev);
    if (rr < 0)
        return KPI_BAD_NONE;
    if (dropped)
        *dropped = 0;
    return (enum kpi_bad_reason)rr;
}
