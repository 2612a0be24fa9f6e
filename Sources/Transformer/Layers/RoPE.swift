import Foundation

// Rotary position embedding in Hugging Face's "rotate half" layout.
//
// x: (N, heads, D) in place, positions: (N)
// for i < D/2, angle = position * invFreq[i]:
//   x[i]       <- x[i] cos - x[i + D/2] sin
//   x[i + D/2] <- x[i + D/2] cos + x[i] sin
// Backward (next issue) is the same rotation by -angle.

/// Inverse frequencies theta^(-2i/D), with Llama 3's scaling when given (as transformers'
/// `_compute_llama3_parameters`: long wavelengths divided by `factor`, short ones kept, a smooth
/// blend between). Computed in Float32 like transformers.
public func ropeInverseFrequencies(headDim D: Int, theta: Double, scaling: ModelConfig.Llama3RopeScaling?) -> [Float] {
    var inv = (0..<D / 2).map { i in 1 / Float(pow(theta, Double(Float(2 * i) / Float(D)))) }
    if let s = scaling {
        let lowWavelen = Float(s.originalMaxPositions) / Float(s.lowFreqFactor)
        let highWavelen = Float(s.originalMaxPositions) / Float(s.highFreqFactor)
        inv = inv.map { f in
            let wavelen = 2 * Float.pi / f
            if wavelen < highWavelen { return f }
            if wavelen > lowWavelen { return f / Float(s.factor) }
            let smooth = (Float(s.originalMaxPositions) / wavelen - Float(s.lowFreqFactor)) / Float(s.highFreqFactor - s.lowFreqFactor)
            return (1 - smooth) * f / Float(s.factor) + smooth * f
        }
    }
    return inv
}

func ropeForward(x: UnsafeMutablePointer<Float>, positions: [Int32], heads: Int, D: Int, invFreq: [Float]) {
    let half = D / 2
    var cosT = [Float](repeating: 0, count: half), sinT = [Float](repeating: 0, count: half)
    for (n, p) in positions.enumerated() {
        for i in 0..<half {
            let a = Float(p) * invFreq[i]
            cosT[i] = cos(a); sinT[i] = sin(a)
        }
        for h in 0..<heads {
            let v = x + (n * heads + h) * D
            for i in 0..<half {
                let x1 = v[i], x2 = v[i + half]
                v[i] = x1 * cosT[i] - x2 * sinT[i]
                v[i + half] = x2 * cosT[i] + x1 * sinT[i]
            }
        }
    }
}

// Backward: the rotation is orthogonal, so dx = R^T dOut, the rotation by -angle, in place on
// the gradient. dx: (N, heads, D).
func ropeBackward(dx: UnsafeMutablePointer<Float>, positions: [Int32], heads: Int, D: Int, invFreq: [Float]) {
    let half = D / 2
    var cosT = [Float](repeating: 0, count: half), sinT = [Float](repeating: 0, count: half)
    for (n, p) in positions.enumerated() {
        for i in 0..<half {
            let a = Float(p) * invFreq[i]
            cosT[i] = cos(a); sinT[i] = sin(a)
        }
        for h in 0..<heads {
            let v = dx + (n * heads + h) * D
            for i in 0..<half {
                let g1 = v[i], g2 = v[i + half]
                v[i] = g1 * cosT[i] + g2 * sinT[i]
                v[i + half] = g2 * cosT[i] - g1 * sinT[i]
            }
        }
    }
}
