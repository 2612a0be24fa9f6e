import Foundation

/// `multislerp`: spherical interpolation of several models (or task vectors against a base),
/// one tangent-space step at the normalised weighted mean of the unit vectors (mergekit
/// `multislerp.py`).
///
/// `u_i = X_i/(‖X_i‖ + eps)`, `m = Σ w_i u_i`, `T = Σ w_i (u_i − (u_i·m̂) m̂)`, `τ = ‖T‖ + eps`,
/// `r = (m̂ cos τ + T sin τ/τ)·Σ w_i ‖X_i‖`. Everything is a linear combination of the inputs,
/// so it is computed exactly from their Gram matrix and written in one pass. Note `Σ w_i(u_i·m̂)
/// = ‖m‖`, so T vanishes analytically: the result is the weighted mean direction scaled by the
/// weighted mean norm (mergekit's T is round-off). Difference from mergekit: weights summing to
/// zero with `normalize_weights` are an error instead of a division by zero.
public struct MultiSlerpMerge: MergeMethod {
    public struct Global { public var normalizeWeights: Bool; public var eps: Double }
    public init() {}
    public let name = "multislerp"
    public let reference = "mergekit multislerp (barycentric spherical interpolation, Buss & Fillmore 2001)"
    public let summary = "spherical weighted mean of several models or task vectors"
    public let baseRole = BaseRole.optional
    public let modelCount = 1...Int.max
    public var parameters: [ParameterSpec] {
        [.number("weight", .perModel, default: nil, "weight of the model"),
         .bool("normalize_weights", .global, default: true, "divide the weights by their sum"),
         .number("eps", .global, default: 1e-8, "numerical guard", range: .positive)]
    }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        let g = Global(normalizeWeights: try p.bool("normalize_weights"), eps: try p.number("eps"))
        var w = try p.numbers("weight")
        let m = inputs.models.count
        if m == 1 {
            out.baseAddress!.update(from: inputs.models[0].baseAddress!, count: inputs.count)
            return
        }
        if g.normalizeWeights {
            let s = w.reduce(0, +)
            guard abs(s) >= 1e-8 else {
                throw MergeError.numerical(tensor: inputs.tensorName, reason: "multislerp: weights sum to \(s); cannot normalize them")
            }
            w = w.map { $0 / s }
        }
        let G = VectorMath.gram(inputs.models, minus: inputs.base, loops: inputs.loops)
        let norms = (0..<m).map { G[$0][$0].squareRoot() }
        // u_i = X_i / (n_i + eps): Gram of the u's.
        let inv = norms.map { 1 / ($0 + g.eps) }
        var uu = G
        for i in 0..<m { for j in 0..<m { uu[i][j] = G[i][j] * inv[i] * inv[j] } }
        // ‖m‖² = Σ w_i w_j u_i·u_j
        var mm = 0.0
        for i in 0..<m { for j in 0..<m { mm += w[i] * w[j] * uu[i][j] } }
        let mNorm = max(0, mm).squareRoot()
        if mNorm < g.eps {
            guard m == 2 else {
                throw MergeError.numerical(tensor: inputs.tensorName, reason: "multislerp: the inputs are antipodal (mean direction has norm \(mNorm))")
            }
            weightedSum(inputs.models, w, base: inputs.base, into: out, loops: inputs.loops)
            return
        }
        // c_i = u_i·m̂ ; T = m − (Σ w_i c_i) m̂ = β·m with β = 1 − (Σ w_i c_i)/‖m‖.
        var s = 0.0
        for i in 0..<m {
            var ci = 0.0
            for j in 0..<m { ci += w[j] * uu[i][j] }
            s += w[i] * ci / mNorm
        }
        let beta = 1 - s / mNorm
        let tau = abs(beta) * mNorm + g.eps
        let scale = zip(w, norms).reduce(0) { $0 + $1.0 * $1.1 }
        // r = m̂ cos τ + β m sin τ / τ = m (cos τ/‖m‖ + β sin τ/τ), m = Σ w_i inv_i X_i
        let factor = (cos(tau) / mNorm + beta * sin(tau) / tau) * scale
        weightedSum(inputs.models, (0..<m).map { w[$0] * inv[$0] * factor }, base: inputs.base, into: out, loops: inputs.loops)
    }
}
