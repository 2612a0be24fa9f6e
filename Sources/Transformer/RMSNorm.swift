import Foundation

// RMSNorm (Llama family), in Float32 like Hugging Face's LlamaRMSNorm.
//
// x: (N, C), weight: (C)  ->  out: (N, C), rstd: (N) cached for the backward pass
// out[n, c] = weight[c] * x[n, c] * rstd[n],   rstd[n] = 1 / sqrt(mean_c x[n, c]^2 + eps)

func rmsNormForward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>?,
                    x: UnsafePointer<Float>, weight: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
    for n in 0..<N {
        let xr = x + n * C, o = out + n * C
        var ss: Float = 0
        for c in 0..<C { ss += xr[c] * xr[c] }
        let r = 1 / (ss / Float(C) + eps).squareRoot()
        rstd?[n] = r
        for c in 0..<C { o[c] = weight[c] * (xr[c] * r) }
    }
}
