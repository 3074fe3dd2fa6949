/* sse.c - see sse.h. */
#include "cmd/lib/sse.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/engine.h"

struct event {
    char *text; /* "id: N\nevent: E\ndata: D\n\n" */
    size_t len;
};

struct client {
    struct kpi_sse *h;
    struct MHD_Connection *c;
    uint64_t next; /* sequence number of the next event to send */
    size_t off;    /* bytes of it already sent */
    char pre[64];  /* the stream's first bytes ("retry: ...") */
    size_t pre_len, pre_off;
    int suspended;
    int64_t last_write_ms;
    struct client *prev, *nx;
};

struct kpi_sse {
    pthread_mutex_t mu;
    struct event *ring;
    size_t cap, max_bytes, bytes;
    uint64_t first, next; /* events [first, next) are in the ring */
    struct client *clients;
    int max_clients;
    int64_t keepalive_ms;
    int closing;
    struct kpi_sse_stats st;
    pthread_t th;
    pthread_cond_t cv;
    int stop;
};

static void resume_locked(struct kpi_sse *h, int only_idle)
{
    int64_t now = kpi_now_ms();
    for (struct client *k = h->clients; k; k = k->nx)
        if (k->suspended && (!only_idle || now - k->last_write_ms >= h->keepalive_ms)) {
            k->suspended = 0;
            MHD_resume_connection(k->c);
        }
}

/* Wakes idle clients for their keepalive comment. */
static void *keepalive_main(void *arg)
{
    struct kpi_sse *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        struct timespec ts;
        kpi_deadline_ts(&ts, CLOCK_REALTIME, h->keepalive_ms / 4 > 0 ? h->keepalive_ms / 4 : 1);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        if (!h->stop && !h->closing)
            resume_locked(h, 1);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

struct kpi_sse *kpi_sse_new(size_t ring_events, size_t ring_bytes, int max_clients,
                            int64_t keepalive_ms)
{
    struct kpi_sse *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->cap = ring_events ? ring_events : 1;
    h->ring = calloc(h->cap, sizeof(*h->ring));
    h->max_bytes = ring_bytes;
    h->max_clients = max_clients;
    h->keepalive_ms = keepalive_ms > 0 ? keepalive_ms : 15000;
    h->first = h->next = 1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (!h->ring || pthread_create(&h->th, NULL, keepalive_main, h)) {
        kpi_sse_destroy(h); /* no thread to stop yet */
        return NULL;
    }
    return h;
}

void kpi_sse_shutdown(struct kpi_sse *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    if (h->closing) {
        pthread_mutex_unlock(&h->mu);
        return;
    }
    h->closing = 1;
    for (struct client *k = h->clients; k; k = k->nx)
        if (k->suspended) {
            k->suspended = 0;
            MHD_resume_connection(k->c);
        }
    h->stop = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL);
}

void kpi_sse_destroy(struct kpi_sse *h)
{
    if (!h)
        return;
    for (size_t i = 0; h->ring && i < h->cap; i++)
        free(h->ring[i].text);
    free(h->ring);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static void drop_oldest_locked(struct kpi_sse *h)
{
    struct event *e = &h->ring[h->first % h->cap];
    h->bytes -= e->len;
    free(e->text);
    e->text = NULL;
    e->len = 0;
    h->first++;
}

uint64_t kpi_sse_publish(struct kpi_sse *h, const char *event, const char *data)
{
    pthread_mutex_lock(&h->mu);
    uint64_t id = h->next;
    char *text = NULL;
    int n =
        asprintf(&text, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)id, event, data);
    if (n < 0) {
        pthread_mutex_unlock(&h->mu);
        return 0;
    }
    /* Make room: by count, then by bytes (the newest event always stays). */
    if (h->next - h->first == h->cap)
        drop_oldest_locked(h);
    while (h->first < h->next && h->bytes + (size_t)n > h->max_bytes)
        drop_oldest_locked(h);
    h->ring[id % h->cap].text = text;
    h->ring[id % h->cap].len = (size_t)n;
    h->bytes += (size_t)n;
    h->next++;
    h->st.events++;
    if (!h->closing)
        resume_locked(h, 0);
    pthread_mutex_unlock(&h->mu);
    return id;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct client *k = cls;
    struct kpi_sse *h = k->h;
    pthread_mutex_lock(&h->mu);
    if (h->closing) {
        pthread_mutex_unlock(&h->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = 0;
    if (k->pre_off < k->pre_len) {
        size_t m = k->pre_len - k->pre_off < max ? k->pre_len - k->pre_off : max;
        memcpy(buf, k->pre + k->pre_off, m);
        k->pre_off += m;
        n += m;
    }
    if (k->next < h->first) {
        /* Its next event left the ring: it cannot catch up without a gap. */
        h->st.dropped++;
        pthread_mutex_unlock(&h->mu);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    while (k->next < h->next && n < max) {
        const struct event *e = &h->ring[k->next % h->cap];
        size_t m = e->len - k->off < max - n ? e->len - k->off : max - n;
        memcpy(buf + n, e->text + k->off, m);
        n += m;
        k->off += m;
        if (k->off == e->len) {
            k->next++;
            k->off = 0;
        }
    }
    int64_t now = kpi_now_ms();
    if (n == 0 && now - k->last_write_ms >= h->keepalive_ms && max >= 14) {
        memcpy(buf, ": keepalive\n\n", 13);
        n = 13;
    }
    if (n == 0) {
        k->suspended = 1;
        MHD_suspend_connection(k->c);
    } else {
        k->last_write_ms = now;
    }
    pthread_mutex_unlock(&h->mu);
    return (ssize_t)n;
}

static void client_free(void *cls)
{
    struct client *k = cls;
    struct kpi_sse *h = k->h;
    pthread_mutex_lock(&h->mu);
    if (k->prev)
        k->prev->nx = k->nx;
    else
        h->clients = k->nx;
    if (k->nx)
        k->nx->prev = k->prev;
    h->st.clients--;
    pthread_mutex_unlock(&h->mu);
    free(k);
}

struct MHD_Response *kpi_sse_response(struct kpi_sse *h, struct MHD_Connection *c,
                                      const char *last_event_id, int *full)
{
    *full = 0;
    struct client *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->h = h;
    k->c = c;
    k->pre_len = (size_t)snprintf(k->pre, sizeof(k->pre), "retry: 2000\n: kpistream\n\n");
    pthread_mutex_lock(&h->mu);
    if (h->closing || h->st.clients >= (uint64_t)h->max_clients) {
        h->st.refused++;
        pthread_mutex_unlock(&h->mu);
        free(k);
        *full = 1;
        return NULL;
    }
    k->next = h->next;
    if (last_event_id) {
        /* A reconnect resumes after the last event it saw, if still held. */
        char *end;
        unsigned long long last = strtoull(last_event_id, &end, 10);
        if (*end == '\0' && last + 1 >= h->first && last + 1 <= h->next)
            k->next = last + 1;
    }
    k->last_write_ms = kpi_now_ms();
    k->nx = h->clients;
    if (h->clients)
        h->clients->prev = k;
    h->clients = k;
    h->st.clients++;
    h->st.connects++;
    pthread_mutex_unlock(&h->mu);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, k, client_free);
    if (!r) {
        client_free(k);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    return r;
}

void kpi_sse_get_stats(struct kpi_sse *h, struct kpi_sse_stats *out)
{
    pthread_mutex_lock(&h->mu);
    *out = h->st;
    out->ring_bytes = h->bytes;
    out->ring_events = h->next - h->first;
    pthread_mutex_unlock(&h->mu);
}
