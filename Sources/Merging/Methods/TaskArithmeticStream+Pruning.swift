import CMergeKernels
import Foundation

extension TaskArithmeticStream {
    /// Model `i`'s pruned (and rescaled) task vector over one block, as the reference's Float32
    /// vector: kept elements `δ·f` (or `δ`), dropped elements +0.
    @inline(__always)
    func prunedDelta(_ i: Int, _ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, block: Int, start: Int, count len: Int,
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
                ws_merge_keep_ties(x, b, len, Self.tieBound(keep.lower), Self.tieBound(keep.upper), f ?? 1, f == nil ? 0 : 1, dt)
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

    /// How model `i` enters `ws_merge_sign_elect` over one block: unpruned, plain magnitude ranges
    /// and DARE masks are read straight from the inputs (the mask applied on the fly); tie
    /// ordinals and DELLA masks are written to `buffer` first (`prunedDelta`).
    func signOperand(_ i: Int, _ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, block: Int, start: Int, count len: Int,
                     _ st: State, scratch: DellaScratch, worker: Int, buffer: UnsafeMutablePointer<Float>) -> ws_merge_operand {
        var op = ws_merge_operand(x: x, weight: weights[i], lo: 0, hi: 0, factor: 1, kind: Int32(WS_MERGE_RAW), k0: 0, k1: 0, limit: 0,
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
            if let f = st.factors[i] {
                op.factor = f
                op.kind = Int32(WS_MERGE_BITS_SCALED)
            } else {
                op.kind = Int32(WS_MERGE_BITS)
            }
            return op
        case let .random(r, t):
            op.k0 = r.k0
            op.k1 = r.k1
            op.limit = t
            if let f = st.factors[i] {
                op.factor = f
                op.kind = Int32(WS_MERGE_RANDOM_SCALED)
            } else {
                op.kind = Int32(WS_MERGE_RANDOM)
            }
            return op
        case .della:
            break
        }
        prunedDelta(i, x, b, block: block, start: start, count: len, st, scratch: scratch, worker: worker, into: buffer)
        op.x = UnsafePointer(buffer)
        op.kind = Int32(WS_MERGE_DELTA)
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

    /// `dt = δ·f` (or δ) where `|δ|`'s bits lie in `r`, +0 elsewhere: branch-free so it vectorises.
    func keepByBits(_ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, _ r: ClosedRange<UInt32>, factor: Float?,
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
    func keepRandom(_ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, _ r: MergeRandom, start: Int, threshold t: UInt32,
                    factor: Float?, into dt: UnsafeMutablePointer<Float>) {
        ws_merge_keep_random(x, b, n, r.k0, r.k1, Int64(start), t, factor ?? 1, factor == nil ? 0 : 1, dt)
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
