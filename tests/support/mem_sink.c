/* mem_sink.c - see mem_sink.h. */
#include "support/mem_sink.h"

#include <string.h>

#include "engine/err.h"

void mem_sink_init(struct mem_sink *m, const char *topic)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    for (int i = 0; i < MEM_SINK_PARTS; i++)
        m->stored[i] = -1;
    strncpy(m->topic, topic, sizeof(m->topic) - 1);
}

static int mem_flush(void *self, const struct kpi_delta *d, char *errstr, size_t errsz)
{
    struct mem_sink *m = self;
    pthread_mutex_lock(&m->mu);
    if (m->refuse) {
        pthread_mutex_unlock(&m->mu);
        return kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT, "%s", m->refuse);
    }
    if (m->fail_io > 0) {
        m->fail_io--;
        pthread_mutex_unlock(&m->mu);
        return kpi_seterr(errstr, errsz, KPI_ERR_IO, "injected outage");
    }
    int all_dup = d->n_ranges > 0;
    for (size_t i = 0; i < d->n_ranges; i++) {
        const struct kpi_offset_range *r = &d->ranges[i];
        if (r->partition < 0 || r->partition >= MEM_SINK_PARTS || strcmp(r->topic, m->topic)) {
            pthread_mutex_unlock(&m->mu);
            return kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT, "unknown partition");
        }
        int64_t s = m->stored[r->partition];
        if (s != r->to)
            all_dup = 0;
    }
    if (all_dup) {
        m->replays++;
        pthread_mutex_unlock(&m->mu);
        return 0;
    }
    for (size_t i = 0; i < d->n_ranges; i++) {
        const struct kpi_offset_range *r = &d->ranges[i];
        int64_t s = m->stored[r->partition];
        if (s != -1 && s != r->from) {
            m->conflicts++;
            pthread_mutex_unlock(&m->mu);
            return kpi_seterr(errstr, errsz, KPI_ERR_CONFLICT, "%s:%d stored %lld, delta from %lld",
                              r->topic, (int)r->partition, (long long)s, (long long)r->from);
        }
    }
    for (uint32_t i = 0; i < d->cells->n; i++)
        if (d->cells->cells[i].set == 0)
            kpi_counters_add(&m->total, &d->cells->cells[i].c);
    for (size_t i = 0; i < d->n_ranges; i++)
        m->stored[d->ranges[i].partition] = d->ranges[i].to;
    m->applied++;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int mem_load_offset(void *self, const char *topic, int32_t partition, int64_t *offset,
                           char *errstr, size_t errsz)
{
    struct mem_sink *m = self;
    (void)errstr;
    (void)errsz;
    pthread_mutex_lock(&m->mu);
    *offset = (strcmp(topic, m->topic) == 0 && partition >= 0 && partition < MEM_SINK_PARTS)
                  ? m->stored[partition]
                  : -1;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static const struct kpi_sink_ops mem_ops = {"mem", mem_flush, mem_load_offset, NULL};

struct kpi_sink mem_sink_as_sink(struct mem_sink *m)
{
    struct kpi_sink s = {&mem_ops, m};
    return s;
}

int64_t mem_sink_events(struct mem_sink *m)
{
    pthread_mutex_lock(&m->mu);
    int64_t n = m->total.events;
    pthread_mutex_unlock(&m->mu);
    return n;
}

int64_t mem_sink_offsets_total(struct mem_sink *m)
{
    pthread_mutex_lock(&m->mu);
    int64_t n = 0;
    for (int i = 0; i < MEM_SINK_PARTS; i++)
        if (m->stored[i] > 0)
            n += m->stored[i];
    pthread_mutex_unlock(&m->mu);
    return n;
}
