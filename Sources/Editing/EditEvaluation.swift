import Foundation
import Transformer
import Tokenizers

/// Every score of one request on one model: EasyEdit's token-level scores (Wang et al. 2024;
/// `EditScores`), CounterFact's probability scores (Meng et al. 2022, §3; `CounterFactScores`)
/// and the generation entropy of its generation prompts (nil without any).
public struct RequestScores: Sendable, Equatable, Codable {
    public var tokens: EditScores
    public var counterFact: CounterFactScores
    public var generationEntropy: Double?
}

/// One row of an edit evaluation: the means over `requests` records after `edits` edits.
/// `reliability`, `generalization`, `locality` are EasyEdit's token-level scores (the means of
/// `EditScores.efficacy`, `.paraphrase`, `.locality`, as `EditBenchmark` reports them);
/// the CounterFact scores and `generationEntropy` (in bits, the papers print × 100) as in
/// `CounterFactScores` and `GenerationEntropy`; `reachedTarget` counts the records whose greedy
/// answer is the target; `secondsPerEdit` is the time spent computing edits (nil: none made);
/// `perplexity` that of the evaluation's text (nil without one; single-edit rows: the mean over
/// the edited models).
public struct EditEvaluationRow: Sendable, Equatable, Codable {
    public var name: String
    public var edits: Int
    public var requests: Int
    public var efficacyScore: Double?
    public var efficacyMagnitude: Double?
    public var paraphraseScore: Double?
    public var neighbourhoodScore: Double?
    public var generationEntropy: Double?
    public var reliability: Double
    public var generalization: Double?
    public var locality: Double?
    public var reachedTarget: Int
    public var secondsPerEdit: Double?
    public var perplexity: Double?

    public init(name: String, edits: Int, scores: [RequestScores], requests: [EditRequest], seconds: Double?, perplexity: Double? = nil) {
        self.perplexity = perplexity
        self.name = name; self.edits = edits; self.requests = scores.count
        let cf = CounterFactScores.mean(scores.map(\.counterFact))
        efficacyScore = cf.efficacyScore; efficacyMagnitude = cf.efficacyMagnitude
        paraphraseScore = cf.paraphraseScore; neighbourhoodScore = cf.neighbourhoodScore
        let ge = scores.compactMap(\.generationEntropy)
        generationEntropy = ge.isEmpty ? nil : ge.reduce(0, +) / Double(ge.count)
        let t = EditBenchmark.mean(scores.map(\.tokens))
        reliability = t.efficacy; generalization = t.paraphrase; locality = t.locality
        reachedTarget = zip(scores, requests).filter { $0.0.tokens.answer == $0.1.target }.count
        secondsPerEdit = seconds.map { edits > 0 ? $0 / Double(edits) : 0 }
    }
}

/// Scores editing methods over a list of requests, on one model, under the editing papers'
/// protocols. The locality references (the unedited model's greedy tokens on each request's
/// locality prompts) are recorded once, at `init`, on the unedited model.
/// - `unedited()`: the scores before any edit;
/// - `single`: for each request alone: edit, score, restore (ROME's and EasyEdit's default);
/// - `sequential`: the edits one after another on the same model, never restored in between
///   (each edit computed on the model as the earlier edits left it); rows after every `every`
///   edits (scoring the requests edited so far) and after the last one;
/// - `batch`: one edit for all requests at once (MEMIT), then every request scored.
/// The model is restored bit for bit after each protocol (`WeightSnapshot`).
public final class EditEvaluation {
    public let model: TransformerModel
    public let tokenizer: BPETokenizer
    public let requests: [EditRequest]
    /// New tokens generated from each generation prompt for the entropy (0: not measured).
    public let generationTokens: Int
    /// A text whose perplexity each row reports (windows of `perplexityWindow` tokens, at most the
    /// model's context): how much an edit disturbs the model's language modelling in general.
    public var perplexityText: String?
    public var perplexityWindow = 256
    let scorer: EditScorer
    let references: [LocalityReference?]

    /// How many neighbourhood (locality) prompts `excludingEditedSubjects` left out, over all requests.
    public let excludedNeighbourhoodPrompts: Int

    /// `excludingEditedSubjects`: for protocols that keep several edits at once (batch, sequential),
    /// a request's neighbourhood prompts that mention the subject of another request of the list
    /// are left out of every row, the unedited one included: that subject is itself edited in the
    /// run, so its answer is meant to change (in a fact table whose neighbours are other subjects of
    /// the same relation, such a prompt is often that request's own edit prompt).
    public init(model: TransformerModel, tokenizer: BPETokenizer, requests: [EditRequest], generationTokens: Int = 100,
                excludingEditedSubjects: Bool = false) throws {
        guard !requests.isEmpty else { throw EditError.invalidRequest("no requests to evaluate") }
        guard generationTokens >= 0 else { throw EditError.invalidRequest("the generation length must be ≥ 0, got \(generationTokens)") }
        for r in requests { try r.validate() }
        var kept = requests, excluded = 0
        if excludingEditedSubjects { (kept, excluded) = Self.leavingOutEditedSubjects(requests) }
        excludedNeighbourhoodPrompts = excluded
        self.model = model; self.tokenizer = tokenizer; self.requests = kept; self.generationTokens = generationTokens
        let sc = EditScorer(model: model, tokenizer: tokenizer)
        scorer = sc
        references = try kept.map { $0.localityPrompts.isEmpty ? nil : try sc.localityReference($0.localityPrompts) }
    }

    /// The requests with every neighbourhood (locality) prompt that mentions the subject of
    /// another request of the list left out (with its recorded answer), and how many were left
    /// out: for edits made together, whose subjects' answers are meant to change.
    public static func leavingOutEditedSubjects(_ requests: [EditRequest]) -> (requests: [EditRequest], excluded: Int) {
        var kept = requests, excluded = 0
        let subjects = requests.map { try? $0.keySubject() }
        for i in kept.indices {
            let others = Set(subjects.enumerated().compactMap { $0.offset != i ? $0.element : nil })
                .subtracting([subjects[i]].compactMap { $0 })
            let r = kept[i]
            let keep = r.localityPrompts.map { q in !others.contains { Self.mentions(q, $0) } }
            excluded += keep.filter { !$0 }.count
            kept[i].localityPrompts = zip(r.localityPrompts, keep).filter(\.1).map(\.0)
            if r.localityAnswers.count == r.localityPrompts.count {
                kept[i].localityAnswers = zip(r.localityAnswers, keep).filter(\.1).map(\.0)
            }
        }
        return (kept, excluded)
    }

    /// Whether `text` contains `subject` as whole words (not inside a longer word).
    static func mentions(_ text: String, _ subject: String) -> Bool {
        guard !subject.isEmpty else { return false }
        var from = text.startIndex
        while let r = text.range(of: subject, range: from..<text.endIndex) {
            let before = r.lowerBound == text.startIndex ? nil : text[text.index(before: r.lowerBound)]
            let after = r.upperBound == text.endIndex ? nil : text[r.upperBound]
            if !(before.map { $0.isLetter || $0.isNumber } ?? false) && !(after.map { $0.isLetter || $0.isNumber } ?? false) { return true }
            from = text.index(after: r.lowerBound)
        }
        return false
    }

    /// All scores of request `i` on the model as it is now.
    public func score(_ i: Int) throws -> RequestScores {
        let r = requests[i]
        return RequestScores(tokens: try scorer.score(r, locality: references[i]), counterFact: try scorer.counterFact(r),
                             generationEntropy: try scorer.generationEntropy(r.generationPrompts, tokens: generationTokens))
    }

    /// The perplexity of `perplexityText` under the model as it is now (nil without a text).
    public func perplexity() throws -> Double? {
        guard let text = perplexityText else { return nil }
        let window = max(2, min(perplexityWindow, model.config.maxPositions))
        return try Evaluator(model: model, tokenizer: tokenizer).perplexity(text: text, window: window).perplexity
    }

    public func unedited(progress: ((Int, Int) -> Void)? = nil) throws -> EditEvaluationRow {
        var s: [RequestScores] = []
        for i in requests.indices { s.append(try score(i)); progress?(i + 1, requests.count) }
        return EditEvaluationRow(name: "unedited", edits: 0, scores: s, requests: requests, seconds: nil, perplexity: try perplexity())
    }

    public func single(name: String, method: (EditRequest) throws -> [WeightEdit], progress: ((Int, Int) -> Void)? = nil) throws -> EditEvaluationRow {
        let snapshot = WeightSnapshot(model: model)
        defer { snapshot.restore() }
        var s: [RequestScores] = [], seconds = 0.0, ppl = 0.0
        for (i, r) in requests.enumerated() {
            let t0 = Date()
            let edits = try method(r)
            seconds += Date().timeIntervalSince(t0)
            for e in edits { try snapshot.apply(e) }
            s.append(try score(i))
            ppl += try perplexity() ?? 0
            snapshot.restore()
            progress?(i + 1, requests.count)
        }
        return EditEvaluationRow(name: name, edits: requests.count, scores: s, requests: requests, seconds: seconds,
                                 perplexity: perplexityText == nil ? nil : ppl / Double(requests.count))
    }

    /// Rows after every `every` edits (nil or 0: only after the last), each over the requests
    /// edited so far; the last row is after all of them. Progress counts edits and scorings.
    public func sequential(name: String, every: Int? = nil, method: (EditRequest) throws -> [WeightEdit],
                           progress: ((Int, Int) -> Void)? = nil) throws -> [EditEvaluationRow] {
        let snapshot = WeightSnapshot(model: model)
        defer { snapshot.restore() }
        let n = requests.count
        let k = (every ?? 0) > 0 ? every! : n
        let checkpoints = Set(stride(from: k, through: n, by: k)).union([n])
        let total = n + checkpoints.reduce(0, +)
        var done = 0, seconds = 0.0, rows: [EditEvaluationRow] = []
        for (i, r) in requests.enumerated() {
            let t0 = Date()
            let edits = try method(r)
            seconds += Date().timeIntervalSince(t0)
            for e in edits { try snapshot.apply(e) }
            done += 1; progress?(done, total)
            if checkpoints.contains(i + 1) {
                var s: [RequestScores] = []
                for j in 0...i { s.append(try score(j)); done += 1; progress?(done, total) }
                rows.append(EditEvaluationRow(name: i + 1 == n ? name : "\(name) @\(i + 1)", edits: i + 1, scores: s,
                                              requests: Array(requests[0...i]), seconds: seconds, perplexity: try perplexity()))
            }
        }
        return rows
    }

    public func batch(name: String, method: ([EditRequest]) throws -> [WeightEdit], progress: ((Int, Int) -> Void)? = nil) throws -> EditEvaluationRow {
        let snapshot = WeightSnapshot(model: model)
        defer { snapshot.restore() }
        let t0 = Date()
        let edits = try method(requests)
        let seconds = Date().timeIntervalSince(t0)
        for e in edits { try snapshot.apply(e) }
        var s: [RequestScores] = []
        for i in requests.indices { s.append(try score(i)); progress?(i + 1, requests.count) }
        return EditEvaluationRow(name: name, edits: requests.count, scores: s, requests: requests, seconds: seconds, perplexity: try perplexity())
    }
}
