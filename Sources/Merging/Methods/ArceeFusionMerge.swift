import Foundation

/// `arcee_fusion`: keep the other model's changes whose importance is an outlier (mergekit
/// `arcee_fusion.py`; Arcee's "MergeKit v0.1" release notes, 2025).
///
/// Per row r (the last dimension; a 1-D tensor is one row), with `p = softmax(x_r) + 1e-8` and
/// `q = softmax(base_r) + 1e-8`, `KL_r = Σ p log(p/q)`; the importance of element j is
/// `I_j = |x_j − base_j| · KL_r`. With the order statistics `Q(q) = sorted(I)[⌊q (n − 1)⌋]`, the
/// threshold is `Q(0.5) + 1.5 (Q(0.75) − Q(0.25))` (Tukey's upper fence) and
/// `out_j = base_j + (x_j − base_j) · [I_j ≥ threshold]`.
/// Difference from mergekit: the quantiles are exact for every size (radix selection);
/// mergekit estimates them from 10⁶ elements drawn at random when a tensor is larger, so its
/// output changes from run to run there.
public struct ArceeFusionMerge: MergeMethod {
    public init() {}
    public let name = "arcee_fusion"
    public let reference = "Arcee AI 2025, MergeKit v0.1 (Arcee Fusion); mergekit arcee_fusion.py"
    public let summary = "take the other model's changes whose |change| × row KL is above the upper Tukey fence"
    public let baseRole = BaseRole.required
    public let modelCount = 1...1
    /// The importance of every element.
    public var scratchPerElement: Double { 1 }
    public var parameters: [ParameterSpec] { [] }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = inputs.base else { throw MergeError.baseRequired(method: name) }
        let n = inputs.count
        guard n > 0 else { return }
        let cols = inputs.shape.rank >= 1 ? max(1, inputs.shape.dims.last!) : n
        let a = base.baseAddress!, x = inputs.models[0].baseAddress!, o = out.baseAddress!
        let importance = ArceeFusionMerge.importance(base: base, other: inputs.models[0], cols: cols, loops: inputs.loops)
        let threshold = importance.withUnsafeBufferPointer { ArceeFusionMerge.threshold($0) }
        importance.withUnsafeBufferPointer { imp in
            let ip = imp.baseAddress!
            inputs.loops.forEachChunk(n) { range in
                for j in range { o[j] = ip[j] >= threshold ? a[j] + (x[j] - a[j]) : a[j] }
            }
        }
    }

    /// `I_j = |x_j − base_j| · KL_r` for every element (rows of `cols` elements).
    static func importance(base: UnsafeBufferPointer<Float>, other: UnsafeBufferPointer<Float>, cols: Int,
                           loops: ParallelLoops = .machine) -> [Float] {
        let n = base.count, rows = n / cols
        let a = base.baseAddress!, x = other.baseAddress!
        var importance = [Float](repeating: 0, count: n)
        importance.withUnsafeMutableBufferPointer { imp in
            let ip = imp.baseAddress!
            loops.forEachChunk(rows, workPerItem: 4 * cols) { range in
                for r in range {
                    let kl = ArceeFusionMerge.rowKL(x + r * cols, a + r * cols, cols)
                    for j in (r * cols)..<(r * cols + cols) { ip[j] = Float(abs(Double(x[j]) - Double(a[j])) * kl) }
                }
            }
        }
        return importance
    }

    /// Tukey's upper fence `Q(0.5) + 1.5 (Q(0.75) − Q(0.25))` of non-negative values, with
    /// `Q(q) = sorted[⌊q (n − 1)⌋]` (exact, by radix selection).
    static func threshold(_ values: UnsafeBufferPointer<Float>) -> Float {
        let n = values.count
        func q(_ f: Double) -> Double {
            let k = Int((f * Double(n - 1)).rounded(.down))
            return Double(Float(bitPattern: UInt32(truncatingIfNeeded: RankSelection.keyOfRank(values, k) >> 32)))
        }
        let q1 = q(0.25), median = q(0.5), q3 = q(0.75)
        return Float(median + 1.5 * (q3 - q1))
    }

    /// `Σ p log(p/q)` with `p = softmax(x) + 1e-8`, `q = softmax(y) + 1e-8` over `count` elements.
    static func rowKL(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ count: Int) -> Double {
        var mx = -Double.infinity, my = -Double.infinity
        for j in 0..<count { mx = max(mx, Double(x[j])); my = max(my, Double(y[j])) }
        var sx = 0.0, sy = 0.0
        for j in 0..<count { sx += exp(Double(x[j]) - mx); sy += exp(Double(y[j]) - my) }
        var kl = 0.0
        for j in 0..<count {
            let p = exp(Double(x[j]) - mx) / sx + 1e-8
            let q = exp(Double(y[j]) - my) / sy + 1e-8
            kl += p * log(p / q)
        }
        return kl
    }
}
