/// `sce`: Select, Calculate, Erase (Wan et al. 2024, FuseChat, arXiv:2408.07990, §3.3;
/// mergekit `sce.py`).
///
/// With task vectors `τ_i = x_i − base`:
/// 1. Select: when `select_topk < 1`, keep only the `⌊select_topk · #(var ≠ 0)⌋` positions with the
///    largest population variance of `τ_·j` across the models (the same positions in every τ_i).
/// 2. Calculate: one weight per model and tensor, `ω_i = mean(τ_i²) / Σ_k mean(τ_k²)` over the
///    selected task vectors (uniform `1/N` when the sum is below 1e-6, as mergekit does).
/// 3. Erase: TIES's sign election on the unweighted sum, `M_ij = [sign τ_ij = sign Σ_k τ_kj]`
///    (0 counts as +; zeros never agree).
/// `out_j = base_j + Σ_i ω_i M_ij τ_ij / max(Σ_i ω_i M_ij, 1e-6)`. Float64 per element.
/// Differences from mergekit: equal variances are ranked by position (lower index kept first)
/// instead of in an unspecified order; a per-model `weight` is refused (mergekit ignores it:
/// SCE computes its own).
public struct SCEMerge: MergeMethod {
    public init() {}
    public let name = "sce"
    public let reference = "Wan et al. 2024, FuseChat: Knowledge Fusion of Chat Models, arXiv:2408.07990, §3.3"
    public let summary = "keep high-variance positions, weight each task vector by its mean square, TIES sign election"
    public let baseRole = BaseRole.required
    public let modelCount = 1...Int.max
    /// One variance per element, only when selecting (`select_topk` < 1), whatever the number of models.
    public func wholeScratchBytes(elementCount: Int, modelCount: Int, parameters: ResolvedParameters) -> Int {
        ((try? parameters.number("select_topk")) ?? 1) < 1 ? 4 * elementCount : 0
    }
    public var parameters: [ParameterSpec] {
        [.number("select_topk", .global, default: 1, "fraction of positions kept by variance across the task vectors (1: all)",
                 range: .closed(0, 1)),
         .bool("int8_mask", .global, default: false, "accepted for mergekit compatibility; masks here are never materialised")]
    }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = inputs.base else { throw MergeError.baseRequired(method: name) }
        let topk = try p.number("select_topk")
        let n = inputs.count, m = inputs.models.count
        let b = base.baseAddress!, o = out.baseAddress!
        let xs = inputs.models.map { $0.baseAddress! }
        // 1. Select: which positions survive (nil = all).
        var variance: [Float] = []
        var keep: ClosedRange<UInt64>? = nil
        var keepNone = false
        if topk < 1 {
            variance = [Float](repeating: 0, count: n)
            variance.withUnsafeMutableBufferPointer { v in
                let vp = v.baseAddress!
                inputs.loops.forEachChunk(n, workPerItem: m) { range in
                    for j in range {
                        var mean = 0.0
                        for i in 0..<m { mean += Double(xs[i][j]) - Double(b[j]) }
                        mean /= Double(m)
                        var s = 0.0
                        for i in 0..<m { let d = Double(xs[i][j]) - Double(b[j]) - mean; s += d * d }
                        vp[j] = Float(s / Double(m))
                    }
                }
            }
            let nonzero = variance.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            let k = topk <= 0 ? 0 : Int(Double(nonzero) * topk)
            if k == 0 { keepNone = true } else {
                keep = variance.withUnsafeBufferPointer { RankSelection.keyRange($0, ranks: (n - k)..<n) }
            }
        }
        if keepNone {
            out.baseAddress!.update(from: b, count: n)
            return
        }
        let kept: (Int) -> Bool
        if let keep {
            kept = { [variance] j in keep.contains(RankSelection.key(variance[j], j)) }
        } else {
            kept = { _ in true }
        }
        // 2. Calculate: mean square of each selected task vector.
        let squares = inputs.loops.sums(n, m) { range, acc in
            for j in range where kept(j) {
                for i in 0..<m { let d = Double(xs[i][j]) - Double(b[j]); acc[i] += d * d }
            }
        }
        let means = squares.map { $0 / Double(max(1, n)) }
        let total = means.reduce(0, +)
        let omega = abs(total) < 1e-6 ? [Double](repeating: 1 / Double(m), count: m) : means.map { $0 / total }
        // 3. Erase and combine.
        inputs.loops.forEachChunk(n, workPerItem: 2 * m) { range in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: m) { d in
                for j in range {
                    let bj = Double(b[j])
                    guard kept(j) else { o[j] = b[j]; continue }
                    var sum = 0.0
                    for i in 0..<m { d[i] = Double(xs[i][j]) - bj; sum += d[i] }
                    let positive = sum >= 0
                    var num = 0.0, den = 0.0
                    for i in 0..<m where positive ? d[i] > 0 : d[i] < 0 {
                        num += omega[i] * d[i]
                        den += omega[i]
                    }
                    o[j] = Float(bj + num / max(den, 1e-6))
                }
            }
        }
    }
}
