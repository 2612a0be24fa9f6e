import Foundation

// Causal grouped-query attention for one sequence, over a key/value cache.
//
// q: (T, H, D) rows of stride H*D, the queries at positions start..<start+T
// keys, values: (S, KV, D) rows of stride KV*D with S = start + T (cache + new), KV divides H
// -> out: (T, H, D); probs: (H, T, S) softmax weights, cached when given (for the backward pass)
// Query head h reads key/value head h / (H / KV). Query t sees keys 0...start+t, or with a
// window W only start+t-W+1...start+t. Scores are scale·q·k (scale 1/√D by default), soft-capped
// to cap·tanh(score/cap) when `softcap` is given (Gemma 2).

/// The attention options of one layer.
struct AttentionOptions {
    var scale: Float
    var window: Int?
    var softcap: Float?
    init(D: Int, scale: Float? = nil, window: Int? = nil, softcap: Float? = nil) {
        self.scale = scale ?? 1 / Float(D).squareRoot(); self.window = window; self.softcap = softcap
    }
}

func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                      q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      T: Int, start: Int, H: Int, KV: Int, D: Int, options: AttentionOptions? = nil) {
    let S = start + T
    let group = H / KV
    let o = options ?? AttentionOptions(D: D)
    let scale = o.scale
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
            let first = o.window.map { max(0, visible - $0) } ?? 0
            if let cap = o.softcap { for s in first..<visible { row[s] = cap * tanh(row[s] / cap) } }
            var m = -Float.infinity
            for s in first..<visible { m = max(m, row[s]) }
            var sum: Float = 0
            for s in first..<visible { let e = exp(row[s] - m); row[s] = e; sum += e }
            let inv = 1 / sum
            for s in 0..<first { row[s] = 0 }
            for s in first..<visible { row[s] *= inv }
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
// dq, dk, dv accumulate (+=). Masked keys (causal or outside the window) have P = 0, so their
// dScores vanish; with a soft-cap, dScores also carry the cap's derivative 1 - tanh²(raw/cap),
// the raw scores recomputed from q and k.

func attentionBackward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                       dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                       probs: UnsafePointer<Float>, T: Int, H: Int, KV: Int, D: Int, options: AttentionOptions? = nil) {
    let group = H / KV
    let o = options ?? AttentionOptions(D: D)
    let scale = o.scale
    let dP = UnsafeMutablePointer<Float>.allocate(capacity: T * T)
    let raw = UnsafeMutablePointer<Float>.allocate(capacity: o.softcap == nil ? 1 : T * T)
    defer { dP.deallocate(); raw.deallocate() }
    for h in 0..<H {
        let kvh = h / group
        let P = probs + h * T * T
        // dP (T, T) = dOut_h (T, D) V^T (D, T)
        gemm(transA: false, transB: true, M: T, N: T, K: D, A: dOut + h * D, lda: H * D, B: values + kvh * D, ldb: KV * D, C: dP, ldc: T)
        // dV (T, D) += P^T (T, T) dOut_h (T, D)
        gemm(transA: true, transB: false, M: T, N: D, K: T, A: P, lda: T, B: dOut + h * D, ldb: H * D, beta: 1, C: dv + kvh * D, ldc: KV * D)
        if o.softcap != nil {
            gemm(transA: false, transB: true, M: T, N: T, K: D, alpha: scale, A: q + h * D, lda: H * D,
                 B: keys + kvh * D, ldb: KV * D, C: raw, ldc: T)
        }
        for t in 0..<T {
            let p = P + t * T, d = dP + t * T
            var dot: Float = 0
            for s in 0...t { dot += p[s] * d[s] }
            if let cap = o.softcap {
                let r = raw + t * T
                for s in 0...t { let th = tanh(r[s] / cap); d[s] = p[s] * (d[s] - dot) * (1 - th * th) * scale }
            } else {
                for s in 0...t { d[s] = p[s] * (d[s] - dot) * scale }
            }
            for s in (t + 1)..<T { d[s] = 0 }
        }
        // dQ_h (T, D) += dS (T, T) K (T, D);  dK (T, D) += dS^T Q_h
        gemm(transA: false, transB: false, M: T, N: D, K: T, A: dP, lda: T, B: keys + kvh * D, ldb: KV * D, beta: 1, C: dq + h * D, ldc: H * D)
        gemm(transA: true, transB: false, M: T, N: D, K: T, A: dP, lda: T, B: q + h * D, ldb: H * D, beta: 1, C: dk + kvh * D, ldc: KV * D)
    }
}
