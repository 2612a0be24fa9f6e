import Foundation
import Tensors
import Transformer

/// The optimised graft of Panigrahi et al. 2023 (§3, "Optimization"): a relaxed mask over the
/// eligible entries, `γ(S) = b + (1 − 2b) ⊙ σ(S − c)`, where b is a binary base patch (the
/// magnitude graft) and S the trained logits, initialised U[0, 1) so that γ ≈ b; S learns flips
/// relative to b. The model is evaluated at the relaxed point `θ(γ) = θ_base + γ ⊙ τ` and
///
///     ∂L/∂S = (∂L/∂θ |θ(γ)) ⊙ τ ⊙ (1 − 2b) ⊙ σ'(S − c),    σ' = σ(1 − σ),
///
/// with ∂L/∂θ from the engine's backward pass (eligible tensors only). Each step is one plain
/// gradient step on S (no momentum; lr 1e7 in the paper because σ'(−10) ≈ 4.5e-5). After each
/// step the rounded mask (γ > 0.5) is scored by greedy exact match on the training and
/// validation data; the mask is kept when their sum improves on the best so far, starting from
/// the base patch itself (ties in exact match are broken by the summed NLL, which the reference
/// code does not do). There is no sparsity penalty: the mask size follows from b, the number of
/// steps and the saturated sigmoid, and can move away from k.
public enum TrainedGraft {
    public struct Settings: Sendable {
        public var steps: Int
        public var learningRate = 1e7
        public var sigmoidBias = 10.0
        /// Examples per micro-batch of the gradient.
        public var batchSize = 8
        /// At most this many micro-batches per step (the reference's 128 accumulation steps).
        public var maxBatches = 128
        public var seed: UInt64 = 0
        public init(steps: Int) { self.steps = steps }
    }

    public struct StepRecord: Sendable {
        public var step: Int
        public var loss: Double
        public var kept: Int
        public var trainEM: Double
        public var validationEM: Double
    }

    public struct Result: Sendable {
        public var mask: GraftMask
        public var summary: GraftTrainingSummary
        public var history: [StepRecord]
    }

    /// Trains S from the base patch `basePatch` (a mask of `pair`) on `train`, choosing on
    /// `train` + `validation`. `pair.base` is not modified (a working copy of the model is used).
    public static func train(pair: GraftPair, baseModel: TransformerModel, basePatch: GraftMask, train: [TrainingExample],
                             validation: [TrainingExample], settings: Settings, progress: (String) -> Void = { _ in }) throws -> Result {
        guard settings.steps > 0, settings.batchSize > 0, settings.maxBatches > 0, settings.learningRate > 0 else {
            throw GraftError.invalidSettings("trained graft: steps, batch size, batches and learning rate must be positive")
        }
        guard !train.isEmpty else { throw GraftError.invalidSettings("trained graft: no training examples") }
        let relax = try Relaxation(pair: pair, basePatch: basePatch, sigmoidBias: Float(settings.sigmoidBias), seed: settings.seed)
        let work = TransformerModel(config: baseModel.config)
        work.parameters.base.update(from: pair.base.base, count: pair.base.layout.totalCount)
        let batches = try stride(from: 0, to: min(train.count, settings.batchSize * settings.maxBatches), by: settings.batchSize).map { i in
            try TrainingBatch.packedCompletions(train[i..<min(i + settings.batchSize, train.count)].map { ($0.context, $0.target) })
        }
        let trainPairs = train.map { ($0.context, $0.target) }, valPairs = validation.map { ($0.context, $0.target) }

        func scoreRounded(_ m: GraftMask) throws -> (em: Double, nll: Double, train: Double, val: Double) {
            m.materialize(into: work.parameters, pair: pair)
            let t = try Evaluator.evaluate(model: work, tokenized: trainPairs)
            let v = valPairs.isEmpty ? nil : try Evaluator.evaluate(model: work, tokenized: valPairs)
            let te = t.exactMatch ?? 0, ve = v?.exactMatch ?? 0
            return (te + ve, t.meanNLL + (v?.meanNLL ?? 0), te, ve)
        }
        var best = basePatch
        var bestScore = try scoreRounded(basePatch)
        var bestStep = 0
        var history = [StepRecord(step: 0, loss: .nan, kept: basePatch.count, trainEM: bestScore.train, validationEM: bestScore.val)]
        progress(String(format: "trained graft: step 0 (base patch, k = %d): train EM %.3f, validation EM %.3f", basePatch.count, bestScore.train, bestScore.val))
        for step in 1...settings.steps {
            relax.setRelaxed(work.parameters)
            let (loss, grad) = try relax.lossAndGradient(model: work, batches: batches)
            relax.update(gradient: grad, learningRate: Float(settings.learningRate))
            let m = relax.rounded()
            let s = try scoreRounded(m)
            history.append(StepRecord(step: step, loss: loss, kept: m.count, trainEM: s.train, validationEM: s.val))
            let better = s.em > bestScore.em + 1e-12 || (abs(s.em - bestScore.em) <= 1e-12 && s.nll < bestScore.nll)
            if better { best = m; bestScore = s; bestStep = step }
            progress(String(format: "trained graft: step %d: relaxed loss %.4f, rounded mask k = %d, train EM %.3f, validation EM %.3f%@",
                            step, loss, m.count, s.train, s.val, better ? " (best)" : ""))
        }
        let summary = GraftTrainingSummary(steps: settings.steps, learningRate: settings.learningRate, sigmoidBias: settings.sigmoidBias,
                                           bestStep: bestStep, bestTrainScore: bestScore.train, bestValidationScore: bestScore.val,
                                           initialCount: basePatch.count, finalCount: best.count)
        return Result(mask: best, summary: summary, history: history)
    }
}

/// The relaxed mask state: the base patch b and the logits S over the eligible entries of a
/// pair (concatenated in the pair's tensor order).
public final class Relaxation: @unchecked Sendable {
    public let pair: GraftPair
    public let sigmoidBias: Float
    /// 0/1 per eligible entry.
    public private(set) var patch: [Float]
    public var logits: [Float]
    /// Start of each eligible tensor in the flat arrays.
    let starts: [Int]

    public init(pair: GraftPair, basePatch: GraftMask, sigmoidBias: Float, seed: UInt64) throws {
        guard basePatch.parts.map(\.name) == pair.tensors.map(\.name) else {
            throw GraftError.invalidSettings("the base patch is not a mask of this pair's eligible tensors")
        }
        self.pair = pair
        self.sigmoidBias = sigmoidBias
        var starts: [Int] = [], n = 0
        for t in pair.tensors { starts.append(n); n += t.count }
        self.starts = starts
        patch = [Float](repeating: 0, count: n)
        for (j, p) in basePatch.parts.enumerated() { for i in p.indices { patch[starts[j] + i] = 1 } }
        var rng = SeededRandom(seed: seed)
        logits = (0..<n).map { _ in Float(rng.nextUniform()) }
    }

    @inline(__always) static func sigmoid(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }

    /// γ at flat position i.
    @inline(__always) public func gamma(_ i: Int) -> Float {
        patch[i] + (1 - 2 * patch[i]) * Self.sigmoid(logits[i] - sigmoidBias)
    }

    /// Writes θ(γ) = θ_base + γ ⊙ τ into the eligible tensors of `buffer` (the base's layout);
    /// other tensors are left as they are (the base, in a working copy).
    public func setRelaxed(_ buffer: ParameterBuffer) {
        for (j, t) in pair.tensors.enumerated() {
            let b = pair.base.base + t.baseOffset, f = pair.tuned.base + t.tunedOffset, dst = buffer.base + t.baseOffset
            let s0 = starts[j]
            for i in 0..<t.count { dst[i] = b[i] + gamma(s0 + i) * (f[i] - b[i]) }
        }
    }

    /// Mean NLL over all scored tokens of `batches` at the model's current weights (θ(γ) after
    /// `setRelaxed`), and ∂L/∂S per eligible entry.
    public func lossAndGradient(model: TransformerModel, batches: [TrainingBatch]) throws -> (Double, [Float]) {
        let layout = try model.layout.subset(Set(pair.tensors.map(\.name)))
        let grads = ParameterBuffer(layout: layout)
        let scored = batches.reduce(0) { $0 + $1.scoredTokens }
        guard scored > 0 else { throw GraftError.invalidSettings("trained graft: the training data has no scored tokens") }
        var nll = 0.0
        for b in batches { nll += try model.accumulateGradients(b, into: GradientSink(model: grads), lossScale: 1 / Float(scored)) }
        var g = [Float](repeating: 0, count: patch.count)
        for (j, t) in pair.tensors.enumerated() {
            let gt = grads.pointer(t.name), b = pair.base.base + t.baseOffset, f = pair.tuned.base + t.tunedOffset
            let s0 = starts[j]
            for i in 0..<t.count {
                let s = Self.sigmoid(logits[s0 + i] - sigmoidBias)
                g[s0 + i] = gt[i] * (f[i] - b[i]) * (1 - 2 * patch[s0 + i]) * s * (1 - s)
            }
        }
        return (nll / Double(scored), g)
    }

    /// S ← S − lr · ∂L/∂S.
    public func update(gradient: [Float], learningRate: Float) {
        for i in 0..<logits.count { logits[i] -= learningRate * gradient[i] }
    }

    /// The rounded mask: entries with γ > 0.5.
    public func rounded() -> GraftMask {
        GraftMask(parts: pair.tensors.enumerated().map { j, t in
            let s0 = starts[j]
            return GraftMask.Part(name: t.name, dims: t.dims, indices: (0..<t.count).filter { gamma(s0 + $0) > 0.5 })
        })
    }
}
