/*
 * keys.c - key names of schema 2, for the sink and for every reader
 * (sinks/redis.h, docs/redis-schema.md "Key groups").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "engine/keygroup.h"
#include "sinks/redis.h"

/* Key group kg's hash tag is "<group>.<kg>.<s>", with s the smallest
 * integer >= 0 that puts the tag's slot in the kg-th of K equal stripes of
 * the 16 384 slots.  Redis Cluster gives each master a contiguous range of
 * slots, so the K key groups spread over the masters as evenly as K allows
 * (a bare "<group>.<kg>" would land where CRC16 happens to put it: with 16
 * key groups on 3 masters, often 7 on one).  About K tries per key group,
 * once per sink; readers repeat the same search (docs/redis-schema.md). */
static uint32_t tag_salt(char *tag, size_t cap, const char *group, uint32_t k, uint32_t kg)
{
    uint32_t lo = (uint32_t)((uint64_t)kg * 16384 / k),
             hi = (uint32_t)((uint64_t)(kg + 1) * 16384 / k);
    for (uint32_t s = 0;; s++) {
        int n = snprintf(tag, cap, "%s.%" PRIu32 ".%" PRIu32, group, kg, s);
        uint32_t slot = kpi_crc16(tag, (size_t)n) & 16383u;
        if ((slot >= lo && slot < hi) || s == 1u << 20)
            return s;
    }
}

int kpi_redis_kg_prefix(char *out, size_t cap, const char *prefix, const char *group, uint32_t k,
                        uint32_t kg)
{
    char tag[320];
    if (k > 1)
        tag_salt(tag, sizeof(tag), group, k, kg);
    int n = k <= 1 ? snprintf(out, cap, "%s:{%s}:", prefix, group)
                   : snprintf(out, cap, "%s:{%s}:", prefix, tag);
    return n < 0 || (size_t)n >= cap ? KPI_ERR_INVAL : 0;
}

int kpi_redis_value_prefix(char *out, size_t cap, const char *prefix, const char *group, uint32_t k,
                           const char *set, const char *value, size_t value_len)
{
    return kpi_redis_kg_prefix(out, cap, prefix, group, k, kpi_keygroup(set, value, value_len, k));
}

int kpi_redis_parse_key_groups(const char *text, uint32_t *k)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || end == text || *end || *text == '-' || v < 1 || v > KPI_MAX_KEY_GROUPS)
        return -1;
    *k = (uint32_t)v;
    return 0;
}
