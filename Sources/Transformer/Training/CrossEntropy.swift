import Foundation

// Cross-entropy of next-token predictions, over the positions that have a target.
//
// logits: (N, V), targets: (N) ids in 0..<V or -1 (not scored: prompt tokens, padding)
// soft: rows n (with target -1) scored against a distribution p (V probabilities) instead.
// Forward: lse[n] = log sum_v exp(logits[n, v]); returns sum_n (lse[n] - logits[n, target[n]])
// over scored rows, plus sum_v p_v (lse[n] - logits[n, v]) (the cross-entropy H(p, q), which is
// KL(p || q) + H(p)) over soft rows, accumulated in Float64. lse is cached for the backward.
// Backward: dLogits[n, :] = scale * (softmax(logits[n, :]) - onehot(target[n])) for scored rows,
// scale * (softmax - p) for soft rows, 0 for the others; `scale` is 1 / (number of scored tokens)
// for a mean loss. dLogits may alias logits (written in place, row by row).

func crossEntropyForward(lse: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>, targets: [Int32], N: Int, V: Int,
                         soft: [Int: [Float]] = [:]) -> Double {
    var total = 0.0
    for n in 0..<N {
        let row = logits + n * V
        var m = -Float.infinity
        for v in 0..<V { m = max(m, row[v]) }
        // The sum runs over the whole vocabulary (49152 terms for SmolLM2): in Float32 the many
        // small terms added to a sum near 1 each lose half an ulp, biasing lse by ~1e-4.
        // Accumulate in Float64.
        var s = 0.0
        for v in 0..<V { s += Double(exp(row[v] - m)) }
        let l = m + Float(Foundation.log(s))
        lse[n] = l
        let t = Int(targets[n])
        if t >= 0 { total += Double(l - row[t]) }
        if let p = soft[n] {
            for v in 0..<V where p[v] != 0 { total += Double(p[v]) * Double(l - row[v]) }
        }
    }
    return total
}

func crossEntropyBackward(dLogits: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>, lse: UnsafePointer<Float>,
                          targets: [Int32], N: Int, V: Int, scale: Float, soft: [Int: [Float]] = [:]) {
    for n in 0..<N {
        let row = logits + n * V, d = dLogits + n * V
        let t = Int(targets[n])
        if let p = soft[n] {
            let l = lse[n]
            for v in 0..<V { d[v] = scale * (exp(row[v] - l) - p[v]) }
            continue
        }
        guard t >= 0 else {
            for v in 0..<V { d[v] = 0 }
            continue
        }
        let l = lse[n]
        for v in 0..<V { d[v] = scale * exp(row[v] - l) }
        d[t] -= scale
    }
}
