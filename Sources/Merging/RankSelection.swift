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
    public static func keyRange(_ values: UnsafeBufferPointer<Float>, ranks: Range<Int>) -> ClosedRange<UInt64>? {
        let n = values.count
        precondition(n < Int(UInt32.max), "tensor too large for rank selection")
        let r = ranks.clamped(to: 0..<n)
        guard !r.isEmpty else { return nil }
        var keys = [UInt64](unsafeUninitializedCapacity: n) { buf, done in
            for i in 0..<n { buf[i] = key(values[i], i) }
            done = n
        }
        return keys.withUnsafeMutableBufferPointer { k in
            let lo = select(k, r.lowerBound)
            let hi = r.count == 1 ? lo : select(k, r.upperBound - 1)
            return lo...hi
        }
    }

    /// The element of ascending rank `k`; partially reorders `a` (Hoare quickselect, median of three).
    static func select(_ a: UnsafeMutableBufferPointer<UInt64>, _ k: Int) -> UInt64 {
        var lo = 0
        var hi = a.count - 1
        var rounds = 0
        while lo < hi {
            rounds += 1
            if rounds > 64 {
                // Adversarial input: finish with a sort of the remaining window.
                var window = UnsafeMutableBufferPointer(rebasing: a[lo...hi])
                window.sort()
                return a[k]
            }
            let mid = lo + (hi - lo) / 2
            if a[mid] < a[lo] { a.swapAt(mid, lo) }
            if a[hi] < a[lo] { a.swapAt(hi, lo) }
            if a[hi] < a[mid] { a.swapAt(hi, mid) }
            let pivot = a[mid]
            var i = lo
            var j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { return a[k] }
        }
        return a[k]
    }
}
