import Foundation
import Tensors
import Transformer
import XCTest
@testable import Editing

final class RomeTests: XCTestCase {
    let request = EditRequest(prompt: "The capital of France is", target: " Rome", paraphrases: ["France has its capital in"],
                              localityPrompts: localityPrompts)

    /// ΔW = δûᵀ has rank one, and W' maps the key to the optimised value exactly.
    func testUpdateIsRankOneAndMapsKeyToValue() throws {
        let pm = try familyBase()
        let m = pm.model
        var s = RomeSettings(layer: 0)
        s.steps = 30
        let r = try RomeEditor.edit(model: m, tokenizer: pm.tokenizer, request: request, settings: s)
        let O = m.config.hiddenSize, I = m.config.intermediateSize
        let sv = try svd(r.edit.delta).s
        XCTAssertGreaterThan(sv[0], 1e-3)
        XCTAssertLessThan(sv[1] / sv[0], 1e-5, "second singular value \(sv[1]) vs \(sv[0])")
        // The model was restored: (W + ΔW) k = v*.
        let w = m.parameters.tensor(r.edit.weight)!.scalars
        let edited = zip(w, r.edit.delta.scalars).map { $0 + $1 }
        let got = apply(edited, rows: O, cols: I, r.key)
        let scale = r.value.reduce(0.0) { max($0, abs(Double($1))) }
        for o in 0..<O { XCTAssertEqual(got[o], Double(r.value[o]), accuracy: 1e-4 * scale) }
        // ûᵀk = 1 and the value changed.
        XCTAssertEqual(zip(r.direction, r.key).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }, 1, accuracy: 1e-4)
        let before = apply(w, rows: O, cols: I, r.key)
        XCTAssertGreaterThan(zip(before, r.value).reduce(0.0) { max($0, abs($1.0 - Double($1.1))) }, 1e-2)
    }

    /// The edit changes the greedy answer to the target and keeps most locality predictions.
    func testEditChangesAnswerKeepsLocality() throws {
        let pm = try familyBase()
        let scorer = EditScorer(model: pm.model, tokenizer: pm.tokenizer)
        let ref = try scorer.localityReference(request.localityPrompts)
        let before = try scorer.score(request, locality: ref)
        XCTAssertEqual(before.answer, " Paris")
        XCTAssertEqual(before.locality, 1)
        var s = RomeSettings(layer: 0)
        s.steps = 60
        let r = try RomeEditor.edit(model: pm.model, tokenizer: pm.tokenizer, request: request, settings: s)
        try r.edit.apply(to: pm.model)
        let after = try scorer.score(request, locality: ref)
        XCTAssertEqual(after.answer, " Rome")
        XCTAssertEqual(after.efficacy, 1)
        XCTAssertGreaterThan(after.efficacyProbability, 0.5)
        XCTAssertGreaterThanOrEqual(after.locality ?? 0, 0.8)
        try r.edit.revert(from: pm.model)
        XCTAssertEqual(try scorer.score(request, locality: ref).answer, " Paris")
    }

    /// The essence term keeps the subject's other predictions: with it the edit still works and
    /// KL(before ‖ after) at "France is a" drops several-fold (measured 4.85 → 0.68); the
    /// reported KL is recomputed from a plain forward of the edited model.
    func testEssenceTermKeepsTheSubjectsOtherPredictions() throws {
        let pm = try familyBase()
        var s = RomeSettings(layer: 0)
        s.steps = 60
        s.klFactor = 0
        let off = try RomeEditor.edit(model: pm.model, tokenizer: pm.tokenizer, request: request, settings: s)
        s.klFactor = 0.0625
        let on = try RomeEditor.edit(model: pm.model, tokenizer: pm.tokenizer, request: request, settings: s)
        XCTAssertEqual(on.essencePrompt, "France is a")
        XCTAssertLessThan(on.essenceKL, off.essenceKL / 3, "essence KL with the term \(on.essenceKL), without \(off.essenceKL)")
        let scorer = EditScorer(model: pm.model, tokenizer: pm.tokenizer)
        try on.edit.apply(to: pm.model)
        XCTAssertEqual(try scorer.score(request, locality: nil).answer, " Rome")
        // The same KL from logits of the edited model, independently of the optimisation.
        let ids = pm.tokenizer.encode("France is a"), V = pm.model.config.vocabSize
        let pos = pm.tokenizer.encode("France").count - 1
        let after = Array(try pm.model.forward([ids]).scalars[pos * V..<(pos + 1) * V])
        try on.edit.revert(from: pm.model)
        let before = Array(try pm.model.forward([ids]).scalars[pos * V..<(pos + 1) * V])
        func logSoftmax(_ z: [Float]) -> [Double] {
            let m = Double(z.max()!), l = m + log(z.reduce(0.0) { $0 + exp(Double($1) - m) })
            return z.map { Double($0) - l }
        }
        let lp = logSoftmax(before), lq = logSoftmax(after)
        let kl = zip(lp, lq).reduce(0.0) { $0 + exp($1.0) * ($1.0 - $1.1) }
        XCTAssertEqual(on.essenceKL, kl, accuracy: 1e-3 * max(kl, 1e-3))
    }

    /// The forward-only keys (`mlpKeys`, stopping at the layer) equal the training forward's
    /// capture, packed sequences equal each run alone, and the statistics are a symmetric PSD
    /// second moment that survives the cache round trip.
    func testStatisticsAndPrefixKeys() throws {
        let pm = try familyBase()
        let m = pm.model
        let ids = pm.tokenizer.encode("The capital of France is Paris.")
        let batch = try TrainingBatch(tokens: [ids], targets: [[Int](repeating: -1, count: ids.count)])
        let w = m.mlpOutputWeight(layer: 1)
        let full = try m.capture(batch, weight: w, lossScale: 0)
        let short = try m.mlpKeys([ids], layer: 1)
        XCTAssertEqual(short.count, full.u.count)
        for (a, b) in zip(full.u, short) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(a))) }
        let other = pm.tokenizer.encode("Spain is in")
        let packed = try m.mlpKeys([ids, other], layer: 1)
        let alone = short + (try m.mlpKeys([other], layer: 1))
        XCTAssertEqual(packed.count, alone.count)
        for (a, b) in zip(packed, alone) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(a)), "packed sequences attend only to themselves") }
        XCTAssertThrowsError(try m.mlpKeys([ids], layer: m.config.layers))
        // Naive second moment of these keys vs collect over the same single text.
        let I = m.config.intermediateSize
        let stats = try KeyStatistics.collect(model: m, tokenizer: pm.tokenizer, texts: ["The capital of France is Paris."], layer: 1)
        XCTAssertEqual(stats.tokens, ids.count)
        for i in stride(from: 0, to: I, by: 37) { for j in stride(from: 0, to: I, by: 41) {
            var s = 0.0
            for r in 0..<ids.count { s += Double(full.u[r * I + i]) * Double(full.u[r * I + j]) }
            XCTAssertEqual(stats.moment[i * I + j], s / Double(ids.count), accuracy: 1e-5 * max(1, abs(s)))
            XCTAssertEqual(stats.moment[i * I + j], stats.moment[j * I + i], accuracy: 1e-9)
        } }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-stats-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let texts = Array(try familyCorpus().prefix(300))
        let (a, c1) = try KeyStatistics.cached(in: dir, model: m, tokenizer: pm.tokenizer, texts: texts, layer: 1, maxTokens: 3000)
        let (b, c2) = try KeyStatistics.cached(in: dir, model: m, tokenizer: pm.tokenizer, texts: texts, layer: 1, maxTokens: 3000)
        XCTAssertFalse(c1); XCTAssertTrue(c2)
        XCTAssertEqual(a.tokens, b.tokens)
        for i in stride(from: 0, to: I * I, by: 997) { XCTAssertEqual(a.moment[i], b.moment[i], accuracy: 1e-6 * max(1, abs(a.moment[i]))) }
        // The solve inverts C + λ·mean(diag)·I.
        let k = (0..<I).map { Float(sin(Double($0))) }
        let x = try a.solve(k, ridge: 1e-3)
        var trace = 0.0
        for i in 0..<I { trace += a.moment[i * I + i] }
        for i in stride(from: 0, to: I, by: 29) {
            var s = 1e-3 * trace / Double(I) * Double(x[i])
            for j in 0..<I { s += a.moment[i * I + j] * Double(x[j]) }
            XCTAssertEqual(s, Double(k[i]), accuracy: 1e-3)
        }
    }
}
