import Foundation

// Element-wise parts of the MLPs (the matrix products go through `linearForward`).
//
// SwiGLU (Llama): gate, up: (N, I) -> h: (N, I) = silu(gate) * up,  silu(g) = g / (1 + e^-g)
// GELU (GPT-2):   x: (N, I) in place, tanh approximation ("gelu_new") or exact erf.

func swigluForward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let g = gate[i]
        out[i] = g / (1 + exp(-g)) * up[i]
    }
}

func geluForward(_ x: UnsafeMutablePointer<Float>, count: Int, activation: ModelConfig.Activation) {
    switch activation {
    case .geluTanh:
        let k = (2 / Float.pi).squareRoot()
        for i in 0..<count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + tanh(k * (v + 0.044715 * v * v * v)))
        }
    case .gelu:
        for i in 0..<count { let v = x[i]; x[i] = 0.5 * v * (1 + erf(v / 2.0.squareRoot().float)) }
    case .silu:
        for i in 0..<count { let v = x[i]; x[i] = v / (1 + exp(-v)) }
    }
}

private extension Double { var float: Float { Float(self) } }
