import Foundation

extension TaskArithmeticStream {
    /// Pass 5: pruned deltas, consensus and output, window by window.
    func writeOutput(_ source: MergeBlockSource, _ st: State, into output: MergeOutput) throws {
        let m = prunes.count
        let pruned = prunes.map { if case .unpruned = $0 { return false } else { return true } }
        let prunedCount = pruned.filter { $0 }.count
        let slot = prunes.indices.map { i in pruned[0..<i].filter { $0 }.count }
        let be = blocks.blockElements
        let workers = ParallelLoops.workers(for: min(windowBlocks, blocks.blockCount))
        // Per worker: the pruned deltas of one block, then S, M, D accumulators of a 1024-element run.
        let deltas = UnsafeMutablePointer<Float>.allocate(capacity: max(1, workers * prunedCount * be))
        defer { deltas.deallocate() }
        let scratch = DellaScratch(workers: workers, cols: blocks.cols, rows: be / blocks.cols)
        let weights = self.weights, lambda = self.lambda, normalize = self.normalize
        let signSum = consensus == .signSum
        var c = weights
        if !signSum {
            let total = weights.reduce(0, +)
            let scale = normalize ? (abs(total) < 1e-8 ? 1 : 1 / total) : 1
            c = weights.map { $0 * scale * lambda }
        }
        let coefficients = c
        let anyPruned = prunedCount > 0
        var window = 0
        while window < blocks.blockCount {
            let first = window, last = min(blocks.blockCount, window + windowBlocks)
            let lo = blocks.range(first).lowerBound, hi = blocks.range(last - 1).upperBound
            try output.fill(hi - lo) { out in
                let o = out.baseAddress!
                let errors = ErrorBox()
                ParallelLoops.forEachBlock(last - first) { worker, k in
                    guard errors.value == nil else { return }
                    let block = first + k
                    let range = blocks.range(block)
                    let len = range.count
                    do {
                        try source.withBlock(range) { baseBuf, models in
                            let b = baseBuf!.baseAddress!
                            let xs = models.map { $0.baseAddress! }
                            let dt = deltas + worker * prunedCount * be
                            for i in 0..<m where pruned[i] {
                                prunedDelta(i, xs[i], b, block: block, start: range.lowerBound, count: len, st,
                                            scratch: scratch, worker: worker, into: dt + slot[i] * be)
                            }
                            let oo = o + (range.lowerBound - lo)
                            withUnsafeTemporaryAllocation(of: Double.self, capacity: 3 * 1024) { tmp in
                                let S = tmp.baseAddress!, M = S + 1024, D = S + 2048
                                var s0 = 0
                                while s0 < len {
                                    let run = min(1024, len - s0)
                                    let bb = b + s0
                                    if signSum {
                                        for j in 0..<run { S[j] = 0; M[j] = 0; D[j] = 0 }
                                        for i in 0..<m {
                                            let w = weights[i]
                                            if pruned[i] {
                                                let x = dt + slot[i] * be + s0
                                                for j in 0..<run { S[j] += w * Double(x[j]) }
                                            } else {
                                                let x = xs[i] + s0
                                                for j in 0..<run { S[j] += w * (Double(x[j]) - Double(bb[j])) }
                                            }
                                        }
                                        for i in 0..<m {
                                            let w = weights[i]
                                            if pruned[i] {
                                                let x = dt + slot[i] * be + s0
                                                for j in 0..<run {
                                                    let d = w * Double(x[j])
                                                    let agree = S[j] >= 0 ? d > 0 : d < 0
                                                    M[j] += agree ? d : 0
                                                    D[j] += agree ? w : 0
                                                }
                                            } else {
                                                let x = xs[i] + s0
                                                for j in 0..<run {
                                                    let d = w * (Double(x[j]) - Double(bb[j]))
                                                    let agree = S[j] >= 0 ? d > 0 : d < 0
                                                    M[j] += agree ? d : 0
                                                    D[j] += agree ? w : 0
                                                }
                                            }
                                        }
                                        let oj = oo + s0
                                        for j in 0..<run {
                                            var mixed = M[j]
                                            if normalize { mixed /= (D[j] == 0 ? 1 : D[j]) }
                                            oj[j] = Float(Double(bb[j]) + lambda * mixed)
                                        }
                                    } else if anyPruned {
                                        // deltaSum: acc starts at the base.
                                        for j in 0..<run { S[j] = Double(bb[j]) }
                                        for i in 0..<m {
                                            let w = coefficients[i]
                                            if pruned[i] {
                                                let x = dt + slot[i] * be + s0
                                                for j in 0..<run { S[j] += w * Double(x[j]) }
                                            } else {
                                                let x = xs[i] + s0
                                                for j in 0..<run { S[j] += w * (Double(x[j]) - Double(bb[j])) }
                                            }
                                        }
                                        let oj = oo + s0
                                        for j in 0..<run { oj[j] = Float(S[j]) }
                                    } else {
                                        // weightedSum: the base is added last.
                                        for j in 0..<run { S[j] = 0 }
                                        for i in 0..<m {
                                            let w = coefficients[i]
                                            let x = xs[i] + s0
                                            for j in 0..<run { S[j] += w * (Double(x[j]) - Double(bb[j])) }
                                        }
                                        let oj = oo + s0
                                        for j in 0..<run { oj[j] = Float(Double(bb[j]) + S[j]) }
                                    }
                                    s0 += run
                                }
                            }
                        }
                    } catch { errors.set(error) }
                }
                if let e = errors.value { throw e }
            }
            window = last
        }
    }
}
