import Foundation

/// The streamed kernel of `TaskArithmeticFamily`: the same numbers as the in-memory reference
/// (`TaskArithmeticFamily.referenceMerge`, `Sparsifier`), bit for bit, computed in a few passes
/// over row blocks (`TensorBlocks`) without materialising any task vector:
///
/// 1. statistics: high-16-bit histograms of `|δ_i|` bit patterns (magnitude pruning), L1 norms
///    per block before pruning, and after pruning for the random masks (DARE, DELLA);
/// 2. low-16-bit histograms inside the bins holding the rank bounds → exact thresholds;
/// 3. only when a bound keeps part of its ties: tie counts per block (ordinals across blocks);
/// 4. only for magnitude pruning with `rescale`: L1 norms per block after pruning;
/// 5. the output: pruned (and rescaled) deltas, sign election, disjoint mean or weighted sum,
///    written window by window to the `MergeOutput`.
///
/// `δ_i = x_i − base` is recomputed from the inputs in every pass (Float32, as the reference's
/// materialised vectors). Passes 1–4 run blocks on all cores with per-thread histograms; sums are
/// kept per block and added in block order, so results do not depend on the thread count.
struct TaskArithmeticStream {
    /// How one model's task vector is pruned.
    enum Prune {
        /// Used as is: `δ = Double(x) − Double(base)` (density ≥ 1 or no sparsifier).
        case unpruned
        /// Density ≤ 0: all zeros, no rescale.
        case zero
        /// Keep the ascending magnitude ranks in the range (TIES trim, breadcrumbs).
        case ranks(Range<Int>)
        /// Keep element j when `bits32(j) ≤ limit` (DARE).
        case random(MergeRandom, limit: UInt32)
        /// DELLA per-row rank-dependent keep probability.
        case della(MergeRandom, density: Double, epsilon: Double)
    }

    let consensus: TaskArithmeticFamily.Consensus
    let prunes: [Prune]
    let weights: [Double]
    let rescale: Bool
    let normalize: Bool
    let lambda: Double
    let blocks: TensorBlocks
    /// Output window (whole blocks) handed to `MergeOutput.fill` at once.
    var windowBlocks: Int { blocks.windowBlocks }

    init(family: TaskArithmeticFamily, weights: [Double], settings: [SparsifierSettings], global: TaskArithmeticFamily.Global,
         tensorName: String, shape: [Int], seed: UInt64, blockTarget: Int = TensorBlocks.defaultTarget) throws {
        let n = shape.reduce(1, *)
        consensus = family.consensus
        self.weights = weights
        rescale = global.rescale
        normalize = global.normalize
        lambda = global.lambda
        blocks = TensorBlocks(count: n, cols: shape.last ?? 1, target: blockTarget)
        var prunes: [Prune] = []
        for (i, s) in settings.enumerated() {
            let method = family.sparsification
            if method == .none || s.density >= 1 || n == 0 {
                prunes.append(.unpruned)
                continue
            }
            if s.density <= 0 {
                prunes.append(.zero)
                continue
            }
            let random = MergeRandom(seed: seed, tensor: tensorName, model: i)
            switch method {
            case .none:
                prunes.append(.unpruned)
            case .magnitude, .magnitudeOutliers:
                let r = Sparsifier.magnitudeRanks(method, count: n, s).clamped(to: 0..<n)
                prunes.append(r.isEmpty ? .zero : .ranks(r))
            case .random:
                prunes.append(.random(random, limit: MergeRandom.limit(s.density)!))
            case .della:
                try Sparsifier.checkDella(s, tensor: tensorName)
                prunes.append(.della(random, density: s.density, epsilon: s.epsilon))
            }
        }
        self.prunes = prunes
    }

    // MARK: per-model state found by the statistics passes

    private struct State {
        var keeps: [MagnitudeKeep?]
        /// Per bound needing ordinals: ties at its bits before each block (nb + 1 running counts).
        var lowerTiesBefore: [[Int]?]
        var upperTiesBefore: [[Int]?]
        var factors: [Float?]

        /// Model `i`'s kept set restricted to `block`, with tie ordinals counted from the block's
        /// start. At most one block per bound keeps part of its ties; every other block gets a
        /// plain bit range (the vectorised path).
        func keep(_ i: Int, block: Int) -> MagnitudeKeep {
            var k = keeps[i]!
            if k.needsOrdinals {
                k.lower = k.lower.map { $0.localized(lowerTiesBefore[i].map { ($0[block], $0[block + 1] - $0[block]) }) }
                k.upper = k.upper.map { $0.localized(upperTiesBefore[i].map { ($0[block], $0[block + 1] - $0[block]) }) }
            }
            return k
        }
    }

    func run(_ source: MergeBlockSource, into output: MergeOutput) throws {
        precondition(source.hasBase && source.modelCount == prunes.count && source.shape.elementCount == blocks.count)
        precondition(blocks.count < Int(UInt32.max), "tensor too large for rank selection")
        let state = try statistics(source)
        try writeOutput(source, state, into: output)
    }

    /// Runs `body(worker, block, base, models)` over every block on all cores.
    private func pass(_ source: MergeBlockSource,
                      _ body: (Int, Int, UnsafePointer<Float>, [UnsafePointer<Float>]) -> Void) throws {
        let errors = ErrorBox()
        ParallelLoops.forEachBlock(blocks.blockCount) { worker, block in
            guard errors.value == nil else { return }
            do {
                try source.withBlock(blocks.range(block)) { base, models in
                    body(worker, block, base!.baseAddress!, models.map { $0.baseAddress! })
                }
            } catch { errors.set(error) }
        }
        if let e = errors.value { throw e }
    }

    private func statistics(_ source: MergeBlockSource) throws -> State {
        let m = prunes.count
        let nb = blocks.blockCount
        var state = State(keeps: Array(repeating: nil, count: m), lowerTiesBefore: Array(repeating: nil, count: m),
                          upperTiesBefore: Array(repeating: nil, count: m), factors: Array(repeating: nil, count: m))
        let magnitude = prunes.indices.filter { if case .ranks = prunes[$0] { return true } else { return false } }
        let randomRescaled = rescale ? prunes.indices.filter {
            switch prunes[$0] { case .random, .della: return true; default: return false }
        } : []
        guard !magnitude.isEmpty || !randomRescaled.isEmpty else { return state }

        // Pass 1: high-bit histograms, L1 before (and after, for random masks) per block.
        let bins = MagnitudeBounds.bins
        let workers = ParallelLoops.workers(for: nb)
        let hist = HistogramScratch.take(workers * max(1, magnitude.count) * bins)
        defer { HistogramScratch.give(hist) }
        let l1Before = UnsafeMutablePointer<Double>.allocate(capacity: m * nb)
        let l1After = UnsafeMutablePointer<Double>.allocate(capacity: m * nb)
        defer { l1Before.deallocate(); l1After.deallocate() }
        l1Before.initialize(repeating: 0, count: m * nb)
        l1After.initialize(repeating: 0, count: m * nb)
        let scratch = DellaScratch(workers: workers, cols: blocks.cols, rows: blocks.blockElements / blocks.cols)
        let rescale = self.rescale
        try pass(source) { worker, block, b, xs in
            let len = blocks.range(block).count
            let start = blocks.range(block).lowerBound
            for (k, i) in magnitude.enumerated() {
                let h = hist.baseAddress! + (worker * magnitude.count + k) * bins
                let x = xs[i]
                for j in 0..<len { h[Int((x[j] - b[j]).magnitude.bitPattern >> 16)] &+= 1 }
                if rescale { l1Before[i * nb + block] = Sparsifier.laneSum(len) { Double((x[$0] - b[$0]).magnitude) } }
            }
            for i in randomRescaled {
                let x = xs[i]
                var before = 0.0, after = 0.0
                switch prunes[i] {
                case let .random(r, t):
                    (before, after) = randomL1(x, b, len, r, start: start, limit: t)
                case let .della(r, density, epsilon):
                    before = Sparsifier.laneSum(len) { Double((x[$0] - b[$0]).magnitude) }
                    let keep = scratch.mask(worker)
                    dellaMask(x, b, start: start, count: len, random: r, density: density, epsilon: epsilon,
                              keys: scratch.keys(worker), into: keep)
                    after = Sparsifier.laneSum(len) { keep[$0] ? Double((x[$0] - b[$0]).magnitude) : 0 }
                default:
                    break
                }
                l1Before[i * nb + block] = before
                l1After[i * nb + block] = after
            }
        }
        func total(_ p: UnsafeMutablePointer<Double>, _ i: Int) -> Double {
            var s = 0.0
            for block in 0..<nb { s += p[i * nb + block] }
            return s
        }
        for i in randomRescaled { state.factors[i] = Sparsifier.rescaleFactor(before: total(l1Before, i), after: total(l1After, i)) }
        guard !magnitude.isEmpty else { return state }

        // Bounds: the high bin of each rank, then pass 2 over the distinct (model, bin) pairs.
        // Worker histograms summed into worker 0's (counts < 2^32: n < 2^32).
        for k in magnitude.indices {
            let h0 = hist.baseAddress! + k * bins
            for w in 1..<max(1, workers) {
                let h = hist.baseAddress! + (w * magnitude.count + k) * bins
                for j in 0..<bins { h0[j] &+= h[j] }
            }
        }
        struct Query: Hashable { let k: Int; let high: Int }
        struct Pending { let rank: Int; let high: Int; let below: Int }
        var lowers: [Pending?] = Array(repeating: nil, count: magnitude.count)
        var uppers: [Pending?] = Array(repeating: nil, count: magnitude.count)
        var queries: [Query] = []
        for (k, i) in magnitude.enumerated() {
            guard case let .ranks(r) = prunes[i] else { continue }
            let h = UnsafePointer(hist.baseAddress! + k * bins)
            if r.lowerBound > 0 {
                let (bin, below) = MagnitudeBounds.locate(h, rank: r.lowerBound)
                lowers[k] = Pending(rank: r.lowerBound, high: bin, below: below)
            }
            if r.upperBound < blocks.count {
                let (bin, below) = MagnitudeBounds.locate(h, rank: r.upperBound - 1)
                uppers[k] = Pending(rank: r.upperBound, high: bin, below: below)
            }
            for p in [lowers[k], uppers[k]].compactMap({ $0 }) where !queries.contains(Query(k: k, high: p.high)) {
                queries.append(Query(k: k, high: p.high))
            }
        }
        let q = queries.count
        let lowHist = HistogramScratch.take(workers * max(1, q) * bins)
        defer { HistogramScratch.give(lowHist) }
        if !queries.isEmpty {
            let h2 = lowHist.baseAddress!
            let qs = queries.map { (model: magnitude[$0.k], high: UInt32($0.high)) }
            try pass(source) { worker, block, b, xs in
                let len = blocks.range(block).count
                for (k, query) in qs.enumerated() {
                    let h = h2 + (worker * q + k) * bins
                    let x = xs[query.model]
                    let high = query.high
                    for j in 0..<len {
                        let bits = (x[j] - b[j]).magnitude.bitPattern
                        if bits >> 16 == high { h[Int(bits & 0xFFFF)] &+= 1 }
                    }
                }
            }
            for k in 0..<q {
                for w in 1..<max(1, workers) {
                    let h = h2 + (w * q + k) * bins
                    for j in 0..<bins { h2[k * bins + j] &+= h[j] }
                }
            }
        }
        func resolve(_ k: Int, _ p: Pending, inclusiveRank: Int) -> (bits: UInt32, below: Int, ties: Int) {
            let qi = queries.firstIndex(of: Query(k: k, high: p.high))!
            let h = UnsafePointer(lowHist.baseAddress! + qi * bins)
            let (low, below) = MagnitudeBounds.locate(h, rank: inclusiveRank - p.below)
            return (UInt32(p.high) << 16 | UInt32(low), p.below + below, Int(h[low]))
        }
        for (k, i) in magnitude.enumerated() {
            var keep = MagnitudeKeep()
            if let p = lowers[k] {
                let r = resolve(k, p, inclusiveRank: p.rank)
                keep.lower = .lower(bits: r.bits, below: r.below, tieCount: r.ties, rank: p.rank)
            }
            if let p = uppers[k] {
                let r = resolve(k, p, inclusiveRank: p.rank - 1)
                keep.upper = .upper(bits: r.bits, below: r.below, tieCount: r.ties, rankEnd: p.rank)
            }
            state.keeps[i] = keep
        }

        // Pass 3: tie counts per block for bounds that keep part of their ties.
        let ordinal = magnitude.filter { state.keeps[$0]!.needsOrdinals }
        if !ordinal.isEmpty {
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: 2 * m * nb)
            defer { counts.deallocate() }
            counts.initialize(repeating: 0, count: 2 * m * nb)
            let keeps = state.keeps
            try pass(source) { _, block, b, xs in
                let len = blocks.range(block).count
                for i in ordinal {
                    let x = xs[i]
                    for (side, bound) in [keeps[i]!.lower, keeps[i]!.upper].enumerated() {
                        guard let bound, bound.needsOrdinals else { continue }
                        var c = 0
                        for j in 0..<len where (x[j] - b[j]).magnitude.bitPattern == bound.bits { c += 1 }
                        counts[(2 * i + side) * nb + block] = c
                    }
                }
            }
            for i in ordinal {
                for side in 0..<2 {
                    var before = [Int](repeating: 0, count: nb + 1)
                    for block in 0..<nb { before[block + 1] = before[block] + counts[(2 * i + side) * nb + block] }
                    if side == 0 { state.lowerTiesBefore[i] = before } else { state.upperTiesBefore[i] = before }
                }
            }
        }

        // Pass 4: L1 after the magnitude pruning.
        if rescale {
            let st = state
            try pass(source) { _, block, b, xs in
                let len = blocks.range(block).count
                for i in magnitude {
                    let x = xs[i]
                    let keep = st.keep(i, block: block)
                    var s = 0.0
                    if !keep.needsOrdinals {
                        if let r = keep.bitRange {
                            let lo = r.lowerBound, span = r.upperBound &- r.lowerBound
                            s = Sparsifier.laneSum(len) {
                                let d = (x[$0] - b[$0]).magnitude
                                return d.bitPattern &- lo <= span ? Double(d) : 0
                            }
                        }
                    } else {
                        // laneSum visits j in increasing order, so the tie ordinals advance in index order.
                        var lo = 0, hi = 0
                        s = Sparsifier.laneSum(len) {
                            let d = (x[$0] - b[$0]).magnitude
                            return keep.keeps(d.bitPattern, lowerOrdinal: &lo, upperOrdinal: &hi) ? Double(d) : 0
                        }
                    }
                    l1After[i * nb + block] = s
                }
            }
            for i in magnitude { state.factors[i] = Sparsifier.rescaleFactor(before: total(l1Before, i), after: total(l1After, i)) }
        }
        return state
    }

    /// Pass 5: pruned deltas, consensus and output, window by window.
    private func writeOutput(_ source: MergeBlockSource, _ st: State, into output: MergeOutput) throws {
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

    /// Model `i`'s pruned (and rescaled) task vector over one block, as the reference's Float32
    /// vector: kept elements `δ·f` (or `δ`), dropped elements +0.
    @inline(__always)
    private func prunedDelta(_ i: Int, _ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, block: Int, start: Int, count len: Int,
                             _ st: State, scratch: DellaScratch, worker: Int, into dt: UnsafeMutablePointer<Float>) {
        let f = st.factors[i]
        switch prunes[i] {
        case .unpruned:
            return
        case .zero:
            dt.update(repeating: 0, count: len)
        case .ranks:
            let keep = st.keep(i, block: block)
            if !keep.needsOrdinals {
                guard let r = keep.bitRange else {
                    dt.update(repeating: 0, count: len)
                    return
                }
                keepByBits(x, b, len, r, factor: f, into: dt)
            } else {
                var lo = 0, hi = 0
                for j in 0..<len {
                    let d = x[j] - b[j]
                    let kept = keep.keeps(d.magnitude.bitPattern, lowerOrdinal: &lo, upperOrdinal: &hi)
                    dt[j] = kept ? (f.map { d * $0 } ?? d) : 0
                }
            }
        case let .random(r, t):
            keepRandom(x, b, len, r, start: start, threshold: t, factor: f, into: dt)
        case let .della(r, density, epsilon):
            let keep = scratch.mask(worker)
            dellaMask(x, b, start: start, count: len, random: r, density: density, epsilon: epsilon, keys: scratch.keys(worker), into: keep)
            for j in 0..<len {
                let d = x[j] - b[j]
                dt[j] = keep[j] ? (f.map { d * $0 } ?? d) : 0
            }
        }
    }

    /// `dt = δ·f` (or δ) where `|δ|`'s bits lie in `r`, +0 elsewhere: branch-free so it vectorises.
    private func keepByBits(_ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, _ r: ClosedRange<UInt32>, factor: Float?,
                            into dt: UnsafeMutablePointer<Float>) {
        let lo = r.lowerBound, span = r.upperBound &- r.lowerBound
        if let f = factor {
            for j in 0..<n {
                let d = x[j] - b[j]
                let keep: UInt32 = (d.bitPattern & 0x7FFF_FFFF) &- lo <= span ? ~0 : 0
                dt[j] = Float(bitPattern: (d * f).bitPattern & keep)
            }
        } else {
            for j in 0..<n {
                let d = x[j] - b[j]
                let keep: UInt32 = (d.bitPattern & 0x7FFF_FFFF) &- lo <= span ? ~0 : 0
                dt[j] = Float(bitPattern: d.bitPattern & keep)
            }
        }
    }

    /// DARE: `dt = δ·f` (or δ) where `bits32(start + j) ≤ t`, +0 elsewhere.
    private func keepRandom(_ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, _ r: MergeRandom, start: Int, threshold t: UInt32,
                            factor: Float?, into dt: UnsafeMutablePointer<Float>) {
        let scale = factor != nil, f = factor ?? 1
        let limit = SIMD8<UInt32>(repeating: t)
        var j = 0
        while j + 8 <= n {
            var d = SIMD8Load.floats(x + j) - SIMD8Load.floats(b + j)
            if scale { d *= f }
            SIMD8Load.store(d.replacing(with: 0, where: .!(r.bits32x8(start + j) .<= limit)), dt + j)
            j += 8
        }
        while j < n {
            let d = x[j] - b[j]
            dt[j] = r.bits32(start + j) <= t ? (scale ? d * f : d) : 0
            j += 1
        }
    }

    /// `Sparsifier.laneSum` of `|δ_j|` over all elements and over the elements DARE keeps, in one
    /// pass, eight elements at a time (the same four lanes and order as `laneSum`).
    private func randomL1(_ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, _ r: MergeRandom, start: Int,
                          limit t: UInt32) -> (before: Double, after: Double) {
        let limit = SIMD8<UInt32>(repeating: t)
        var all = SIMD4<Double>(), kept = SIMD4<Double>()
        var j = 0
        while j + 8 <= n {
            let d = SIMD8Load.magnitude(SIMD8Load.floats(x + j) - SIMD8Load.floats(b + j))
            let k = d.replacing(with: 0, where: .!(r.bits32x8(start + j) .<= limit))
            all += SIMD4<Double>(d.lowHalf)
            all += SIMD4<Double>(d.highHalf)
            kept += SIMD4<Double>(k.lowHalf)
            kept += SIMD4<Double>(k.highHalf)
            j += 8
        }
        // The rest as laneSum continues (lane j mod 4; j is a multiple of 8 here).
        var lane = 0
        while j < n {
            let d = Double((x[j] - b[j]).magnitude)
            all[lane] += d
            kept[lane] += r.bits32(start + j) <= t ? d : 0
            j += 1
            lane = (lane + 1) & 3
        }
        return ((all[0] + all[1]) + (all[2] + all[3]), (kept[0] + kept[1]) + (kept[2] + kept[3]))
    }

    /// The DELLA keep mask of whole rows `start..<start+count` (see `Sparsifier.dellaMask`).
    private func dellaMask(_ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, start: Int, count: Int, random: MergeRandom,
                           density: Double, epsilon: Double, keys: UnsafeMutableBufferPointer<UInt64>, into keep: UnsafeMutablePointer<Bool>) {
        let c = blocks.cols
        var row = 0
        while row < count {
            let len = min(c, count - row)
            for j in 0..<len { keys[j] = RankSelection.key(x[row + j] - b[row + j], j) }
            var rowKeys = UnsafeMutableBufferPointer(rebasing: keys[0..<len])
            rowKeys.sort()
            for r in 0..<len {
                let j = Int(UInt32.max - UInt32(truncatingIfNeeded: keys[r]))
                keep[row + j] = random.keeps(start + row + j, probability: Sparsifier.dellaProbability(rank: r, of: len, density: density, epsilon: epsilon))
            }
            row += len
        }
    }
}

/// Per-worker buffers of the DELLA mask: one row of sort keys and one block of keep flags.
private final class DellaScratch: @unchecked Sendable {
    let cols: Int
    let blockElements: Int
    private let keyStore: UnsafeMutablePointer<UInt64>
    private let maskStore: UnsafeMutablePointer<Bool>

    init(workers: Int, cols: Int, rows: Int) {
        self.cols = cols
        blockElements = cols * max(1, rows)
        keyStore = .allocate(capacity: workers * cols)
        maskStore = .allocate(capacity: workers * blockElements)
        maskStore.initialize(repeating: false, count: workers * blockElements)
    }

    deinit {
        keyStore.deallocate()
        maskStore.deallocate()
    }

    func keys(_ worker: Int) -> UnsafeMutableBufferPointer<UInt64> { UnsafeMutableBufferPointer(start: keyStore + worker * cols, count: cols) }
    func mask(_ worker: Int) -> UnsafeMutablePointer<Bool> { maskStore + worker * blockElements }
}

/// Unaligned eight-lane loads and stores of Float32.
enum SIMD8Load {
    @inline(__always)
    static func floats(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// `|v|` lane-wise by clearing the sign bits (as `Float.magnitude`).
    @inline(__always)
    static func magnitude(_ v: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
    }
}
