// Quantised matrix-vector kernels (see include/CTransformerKernels.h).
//
// Each block contributes d * sum_j q_j x_j (+ m * sum_j x_j for Q4_1): the dequantised weights
// are never materialised, so only the packed bytes stream from memory. The result equals the
// Float32 product with the dequantised matrix up to the order of Float32 summation.

#include "CTransformerKernels.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline float half_to_float(const uint8_t *p) {
    uint16_t h; memcpy(&h, p, 2);
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) bits = sign | 0x7F800000 | (man << 13);
    else if (exp != 0) bits = sign | ((exp + 112) << 23) | (man << 13);
    else if (man == 0) bits = sign;
    else { float v = (float)man * 5.9604644775390625e-8f; return sign ? -v : v; }
    float f; memcpy(&f, &bits, 4); return f;
}

void ws_gemv_q8_0_scalar(const uint8_t *w, long r0, long r1, long cols, const float *x, float *y) {
    long nb = cols / 32;
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * nb * 34;
        float acc = 0;
        for (long b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 34;
            const int8_t *q = (const int8_t *)(blk + 2);
            float s = 0;
            for (int j = 0; j < 32; j++) s += (float)q[j] * x[b * 32 + j];
            acc += half_to_float(blk) * s;
        }
        y[r] = acc;
    }
}

void ws_gemv_q4_1_scalar(const uint8_t *w, long r0, long r1, long cols, const float *x, float *y) {
    long nb = cols / 32;
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * nb * 20;
        float acc = 0;
        for (long b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 20;
            const uint8_t *qs = blk + 4;
            const float *xb = x + b * 32;
            float s = 0, xs = 0;
            for (int j = 0; j < 16; j++) {
                s += (float)(qs[j] & 0x0F) * xb[j] + (float)(qs[j] >> 4) * xb[j + 16];
                xs += xb[j] + xb[j + 16];
            }
            acc += half_to_float(blk) * s + half_to_float(blk + 2) * xs;
        }
        y[r] = acc;
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c")))
static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma,f16c")))
static float half_avx(const uint8_t *p) {
    uint16_t h; memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

__attribute__((target("avx2,fma,f16c")))
static void gemv_q8_0_avx2(const uint8_t *w, long r0, long r1, long cols, const float *x, float *y) {
    long nb = cols / 32;
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * nb * 34;
        __m256 acc = _mm256_setzero_ps();
        for (long b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 34;
            const float *xb = x + b * 32;
            __m256 s = _mm256_setzero_ps();
            for (int k = 0; k < 4; k++) {
                __m128i q8 = _mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * k));
                __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
                s = _mm256_fmadd_ps(q, _mm256_loadu_ps(xb + 8 * k), s);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half_avx(blk)), s, acc);
        }
        y[r] = hsum256(acc);
    }
}

__attribute__((target("avx2,fma,f16c")))
static void gemv_q4_1_avx2(const uint8_t *w, long r0, long r1, long cols, const float *x, float *y) {
    long nb = cols / 32;
    const __m128i low = _mm_set1_epi8(0x0F);
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * nb * 20;
        __m256 acc = _mm256_setzero_ps();
        __m256 accm = _mm256_setzero_ps();
        for (long b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 20;
            const float *xb = x + b * 32;
            __m128i qs = _mm_loadu_si128((const __m128i *)(blk + 4));
            __m128i lo = _mm_and_si128(qs, low);
            __m128i hi = _mm_and_si128(_mm_srli_epi16(qs, 4), low);
            __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
            __m256 x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
            __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), x0);
            s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), x1, s);
            s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), x2, s);
            s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), x3, s);
            __m256 xs = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half_avx(blk)), s, acc);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(half_avx(blk + 2)), xs, accm);
        }
        y[r] = hsum256(_mm256_add_ps(acc, accm));
    }
}

static int has_avx2(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    }
    return cached;
}
#endif

void ws_gemv_q8_0(const uint8_t *w, long r0, long r1, long cols, const float *x, float *y) {
#if defined(__x86_64__)
    if (has_avx2()) { gemv_q8_0_avx2(w, r0, r1, cols, x, y); return; }
#endif
    ws_gemv_q8_0_scalar(w, r0, r1, cols, x, y);
}

void ws_gemv_q4_1(const uint8_t *w, long r0, long r1, long cols, const float *x, float *y) {
#if defined(__x86_64__)
    if (has_avx2()) { gemv_q4_1_avx2(w, r0, r1, cols, x, y); return; }
#endif
    ws_gemv_q4_1_scalar(w, r0, r1, cols, x, y);
}
