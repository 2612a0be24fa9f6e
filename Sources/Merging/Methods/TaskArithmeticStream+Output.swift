import CMergeKernels
import Foundation

extension TaskArithmeticStream {
    /// Pass 5: pruned deltas, consensus and output, window by window, in `CMergeKernels`:
    /// `ws_merge_sign_elect` (TIES consensus, or the non-zero disjoint mean of Localize-and-Stitch)
    /// or `ws_merge_weighted_sum` (task arithmetic: a
    /// running sum from the base when any vector is pruned, else the weighted deltas added to the
    /// base last). Plain magnitude ranges and DARE masks are applied on the fly; tie ordinals
    /// and DELLA masks go through a per-worker buffer (`operand`).
    func writeOutput(_ source: MergeBlockSource, _ st: State, into output: MergeOutput) throws {
        let m = prunes.count
        let pruned = prunes.map { if case .unpruned = $0 { return false } else { return true } }
        let be = blocks.blockElements
        let workers = source.loops.workers(for: min(windowBlocks, blocks.blockCount))
        // Per worker and model: one block of pruned deltas (used only where masks need a buffer).
        let deltas = UnsafeMutablePointer<Float>.allocate(capacity: max(1, workers * m * be))
        defer { deltas.deallocate() }
        let scratch = DellaScratch(workers: workers, cols: blocks.cols, rows: be / blocks.cols)
        let lambda = self.lambda, normalize = self.normalize
        let signSum = consensus != .none
        let elect: Int32 = consensus == .signSum ? 1 : 0
        var c = weights
        if !signSum {
            let total = weights.reduce(0, +)
            let scale = normalize ? (abs(total) < 1e-8 ? 1 : 1 / total) : 1
            c = weights.map { $0 * scale * lambda }
        }
        let coefficients = c
        let baseFirst: Int32 = pruned.contains(true) ? 1 : 0
        var window = 0
        while window < blocks.blockCount {
            let first = window, last = min(blocks.blockCount, window + windowBlocks)
            let lo = blocks.range(first).lowerBound, hi = blocks.range(last - 1).upperBound
            try output.fill(hi - lo) { out in
                let o = out.baseAddress!
                let errors = ErrorBox()
                source.loops.forEachBlock(last - first) { worker, k in
                    guard errors.value == nil else { return }
                    let block = first + k
                    let range = blocks.range(block)
                    let len = range.count
                    do {
                        try source.withBlock(range) { baseBuf, models in
                            let b = baseBuf!.baseAddress!
                            let dt = deltas + worker * m * be
                            let oo = o + (range.lowerBound - lo)
                            withUnsafeTemporaryAllocation(of: ws_merge_operand.self, capacity: m) { ops in
                                for i in 0..<m {
                                    ops[i] = operand(i, weight: coefficients[i], models[i].baseAddress!, b, block: block, start: range.lowerBound,
                                                     count: len, st, scratch: scratch, worker: worker, buffer: dt + i * be)
                                }
                                if signSum {
                                    ws_merge_sign_elect(b, ops.baseAddress, m, len, lambda, normalize ? 1 : 0, elect, oo)
                                } else {
                                    ws_merge_weighted_sum(b, ops.baseAddress, m, len, baseFirst, oo)
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
