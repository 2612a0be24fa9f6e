import Tensors

/// `iso_c` and `iso_cts`: isotropic merging (Marczak et al. 2025, arXiv:2502.04959).
///
/// Iso-C: `Δ = Σ_t Δ_t = U Σ Vᵀ`, then every singular value is replaced by their mean σ̄:
/// `Δ_iso = σ̄ U Vᵀ`. Iso-CTS keeps the top `k_c` directions of the sum (common subspace,
/// `k_c ≈ f·r` with `r − k_c` divisible by T, r = min(m, n)), adds per task the top `(r − k_c)/T`
/// directions of `Δ_t − U_c U_cᵀ Δ_t` (task-specific subspaces), orthogonalises the stacked
/// U and Vᵀ with their polar factors and sets every σ to the mean of the kept ones.
/// Other tensors use the mean task vector. `out = base + α·Δ`. SVDs in Float32.
/// Difference from the reference code: directions whose σ is at rounding level (numerical rank,
/// `SpectralMath.numericalRank`) are left out instead of being given σ̄; σ̄ itself is unchanged.
/// With full-rank task vectors this changes nothing; with rank-deficient ones (embedding rows no
/// task changed) the reference would write rounding-chosen directions at full strength.
public struct IsotropicMerge: MergeMethod {
    public enum Variant: Sendable { case common, commonAndTaskSpecific }
    public struct Global { public var alpha: Double; public var commonSpaceFraction: Double }

    public let variant: Variant
    public init(_ variant: Variant) { self.variant = variant }
    public var name: String { variant == .common ? "iso_c" : "iso_cts" }
    public let reference = "Marczak et al. 2025, No Task Left Behind: Isotropic Model Merging with Common and Task-Specific Subspaces, arXiv:2502.04959"
    public var summary: String {
        variant == .common ? "Iso-C: sum of task vectors with a flat (isotropic) singular spectrum"
            : "Iso-CTS: common plus task-specific singular subspaces with a flat spectrum"
    }
    public let baseRole = BaseRole.required
    public let modelCount = 1...Int.max
    public var scratchPerElement: Double { 6 }
    public var parameters: [ParameterSpec] {
        var p: [ParameterSpec] = [.number("alpha", .global, default: 1, "scale of the merged task vector (the paper searches 0.1 to 3.0)")]
        if variant == .commonAndTaskSpecific {
            p.append(.number("common_space_fraction", .global, default: 0.8, "fraction of the rank given to the common subspace", range: .closed(0, 1)))
        }
        return p
    }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = inputs.base else { throw MergeError.baseRequired(method: name) }
        let g = Global(alpha: try p.number("alpha"),
                       commonSpaceFraction: variant == .common ? 0 : try p.number("common_space_fraction"))
        guard inputs.shape.rank == 2, inputs.count > 0 else {
            SpectralMath.meanDelta(inputs, base: base, alpha: g.alpha, into: out)
            return
        }
        let (m, n) = (inputs.shape[0], inputs.shape[1])
        let deltas = SpectralMath.taskVectors(inputs, base: base, rows: m, cols: n)
        var sum = deltas[0]
        for d in deltas.dropFirst() { for i in sum.scalars.indices { sum.scalars[i] += d.scalars[i] } }
        let f = try svd(sum)
        let r = min(m, n)
        // Directions whose σ is at rounding level are arbitrary: they are left out (σ̄ is still
        // the mean of all r values, as in the reference).
        let numericalRank = SpectralMath.numericalRank(f.s, rows: m, cols: n)
        if variant == .common {
            let mean = f.s.reduce(0.0) { $0 + Double($1) } / Double(r)
            let kept = numericalRank
            SpectralMath.apply(SpectralMath.compose(SpectralMath.columns(f.u, kept), [Float](repeating: Float(mean), count: kept), SpectralMath.rows(f.vt, kept)),
                               alpha: g.alpha, base: base, into: out, loops: inputs.loops)
            return
        }
        guard g.commonSpaceFraction >= 0, g.commonSpaceFraction <= 1 else {
            throw MergeError.invalidParameter(name: "common_space_fraction", reason: "must be in [0, 1], got \(g.commonSpaceFraction)")
        }
        let t = deltas.count
        // Reference rule: k_c = int(f·r), then the task-specific total is rounded to a multiple of T.
        var common = Int(Double(r) * g.commonSpaceFraction)
        var specificTotal = Int((Double(r - common) / Double(t)).rounded(.toNearestOrEven)) * t
        while specificTotal > r { specificTotal -= t }  // guard the reference rule's overshoot
        common = r - specificTotal
        let perTask = specificTotal / t
        let uc = SpectralMath.columns(f.u, common)
        let vtc = SpectralMath.rows(f.vt, common)
        var us: [Tensor] = [], vts: [Tensor] = [], sigma: [Float] = []
        if perTask > 0 {
            for d in deltas {
                // Residual outside the common subspace: Δ − U_c (U_cᵀ Δ).
                var res = d
                if common > 0 {
                    let proj = matmul(uc, matmul(uc, d, transposeA: true))
                    for i in res.scalars.indices { res.scalars[i] -= proj.scalars[i] }
                }
                let fr = try svd(res)
                sigma += fr.s[0..<perTask]
                // Residual directions at rounding level (relative to the sum's σ₁) are arbitrary.
                let kept = min(perTask, SpectralMath.numericalRank(fr.s, rows: m, cols: n, scale: f.s[0]))
                if kept > 0 {
                    us.append(SpectralMath.columns(fr.u, kept))
                    vts.append(SpectralMath.rows(fr.vt, kept))
                }
            }
        }
        if common > 0 {
            sigma += f.s[0..<common]
            let kept = min(common, numericalRank)
            if kept > 0 {
                us.append(SpectralMath.columns(uc, kept))
                vts.append(SpectralMath.rows(vtc, kept))
            }
        }
        // σ̄ is the mean of every selected value (the reference's), the kept directions only carry it.
        let mean = sigma.reduce(0.0) { $0 + Double($1) } / Double(max(1, sigma.count))
        guard !us.isEmpty else {
            SpectralMath.meanDelta(inputs, base: base, alpha: g.alpha, into: out)
            return
        }
        let uOrth = try SpectralMath.polar(SpectralMath.hstack(us))
        let vtOrth = try SpectralMath.polar(SpectralMath.vstack(vts))
        SpectralMath.apply(SpectralMath.compose(uOrth, [Float](repeating: Float(mean), count: uOrth.shape[1]), vtOrth),
                           alpha: g.alpha, base: base, into: out, loops: inputs.loops)
    }
}
