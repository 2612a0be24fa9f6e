import Foundation

// RMSNorm, in Float32 like Hugging Face's LlamaRMSNorm (offset 0) and GemmaRMSNorm (offset 1,
// the stored weight being w - 1).
//
// x: (N, C), weight: (C)  ->  out: (N, C) (may be x itself), rstd: (N) cached for the backward pass
// out[n, c] = (offset + weight[c]) * x[n, c] * rstd[n],   rstd[n] = 1 / sqrt(mean_c x[n, c]^2 + eps)

func rmsNormForward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>?,
                    x: UnsafePointer<Float>, weight: UnsafePointer<Float>, N: Int, C: Int, eps: Float, offset: Float = 0) {
    for n in 0..<N {
        let xr = x + n * C, o = out + n * C
        var ss: Float = 0
        for c in 0..<C { ss += xr[c] * xr[c] }
        let r = 1 / (ss / Float(C) + eps).squareRoot()
        rstd?[n] = r
        if offset == 0 {
            for c in 0..<C { o[c] = weight[c] * (xr[c] * r) }
        } else {
            for c in 0..<C { o[c] = (offset + weight[c]) * (xr[c] * r) }
        }
    }
}

// Backward. x: (N, C), rstd: (N) from the forward, dOut: (N, C), w = offset + weight
//   dWeight[c] += sum_n dOut[n, c] x[n, c] rstd[n]
//   dx[n, c]   += rstd[n] (w[c] dOut[n, c]) - rstd[n]^3 / C * x[n, c] * sum_c' w[c'] dOut[n, c'] x[n, c']

func rmsNormBackward(dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                     x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>, N: Int, C: Int, offset: Float = 0) {
    if offset != 0 {
        let shifted = (0..<C).map { offset + weight[$0] }
        shifted.withUnsafeBufferPointer {
            rmsNormBackward(dx: dx, dWeight: dWeight, dOut: dOut, x: x, weight: $0.baseAddress!, rstd: rstd, N: N, C: C)
        }
        return
    }
    let w = weight
    for n in 0..<N {
        let xr = x + n * C, g = dOut + n * C, r = rstd[n]
        if let dw = dWeight { for c in 0..<C { dw[c] += g[c] * xr[c] * r } }
        guard let dx else { continue }
        var dot: Float = 0
        for c in 0..<C { dot += w[c] * g[c] * xr[c] }
        let k = r * r * r * dot / Float(C)
        let d = dx + n * C
        for c in 0..<C { d[c] += r * w[c] * g[c] - k * xr[c] }
    }
}
