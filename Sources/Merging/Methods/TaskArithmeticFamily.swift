/// The task-arithmetic family: task arithmetic, TIES, DARE, Model Breadcrumbs and DELLA share
/// one implementation, configured by a consensus and a sparsification strategy
/// (mergekit `generalized_task_arithmetic.py`).
///
/// For each model `δ_i = x_i − base`, pruned by the sparsifier (with its L1 rescale), weighted
/// `D_i = w_i·δ_i`. Without consensus `mixed = Σ D_i`, `divisor = Σ w_i` (|divisor| < 1e-8 → 1).
/// With the TIES sign election `σ = sign(Σ D_i)` (0 counts as +), `M_i = [sign D_i = σ]`
/// (zeros never agree), `mixed = Σ D_i M_i`, `divisor = Σ w_i M_i` (0 → 1).
/// `out = base + λ·mixed / (normalize ? divisor : 1)`. Float64 per element.
public struct TaskArithmeticFamily: MergeMethod {
    public enum Consensus: String, Sendable { case none, signSum }

    public struct Global { public var normalize: Bool; public var rescale: Bool; public var lambda: Double }
    public struct PerModel { public var weight: Double; public var density: Double; public var gamma: Double; public var epsilon: Double }

    public let name: String
    public let reference: String
    public let summary: String
    public let consensus: Consensus
    public let sparsification: Sparsification
    let defaultNormalize: Bool
    let defaultRescale: Bool

    public let baseRole = BaseRole.required
    public let modelCount = 1...Int.max
    public var isRandomized: Bool { sparsification == .random || sparsification == .della }
    public var scratchPerElement: Double { sparsification == .none ? 0 : 3 }

    public init(name: String, reference: String, summary: String, consensus: Consensus, sparsification: Sparsification,
                normalize: Bool, rescale: Bool) {
        self.name = name
        self.reference = reference
        self.summary = summary
        self.consensus = consensus
        self.sparsification = sparsification
        self.defaultNormalize = normalize
        self.defaultRescale = rescale
    }

    public var parameters: [ParameterSpec] {
        var specs: [ParameterSpec] = [
            .number("weight", .perModel, default: nil, "weight of the model's task vector"),
            .number("density", .perModel, default: 1, "fraction of the task vector kept (1 = all)"),
            .bool("normalize", .global, default: defaultNormalize, "divide by the sum of (agreeing) weights"),
            .bool("rescale", .global, default: defaultRescale, "restore the L1 norm of a pruned task vector"),
            .number("lambda", .global, default: 1, "scale of the merged task vector"),
            .bool("int8_mask", .global, default: false, "accepted for mergekit compatibility; masks here are never materialised"),
        ]
        if sparsification == .magnitudeOutliers {
            specs.append(.number("gamma", .perModel, default: 0.01, "fraction of largest-magnitude entries dropped"))
        }
        if sparsification == .della {
            specs.append(.number("epsilon", .perModel, default: 0.15, "half-width of the keep-probability range"))
        }
        return specs
    }

    /// Without pruning (no sparsifier, or every density ≥ 1) each element is independent.
    public func isElementwise(_ parameters: ResolvedParameters) -> Bool {
        sparsification == .none || ((try? parameters.numbers("density", fallback: 1))?.allSatisfy { $0 >= 1 } ?? false)
    }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = inputs.base else { throw MergeError.baseRequired(method: name) }
        let g = Global(normalize: try p.bool("normalize"), rescale: try p.bool("rescale"), lambda: try p.number("lambda"))
        let weights = try p.numbers("weight")
        let densities = try p.numbers("density", fallback: 1)
        let gammas = try p.numbers("gamma", fallback: 0.01)
        let epsilons = try p.numbers("epsilon", fallback: 0.15)
        let models = weights.indices.map { PerModel(weight: weights[$0], density: densities[$0], gamma: gammas[$0], epsilon: epsilons[$0]) }
        let n = inputs.count
        let cols = inputs.shape.rank == 0 ? 1 : inputs.shape.dims.last!

        // Pruned task vectors, materialised only for the models that are actually pruned.
        var pruned: [[Float]?] = Array(repeating: nil, count: models.count)
        if sparsification != .none {
            var firstError: Error?
            let lock = NSLockLike()
            var results = [[Float]?](repeating: nil, count: models.count)
            ParallelLoops.forEach(models.count) { i in
                guard models[i].density < 1 else { return }
                var d = [Float](unsafeUninitializedCapacity: n) { buf, done in
                    let x = inputs.models[i]
                    for j in 0..<n { buf[j] = x[j] - base[j] }
                    done = n
                }
                var rng = MergeRandom(seed: seed, tensor: inputs.tensorName, model: i)
                let settings = SparsifierSettings(density: models[i].density, gamma: models[i].gamma,
                                                  epsilon: models[i].epsilon, rescale: g.rescale)
                do {
                    try d.withUnsafeMutableBufferPointer {
                        try Sparsifier.apply(sparsification, $0, cols: cols, settings, random: &rng, tensor: inputs.tensorName)
                    }
                    lock.locked { results[i] = d }
                } catch {
                    lock.locked { if firstError == nil { firstError = error } }
                }
            }
            if let firstError { throw firstError }
            pruned = results
        }

        if consensus == .none {
            // Σ w_i δ̃_i with the pruned vectors as "x − base" stand-ins.
            let scale = g.normalize ? normalizer(weights.reduce(0, +)) : 1
            let c = weights.map { $0 * scale * g.lambda }
            try withOptionalBuffers(pruned) { prunedBufs in
                let xs = inputs.models.indices.map { prunedBufs[$0] ?? inputs.models[$0] }
                let isDelta = prunedBufs.map { $0 != nil }
                deltaSum(xs, isDelta: isDelta, c, base: base, into: out)
            }
            return
        }
        try withOptionalBuffers(pruned) { prunedBufs in
            let m = models.count
            let xs = inputs.models.indices.map { (prunedBufs[$0] ?? inputs.models[$0]).baseAddress! }
            let isDelta = prunedBufs.map { $0 != nil }
            let b = base.baseAddress!
            let o = out.baseAddress!
            let lambda = g.lambda
            let normalize = g.normalize
            // Blocks of 1024 elements: the vote S = Σ D_i, then the agreeing sums, each a
            // vectorisable loop per model (Float64 accumulators on the stack).
            ParallelLoops.forEachChunk(n) { range in
                withUnsafeTemporaryAllocation(of: Double.self, capacity: 3 * 1024) { tmp in
                    let S = tmp.baseAddress!, M = S + 1024, D = S + 2048
                    var start = range.lowerBound
                    while start < range.upperBound {
                        let len = min(1024, range.upperBound - start)
                        let bb = b + start
                        for j in 0..<len { S[j] = 0; M[j] = 0; D[j] = 0 }
                        for i in 0..<m {
                            let w = weights[i], x = xs[i] + start
                            if isDelta[i] {
                                for j in 0..<len { S[j] += w * Double(x[j]) }
                            } else {
                                for j in 0..<len { S[j] += w * (Double(x[j]) - Double(bb[j])) }
                            }
                        }
                        for i in 0..<m {
                            let w = weights[i], x = xs[i] + start, delta = isDelta[i]
                            for j in 0..<len {
                                let d = w * (delta ? Double(x[j]) : Double(x[j]) - Double(bb[j]))
                                let agree = S[j] >= 0 ? d > 0 : d < 0
                                M[j] += agree ? d : 0
                                D[j] += agree ? w : 0
                            }
                        }
                        let oo = o + start
                        for j in 0..<len {
                            var mixed = M[j]
                            if normalize { mixed /= (D[j] == 0 ? 1 : D[j]) }
                            oo[j] = Float(Double(bb[j]) + lambda * mixed)
                        }
                        start += len
                    }
                }
            }
        }
    }

    private func normalizer(_ total: Double) -> Double { abs(total) < 1e-8 ? 1 : 1 / total }
}

/// `out = base + Σ c_i·d_i` where `d_i` is `xs[i]` itself (a pruned task vector) or `xs[i] − base`.
func deltaSum(_ xs: [UnsafeBufferPointer<Float>], isDelta: [Bool], _ c: [Double], base: UnsafeBufferPointer<Float>,
              into out: UnsafeMutableBufferPointer<Float>) {
    if !isDelta.contains(true) {
        weightedSum(xs, c, base: base, into: out)
        return
    }
    let n = out.count
    let o = out.baseAddress!
    let b = base.baseAddress!
    let ptrs = xs.map { $0.baseAddress! }
    ParallelLoops.forEachChunk(n) { range in
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 1024) { acc in
            var start = range.lowerBound
            while start < range.upperBound {
                let len = min(1024, range.upperBound - start)
                let bb = b + start
                for j in 0..<len { acc[j] = Double(bb[j]) }
                for (i, x) in ptrs.enumerated() {
                    let w = c[i]
                    let xi = x + start
                    if isDelta[i] {
                        for j in 0..<len { acc[j] += w * Double(xi[j]) }
                    } else {
                        for j in 0..<len { acc[j] += w * (Double(xi[j]) - Double(bb[j])) }
                    }
                }
                let oo = o + start
                for j in 0..<len { oo[j] = Float(acc[j]) }
                start += len
            }
        }
    }
}

/// Calls `body` with buffers of the arrays that exist (nil elsewhere).
func withOptionalBuffers<R>(_ arrays: [[Float]?], _ body: ([UnsafeBufferPointer<Float>?]) throws -> R) throws -> R {
    func go(_ i: Int, _ acc: [UnsafeBufferPointer<Float>?]) throws -> R {
        if i == arrays.count { return try body(acc) }
        guard let a = arrays[i] else { return try go(i + 1, acc + [nil]) }
        return try a.withUnsafeBufferPointer { try go(i + 1, acc + [$0]) }
    }
    return try go(0, [])
}
