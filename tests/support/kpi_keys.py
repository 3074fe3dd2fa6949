"""tests/support/kpi_keys.py - the Redis key prefixes of docs/redis-schema.md
(schema 2) for the Python tests; the C side is sinks/redis/keys.c.

A group's keys spread over K key groups.  Key group kg's hash tag is
"{group}" when K is 1, else "{group.kg.s}" with the smallest s whose Redis
Cluster slot (CRC16 % 16384) lies in kg's share of the slots.  A (set, value)
belongs to key group CRC16("set:value") % K.
"""
import binascii

KEY_GROUPS = 128  # the K a new group gets (redis.key_groups = auto)


def kg_prefix(prefix, group, kg, k=KEY_GROUPS):
    """The key prefix of key group kg of k."""
    if k == 1:
        return f"{prefix}:{{{group}}}:"
    lo, hi = kg * 16384 // k, (kg + 1) * 16384 // k
    s = 0
    while not lo <= binascii.crc_hqx(f"{group}.{kg}.{s}".encode(), 0) % 16384 < hi:
        s += 1
    return f"{prefix}:{{{group}.{kg}.{s}}}:"


def value_prefix(prefix, group, set_, value, k=KEY_GROUPS):
    """The key prefix of (set, value)'s key group."""
    return kg_prefix(prefix, group, binascii.crc_hqx(f"{set_}:{value}".encode(), 0) % k, k)
