import Foundation
import Transformer
import Tokenizers

/// One relation of a fact table: prompt templates with `{}` for the subject (the first is the
/// edit prompt, the others its paraphrases), generation templates, and (subject, object) pairs.
public struct FactRelation: Sendable, Equatable, Codable {
    public var name: String
    public var templates: [String]
    public var generation: [String]
    public var pairs: [[String]]

    public init(name: String, templates: [String], generation: [String], pairs: [(String, String)]) {
        self.name = name; self.templates = templates; self.generation = generation; self.pairs = pairs.map { [$0.0, $0.1] }
    }
}

/// A table of relations. The built-in one (`FactTable.builtin`) has capitals, official
/// languages, currencies, continents and cities' countries; `read` loads a table from JSON
/// `{"relations": [{"name", "templates": [...], "generation": [...], "pairs": [[subject, object], ...]}]}`.
public struct FactTable: Sendable, Equatable, Codable {
    public var relations: [FactRelation]
    public init(relations: [FactRelation]) { self.relations = relations }

    public static func read(_ url: URL) throws -> FactTable {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw EditError.cannotRead(path: url.path, reason: "\(error)") }
        let t: FactTable
        do { t = try JSONDecoder().decode(FactTable.self, from: data) } catch {
            throw EditError.cannotRead(path: url.path, reason: "not a fact table ({\"relations\": [{name, templates, generation, pairs}]}): \(error)")
        }
        for r in t.relations {
            guard !r.templates.isEmpty, r.templates.allSatisfy({ $0.contains("{}") }) else {
                throw EditError.cannotRead(path: url.path, reason: "relation \(r.name): every template needs a {} for the subject")
            }
            if let bad = r.pairs.firstIndex(where: { $0.count != 2 || $0[0].isEmpty || $0[1].isEmpty }) {
                throw EditError.cannotRead(path: url.path, reason: "relation \(r.name): pair \(bad + 1) is not [subject, object]")
            }
        }
        return t
    }

    public func relation(_ name: String) throws -> FactRelation {
        guard let r = relations.first(where: { $0.name == name }) else {
            throw EditError.invalidRequest("no relation \"\(name)\" (the table has \(relations.map(\.name).joined(separator: ", ")))")
        }
        return r
    }
}

/// Settings of `FactBenchmark.make`: split fractions (train, validation; the rest is test),
/// neighbourhood prompts per record, seed of the counterfactual targets and neighbours.
public struct FactSettings: Sendable {
    public var trainFraction = 0.3
    public var validationFraction = 0.1
    public var neighbours = 5
    public var seed: UInt64 = 0
    /// Also make records of the facts the model does not answer, in the train split only and
    /// after every answered fact's record (which stay as they are): an editor such as MEND learns
    /// from edits, not from what the model knows, so these enlarge its training set while the
    /// validation and test splits keep only facts the model answers. Their targets and
    /// neighbours are drawn from the answered facts, as for the others.
    public var unansweredForTraining = false
    public init() {}
}

public struct FactCandidate: Sendable, Equatable {
    public var relation: String
    public var subject: String
    public var object: String
    /// The model's greedy continuation of the edit prompt (as many tokens as " object" has).
    public var answer: String
    public var known: Bool { answer == " " + object }
}

/// Builds edit records from what a model knows (CounterFact's construction, Meng et al. 2022 §3,
/// on a templated table): a fact is kept when the unedited model's greedy continuation of the
/// relation's first template equals " object" exactly. Each kept fact becomes a record with
/// - target_new: the object of another kept fact of the same relation (a different string),
///   drawn with a generator seeded by the seed and the subject;
/// - paraphrase_prompts: the relation's other templates with the subject;
/// - neighborhood_prompts / neighborhood_answers: the first template with up to `neighbours` other kept
///   subjects of the relation whose object is not target_new, with their objects;
/// - generation_prompts: the relation's generation templates;
/// - split: from a hash of relation and subject (so adding facts never moves existing ones).
public enum FactBenchmark {
    public static func candidates(model: TransformerModel, tokenizer: BPETokenizer, relations: [FactRelation],
                                  progress: ((Int, Int) -> Void)? = nil) throws -> [FactCandidate] {
        let scorer = EditScorer(model: model, tokenizer: tokenizer)
        let total = relations.reduce(0) { $0 + $1.pairs.count }
        var out: [FactCandidate] = [], done = 0
        for r in relations {
            guard let t = r.templates.first else { throw EditError.invalidRequest("relation \(r.name) has no template") }
            var seen = Set<String>()
            for p in r.pairs where seen.insert(p[0]).inserted {
                let prompt = t.replacingOccurrences(of: "{}", with: p[0])
                let (ids, target) = try scorer.encode(prompt: prompt, target: " " + p[1])
                let answer = try tokenizer.decode(try scorer.greedy(ids, count: target.count), skipSpecialTokens: true)
                out.append(FactCandidate(relation: r.name, subject: p[0], object: p[1], answer: answer))
                done += 1
                progress?(done, total)
            }
        }
        return out
    }

    public static func make(relations: [FactRelation], candidates: [FactCandidate], settings: FactSettings) -> [EditRequest] {
        var out: [EditRequest] = [], extra: [EditRequest] = []
        for r in relations {
            let kept = candidates.filter { $0.relation == r.name && $0.known }
            let facts = kept + (settings.unansweredForTraining ? candidates.filter { $0.relation == r.name && !$0.known } : [])
            for f in facts {
                var rng = SplitMix(seed: settings.seed ^ fnv("\(r.name)\u{0}\(f.subject)"))
                let u = Double(fnv("split\u{0}\(r.name)\u{0}\(f.subject)") >> 11) / Double(1 << 53)
                let split = u < settings.trainFraction ? "train" : u < settings.trainFraction + settings.validationFraction ? "validation" : "test"
                if !f.known && split != "train" { continue }
                let others = Array(Set(kept.map(\.object)).subtracting([f.object])).sorted()
                guard !others.isEmpty else { continue }
                let newObject = others[Int(rng.next() % UInt64(others.count))]
                var pool = kept.filter { $0.subject != f.subject && $0.object != newObject }
                var neighbours: [FactCandidate] = []
                while neighbours.count < settings.neighbours && !pool.isEmpty {
                    neighbours.append(pool.remove(at: Int(rng.next() % UInt64(pool.count))))
                }
                let fill = { (t: String, s: String) in t.replacingOccurrences(of: "{}", with: s) }
                let record = EditRequest(prompt: r.templates[0], subject: f.subject, target: " " + newObject, groundTruth: " " + f.object,
                                         paraphrases: r.templates.dropFirst().map { fill($0, f.subject) },
                                         localityPrompts: neighbours.map { fill(r.templates[0], $0.subject) },
                                         localityAnswers: neighbours.map { " " + $0.object },
                                         generationPrompts: r.generation.map { fill($0, f.subject) }, relation: r.name, split: split)
                if f.known { out.append(record) } else { extra.append(record) }
            }
        }
        return out + extra
    }

    static func fnv(_ s: String) -> UInt64 { var h = FNV1a(); h.add(Array(s.utf8)); return h.value }
}

/// SplitMix64 (Steele et al. 2014): a tiny deterministic generator for record construction.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
