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

/* How one model's delta d_j enters the sign election (all d_j then widened to Float64). */
enum {
    WS_MERGE_RAW = 0,         /* d = Double(x) - Double(b): an unpruned task vector */
    WS_MERGE_DELTA = 1,       /* d = Double(x): x already holds the pruned Float32 delta */
    WS_MERGE_BITS = 2,        /* e = x - b (Float32), kept where lo <= bits(|e|) <= hi, else +0 */
    WS_MERGE_BITS_SCALED = 3, /* as BITS with e * factor (Float32) for the kept elements */
    WS_MERGE_ZERO = 4         /* d = +0 */
};

typedef struct {
    const float *x;  /* the model's block (RAW, BITS*) or its pruned delta (DELTA); NULL for ZERO */
    double weight;
    uint32_t lo, hi; /* BITS*: inclusive range of |e| bit patterns, both <= 0x7FFFFFFF */
    float factor;    /* BITS_SCALED */
    int32_t kind;
} ws_merge_operand;

/* TIES sign election over n elements:
 *   S = sum_i w_i d_i;  agree_i = S >= 0 ? w_i d_i > 0 : w_i d_i < 0;
 *   M = sum_i (agree_i ? w_i d_i : 0);  D = sum_i (agree_i ? w_i : 0);
 *   out = Float(Double(b) + lambda * (normalize ? M / (D == 0 ? 1 : D) : M)),
 * every sum in Float64 starting from +0 and taken in model order. */
void ws_merge_sign_elect(const float *b, const ws_merge_operand *ops, size_t m, size_t n, double lambda,
                         int normalize, float *out);

#endif
