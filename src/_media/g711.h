/* G.711 u-law / A-law kernels (ITU-T G.711, the classic Sun reference arithmetic).
 *
 * Table-driven: encoding looks up the top 14 (u-law) or 13 (A-law) bits of a PCM16 sample in
 * a table filled once from the segment arithmetic; decoding is a 256-entry table. The tables
 * are built by vc_g711_init(), which the Cython modules call at import. Where the CPU has AVX2,
 * bulk conversions use vector kernels with the same results.
 */
#ifndef VC_G711_H
#define VC_G711_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>

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


static void vc_g711_tables_init(void) {
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

/* Portable table-driven loops. */
static void vc_ulaw_decode_tab(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i;
    for (i = 0; i < n; i++) vc_store16(dst + 2 * i, vc_ulaw_dec[src[i]]);
}
static void vc_alaw_decode_tab(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i;
    for (i = 0; i < n; i++) vc_store16(dst + 2 * i, vc_alaw_dec[src[i]]);
}
static void vc_ulaw_encode_tab(const uint8_t *src, size_t nsamples, uint8_t *dst) {
    size_t i;
    for (i = 0; i < nsamples; i++) dst[i] = vc_ulaw_enc1(vc_load16(src + 2 * i));
}
static void vc_alaw_encode_tab(const uint8_t *src, size_t nsamples, uint8_t *dst) {
    size_t i;
    for (i = 0; i < nsamples; i++) dst[i] = vc_alaw_enc1(vc_load16(src + 2 * i));
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define VC_G711_AVX2 1
#include <immintrin.h>
/* AVX2 kernels: the segment arithmetic of the scalar code, eight samples per 256-bit register in
 * 32-bit lanes (variable shifts scale each lane by its own segment; converting the magnitude to
 * float yields its segment as the exponent). Bit-exact with the tables, checked by the tests. */
#define VC_AVX2 __attribute__((target("avx2")))

static int vc_g711_use_avx2 = 0;

/* eight int32 lanes -> eight int16 (values fit) */
VC_AVX2 static inline __m128i vc_pack8(__m256i v) {
    __m256i p = _mm256_packs_epi32(v, v);
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08));
}

VC_AVX2 static inline __m256i vc_load8u(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

VC_AVX2 static inline __m256i vc_ulaw_dec8(__m256i code) {
    const __m256i u = _mm256_xor_si256(code, _mm256_set1_epi32(0xFF));
    __m256i t = _mm256_add_epi32(_mm256_slli_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x0F)), 3),
                                 _mm256_set1_epi32(0x84));
    t = _mm256_sllv_epi32(t, _mm256_srli_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x70)), 4));
    const __m256i pos = _mm256_sub_epi32(t, _mm256_set1_epi32(0x84));
    const __m256i neg = _mm256_sub_epi32(_mm256_set1_epi32(0x84), t);
    const __m256i sign = _mm256_cmpgt_epi32(u, _mm256_set1_epi32(0x7F));
    return _mm256_blendv_epi8(pos, neg, sign);
}

VC_AVX2 static inline __m256i vc_alaw_dec8(__m256i code) {
    const __m256i a = _mm256_xor_si256(code, _mm256_set1_epi32(0x55));
    const __m256i seg = _mm256_srli_epi32(_mm256_and_si256(a, _mm256_set1_epi32(0x70)), 4);
    __m256i t = _mm256_slli_epi32(_mm256_and_si256(a, _mm256_set1_epi32(0x0F)), 4);
    const __m256i seg0 = _mm256_cmpeq_epi32(seg, _mm256_setzero_si256());
    t = _mm256_add_epi32(t, _mm256_blendv_epi8(_mm256_set1_epi32(0x108), _mm256_set1_epi32(8), seg0));
    const __m256i sh = _mm256_max_epi32(_mm256_sub_epi32(seg, _mm256_set1_epi32(1)),
                                        _mm256_setzero_si256());
    t = _mm256_sllv_epi32(t, sh);
    const __m256i sign = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F));
    return _mm256_blendv_epi8(_mm256_sub_epi32(_mm256_setzero_si256(), t), t, sign);
}

/* floor(log2(v)) for 0 < v < 2^24 (-127 for 0) */
VC_AVX2 static inline __m256i vc_log2_8(__m256i v) {
    const __m256i bits = _mm256_castps_si256(_mm256_cvtepi32_ps(v));
    return _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
}

VC_AVX2 static inline __m256i vc_ulaw_enc8(__m256i s) {
    const __m256i v = _mm256_srai_epi32(s, 2);
    const __m256i neg = _mm256_srai_epi32(v, 31);                   /* -1 for negative */
    __m256i mag = _mm256_abs_epi32(v);
    mag = _mm256_add_epi32(_mm256_min_epi32(mag, _mm256_set1_epi32(8159)), _mm256_set1_epi32(33));
    const __m256i seg = _mm256_sub_epi32(vc_log2_8(mag), _mm256_set1_epi32(5));   /* 0..8 */
    __m256i code = _mm256_or_si256(
        _mm256_slli_epi32(seg, 4),
        _mm256_and_si256(_mm256_srlv_epi32(mag, _mm256_add_epi32(seg, _mm256_set1_epi32(1))),
                         _mm256_set1_epi32(0x0F)));
    const __m256i top = _mm256_cmpgt_epi32(seg, _mm256_set1_epi32(7));
    code = _mm256_blendv_epi8(code, _mm256_set1_epi32(0x7F), top);
    const __m256i mask = _mm256_blendv_epi8(_mm256_set1_epi32(0xFF), _mm256_set1_epi32(0x7F), neg);
    return _mm256_xor_si256(code, mask);
}

VC_AVX2 static inline __m256i vc_alaw_enc8(__m256i s) {
    __m256i v = _mm256_srai_epi32(s, 3);
    const __m256i neg = _mm256_srai_epi32(v, 31);
    v = _mm256_xor_si256(v, neg);                                    /* negative: -v - 1 == ~v */
    const __m256i seg = _mm256_max_epi32(_mm256_sub_epi32(vc_log2_8(v), _mm256_set1_epi32(4)),
                                         _mm256_setzero_si256());    /* 0..7 */
    const __m256i sh = _mm256_max_epi32(seg, _mm256_set1_epi32(1));
    const __m256i code = _mm256_or_si256(
        _mm256_slli_epi32(seg, 4),
        _mm256_and_si256(_mm256_srlv_epi32(v, sh), _mm256_set1_epi32(0x0F)));
    const __m256i mask = _mm256_blendv_epi8(_mm256_set1_epi32(0xD5), _mm256_set1_epi32(0x55), neg);
    return _mm256_xor_si256(code, mask);
}

#define VC_DECODE_AVX2(name, kernel, tail)                                                    \
    VC_AVX2 static void name(const uint8_t *src, size_t n, uint8_t *dst) {                   \
        size_t i = 0;                                                                         \
        for (; i + 16 <= n; i += 16) {                                                        \
            __m128i lo = vc_pack8(kernel(vc_load8u(src + i)));                                \
            __m128i hi = vc_pack8(kernel(vc_load8u(src + i + 8)));                            \
            _mm_storeu_si128((__m128i *)(dst + 2 * i), lo);                                   \
            _mm_storeu_si128((__m128i *)(dst + 2 * i + 16), hi);                              \
        }                                                                                     \
        tail(src + i, n - i, dst + 2 * i);                                                    \
    }

#define VC_ENCODE_AVX2(name, kernel, tail)                                                    \
    VC_AVX2 static void name(const uint8_t *src, size_t n, uint8_t *dst) {                   \
        size_t i = 0;                                                                         \
        for (; i + 16 <= n; i += 16) {                                                        \
            __m256i s = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(src + 2 * i)));  \
            __m256i t = _mm256_cvtepi16_epi32(                                                \
                _mm_loadu_si128((const __m128i *)(src + 2 * i + 16)));                        \
            __m128i a = vc_pack8(kernel(s)), b = vc_pack8(kernel(t));                          \
            _mm_storeu_si128((__m128i *)(dst + i), _mm_packus_epi16(a, b));                   \
        }                                                                                     \
        tail(src + 2 * i, n - i, dst + i);                                                    \
    }

VC_DECODE_AVX2(vc_ulaw_decode_avx2, vc_ulaw_dec8, vc_ulaw_decode_tab)
VC_DECODE_AVX2(vc_alaw_decode_avx2, vc_alaw_dec8, vc_alaw_decode_tab)
VC_ENCODE_AVX2(vc_ulaw_encode_avx2, vc_ulaw_enc8, vc_ulaw_encode_tab)
VC_ENCODE_AVX2(vc_alaw_encode_avx2, vc_alaw_enc8, vc_alaw_encode_tab)
#endif

static void vc_ulaw_decode(const uint8_t *src, size_t n, uint8_t *dst) {
#ifdef VC_G711_AVX2
    if (vc_g711_use_avx2) { vc_ulaw_decode_avx2(src, n, dst); return; }
#endif
    vc_ulaw_decode_tab(src, n, dst);
}
static void vc_alaw_decode(const uint8_t *src, size_t n, uint8_t *dst) {
#ifdef VC_G711_AVX2
    if (vc_g711_use_avx2) { vc_alaw_decode_avx2(src, n, dst); return; }
#endif
    vc_alaw_decode_tab(src, n, dst);
}
static void vc_ulaw_encode(const uint8_t *src, size_t nsamples, uint8_t *dst) {
#ifdef VC_G711_AVX2
    if (vc_g711_use_avx2) { vc_ulaw_encode_avx2(src, nsamples, dst); return; }
#endif
    vc_ulaw_encode_tab(src, nsamples, dst);
}
static void vc_alaw_encode(const uint8_t *src, size_t nsamples, uint8_t *dst) {
#ifdef VC_G711_AVX2
    if (vc_g711_use_avx2) { vc_alaw_encode_avx2(src, nsamples, dst); return; }
#endif
    vc_alaw_encode_tab(src, nsamples, dst);
}

/* Fill the tables and pick the kernels for this CPU (idempotent). */
static void vc_g711_init(void) {
    vc_g711_tables_init();
#ifdef VC_G711_AVX2
    __builtin_cpu_init();
    vc_g711_use_avx2 = __builtin_cpu_supports("avx2") && getenv("VOICECALL_NO_SIMD") == NULL;
#endif
}

/* 1 when the AVX2 kernels are in use; set 0 to force the table loops (tests compare both). */
static int vc_g711_simd(int enable) {
#ifdef VC_G711_AVX2
    if (enable >= 0) vc_g711_use_avx2 = enable && __builtin_cpu_supports("avx2");
    return vc_g711_use_avx2;
#else
    (void)enable;
    return 0;
#endif
}

#endif
