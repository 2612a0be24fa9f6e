// Inner loops of the streamed TIES/DARE kernel (see include/CMergeKernels.h).
//
// The AVX2 code is compiled through function attributes, so the target builds without -m flags
// and runs on any x86_64 (a run-time check picks the scalar loops on older CPUs). Contraction
// into fused multiply-adds is off: the results must match the scalar loops and the Swift
// reference bit for bit.

#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

#include "CMergeKernels.h"
#include <math.h>
#include <string.h>

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

// ---- scalar definitions (also the tails of the vector loops) ----

static size_t scalar_bin_scan(const float *x, const float *b, size_t n, uint32_t high, uint16_t *low) {
    size_t c = 0;
    for (size_t j = 0; j < n; j++) {
        uint32_t bits = f32_bits(x[j] - b[j]) & 0x7FFFFFFFu;
        if ((bits >> 16) == high) low[c++] = (uint16_t)(bits & 0xFFFF);
    }
    return c;
}

static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

uint32_t ws_merge_bits32(uint32_t k0, uint32_t k1, uint32_t index) { return mix32(mix32(index ^ k0) ^ k1); }

/// Adds elements j0..<n to the four lane sums (lane j mod 4).
static void scalar_random_l1(const float *x, const float *b, size_t j0, size_t n, uint32_t k0, uint32_t k1, int64_t start,
                             uint32_t limit, double all[4], double kept[4]) {
    for (size_t j = j0; j < n; j++) {
        double d = (double)fabsf(x[j] - b[j]);
        all[j & 3] += d;
        kept[j & 3] += ws_merge_bits32(k0, k1, (uint32_t)(start + (int64_t)j)) <= limit ? d : 0.0;
    }
}

/// Elements j0..<n of ws_merge_keep_ties with running ordinals.
static void scalar_keep_ties(const float *x, const float *b, size_t j0, size_t n, const ws_merge_tie_bound *l,
                             const ws_merge_tie_bound *u, int64_t *lo_ord, int64_t *hi_ord, float factor, int scaled, float *out) {
    for (size_t j = j0; j < n; j++) {
        float e = x[j] - b[j];
        uint32_t bits = f32_bits(e) & 0x7FFFFFFFu;
        int ok = 1;
        if (l->present) {
            if (bits < l->bits) ok = 0;
            else if (bits == l->bits) { ok = *lo_ord >= l->from && *lo_ord < l->to; *lo_ord += 1; }
        }
        if (u->present) {
            if (bits > u->bits) ok = 0;
            else if (bits == u->bits) { ok = ok && *hi_ord >= u->from && *hi_ord < u->to; *hi_ord += 1; }
        }
        out[j] = ok ? (scaled ? e * factor : e) : 0.0f;
    }
}

/// Model i's delta at element j, widened (see the operand kinds).
static inline double scalar_delta(const ws_merge_operand *op, const float *b, size_t j) {
    switch (op->kind) {
    case WS_MERGE_RAW: return (double)op->x[j] - (double)b[j];
    case WS_MERGE_DELTA: return (double)op->x[j];
    case WS_MERGE_BITS:
    case WS_MERGE_BITS_SCALED: {
        float e = op->x[j] - b[j];
        uint32_t bits = f32_bits(e) & 0x7FFFFFFFu;
        if (bits < op->lo || bits > op->hi) return 0.0;
        return op->kind == WS_MERGE_BITS ? (double)e : (double)(e * op->factor);
    }
    case WS_MERGE_RANDOM:
    case WS_MERGE_RANDOM_SCALED: {
        float e = op->x[j] - b[j];
        if (ws_merge_bits32(op->k0, op->k1, (uint32_t)(op->start + (int64_t)j)) > op->limit) return 0.0;
        return op->kind == WS_MERGE_RANDOM ? (double)e : (double)(e * op->factor);
    }
    default: return 0.0;
    }
}

static void scalar_sign_elect(const float *b, const ws_merge_operand *ops, size_t m, size_t n, double lambda,
                              int normalize, int elect, float *out) {
    for (size_t j = 0; j < n; j++) {
        double s = 0;
        for (size_t i = 0; i < m; i++) s += ops[i].weight * scalar_delta(&ops[i], b, j);
        double mixed = 0, den = 0;
        for (size_t i = 0; i < m; i++) {
            double w = ops[i].weight, d = w * scalar_delta(&ops[i], b, j);
            int agree = elect ? (s >= 0 ? d > 0 : d < 0) : (d > 0 || d < 0);
            mixed += agree ? d : 0.0;
            den += agree ? w : 0.0;
        }
        if (normalize) mixed /= (den == 0 ? 1.0 : den);
        out[j] = (float)((double)b[j] + lambda * mixed);
    }
}

/// The operands seen from element j on (the tails of the vector loops).
static void shift_operands(const ws_merge_operand *ops, size_t m, size_t j, ws_merge_operand *out) {
    for (size_t i = 0; i < m; i++) {
        out[i] = ops[i];
        if (out[i].x) out[i].x += j;
        out[i].start += (int64_t)j;
    }
}

static void scalar_weighted_sum(const float *b, const ws_merge_operand *ops, size_t m, size_t n, int base_first, float *out) {
    for (size_t j = 0; j < n; j++) {
        double acc = base_first ? (double)b[j] : 0.0;
        for (size_t i = 0; i < m; i++) acc += ops[i].weight * scalar_delta(&ops[i], b, j);
        out[j] = (float)(base_first ? acc : (double)b[j] + acc);
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

static int avx2 = -1;  // benign race: every thread computes the same
static int forced_scalar = 0;

void ws_merge_force_scalar(int on) { forced_scalar = on; }

int ws_merge_avx2_available(void) {
    if (avx2 < 0) {
        __builtin_cpu_init();
        avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return !forced_scalar && avx2 == 1;
}

__attribute__((target("avx2")))
static size_t avx2_bin_scan(const float *x, const float *b, size_t n, uint32_t high, uint16_t *low) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), want = _mm256_set1_epi32((int)high);
    size_t c = 0, j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256i bits = _mm256_and_si256(_mm256_castps_si256(_mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(b + j))), abs_mask);
        unsigned hit = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_srli_epi32(bits, 16), want)));
        if (hit) {  // rare: a rank bound's bin holds a small share of the elements
            uint32_t lanes[8];
            _mm256_storeu_si256((__m256i *)lanes, bits);
            for (; hit; hit &= hit - 1) low[c++] = (uint16_t)(lanes[__builtin_ctz(hit)] & 0xFFFF);
        }
    }
    return c + scalar_bin_scan(x + j, b + j, n - j, high, low + c);
}

__attribute__((target("avx2")))
static inline __m256i avx2_mix32(__m256i x) {
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x7FEB352Du));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x846CA68Bu));
    return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

/// All-ones lanes where ws_merge_bits32(k0, k1, index + lane) <= limit.
__attribute__((target("avx2")))
static inline __m256 avx2_random_keep(uint32_t k0, uint32_t k1, uint32_t index, uint32_t limit) {
    __m256i i = _mm256_add_epi32(_mm256_set1_epi32((int)index), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i r = avx2_mix32(_mm256_xor_si256(avx2_mix32(_mm256_xor_si256(i, _mm256_set1_epi32((int)k0))), _mm256_set1_epi32((int)k1)));
    __m256i l = _mm256_set1_epi32((int)limit);
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_max_epu32(r, l), l));  // r <= limit, unsigned
}

__attribute__((target("avx2")))
static void avx2_random_l1(const float *x, const float *b, size_t n, uint32_t k0, uint32_t k1, int64_t start, uint32_t limit,
                           double sums[2]) {
    __m256d all = _mm256_setzero_pd(), kept = _mm256_setzero_pd();
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(b + j)), abs_mask);
        __m256 k = _mm256_and_ps(d, avx2_random_keep(k0, k1, (uint32_t)(start + (int64_t)j), limit));
        all = _mm256_add_pd(all, _mm256_cvtps_pd(_mm256_castps256_ps128(d)));
        all = _mm256_add_pd(all, _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1)));
        kept = _mm256_add_pd(kept, _mm256_cvtps_pd(_mm256_castps256_ps128(k)));
        kept = _mm256_add_pd(kept, _mm256_cvtps_pd(_mm256_extractf128_ps(k, 1)));
    }
    double a[4], c[4];
    _mm256_storeu_pd(a, all);
    _mm256_storeu_pd(c, kept);
    scalar_random_l1(x, b, j, n, k0, k1, start, limit, a, c);
    sums[0] = (a[0] + a[1]) + (a[2] + a[3]);
    sums[1] = (c[0] + c[1]) + (c[2] + c[3]);
}

__attribute__((target("avx2")))
static void avx2_keep_ties(const float *x, const float *b, size_t n, const ws_merge_tie_bound *l, const ws_merge_tie_bound *u,
                           float factor, int scaled, float *out) {
    // A chunk without an element at either bound's bits is decided by strict comparisons (all
    // values <= 0x7FFFFFFF: signed compares order them); one with such an element goes scalar.
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), ones = _mm256_set1_epi32(-1);
    const __m256i lb = _mm256_set1_epi32((int)l->bits), ub = _mm256_set1_epi32((int)u->bits);
    int64_t lo_ord = 0, hi_ord = 0;
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = _mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(b + j));
        __m256i bits = _mm256_and_si256(_mm256_castps_si256(e), abs_mask);
        __m256i at = _mm256_setzero_si256(), keep = ones;
        if (l->present) {
            at = _mm256_or_si256(at, _mm256_cmpeq_epi32(bits, lb));
            keep = _mm256_and_si256(keep, _mm256_cmpgt_epi32(bits, lb));
        }
        if (u->present) {
            at = _mm256_or_si256(at, _mm256_cmpeq_epi32(bits, ub));
            keep = _mm256_and_si256(keep, _mm256_cmpgt_epi32(ub, bits));
        }
        if (!_mm256_testz_si256(at, at)) {
            scalar_keep_ties(x, b, j, j + 8, l, u, &lo_ord, &hi_ord, factor, scaled, out);
            continue;
        }
        if (scaled) e = _mm256_mul_ps(e, _mm256_set1_ps(factor));
        _mm256_storeu_ps(out + j, _mm256_and_ps(e, _mm256_castsi256_ps(keep)));
    }
    scalar_keep_ties(x, b, j, n, l, u, &lo_ord, &hi_ord, factor, scaled, out);
}

/// Model i's delta at elements j..j+7 as two Float64 halves.
__attribute__((target("avx2")))
static inline void avx2_delta(const ws_merge_operand *op, __m256 bv, __m256d blo, __m256d bhi, size_t j,
                              __m256d *lo, __m256d *hi) {
    switch (op->kind) {
    case WS_MERGE_RAW: {
        __m256 xv = _mm256_loadu_ps(op->x + j);
        *lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(xv)), blo);
        *hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1)), bhi);
        return;
    }
    case WS_MERGE_DELTA: {
        __m256 xv = _mm256_loadu_ps(op->x + j);
        *lo = _mm256_cvtps_pd(_mm256_castps256_ps128(xv));
        *hi = _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1));
        return;
    }
    case WS_MERGE_BITS:
    case WS_MERGE_BITS_SCALED: {
        __m256 e = _mm256_sub_ps(_mm256_loadu_ps(op->x + j), bv);
        // lo, hi and |e|'s bits are all <= 0x7FFFFFFF, so signed compares order them correctly.
        __m256i bits = _mm256_and_si256(_mm256_castps_si256(e), _mm256_set1_epi32(0x7FFFFFFF));
        __m256i out = _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)op->lo), bits),
                                      _mm256_cmpgt_epi32(bits, _mm256_set1_epi32((int)op->hi)));
        if (op->kind == WS_MERGE_BITS_SCALED) e = _mm256_mul_ps(e, _mm256_set1_ps(op->factor));
        e = _mm256_andnot_ps(_mm256_castsi256_ps(out), e);
        *lo = _mm256_cvtps_pd(_mm256_castps256_ps128(e));
        *hi = _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1));
        return;
    }
    case WS_MERGE_RANDOM:
    case WS_MERGE_RANDOM_SCALED: {
        __m256 e = _mm256_sub_ps(_mm256_loadu_ps(op->x + j), bv);
        if (op->kind == WS_MERGE_RANDOM_SCALED) e = _mm256_mul_ps(e, _mm256_set1_ps(op->factor));
        e = _mm256_and_ps(e, avx2_random_keep(op->k0, op->k1, (uint32_t)(op->start + (int64_t)j), op->limit));
        *lo = _mm256_cvtps_pd(_mm256_castps256_ps128(e));
        *hi = _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1));
        return;
    }
    default:
        *lo = _mm256_setzero_pd();
        *hi = _mm256_setzero_pd();
    }
}

__attribute__((target("avx2")))
static inline __m256d avx2_agree(__m256d s, __m256d d) {
    const __m256d zero = _mm256_setzero_pd();
    // s >= 0 ? d > 0 : d < 0 (ordered compares: NaN never agrees, as in the scalar loop)
    return _mm256_blendv_pd(_mm256_cmp_pd(d, zero, _CMP_LT_OQ), _mm256_cmp_pd(d, zero, _CMP_GT_OQ),
                            _mm256_cmp_pd(s, zero, _CMP_GE_OQ));
}

__attribute__((target("avx2")))
static void avx2_sign_elect(const float *b, const ws_merge_operand *ops, size_t m, size_t n, double lambda,
                            int normalize, int elect, float *out) {
    const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0), lam = _mm256_set1_pd(lambda);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 bv = _mm256_loadu_ps(b + j);
        __m256d blo = _mm256_cvtps_pd(_mm256_castps256_ps128(bv)), bhi = _mm256_cvtps_pd(_mm256_extractf128_ps(bv, 1));
        __m256d slo = zero, shi = zero, dlo, dhi;
        for (size_t i = 0; i < m; i++) {
            __m256d w = _mm256_set1_pd(ops[i].weight);
            avx2_delta(&ops[i], bv, blo, bhi, j, &dlo, &dhi);
            slo = _mm256_add_pd(slo, _mm256_mul_pd(w, dlo));
            shi = _mm256_add_pd(shi, _mm256_mul_pd(w, dhi));
        }
        __m256d mlo = zero, mhi = zero, nlo = zero, nhi = zero;
        for (size_t i = 0; i < m; i++) {
            __m256d w = _mm256_set1_pd(ops[i].weight);
            avx2_delta(&ops[i], bv, blo, bhi, j, &dlo, &dhi);
            dlo = _mm256_mul_pd(w, dlo);
            dhi = _mm256_mul_pd(w, dhi);
            __m256d alo = elect ? avx2_agree(slo, dlo) : _mm256_cmp_pd(dlo, zero, _CMP_NEQ_OQ);
            __m256d ahi = elect ? avx2_agree(shi, dhi) : _mm256_cmp_pd(dhi, zero, _CMP_NEQ_OQ);
            mlo = _mm256_add_pd(mlo, _mm256_and_pd(alo, dlo));
            mhi = _mm256_add_pd(mhi, _mm256_and_pd(ahi, dhi));
            nlo = _mm256_add_pd(nlo, _mm256_and_pd(alo, w));
            nhi = _mm256_add_pd(nhi, _mm256_and_pd(ahi, w));
        }
        if (normalize) {
            mlo = _mm256_div_pd(mlo, _mm256_blendv_pd(nlo, one, _mm256_cmp_pd(nlo, zero, _CMP_EQ_OQ)));
            mhi = _mm256_div_pd(mhi, _mm256_blendv_pd(nhi, one, _mm256_cmp_pd(nhi, zero, _CMP_EQ_OQ)));
        }
        __m128 olo = _mm256_cvtpd_ps(_mm256_add_pd(blo, _mm256_mul_pd(lam, mlo)));
        __m128 ohi = _mm256_cvtpd_ps(_mm256_add_pd(bhi, _mm256_mul_pd(lam, mhi)));
        _mm256_storeu_ps(out + j, _mm256_set_m128(ohi, olo));
    }
    if (j < n) {
        ws_merge_operand tail[m > 0 ? m : 1];
        shift_operands(ops, m, j, tail);
        scalar_sign_elect(b + j, tail, m, n - j, lambda, normalize, elect, out + j);
    }
}

__attribute__((target("avx2")))
static void avx2_weighted_sum(const float *b, const ws_merge_operand *ops, size_t m, size_t n, int base_first, float *out) {
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 bv = _mm256_loadu_ps(b + j);
        __m256d blo = _mm256_cvtps_pd(_mm256_castps256_ps128(bv)), bhi = _mm256_cvtps_pd(_mm256_extractf128_ps(bv, 1));
        __m256d alo = base_first ? blo : _mm256_setzero_pd(), ahi = base_first ? bhi : _mm256_setzero_pd(), dlo, dhi;
        for (size_t i = 0; i < m; i++) {
            __m256d w = _mm256_set1_pd(ops[i].weight);
            avx2_delta(&ops[i], bv, blo, bhi, j, &dlo, &dhi);
            alo = _mm256_add_pd(alo, _mm256_mul_pd(w, dlo));
            ahi = _mm256_add_pd(ahi, _mm256_mul_pd(w, dhi));
        }
        if (!base_first) {
            alo = _mm256_add_pd(blo, alo);
            ahi = _mm256_add_pd(bhi, ahi);
        }
        _mm256_storeu_ps(out + j, _mm256_set_m128(_mm256_cvtpd_ps(ahi), _mm256_cvtpd_ps(alo)));
    }
    if (j < n) {
        ws_merge_operand tail[m > 0 ? m : 1];
        shift_operands(ops, m, j, tail);
        scalar_weighted_sum(b + j, tail, m, n - j, base_first, out + j);
    }
}

void ws_merge_weighted_sum(const float *b, const ws_merge_operand *ops, size_t m, size_t n, int base_first, float *out) {
    if (ws_merge_avx2_available()) avx2_weighted_sum(b, ops, m, n, base_first, out);
    else scalar_weighted_sum(b, ops, m, n, base_first, out);
}

size_t ws_merge_bin_scan(const float *x, const float *b, size_t n, uint32_t high, uint16_t *low) {
    if (ws_merge_avx2_available()) return avx2_bin_scan(x, b, n, high, low);
    return scalar_bin_scan(x, b, n, high, low);
}

void ws_merge_keep_ties(const float *x, const float *b, size_t n, ws_merge_tie_bound lower, ws_merge_tie_bound upper,
                        float factor, int scaled, float *out) {
    if (ws_merge_avx2_available()) {
        avx2_keep_ties(x, b, n, &lower, &upper, factor, scaled, out);
        return;
    }
    int64_t lo_ord = 0, hi_ord = 0;
    scalar_keep_ties(x, b, 0, n, &lower, &upper, &lo_ord, &hi_ord, factor, scaled, out);
}

void ws_merge_random_l1(const float *x, const float *b, size_t n, uint32_t k0, uint32_t k1, int64_t start, uint32_t limit,
                        double sums[2]) {
    if (ws_merge_avx2_available()) {
        avx2_random_l1(x, b, n, k0, k1, start, limit, sums);
        return;
    }
    double a[4] = {0, 0, 0, 0}, c[4] = {0, 0, 0, 0};
    scalar_random_l1(x, b, 0, n, k0, k1, start, limit, a, c);
    sums[0] = (a[0] + a[1]) + (a[2] + a[3]);
    sums[1] = (c[0] + c[1]) + (c[2] + c[3]);
}

void ws_merge_sign_elect(const float *b, const ws_merge_operand *ops, size_t m, size_t n, double lambda,
                         int normalize, int elect, float *out) {
    if (ws_merge_avx2_available()) avx2_sign_elect(b, ops, m, n, lambda, normalize, elect, out);
    else scalar_sign_elect(b, ops, m, n, lambda, normalize, elect, out);
}

#else

void ws_merge_weighted_sum(const float *b, const ws_merge_operand *ops, size_t m, size_t n, int base_first, float *out) {
    scalar_weighted_sum(b, ops, m, n, base_first, out);
}

void ws_merge_keep_ties(const float *x, const float *b, size_t n, ws_merge_tie_bound lower, ws_merge_tie_bound upper,
                        float factor, int scaled, float *out) {
    int64_t lo_ord = 0, hi_ord = 0;
    scalar_keep_ties(x, b, 0, n, &lower, &upper, &lo_ord, &hi_ord, factor, scaled, out);
}

void ws_merge_random_l1(const float *x, const float *b, size_t n, uint32_t k0, uint32_t k1, int64_t start, uint32_t limit,
                        double sums[2]) {
    double a[4] = {0, 0, 0, 0}, c[4] = {0, 0, 0, 0};
    scalar_random_l1(x, b, 0, n, k0, k1, start, limit, a, c);
    sums[0] = (a[0] + a[1]) + (a[2] + a[3]);
    sums[1] = (c[0] + c[1]) + (c[2] + c[3]);
}

void ws_merge_force_scalar(int on) { (void)on; }
int ws_merge_avx2_available(void) { return 0; }

size_t ws_merge_bin_scan(const float *x, const float *b, size_t n, uint32_t high, uint16_t *low) {
    return scalar_bin_scan(x, b, n, high, low);
}

void ws_merge_sign_elect(const float *b, const ws_merge_operand *ops, size_t m, size_t n, double lambda,
                         int normalize, int elect, float *out) {
    scalar_sign_elect(b, ops, m, n, lambda, normalize, elect, out);
}

#endif

/* ---- SHA-256 with the x86 SHA extensions (FIPS 180-4 compression, Intel's SHA-NI) ----
 * The state is kept as the two registers the instructions use, ABEF and CDGH. Message words are
 * grouped four at a time, M_g = (W_4g .. W_4g+3); for g >= 4 the schedule
 *   W_t = σ1(W_t-2) + W_t-7 + σ0(W_t-15) + W_t-16
 * is M_g = msg2(msg1(M_g-4, M_g-3) + alignr(M_g-1, M_g-2, 4 bytes), M_g-1), with the last four
 * groups in a ring. Each group is two rnds2 (two rounds each) on W + K. */
static int shani = -1;

int ws_sha256_shani_available(void) {
    if (shani < 0) {
        __builtin_cpu_init();
        shani = (__builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1")) ? 1 : 0;
    }
    return shani == 1;
}

const uint32_t ws_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

__attribute__((target("sha,sse4.1")))
void ws_sha256_compress_shani(uint32_t state[8], const uint8_t *data, size_t blocks) {
    /* big-endian words of the message: byte-swap each 32-bit lane */
    const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);  /* lanes A B C D */
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);  /* lanes E F G H */
    __m128i badc = _mm_shuffle_epi32(dcba, 0xB1);                /* B A D C */
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);                /* H G F E */
    __m128i abef = _mm_alignr_epi8(badc, efgh, 8);               /* F E B A: ABEF as the instructions want */
    __m128i cdgh = _mm_blend_epi16(efgh, badc, 0xF0);            /* H G D C: CDGH */
    for (size_t blk = 0; blk < blocks; blk++) {
        const uint8_t *p = data + 64 * blk;
        __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i m[4];
        for (int g = 0; g < 16; g++) {
            __m128i cur;
            if (g < 4) {
                cur = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), swap);
            } else {
                __m128i s = _mm_sha256msg1_epu32(m[g & 3], m[(g + 1) & 3]);
                s = _mm_add_epi32(s, _mm_alignr_epi8(m[(g + 3) & 3], m[(g + 2) & 3], 4));
                cur = _mm_sha256msg2_epu32(s, m[(g + 3) & 3]);
            }
            m[g & 3] = cur;
            __m128i wk = _mm_add_epi32(cur, _mm_loadu_si128((const __m128i *)&ws_sha256_k[4 * g]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);           /* rounds 4g, 4g+1: new ABEF in cdgh */
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));  /* rounds 4g+2, 4g+3 */
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);  /* A B E F */
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);  /* G H C D */
    dcba = _mm_blend_epi16(feba, dchg, 0xF0);      /* A B C D */
    hgfe = _mm_alignr_epi8(dchg, feba, 8);         /* E F G H */
    _mm_storeu_si128((__m128i *)&state[0], dcba);
    _mm_storeu_si128((__m128i *)&state[4], hgfe);
}
