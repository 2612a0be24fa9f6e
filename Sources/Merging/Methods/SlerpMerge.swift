import Foundation

/// `slerp`: spherical linear interpolation between the base (`t = 0`) and one other model
/// (`t = 1`), over the whole flattened tensor (mergekit `slerp.py`).
///
/// The angle comes from the normalised tensors, the weights `sin((1−t)θ)/sin θ` and
/// `sin(tθ)/sin θ` multiply the original tensors; when `|cos θ| > 0.9995` it falls back to
/// linear interpolation. Difference from mergekit: a zero-norm input also falls back to linear
/// interpolation (mergekit treats it as orthogonal, θ = π/2).
public struct SlerpMerge: MergeMethod {
    public struct Global { public var t: Double }
    public init() {}
    public let name = "slerp"
    public let reference = "Shoemake 1985, Animating rotation with quaternion curves; used for LLMs by mergekit"
    public let summary = "spherical interpolation between the base (t = 0) and one model (t = 1)"
    public let baseRole = BaseRole.required
    public let modelCount = 1...1
    public var parameters: [ParameterSpec] { [.number("t", .global, default: nil, "interpolation factor, 0 = base, 1 = the other model", range: ValueRange.closed(0, 1).allowingExtrapolation)] }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let v0 = inputs.base else { throw MergeError.baseRequired(method: name) }
        let g = Global(t: try p.number("t"))
        let (c0, c1) = SlerpMerge.coefficients(v0, inputs.models[0], t: g.t, loops: inputs.loops)
        weightedSum([v0, inputs.models[0]], [c0, c1], base: nil, into: out, loops: inputs.loops)
    }

    /// The two interpolation weights for the flattened tensors.
    static func coefficients(_ v0: UnsafeBufferPointer<Float>, _ v1: UnsafeBufferPointer<Float>, t: Double,
                             loops: ParallelLoops) -> (Double, Double) {
        let g = VectorMath.gram([v0, v1], minus: nil, loops: loops)
        let n0 = g[0][0].squareRoot()
        let n1 = g[1][1].squareRoot()
        if n0 <= 1e-8 || n1 <= 1e-8 { return (1 - t, t) }
        let dot = g[0][1] / (n0 * n1)
        if abs(dot) > 0.9995 { return (1 - t, t) }
        let theta = acos(dot)
        let s = sin(theta)
        return (sin((1 - t) * theta) / s, sin(t * theta) / s)
    }
}
