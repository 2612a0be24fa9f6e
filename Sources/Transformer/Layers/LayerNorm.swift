// LayerNorm (GPT-2), biased variance as in PyTorch.
//
// x: (N, C), weight: (C), bias: (C)  ->  out: (N, C), mean: (N), rstd: (N) cached for backward
// out[n, c] = (x[n, c] - mean[n]) * rstd[n] * weight[c] + bias[c]

func layerNormForward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
                      x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                      N: Int, C: Int, eps: Float) {
    for n in 0..<N {
        let xr = x + n * C, o = out + n * C
        var m: Float = 0
        for c in 0..<C { m += xr[c] }
        m /= Float(C)
        var v: Float = 0
        for c in 0..<C { let d = xr[c] - m; v += d * d }
        v /= Float(C)
        let r = 1 / (v + eps).squareRoot()
        mean?[n] = m
        rstd?[n] = r
        for c in 0..<C { o[c] = (xr[c] - m) * r * weight[c] + bias[c] }
    }
}

// Backward. x: (N, C), mean, rstd: (N) from the forward, dOut: (N, C); with xhat = (x - mean) rstd
// and g = weight * dOut:
//   dWeight += dOut xhat, dBias += dOut,  dx += rstd (g - mean_c g - xhat mean_c(g xhat))

func layerNormBackward(dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
                       dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                       mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, N: Int, C: Int) {
    for n in 0..<N {
        let xr = x + n * C, g = dOut + n * C, m = mean[n], r = rstd[n]
        if let dw = dWeight { for c in 0..<C { dw[c] += g[c] * (xr[c] - m) * r } }
        if let db = dBias { for c in 0..<C { db[c] += g[c] } }
        guard let dx else { continue }
        var sumG: Float = 0, sumGX: Float = 0
        for c in 0..<C { let gw = g[c] * weight[c]; sumG += gw; sumGX += gw * (xr[c] - m) * r }
        sumG /= Float(C); sumGX /= Float(C)
        let d = dx + n * C
        for c in 0..<C { d[c] += r * (g[c] * weight[c] - sumG - (xr[c] - m) * r * sumGX) }
    }
}
