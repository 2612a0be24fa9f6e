import Foundation
import Tensors
import XCTest
@testable import Transformer

/// Each layer's Float32 backward against central finite differences of an independent naive
/// Float64 forward, on small shapes. The scalar checked is L = sum(g * f(inputs)) for a random
/// upstream gradient g.
final class LayerGradientTests: XCTestCase {
    var rng = SeededRandom(seed: 7)
    func randn(_ n: Int, _ s: Double = 1) -> [Double] { (0..<n).map { _ in rng.nextNormal() * s } }

    /// Compares analytic gradients (Float32) with Float64 central differences of `f`.
    func check(_ what: String, _ inputs: [[Double]], outCount: Int, f: ([[Double]]) -> [Double],
               analytic: ([[Float]], [Float]) -> [[Float]], tolerance: Double = 2e-4, file: StaticString = #filePath, line: UInt = #line) {
        let g = randn(outCount)
        let grads = analytic(inputs.map { $0.map(Float.init) }, g.map(Float.init))
        for (k, input) in inputs.enumerated() {
            var fd = [Double](repeating: 0, count: input.count)
            for i in 0..<input.count {
                var plus = inputs, minus = inputs
                let h = 1e-6 * max(1, abs(input[i]))
                plus[k][i] += h; minus[k][i] -= h
                let lp = zip(g, f(plus)).reduce(0) { $0 + $1.0 * $1.1 }, lm = zip(g, f(minus)).reduce(0) { $0 + $1.0 * $1.1 }
                fd[i] = (lp - lm) / (2 * h)
            }
            let scale = fd.map(abs).max() ?? 0
            let err = zip(grads[k], fd).map { abs(Double($0.0) - $0.1) }.max() ?? 0
            XCTAssertGreaterThan(scale, 1e-3, "\(what) input \(k): gradient vanishes", file: file, line: line)
            XCTAssertLessThan(err / scale, tolerance, "\(what) input \(k): max |analytic - fd| / max |fd| = \(err / scale)", file: file, line: line)
        }
    }

    func testLinear() {
        let (N, I, O) = (3, 4, 5)
        for layout in [WeightLayout.outIn, .inOut] {
            check("linear \(layout)", [randn(N * I), randn(O * I), randn(O)], outCount: N * O, f: { a in
                var y = [Double](repeating: 0, count: N * O)
                for n in 0..<N { for o in 0..<O {
                    var s = a[2][o]
                    for i in 0..<I { s += a[0][n * I + i] * (layout == .outIn ? a[1][o * I + i] : a[1][i * O + o]) }
                    y[n * O + o] = s
                } }
                return y
            }, analytic: { a, g in
                var dx = [Float](repeating: 0, count: N * I), dW = [Float](repeating: 0, count: O * I), db = [Float](repeating: 0, count: O)
                linearBackward(dx: &dx, dWeight: &dW, dBias: &db, dOut: g, x: a[0], weight: a[1], N: N, I: I, O: O, layout: layout)
                return [dx, dW, db]
            })
        }
    }

    func testRMSNorm() {
        let (N, C, eps) = (3, 6, 1e-5)
        check("rmsnorm", [randn(N * C), randn(C).map { $0 + 1 }], outCount: N * C, f: { a in
            var y = [Double](repeating: 0, count: N * C)
            for n in 0..<N {
                let ms = (0..<C).reduce(0.0) { $0 + a[0][n * C + $1] * a[0][n * C + $1] } / Double(C)
                for c in 0..<C { y[n * C + c] = a[1][c] * a[0][n * C + c] / (ms + eps).squareRoot() }
            }
            return y
        }, analytic: { a, g in
            var out = [Float](repeating: 0, count: N * C), rstd = [Float](repeating: 0, count: N)
            rmsNormForward(out: &out, rstd: &rstd, x: a[0], weight: a[1], N: N, C: C, eps: Float(eps))
            var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C)
            rmsNormBackward(dx: &dx, dWeight: &dw, dOut: g, x: a[0], weight: a[1], rstd: rstd, N: N, C: C)
            return [dx, dw]
        })
    }

    func testLayerNorm() {
        let (N, C, eps) = (3, 6, 1e-5)
        check("layernorm", [randn(N * C), randn(C).map { $0 + 1 }, randn(C)], outCount: N * C, f: { a in
            var y = [Double](repeating: 0, count: N * C)
            for n in 0..<N {
                let row = Array(a[0][n * C..<(n + 1) * C])
                let m = row.reduce(0, +) / Double(C)
                let v = row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(C)
                for c in 0..<C { y[n * C + c] = (row[c] - m) / (v + eps).squareRoot() * a[1][c] + a[2][c] }
            }
            return y
        }, analytic: { a, g in
            var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = [Float](repeating: 0, count: N)
            layerNormForward(out: &out, mean: &mean, rstd: &rstd, x: a[0], weight: a[1], bias: a[2], N: N, C: C, eps: Float(eps))
            var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C), db = [Float](repeating: 0, count: C)
            layerNormBackward(dx: &dx, dWeight: &dw, dBias: &db, dOut: g, x: a[0], weight: a[1], mean: mean, rstd: rstd, N: N, C: C)
            return [dx, dw, db]
        })
    }

    func testRoPE() {
        let (N, H, D) = (4, 2, 6)
        let inv = ropeInverseFrequencies(headDim: D, theta: 10000, scaling: nil)
        let positions: [Int32] = [0, 3, 1, 7]
        check("rope", [randn(N * H * D)], outCount: N * H * D, f: { a in
            var y = a[0]
            for n in 0..<N { for h in 0..<H { for i in 0..<D / 2 {
                let ang = Double(positions[n]) * Double(inv[i]), o = (n * H + h) * D
                y[o + i] = a[0][o + i] * cos(ang) - a[0][o + i + D / 2] * sin(ang)
                y[o + i + D / 2] = a[0][o + i + D / 2] * cos(ang) + a[0][o + i] * sin(ang)
            } } }
            return y
        }, analytic: { _, g in
            var d = g
            ropeBackward(dx: &d, positions: positions, heads: H, D: D, invFreq: inv)
            return [d]
        })
    }

    func testGroupedQueryAttention() {
        let (T, H, KV, D) = (5, 4, 2, 3)
        check("attention", [randn(T * H * D), randn(T * KV * D), randn(T * KV * D)], outCount: T * H * D, f: { a in
            var y = [Double](repeating: 0, count: T * H * D)
            for h in 0..<H {
                let kv = h / (H / KV)
                for t in 0..<T {
                    var s = (0...t).map { u in (0..<D).reduce(0.0) { $0 + a[0][(t * H + h) * D + $1] * a[1][(u * KV + kv) * D + $1] } / Double(D).squareRoot() }
                    let m = s.max()!
                    s = s.map { exp($0 - m) }
                    let z = s.reduce(0, +)
                    for d in 0..<D { y[(t * H + h) * D + d] = (0...t).reduce(0.0) { $0 + s[$1] / z * a[2][($1 * KV + kv) * D + d] } }
                }
            }
            return y
        }, analytic: { a, g in
            var out = [Float](repeating: 0, count: T * H * D), probs = [Float](repeating: 0, count: H * T * T)
            attentionForward(out: &out, probs: &probs, q: a[0], keys: a[1], values: a[2], T: T, start: 0, H: H, KV: KV, D: D)
            var dq = [Float](repeating: 0, count: T * H * D), dk = [Float](repeating: 0, count: T * KV * D), dv = dk
            attentionBackward(dq: &dq, dk: &dk, dv: &dv, dOut: g, q: a[0], keys: a[1], values: a[2], probs: probs, T: T, H: H, KV: KV, D: D)
            return [dq, dk, dv]
        })
    }

    func testSwiGLU() {
        let n = 12
        check("swiglu", [randn(n, 2), randn(n)], outCount: n, f: { a in
            (0..<n).map { a[0][$0] / (1 + exp(-a[0][$0])) * a[1][$0] }
        }, analytic: { a, g in
            var dg = [Float](repeating: 0, count: n), du = dg
            swigluBackward(dGate: &dg, dUp: &du, dOut: g, gate: a[0], up: a[1], count: n)
            return [dg, du]
        })
    }

    func testActivations() {
        let n = 12
        let refs: [(ModelConfig.Activation, (Double) -> Double)] = [
            (.geluTanh, { v in 0.5 * v * (1 + tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v))) }),
            (.gelu, { v in 0.5 * v * (1 + erf(v / 2.0.squareRoot())) }),
            (.silu, { v in v / (1 + exp(-v)) }),
        ]
        for (act, ref) in refs {
            check("\(act)", [randn(n, 2)], outCount: n, f: { a in a[0].map(ref) }, analytic: { a, g in
                var d = [Float](repeating: 0, count: n)
                geluBackward(dx: &d, dOut: g, x: a[0], count: n, activation: act)
                return [d]
            })
        }
    }

    func testEmbedding() {
        let (V, C) = (5, 3)
        let tokens: [Int32] = [1, 4, 1, 0]
        check("embedding", [randn(V * C)], outCount: tokens.count * C, f: { a in
            tokens.flatMap { t in (0..<C).map { a[0][Int(t) * C + $0] } }
        }, analytic: { _, g in
            var d = [Float](repeating: 0, count: V * C)
            embeddingBackward(dTable: &d, dOut: g, tokens: tokens, C: C)
            // Row 2 and 3 are never used: their FD gradient is 0 too.
            return [d]
        })
    }

    /// Hard targets beside soft ones (rows scored against a distribution): value and gradient.
    func testSoftCrossEntropy() {
        let (N, V) = (4, 7)
        let targets: [Int32] = [3, -1, -1, -1]
        var p1 = randn(V).map { Float(exp($0)) }, p3 = [Float](repeating: 0, count: V)
        let z = p1.reduce(0, +)
        p1 = p1.map { $0 / z }
        p3[2] = 0.25; p3[5] = 0.75
        let soft: [Int: [Float]] = [1: p1, 3: p3]
        let logits = randn(N * V, 2)
        func reference(_ a: [Double]) -> Double {
            var s = 0.0
            for n in 0..<N {
                let row = Array(a[n * V..<(n + 1) * V]), m = row.max()!, lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
                if targets[n] >= 0 { s += lse - row[Int(targets[n])] }
                if let p = soft[n] { for v in 0..<V { s += Double(p[v]) * (lse - row[v]) } }
            }
            return s
        }
        var lse = [Float](repeating: 0, count: N)
        let value = crossEntropyForward(lse: &lse, logits: logits.map(Float.init), targets: targets, N: N, V: V, soft: soft)
        XCTAssertEqual(value, reference(logits), accuracy: 1e-5 * abs(reference(logits)))
        check("soft cross-entropy", [logits], outCount: 1, f: { a in [reference(a[0]) / 2] }, analytic: { a, g in
            var lse = [Float](repeating: 0, count: N), d = [Float](repeating: 0, count: N * V)
            _ = crossEntropyForward(lse: &lse, logits: a[0], targets: targets, N: N, V: V, soft: soft)
            crossEntropyBackward(dLogits: &d, logits: a[0], lse: lse, targets: targets, N: N, V: V, scale: g[0] / 2, soft: soft)
            return [d]
        })
    }

    func testCrossEntropy() {
        let (N, V) = (4, 7)
        let targets: [Int32] = [3, -1, 0, 6]
        let logits = randn(N * V, 2)
        // L itself is scalar: check with g = [1] by wrapping as a 1-output function.
        check("cross-entropy", [logits], outCount: 1, f: { a in
            var s = 0.0
            for n in 0..<N where targets[n] >= 0 {
                let row = Array(a[0][n * V..<(n + 1) * V]), m = row.max()!
                s += m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[Int(targets[n])]
            }
            return [s / 3]
        }, analytic: { a, g in
            var lse = [Float](repeating: 0, count: N), d = [Float](repeating: 0, count: N * V)
            _ = crossEntropyForward(lse: &lse, logits: a[0], targets: targets, N: N, V: V)
            crossEntropyBackward(dLogits: &d, logits: a[0], lse: lse, targets: targets, N: N, V: V, scale: g[0] / 3)
            return [d]
        })
    }
}
