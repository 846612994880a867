/* Strict base64 (RFC 4648 standard alphabet, '=' padding) for carrier media payloads.
 * Decoding rejects any byte outside the alphabet (whitespace included) and misplaced padding;
 * the caller learns the offset of the first bad byte.
 */
#ifndef VC_B64_H
#define VC_B64_H

#include <stdint.h>
#include <stddef.h>

static const char vc_b64_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static int8_t vc_b64_rev[256];

static void vc_b64_init(void) {
    int i;
    for (i = 0; i < 256; i++) vc_b64_rev[i] = -1;
    for (i = 0; i < 64; i++) vc_b64_rev[(uint8_t)vc_b64_alphabet[i]] = (int8_t)i;
}

/* Decoded size of n base64 bytes, or -1 if n is not a multiple of 4. */
static inline int64_t vc_b64_decoded_len(const uint8_t *s, int64_t n) {
    if (n & 3) return -1;
    if (n == 0) return 0;
    int64_t len = n / 4 * 3;
    if (s[n - 1] == '=') len--;
    if (s[n - 2] == '=') len--;
    return len;
}

/* Decode n bytes (n % 4 == 0) into dst. Returns bytes written, or -(1 + offset of bad byte). */
static int64_t vc_b64_decode(const uint8_t *s, int64_t n, uint8_t *dst) {
    int64_t i, o = 0;
    for (i = 0; i < n; i += 4) {
        int a = vc_b64_rev[s[i]], b = vc_b64_rev[s[i + 1]];
        int c = vc_b64_rev[s[i + 2]], d = vc_b64_rev[s[i + 3]];
        if ((a | b | c | d) >= 0) {
            uint32_t v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | (uint32_t)d;
            dst[o++] = (uint8_t)(v >> 16);
            dst[o++] = (uint8_t)(v >> 8);
            dst[o++] = (uint8_t)v;
            continue;
        }
        /* only the final quantum may carry padding: "xx==" or "xxx=" */
        if (a < 0) return -(1 + i);
        if (b < 0) return -(1 + i + 1);
        if (i + 4 != n) return -(1 + i + (c < 0 ? 2 : 3));
        if (c < 0) {
            if (s[i + 2] != '=' || s[i + 3] != '=') return -(1 + i + 2);
            dst[o++] = (uint8_t)(((uint32_t)a << 2) | ((uint32_t)b >> 4));
        } else {
            if (s[i + 3] != '=') return -(1 + i + 3);
            uint32_t v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6);
            dst[o++] = (uint8_t)(v >> 16);
            dst[o++] = (uint8_t)(v >> 8);
        }
    }
    return o;
}

static inline int64_t vc_b64_encoded_len(int64_t n) { return (n + 2) / 3 * 4; }

static void vc_b64_encode(const uint8_t *src, int64_t n, uint8_t *dst) {
    int64_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8) | src[i + 2];
        dst[o++] = (uint8_t)vc_b64_alphabet[v >> 18];
        dst[o++] = (uint8_t)vc_b64_alphabet[(v >> 12) & 63];
        dst[o++] = (uint8_t)vc_b64_alphabet[(v >> 6) & 63];
        dst[o++] = (uint8_t)vc_b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        dst[o++] = (uint8_t)vc_b64_alphabet[v >> 18];
        dst[o++] = (uint8_t)vc_b64_alphabet[(v >> 12) & 63];
        dst[o++] = '=';
        dst[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8);
        dst[o++] = (uint8_t)vc_b64_alphabet[v >> 18];
        dst[o++] = (uint8_t)vc_b64_alphabet[(v >> 12) & 63];
        dst[o++] = (uint8_t)vc_b64_alphabet[(v >> 6) & 63];
        dst[o++] = '=';
    }
}

#endif
