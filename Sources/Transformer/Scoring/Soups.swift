import Checkpoints
import Foundation
import Tensors

/// Model soups chosen by held-out score (Wortsman et al. 2022, "Model soups: averaging weights
/// of multiple fine-tuned models improves accuracy without increasing inference time").
public enum Soups {
    /// One step of the greedy soup: the ingredient tried, the soup's score with it, and whether
    /// it was kept.
    public struct GreedyStep: Sendable, Equatable {
        public let ingredient: Int
        public let soup: SoupScore
        public let kept: Bool
    }

    public struct GreedyResult: Sendable {
        /// Each ingredient's own score.
        public let individual: [SoupScore]
        /// Ingredients from best to worst (by `SoupScore.isBetter`, ties by position).
        public let order: [Int]
        public let steps: [GreedyStep]
        /// The kept ingredients, in the order they were added.
        public let kept: [Int]
        public var score: SoupScore { steps.last(where: \.kept)!.soup }
        /// One weight per ingredient: 1 for kept, 0 otherwise (a uniform average of the kept).
        public var weights: [Double] {
            (0..<individual.count).map { kept.contains($0) ? 1 : 0 }
        }
    }

    /// The greedy soup (Wortsman et al. 2022, §3, Recipe 1): rank the ingredients by their own
    /// held-out score, start from the best, and add each next one to the uniform average only
    /// when the soup's score does not get worse (`loss(soup ∪ {i}) ≤ loss(soup)`, the paper's
    /// "ValAcc(soup ∪ {i}) ≥ ValAcc(soup)"). It never scores worse than the best ingredient on
    /// the data it was chosen with.
    public static func greedy(_ scorer: CandidateScorer, metric: CandidateScorer.Metric,
                              individual given: [SoupScore]? = nil,
                              onStep: ((GreedyStep) -> Void)? = nil) throws -> GreedyResult {
        let n = scorer.ingredients.count
        let individual = try given ?? (0..<n).map { i in try scorer.score(weights: onehot(i, n)) }
        let order = (0..<n).sorted { a, b in
            individual[a].isBetter(than: individual[b], metric) || (!individual[b].isBetter(than: individual[a], metric) && a < b)
        }
        var kept = [order[0]]
        var current = individual[order[0]]
        var steps = [GreedyStep(ingredient: order[0], soup: current, kept: true)]
        onStep?(steps[0])
        for i in order.dropFirst() {
            let w = (0..<n).map { kept.contains($0) || $0 == i ? 1.0 : 0 }
            let s = try scorer.score(weights: w)
            let keep = s.loss(metric) <= current.loss(metric)
            if keep { kept.append(i); current = s }
            steps.append(GreedyStep(ingredient: i, soup: s, kept: keep))
            onStep?(steps.last!)
        }
        return GreedyResult(individual: individual, order: order, steps: steps, kept: kept)
    }

    public static func onehot(_ i: Int, _ n: Int) -> [Double] { (0..<n).map { $0 == i ? 1 : 0 } }

    // MARK: learned soup

    public struct LearnedOptions: Sendable {
        public var steps = 20
        public var learningRate = 0.1
        /// One coefficient per ingredient and layer (embeddings, final norm and head form one
        /// more group) instead of one per ingredient.
        public var perLayer = false
        /// Tokens per forward/backward pass: examples are packed end to end, in order, into rows
        /// of at most this many tokens (`TrainingBatch.packedCompletions`, no padding). Only the
        /// cost and the memory of a pass depend on it, not the gradient (up to rounding).
        public var packTokens = 256
        public init() {}
    }

    public struct LearnedStep: Sendable, Equatable {
        public let step: Int
        /// The objective at this step's coefficients: the mean over the held-out sets of each
        /// set's token-mean completion NLL.
        public let loss: Double
        public let gradientNorm: Double
    }

    public struct LearnedResult: Sendable {
        /// Group names (`all`, or `layer 0`, ..., `other`).
        public let groups: [String]
        /// Mixing coefficients per group and ingredient (each row sums to 1), at the best step.
        public let coefficients: [[Double]]
        public let history: [LearnedStep]
        public let bestStep: Int
    }

    /// The group of each layout entry: its decoder layer, or the last group for embeddings,
    /// the final norm and the head; one group when `perLayer` is false.
    public static func groups(of model: TransformerModel, perLayer: Bool) -> (names: [String], ofEntry: [Int]) {
        guard perLayer else { return (["all"], model.layout.entries.map { _ in 0 }) }
        let L = model.config.layers
        let ofEntry = model.layout.entries.map { e -> Int in
            for prefix in ["model.layers.", "transformer.h."] where e.name.hasPrefix(prefix) {
                let rest = e.name.dropFirst(prefix.count)
                if let dot = rest.firstIndex(of: "."), let l = Int(rest[..<dot]), l < L { return l }
            }
            return L
        }
        return ((0..<L).map { "layer \($0)" } + ["other"], ofEntry)
    }

    /// Softmax of each row.
    static func softmax(_ beta: [[Double]]) -> [[Double]] {
        beta.map { row in
            let m = row.max() ?? 0
            let e = row.map { Foundation.exp($0 - m) }
            let s = e.reduce(0, +)
            return e.map { $0 / s }
        }
    }

    /// The soup objective at the model's current parameters: the mean over the held-out sets of
    /// each set's token-mean completion NLL (the `meanNLL` a `SoupScore` reports), and (when
    /// `gradient` is given) its gradient with respect to every parameter, accumulated into it.
    static func lossAndGradient(_ model: TransformerModel, _ sets: [[([Int], [Int])]], packTokens: Int,
                                gradient: ParameterBuffer?) throws -> Double {
        var loss = 0.0
        for examples in sets {
            let total = examples.reduce(0) { $0 + $1.1.count }
            guard total > 0 else { throw ModelError.invalidInput("a held-out set has no completion tokens") }
            let scale = 1 / (Double(total) * Double(sets.count))
            for run in TrainingBatch.packedRuns(lengths: examples.map { $0.0.count + $0.1.count }, tokens: packTokens) {
                let batch = try TrainingBatch.packedCompletions(examples[run].map { (prompt: $0.0, completion: $0.1) })
                loss += scale * (try model.accumulateGradients(batch, into: GradientSink(model: gradient), lossScale: Float(scale)))
            }
        }
        return loss
    }

    /// dL/dα for every (group, ingredient): the inner product, over the group's parameters, of
    /// the parameter gradient with ingredient i's weights (θ = Σ_i α_i x_i, so ∂θ/∂α_i = x_i).
    static func coefficientGradient(_ scorer: CandidateScorer, _ g: ParameterBuffer, groupOf: [Int], groups: Int) throws -> [[Double]] {
        var out = [[Double]](repeating: [Double](repeating: 0, count: scorer.ingredients.count), count: groups)
        for (ei, e) in scorer.model.layout.entries.enumerated() {
            let ge = g.pointer(e.name)
            for k in scorer.ingredients.indices {
                let t = try scorer.tensor(k, e)
                var dot = 0.0
                t.scalars.withUnsafeBufferPointer { x in
                    for j in 0..<e.count { dot += Double(ge[j]) * Double(x[j]) }
                }
                out[groupOf[ei]][k] += dot
                scorer.ingredients[k].releasePages(scorer.storedName(scorer.ingredients[k], e.name))
            }
        }
        return out
    }

    /// The loss at logits `beta` (α = softmax(β) per group) and dL/dβ, through the engine's
    /// backward pass: dL/dβ_j = α_j (dL/dα_j − Σ_i α_i dL/dα_i).
    public static func lossAndBetaGradient(_ scorer: CandidateScorer, beta: [[Double]], groupOf: [Int],
                                           sets: [[([Int], [Int])]], packTokens: Int = 256) throws -> (Double, [[Double]]) {
        let alpha = softmax(beta)
        try scorer.build { alpha[groupOf[$0]] }
        let g = ParameterBuffer(layout: scorer.model.layout)
        let loss = try lossAndGradient(scorer.model, sets, packTokens: packTokens, gradient: g)
        let dA = try coefficientGradient(scorer, g, groupOf: groupOf, groups: beta.count)
        let dB = zip(alpha, dA).map { a, d -> [Double] in
            let mean = zip(a, d).reduce(0) { $0 + $1.0 * $1.1 }
            return zip(a, d).map { $0 * ($1 - mean) }
        }
        return (loss, dB)
    }

    /// The learned soup (Wortsman et al. 2022, §3 and App. "learned soup"): mixing coefficients
    /// α = softmax(β), one per ingredient (or per ingredient and layer), optimised with Adam on
    /// the held-out NLL (mean over the sets of each set's token-mean completion NLL; exact match
    /// has no gradient), starting from the uniform soup.
    /// Returns the coefficients of the step with the lowest loss.
    public static func learned(_ scorer: CandidateScorer, options: LearnedOptions = LearnedOptions(),
                               onStep: ((LearnedStep) -> Void)? = nil) throws -> LearnedResult {
        let (names, groupOf) = groups(of: scorer.model, perLayer: options.perLayer)
        let n = scorer.ingredients.count
        let sets = scorer.sets.map(\.tokenized)
        var beta = [[Double]](repeating: [Double](repeating: 0, count: n), count: names.count)
        var m = beta, v = beta
        let b1 = 0.9, b2 = 0.999, eps = 1e-8
        var history: [LearnedStep] = []
        var best = (loss: Double.infinity, beta: beta, step: 0)
        for step in 0...options.steps {
            let (loss, grad) = try lossAndBetaGradient(scorer, beta: beta, groupOf: groupOf, sets: sets, packTokens: options.packTokens)
            guard loss.isFinite else { throw ModelError.invalidInput("the learned soup's loss is not finite at step \(step)") }
            let norm = Foundation.sqrt(grad.flatMap { $0 }.reduce(0) { $0 + $1 * $1 })
            let s = LearnedStep(step: step, loss: loss, gradientNorm: norm)
            history.append(s)
            onStep?(s)
            if loss < best.loss { best = (loss, beta, step) }
            if step == options.steps { break }
            let t = Double(step + 1)
            for gi in beta.indices {
                for k in 0..<n {
                    let gk = grad[gi][k]
                    m[gi][k] = b1 * m[gi][k] + (1 - b1) * gk
                    v[gi][k] = b2 * v[gi][k] + (1 - b2) * gk * gk
                    let mh = m[gi][k] / (1 - Foundation.pow(b1, t)), vh = v[gi][k] / (1 - Foundation.pow(b2, t))
                    beta[gi][k] -= options.learningRate * mh / (Foundation.sqrt(vh) + eps)
                }
            }
        }
        return LearnedResult(groups: names, coefficients: softmax(best.beta), history: history, bestStep: best.step)
    }
}
