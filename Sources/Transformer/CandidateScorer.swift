import Checkpoints
import Foundation
import Tensors

/// Scores merge candidates in memory (no disk round-trip), for soups and coefficient searches
/// (Wortsman et al. 2022, "Model soups", §3; Ilharco et al. 2023, "Editing models with task
/// arithmetic", §2). The ingredients stay memory-mapped; one TransformerModel holds the
/// candidate, rebuilt tensor by tensor, so peak memory is the mapped ingredients plus one
/// candidate (plus one decoded tensor), never every ingredient as Float32.
public final class CandidateScorer {
    public enum Metric: String, Sendable, CaseIterable { case nll, em }

    public let ingredients: [Checkpoint]
    public let model: TransformerModel
    public let tokenized: [([Int], [Int])]
    /// Number of evaluations actually run (cache hits do not count).
    public private(set) var evaluations = 0

    /// `ingredients` must share the architecture of the first one's config.json.
    public init(ingredients paths: [String], data: [PromptCompletion], tokenizer: BPETokenizer) throws {
        guard let first = paths.first else { throw ModelError.invalidInput("no ingredients") }
        ingredients = try paths.map { try Checkpoint(path: $0) }
        guard let dir = ingredients[0].directory else { throw ModelError.cannotRead(path: first, reason: "no folder with config.json") }
        model = TransformerModel(config: try ModelConfig(configJSON: dir.appendingPathComponent("config.json")))
        tokenized = data.map { (tokenizer.encode($0.prompt), tokenizer.encode($0.completion, addSpecialTokens: false)) }
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
        for e in model.layout.entries {
            let out = model.parameters.pointer(e.name)
            var acc = [Double](repeating: 0, count: e.count)
            for (i, ck) in ingredients.enumerated() where weights[i] != 0 {
                let name = ck.has(e.name) ? e.name : (e.name.hasPrefix("transformer.") ? String(e.name.dropFirst(12)) : e.name)
                let t = try ck.tensor(name)
                guard t.shape == e.shape else {
                    throw ModelError.shapeMismatch(source: ck.path, tensor: e.name, expected: e.shape.dims, actual: t.shape.dims)
                }
                let w = c[i]
                t.scalars.withUnsafeBufferPointer { x in
                    for j in 0..<e.count { acc[j] += w * Double(x[j]) }
                }
                ck.releasePages(name)
            }
            for j in 0..<e.count { out[j] = Float(acc[j]) }
        }
    }

    /// Builds and scores a candidate, consulting `cache` under `key` first.
    public func score(weights: [Double], cache: ScoreCache? = nil, key: String? = nil) throws -> EvaluationResult {
        if let cache, let key, let hit = cache[key] { return hit }
        try build(weights: weights)
        let r = try Evaluator.evaluate(model: model, tokenized: tokenized)
        evaluations += 1
        if let cache, let key { cache[key] = r; cache.save() }
        return r
    }

    /// The value a metric minimises: mean NLL, or 1 − exact match.
    public static func loss(_ r: EvaluationResult, _ m: Metric) -> Double {
        switch m {
        case .nll: r.meanNLL
        case .em: 1 - (r.exactMatch ?? 0)
        }
    }
}

/// Scores keyed by a string that fingerprints the inputs' content, the recipe and the data
/// (the caller builds it, e.g. from SHA-256 digests), stored as one JSON file. Default place:
/// `$XDG_CACHE_HOME/weightsmith/scores.json` or `~/.cache/weightsmith/scores.json`.
public final class ScoreCache {
    public let url: URL
    var entries: [String: EvaluationResult]

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

    public subscript(key: String) -> EvaluationResult? {
        get { entries[key] }
        set { entries[key] = newValue }
    }

    /// Writes atomically; a failure only costs time later (it is a cache).
    public func save() {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        guard let d = try? enc.encode(entries) else { return }
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? d.write(to: url, options: .atomic)
    }

    /// A cache key: the ingredients' content digests, the weights (exact, as bit patterns), the
    /// data's digest and the metric-independent evaluation (both metrics come from one pass).
    public static func key(ingredientDigests: [String], weights: [Double], dataDigest: String) -> String {
        let w = weights.map { String($0.bitPattern, radix: 16) }.joined(separator: ",")
        return "linear|" + ingredientDigests.joined(separator: ",") + "|" + w + "|" + dataDigest
    }
}
