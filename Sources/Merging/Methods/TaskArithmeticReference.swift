import Foundation

extension TaskArithmeticFamily {
    /// The in-memory reference: materialises each pruned task vector (`Sparsifier`), then
    /// combines whole tensors. Tests check the streamed kernel against it bit for bit.
    func referenceMerge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>,
                        blockTarget: Int = TensorBlocks.defaultTarget) throws {
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
            inputs.loops.forEach(models.count) { i in
                guard models[i].density < 1 else { return }
                var d = [Float](unsafeUninitializedCapacity: n) { buf, done in
                    let x = inputs.models[i]
                    for j in 0..<n { buf[j] = x[j] - base[j] }
                    done = n
                }
                let rng = MergeRandom(seed: seed, tensor: inputs.tensorName, model: i)
                let settings = SparsifierSettings(density: models[i].density, gamma: models[i].gamma,
                                                  epsilon: models[i].epsilon, rescale: g.rescale)
                do {
                    try d.withUnsafeMutableBufferPointer {
                        try Sparsifier.apply(sparsification, $0, cols: cols, settings, random: rng, tensor: inputs.tensorName, blockTarget: blockTarget)
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
            let total = weights.reduce(0, +)
            let scale = g.normalize ? (abs(total) < 1e-8 ? 1 : 1 / total) : 1
            let c = weights.map { $0 * scale * g.lambda }
            try withOptionalBuffers(pruned) { prunedBufs in
                let xs = inputs.models.indices.map { prunedBufs[$0] ?? inputs.models[$0] }
                let isDelta = prunedBufs.map { $0 != nil }
                deltaSum(xs, isDelta: isDelta, c, base: base, into: out, loops: inputs.loops)
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
            let elect = consensus == .signSum
            // Blocks of 1024 elements: the vote S = Σ D_i, then the agreeing sums, each a
            // vectorisable loop per model (Float64 accumulators on the stack).
            inputs.loops.forEachChunk(n) { range in
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
                                let agree = elect ? (S[j] >= 0 ? d > 0 : d < 0) : d != 0 && !d.isNaN
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

}

/// `out = base + Σ c_i·d_i` where `d_i` is `xs[i]` itself (a pruned task vector) or `xs[i] − base`.
func deltaSum(_ xs: [UnsafeBufferPointer<Float>], isDelta: [Bool], _ c: [Double], base: UnsafeBufferPointer<Float>,
              into out: UnsafeMutableBufferPointer<Float>, loops: ParallelLoops) {
    if !isDelta.contains(true) {
        weightedSum(xs, c, base: base, into: out, loops: loops)
        return
    }
    let n = out.count
    let o = out.baseAddress!
    let b = base.baseAddress!
    let ptrs = xs.map { $0.baseAddress! }
    loops.forEachChunk(n) { range in
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
