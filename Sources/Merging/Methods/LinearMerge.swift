/// `linear`: weighted average (model soup) of all inputs.
///
/// `out = Σ_i w_i x_i / Σ_i w_i` (`normalize: true`, default) or `Σ_i w_i x_i` (`normalize: false`).
/// Accumulates in Float64. Differences from mergekit: weights summing to (nearly) zero with
/// `normalize: true` are an error naming the tensor instead of an Inf/NaN output.
public struct LinearMerge: MergeMethod {
    public struct Global { public var normalize = true }
    public struct PerModel { public var weight: Double }

    public init() {}
    public let name = "linear"
    public let reference = "Wortsman et al. 2022, Model soups, arXiv:2203.05482"
    public let summary = "weighted average of the inputs (uniform or weighted soup)"
    public let baseRole = BaseRole.plainInput
    public let modelCount = 1...Int.max
    public var parameters: [ParameterSpec] {
        [.number("weight", .perModel, default: nil, "weight of the model in the sum"),
         .bool("normalize", .global, default: true, "divide by the sum of the weights")]
    }

    public func isElementwise(_ parameters: ResolvedParameters) -> Bool { true }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        let g = Global(normalize: try p.bool("normalize"))
        let models = try p.numbers("weight").map { PerModel(weight: $0) }
        let total = models.reduce(0) { $0 + $1.weight }
        var scale = 1.0
        guard total.isFinite else {
            throw MergeError.numerical(tensor: inputs.tensorName, reason: "linear: the weights sum to \(total) (each is finite, their sum overflows); use smaller weights")
        }
        if g.normalize {
            guard abs(total) >= 1e-8 else {
                throw MergeError.numerical(tensor: inputs.tensorName,
                    reason: "linear: weights sum to \(total); normalizing would divide by zero (set normalize: false or change the weights)")
            }
            scale = 1 / total
        }
        weightedSum(inputs.models, models.map { $0.weight * scale }, base: nil, into: out, loops: inputs.loops)
    }
}

/// `out[j] = base[j] + Σ_i c_i (x_i[j] − base[j])` (or `Σ c_i x_i[j]` without base), in Float64
/// blocks of 1024 elements so the inner loops vectorise; parallel over chunks.
func weightedSum(_ xs: [UnsafeBufferPointer<Float>], _ c: [Double], base: UnsafeBufferPointer<Float>?,
                 into out: UnsafeMutableBufferPointer<Float>, loops: ParallelLoops) {
    let n = out.count
    let o = out.baseAddress!
    let ptrs = xs.map { $0.baseAddress! }
    let b = base?.baseAddress
    loops.forEachChunk(n) { range in
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 1024) { acc in
            var start = range.lowerBound
            while start < range.upperBound {
                let len = min(1024, range.upperBound - start)
                for j in 0..<len { acc[j] = 0 }
                for (i, x) in ptrs.enumerated() {
                    let w = c[i]
                    let xi = x + start
                    if let b {
                        let bb = b + start
                        for j in 0..<len { acc[j] += w * (Double(xi[j]) - Double(bb[j])) }
                    } else {
                        for j in 0..<len { acc[j] += w * Double(xi[j]) }
                    }
                }
                let oo = o + start
                if let b {
                    let bb = b + start
                    for j in 0..<len { oo[j] = Float(Double(bb[j]) + acc[j]) }
                } else {
                    for j in 0..<len { oo[j] = Float(acc[j]) }
                }
                start += len
            }
        }
    }
}
