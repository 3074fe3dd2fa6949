/*
 * keygroup.c - CRC16 (XMODEM) and the key group of a value (keygroup.h).
 *
 * Bitwise CRC: it runs once per (set, value) on the sink's side (cached) and
 * only while a resumed partition replays events a key group already holds on
 * the engine's side, so a lookup table would buy nothing measurable.
 */
#include "engine/keygroup.h"

#include <string.h>

static uint16_t crc16_update(uint16_t crc, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)(crc << 1 ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t kpi_crc16(const void *data, size_t len)
{
    return crc16_update(0, data, len);
}

uint32_t kpi_keygroup(const char *set, const char *value, size_t value_len, uint32_t k)
{
    if (k <= 1)
        return 0;
    uint16_t crc = crc16_update(0, (const uint8_t *)set, strlen(set));
    crc = crc16_update(crc, (const uint8_t *)":", 1);
    crc = crc16_update(crc, (const uint8_t *)value, value_len);
    return crc % k;
}
