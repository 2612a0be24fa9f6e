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
