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
