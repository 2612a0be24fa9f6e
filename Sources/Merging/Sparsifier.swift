/// How a task vector is thinned before it is merged (mergekit `sparsify.py`, corrected where noted).
public enum Sparsification: String, Sendable {
    /// No pruning.
    case none
    /// TIES "trim": keep the `int(density·n)` largest |δ| (Yadav et al. 2023).
    case magnitude
    /// DARE: keep each element with probability `density` (Yu et al. 2023).
    case random
    /// Model Breadcrumbs: drop the `gamma` fraction of largest |δ| and the smallest ones so that
    /// `int(density·n)` remain (Davari & Belilovsky 2023).
    case magnitudeOutliers
    /// DELLA MagPrune: per row, keep probability rising linearly with the magnitude rank from
    /// `density − ε` to `density + ε` (Deep et al. 2024).
    case della
}

/// Per-model settings of a sparsifier.
public struct SparsifierSettings: Sendable {
    public var density: Double
    public var gamma: Double
    public var epsilon: Double
    /// L1 rescale after pruning: `δ̃ *= ‖δ‖₁ / ‖δ̃‖₁` (mergekit's `rescale`), skipped when either norm < 1e-7.
    public var rescale: Bool
}

enum Sparsifier {
    /// Prunes `delta` (one tensor's task vector, viewed as `rows × cols`) in place.
    /// - Throws: `MergeError.invalidParameter` for DELLA densities outside `(ε, 1 − ε)`.
    static func apply(_ method: Sparsification, _ delta: UnsafeMutableBufferPointer<Float>, cols: Int,
                      _ s: SparsifierSettings, random: inout MergeRandom, tensor: String) throws {
        let n = delta.count
        guard method != .none, s.density < 1, n > 0 else { return }
        if s.density <= 0 {
            delta.update(repeating: 0)
            return
        }
        let l1Before = s.rescale ? l1(delta) : 0
        switch method {
        case .none:
            return
        case .magnitude:
            // mergekit asserts k > 0; a tensor too small to keep one element keeps none.
            let k = Int(s.density * Double(n))
            keepRanks(delta, (n - k)..<n)
        case .magnitudeOutliers:
            let target = Int(s.density * Double(n))
            var nTop = Int(s.gamma * Double(n))
            var nBot = n - target - nTop
            if nBot < 0 { nTop += nBot; nBot = 0 }
            // mergekit slices sorted[n_bot:-n_top], which is empty when n_top == 0 (gamma·n < 1)
            // and zeroes the whole task vector; we keep [n_bot, n) as the formula intends.
            keepRanks(delta, nBot..<(n - nTop))
        case .random:
            for i in 0..<n where random.nextDouble() >= s.density { delta[i] = 0 }
        case .della:
            guard s.density - s.epsilon > 0, s.density + s.epsilon < 1 else {
                throw MergeError.invalidParameter(name: "epsilon",
                    reason: "DELLA needs 0 < density − epsilon and density + epsilon < 1, got density \(s.density), epsilon \(s.epsilon) (tensor \(tensor))")
            }
            dellaMask(delta, cols: cols, density: s.density, epsilon: s.epsilon, random: &random)
        }
        if s.rescale {
            let l1After = l1(delta)
            if l1Before >= 1e-7 && l1After >= 1e-7 {
                let f = Float(l1Before / l1After)
                for i in 0..<n { delta[i] *= f }
            }
        }
    }

    static func l1(_ x: UnsafeMutableBufferPointer<Float>) -> Double {
        var s = 0.0
        for v in x { s += Double(v.magnitude) }
        return s
    }

    /// Zeroes every element whose ascending magnitude rank is outside `ranks`.
    static func keepRanks(_ delta: UnsafeMutableBufferPointer<Float>, _ ranks: Range<Int>) {
        guard let range = RankSelection.keyRange(UnsafeBufferPointer(delta), ranks: ranks) else {
            delta.update(repeating: 0)
            return
        }
        for i in 0..<delta.count where !range.contains(RankSelection.key(delta[i], i)) { delta[i] = 0 }
    }

    /// DELLA MagPrune mask, row by row (a rank-1 tensor is one row). Within a row of c elements
    /// ranked r = 0..c−1 by ascending |δ|, the keep probability is `(d − ε) + 2ε·r/(c − 1)`.
    /// A row of one element gets probability d (mergekit computes 0/0 = NaN there).
    static func dellaMask(_ delta: UnsafeMutableBufferPointer<Float>, cols: Int, density d: Double, epsilon e: Double,
                          random: inout MergeRandom) {
        let c = max(1, cols)
        var keys = [UInt64](repeating: 0, count: c)
        var row = 0
        while row * c < delta.count {
            let start = row * c
            let len = min(c, delta.count - start)
            for j in 0..<len { keys[j] = RankSelection.key(delta[start + j], j) }
            keys[0..<len].sort()
            for r in 0..<len {
                let j = Int(UInt32.max - UInt32(truncatingIfNeeded: keys[r]))
                let p = len == 1 ? d : (d - e) + 2 * e * Double(r) / Double(len - 1)
                if random.nextDouble() >= p { delta[start + j] = 0 }
            }
            row += 1
        }
    }
}
