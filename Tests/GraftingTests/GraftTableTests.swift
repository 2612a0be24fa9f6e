import Foundation
import Checkpoints
import Transformer
import XCTest
@testable import Grafting

/// The graft table on the committed fixture family (a 0.8M-parameter Llama and a full fine-tune).
final class GraftTableTests: XCTestCase {
    static let family = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/family")

    func load() throws -> (PretrainedModel, TransformerModel, [([Int], [Int])]) {
        let f = Self.family
        let base = try PretrainedModel(path: f.appendingPathComponent("base").path)
        let tuned = try TransformerModel.load(path: f.appendingPathComponent("capital-full").path)
        let data = try PromptCompletion.readJSONL(f.appendingPathComponent("data/capital-heldout.jsonl"))
            .map { (base.tokenizer.encode($0.prompt), base.tokenizer.encode($0.completion, addSpecialTokens: false)) }
        return (base, tuned, data)
    }

    /// With every tensor eligible, sparsity 1 scores exactly as the fine-tune; the base row is the
    /// base's score; the base is left untouched; the choice picks sparsity 1 (100% of the gain).
    func testFullGraftScoresAsTheFineTune() throws {
        let (base, tuned, data) = try load()
        let before = base.model.parameters.tensor("model.layers.1.mlp.up_proj.weight")!
        let pair = try GraftPair(base: base.model, tuned: tuned, basePath: "base", tunedPath: "tuned", eligibility: GraftEligibility(include: "."))
        let r = try GraftTable.run(pair: pair, base: base.model, tuned: tuned, sparsities: [0.001, 1], heldOut: data)
        let rows = r.report.rows
        XCTAssertEqual(rows.map(\.kind), [.base, .tuned, .graft, .graft])
        XCTAssertEqual(rows[0].score, try Evaluator.evaluate(model: base.model, tokenized: data))
        XCTAssertEqual(rows[1].score, try Evaluator.evaluate(model: tuned, tokenized: data))
        XCTAssertEqual(rows[3].score, rows[1].score)
        XCTAssertEqual(rows[3].nllRecovered!, 1, accuracy: 1e-12)
        XCTAssertEqual(rows[3].kept, pair.eligibleCount)
        XCTAssertLessThan(rows[2].nllRecovered!, 1)
        XCTAssertEqual(r.report.chosenSparsity, 1)
        XCTAssertEqual(base.model.parameters.tensor("model.layers.1.mlp.up_proj.weight"), before)
        XCTAssertTrue(r.report.table().contains("graft *"))
        // --pick must be one of the requested sparsities.
        XCTAssertThrowsError(try GraftTable.run(pair: pair, base: base.model, tuned: tuned, sparsities: [0.001], heldOut: nil, pick: 0.01)) { e in
            XCTAssertEqual(e as? GraftError, .pickNotRequested(pick: 0.01, requested: [0.001]))
        }
    }

    func testWithoutHeldOutTheFirstListedIsChosen() throws {
        let (base, tuned, _) = try load()
        let pair = try GraftPair(base: base.model, tuned: tuned, basePath: "base", tunedPath: "tuned", eligibility: GraftEligibility())
        let r = try GraftTable.run(pair: pair, base: base.model, tuned: tuned, sparsities: [0.01, 0.001], heldOut: nil)
        XCTAssertEqual(r.report.chosenSparsity, 0.01)
        XCTAssertEqual(r.chosenMask.count, Int((0.01 * Double(pair.eligibleCount)).rounded()))
        XCTAssertNil(r.report.rows[2].score)
        XCTAssertGreaterThan(r.report.rows[2].energyKept!, r.report.rows[3].energyKept!)
    }
    /// A mask saved as a sparse delta and read back (`graft --mask`) is the same mask, scores
    /// exactly as the graft it came from, and becomes the written row; a mask over a tensor that
    /// is not eligible is refused by name.
    func testSavedMaskRoundTripsAndScoresAsTheOriginal() throws {
        let (base, tuned, data) = try load()
        let pair = try GraftPair(base: base.model, tuned: tuned, basePath: "base", tunedPath: "tuned", eligibility: GraftEligibility())
        let r = try GraftTable.run(pair: pair, base: base.model, tuned: tuned, sparsities: [0.001, 0.01], heldOut: data, pick: 0.01)
        let original = r.masks[1]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-graft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("graft.safetensors")
        try original.writeSparseDelta(pair, to: url, metadata: [:])
        let saved = try GraftMask(pair: pair, delta: SparseDeltaFile(locating: dir.path), path: dir.path)
        XCTAssertEqual(saved, original)
        let report = try GraftTable.appendSaved(report: r.report, pair: pair, base: base.model, mask: saved, heldOut: data, source: dir.path)
        let row = try XCTUnwrap(report.rows.last)
        XCTAssertEqual(row.kind, .saved)
        XCTAssertEqual(row.kept, original.count)
        XCTAssertEqual(row.score, r.report.rows[3].score)
        XCTAssertEqual(row.nllRecovered, r.report.rows[3].nllRecovered)
        XCTAssertEqual(report.chosenRow?.kind, .saved)
        XCTAssertTrue(report.table().contains("saved *"), report.table())
        XCTAssertFalse(report.table().contains("graft *"), report.table())
        let narrow = try GraftPair(base: base.model, tuned: tuned, basePath: "base", tunedPath: "tuned", eligibility: GraftEligibility(include: "mlp"))
        XCTAssertThrowsError(try GraftMask(pair: narrow, delta: SparseDeltaFile(path: url.path), path: url.path)) { e in
            guard case let .deltaMismatch(p, t, why)? = e as? GraftError else { return XCTFail("\(e)") }
            XCTAssertEqual(p, url.path)
            XCTAssertTrue(t.contains("self_attn") && why.contains("not an eligible tensor"), "\(t): \(why)")
        }
    }
}
