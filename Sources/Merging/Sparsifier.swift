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

/// The in-memory reference of the sparsifiers: prunes one whole task vector in place. The
/// executor's streamed kernel (`TaskArithmeticStream`) computes the same masks and norms block by
/// block without materialising the vector; tests check that the two agree bit for bit.
enum Sparsifier {
    /// Prunes `delta` (one tensor's task vector, viewed as `rows × cols`) in place. Norm sums run
    /// over `TensorBlocks(count:cols:target:)` (Float64, block by block in order).
    /// - Throws: `MergeError.invalidParameter` for DELLA densities outside `(ε, 1 − ε]`.
    static func apply(_ method: Sparsification, _ delta: UnsafeMutableBufferPointer<Float>, cols: Int,
                      _ s: SparsifierSettings, random: MergeRandom, tensor: String,
                      blockTarget: Int = TensorBlocks.defaultTarget) throws {
        let n = delta.count
        guard method != .none, s.density < 1, n > 0 else { return }
        if s.density <= 0 {
            delta.update(repeating: 0)
            return
        }
        if method == .della { try checkDella(s, tensor: tensor) }
        let blocks = TensorBlocks(count: n, cols: cols, target: blockTarget)
        let l1Before = s.rescale ? l1(UnsafeBufferPointer(delta), blocks) : 0
        switch method {
        case .none:
            return
        case .magnitude, .magnitudeOutliers:
            keepRanks(delta, magnitudeRanks(method, count: n, s))
        case .random:
            for i in 0..<n where !random.keeps(i, probability: s.density) { delta[i] = 0 }
        case .della:
            dellaMask(delta, cols: cols, density: s.density, epsilon: s.epsilon, random: random)
        }
        if s.rescale {
            let l1After = l1(UnsafeBufferPointer(delta), blocks)
            if let f = rescaleFactor(before: l1Before, after: l1After) {
                for i in 0..<n { delta[i] *= f }
            }
        }
    }

    /// The ascending magnitude ranks a magnitude sparsifier keeps.
    static func magnitudeRanks(_ method: Sparsification, count n: Int, _ s: SparsifierSettings) -> Range<Int> {
        if method == .magnitude {
            // mergekit asserts k > 0; a tensor too small to keep one element keeps none.
            let k = Int(s.density * Double(n))
            return (n - k)..<n
        }
        let target = Int(s.density * Double(n))
        var nTop = Int(s.gamma * Double(n))
        var nBot = n - target - nTop
        if nBot < 0 { nTop += nBot; nBot = 0 }
        // mergekit slices sorted[n_bot:-n_top], which is empty when n_top == 0 (gamma·n < 1)
        // and zeroes the whole task vector; we keep [n_bot, n) as the formula intends.
        return nBot..<(n - nTop)
    }

    /// DELLA's keep probabilities run over [density − ε, density + ε] (Deep et al. 2024, §3,
    /// in mergekit's parametrisation), so both ends must be probabilities and the lower one
    /// above 0: 0 < density − ε and density + ε ≤ 1. (mergekit also refuses density + ε = 1; a
    /// keep probability of exactly 1 is well defined, so it is accepted here.) A density of 1 or
    /// more prunes nothing and is not checked. Returns why epsilon is unacceptable (to follow
    /// `parameter "epsilon"`), or nil.
    static func dellaProblem(density d: Double, epsilon e: Double) -> String? {
        guard d < 1, !(d - e > 0 && d + e <= 1) else { return nil }
        // Printed ends rounded to 12 decimals: 0.9 − 0.3 is 0.6000000000000001 in Float64.
        func show(_ x: Double) -> String { ParameterValue.number((x * 1e12).rounded() / 1e12).description }
        let bound = d - e <= 0 ? "it must be below the density" : "it must be at most 1 − density = \(show(1 - d))"
        return "is \(ParameterValue.number(e)) with density \(ParameterValue.number(d)): DELLA's keep probabilities "
            + "[density − epsilon, density + epsilon] = [\(show(d - e)), \(show(d + e))] must lie within (0, 1]; \(bound)"
    }

    static func checkDella(_ s: SparsifierSettings, tensor: String) throws {
        if let why = dellaProblem(density: s.density, epsilon: s.epsilon) {
            throw MergeError.invalidParameter(name: "epsilon", reason: "\(why) (tensor \(tensor))")
        }
    }

    /// `Float(before / after)`, or nil (no rescale) when either norm is below 1e-7.
    @inline(__always)
    static func rescaleFactor(before: Double, after: Double) -> Float? {
        before >= 1e-7 && after >= 1e-7 ? Float(before / after) : nil
    }

    /// Σ|x| in Float64: each block of `blocks` by `laneSum`, block sums added in order.
    static func l1(_ x: UnsafeBufferPointer<Float>, _ blocks: TensorBlocks) -> Double {
        var total = 0.0
        for b in 0..<blocks.blockCount {
            let lo = blocks.range(b).lowerBound
            total += laneSum(blocks.range(b).count) { Double(x[lo + $0].magnitude) }
        }
        return total
    }

    /// `Σ v(j)` over `j in 0..<n` in four interleaved Float64 lanes (lane `j mod 4`, each in index
    /// order), combined as `(l0 + l1) + (l2 + l3)`. The fixed order makes streamed and in-memory
    /// norms identical; four independent chains run about four times faster than one.
    /// `v` is called once per index, in increasing order.
    @inline(__always)
    static func laneSum(_ n: Int, _ v: (Int) -> Double) -> Double {
        var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
        var j = 0
        while j + 4 <= n {
            a0 += v(j)
            a1 += v(j + 1)
            a2 += v(j + 2)
            a3 += v(j + 3)
            j += 4
        }
        if j < n { a0 += v(j) }
        if j + 1 < n { a1 += v(j + 1) }
        if j + 2 < n { a2 += v(j + 2) }
        return (a0 + a1) + (a2 + a3)
    }

    /// Zeroes every element whose ascending magnitude rank is outside `ranks`.
    static func keepRanks(_ delta: UnsafeMutableBufferPointer<Float>, _ ranks: Range<Int>) {
        guard let range = RankSelection.keyRange(UnsafeBufferPointer(delta), ranks: ranks) else {
            delta.update(repeating: 0)
            return
        }
        for i in 0..<delta.count where !range.contains(RankSelection.key(delta[i], i)) { delta[i] = 0 }
    }

    /// DELLA keep probability of ascending rank `r` in a row of `len` elements: `(d − ε) + 2ε·r/(len − 1)`;
    /// a row of one element gets d (mergekit computes 0/0 = NaN there).
    @inline(__always)
    static func dellaProbability(rank r: Int, of len: Int, density d: Double, epsilon e: Double) -> Double {
        len == 1 ? d : (d - e) + 2 * e * Double(r) / Double(len - 1)
    }

    /// DELLA MagPrune mask, row by row (a rank-1 tensor is one row). Within a row of c elements
    /// ranked r = 0..c−1 by ascending |δ| (equal magnitudes: lower index ranks higher), the element
    /// at index j is kept when `random.keeps(j, probability: p(r))`.
    static func dellaMask(_ delta: UnsafeMutableBufferPointer<Float>, cols: Int, density d: Double, epsilon e: Double,
                          random: MergeRandom) {
        let c = max(1, cols)
        var keys = [UInt64](repeating: 0, count: c)
        var start = 0
        while start < delta.count {
            let len = min(c, delta.count - start)
            for j in 0..<len { keys[j] = RankSelection.key(delta[start + j], j) }
            keys[0..<len].sort()
            for r in 0..<len {
                let j = Int(UInt32.max - UInt32(truncatingIfNeeded: keys[r]))
                if !random.keeps(start + j, probability: dellaProbability(rank: r, of: len, density: d, epsilon: e)) { delta[start + j] = 0 }
            }
            start += len
        }
    }
}
