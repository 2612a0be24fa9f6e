import Foundation

/// The magnitude graft (Panigrahi et al. 2023, §3, the "highest movement" base patch): the
/// global top-k entries of |τ| = |tuned − base| over all eligible tensors.
///
/// Rule: an entry is kept iff its |τ| is larger than the k-th largest value t, or equal to t and
/// among the first entries equal to t in layout order (tensor order of the checkpoint, then
/// row-major index) needed to reach exactly k. So exactly k entries are kept and ties are broken
/// deterministically, toward earlier tensors and lower indices. (The reference code keeps the
/// entries strictly above the k-th value, one fewer than k when there are no ties.)
///
/// The k-th value is found by a radix select on the bit patterns of |τ| (non-negative floats
/// order like their bits): one histogram of the top 16 bits, one of the low 16 bits within the
/// chosen bucket, then one collecting pass; O(N) time, no copy of the N magnitudes.
public enum MagnitudeGraft {
    /// One mask per count in `counts` (each in 1...pair.eligibleCount); the first histogram is shared.
    public static func select(_ pair: GraftPair, counts: [Int]) -> [GraftMask] {
        precondition(counts.allSatisfy { $0 >= 1 && $0 <= pair.eligibleCount }, "counts must be in 1...eligibleCount")
        var high = [Int](repeating: 0, count: 65_536)
        forEachKey(pair) { _, _, key in high[Int(key >> 16)] += 1 }
        return counts.map { k in
            // The bucket holding the k-th largest key, and how many keys lie above it.
            var above = 0, bucket = 65_535
            while above + high[bucket] < k { above += high[bucket]; bucket -= 1 }
            var low = [Int](repeating: 0, count: 65_536)
            let b32 = UInt32(bucket)
            forEachKey(pair) { _, _, key in if key >> 16 == b32 { low[Int(key & 0xFFFF)] += 1 } }
            var l = 65_535
            while above + low[l] < k { above += low[l]; l -= 1 }
            let threshold = b32 << 16 | UInt32(l)
            var ties = k - above   // entries equal to the threshold to keep, the first ones in layout order
            var parts = pair.tensors.map { GraftMask.Part(name: $0.name, dims: $0.dims, indices: []) }
            for (j, t) in pair.tensors.enumerated() {
                let b = pair.base.base + t.baseOffset, f = pair.tuned.base + t.tunedOffset
                var kept: [Int] = []
                for i in 0..<t.count {
                    let key = (f[i] - b[i]).magnitude.bitPattern
                    if key > threshold || (key == threshold && ties > 0) {
                        if key == threshold { ties -= 1 }
                        kept.append(i)
                    }
                }
                parts[j].indices = kept
            }
            return GraftMask(parts: parts)
        }
    }

    public static func select(_ pair: GraftPair, count k: Int) -> GraftMask { select(pair, counts: [k])[0] }

    /// Calls `body(tensor, index, bits of |τ|)` for every eligible entry in layout order.
    @inline(__always)
    static func forEachKey(_ pair: GraftPair, _ body: (Int, Int, UInt32) -> Void) {
        for (j, t) in pair.tensors.enumerated() {
            let b = pair.base.base + t.baseOffset, f = pair.tuned.base + t.tunedOffset
            for i in 0..<t.count { body(j, i, (f[i] - b[i]).magnitude.bitPattern) }
        }
    }
}
