#ifndef WEIGHTSMITH_CTRANSFORMERKERNELS_H
#define WEIGHTSMITH_CTRANSFORMERKERNELS_H
#include <stdint.h>

// Matrix-vector products with ggml block-quantised weights, for token-by-token decoding.
//
// w: `rows` rows of `cols / 32` blocks each (Q8_0: 34 bytes, Q4_1: 20 bytes per block), the
// byte layout of a GGUF tensor; x: (cols) floats; y: (rows) floats, y[r] = sum_c W[r, c] x[c]
// with W the dequantised weights (Q8_0: d*q; Q4_1: d*q + m). Rows [row_begin, row_end) only, so
// callers can split rows across threads. cols must be a multiple of 32.
// AVX2/FMA/F16C code is chosen at run time; other CPUs take the scalar loop.
void ws_gemv_q8_0(const uint8_t *w, long row_begin, long row_end, long cols, const float *x, float *y);
void ws_gemv_q4_1(const uint8_t *w, long row_begin, long row_end, long cols, const float *x, float *y);
// Reference loops (always scalar), for the tests.
void ws_gemv_q8_0_scalar(const uint8_t *w, long row_begin, long row_end, long cols, const float *x, float *y);
void ws_gemv_q4_1_scalar(const uint8_t *w, long row_begin, long row_end, long cols, const float *x, float *y);

#endif
