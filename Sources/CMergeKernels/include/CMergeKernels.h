#ifndef WEIGHTSMITH_CMERGEKERNELS_H
#define WEIGHTSMITH_CMERGEKERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Inner loops of the streamed TIES/DARE kernel (Merging.TaskArithmeticStream), vectorised with
 * AVX2 when the CPU has it (checked once at run time; no build flags needed). The vector and the
 * portable scalar paths give bit-identical results: Float32 differences and masks, Float64
 * sums in model order, no fused multiply-add. */

/* Tests only: nonzero disables the AVX2 paths, zero restores them. */
void ws_merge_force_scalar(int on);
int ws_merge_avx2_available(void);

/* Writes the low 16 bits of |x[j] - b[j]|'s bit pattern, in increasing j, for every j whose
 * high 16 bits equal `high`; returns how many were written (at most n). */
size_t ws_merge_bin_scan(const float *x, const float *b, size_t n, uint32_t high, uint16_t *low);

/* One side of a kept magnitude range (Merging.MagnitudeBound) within one block: absent (open), or
 * the bit pattern `bits` (<= 0x7FFFFFFF) with the ties at it kept when their ordinal (in index
 * order, counted from the block's start) lies in [from, to). */
typedef struct {
    int32_t present;
    uint32_t bits;
    int64_t from, to;
} ws_merge_tie_bound;

/* Magnitude pruning with ties at the bounds: out[j] = e (or e * factor when scaled != 0) where
 * e = x[j] - b[j] (Float32) is kept, +0 elsewhere. Kept: bits(|e|) above the lower bound's (or
 * at it with a kept ordinal) and below the upper bound's (or at it with a kept ordinal); an
 * element at both bounds' bits needs both ordinals kept, and advances both. */
void ws_merge_keep_ties(const float *x, const float *b, size_t n, ws_merge_tie_bound lower, ws_merge_tie_bound upper,
                        float factor, int scaled, float *out);

/* How one model's delta d_j enters the sign election (all d_j then widened to Float64). */
enum {
    WS_MERGE_RAW = 0,         /* d = Double(x) - Double(b): an unpruned task vector */
    WS_MERGE_DELTA = 1,       /* d = Double(x): x already holds the pruned Float32 delta */
    WS_MERGE_BITS = 2,        /* e = x - b (Float32), kept where lo <= bits(|e|) <= hi, else +0 */
    WS_MERGE_BITS_SCALED = 3, /* as BITS with e * factor (Float32) for the kept elements */
    WS_MERGE_ZERO = 4,        /* d = +0 */
    WS_MERGE_RANDOM = 5,      /* e = x - b (Float32), kept where ws_merge_bits32(k0, k1, start + j) <= limit */
    WS_MERGE_RANDOM_SCALED = 6 /* as RANDOM with e * factor (Float32) for the kept elements */
};

typedef struct {
    const float *x;  /* the model's block (RAW, BITS*) or its pruned delta (DELTA); NULL for ZERO */
    double weight;
    uint32_t lo, hi; /* BITS*: inclusive range of |e| bit patterns, both <= 0x7FFFFFFF */
    float factor;    /* BITS_SCALED, RANDOM_SCALED */
    int32_t kind;
    uint32_t k0, k1; /* RANDOM*: the stream key (Merging.MergeRandom) */
    uint32_t limit;  /* RANDOM*: largest kept random value */
    int64_t start;   /* RANDOM*: the tensor index of element 0 (its low 32 bits enter the hash) */
} ws_merge_operand;

/* The 32 random bits of element `index` of a (tensor, model) stream (Merging.MergeRandom):
 * mix(mix(index ^ k0) ^ k1) with mix(x) = lowbias32 (x ^= x >> 16; x *= 0x7FEB352D;
 * x ^= x >> 15; x *= 0x846CA68B; x ^= x >> 16). */
uint32_t ws_merge_bits32(uint32_t k0, uint32_t k1, uint32_t index);

/* The L1 norms of e = x - b over all n elements and over those DARE keeps, as Float64 sums in
 * four lanes (lane j mod 4, elements in increasing j; result (l0 + l1) + (l2 + l3)): sums[0] all,
 * sums[1] kept. */
void ws_merge_random_l1(const float *x, const float *b, size_t n, uint32_t k0, uint32_t k1, int64_t start, uint32_t limit,
                        double sums[2]);

/* TIES sign election over n elements (elect != 0):
 *   S = sum_i w_i d_i;  agree_i = S >= 0 ? w_i d_i > 0 : w_i d_i < 0;
 * or, with elect == 0, the disjoint mean of Localize-and-Stitch: agree_i = w_i d_i != 0;
 *   M = sum_i (agree_i ? w_i d_i : 0);  D = sum_i (agree_i ? w_i : 0);
 *   out = Float(Double(b) + lambda * (normalize ? M / (D == 0 ? 1 : D) : M)),
 * every sum in Float64 starting from +0 and taken in model order. */
void ws_merge_sign_elect(const float *b, const ws_merge_operand *ops, size_t m, size_t n, double lambda,
                         int normalize, int elect, float *out);

/* Weighted sums over n elements, every sum in Float64 taken in model order (w_i = ops[i].weight):
 *   base_first != 0: out = Float(((Double(b) + w_0 d_0) + w_1 d_1) + ...)   (task arithmetic
 *                    with pruned vectors, as mergekit's running sum from the base);
 *   base_first == 0: out = Float(Double(b) + ((w_0 d_0 + w_1 d_1) + ...)). */
void ws_merge_weighted_sum(const float *b, const ws_merge_operand *ops, size_t m, size_t n, int base_first, float *out);

/* SHA-256 compression of `blocks` 64-byte blocks into state[8] (A..H), with the x86 SHA
 * extensions; call only when ws_sha256_shani_available() (run-time CPU check). */
int ws_sha256_shani_available(void);
void ws_sha256_compress_shani(uint32_t state[8], const uint8_t *data, size_t blocks);
/* The 64 round constants K of SHA-256 (FIPS 180-4, §4.2.2), shared with the portable
 * compression in Swift (SHA256.swift). */
extern const uint32_t ws_sha256_k[64];

#endif
