/* kafka_instance.c - see kafka_instance.h. */
#include "support/kafka_instance.h"

#include <string.h>

void kt_engine_conf_replay(struct kpi_engine_conf *ec, int64_t flush_interval_ms)
{
    kpi_engine_conf_defaults(ec);
    ec->n_workers = 2;
    ec->flush_interval_ms = flush_interval_ms;
    ec->lateness_ms = 365LL * 86400000;
    ec->max_skew_ms = 365LL * 86400000 * 50;
}

static void *run(void *arg)
{
    struct kt_instance *in = arg;
    in->rc = in->src.ops->run(in->src.self, in->err, sizeof(in->err));
    return NULL;
}

int kt_instance_start(struct kt_instance *in, const struct kpi_engine_conf *ec,
                      const struct kpi_kafka_conf *kc, struct mem_sink *ms, char *err, size_t errsz)
{
    memset(in, 0, sizeof(*in));
    in->e = kpi_engine_new(ec, err, errsz);
    if (!in->e)
        return -1;
    in->store = mem_sink_as_sink(ms);
    in->src = kpi_source_kafka_new(kc, in->e, &in->store, err, errsz);
    if (!in->src.ops) {
        kpi_engine_destroy(in->e);
        return -1;
    }
    if (kpi_engine_start(in->e, err, errsz) || pthread_create(&in->th, NULL, run, in)) {
        in->src.ops->destroy(in->src.self);
        kpi_engine_destroy(in->e);
        return -1;
    }
    return 0;
}

void kt_instance_join(struct kt_instance *in)
{
    pthread_join(in->th, NULL);
    kpi_engine_stop(in->e);
    in->src.ops->destroy(in->src.self);
    kpi_engine_destroy(in->e);
}

void kt_instance_stop(struct kt_instance *in)
{
    in->src.ops->stop(in->src.self);
    kt_instance_join(in);
}

void kt_instance_stop2(struct kt_instance *a, struct kt_instance *b)
{
    a->src.ops->stop(a->src.self);
    b->src.ops->stop(b->src.self);
    kt_instance_join(a);
    kt_instance_join(b);
}
