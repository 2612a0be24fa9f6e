import Tensors

/// `tsv`: TSV-M, Task Singular Vectors merging (Gargiulo et al. 2025, arXiv:2412.00081).
///
/// For every matrix (rank-2 tensor) and each of T task vectors `Δ_t = U_t Σ_t V_tᵀ`, keep the
/// top `k = ⌊min(m, n)/T⌋` singular triplets; concatenate the kept `U_t` blocks (m × T·k), the
/// σ's and the `V_tᵀ` blocks (T·k × n); replace both stacks by their orthogonal polar factors
/// (`P Qᵀ` of their SVDs) to remove interference between tasks; `Δ = U⊥ diag(σ) V⊥ᵀ`.
/// Other tensors (norms, biases) use the mean task vector. `out = base + α·Δ`.
/// With one task, k = min(m, n) and Δ reconstructs the task vector exactly.
/// When T > min(m, n) (k = 0) the matrix falls back to the mean task vector.
/// Difference from the reference code: triplets whose σ is at rounding level (numerical rank,
/// `SpectralMath.numericalRank`) are not stacked, and the polar factors span only the stacks'
/// numerical ranges; with full-rank task vectors this changes nothing, with rank-deficient ones
/// (embedding rows no task changed) it keeps rounding noise out of the merge.
/// SVDs in Float32 (`sgesdd`), as the reference code (torch float32).
public struct TSVMerge: MergeMethod {
    public struct Global { public var alpha: Double }
    public init() {}
    public let name = "tsv"
    public let reference = "Gargiulo et al. 2025, Task Singular Vectors: Reducing Task Interference in Model Merging, arXiv:2412.00081"
    public let summary = "TSV-M: top singular vectors of each task vector, decorrelated across tasks (polar factor)"
    public let baseRole = BaseRole.required
    public let modelCount = 1...Int.max
    public var scratchPerElement: Double { 6 }
    public var parameters: [ParameterSpec] { [.number("alpha", .global, default: 1, "scale of the merged task vector (the paper searches 0.1 to 3.0)")] }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = inputs.base else { throw MergeError.baseRequired(method: name) }
        let g = Global(alpha: try p.number("alpha"))
        let t = inputs.models.count
        guard inputs.shape.rank == 2, inputs.count > 0 else {
            SpectralMath.meanDelta(inputs, base: base, alpha: g.alpha, into: out)
            return
        }
        let (m, n) = (inputs.shape[0], inputs.shape[1])
        let k = min(m, n) / t
        guard k > 0 else {
            SpectralMath.meanDelta(inputs, base: base, alpha: g.alpha, into: out)
            return
        }
        var us: [Tensor] = [], vts: [Tensor] = [], sigma: [Float] = []
        for delta in SpectralMath.taskVectors(inputs, base: base, rows: m, cols: n) {
            let f = try svd(delta)
            // Triplets with σ at rounding level carry no task (their vectors are arbitrary).
            let kt = min(k, SpectralMath.numericalRank(f.s, rows: m, cols: n))
            guard kt > 0 else { continue }
            us.append(SpectralMath.columns(f.u, kt))
            vts.append(SpectralMath.rows(f.vt, kt))
            sigma += f.s[0..<kt]
        }
        guard !sigma.isEmpty else {
            SpectralMath.meanDelta(inputs, base: base, alpha: g.alpha, into: out)
            return
        }
        let uOrth = try SpectralMath.polar(SpectralMath.hstack(us))
        let vtOrth = try SpectralMath.polar(SpectralMath.vstack(vts))
        SpectralMath.apply(SpectralMath.compose(uOrth, sigma, vtOrth), alpha: g.alpha, base: base, into: out, loops: inputs.loops)
    }
}
