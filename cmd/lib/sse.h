/*
 * sse.h - Server-Sent Events over libmicrohttpd, with bounded memory.
 *
 * The hub keeps the last events in ONE ring shared by every client (bounded
 * by a number of events and of bytes); a client is only a cursor into it
 * (the next event's sequence number and how much of it was sent), so a client
 * holds no buffer of its own.  A client with nothing to send is suspended
 * (MHD_suspend_connection) and costs no polling; publishing resumes the
 * suspended ones.
 *
 * A slow client - one that reads slower than events arrive, or never - is
 * never waited for: MHD only asks it for data when its socket can take some.
 * If it falls so far behind that its next event has left the ring, it is
 * disconnected (counted in dropped); if its socket stays full, the server's
 * per-connection timeout closes it.  An EventSource reconnects by itself and
 * sends Last-Event-ID: if that event is still in the ring the client resumes
 * there without a gap.  Comments (`: keepalive`) go to idle clients every
 * keepalive_ms, so proxies do not cut them and dead peers are noticed.
 */
#ifndef KPI_SSE_H
#define KPI_SSE_H

#include <stddef.h>
#include <stdint.h>

struct kpi_sse;
struct MHD_Connection;
struct MHD_Response;

struct kpi_sse_stats {
    uint64_t clients;     /* connected now */
    uint64_t connects;    /* accepted so far */
    uint64_t refused;     /* refused: max_clients reached */
    uint64_t dropped;     /* disconnected for falling behind the ring */
    uint64_t events;      /* published */
    uint64_t ring_bytes;  /* held by the ring now */
    uint64_t ring_events; /* in the ring now */
};

/* ring_events, ring_bytes: the ring's bounds; max_clients: concurrent
 * streams; keepalive_ms: comment to idle clients this often.  NULL when out
 * of memory. */
struct kpi_sse *kpi_sse_new(size_t ring_events, size_t ring_bytes, int max_clients,
                            int64_t keepalive_ms);
/* Resume every client so the daemon can stop (MHD_stop_daemon must not see a
 * suspended connection): their streams end.  Call before MHD_stop_daemon. */
void kpi_sse_shutdown(struct kpi_sse *h);
/* After MHD_stop_daemon. */
void kpi_sse_destroy(struct kpi_sse *h);

/* Publish `data` (one line: no newline) as event `event`.  Returns its id. */
uint64_t kpi_sse_publish(struct kpi_sse *h, const char *event, const char *data);

/* A streaming response for a new client of connection c (which must belong
 * to a daemon started with MHD_ALLOW_SUSPEND_RESUME); last_event_id: the
 * request's Last-Event-ID header or NULL.  NULL when max_clients are
 * connected (*full = 1) or out of memory. */
struct MHD_Response *kpi_sse_response(struct kpi_sse *h, struct MHD_Connection *c,
                                      const char *last_event_id, int *full);

void kpi_sse_get_stats(struct kpi_sse *h, struct kpi_sse_stats *out);

#endif
