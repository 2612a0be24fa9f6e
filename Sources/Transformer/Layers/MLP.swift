import Foundation

// Element-wise parts of the MLPs (the matrix products go through `linearForward`).
//
// SwiGLU (Llama): gate, up: (N, I) -> h: (N, I) = silu(gate) * up,  silu(g) = g / (1 + e^-g)
// GELU (GPT-2):   x: (N, I) in place, tanh approximation ("gelu_new") or exact erf.

/// A gated MLP's element-wise part: out = act(gate) * up (SwiGLU for silu, GeGLU for GELU).
func gatedForward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int,
                  activation: ModelConfig.Activation) {
    guard activation != .silu else { return swigluForward(out: out, gate: gate, up: up, count: count) }
    let a = UnsafeMutablePointer<Float>.allocate(capacity: count)
    defer { a.deallocate() }
    a.update(from: gate, count: count)
    geluForward(a, count: count, activation: activation)
    for i in 0..<count { out[i] = a[i] * up[i] }
}

/// Backward of `gatedForward`: dGate += dOut * up * act'(gate), dUp += dOut * act(gate).
func gatedBackward(dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                   gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int, activation: ModelConfig.Activation) {
    guard activation != .silu else { return swigluBackward(dGate: dGate, dUp: dUp, dOut: dOut, gate: gate, up: up, count: count) }
    let a = UnsafeMutablePointer<Float>.allocate(capacity: count), t = UnsafeMutablePointer<Float>.allocate(capacity: count)
    defer { a.deallocate(); t.deallocate() }
    a.update(from: gate, count: count)
    geluForward(a, count: count, activation: activation)
    for i in 0..<count { dUp[i] += dOut[i] * a[i]; t[i] = dOut[i] * up[i] }
    geluBackward(dx: dGate, dOut: t, x: gate, count: count, activation: activation)
}

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

// Backward of the element-wise parts.
// SwiGLU: with s = sigmoid(g): dGate += dOut * up * s (1 + g (1 - s)), dUp += dOut * g s.
func swigluBackward(dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                    gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let g = gate[i], s = 1 / (1 + exp(-g))
        dGate[i] += dOut[i] * up[i] * s * (1 + g * (1 - s))
        dUp?[i] += dOut[i] * g * s
    }
}

/// GELU/SiLU backward: dx += dOut * act'(x), with x the pre-activation (the forward works in
/// place, so the caller keeps a copy of x).
func geluBackward(dx: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, count: Int,
                  activation: ModelConfig.Activation) {
    switch activation {
    case .geluTanh:
        let k = (2 / Float.pi).squareRoot()
        for i in 0..<count {
            let v = x[i], t = tanh(k * (v + 0.044715 * v * v * v))
            dx[i] += dOut[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v))
        }
    case .gelu:
        let invSqrt2 = Float(1 / 2.0.squareRoot()), invSqrt2Pi = Float(1 / (2 * Double.pi).squareRoot())
        for i in 0..<count {
            let v = x[i]
            dx[i] += dOut[i] * (0.5 * (1 + erf(v * invSqrt2)) + v * exp(-0.5 * v * v) * invSqrt2Pi)
        }
    case .silu:
        for i in 0..<count { let v = x[i], s = 1 / (1 + exp(-v)); dx[i] += dOut[i] * s * (1 + v * (1 - s)) }
    }
}
