import Checkpoints
import Foundation
import Tensors

/// One held-out set a candidate is scored on: its label, a digest of its content (the caller's
/// choice, e.g. the SHA-256 of the file and of the tokenizer; it keys the score cache) and the
/// tokenized prompt/completion pairs.
public struct HeldOutSet: Sendable {
    public let name: String
    public let digest: String
    public let tokenized: [([Int], [Int])]
    public init(name: String, digest: String, tokenized: [([Int], [Int])]) {
        self.name = name
        self.digest = digest
        self.tokenized = tokenized
    }
}

/// A candidate's results, one per held-out set, and the mean over the sets.
public struct SoupScore: Codable, Sendable, Equatable {
    public var sets: [EvaluationResult]
    public init(sets: [EvaluationResult]) { self.sets = sets }
    /// Mean over the sets of each set's mean completion NLL.
    public var meanNLL: Double { sets.isEmpty ? 0 : sets.map(\.meanNLL).reduce(0, +) / Double(sets.count) }
    /// Mean over the sets of each set's greedy exact match.
    public var exactMatch: Double { sets.isEmpty ? 0 : sets.map { $0.exactMatch ?? 0 }.reduce(0, +) / Double(sets.count) }

    /// The value a metric minimises: mean NLL, or 1 − exact match.
    public func loss(_ m: CandidateScorer.Metric) -> Double {
        switch m {
        case .nll: meanNLL
        case .em: 1 - exactMatch
        }
    }

    /// Ranks two scores: the metric first, then mean NLL (which breaks exact-match ties).
    public func isBetter(than other: SoupScore, _ m: CandidateScorer.Metric) -> Bool {
        let a = loss(m), b = other.loss(m)
        return a != b ? a < b : meanNLL < other.meanNLL
    }
}

/// Scores merge candidates in memory (no disk round-trip), for soups and coefficient searches
/// (Wortsman et al. 2022, "Model soups", §3; Ilharco et al. 2023, "Editing models with task
/// arithmetic", §2). The ingredients stay memory-mapped; one TransformerModel holds the
/// candidate, rebuilt tensor by tensor, so peak memory is the mapped ingredients plus one
/// candidate (plus one decoded tensor), never every ingredient as Float32.
public final class CandidateScorer {
    public enum Metric: String, Sendable, CaseIterable { case nll, em }

    public let paths: [String]
    public let ingredients: [Checkpoint]
    public let model: TransformerModel
    public let sets: [HeldOutSet]
    /// Examples evaluated side by side (each on its own forward pass; BLAS stays on one thread).
    public var workers: Int
    /// Score cache and the ingredients' content digests that key it (nil: no cache).
    public let cache: ScoreCache?
    public let digests: [String]?
    /// Number of evaluations of one candidate on one set actually run (cache hits do not count).
    public private(set) var evaluations = 0
    /// Called after each set is scored: (set index, result, from the cache).
    public var onScore: ((Int, EvaluationResult, Bool) -> Void)?
    /// Score candidates with NaN/±Inf parameters instead of failing (`--allow-nonfinite`).
    public var allowNonFinite = false

    /// `paths` must share the architecture of the first one's config.json; `digests`, when
    /// given with `cache`, are one content digest per ingredient.
    public init(ingredients paths: [String], sets: [HeldOutSet], cache: ScoreCache? = nil, digests: [String]? = nil,
                workers: Int = max(1, BLASThreads.budget / BLASThreads.current)) throws {
        guard let first = paths.first else { throw ModelError.invalidInput("no ingredients") }
        guard !sets.isEmpty else { throw ModelError.invalidInput("no held-out data") }
        if let digests, digests.count != paths.count {
            throw ModelError.invalidInput("\(digests.count) digests for \(paths.count) ingredients")
        }
        self.paths = paths
        ingredients = try paths.map { try ModelReference.open($0) }
        guard let dir = ingredients[0].directory else { throw ModelError.cannotRead(path: first, reason: "no folder with config.json") }
        model = TransformerModel(config: try ModelConfig(configJSON: dir.appendingPathComponent("config.json")))
        // Every ingredient's every tensor checked before anything is scored (a soup of
        // different shapes would otherwise fail on its second candidate, after minutes of work).
        for (k, ck) in ingredients.enumerated() {
            for e in model.layout.entries where !ck.has(e.name) && !ck.has(Self.strippedName(e.name)) {
                throw ModelError.cannotRead(path: paths[k], reason: "missing tensor \(e.name) (is it a model of the same architecture as \(first)?)")
            }
            // Non-vocabulary matrices first: a vocabulary-only difference gets its own advice.
            let vocabularyMatrix = TensorNaming.isVocabularyMatrix
            for e in model.layout.entries.sorted(by: { !vocabularyMatrix($0.name) && vocabularyMatrix($1.name) }) {
                guard let info = ck.info(ck.has(e.name) ? e.name : Self.strippedName(e.name)), info.shape.dims != e.shape.dims else { continue }
                if vocabularyMatrix(e.name) && Array(info.shape.dims.dropFirst()) == Array(e.shape.dims.dropFirst()) {
                    throw ModelError.cannotRead(path: paths[k], reason: "tensor \"\(e.name)\" has shape \(info.shape.dims), expected \(e.shape.dims) as in \(first): "
                        + "the vocabularies differ; bring the ingredients to one vocabulary first (`merge` with tokenizer_source: union, or --vocab base)")
                }
                throw ModelError.shapeMismatch(source: paths[k], tensor: e.name, expected: e.shape.dims, actual: info.shape.dims)
            }
        }
        self.sets = sets
        self.cache = cache
        self.digests = digests
        self.workers = max(1, workers)
    }

    static func strippedName(_ name: String) -> String {
        name.hasPrefix("transformer.") ? String(name.dropFirst(12)) : name
    }

    func storedName(_ ck: Checkpoint, _ name: String) -> String {
        ck.has(name) ? name : Self.strippedName(name)
    }

    /// Ingredient `k`'s tensor for the layout entry `e`, shape-checked.
    func tensor(_ k: Int, _ e: ParameterLayout.Entry) throws -> Tensor {
        let ck = ingredients[k]
        let t = try ck.tensor(storedName(ck, e.name))
        guard t.shape == e.shape else {
            throw ModelError.shapeMismatch(source: paths[k], tensor: e.name, expected: e.shape.dims, actual: t.shape.dims)
        }
        return t
    }

    /// Writes `Σ_i w_i x_i / Σ_i w_i` into the model's parameters, with the same arithmetic as
    /// `merge --method linear` (Float64 accumulation in ingredient order, coefficients w_i / Σw),
    /// so the candidate equals the linear merge bit for bit. Zero-weight ingredients are skipped
    /// (their term is exactly 0 either way).
    public func build(weights: [Double]) throws {
        guard weights.count == ingredients.count else {
            throw ModelError.invalidInput("\(weights.count) weights for \(ingredients.count) ingredients")
        }
        let total = weights.reduce(0, +)
        guard abs(total) >= 1e-8 else { throw ModelError.invalidInput("the weights sum to \(total)") }
        let c = weights.map { $0 * (1 / total) }
        try build { _ in c }
    }

    /// Writes `Σ_i c(e)_i x_i` for every parameter e, with coefficients per layout entry
    /// (used directly, not normalised).
    public func build(coefficients: (Int) -> [Double]) throws {
        for (ei, e) in model.layout.entries.enumerated() {
            let out = model.parameters.pointer(e.name)
            let c = coefficients(ei)
            var acc = [Double](repeating: 0, count: e.count)
            for k in ingredients.indices where c[k] != 0 {
                let t = try tensor(k, e)
                let w = c[k]
                t.scalars.withUnsafeBufferPointer { x in
                    for j in 0..<e.count { acc[j] += w * Double(x[j]) }
                }
                ingredients[k].releasePages(storedName(ingredients[k], e.name))
            }
            var bad = 0
            for j in 0..<e.count {
                let v = Float(acc[j])
                out[j] = v
                if !v.isFinite { bad += 1 }
            }
            if bad > 0 && !allowNonFinite {
                // Name the ingredient that holds the values, else the arithmetic that made them.
                var culprit: Int?
                for k in ingredients.indices where c[k] != 0 && culprit == nil {
                    if try tensor(k, e).scalars.contains(where: { !$0.isFinite }) { culprit = k }
                }
                throw ModelError.nonFinite(source: culprit.map { paths[$0] } ?? "the candidate built from \(paths.joined(separator: ", ")) (coefficients \(c.map { String(format: "%g", $0) }.joined(separator: ", ")) overflow Float32)",
                                           tensor: e.name, count: bad, elements: e.count)
            }
        }
    }

    /// The cache key of a candidate on one set (nil without a cache).
    func key(_ weights: [Double], _ set: HeldOutSet) -> String? {
        guard cache != nil, let digests else { return nil }
        return ScoreCache.key(ingredientDigests: digests, weights: weights, dataDigest: set.digest)
    }

    /// Builds (only when some set is not cached) and scores the candidate on every set.
    public func score(weights: [Double]) throws -> SoupScore {
        var results: [EvaluationResult?] = sets.map { s in key(weights, s).flatMap { cache?[$0] } }
        if results.contains(where: { $0 == nil }) { try build(weights: weights) }
        for (i, s) in sets.enumerated() {
            if let r = results[i] { onScore?(i, r, true); continue }
            let r = try Evaluator.evaluate(model: model, tokenized: s.tokenized, workers: workers)
            evaluations += 1
            results[i] = r
            if let cache, let k = key(weights, s) { cache[k] = r }
            onScore?(i, r, false)
        }
        cache?.save()
        return SoupScore(sets: results.map { $0! })
    }

    /// Scores the model as it is now (after `build`), without the cache.
    public func scoreCurrent() throws -> SoupScore {
        SoupScore(sets: try sets.map { try Evaluator.evaluate(model: model, tokenized: $0.tokenized, workers: workers) })
    }
}

/// Scores keyed by a string that fingerprints the inputs' content, the recipe and the data
/// (the caller builds it, e.g. from SHA-256 digests), stored as one JSON file. Default place:
/// `$XDG_CACHE_HOME/weightsmith/scores.json` or `~/.cache/weightsmith/scores.json`.
public final class ScoreCache {
    public let url: URL
    var entries: [String: EvaluationResult]
    var dirty = false

    public static var defaultURL: URL {
        let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("weightsmith/scores.json")
    }

    public init(url: URL = ScoreCache.defaultURL) {
        self.url = url
        if let d = FileManager.default.contents(atPath: url.path),
           let e = try? JSONDecoder().decode([String: EvaluationResult].self, from: d) { entries = e } else { entries = [:] }
    }

    public var count: Int { entries.count }

    public subscript(key: String) -> EvaluationResult? {
        get { entries[key] }
        set { entries[key] = newValue; dirty = true }
    }

    /// Writes atomically when something changed; a failure only costs time later (it is a cache).
    public func save() {
        guard dirty else { return }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        guard let d = try? enc.encode(entries) else { return }
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if (try? d.write(to: url, options: .atomic)) != nil { dirty = false }
    }

    /// A cache key: the ingredients' content digests, the weights (exact, as bit patterns), the
    /// data's digest and the metric-independent evaluation (both metrics come from one pass).
    /// Weights are normalised first, so `[1, 1]` and `[2, 2]` share an entry.
    public static func key(ingredientDigests: [String], weights: [Double], dataDigest: String) -> String {
        let total = weights.reduce(0, +)
        let w = weights.map { String(($0 * (1 / total)).bitPattern, radix: 16) }.joined(separator: ",")
        return "linear|" + ingredientDigests.joined(separator: ",") + "|" + w + "|" + dataDigest
    }
}
