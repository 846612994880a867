/* G.711 u-law / A-law kernels (ITU-T G.711, the classic Sun reference arithmetic).
 *
 * Table-driven: encoding looks up the top 14 (u-law) or 13 (A-law) bits of a PCM16 sample in
 * a table filled once from the segment arithmetic; decoding is a 256-entry table. The tables
 * are built by vc_g711_init(), which the Cython module calls at import.
 */
#ifndef VC_G711_H
#define VC_G711_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

static uint8_t vc_ulaw_enc[1 << 14];
static uint8_t vc_alaw_enc[1 << 13];
static int16_t vc_ulaw_dec[256];
static int16_t vc_alaw_dec[256];

/* u-law of a 14-bit two's complement sample (PCM16 >> 2). */
static uint8_t vc_ulaw_from14(int v) {
    int mask, seg, mag;
    if (v < 0) { mag = -v; mask = 0x7F; } else { mag = v; mask = 0xFF; }
    if (mag > 8159) mag = 8159;               /* clip: 8159 + 33 = 0x1FFF, top of segment 7 */
    mag += 33;                                /* bias 0x84 at 14-bit scale */
    seg = 0;
    while (seg < 8 && mag >= (0x40 << seg)) seg++;   /* segment ends 0x3F, 0x7F, ... 0x1FFF */
    if (seg >= 8) return (uint8_t)(0x7F ^ mask);
    return (uint8_t)((((seg << 4) | ((mag >> (seg + 1)) & 0x0F))) ^ mask);
}

/* A-law of a 13-bit two's complement sample (PCM16 >> 3). */
static uint8_t vc_alaw_from13(int v) {
    int mask, seg, code;
    if (v >= 0) { mask = 0xD5; } else { mask = 0x55; v = -v - 1; }
    seg = 0;
    while (seg < 8 && v >= (0x20 << seg)) seg++;     /* segment ends 0x1F, 0x3F, ... 0xFFF */
    if (seg >= 8) return (uint8_t)(0x7F ^ mask);
    code = seg << 4;
    code |= (seg < 2 ? (v >> 1) : (v >> seg)) & 0x0F;
    return (uint8_t)(code ^ mask);
}

static int16_t vc_ulaw_to16(uint8_t u) {
    int t;
    u = (uint8_t)~u;
    t = ((u & 0x0F) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    return (int16_t)((u & 0x80) ? (0x84 - t) : (t - 0x84));
}

static int16_t vc_alaw_to16(uint8_t a) {
    int t, seg;
    a ^= 0x55;
    t = (a & 0x0F) << 4;
    seg = (a & 0x70) >> 4;
    if (seg == 0) t += 8;
    else if (seg == 1) t += 0x108;
    else { t += 0x108; t <<= seg - 1; }
    return (int16_t)((a & 0x80) ? t : -t);
}

static void vc_g711_init(void) {
    int i;
    for (i = 0; i < (1 << 14); i++) vc_ulaw_enc[i] = vc_ulaw_from14((int16_t)(i << 2) >> 2);
    for (i = 0; i < (1 << 13); i++) vc_alaw_enc[i] = vc_alaw_from13((int16_t)(i << 3) >> 3);
    for (i = 0; i < 256; i++) {
        vc_ulaw_dec[i] = vc_ulaw_to16((uint8_t)i);
        vc_alaw_dec[i] = vc_alaw_to16((uint8_t)i);
    }
}

/* PCM16 little-endian bytes in and out; memcpy keeps unaligned access defined. */
static inline int16_t vc_load16(const uint8_t *p) {
    return (int16_t)((uint16_t)p[0] | ((uint16_t)p[1] << 8));
}
static inline void vc_store16(uint8_t *p, int16_t v) {
    p[0] = (uint8_t)((uint16_t)v & 0xFF);
    p[1] = (uint8_t)((uint16_t)v >> 8);
}

static inline uint8_t vc_ulaw_enc1(int16_t s) { return vc_ulaw_enc[(uint16_t)s >> 2]; }
static inline uint8_t vc_alaw_enc1(int16_t s) { return vc_alaw_enc[(uint16_t)s >> 3]; }

static void vc_ulaw_decode(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i;
    for (i = 0; i < n; i++) vc_store16(dst + 2 * i, vc_ulaw_dec[src[i]]);
}
static void vc_alaw_decode(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i;
    for (i = 0; i < n; i++) vc_store16(dst + 2 * i, vc_alaw_dec[src[i]]);
}
static void vc_ulaw_encode(const uint8_t *src, size_t nsamples, uint8_t *dst) {
    size_t i;
    for (i = 0; i < nsamples; i++) dst[i] = vc_ulaw_enc1(vc_load16(src + 2 * i));
}
static void vc_alaw_encode(const uint8_t *src, size_t nsamples, uint8_t *dst) {
    size_t i;
    for (i = 0; i < nsamples; i++) dst[i] = vc_alaw_enc1(vc_load16(src + 2 * i));
}

#endif
