/// `model_stock`: interpolate between the average of the fine-tunes and the base with a ratio
/// set by the angle between their task vectors (Jang et al. 2024, mergekit `model_stock.py`).
///
/// `c` = mean pairwise cosine of the task vectors (clamped to [−1, 1], norms floored at 1e-6),
/// `t = N c / (1 + (N − 1) c)`, `out = t·mean(x_i) + (1 − t)·base`; per row with `filter_wise`.
/// Differences from mergekit: a per-model `weight` is refused (the method has none and mergekit
/// silently ignores it); when `1 + (N − 1)c` is within 1e-6 of 0 the base is returned (t = 0)
/// instead of dividing by ~0.
public struct ModelStockMerge: MergeMethod {
    public struct Global { public var filterWise: Bool }
    public init() {}
    public let name = "model_stock"
    public let reference = "Jang et al. 2024, Model Stock, arXiv:2403.19522"
    public let summary = "average of fine-tunes pulled toward the base by their task-vector angle"
    public let baseRole = BaseRole.required
    public let modelCount = 2...Int.max
    public var parameters: [ParameterSpec] { [.bool("filter_wise", .global, default: false, "one ratio per row instead of per tensor")] }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = inputs.base else { throw MergeError.baseRequired(method: name) }
        let g = Global(filterWise: try p.bool("filter_wise"))
        let n = inputs.models.count
        if !g.filterWise || inputs.shape.rank <= 1 {
            let t = ModelStockMerge.ratio(VectorMath.gram(inputs.models, minus: base, loops: inputs.loops))
            weightedSum(inputs.models, [Double](repeating: t / Double(n), count: n), base: base, into: out, loops: inputs.loops)
            return
        }
        let cols = inputs.shape.dims.last!
        let rows = inputs.count / max(1, cols)
        let xs = inputs.models.map { $0.baseAddress! }
        let b = base.baseAddress!, o = out.baseAddress!
        inputs.loops.forEachChunk(rows, workPerItem: cols * n) { range in
            for r in range {
                let rowBufs = xs.map { UnsafeBufferPointer(start: $0 + r * cols, count: cols) }
                let bb = UnsafeBufferPointer(start: b + r * cols, count: cols)
                let G = ModelStockMerge.gramSerial(rowBufs, bb)
                let t = ModelStockMerge.ratio(G)
                for j in 0..<cols {
                    var mean = 0.0
                    for i in 0..<n { mean += Double(xs[i][r * cols + j]) }
                    mean /= Double(n)
                    o[r * cols + j] = Float(t * mean + (1 - t) * Double(bb[j]))
                }
            }
        }
    }

    static func gramSerial(_ xs: [UnsafeBufferPointer<Float>], _ base: UnsafeBufferPointer<Float>) -> [[Double]] {
        let m = xs.count
        var g = [[Double]](repeating: [Double](repeating: 0, count: m), count: m)
        for j in 0..<base.count {
            let bj = Double(base[j])
            for i in 0..<m {
                let vi = Double(xs[i][j]) - bj
                for k in i..<m { g[i][k] += vi * (Double(xs[k][j]) - bj) }
            }
        }
        for i in 0..<m { for k in 0..<i { g[i][k] = g[k][i] } }
        return g
    }

    /// `t = N c/(1 + (N−1)c)` from the Gram matrix of the task vectors.
    static func ratio(_ G: [[Double]]) -> Double {
        let n = G.count
        var sum = 0.0
        var pairs = 0
        for i in 0..<n {
            for j in (i + 1)..<n {
                let denom = max(G[i][i].squareRoot() * G[j][j].squareRoot(), 1e-6)
                sum += min(1, max(-1, G[i][j] / denom))
                pairs += 1
            }
        }
        let c = sum / Double(pairs)
        let den = 1 + Double(n - 1) * c
        if abs(den) < 1e-6 { return 0 }
        return Double(n) * c / den
    }
}
