import Foundation

// Causal grouped-query attention for one sequence, over a key/value cache.
//
// q: (T, H, D) rows of stride H*D, the queries at positions start..<start+T
// keys, values: (S, KV, D) rows of stride KV*D with S = start + T (cache + new), KV divides H
// -> out: (T, H, D); probs: (H, T, S) softmax weights, cached when given (for the backward pass)
// Query head h reads key/value head h / (H / KV). Query t sees keys 0...start+t.

func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                      q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      T: Int, start: Int, H: Int, KV: Int, D: Int) {
    let S = start + T
    let group = H / KV
    let scale = 1 / Float(D).squareRoot()
    let scores = UnsafeMutablePointer<Float>.allocate(capacity: T * S)
    defer { scores.deallocate() }
    for h in 0..<H {
        let kvh = h / group
        // scores (T, S) = scale * q_h (T, D) k_kvh^T (D, S)
        gemm(transA: false, transB: true, M: T, N: S, K: D, alpha: scale, A: q + h * D, lda: H * D,
             B: keys + kvh * D, ldb: KV * D, C: scores, ldc: S)
        for t in 0..<T {
            let row = scores + t * S
            let visible = start + t + 1
            var m = -Float.infinity
            for s in 0..<visible { m = max(m, row[s]) }
            var sum: Float = 0
            for s in 0..<visible { let e = exp(row[s] - m); row[s] = e; sum += e }
            let inv = 1 / sum
            for s in 0..<visible { row[s] *= inv }
            for s in visible..<S { row[s] = 0 }
        }
        if let p = probs { (p + h * T * S).update(from: scores, count: T * S) }
        // out_h (T, D) = P (T, S) v_kvh (S, D)
        gemm(transA: false, transB: false, M: T, N: D, K: S, A: scores, lda: S, B: values + kvh * D, ldb: KV * D,
             C: out + h * D, ldc: H * D)
    }
}

// Backward for one sequence from position 0 (training: no cache), S = T.
// dOut: (T, H, D); q: (T, H, D), keys, values: (T, KV, D), probs: (H, T, T) from the forward.
// Per head: dP = dOut_h V^T, dV += P^T dOut_h, dScores = P * (dP - rowsum(P * dP)) * scale,
// dQ_h += dScores K, dK += dScores^T Q_h. Heads sharing a key/value head accumulate into it.
// dq, dk, dv accumulate (+=).

func attentionBackward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                       dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                       probs: UnsafePointer<Float>, T: Int, H: Int, KV: Int, D: Int) {
    let group = H / KV
    let scale = 1 / Float(D).squareRoot()
    let dP = UnsafeMutablePointer<Float>.allocate(capacity: T * T)
    defer { dP.deallocate() }
    for h in 0..<H {
        let kvh = h / group
        let P = probs + h * T * T
        // dP (T, T) = dOut_h (T, D) V^T (D, T)
        gemm(transA: false, transB: true, M: T, N: T, K: D, A: dOut + h * D, lda: H * D, B: values + kvh * D, ldb: KV * D, C: dP, ldc: T)
        // dV (T, D) += P^T (T, T) dOut_h (T, D)
        gemm(transA: true, transB: false, M: T, N: D, K: T, A: P, lda: T, B: dOut + h * D, ldb: H * D, beta: 1, C: dv + kvh * D, ldc: KV * D)
        for t in 0..<T {
            let p = P + t * T, d = dP + t * T
            var dot: Float = 0
            for s in 0...t { dot += p[s] * d[s] }
            for s in 0...t { d[s] = p[s] * (d[s] - dot) * scale }
            for s in (t + 1)..<T { d[s] = 0 }
        }
        // dQ_h (T, D) += dS (T, T) K (T, D);  dK (T, D) += dS^T Q_h
        gemm(transA: false, transB: false, M: T, N: D, K: T, A: dP, lda: T, B: keys + kvh * D, ldb: KV * D, beta: 1, C: dq + h * D, ldc: H * D)
        gemm(transA: true, transB: false, M: T, N: D, K: T, A: dP, lda: T, B: q + h * D, ldb: H * D, beta: 1, C: dk + kvh * D, ldc: KV * D)
    }
}
