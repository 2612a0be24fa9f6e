// Fast 16-bit float conversions with a run-time CPU check (see include/CConversions.h).
//
// The vector code is compiled for F16C/AVX2 through function attributes, so the target builds
// without -m flags and runs on any x86_64 (the check picks the scalar loop on older CPUs).

#include "CConversions.h"
#include <string.h>

static inline uint16_t load_u16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline void store_u16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static inline uint32_t f32_bits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }
static inline float bits_f32(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }

// ---- scalar definitions (also the tails of the vector loops) ----

static float scalar_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (exp == 0x1F) return bits_f32(sign | 0x7F800000 | (man << 13) | (man ? 0x400000u : 0));  // inf; NaN quieted
    if (exp != 0) return bits_f32(sign | ((exp + 112) << 23) | (man << 13));   // normal: rebias 15 -> 127
    if (man == 0) return bits_f32(sign);                                      // +-0
    // Subnormal: value = man * 2^-24, exact in Float32.
    float v = (float)man * 5.9604644775390625e-8f;
    return sign ? -v : v;
}

static uint16_t scalar_f32_to_f16(float f) {
    uint32_t b = f32_bits(f);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
    uint32_t a = b & 0x7FFFFFFF;
    if (a > 0x7F800000) return sign | 0x7E00 | (uint16_t)((a >> 13) & 0x3FF);  // NaN, quiet, top payload
    if (a >= 0x477FF000) return sign | 0x7C00;            // >= 65520 rounds to infinity (or is infinity)
    if (a >= 0x38800000) {                                 // normal half range (>= 2^-14)
        uint32_t r = a + 0x0FFF + ((a >> 13) & 1);        // round to nearest even on bit 13
        return sign | (uint16_t)((r - 0x38000000) >> 13);  // rebias 127 -> 15
    }
    if (a < 0x33000000) return sign;                       // below half the smallest subnormal: +-0
    // Subnormal half: shift the full significand right and round to nearest even.
    uint32_t e = a >> 23, m = (a & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - e;                              // 14..24
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q += 1;
    return sign | (uint16_t)q;
}

static inline uint16_t scalar_f32_to_bf16(float f) {
    uint32_t b = f32_bits(f);
    if ((b & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)(b >> 16) | 0x0040;
    return (uint16_t)((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

static int cpu_flags = -1;  // bit 0: f16c+avx, bit 1: avx2 (benign race: every thread computes the same)

static int flags(void) {
    if (cpu_flags < 0) {
        __builtin_cpu_init();
        int f = 0;
        if (__builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx")) f |= 1;
        if (__builtin_cpu_supports("avx2")) f |= 2;
        cpu_flags = f;
    }
    return cpu_flags;
}

static int forced_scalar = 0;
void ws_force_scalar(int on) { forced_scalar = on; }

int ws_f16c_available(void) { return !forced_scalar && (flags() & 1) != 0; }
int ws_avx2_available(void) { return !forced_scalar && (flags() & 2) != 0; }

__attribute__((target("f16c,avx")))
static void f16_to_f32_f16c(const unsigned char *s, float *d, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(s + 2 * i));
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) d[i] = scalar_f16_to_f32(load_u16(s + 2 * i));
}

__attribute__((target("f16c,avx")))
static void f32_to_f16_f16c(const float *s, unsigned char *d, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(d + 2 * i), h);
    }
    for (; i < n; i++) store_u16(d + 2 * i, scalar_f32_to_f16(s[i]));
}

__attribute__((target("avx2")))
static void bf16_to_f32_avx2(const unsigned char *s, float *d, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + 2 * i)));
        _mm256_storeu_si256((__m256i *)(d + i), _mm256_slli_epi32(w, 16));
    }
    for (; i < n; i++) d[i] = bits_f32((uint32_t)load_u16(s + 2 * i) << 16);
}

__attribute__((target("avx2")))
static inline __m256i bf16_round8(__m256i b) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(b, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(0x0040));
    // Signed compare is right here: both sides are below 2^31 after masking the sign.
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(b, abs_mask), inf);
    return _mm256_blendv_epi8(rounded, quiet, nan);
}

__attribute__((target("avx2")))
static void f32_to_bf16_avx2(const float *s, unsigned char *d, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i a = bf16_round8(_mm256_loadu_si256((const __m256i *)(s + i)));
        __m256i b = bf16_round8(_mm256_loadu_si256((const __m256i *)(s + i + 8)));
        // packus works per 128-bit lane: (a0..3 b0..3 a4..7 b4..7); reorder the 64-bit quarters.
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
        _mm256_storeu_si256((__m256i *)(d + 2 * i), p);
    }
    for (; i < n; i++) store_u16(d + 2 * i, scalar_f32_to_bf16(s[i]));
}
#else
void ws_force_scalar(int on) { (void)on; }
int ws_f16c_available(void) { return 0; }
int ws_avx2_available(void) { return 0; }
#endif

void ws_f16_to_f32(const void *src, float *dst, size_t n) {
    const unsigned char *s = (const unsigned char *)src;
#if defined(__x86_64__) || defined(__i386__)
    if (ws_f16c_available()) { f16_to_f32_f16c(s, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = scalar_f16_to_f32(load_u16(s + 2 * i));
}

void ws_f32_to_f16(const float *src, void *dst, size_t n) {
    unsigned char *d = (unsigned char *)dst;
#if defined(__x86_64__) || defined(__i386__)
    if (ws_f16c_available()) { f32_to_f16_f16c(src, d, n); return; }
#endif
    for (size_t i = 0; i < n; i++) store_u16(d + 2 * i, scalar_f32_to_f16(src[i]));
}

void ws_bf16_to_f32(const void *src, float *dst, size_t n) {
    const unsigned char *s = (const unsigned char *)src;
#if defined(__x86_64__) || defined(__i386__)
    if (ws_avx2_available()) { bf16_to_f32_avx2(s, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = bits_f32((uint32_t)load_u16(s + 2 * i) << 16);
}

void ws_f32_to_bf16(const float *src, void *dst, size_t n) {
    unsigned char *d = (unsigned char *)dst;
#if defined(__x86_64__) || defined(__i386__)
    if (ws_avx2_available()) { f32_to_bf16_avx2(src, d, n); return; }
#endif
    for (size_t i = 0; i < n; i++) store_u16(d + 2 * i, scalar_f32_to_bf16(src[i]));
}

// ---- non-finite counts (NaN or infinity: all exponent bits set) ----

static inline int scalar_nonfinite_f32(uint32_t b) { return (b & 0x7F800000u) == 0x7F800000u; }
static inline int scalar_nonfinite_16(uint16_t h, uint16_t exp) { return (h & exp) == exp; }

static size_t scalar_count_16(const unsigned char *s, size_t n, uint16_t exp) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += scalar_nonfinite_16(load_u16(s + 2 * i), exp);
    return c;
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,popcnt")))
static size_t count_f32_avx2(const float *s, size_t n) {
    const __m256i exp = _mm256_set1_epi32(0x7F800000);
    size_t c = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(s + i)), exp);
        c += (size_t)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(v, exp))));
    }
    for (; i < n; i++) c += scalar_nonfinite_f32(f32_bits(s[i]));
    return c;
}

__attribute__((target("avx2,popcnt")))
static size_t copy_count_f32_avx2(float *d, const float *s, size_t n) {
    const __m256i exp = _mm256_set1_epi32(0x7F800000);
    size_t c = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(s + i));
        _mm256_storeu_si256((__m256i *)(d + i), x);
        __m256i v = _mm256_and_si256(x, exp);
        c += (size_t)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(v, exp))));
    }
    for (; i < n; i++) { d[i] = s[i]; c += scalar_nonfinite_f32(f32_bits(s[i])); }
    return c;
}

__attribute__((target("avx2,popcnt")))
static size_t count_16_avx2(const unsigned char *s, size_t n, uint16_t e) {
    const __m256i exp = _mm256_set1_epi16((short)e);
    size_t c = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(s + 2 * i)), exp);
        // Two mask bits per 16-bit lane.
        c += (size_t)__builtin_popcount((unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi16(v, exp))) / 2;
    }
    return c + scalar_count_16(s + 2 * i, n - i, e);
}
#endif

size_t ws_count_nonfinite_f32(const float *src, size_t n) {
#if defined(__x86_64__) || defined(__i386__)
    if (ws_avx2_available()) return count_f32_avx2(src, n);
#endif
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += scalar_nonfinite_f32(f32_bits(src[i]));
    return c;
}

size_t ws_copy_f32_count_nonfinite(float *dst, const float *src, size_t n) {
#if defined(__x86_64__) || defined(__i386__)
    if (ws_avx2_available()) return copy_count_f32_avx2(dst, src, n);
#endif
    size_t c = 0;
    for (size_t i = 0; i < n; i++) { dst[i] = src[i]; c += scalar_nonfinite_f32(f32_bits(src[i])); }
    return c;
}

size_t ws_count_nonfinite_f16(const void *src, size_t n) {
#if defined(__x86_64__) || defined(__i386__)
    if (ws_avx2_available()) return count_16_avx2((const unsigned char *)src, n, 0x7C00);
#endif
    return scalar_count_16((const unsigned char *)src, n, 0x7C00);
}

size_t ws_count_nonfinite_bf16(const void *src, size_t n) {
#if defined(__x86_64__) || defined(__i386__)
    if (ws_avx2_available()) return count_16_avx2((const unsigned char *)src, n, 0x7F80);
#endif
    return scalar_count_16((const unsigned char *)src, n, 0x7F80);
}
