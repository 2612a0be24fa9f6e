import CMergeKernels
import Foundation

extension TaskArithmeticStream {
    /// How model `i` enters the output kernels over one block, with `weight`: unpruned, plain
    /// magnitude ranges and DARE masks are read straight from the inputs (the mask applied on
    /// the fly); tie ordinals and DELLA masks are written to `buffer` first.
    func operand(_ i: Int, weight: Double, _ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, block: Int, start: Int, count len: Int,
                 _ st: State, scratch: DellaScratch, worker: Int, buffer: UnsafeMutablePointer<Float>) -> ws_merge_operand {
        var op = ws_merge_operand(x: x, weight: weight, lo: 0, hi: 0, factor: 1, kind: Int32(WS_MERGE_RAW), k0: 0, k1: 0, limit: 0,
                                  start: Int64(start))
        switch prunes[i] {
        case .unpruned:
            return op
        case .zero:
            op.kind = Int32(WS_MERGE_ZERO)
            return op
        case .ranks:
            let keep = st.keep(i, block: block)
            guard !keep.needsOrdinals else { break }
            // |δ|'s bits are at most 0x7FFFFFFF: clamp the range to that (the kernel compares signed).
            guard let r = keep.bitRange, r.lowerBound <= 0x7FFF_FFFF else {
                op.kind = Int32(WS_MERGE_ZERO)
                return op
            }
            op.lo = r.lowerBound
            op.hi = min(r.upperBound, 0x7FFF_FFFF)
            return Self.scaled(op, st.factors[i], plain: WS_MERGE_BITS, scaled: WS_MERGE_BITS_SCALED)
        case let .random(r, t):
            op.k0 = r.k0
            op.k1 = r.k1
            op.limit = t
            return Self.scaled(op, st.factors[i], plain: WS_MERGE_RANDOM, scaled: WS_MERGE_RANDOM_SCALED)
        case let .della(r, density, epsilon):
            let keep = scratch.mask(worker)
            dellaMask(x, b, start: start, count: len, random: r, density: density, epsilon: epsilon, keys: scratch.keys(worker), into: keep)
            let f = st.factors[i]
            for j in 0..<len {
                let d = x[j] - b[j]
                buffer[j] = keep[j] ? (f.map { d * $0 } ?? d) : 0
            }
            op.x = UnsafePointer(buffer)
            op.kind = Int32(WS_MERGE_DELTA)
            return op
        }
        // A magnitude range that keeps part of the ties at a bound (one block per bound).
        let keep = st.keep(i, block: block), f = st.factors[i]
        ws_merge_keep_ties(x, b, len, Self.tieBound(keep.lower), Self.tieBound(keep.upper), f ?? 1, f == nil ? 0 : 1, buffer)
        op.x = UnsafePointer(buffer)
        op.kind = Int32(WS_MERGE_DELTA)
        return op
    }

    /// `op` with its rescale factor (the `scaled` kind) or without (the `plain` kind).
    static func scaled(_ op: ws_merge_operand, _ factor: Float?, plain: Int, scaled: Int) -> ws_merge_operand {
        var op = op
        op.factor = factor ?? 1
        op.kind = Int32(factor == nil ? plain : scaled)
        return op
    }

    /// A block's bound for `ws_merge_keep_ties`.
    static func tieBound(_ bound: MagnitudeBound?) -> ws_merge_tie_bound {
        guard let bound else { return ws_merge_tie_bound(present: 0, bits: 0, from: 0, to: 0) }
        let r: Range<Int> = switch bound.rule {
        case .all: 0..<Int.max
        case .none: 0..<0
        case let .ordinals(r): r
        }
        return ws_merge_tie_bound(present: 1, bits: bound.bits, from: Int64(r.lowerBound), to: Int64(r.upperBound))
    }

    /// `Sparsifier.laneSum` of `|δ_j|` over all elements and over the elements DARE keeps, in one
    /// pass (the same four lanes and order as `laneSum`).
    func randomL1(_ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, _ r: MergeRandom, start: Int,
                  limit t: UInt32) -> (before: Double, after: Double) {
        var sums = (0.0, 0.0)
        withUnsafeMutableBytes(of: &sums) { ws_merge_random_l1(x, b, n, r.k0, r.k1, Int64(start), t, $0.baseAddress!.assumingMemoryBound(to: Double.self)) }
        return sums
    }

    /// The DELLA keep mask of whole rows `start..<start+count` (see `Sparsifier.dellaMask`).
    func dellaMask(_ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, start: Int, count: Int, random: MergeRandom,
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
final class DellaScratch: @unchecked Sendable {
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
