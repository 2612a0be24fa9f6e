import CLinearAlgebra

// Row-major single-precision matrix product through OpenBLAS, private to the Transformer module
// until the shared `matmul` wrapper lands in Tensors.
//
// C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, with leading dimensions of the
// stored (untransposed) matrices.
@inline(__always)
func gemm(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float = 1,
          A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
          beta: Float = 0, C: UnsafeMutablePointer<Float>, ldc: Int) {
    guard M > 0, N > 0 else { return }
    if K == 0 {
        for i in 0..<M { for j in 0..<N { C[i * ldc + j] *= beta } }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(M), Int32(N), Int32(K), alpha, A, Int32(lda), B, Int32(ldb), beta, C, Int32(ldc))
}

/// Naive triple-loop reference of `gemm` (Float64 accumulation), used by the tests.
func gemmNaive(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float = 1,
               A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
               beta: Float = 0, C: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<M {
        for j in 0..<N {
            var s = 0.0
            for k in 0..<K {
                let a = transA ? A[k * lda + i] : A[i * lda + k]
                let b = transB ? B[j * ldb + k] : B[k * ldb + j]
                s += Double(a) * Double(b)
            }
            C[i * ldc + j] = alpha * Float(s) + (beta == 0 ? 0 : beta * C[i * ldc + j])
        }
    }
}
