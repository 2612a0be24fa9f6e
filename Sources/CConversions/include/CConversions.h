#ifndef WEIGHTSMITH_CCONVERSIONS_H
#define WEIGHTSMITH_CCONVERSIONS_H

#include <stddef.h>
#include <stdint.h>

/* Bulk conversions between 16-bit floats and Float32, vectorised with F16C/AVX2 when the CPU
 * has them (checked once at run time; no build flags needed). Sources and destinations may be
 * unaligned and must not overlap. Results are bit-identical to the scalar definitions:
 *   f16 -> f32, bf16 -> f32: exact;
 *   f32 -> f16: IEEE round to nearest even, overflow to infinity, NaN stays NaN (quiet);
 *   f32 -> bf16: round to nearest even, NaN -> (bits >> 16) | 0x0040.
 * ws_*_available() say whether the fast path exists; when it does not, the functions below
 * still work through portable scalar C. */

int ws_f16c_available(void);
int ws_avx2_available(void);
/* Tests only: nonzero disables the vector paths (to check the scalar C code), zero restores them. */
void ws_force_scalar(int on);

void ws_f16_to_f32(const void *src, float *dst, size_t count);
void ws_f32_to_f16(const float *src, void *dst, size_t count);
void ws_bf16_to_f32(const void *src, float *dst, size_t count);
void ws_f32_to_bf16(const float *src, void *dst, size_t count);

/* Non-finite values (NaN or +-infinity: every exponent bit set) among `count` elements, counted
 * with AVX2 when the CPU has it (same result as the scalar loop). The 16-bit variants read raw
 * little-endian F16 or BF16 bits (unaligned allowed), so a stored tensor is checked without
 * decoding. `ws_copy_f32_count_nonfinite` copies `count` floats (no overlap) and counts in the
 * same pass: the check is fused into a copy the caller makes anyway. */
size_t ws_count_nonfinite_f32(const float *src, size_t count);
size_t ws_count_nonfinite_f16(const void *src, size_t count);
size_t ws_count_nonfinite_bf16(const void *src, size_t count);
size_t ws_copy_f32_count_nonfinite(float *dst, const float *src, size_t count);

#endif
