/*
 * intern.h - a bounded, lock-free, multi-writer string -> id table.
 *
 * Every worker thread maps the dimension values of its events (say
 * "eu-west|prepaid") to a small integer id, and all workers must agree on the
 * ids so the flusher can merge their shards by id.  The table is shared, so it
 * has to be safe for concurrent inserts, yet it sits on the per-event path, so
 * it takes no lock: a lookup of a known value is a few loads; inserting a new
 * value is a CAS on one slot.  The table never shrinks and holds at most
 * `limit` ids: that is the cardinality limit of a grouping set, beyond which
 * callers fold values into id 0 (KPI_INTERN_FULL, shown as "__other__").
 * The argument for the memory orders is in intern.c.
 */
#ifndef KPI_INTERN_H
#define KPI_INTERN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define KPI_INTERN_FULL 0u /* the id returned when the table is full */

struct kpi_intern {
    _Atomic uint64_t *slots; /* open addressing: 0 = empty, else hash32 << 32 | id */
    uint32_t mask;           /* slots - 1 (slots is a power of two >= 2 * limit) */
    uint32_t limit;          /* ids 1..limit can be handed out */
    uint32_t max_key;        /* longest key stored, in bytes */
    _Atomic uint32_t next_id;
    uint32_t *key_lens; /* [limit + 1] */
    char *keys;         /* [limit + 1][max_key] */
};

int kpi_intern_init(struct kpi_intern *t, uint32_t limit, uint32_t max_key);
void kpi_intern_fini(struct kpi_intern *t);

/* The id of key (hash = any good 64-bit hash of it), inserting it if new.
 * Returns KPI_INTERN_FULL when the table already holds `limit` ids or the key
 * is longer than max_key.  Thread-safe. */
uint32_t kpi_intern_get(struct kpi_intern *t, const void *key, uint32_t len, uint64_t hash);

/* The key of an id this thread obtained from kpi_intern_get, or that reached
 * it through a happens-before chain from such a call (e.g. an id read from a
 * shard after the epoch handshake).  Not NUL-terminated. */
const char *kpi_intern_key(const struct kpi_intern *t, uint32_t id, uint32_t *len);

/* Ids handed out so far (including ones wasted by insert races). */
uint32_t kpi_intern_size(const struct kpi_intern *t);

#endif
