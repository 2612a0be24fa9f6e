import Foundation

extension TaskArithmeticStream {
    /// Passes 1–4 (see `TaskArithmeticStream`): each model's exact rank bounds, tie ordinals and
    /// rescale factors.
    func statistics(_ source: MergeBlockSource) throws -> State {
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
}
