import Foundation
import Tensors
import Transformer
import XCTest
@testable import Editing

/// The protocols of `EditEvaluation` on the fixture model, on a few `facts make` records.
final class EditEvaluationTests: XCTestCase {
    func records(_ pm: PretrainedModel, _ n: Int) throws -> [EditRequest] {
        let rel = try FactTable.builtin.relation("capital")
        let cands = try FactBenchmark.candidates(model: pm.model, tokenizer: pm.tokenizer, relations: [rel])
        return Array(FactBenchmark.make(relations: [rel], candidates: cands, settings: FactSettings()).prefix(n))
    }

    func parameters(_ m: TransformerModel) -> [Float] {
        Array(UnsafeBufferPointer(start: m.parameters.base, count: m.layout.totalCount))
    }

    func rome(_ pm: PretrainedModel) -> (EditRequest) throws -> [WeightEdit] {
        var s = RomeSettings(layer: 0)
        s.steps = 40; s.contextTemplates = 0
        return { [try RomeEditor.edit(model: pm.model, tokenizer: pm.tokenizer, request: $0, settings: s).edit] }
    }

    /// The unedited row's token-level scores are `EditBenchmark`'s before-means; an edit that
    /// changes nothing reproduces the unedited row under every protocol.
    func testUneditedRowAndNoOpEdits() throws {
        let pm = try familyBase()
        let rs = try records(pm, 4)
        let ev = try EditEvaluation(model: pm.model, tokenizer: pm.tokenizer, requests: rs, generationTokens: 8)
        let u = try ev.unedited()
        let b = try EditBenchmark.run(model: pm.model, tokenizer: pm.tokenizer, requests: rs) { _ in [] }
        XCTAssertEqual(u.reliability, b.before.efficacy)
        XCTAssertEqual(u.generalization, b.before.paraphrase)
        XCTAssertEqual(u.locality, 1)
        XCTAssertEqual(u.requests, 4)
        XCTAssertEqual(u.edits, 0)
        XCTAssertNil(u.secondsPerEdit)
        // facts make keeps only facts the model answers: the true answer is the greedy one.
        XCTAssertEqual(u.efficacyScore, 0)
        XCTAssertEqual(u.reachedTarget, 0)
        XCTAssertNotNil(u.neighbourhoodScore)
        XCTAssertGreaterThan(try XCTUnwrap(u.generationEntropy), 0)
        let before = parameters(pm.model)
        let zero: (EditRequest) throws -> [WeightEdit] = { _ in
            let w = pm.model.mlpOutputWeight(layer: 1)
            return [WeightEdit(weight: w, delta: Tensor(shape: pm.model.layout[w]!.shape, scalars: [Float](repeating: 0, count: pm.model.layout[w]!.count)))]
        }
        func same(_ r: EditEvaluationRow) {
            XCTAssertEqual(r.reliability, u.reliability); XCTAssertEqual(r.generalization, u.generalization); XCTAssertEqual(r.locality, u.locality)
            XCTAssertEqual(r.efficacyScore, u.efficacyScore); XCTAssertEqual(r.efficacyMagnitude, u.efficacyMagnitude)
            XCTAssertEqual(r.paraphraseScore, u.paraphraseScore); XCTAssertEqual(r.neighbourhoodScore, u.neighbourhoodScore)
            XCTAssertEqual(r.generationEntropy, u.generationEntropy)
        }
        same(try ev.single(name: "zero", method: zero))
        let seq = try ev.sequential(name: "none", method: { _ in [] })
        XCTAssertEqual(seq.count, 1)
        same(seq[0])
        same(try ev.batch(name: "zero", method: { _ in try zero(rs[0]) }))
        XCTAssertEqual(parameters(pm.model), before)
    }

    /// Real edits: ROME raises reliability above the unedited row, and every protocol leaves the
    /// weights bit-identical afterwards; `every` gives rows after 2, 4 and the last (5th) edit.
    func testProtocolsEditAndRestore() throws {
        let pm = try familyBase()
        let rs = try records(pm, 5)
        let ev = try EditEvaluation(model: pm.model, tokenizer: pm.tokenizer, requests: rs, generationTokens: 0)
        let before = parameters(pm.model)
        let u = try ev.unedited()
        XCTAssertNil(u.generationEntropy)
        let single = try ev.single(name: "rome", method: rome(pm))
        XCTAssertEqual(parameters(pm.model), before)
        XCTAssertGreaterThan(single.reliability, u.reliability + 0.1)
        XCTAssertGreaterThan(try XCTUnwrap(single.efficacyMagnitude), try XCTUnwrap(u.efficacyMagnitude))
        XCTAssertEqual(single.edits, 5)
        var calls = 0
        let seq = try ev.sequential(name: "rome", every: 2, method: { calls += 1; return try self.rome(pm)($0) })
        XCTAssertEqual(calls, 5)
        XCTAssertEqual(seq.map(\.edits), [2, 4, 5])
        XCTAssertEqual(seq.map(\.requests), [2, 4, 5])
        XCTAssertEqual(seq.map(\.name), ["rome @2", "rome @4", "rome"])
        XCTAssertEqual(parameters(pm.model), before)
        // The sequential edits accumulate: after all five, the model is not the unedited one.
        XCTAssertNotEqual(seq.last!.reliability, u.reliability)
        // The first sequential edit is the same computation as the first single edit.
        let first = try EditEvaluation(model: pm.model, tokenizer: pm.tokenizer, requests: [rs[0]], generationTokens: 0)
        let a = try first.single(name: "a", method: rome(pm)), b = try first.sequential(name: "b", method: rome(pm))[0]
        XCTAssertEqual(a.reliability, b.reliability)
        XCTAssertEqual(a.efficacyMagnitude, b.efficacyMagnitude)
        XCTAssertEqual(parameters(pm.model), before)
    }

    /// Batch and sequential runs leave out the neighbourhood prompts that mention another edited
    /// subject (whole words only), with their answers, in every row; the single protocol keeps them.
    func testNeighboursThatAreEditedSubjectsAreLeftOut() throws {
        let pm = try familyBase()
        var rs = try records(pm, 3)
        let subjects = try rs.map { try $0.keySubject() }
        // Request 0's neighbours: request 1's edit prompt, a prompt naming request 2's subject inside a
        // longer word (kept), and a prompt naming no edited subject (kept).
        rs[0].localityPrompts = [rs[1].text, "The capital of \(subjects[2])ia is", "The capital of Nowhere is"]
        rs[0].localityAnswers = [rs[1].groundTruth ?? " x", " a", " b"]
        let keep = try EditEvaluation(model: pm.model, tokenizer: pm.tokenizer, requests: rs, generationTokens: 0)
        XCTAssertEqual(keep.excludedNeighbourhoodPrompts, 0)
        XCTAssertEqual(keep.requests, rs)
        let ev = try EditEvaluation(model: pm.model, tokenizer: pm.tokenizer, requests: rs, generationTokens: 0, excludingEditedSubjects: true)
        XCTAssertEqual(ev.requests[0].localityPrompts, Array(rs[0].localityPrompts.dropFirst()))
        XCTAssertEqual(ev.requests[0].localityAnswers, [" a", " b"])
        // The token-level locality references (loc) are recorded on the kept prompts only.
        XCTAssertEqual(ev.references[0]?.prompts.count, 2)
        XCTAssertEqual(keep.references[0]?.prompts.count, 3)
        XCTAssertEqual(ev.requests[0].text, rs[0].text)
        // The fact table's own neighbours (other subjects of the relation) are left out where edited.
        var want = 1
        for (i, r) in rs.enumerated().dropFirst() {
            let gone = r.localityPrompts.filter { q in subjects.enumerated().contains { $0.offset != i && EditEvaluation.mentions(q, $0.element) } }
            XCTAssertEqual(ev.requests[i].localityPrompts.count, r.localityPrompts.count - gone.count)
            want += gone.count
        }
        XCTAssertEqual(ev.excludedNeighbourhoodPrompts, want)
        XCTAssertTrue(EditEvaluation.mentions("The capital of France is", "France"))
        XCTAssertFalse(EditEvaluation.mentions("The capital of Frances is", "France"))
        XCTAssertFalse(EditEvaluation.mentions("The capital of is", ""))
    }

    /// The perplexity column: the unedited row's is the Evaluator's on the same text; an edit that
    /// changes nothing keeps it; accumulated ROME edits change it.
    func testPerplexity() throws {
        let pm = try familyBase()
        let rs = try records(pm, 3)
        let text = try familyCorpus().prefix(40).joined(separator: "\n")
        let ev = try EditEvaluation(model: pm.model, tokenizer: pm.tokenizer, requests: rs, generationTokens: 0)
        XCTAssertNil(try ev.unedited().perplexity)
        ev.perplexityText = text
        ev.perplexityWindow = 64
        let u = try ev.unedited()
        let want = try Evaluator(model: pm.model, tokenizer: pm.tokenizer).perplexity(text: text, window: 64).perplexity
        XCTAssertEqual(try XCTUnwrap(u.perplexity), want, accuracy: 1e-9)
        XCTAssertGreaterThan(want, 1)
        XCTAssertEqual(try ev.single(name: "none", method: { _ in [] }).perplexity!, want, accuracy: 1e-9)
        let seq = try ev.sequential(name: "rome", method: rome(pm))
        XCTAssertNotEqual(try XCTUnwrap(seq.last!.perplexity), want)
        XCTAssertEqual(try XCTUnwrap(ev.perplexity()), want, accuracy: 1e-9)
    }

    func testSnapshotRestoresBitExactly() throws {
        let pm = try familyBase()
        let before = parameters(pm.model)
        let w = pm.model.mlpOutputWeight(layer: 2)
        let n = pm.model.layout[w]!.count
        let e = WeightEdit(weight: w, delta: Tensor(shape: pm.model.layout[w]!.shape, scalars: (0..<n).map { Float($0 % 7) * 0.1 + 1e-3 }))
        let snap = WeightSnapshot(model: pm.model)
        try snap.apply(e); try snap.apply(e)
        XCTAssertEqual(snap.weights, [w])
        XCTAssertNotEqual(parameters(pm.model), before)
        snap.restore()
        XCTAssertEqual(parameters(pm.model), before)
    }
}
