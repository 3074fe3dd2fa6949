/*
 * keygroup.h - key groups: how a consumer group's KPIs are spread over Redis
 * slots (the idea of Flink's key groups).
 *
 * Every grouping-set value belongs to one of K key groups:
 *
 *     kg = CRC16("<set>:<value>") mod K
 *
 * CRC16 is Redis Cluster's own (CCITT/XMODEM, polynomial 0x1021, initial 0),
 * which every Redis client library already implements for slot routing, so a
 * reader in any language finds a value's key group with the function its
 * client uses for `CLUSTER KEYSLOT`.  Each key group has its own hash tag,
 * its own keys and its own per-partition offsets fence in Redis
 * (docs/redis-schema.md, docs/exactly-once.md): one flush is K atomic calls,
 * one per key group, that each fence and apply their share of the delta.
 *
 * The engine needs the mapping too.  An instance killed between two of those
 * K calls leaves key groups whose stored offsets differ for a partition.  Its
 * successor resumes the partition at the smallest of them and must not count
 * again, for a key group already ahead, the events that key group holds: the
 * engine skips an event's contribution to a value whose key group's floor is
 * above the event's offset (kpi_engine_input_open_floors).  This is pure
 * arithmetic, so it lives here, with no Redis header.
 */
#ifndef KPI_KEYGROUP_H
#define KPI_KEYGROUP_H

#include <stddef.h>
#include <stdint.h>

#define KPI_MAX_KEY_GROUPS                                                                         \
    1024 /* a Redis Cluster has 16 384 slots; more would not spread further */

/* Redis Cluster's CRC16 (XMODEM) of a byte string. */
uint16_t kpi_crc16(const void *data, size_t len);

/* The key group of a grouping-set value: CRC16("<set>:<value>") mod k (k >= 1). */
uint32_t kpi_keygroup(const char *set, const char *value, size_t value_len, uint32_t k);

#endif
