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
