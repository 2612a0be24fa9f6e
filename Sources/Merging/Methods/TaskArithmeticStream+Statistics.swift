import CMergeKernels
import Foundation

extension TaskArithmeticStream {
    /// Passes 1–4 (see `TaskArithmeticStream`): each model's exact rank bounds, tie ordinals and
    /// rescale factors.
    func statistics(_ source: MergeBlockSource) throws -> State {
        let m = prunes.count
        var state = State(keeps: Array(repeating: nil, count: m), lowerTiesBefore: Array(repeating: nil, count: m),
                          upperTiesBefore: Array(repeating: nil, count: m), factors: Array(repeating: nil, count: m))
        let magnitude = prunes.indices.filter { if case .ranks = prunes[$0] { return true } else { return false } }
        let randomRescaled = rescale ? prunes.indices.filter {
            switch prunes[$0] { case .random, .della: return true; default: return false }
        } : []
        guard !magnitude.isEmpty || !randomRescaled.isEmpty else { return state }

        let l1 = BlockSums(models: m, blocks: blocks.blockCount)
        let hist = try highHistograms(source, magnitude: magnitude, randomRescaled: randomRescaled, l1: l1)
        defer { HistogramScratch.give(hist) }
        for i in randomRescaled { state.factors[i] = Sparsifier.rescaleFactor(before: l1.total(before: i), after: l1.total(after: i)) }
        guard !magnitude.isEmpty else { return state }

        // Bounds: the high bin of each rank, then the bins' contents (pass 2).
        struct Pending { let rank: Int; let high: Int; let below: Int }
        var lowers: [Pending?] = Array(repeating: nil, count: magnitude.count)
        var uppers: [Pending?] = Array(repeating: nil, count: magnitude.count)
        var queries: [BinQuery] = []
        for (k, i) in magnitude.enumerated() {
            guard case let .ranks(r) = prunes[i] else { continue }
            let h = UnsafePointer(hist.baseAddress! + k * MagnitudeBounds.bins)
            if r.lowerBound > 0 {
                let (bin, below) = MagnitudeBounds.locate(h, rank: r.lowerBound)
                lowers[k] = Pending(rank: r.lowerBound, high: bin, below: below)
            }
            if r.upperBound < blocks.count {
                let (bin, below) = MagnitudeBounds.locate(h, rank: r.upperBound - 1)
                uppers[k] = Pending(rank: r.upperBound, high: bin, below: below)
            }
            for p in [lowers[k], uppers[k]].compactMap({ $0 }) where !queries.contains(BinQuery(model: i, high: UInt32(p.high))) {
                queries.append(BinQuery(model: i, high: UInt32(p.high)))
            }
        }
        let contents = try binContents(source, queries)
        defer { HistogramScratch.give(contents.low) }
        func resolve(_ i: Int, _ p: Pending, inclusiveRank: Int) -> (bits: UInt32, below: Int, ties: Int) {
            let qi = queries.firstIndex(of: BinQuery(model: i, high: UInt32(p.high)))!
            let h = UnsafePointer(contents.low.baseAddress! + qi * MagnitudeBounds.bins)
            let (low, below) = MagnitudeBounds.locate(h, rank: inclusiveRank - p.below)
            return (UInt32(p.high) << 16 | UInt32(low), p.below + below, Int(h[low]))
        }
        for (k, i) in magnitude.enumerated() {
            var keep = MagnitudeKeep()
            if let p = lowers[k] {
                let r = resolve(i, p, inclusiveRank: p.rank)
                keep.lower = .lower(bits: r.bits, below: r.below, tieCount: r.ties, rank: p.rank)
            }
            if let p = uppers[k] {
                let r = resolve(i, p, inclusiveRank: p.rank - 1)
                keep.upper = .upper(bits: r.bits, below: r.below, tieCount: r.ties, rankEnd: p.rank)
            }
            state.keeps[i] = keep
        }

        // Ties per block for bounds that keep part of their ties: from the bins' contents, or
        // pass 3 where a bin held too many elements to keep.
        var uncounted: [(model: Int, side: Int)] = []
        for i in magnitude where state.keeps[i]!.needsOrdinals {
            for (side, bound) in [state.keeps[i]!.lower, state.keeps[i]!.upper].enumerated() {
                guard let bound, bound.needsOrdinals else { continue }
                let qi = queries.firstIndex(of: BinQuery(model: i, high: bound.bits >> 16))!
                guard let perBlock = contents.candidates.tieCounts(qi, low: UInt16(bound.bits & 0xFFFF)) else {
                    uncounted.append((i, side))
                    continue
                }
                state.setTies(i, side: side, perBlock: perBlock)
            }
        }
        if !uncounted.isEmpty {
            for (i, side, perBlock) in try tieCounts(source, uncounted, state.keeps) { state.setTies(i, side: side, perBlock: perBlock) }
        }

        // Pass 4: L1 after the magnitude pruning.
        if rescale {
            try keptL1(source, magnitude, state, into: l1)
            for i in magnitude { state.factors[i] = Sparsifier.rescaleFactor(before: l1.total(before: i), after: l1.total(after: i)) }
        }
        return state
    }

    /// Pass 1: per magnitude-pruned model, the histogram of `|δ|`'s high 16 bits (the returned
    /// scratch, `bins` counters per entry of `magnitude`); L1 norms per block before pruning (and
    /// after, for the random masks) into `l1`.
    func highHistograms(_ source: MergeBlockSource, magnitude: [Int], randomRescaled: [Int],
                        l1: BlockSums) throws -> UnsafeMutableBufferPointer<UInt32> {
        let bins = MagnitudeBounds.bins
        let workers = source.loops.workers(for: blocks.blockCount)
        let hist = HistogramScratch.take(workers * max(1, magnitude.count) * bins)
        let scratch = DellaScratch(workers: workers, cols: blocks.cols, rows: blocks.blockElements / blocks.cols)
        let rescale = self.rescale
        do {
            try pass(source) { worker, block, b, xs in
                let len = blocks.range(block).count
                let start = blocks.range(block).lowerBound
                for (k, i) in magnitude.enumerated() {
                    let h = hist.baseAddress! + (worker * magnitude.count + k) * bins
                    let x = xs[i]
                    for j in 0..<len { h[Int((x[j] - b[j]).magnitude.bitPattern >> 16)] &+= 1 }
                    if rescale { l1.before[i, block] = Sparsifier.laneSum(len) { Double((x[$0] - b[$0]).magnitude) } }
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
                    l1.before[i, block] = before
                    l1.after[i, block] = after
                }
            }
        } catch {
            HistogramScratch.give(hist)
            throw error
        }
        // Worker histograms summed into worker 0's (counts < 2^32: n < 2^32).
        for k in magnitude.indices {
            let h0 = hist.baseAddress! + k * bins
            for w in 1..<max(1, workers) {
                let h = hist.baseAddress! + (w * magnitude.count + k) * bins
                for j in 0..<bins { h0[j] &+= h[j] }
            }
        }
        return hist
    }

    /// Pass 2: the low 16 bits of every `|δ|` in each query's high bin, kept per block (up to
    /// `candidateLimit` per query), and their histograms (the returned scratch, `bins` counters
    /// per query). Past the limit a query's further blocks are only counted into per-worker
    /// histograms; its tie counts then need pass 3.
    func binContents(_ source: MergeBlockSource, _ queries: [BinQuery]) throws
        -> (low: UnsafeMutableBufferPointer<UInt32>, candidates: BinCandidates) {
        let bins = MagnitudeBounds.bins, q = queries.count
        let workers = source.loops.workers(for: blocks.blockCount)
        let low = HistogramScratch.take(workers * max(1, q) * bins)
        let candidates = BinCandidates(queries: q, blocks: blocks.blockCount, limit: candidateLimit)
        guard q > 0 else { return (low, candidates) }
        let scan = UnsafeMutablePointer<UInt16>.allocate(capacity: workers * blocks.blockElements)
        defer { scan.deallocate() }
        do {
            try pass(source) { worker, block, b, xs in
                let len = blocks.range(block).count
                let found = scan + worker * blocks.blockElements
                for (k, query) in queries.enumerated() {
                    let c = ws_merge_bin_scan(xs[query.model], b, len, query.high, found)
                    if candidates.put(k, block: block, UnsafeBufferPointer(start: found, count: c)) { continue }
                    // Past the limit: count this block's values instead of keeping them.
                    let h = low.baseAddress! + (worker * q + k) * bins
                    for v in UnsafeBufferPointer(start: found, count: c) { h[Int(v)] &+= 1 }
                }
            }
        } catch {
            HistogramScratch.give(low)
            throw error
        }
        // Worker histograms (only blocks scanned after an overflow) plus the kept values.
        for k in 0..<q {
            let h0 = low.baseAddress! + k * bins
            for w in 1..<max(1, workers) {
                let h = low.baseAddress! + (w * q + k) * bins
                for j in 0..<bins { h0[j] &+= h[j] }
            }
            candidates.forEach(k) { h0[Int($0)] &+= 1 }
        }
        return (low, candidates)
    }

    /// Pass 3: per (model, side) bound, its ties (`|δ|` bits equal to the bound's) per block.
    func tieCounts(_ source: MergeBlockSource, _ bounds: [(model: Int, side: Int)], _ keeps: [MagnitudeKeep?]) throws
        -> [(model: Int, side: Int, perBlock: [Int])] {
        let nb = blocks.blockCount
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: bounds.count * nb)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: bounds.count * nb)
        let bits = bounds.map { ($0.side == 0 ? keeps[$0.model]!.lower : keeps[$0.model]!.upper)!.bits }
        try pass(source) { _, block, b, xs in
            let len = blocks.range(block).count
            for (k, bound) in bounds.enumerated() {
                let x = xs[bound.model], t = bits[k]
                var c = 0
                for j in 0..<len where (x[j] - b[j]).magnitude.bitPattern == t { c += 1 }
                counts[k * nb + block] = c
            }
        }
        return bounds.enumerated().map { k, bound in (bound.model, bound.side, Array(UnsafeBufferPointer(start: counts + k * nb, count: nb))) }
    }

    /// Pass 4: L1 norms per block after the magnitude pruning, into `l1.after`.
    func keptL1(_ source: MergeBlockSource, _ magnitude: [Int], _ st: State, into l1: BlockSums) throws {
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
                l1.after[i, block] = s
            }
        }
    }
}

/// One model's high bin holding a rank bound.
struct BinQuery: Hashable {
    let model: Int
    let high: UInt32
}

/// Per-model, per-block Float64 sums (L1 norms before and after pruning), added in block order.
final class BlockSums: @unchecked Sendable {
    struct Table {
        let p: UnsafeMutablePointer<Double>
        let blocks: Int
        subscript(model: Int, block: Int) -> Double {
            get { p[model * blocks + block] }
            nonmutating set { p[model * blocks + block] = newValue }
        }
    }

    let before: Table, after: Table

    init(models: Int, blocks: Int) {
        let n = max(1, models * blocks)
        before = Table(p: .allocate(capacity: n), blocks: blocks)
        after = Table(p: .allocate(capacity: n), blocks: blocks)
        before.p.initialize(repeating: 0, count: n)
        after.p.initialize(repeating: 0, count: n)
    }

    deinit {
        before.p.deallocate()
        after.p.deallocate()
    }

    func total(before model: Int) -> Double { Self.total(before, model) }
    func total(after model: Int) -> Double { Self.total(after, model) }

    private static func total(_ t: Table, _ model: Int) -> Double {
        var s = 0.0
        for block in 0..<t.blocks { s += t[model, block] }
        return s
    }
}

/// The low 16 bits of the elements in each query's bin, per block, while a query's total stays
/// within `limit`; past it the query is marked overflowed and its later blocks are not stored.
final class BinCandidates: @unchecked Sendable {
    private let blocks: Int
    private let limit: Int
    private var values: [[UInt16]?]
    private var totals: [Int]
    private var over: [Bool]
    private let lock = NSLockLike()

    init(queries: Int, blocks: Int, limit: Int) {
        self.blocks = blocks
        self.limit = limit
        values = Array(repeating: nil, count: queries * blocks)
        totals = Array(repeating: 0, count: queries)
        over = Array(repeating: false, count: queries)
    }

    /// Stores block `block`'s values for query `q`; false when the query is (now) overflowed.
    func put(_ q: Int, block: Int, _ found: UnsafeBufferPointer<UInt16>) -> Bool {
        lock.locked {
            if over[q] { return false }
            if totals[q] + found.count > limit {
                over[q] = true
                return false
            }
            totals[q] += found.count
            values[q * blocks + block] = Array(found)
            return true
        }
    }

    func forEach(_ q: Int, _ body: (UInt16) -> Void) {
        for b in 0..<blocks { values[q * blocks + b]?.forEach(body) }
    }

    /// Per block, how many of query `q`'s values equal `low`; nil when the query overflowed.
    func tieCounts(_ q: Int, low: UInt16) -> [Int]? {
        if over[q] { return nil }
        return (0..<blocks).map { b in values[q * blocks + b]?.reduce(0) { $0 + ($1 == low ? 1 : 0) } ?? 0 }
    }
}
