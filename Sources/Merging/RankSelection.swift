/// Exact rank selection by magnitude with deterministic tie-breaking.
///
/// Every element gets a unique 64-bit key: the bit pattern of `|x|` (monotone in `|x|` for
/// non-negative floats; NaN sorts above +inf) in the high 32 bits and `UInt32.max - index` in the
/// low bits. Keys are distinct, so "the k largest" is always exactly k elements, and among equal
/// magnitudes the lower index ranks higher (is kept first). mergekit's argsort leaves that order
/// unspecified.
public enum RankSelection {
    @inline(__always)
    public static func key(_ x: Float, _ index: Int) -> UInt64 {
        UInt64(x.magnitude.bitPattern) << 32 | UInt64(UInt32.max - UInt32(truncatingIfNeeded: index))
    }

    /// Key range `[lo, hi]` of the elements whose ascending magnitude rank lies in `ranks`
    /// (0 = smallest). nil when `ranks` is empty. Precondition: count < 2^32.
    /// Radix selection on the magnitude bits (two 16-bit histogram passes, one pass for ties),
    /// O(n) without allocating per-element keys.
    public static func keyRange(_ values: UnsafeBufferPointer<Float>, ranks: Range<Int>) -> ClosedRange<UInt64>? {
        let n = values.count
        precondition(n < Int(UInt32.max), "tensor too large for rank selection")
        let r = ranks.clamped(to: 0..<n)
        guard !r.isEmpty else { return nil }
        let lo = keyOfRank(values, r.lowerBound)
        let hi = r.count == 1 ? lo : keyOfRank(values, r.upperBound - 1)
        return lo...hi
    }

    /// The key of the element with ascending rank `k` (see `key`).
    static func keyOfRank(_ values: UnsafeBufferPointer<Float>, _ k: Int) -> UInt64 {
        var hist = [Int](repeating: 0, count: 1 << 16)
        for v in values { hist[Int(v.magnitude.bitPattern >> 16)] += 1 }
        var rest = k
        var high = 0
        while rest >= hist[high] { rest -= hist[high]; high += 1 }
        for i in hist.indices { hist[i] = 0 }
        let h = UInt32(high)
        for v in values where v.magnitude.bitPattern >> 16 == h { hist[Int(v.magnitude.bitPattern & 0xFFFF)] += 1 }
        var low = 0
        while rest >= hist[low] { rest -= hist[low]; low += 1 }
        let bits = h << 16 | UInt32(low)
        // Equal magnitudes rank by descending index: the rest-th of them (0-based) in key order
        // is the (count − 1 − rest)-th in index order.
        let target = hist[low] - 1 - rest
        var seen = 0
        for (i, v) in values.enumerated() where v.magnitude.bitPattern == bits {
            if seen == target { return key(v, i) }
            seen += 1
        }
        preconditionFailure("rank selection lost its element")
    }

    /// Reference: sorts all keys (O(n log n)); used by the tests.
    static func keyOfRankBySorting(_ values: UnsafeBufferPointer<Float>, _ k: Int) -> UInt64 {
        values.enumerated().map { key($0.element, $0.offset) }.sorted()[k]
    }
}
