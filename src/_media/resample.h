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
#define VC_SLACK 32

typedef struct {
    int up;            /* L */
    int down;          /* M */
    int taps;          /* K per phase, a multiple of VC_LANES */
    int skip;          /* leading taps that are zero in every phase */
    int64_t delay;     /* G, in upsampled samples */
    float *coef;       /* up * taps */
    float *hist;       /* input samples [base, base + len) */
    int64_t base;      /* absolute index of hist[0] (negative at start: zero history) */
    int64_t len;       /* samples held */
    int64_t cap;       /* allocated */
    int64_t n_in;      /* input samples received */
    int64_t k_next;    /* index of the next output sample */
    /* integer downsampling (L == 1) only: the history split into M streams, stream q holding
     * x[m*M + q] at str[q*scap + (m - sbase)], so that each tap reads contiguous input */
    float *str;
    int64_t scap;
    int64_t sbase;
    /* taps j = r, r+M, r+2M, ... (one residue r of j mod M) read consecutive samples of one
     * stream: run r starts at tap run_j0[r] (the first one >= skip), reads stream run_q[r] from
     * offset k + run_m[r], and has run_len[r] taps stored contiguously at cperm + run_off[r]. */
    float *cperm;
    int run_q[8], run_len[8], run_off[8], run_j0[8];
    int64_t run_m[8];
} vc_resampler;

static inline int64_t vc_floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

typedef float vc_v8f __attribute__((vector_size(32)));

static void vc_rs_free(vc_resampler *r) {
    free(r->coef); r->coef = NULL;
    free(r->hist); r->hist = NULL;
    free(r->str); r->str = NULL;
    free(r->cperm); r->cperm = NULL;
}

/* integer downsampling by at most 8 uses the split-stream kernel; anything else the lanes one */
static inline int vc_rs_decimating(const vc_resampler *r) {
    return r->up == 1 && r->down > 1 && r->down <= 8;
}

static void vc_rs_streams_clear(vc_resampler *r) {
    memset(r->str, 0, sizeof(float) * (size_t)(r->scap * r->down));
    r->sbase = vc_floordiv(r->base, r->down);
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
    r->skip = taps;
    for (int p = 0; p < up; p++) {
        int z = 0;
        while (z < taps && coef[(size_t)p * taps + z] == 0.0f) z++;
        if (z < r->skip) r->skip = z;
    }
    /* taps-1 zeros of history stand for the silence before the first sample */
    r->base = -(int64_t)(taps - 1);
    r->len = taps - 1;
    if (vc_rs_decimating(r)) {
        r->scap = r->cap / down + 2 * VC_SLACK;
        r->str = (float *)calloc((size_t)(r->scap * down), sizeof(float));
        r->cperm = (float *)malloc(sizeof(float) * (size_t)taps);
        if (!r->str || !r->cperm) { vc_rs_free(r); return -1; }
        int off = 0;
        for (int rr = 0; rr < down; rr++) {
            int j0 = rr;
            while (j0 < r->skip) j0 += down;
            int64_t e = delay - (taps - 1) + j0;
            r->run_j0[rr] = j0;
            r->run_m[rr] = vc_floordiv(e, down);
            r->run_q[rr] = (int)(e - r->run_m[rr] * down);
            r->run_off[rr] = off;
            r->run_len[rr] = 0;
            for (int j = j0; j < taps; j += down) {
                r->cperm[off++] = coef[j];
                r->run_len[rr]++;
            }
        }
        r->sbase = vc_floordiv(r->base, down);
    }
    return 0;
}

/* Make the streams hold index m_end - 1 (plus slack); -1 on allocation failure. */
static int vc_rs_streams_reserve(vc_resampler *r, int64_t m_end) {
    int64_t need = m_end - r->sbase + 2 * VC_SLACK;
    if (need <= r->scap) return 0;
    int64_t cap = r->scap;
    while (cap < need) cap *= 2;
    float *n = (float *)calloc((size_t)(cap * r->down), sizeof(float));
    if (!n) return -1;
    for (int q = 0; q < r->down; q++)
        memcpy(n + (size_t)q * cap, r->str + (size_t)q * r->scap, sizeof(float) * (size_t)r->scap);
    free(r->str);
    r->str = n; r->scap = cap;
    return 0;
}

/* Copy history samples [from, from + n) (absolute indices) into the streams. */
static int vc_rs_streams_fill(vc_resampler *r, int64_t from, int64_t n) {
    const int64_t M = r->down;
    if (n <= 0) return 0;
    if (vc_rs_streams_reserve(r, vc_floordiv(from + n - 1, M) + 1) < 0) return -1;
    const float *h = r->hist + (from - r->base);
    for (int64_t i0 = 0; i0 < M && i0 < n; i0++) {
        int64_t m = vc_floordiv(from + i0, M);
        int64_t q = from + i0 - m * M;
        float *dst = r->str + (size_t)q * r->scap + (size_t)(m - r->sbase);
        for (int64_t i = i0; i < n; i += M) *dst++ = h[i];
    }
    return 0;
}

static void vc_rs_reset(vc_resampler *r) {
    memset(r->hist, 0, sizeof(float) * (size_t)r->cap);
    r->base = -(int64_t)(r->taps - 1);
    r->len = r->taps - 1;
    r->n_in = 0;
    r->k_next = 0;
    if (vc_rs_decimating(r)) vc_rs_streams_clear(r);
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
    extra += VC_SLACK;   /* the kernels read up to 31 samples past the end */
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


/* floor(f + 0.5f) (the addition in float32), saturated to int16, without a libm call */
static inline int16_t vc_rs_round16(float f) {
    float v = f + 0.5f;
    if (v >= 32767.0f) return 32767;
    if (v <= -32768.0f) return -32768;
    int32_t i = (int32_t)v;               /* truncates toward zero */
    if ((float)i > v) i--;                /* negative non-integers: step down to the floor */
    return (int16_t)i;
}

typedef int32_t vc_v8i __attribute__((vector_size(32)));

/* vc_rs_round16 on eight lanes at once, with identical results */
static inline vc_v8i vc_rs_round8(vc_v8f f) {
    const vc_v8f hi = {32767.0f, 32767.0f, 32767.0f, 32767.0f,
                       32767.0f, 32767.0f, 32767.0f, 32767.0f};
    const vc_v8f lo = {-32768.0f, -32768.0f, -32768.0f, -32768.0f,
                       -32768.0f, -32768.0f, -32768.0f, -32768.0f};
    vc_v8f v = f + 0.5f;
    vc_v8i above = v >= hi, below = v <= lo;
    v = (vc_v8f)(((vc_v8i)v & ~above) | ((vc_v8i)hi & above));
    v = (vc_v8f)(((vc_v8i)v & ~below) | ((vc_v8i)lo & below));
    vc_v8i i = __builtin_convertvector(v, vc_v8i);
    vc_v8f back = __builtin_convertvector(i, vc_v8f);
    return i + (back > v);                /* a true comparison is -1: step down to the floor */
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
static void vc_rs_emit_lanes(vc_resampler *r, int64_t count, int16_t *out) {
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

/* Integer upsampling (M == 1): output k comes from input n = (k + G) / L through phase
 * p = (k + G) % L, so the outputs of one phase for consecutive n are a plain FIR over contiguous
 * input. Sixteen consecutive n are computed for all phases at once (2*L independent 8-lane
 * accumulators sharing each input load), each lane summing its taps in order j = skip .. taps-1
 * (the zero taps before `skip` would add exact zeros). */
#define VC_UP_BLOCK(NP)                                                                        \
    static inline void vc_rs_up_block_##NP(const float *coef, int taps, int skip,              \
                                           const float *x, vc_v8f *acc) {                      \
        vc_v8f a[2 * NP], xa, xb;                                                              \
        int j, p;                                                                              \
        for (p = 0; p < 2 * NP; p++) a[p] = (vc_v8f){0};                                       \
        for (j = skip; j < taps; j++) {                                                        \
            memcpy(&xa, x + j, sizeof(xa));                                                    \
            memcpy(&xb, x + j + 8, sizeof(xb));                                                \
            _Pragma("GCC unroll 8") for (p = 0; p < NP; p++) {                                 \
                const float c = coef[(size_t)p * taps + j];                                    \
                a[2 * p] += c * xa;                                                            \
                a[2 * p + 1] += c * xb;                                                        \
            }                                                                                  \
        }                                                                                      \
        for (p = 0; p < 2 * NP; p++) acc[p] = a[p];                                            \
    }
VC_UP_BLOCK(1)
VC_UP_BLOCK(2)
VC_UP_BLOCK(3)
VC_UP_BLOCK(6)

VC_MULTIVERSION
static void vc_rs_emit_up(vc_resampler *r, int64_t count, int16_t *out) {
    const int taps = r->taps, up = r->up, skip = r->skip;
    const int64_t k0 = r->k_next, k1 = r->k_next + count, delay = r->delay;
    const float *hw = r->hist - r->base - (taps - 1);   /* hw[n + j]: tap j of input n's window */
    vc_v8f acc[12];
    int64_t nb, n_first, n_last;
    int p, l;
    if (count <= 0) return;
    n_first = (k0 + delay) / up;
    n_last = (k1 - 1 + delay) / up;
    for (nb = n_first; nb <= n_last; nb += 16) {
        switch (up) {
            case 2: vc_rs_up_block_2(r->coef, taps, skip, hw + nb, acc); break;
            case 3: vc_rs_up_block_3(r->coef, taps, skip, hw + nb, acc); break;
            case 6: vc_rs_up_block_6(r->coef, taps, skip, hw + nb, acc); break;
            default:
                for (p = 0; p < up; p++)
                    vc_rs_up_block_1(r->coef + (size_t)p * taps, taps, skip, hw + nb, acc + 2 * p);
        }
        for (p = 0; p < up; p++) {
            vc_v8i ia = vc_rs_round8(acc[2 * p]), ib = vc_rs_round8(acc[2 * p + 1]);
            int64_t kb = nb * up + p - delay;   /* output index of lane 0 */
            if (kb >= k0 && kb + 15 * up < k1) {
                int16_t *o = out + (kb - k0);
                for (l = 0; l < 8; l++) o[l * up] = (int16_t)ia[l];
                for (l = 0; l < 8; l++) o[(l + 8) * up] = (int16_t)ib[l];
            } else {
                for (l = 0; l < 16; l++) {
                    int64_t k = kb + (int64_t)l * up;
                    if (k >= k0 && k < k1) out[k - k0] = (int16_t)(l < 8 ? ia[l] : ib[l - 8]);
                }
            }
        }
    }
    r->k_next = k1;
}

/* Integer downsampling (L == 1): output k = sum_j c[j] x[k*M + G - taps + 1 + j]. With the input
 * split into M streams, tap j of consecutive outputs reads contiguous samples of
 * one stream (32 outputs per block: four independent accumulators). Each lane sums its taps
 * ordered by (j mod M, j), skipping the zero taps. */
VC_MULTIVERSION
static void vc_rs_emit_down(vc_resampler *r, int64_t count, int16_t *out) {
    int64_t k, i;
    int j, l, v;
    for (k = r->k_next, i = 0; i < count; k += 32, i += 32) {
        vc_v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, x0, x1, x2, x3;
        for (int rr = 0; rr < r->down; rr++) {
            const float *cc = r->cperm + r->run_off[rr];
            const float *x = r->str + (size_t)r->run_q[rr] * r->scap
                             + (size_t)(k + r->run_m[rr] - r->sbase);
            const int len = r->run_len[rr];
            for (j = 0; j < len; j++) {
                const float c = cc[j];
                memcpy(&x0, x + j, sizeof(x0));
                memcpy(&x1, x + j + 8, sizeof(x1));
                memcpy(&x2, x + j + 16, sizeof(x2));
                memcpy(&x3, x + j + 24, sizeof(x3));
                a0 += c * x0;
                a1 += c * x1;
                a2 += c * x2;
                a3 += c * x3;
            }
        }
        vc_v8i q[4] = {vc_rs_round8(a0), vc_rs_round8(a1), vc_rs_round8(a2), vc_rs_round8(a3)};
        if (i + 32 <= count) {
            for (v = 0; v < 4; v++)
                for (l = 0; l < 8; l++) out[i + 8 * v + l] = (int16_t)q[v][l];
        } else {
            for (l = 0; l < 32 && i + l < count; l++) out[i + l] = (int16_t)q[l >> 3][l & 7];
        }
    }
    r->k_next += count;
}

static void vc_rs_emit(vc_resampler *r, int64_t count, int16_t *out) {
    if (count <= 0) return;
    if (r->down == 1 && r->up > 1) vc_rs_emit_up(r, count, out);
    else if (vc_rs_decimating(r)) vc_rs_emit_down(r, count, out);
    else vc_rs_emit_lanes(r, count, out);
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
    if (vc_rs_decimating(r)) {
        int64_t sdrop = vc_floordiv(r->base, r->down) - r->sbase;
        if (sdrop > 0) {
            for (int q = 0; q < r->down; q++) {
                float *st = r->str + (size_t)q * r->scap;
                memmove(st, st + sdrop, sizeof(float) * (size_t)(r->scap - sdrop));
                memset(st + (r->scap - sdrop), 0, sizeof(float) * (size_t)sdrop);
            }
            r->sbase += sdrop;
        }
    }
}

/* Append n PCM16 samples (little-endian bytes). Returns -1 on allocation failure. */
static int vc_rs_push_pcm16(vc_resampler *r, const uint8_t *src, int64_t n) {
    int64_t i;
    if (vc_rs_reserve(r, n) < 0) return -1;
    float *h = r->hist + r->len;
    for (i = 0; i < n; i++)
        h[i] = (float)(int16_t)((uint16_t)src[2 * i] | ((uint16_t)src[2 * i + 1] << 8));
    memset(h + n, 0, sizeof(float) * VC_SLACK);
    r->len += n;
    r->n_in += n;
    if (vc_rs_decimating(r)) return vc_rs_streams_fill(r, r->base + r->len - n, n);
    return 0;
}

/* Append n already-decoded samples. */
static int vc_rs_push_i16(vc_resampler *r, const int16_t *src, int64_t n) {
    int64_t i;
    if (vc_rs_reserve(r, n) < 0) return -1;
    float *h = r->hist + r->len;
    for (i = 0; i < n; i++) h[i] = (float)src[i];
    memset(h + n, 0, sizeof(float) * VC_SLACK);
    r->len += n;
    r->n_in += n;
    if (vc_rs_decimating(r)) return vc_rs_streams_fill(r, r->base + r->len - n, n);
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
    memset(r->hist + r->len, 0, sizeof(float) * (size_t)(need + VC_SLACK));
    r->len += need;
    if (vc_rs_decimating(r)) return vc_rs_streams_fill(r, r->base + r->len - need, need);
    return 0;
}

#endif
