/* worker_flush.c - see worker_flush.h. */
#include "support/worker_flush.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

struct flush_call {
    struct kpi_engine *e;
    int64_t timeout_ms;
    atomic_int done;
    int rc;
};

static void *do_flush(void *arg)
{
    struct flush_call *f = arg;
    f->rc = kpi_engine_flush_sync(f->e, f->timeout_ms, NULL, 0);
    atomic_store(&f->done, 1);
    return NULL;
}

int kt_flush_from_worker(struct kpi_engine *e, struct kpi_worker *w, int64_t timeout_ms)
{
    struct flush_call f = {.e = e, .timeout_ms = timeout_ms, .rc = -1};
    atomic_init(&f.done, 0);
    pthread_t th;
    if (pthread_create(&th, NULL, do_flush, &f))
        return -1;
    while (!atomic_load(&f.done)) {
        kpi_worker_checkpoint(w);
        sched_yield();
    }
    pthread_join(th, NULL);
    kpi_worker_checkpoint(w);
    return f.rc;
}
