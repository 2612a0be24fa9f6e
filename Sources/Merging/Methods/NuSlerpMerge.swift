import Foundation

/// `nuslerp`: slerp between exactly two models with `t = w_2/(w_1 + w_2)`, optionally of their
/// task vectors against a base, over the flattened tensor or per row/column vector
/// (mergekit `nuslerp.py`).
///
/// `nuslerp_flatten: true` (default) interpolates the whole tensor; otherwise each vector along
/// the last dimension (`W[i, :]`), or along the first (`W[:, j]`) with `nuslerp_row_wise: true`.
/// Falls back to linear interpolation where `|sin θ| < 1e-8`. `|w_1 + w_2| < 1e-6` gives t = 0.5.
public struct NuSlerpMerge: MergeMethod {
    public struct Global { public var flatten: Bool; public var rowWise: Bool }
    public init() {}
    public let name = "nuslerp"
    public let reference = "mergekit nuslerp (Goddard et al. 2024, arXiv:2403.13257)"
    public let summary = "slerp of two models (or their task vectors) with t from their weights, whole tensor or per vector"
    public let baseRole = BaseRole.optional
    public let modelCount = 2...2
    public var parameters: [ParameterSpec] {
        [.number("weight", .perModel, default: nil, "relative weight; t = w2/(w1 + w2)"),
         .bool("nuslerp_flatten", .global, default: true, "interpolate the whole flattened tensor"),
         .bool("nuslerp_row_wise", .global, default: false, "when not flattened, interpolate columns W[:, j] instead of rows")]
    }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        let g = Global(flatten: try p.bool("nuslerp_flatten"), rowWise: try p.bool("nuslerp_row_wise"))
        let w = try p.numbers("weight")
        let t = abs(w[0] + w[1]) < 1e-6 ? 0.5 : w[1] / (w[0] + w[1])
        let a = inputs.models[0], b = inputs.models[1]
        let base = inputs.base
        if g.flatten || inputs.shape.rank <= 1 {
            let gm = VectorMath.gram([a, b], minus: base, loops: inputs.loops)
            let (c0, c1) = NuSlerpMerge.weights(gm[0][0], gm[1][1], gm[0][1], t: t)
            weightedSum([a, b], [c0, c1], base: base, into: out, loops: inputs.loops)
            return
        }
        // Vectors: along the last dimension (stride 1) or the first (stride = inner size).
        let n = inputs.count
        let dims = inputs.shape.dims
        let (count, length, stride, step): (Int, Int, Int, Int) = g.rowWise
            ? (dims.count <= 1 ? 1 : n / dims[0], dims.first ?? 1, dims.count <= 1 ? 1 : n / dims[0], 1)
            : (n / max(1, dims.last ?? 1), dims.last ?? 1, 1, dims.last ?? 1)
        let pa = a.baseAddress!, pb = b.baseAddress!, po = out.baseAddress!
        let pbase = base?.baseAddress
        inputs.loops.forEachChunk(count, workPerItem: length) { range in
            for v in range {
                let start = g.rowWise ? v : v * step
                var s00 = 0.0, s11 = 0.0, s01 = 0.0
                for k in 0..<length {
                    let idx = start + k * stride
                    let bv = pbase.map { Double($0[idx]) } ?? 0
                    let x = Double(pa[idx]) - bv, y = Double(pb[idx]) - bv
                    s00 += x * x; s11 += y * y; s01 += x * y
                }
                let (c0, c1) = NuSlerpMerge.weights(s00, s11, s01, t: t)
                for k in 0..<length {
                    let idx = start + k * stride
                    let bv = pbase.map { Double($0[idx]) } ?? 0
                    let x = Double(pa[idx]) - bv, y = Double(pb[idx]) - bv
                    po[idx] = Float(bv + c0 * x + c1 * y)
                }
            }
        }
    }

    /// Interpolation weights from squared norms and the dot product of two vectors.
    static func weights(_ s00: Double, _ s11: Double, _ s01: Double, t: Double) -> (Double, Double) {
        let n0 = max(s00.squareRoot(), 1e-7), n1 = max(s11.squareRoot(), 1e-7)
        let theta = acos(min(1, max(-1, s01 / (n0 * n1))))
        let s = sin(theta)
        if abs(s) < 1e-8 { return (1 - t, t) }
        return (sin((1 - t) * theta) / s, sin(t * theta) / s)
    }
}
