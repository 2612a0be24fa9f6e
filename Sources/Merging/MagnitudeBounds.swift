/// Streamed exact rank selection by magnitude, in the order of `RankSelection.key`: ascending
/// `|x|` bit pattern, and among equal magnitudes the lower index ranks higher.
///
/// A kept rank range `[lo, hi)` becomes two bounds found from histograms of the magnitude bit
/// patterns, without per-element keys: a first pass counts the high 16 bits, a second pass the
/// low 16 bits inside the one high bin that holds the rank. That gives the bound's exact bit
/// pattern `t`, the elements below it (`c`) and the ties at it (`T`). Which ties are kept depends
/// on their position: the lower bound keeps the first `c + T − lo` ties in index order, the upper
/// bound the last `hi − c` (ordinals count the ties at `t` in index order). Only when a bound
/// keeps some but not all of its ties (and `t > 0`) does a kernel need a third pass counting ties
/// per block. Ties at `t = 0` are zeros: kept or dropped, they contribute nothing.
enum MagnitudeBounds {
    static let bins = 1 << 16

    /// The bin of `hist` (counts of `bins` bins) holding ascending rank `rank`, and the number of
    /// elements in the bins below it.
    static func locate(_ hist: UnsafePointer<UInt32>, rank: Int) -> (bin: Int, below: Int) {
        var below = 0
        for b in 0..<bins {
            if rank < below + Int(hist[b]) { return (b, below) }
            below += Int(hist[b])
        }
        preconditionFailure("rank \(rank) beyond the histogram's \(below) elements")
    }
}

/// Which of the ties at a bound's bit pattern are kept, by ordinal in index order.
enum TieRule: Equatable, Sendable {
    case all, none
    case ordinals(Range<Int>)
}

/// One side of a kept magnitude range.
struct MagnitudeBound: Equatable, Sendable {
    /// The bit pattern `t` of the bound's magnitude.
    let bits: UInt32
    let rule: TieRule

    /// The lower bound of rank `lo`: `c` elements lie below `t`, `tieCount` at it.
    static func lower(bits: UInt32, below c: Int, tieCount: Int, rank lo: Int) -> MagnitudeBound {
        let keep = c + tieCount - lo
        return MagnitudeBound(bits: bits, rule: bits == 0 || keep >= tieCount ? .all : keep <= 0 ? .none : .ordinals(0..<keep))
    }

    /// The upper bound of inclusive rank `hi − 1`.
    static func upper(bits: UInt32, below c: Int, tieCount: Int, rankEnd hi: Int) -> MagnitudeBound {
        let keep = hi - c
        return MagnitudeBound(bits: bits, rule: bits == 0 || keep >= tieCount ? .all : keep <= 0 ? .none : .ordinals((tieCount - keep)..<tieCount))
    }

    var needsOrdinals: Bool { if case .ordinals = rule { return true } else { return false } }

    /// The bound seen from one block holding `ties.count` of its ties, `ties.before` of them in
    /// earlier blocks: ordinals shifted to the block, and `.all`/`.none` when the block's ties are
    /// all on one side of the cut. nil counts: the bound needs no ordinals.
    func localized(_ ties: (before: Int, count: Int)?) -> MagnitudeBound {
        guard case let .ordinals(r) = rule, let ties else { return self }
        let lo = max(0, r.lowerBound - ties.before), hi = min(ties.count, r.upperBound - ties.before)
        if lo >= hi { return MagnitudeBound(bits: bits, rule: .none) }
        if lo == 0 && hi == ties.count { return MagnitudeBound(bits: bits, rule: .all) }
        return MagnitudeBound(bits: bits, rule: .ordinals(lo..<hi))
    }
}

/// The kept set of one task vector: `lower ≤ key ≤ upper` (a nil bound is open).
struct MagnitudeKeep: Sendable {
    var lower: MagnitudeBound?
    var upper: MagnitudeBound?
    /// No element is kept.
    var empty = false

    var needsOrdinals: Bool { !empty && (lower?.needsOrdinals ?? false || upper?.needsOrdinals ?? false) }

    /// Without partial ties the kept set is exactly the elements whose magnitude bits lie in this
    /// range (nil: nothing is kept).
    var bitRange: ClosedRange<UInt32>? {
        precondition(!needsOrdinals)
        if empty { return nil }
        var lo: UInt32 = 0
        var hi: UInt32 = .max
        if let l = lower {
            if l.rule == .all { lo = l.bits } else if l.bits == .max { return nil } else { lo = l.bits + 1 }
        }
        if let u = upper {
            if u.rule == .all { hi = u.bits } else if u.bits == 0 { return nil } else { hi = u.bits - 1 }
        }
        return lo <= hi ? lo...hi : nil
    }

    /// The general test, with the running ordinals of the ties at each bound (both advance
    /// when the element is a tie at that bound).
    @inline(__always)
    func keeps(_ bits: UInt32, lowerOrdinal: inout Int, upperOrdinal: inout Int) -> Bool {
        if empty { return false }
        var ok = true
        if let l = lower {
            if bits < l.bits {
                ok = false
            } else if bits == l.bits {
                ok = Self.allows(l.rule, lowerOrdinal)
                lowerOrdinal += 1
            }
        }
        if let u = upper {
            if bits > u.bits {
                ok = false
            } else if bits == u.bits {
                ok = ok && Self.allows(u.rule, upperOrdinal)
                upperOrdinal += 1
            }
        }
        return ok
    }

    @inline(__always)
    static func allows(_ rule: TieRule, _ ordinal: Int) -> Bool {
        switch rule {
        case .all: return true
        case .none: return false
        case let .ordinals(r): return r.contains(ordinal)
        }
    }
}

/// Reused, zeroed histogram memory: fresh 64Ki-bin histograms for every job would cost a
/// page-faulting allocation each (hundreds of jobs per merge).
enum HistogramScratch {
    private static let lock = NSLockLike()
    nonisolated(unsafe) private static var free: [UnsafeMutableBufferPointer<UInt32>] = []

    /// A zeroed buffer of at least `count` counters.
    static func take(_ count: Int) -> UnsafeMutableBufferPointer<UInt32> {
        let b: UnsafeMutableBufferPointer<UInt32> = lock.locked {
            if let i = free.firstIndex(where: { $0.count >= count }) { return free.remove(at: i) }
            return .allocate(capacity: count)
        }
        b.baseAddress!.update(repeating: 0, count: b.count)
        return b
    }

    static func give(_ b: UnsafeMutableBufferPointer<UInt32>) {
        lock.locked {
            if free.count < 4 { free.append(b) } else { b.deallocate() }
        }
    }
}
