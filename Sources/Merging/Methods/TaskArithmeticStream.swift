import Foundation

/// The streamed kernel of `TaskArithmeticFamily`: the same numbers as the in-memory reference
/// (`TaskArithmeticFamily.referenceMerge`, `Sparsifier`), bit for bit, computed in a few passes
/// over row blocks (`TensorBlocks`) without materialising any task vector:
///
/// 1. statistics: high-16-bit histograms of `|δ_i|` bit patterns (magnitude pruning), L1 norms
///    per block before pruning, and after pruning for the random masks (DARE, DELLA);
/// 2. the low 16 bits of the elements inside the bins holding the rank bounds, kept per block →
///    exact thresholds, and tie counts per block where a bound keeps part of its ties;
/// 3. only when a bin held more than `candidateLimit` elements and its bound keeps part of its
///    ties: tie counts per block (ordinals across blocks);
/// 4. only for magnitude pruning with `rescale`: L1 norms per block after pruning;
/// 5. the output: pruned (and rescaled) deltas, sign election, disjoint mean or weighted sum,
///    written window by window to the `MergeOutput`.
///
/// `δ_i = x_i − base` is recomputed from the inputs in every pass (Float32, as the reference's
/// materialised vectors). Passes 1–4 run blocks on all cores with per-thread histograms; sums are
/// kept per block and added in block order, so results do not depend on the thread count.
struct TaskArithmeticStream {
    /// How one model's task vector is pruned.
    enum Prune {
        /// Used as is: `δ = Double(x) − Double(base)` (density ≥ 1 or no sparsifier).
        case unpruned
        /// Density ≤ 0: all zeros, no rescale.
        case zero
        /// Keep the ascending magnitude ranks in the range (TIES trim, breadcrumbs).
        case ranks(Range<Int>)
        /// Keep element j when `bits32(j) ≤ limit` (DARE).
        case random(MergeRandom, limit: UInt32)
        /// DELLA per-row rank-dependent keep probability.
        case della(MergeRandom, density: Double, epsilon: Double)
    }

    let consensus: TaskArithmeticFamily.Consensus
    let prunes: [Prune]
    let weights: [Double]
    let rescale: Bool
    let normalize: Bool
    let lambda: Double
    let blocks: TensorBlocks
    /// Most elements of one rank bound's bin whose low bits pass 2 keeps (2 bytes each) to count
    /// ties without pass 3.
    let candidateLimit: Int
    static func defaultCandidateLimit(_ n: Int) -> Int { max(1 << 16, n / 16) }
    /// Output window (whole blocks) handed to `MergeOutput.fill` at once.
    var windowBlocks: Int { blocks.windowBlocks }

    init(family: TaskArithmeticFamily, weights: [Double], settings: [SparsifierSettings], global: TaskArithmeticFamily.Global,
         tensorName: String, shape: [Int], seed: UInt64, blockTarget: Int = TensorBlocks.defaultTarget,
         candidateLimit: Int? = nil) throws {
        let n = shape.reduce(1, *)
        self.candidateLimit = candidateLimit ?? Self.defaultCandidateLimit(n)
        consensus = family.consensus
        self.weights = weights
        rescale = global.rescale
        normalize = global.normalize
        lambda = global.lambda
        blocks = TensorBlocks(count: n, cols: shape.last ?? 1, target: blockTarget)
        var prunes: [Prune] = []
        for (i, s) in settings.enumerated() {
            let method = family.sparsification
            if method == .none || s.density >= 1 || n == 0 {
                prunes.append(.unpruned)
                continue
            }
            if s.density <= 0 {
                prunes.append(.zero)
                continue
            }
            let random = MergeRandom(seed: seed, tensor: tensorName, model: i)
            switch method {
            case .none:
                prunes.append(.unpruned)
            case .magnitude, .magnitudeOutliers:
                let r = Sparsifier.magnitudeRanks(method, count: n, s).clamped(to: 0..<n)
                prunes.append(r.isEmpty ? .zero : .ranks(r))
            case .random:
                prunes.append(.random(random, limit: MergeRandom.limit(s.density)!))
            case .della:
                try Sparsifier.checkDella(s, tensor: tensorName)
                prunes.append(.della(random, density: s.density, epsilon: s.epsilon))
            }
        }
        self.prunes = prunes
    }

    // MARK: per-model state found by the statistics passes

    struct State {
        var keeps: [MagnitudeKeep?]
        /// Per bound needing ordinals: ties at its bits before each block (nb + 1 running counts).
        var lowerTiesBefore: [[Int]?]
        var upperTiesBefore: [[Int]?]
        var factors: [Float?]

        /// Records the ties at model `i`'s lower (side 0) or upper bound found in each block.
        mutating func setTies(_ i: Int, side: Int, perBlock: [Int]) {
            var before = [Int](repeating: 0, count: perBlock.count + 1)
            for (block, c) in perBlock.enumerated() { before[block + 1] = before[block] + c }
            if side == 0 { lowerTiesBefore[i] = before } else { upperTiesBefore[i] = before }
        }

        /// Model `i`'s kept set restricted to `block`, with tie ordinals counted from the block's
        /// start. At most one block per bound keeps part of its ties; every other block gets a
        /// plain bit range (the vectorised path).
        func keep(_ i: Int, block: Int) -> MagnitudeKeep {
            var k = keeps[i]!
            if k.needsOrdinals {
                k.lower = k.lower.map { $0.localized(lowerTiesBefore[i].map { ($0[block], $0[block + 1] - $0[block]) }) }
                k.upper = k.upper.map { $0.localized(upperTiesBefore[i].map { ($0[block], $0[block + 1] - $0[block]) }) }
            }
            return k
        }
    }

    func run(_ source: MergeBlockSource, into output: MergeOutput) throws {
        precondition(source.hasBase && source.modelCount == prunes.count && source.shape.elementCount == blocks.count)
        precondition(blocks.count < Int(UInt32.max), "tensor too large for rank selection")
        let state = try statistics(source)
        try writeOutput(source, state, into: output)
    }

    /// Runs `body(worker, block, base, models)` over every block on all cores.
    func pass(_ source: MergeBlockSource,
                      _ body: (Int, Int, UnsafePointer<Float>, [UnsafePointer<Float>]) -> Void) throws {
        let errors = ErrorBox()
        source.loops.forEachBlock(blocks.blockCount) { worker, block in
            guard errors.value == nil else { return }
            do {
                try source.withBlock(blocks.range(block)) { base, models in
                    body(worker, block, base!.baseAddress!, models.map { $0.baseAddress! })
                }
            } catch { errors.set(error) }
        }
        if let e = errors.value { throw e }
    }
}
