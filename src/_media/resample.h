/* Streaming polyphase FIR resampler (rational L/M) on PCM16, computed in single precision.
 *
 * Output sample k is the filter output at upsampled index t = k*M + G, where G = (N-1)/2 is the
 * linear-phase delay of the N-tap prototype: the output is time-aligned with the input, and
 * computing it needs input up to index floor(t / L). Every output is a dot product of a fixed
 * number of terms accumulated in VC_LANES interleaved partial sums and reduced in a fixed order,
 * so the value of each output never depends on how the input was chunked (nor on the SIMD width
 * the compiler picked: -ffp-contract=off keeps multiply and add separate). The pure-Python
 * reference in voicecall.media.ref.resample performs the same operations in the same order.
 *
 * Coefficients come from the caller (voicecall.media designs them), phase-major: phase p holds
 * K taps, reversed so that tap j multiplies input x[n - K + 1 + j].
 */
#ifndef VC_RESAMPLE_H
#define VC_RESAMPLE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define VC_LANES 8

typedef struct {
    int up;            /* L */
    int down;          /* M */
    int taps;          /* K per phase, a multiple of VC_LANES */
    int64_t delay;     /* G, in upsampled samples */
    float *coef;       /* up * taps */
    float *hist;       /* input samples [base, base + len) */
    int64_t base;      /* absolute index of hist[0] (negative at start: zero history) */
    int64_t len;       /* samples held */
    int64_t cap;       /* allocated */
    int64_t n_in;      /* input samples received */
    int64_t k_next;    /* index of the next output sample */
} vc_resampler;

typedef float vc_v8f __attribute__((vector_size(32)));

static void vc_rs_free(vc_resampler *r) {
    free(r->coef); r->coef = NULL;
    free(r->hist); r->hist = NULL;
}

/* Returns 0, or -1 on allocation failure. */
static int vc_rs_init(vc_resampler *r, int up, int down, int taps, int64_t delay,
                      const float *coef) {
    memset(r, 0, sizeof(*r));
    r->up = up; r->down = down; r->taps = taps; r->delay = delay;
    r->coef = (float *)malloc(sizeof(float) * (size_t)up * (size_t)taps);
    r->cap = 1024 + 2 * taps;        /* a 20 ms frame at 48 kHz fits without growing */
    r->hist = (float *)calloc((size_t)r->cap, sizeof(float));
    if (!r->coef || !r->hist) { vc_rs_free(r); return -1; }
    memcpy(r->coef, coef, sizeof(float) * (size_t)up * (size_t)taps);
    /* taps-1 zeros of history stand for the silence before the first sample */
    r->base = -(int64_t)(taps - 1);
    r->len = taps - 1;
    return 0;
}

static void vc_rs_reset(vc_resampler *r) {
    memset(r->hist, 0, sizeof(float) * (size_t)r->cap);
    r->base = -(int64_t)(r->taps - 1);
    r->len = r->taps - 1;
    r->n_in = 0;
    r->k_next = 0;
}

/* Number of outputs whose input window ends before `avail` input samples. */
static inline int64_t vc_rs_ready(const vc_resampler *r, int64_t avail) {
    /* output k is ready when floor((k*M + G) / L) <= avail - 1  <=>  k*M + G < avail*L */
    int64_t lim = avail * r->up - r->delay;          /* need k*M < lim */
    if (lim <= 0) return 0;
    int64_t kmax = (lim + r->down - 1) / r->down;    /* count of k >= 0 with k*M < lim */
    return kmax > r->k_next ? kmax - r->k_next : 0;
}

/* Make room for `extra` more samples; returns -1 on allocation failure. */
static int vc_rs_reserve(vc_resampler *r, int64_t extra) {
    if (r->len + extra <= r->cap) return 0;
    int64_t cap = r->cap;
    while (cap < r->len + extra) cap *= 2;
    float *h = (float *)realloc(r->hist, sizeof(float) * (size_t)cap);
    if (!h) return -1;
    r->hist = h; r->cap = cap;
    return 0;
}

static inline float vc_rs_sum(vc_v8f acc) {
    float s0 = acc[0] + acc[4], s1 = acc[1] + acc[5], s2 = acc[2] + acc[6], s3 = acc[3] + acc[7];
    return (s0 + s2) + (s1 + s3);
}

static inline float vc_rs_dot(const float *c, const float *x, int taps) {
    vc_v8f acc = {0, 0, 0, 0, 0, 0, 0, 0};
    vc_v8f cv, xv;
    int j;
    for (j = 0; j < taps; j += VC_LANES) {
        memcpy(&cv, c + j, sizeof(cv));
        memcpy(&xv, x + j, sizeof(xv));
        acc += cv * xv;
    }
    return vc_rs_sum(acc);
}


/* floor(v + 0.5), saturated to int16, without a libm call */
static inline int16_t vc_rs_round16(float f) {
    double v = (double)f + 0.5;
    if (v >= 32767.0) return 32767;
    if (v <= -32768.0) return -32768;
    int32_t i = (int32_t)v;               /* truncates toward zero */
    if ((double)i > v) i--;               /* negative non-integers: step down to the floor */
    return (int16_t)i;
}


#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define VC_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define VC_MULTIVERSION
#endif

/* Produce `count` outputs (caller checked readiness) into out (int16, native order).
 * Four outputs are computed side by side: four independent accumulation chains keep the
 * floating-point pipeline busy, while each output's own sum is formed exactly as vc_rs_dot does. */
VC_MULTIVERSION
static void vc_rs_emit(vc_resampler *r, int64_t count, int16_t *out) {
    const int taps = r->taps, up = r->up, down = r->down;
    int64_t t = r->k_next * down + r->delay;
    int64_t n = t / up;
    int p = (int)(t - n * up);
    const float *hist = r->hist - r->base - (taps - 1);   /* hist[n] = window start of output */
    const float *cs[4], *xs[4];
    int64_t i = 0;
    int q, j;
    for (; i + 4 <= count; i += 4) {
        for (q = 0; q < 4; q++) {
            cs[q] = r->coef + (size_t)p * taps;
            xs[q] = hist + n;
            p += down;
            while (p >= up) { p -= up; n++; }
        }
        vc_v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        vc_v8f c, x;
        for (j = 0; j < taps; j += VC_LANES) {
            memcpy(&c, cs[0] + j, sizeof(c)); memcpy(&x, xs[0] + j, sizeof(x)); a0 += c * x;
            memcpy(&c, cs[1] + j, sizeof(c)); memcpy(&x, xs[1] + j, sizeof(x)); a1 += c * x;
            memcpy(&c, cs[2] + j, sizeof(c)); memcpy(&x, xs[2] + j, sizeof(x)); a2 += c * x;
            memcpy(&c, cs[3] + j, sizeof(c)); memcpy(&x, xs[3] + j, sizeof(x)); a3 += c * x;
        }
        out[i] = vc_rs_round16(vc_rs_sum(a0));
        out[i + 1] = vc_rs_round16(vc_rs_sum(a1));
        out[i + 2] = vc_rs_round16(vc_rs_sum(a2));
        out[i + 3] = vc_rs_round16(vc_rs_sum(a3));
    }
    for (; i < count; i++) {
        out[i] = vc_rs_round16(vc_rs_dot(r->coef + (size_t)p * taps, hist + n, taps));
        p += down;
        while (p >= up) { p -= up; n++; }
    }
    r->k_next += count;
}

/* Drop history no future output needs. */
static void vc_rs_compact(vc_resampler *r) {
    int64_t t = r->k_next * r->down + r->delay;
    int64_t keep_from = t / r->up - (r->taps - 1);   /* oldest index the next output reads */
    int64_t drop = keep_from - r->base;
    if (drop <= 0) return;
    if (drop > r->len) drop = r->len;
    memmove(r->hist, r->hist + drop, sizeof(float) * (size_t)(r->len - drop));
    r->len -= drop;
    r->base += drop;
}

/* Append n PCM16 samples (little-endian bytes). Returns -1 on allocation failure. */
static int vc_rs_push_pcm16(vc_resampler *r, const uint8_t *src, int64_t n) {
    int64_t i;
    if (vc_rs_reserve(r, n) < 0) return -1;
    float *h = r->hist + r->len;
    for (i = 0; i < n; i++)
        h[i] = (float)(int16_t)((uint16_t)src[2 * i] | ((uint16_t)src[2 * i + 1] << 8));
    r->len += n;
    r->n_in += n;
    return 0;
}

/* Append n already-decoded samples. */
static int vc_rs_push_i16(vc_resampler *r, const int16_t *src, int64_t n) {
    int64_t i;
    if (vc_rs_reserve(r, n) < 0) return -1;
    float *h = r->hist + r->len;
    for (i = 0; i < n; i++) h[i] = (float)src[i];
    r->len += n;
    r->n_in += n;
    return 0;
}

/* Upper bound on outputs a push of n samples can make ready. */
static inline int64_t vc_rs_max_out(const vc_resampler *r, int64_t n) {
    return vc_rs_ready(r, r->n_in + n);
}

/* Outputs still owed at end of stream: total ceil(n_in * L / M). Pads zeros as needed. */
static int64_t vc_rs_tail_count(const vc_resampler *r) {
    int64_t total = (r->n_in * r->up + r->down - 1) / r->down;
    return total > r->k_next ? total - r->k_next : 0;
}

static int vc_rs_pad_for_tail(vc_resampler *r, int64_t count) {
    /* the last owed output reads input up to floor(((k_next+count-1)*M + G)/L) */
    if (count <= 0) return 0;
    int64_t t = (r->k_next + count - 1) * r->down + r->delay;
    int64_t need = t / r->up + 1 - (r->base + r->len);
    if (need <= 0) return 0;
    if (vc_rs_reserve(r, need) < 0) return -1;
    memset(r->hist + r->len, 0, sizeof(float) * (size_t)need);
    r->len += need;
    return 0;
}

#endif
