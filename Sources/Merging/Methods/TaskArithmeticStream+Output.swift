import CMergeKernels
import Foundation

extension TaskArithmeticStream {
    /// Pass 5: pruned deltas, consensus and output, window by window. The sign election runs in
    /// `ws_merge_sign_elect` (CMergeKernels), with plain magnitude-range masks applied on the fly;
    /// the sums without election accumulate a 1024-element run in Float64 here.
    func writeOutput(_ source: MergeBlockSource, _ st: State, into output: MergeOutput) throws {
        let m = prunes.count
        let pruned = prunes.map { if case .unpruned = $0 { return false } else { return true } }
        let prunedCount = pruned.filter { $0 }.count
        let slot = prunes.indices.map { i in pruned[0..<i].filter { $0 }.count }
        let be = blocks.blockElements
        let workers = ParallelLoops.workers(for: min(windowBlocks, blocks.blockCount))
        // Per worker: the pruned deltas of one block (sign election: only those not masked on the fly).
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
                            let oo = o + (range.lowerBound - lo)
                            if signSum {
                                withUnsafeTemporaryAllocation(of: ws_merge_operand.self, capacity: m) { ops in
                                    for i in 0..<m {
                                        ops[i] = signOperand(i, xs[i], b, block: block, start: range.lowerBound, count: len, st,
                                                             scratch: scratch, worker: worker, buffer: dt + slot[i] * be)
                                    }
                                    ws_merge_sign_elect(b, ops.baseAddress, m, len, lambda, normalize ? 1 : 0, oo)
                                }
                                return
                            }
                            for i in 0..<m where pruned[i] {
                                prunedDelta(i, xs[i], b, block: block, start: range.lowerBound, count: len, st,
                                            scratch: scratch, worker: worker, into: dt + slot[i] * be)
                            }
                            withUnsafeTemporaryAllocation(of: Double.self, capacity: 1024) { tmp in
                                let S = tmp.baseAddress!
                                var s0 = 0
                                while s0 < len {
                                    let run = min(1024, len - s0)
                                    let bb = b + s0
                                    if anyPruned {
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
