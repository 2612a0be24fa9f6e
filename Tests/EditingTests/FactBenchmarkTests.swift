import Foundation
import Transformer
import XCTest
@testable import Editing

final class FactBenchmarkTests: XCTestCase {
    /// `facts make` keeps exactly the facts whose greedy continuation (here recomputed with the
    /// KV-cached generator, an independent code path) is " object"; wrong pairs are dropped.
    func testKeptFactsAreExactlyThoseTheModelAnswers() throws {
        let pm = try familyBase()
        let custom = FactRelation(name: "capital", templates: ["The capital of {} is", "{} has its capital in"], generation: ["{} is"],
                                  pairs: [("France", "Paris"), ("Germany", "Madrid"), ("Spain", "Madrid"), ("Japan", "Tokyo"), ("Peru", "Oslo")])
        var continent = try FactTable.builtin.relation("continent")
        continent.templates = ["{} is in", "{} lies in"]  // the fixture corpus's phrasing
        let rels = [custom, try FactTable.builtin.relation("capital"), continent]
        let cands = try FactBenchmark.candidates(model: pm.model, tokenizer: pm.tokenizer, relations: [rels[0]])
        XCTAssertEqual(cands.filter(\.known).map(\.subject), ["France", "Spain", "Japan"])
        let gen = TextGenerator(model: pm.model, tokenizer: pm.tokenizer)
        for rel in rels.dropFirst() {
            let cs = try FactBenchmark.candidates(model: pm.model, tokenizer: pm.tokenizer, relations: [rel])
            XCTAssertEqual(cs.count, rel.pairs.count)
            var answered = Set<String>()
            for p in rel.pairs {
                let prompt = rel.templates[0].replacingOccurrences(of: "{}", with: p[0])
                let n = pm.tokenizer.encode(" " + p[1], addSpecialTokens: false).count
                let text = try gen.generate(prompt: prompt, maxTokens: n, options: SamplingOptions(temperature: 0)).text
                if text == " " + p[1] { answered.insert(p[0]) }
            }
            XCTAssertEqual(Set(cs.filter(\.known).map(\.subject)), answered, rel.name)
            XCTAssertGreaterThan(answered.count, 20, rel.name)
            XCTAssertLessThan(answered.count, rel.pairs.count, rel.name)
            // Records: only kept facts; a counterfactual target among the relation's kept objects;
            // neighbours are other kept subjects with their own answers, none equal to the target.
            let recs = FactBenchmark.make(relations: [rel], candidates: cs, settings: FactSettings())
            XCTAssertEqual(recs.count, answered.count)
            let truth = Dictionary(uniqueKeysWithValues: cs.filter(\.known).map { ($0.subject, " " + $0.object) })
            for r in recs {
                XCTAssertEqual(r.groundTruth, truth[r.subject!])
                XCTAssertNotEqual(r.target, r.groundTruth)
                XCTAssertTrue(truth.values.contains(r.target))
                XCTAssertEqual(r.localityPrompts.count, 5)
                XCTAssertEqual(r.paraphrases.count, rel.templates.count - 1)
                for (p, a) in zip(r.localityPrompts, r.localityAnswers) {
                    let s = truth.keys.first { rel.templates[0].replacingOccurrences(of: "{}", with: $0) == p }
                    XCTAssertNotNil(s); XCTAssertNotEqual(s, r.subject)
                    XCTAssertEqual(truth[s!], a); XCTAssertNotEqual(a, r.target)
                }
            }
            XCTAssertEqual(recs, FactBenchmark.make(relations: [rel], candidates: cs, settings: FactSettings()))
        }
    }

    /// Splits depend only on relation and subject, and the records survive the JSONL round trip.
    func testSplitsAndRoundTrip() throws {
        let rel = try FactTable.builtin.relation("capital")
        let all = rel.pairs.map { FactCandidate(relation: "capital", subject: $0[0], object: $0[1], answer: " " + $0[1]) }
        let recs = FactBenchmark.make(relations: [rel], candidates: all, settings: FactSettings())
        let fewer = FactBenchmark.make(relations: [rel], candidates: Array(all.prefix(60)), settings: FactSettings())
        let split = Dictionary(recs.map { ($0.subject!, $0.split!) }, uniquingKeysWith: { a, _ in a })
        for r in fewer { XCTAssertEqual(r.split, split[r.subject!]) }
        let n = Double(recs.count)
        XCTAssertEqual(Double(recs.filter { $0.split == "test" }.count) / n, 0.6, accuracy: 0.15)
        XCTAssertGreaterThan(recs.filter { $0.split == "validation" }.count, 0)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("facts-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        try (recs.map { try $0.jsonLine() }.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        XCTAssertEqual(try EditRequest.readJSONL(url), recs)
    }

    /// `unansweredForTraining`: the answered facts' records are unchanged and come first; the
    /// unanswered facts follow, all in the train split (the others of their hash are dropped),
    /// with targets and neighbours among the answered facts.
    func testUnansweredFactsGoToTrainingOnly() throws {
        let rel = try FactTable.builtin.relation("capital")
        let cands = rel.pairs.enumerated().map { i, p in
            FactCandidate(relation: "capital", subject: p[0], object: p[1], answer: i % 3 == 0 ? " the" : " " + p[1])
        }
        let plain = FactBenchmark.make(relations: [rel], candidates: cands, settings: FactSettings())
        var s = FactSettings(); s.unansweredForTraining = true
        let more = FactBenchmark.make(relations: [rel], candidates: cands, settings: s)
        XCTAssertEqual(Array(more.prefix(plain.count)), plain)
        let extra = more.dropFirst(plain.count)
        let unknown = Set(cands.filter { !$0.known }.map(\.subject)), known = Dictionary(uniqueKeysWithValues: cands.filter(\.known).map { ($0.subject, " " + $0.object) })
        XCTAssertGreaterThan(extra.count, 2)
        XCTAssertLessThan(extra.count, unknown.count / 2)
        let allSplits = FactBenchmark.make(relations: [rel], candidates: cands.map { var c = $0; c.answer = " " + c.object; return c }, settings: FactSettings())
        let trainSubjects = Set(allSplits.filter { $0.split == "train" }.map(\.subject!))
        XCTAssertEqual(Set(extra.map(\.subject!)), unknown.intersection(trainSubjects))
        for r in extra {
            XCTAssertEqual(r.split, "train")
            XCTAssertTrue(known.values.contains(r.target)); XCTAssertNotEqual(r.target, r.groundTruth)
            for (p, a) in zip(r.localityPrompts, r.localityAnswers) {
                XCTAssertEqual(known[known.keys.first { rel.templates[0].replacingOccurrences(of: "{}", with: $0) == p }!], a)
            }
        }
    }

    /// ROME's counterfact.json is one JSON array; its neighbourhood prompts' answer is target_true.
    func testCounterFactJSONArray() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cf-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        let json = """
        [{"case_id": 0, "requested_rewrite": {"prompt": "The mother tongue of {} is", "relation_id": "P103", "target_new": {"str": "English", "id": "Q1860"},
          "target_true": {"str": "French", "id": "Q150"}, "subject": "Danielle Darrieux"},
          "paraphrase_prompts": ["Danielle Darrieux, a native"], "neighborhood_prompts": ["The mother tongue of L\\u00e9on Blum is", "Montesquieu spoke"],
          "generation_prompts": ["Danielle Darrieux's mother tongue is"]},
         {"src": "What is the capital of Peru?", "subject": "Peru", "alt": "Oslo", "pred": "Lima", "rephrase": "Peru has which capital?",
          "loc": "nq question: who wrote hamlet", "loc_ans": "Shakespeare"}]
        """
        try json.write(to: url, atomically: true, encoding: .utf8)
        let rs = try EditRequest.readJSONL(url)
        XCTAssertEqual(rs.count, 2)
        XCTAssertEqual(rs[0].text, "The mother tongue of Danielle Darrieux is")
        XCTAssertEqual(rs[0].localityAnswers, [" French", " French"])
        XCTAssertEqual(rs[0].generationPrompts, ["Danielle Darrieux's mother tongue is"])
        XCTAssertEqual(rs[0].relation, "P103")
        XCTAssertEqual(rs[1].localityPrompts, ["who wrote hamlet"])
        XCTAssertEqual(rs[1].localityAnswers, [" Shakespeare"])
        try "[{\"prompt\": \"x\"}]".write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try EditRequest.readJSONL(url)) { e in
            guard case let EditError.invalidRecord(_, place, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(place, 1)
        }
    }
}
