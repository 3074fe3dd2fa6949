/* shard.c - the flusher's half of the shard handshake (the worker's half is
 * kpi_worker_checkpoint in engine.c).  The argument is in shard.h. */
#include "engine/shard.h"

#include <string.h>

#include "engine/err.h"

int kpi_shard_init(struct kpi_shard *s, uint32_t max_cells)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < 2; i++) {
        int err = kpi_agg_init(&s->buf[i].agg, max_cells);
        if (err) {
            kpi_shard_fini(s);
            return err;
        }
    }
    atomic_init(&s->epoch_req, 0);
    atomic_init(&s->epoch_ack, 0);
    atomic_init(&s->detached, 0);
    atomic_init(&s->want_flip, 0);
    return 0;
}

void kpi_shard_fini(struct kpi_shard *s)
{
    kpi_agg_fini(&s->buf[0].agg);
    kpi_agg_fini(&s->buf[1].agg);
}

uint64_t kpi_shard_request_flip(struct kpi_shard *s)
{
    /* relaxed load: the flusher is epoch_req's only writer. */
    uint64_t e = atomic_load_explicit(&s->epoch_req, memory_order_relaxed) + 1;
    /* release: publishes the reset of buf[e & 1] (done when it was last
     * retired) to the worker's acquire load in its checkpoint. */
    atomic_store_explicit(&s->epoch_req, e, memory_order_release);
    return e;
}

int kpi_shard_flip_done(struct kpi_shard *s, uint64_t epoch)
{
    /* acquire: pairs with the worker's release store of epoch_ack; makes the
     * worker's writes to the retired buffer visible here. */
    if (atomic_load_explicit(&s->epoch_ack, memory_order_acquire) == epoch)
        return 1;
    /* acquire: pairs with the release store in kpi_worker_detach; after it the
     * worker never touches the shard again, so the flusher plays its part. */
    if (atomic_load_explicit(&s->detached, memory_order_acquire)) {
        atomic_store_explicit(&s->epoch_ack, epoch, memory_order_relaxed);
        return 1;
    }
    return 0;
}

struct kpi_shard_buf *kpi_shard_retired(struct kpi_shard *s, uint64_t epoch)
{
    return &s->buf[(epoch - 1) & 1];
}
