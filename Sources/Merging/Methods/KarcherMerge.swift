import Foundation

/// `karcher`: the Riemannian (Karcher) mean of the inputs' directions on the unit sphere,
/// scaled by their mean norm (mergekit `karcher.py`).
///
/// Directions `u_i = x_i/‖x_i‖` (inputs with norm ≤ tol do not vote), fixed-point iteration
/// `u ← exp_u(Σ a_i log_u(u_i))` for at most `max_iter` steps or until the tangent step is below
/// `tol`, result `(Σ α_i ‖x_i‖)·u`. All iterates are linear combinations of the inputs, so the
/// iteration runs on their Gram matrix and the output is written in one pass.
/// Differences from mergekit: per-model `weight` is honoured (α_i = w_i/Σw; mergekit ignores
/// weights and always uses 1/K); a base model is an ordinary input, as in mergekit.
public struct KarcherMerge: MergeMethod {
    public struct Global { public var maxIter: Int; public var tol: Double }
    public init() {}
    public let name = "karcher"
    public let reference = "Karcher 1977; Grove & Karcher 1973 (Riemannian centre of mass)"
    public let summary = "Karcher mean of the inputs on the sphere, scaled by their mean norm"
    public let baseRole = BaseRole.plainInput
    public let modelCount = 1...Int.max
    public var parameters: [ParameterSpec] {
        [.number("weight", .perModel, default: 1, "weight of the model (mergekit ignores weights; default equal)"),
         .number("max_iter", .global, default: 10, "iterations", range: .count(1, 100_000)),
         .number("tol", .global, default: 1e-5, "convergence tolerance", range: .positive)]
    }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        let g = Global(maxIter: Int(try p.number("max_iter")), tol: try p.number("tol"))
        let w = try p.numbers("weight", fallback: 1)
        let total = w.reduce(0, +)
        guard abs(total) >= 1e-12 else {
            throw MergeError.numerical(tensor: inputs.tensorName, reason: "karcher: weights sum to \(total)")
        }
        let alpha = w.map { $0 / total }
        let coeffs = KarcherMerge.coefficients(VectorMath.gram(inputs.models, minus: nil, loops: inputs.loops), alpha: alpha, maxIter: g.maxIter, tol: g.tol)
        weightedSum(inputs.models, coeffs, base: nil, into: out, loops: inputs.loops)
    }

    /// Output coefficients c_i (out = Σ c_i x_i) from the Gram matrix of the inputs.
    static func coefficients(_ G: [[Double]], alpha: [Double], maxIter: Int, tol: Double) -> [Double] {
        let m = alpha.count
        let norms = (0..<m).map { G[$0][$0].squareRoot() }
        let valid = (0..<m).filter { norms[$0] > tol }
        guard !valid.isEmpty else { return [Double](repeating: 0, count: m) }
        // Gram of unit vectors.
        var U = [[Double]](repeating: [Double](repeating: 0, count: m), count: m)
        for i in valid { for j in valid { U[i][j] = G[i][j] / (norms[i] * norms[j]) } }
        let validSum = valid.reduce(0) { $0 + alpha[$1] }
        var a = [Double](repeating: 0, count: m)
        for i in valid { a[i] = alpha[i] / validSum }
        func dot(_ x: [Double], _ y: [Double]) -> Double {
            var s = 0.0
            for i in valid { for j in valid { s += x[i] * y[j] * U[i][j] } }
            return s
        }
        // u as coefficients over the unit vectors.
        var u = a
        var un = max(0, dot(u, u)).squareRoot()
        if un < tol {
            u = [Double](repeating: 0, count: m); u[valid[0]] = 1
        } else {
            u = u.map { $0 / un }
        }
        for _ in 0..<maxIter {
            var T = [Double](repeating: 0, count: m)
            for i in valid {
                var c = 0.0
                for j in valid { c += u[j] * U[j][i] }
                c = min(1, max(-1, c))
                let theta = acos(c)
                guard theta >= tol else { continue }
                let f = a[i] * theta / sin(theta)
                T[i] += f
                for j in valid { T[j] -= f * c * u[j] }
            }
            let tn = max(0, dot(T, T)).squareRoot()
            if tn < tol { break }
            for j in valid { u[j] = cos(tn) * u[j] + sin(tn) * T[j] / tn }
            un = max(0, dot(u, u)).squareRoot()
            u = u.map { $0 / un }
        }
        let scale = (0..<m).reduce(0) { $0 + alpha[$1] * norms[$1] }
        return (0..<m).map { norms[$0] > tol ? scale * u[$0] / norms[$0] : 0 }
    }
}
