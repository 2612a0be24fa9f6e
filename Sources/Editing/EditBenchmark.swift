import Foundation
import Transformer
import Tokenizers

/// Single-edit protocol over many requests (EasyEdit's single-edit evaluation, Wang et al. 2024): for each, record the locality
/// reference, score, compute and apply the edit, score again, restore the weights. Returns the
/// means before and after (paraphrase/locality over the requests that have them) and timing.
public struct EditBenchmarkResult: Sendable {
    public var requests: Int
    public var before: EditScores
    public var after: EditScores
    /// Requests whose greedy answer became the target's first tokens.
    public var answerChanged: Int
    public var secondsPerEdit: Double
}

public enum EditBenchmark {
    public static func run(model: TransformerModel, tokenizer: BPETokenizer, requests: [EditRequest],
                           method: (EditRequest) throws -> [WeightEdit]) throws -> EditBenchmarkResult {
        guard !requests.isEmpty else { throw EditError.invalidRequest("no requests") }
        let scorer = EditScorer(model: model, tokenizer: tokenizer)
        var b: [EditScores] = [], a: [EditScores] = []
        var changed = 0, seconds = 0.0
        for r in requests {
            let ref = r.localityPrompts.isEmpty ? nil : try scorer.localityReference(r.localityPrompts)
            b.append(try scorer.score(r, locality: ref))
            let t0 = Date()
            let edits = try method(r)
            seconds += Date().timeIntervalSince(t0)
            let snapshot = WeightSnapshot(model: model)
            defer { snapshot.restore() }
            for e in edits { try snapshot.apply(e) }
            let s = try scorer.score(r, locality: ref)
            a.append(s)
            if s.answer == r.target { changed += 1 }
        }
        return EditBenchmarkResult(requests: requests.count, before: mean(b), after: mean(a), answerChanged: changed,
                                   secondsPerEdit: seconds / Double(requests.count))
    }

    public static func mean(_ xs: [EditScores]) -> EditScores {
        func avg(_ v: [Double]) -> Double? { v.isEmpty ? nil : v.reduce(0, +) / Double(v.count) }
        return EditScores(efficacy: avg(xs.map(\.efficacy))!, efficacyProbability: avg(xs.map(\.efficacyProbability))!,
                          paraphrase: avg(xs.compactMap(\.paraphrase)), locality: avg(xs.compactMap(\.locality)), answer: "")
    }
}
