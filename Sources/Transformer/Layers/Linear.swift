// Linear layer through sgemm.
//
// x: (N, I), weight: (O, I) for `.outIn` (torch.nn.Linear) or (I, O) for `.inOut` (GPT-2's Conv1D),
// bias: (O)?  ->  out: (N, O) = x W^T + b  (or x W + b)
// Backward (next issue): dX = dOut W (or dOut W^T), dW += dOut^T x (or x^T dOut), db += sum_n dOut.

public enum WeightLayout: Sendable { case outIn, inOut }

func linearForward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                   bias: UnsafePointer<Float>?, N: Int, I: Int, O: Int, layout: WeightLayout) {
    if let b = bias {
        for n in 0..<N { (out + n * O).update(from: b, count: O) }
    }
    switch layout {
    case .outIn:
        gemm(transA: false, transB: true, M: N, N: O, K: I, A: x, lda: I, B: weight, ldb: I,
             beta: bias == nil ? 0 : 1, C: out, ldc: O)
    case .inOut:
        gemm(transA: false, transB: false, M: N, N: O, K: I, A: x, lda: I, B: weight, ldb: O,
             beta: bias == nil ? 0 : 1, C: out, ldc: O)
    }
}

// Backward. dOut: (N, O), x: (N, I) from the forward.
//   .outIn: dx += dOut W, dW (O, I) += dOut^T x;  .inOut: dx += dOut W^T, dW (I, O) += x^T dOut
//   dBias += sum_n dOut[n, :]
// Each output is optional: frozen weights skip their product, the lowest trainable layer skips dx.

func linearBackward(dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
                    dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                    N: Int, I: Int, O: Int, layout: WeightLayout) {
    if let dx {
        switch layout {
        case .outIn: gemm(transA: false, transB: false, M: N, N: I, K: O, A: dOut, lda: O, B: weight, ldb: I, beta: 1, C: dx, ldc: I)
        case .inOut: gemm(transA: false, transB: true, M: N, N: I, K: O, A: dOut, lda: O, B: weight, ldb: O, beta: 1, C: dx, ldc: I)
        }
    }
    if let dW = dWeight {
        switch layout {
        case .outIn: gemm(transA: true, transB: false, M: O, N: I, K: N, A: dOut, lda: O, B: x, ldb: I, beta: 1, C: dW, ldc: I)
        case .inOut: gemm(transA: true, transB: false, M: I, N: O, K: N, A: x, lda: I, B: dOut, ldb: O, beta: 1, C: dW, ldc: O)
        }
    }
    if let db = dBias {
        for n in 0..<N { let g = dOut + n * O; for o in 0..<O { db[o] += g[o] } }
    }
}
