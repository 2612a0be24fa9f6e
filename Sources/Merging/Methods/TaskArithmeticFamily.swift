import Tensors

/// The task-arithmetic family: task arithmetic, TIES, DARE, Model Breadcrumbs, DELLA and the
/// dataless Localize-and-Stitch share one implementation, configured by a consensus and a
/// sparsification strategy (mergekit `generalized_task_arithmetic.py`, plus the non-zero consensus).
///
/// For each model `δ_i = x_i − base`, pruned by the sparsifier (with its L1 rescale), weighted
/// `D_i = w_i·δ_i`. Without consensus `mixed = Σ D_i`, `divisor = Σ w_i` (|divisor| < 1e-8 → 1).
/// With the TIES sign election `σ = sign(Σ D_i)` (0 counts as +), `M_i = [sign D_i = σ]`
/// (zeros never agree), `mixed = Σ D_i M_i`, `divisor = Σ w_i M_i` (0 → 1). The non-zero
/// consensus (Localize-and-Stitch, He et al. 2024, §3.2 "stitching") takes `M_i = [D_i ≠ 0]`:
/// with weights 1 each entry gets the mean of the task vectors whose mask keeps it.
/// `out = base + λ·mixed / (normalize ? divisor : 1)`. Float64 per element.
public struct TaskArithmeticFamily: MergeMethod {
    public enum Consensus: String, Sendable { case none, signSum, nonzero }

    public struct Global { public var normalize: Bool; public var rescale: Bool; public var lambda: Double }
    public struct PerModel { public var weight: Double; public var density: Double; public var gamma: Double; public var epsilon: Double }

    public let name: String
    public let reference: String
    public let summary: String
    public let consensus: Consensus
    public let sparsification: Sparsification
    let defaultNormalize: Bool
    let defaultRescale: Bool
    let defaultDensity: Double
    let defaultWeight: Double?

    public let baseRole = BaseRole.required
    public let modelCount = 1...Int.max
    public var isRandomized: Bool { sparsification == .random || sparsification == .della }
    /// Whole-tensor scratch of `referenceMerge` (the executor streams instead).
    public var scratchPerElement: Double { 0 }

    /// Per thread: a block of pruned deltas per model, and the histograms of the rank passes
    /// (two 64Ki-bin sets per model) and the threshold-bin scan, or the DELLA row keys and block
    /// mask; for magnitude pruning also the kept low bits of the threshold bins (at most two
    /// bins per model, `TaskArithmeticStream.defaultCandidateLimit` values of 2 bytes each).
    public func streamScratchBytes(elementCount n: Int, cols: Int, modelCount m: Int, threads: Int) -> Int {
        guard sparsification != .none else { return 0 }
        let block = min(n, TensorBlocks(count: n, cols: cols).blockElements)
        var perThread = 4 * m * block, shared = 0
        switch sparsification {
        case .magnitude, .magnitudeOutliers:
            perThread += 2 * m * 4 * MagnitudeBounds.bins + 2 * block
            shared = 2 * m * 2 * min(n, TaskArithmeticStream.defaultCandidateLimit(n))
        case .della: perThread += block + 8 * cols
        case .none, .random: break
        }
        return max(1, threads) * perThread + shared
    }

    public init(name: String, reference: String, summary: String, consensus: Consensus, sparsification: Sparsification,
                normalize: Bool, rescale: Bool, density: Double = 1, weight: Double? = nil) {
        self.name = name
        self.reference = reference
        self.summary = summary
        self.consensus = consensus
        self.sparsification = sparsification
        self.defaultNormalize = normalize
        self.defaultRescale = rescale
        self.defaultDensity = density
        self.defaultWeight = weight
    }

    public var parameters: [ParameterSpec] {
        var specs: [ParameterSpec] = [
            .number("weight", .perModel, default: defaultWeight, "weight of the model's task vector"),
            .number("density", .perModel, default: defaultDensity, "fraction of the task vector kept (1 = all)", range: .leftOpen(0, 1)),
            .bool("normalize", .global, default: defaultNormalize, "divide by the sum of (agreeing) weights"),
            .bool("rescale", .global, default: defaultRescale, "restore the L1 norm of a pruned task vector"),
            .number("lambda", .global, default: 1, "scale of the merged task vector"),
            .bool("int8_mask", .global, default: false, "accepted for mergekit compatibility; masks here are never materialised"),
        ]
        if sparsification == .magnitudeOutliers {
            specs.append(.number("gamma", .perModel, default: 0.01, "fraction of largest-magnitude entries dropped", range: .rightOpen(0, 1)))
        }
        if sparsification == .della {
            specs.append(.number("epsilon", .perModel, default: 0.15, "half-width of the keep-probability range", range: .rightOpen(0, 1)))
        }
        return specs
    }

    /// Without pruning (no sparsifier, or every density ≥ 1) each element is independent.
    public func isElementwise(_ parameters: ResolvedParameters) -> Bool {
        sparsification == .none || ((try? parameters.numbers("density", fallback: 1))?.allSatisfy { $0 >= 1 } ?? false)
    }

    /// DELLA: density ± epsilon must stay within (0, 1] (see `Sparsifier.dellaProblem`); the
    /// per-tensor kernels check the same condition, so this only moves the refusal before any
    /// tensor is read.
    public func perModelParameterProblems(_ values: [String: ParameterValue]) -> [(parameter: String, problem: String)] {
        guard sparsification == .della else { return [] }
        guard case let .number(d) = values["density"] ?? .number(1), case let .number(e) = values["epsilon"] ?? .number(0.15) else { return [] }
        return Sparsifier.dellaProblem(density: d, epsilon: e).map { [("epsilon", $0)] } ?? []
    }

    /// The resolved parameters of one job.
    func resolve(_ p: ResolvedParameters) throws -> (global: Global, weights: [Double], settings: [SparsifierSettings]) {
        let g = Global(normalize: try p.bool("normalize"), rescale: try p.bool("rescale"), lambda: try p.number("lambda"))
        let weights = try p.numbers("weight")
        let densities = try p.numbers("density", fallback: 1)
        let gammas = try p.numbers("gamma", fallback: 0.01)
        let epsilons = try p.numbers("epsilon", fallback: 0.15)
        let settings = weights.indices.map {
            SparsifierSettings(density: densities[$0], gamma: gammas[$0], epsilon: epsilons[$0], rescale: g.rescale)
        }
        return (g, weights, settings)
    }

    func stream(_ p: ResolvedParameters, tensorName: String, shape: Shape, seed: UInt64,
                blockTarget: Int = TensorBlocks.defaultTarget, candidateLimit: Int? = nil) throws -> TaskArithmeticStream {
        let r = try resolve(p)
        return try TaskArithmeticStream(family: self, weights: r.weights, settings: r.settings, global: r.global, tensorName: tensorName,
                                        shape: shape.rank == 0 ? [1] : shape.dims, seed: seed, blockTarget: blockTarget,
                                        candidateLimit: candidateLimit)
    }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard inputs.base != nil else { throw MergeError.baseRequired(method: name) }
        try stream(p, tensorName: inputs.tensorName, shape: inputs.shape, seed: seed)
            .run(BufferBlockSource(inputs: inputs), into: BufferOutput(out))
    }

    public var streamsBlocks: Bool { true }

    public func mergeBlocks(_ source: MergeBlockSource, _ p: ResolvedParameters, seed: UInt64, into output: MergeOutput) throws {
        guard source.hasBase else { throw MergeError.baseRequired(method: name) }
        try stream(p, tensorName: source.tensorName, shape: source.shape, seed: seed).run(source, into: output)
    }
}
