import Tensors

// Row-major single-precision matrix product: the Transformer's spelling of `Tensors.sgemm`
// (one implementation, including its k == 0 rule: beta == 0 clears C, NaNs too).
//
// C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, with leading dimensions of the
// stored (untransposed) matrices.
@inline(__always)
func gemm(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float = 1,
          A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
          beta: Float = 0, C: UnsafeMutablePointer<Float>, ldc: Int) {
    sgemm(transposeA: transA, transposeB: transB, m: M, n: N, k: K, alpha: alpha,
          a: A, lda: lda, b: B, ldb: ldb, beta: beta, c: C, ldc: ldc)
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
