import Foundation
import Checkpoints
import Transformer
import XCTest
@testable import Grafting

/// Localize-and-Stitch of graft masks (He et al. 2024, §3) on the committed fixture family.
final class GraftStitchTests: XCTestCase {
    func load(_ tasks: [String]) throws -> (PretrainedModel, [TransformerModel], [GraftPair]) {
        let f = GraftTableTests.family
        let base = try PretrainedModel(path: f.appendingPathComponent("base").path)
        let tuned = try tasks.map { try TransformerModel.load(path: f.appendingPathComponent("\($0)-full").path) }
        let pairs = try zip(tasks, tuned).map { name, m in
            try GraftPair(base: base.model, tuned: m, basePath: "base", tunedPath: name, eligibility: GraftEligibility())
        }
        return (base, tuned, pairs)
    }

    /// Entry by entry: kept by one task → that task's value bit for bit; by several → the mean of
    /// their differences added to the base; by none → the base bit for bit. One task alone
    /// stitches to its graft exactly; empty masks to the base.
    func testStitchTakesEachTasksValueAndAveragesOverlaps() throws {
        let (base, _, pairs) = try load(["capital", "continent"])
        let k = try pairs[0].keptCount(sparsity: 0.1)
        let masks = pairs.map { MagnitudeGraft.select($0, count: k) }
        let tasks = zip(["capital", "continent"], zip(pairs, masks)).map { GraftStitch.Task(name: $0, pair: $1.0, mask: $1.1) }
        let out = ParameterBuffer(layout: base.model.layout)
        try GraftStitch.stitch(tasks, into: out)
        var counts = [0, 0, 0]   // entries kept by 0, 1, 2 tasks
        for (j, e) in pairs[0].tensors.enumerated() {
            let sets = masks.map { Set($0.parts[j].indices) }
            let b = base.model.parameters.base + e.baseOffset, o = out.base + e.baseOffset
            let f = pairs.map { $0.tuned.base + $0.tensors[j].tunedOffset }
            for i in 0..<e.count {
                let inA = sets[0].contains(i), inB = sets[1].contains(i)
                switch (inA, inB) {
                case (false, false): XCTAssertEqual(o[i].bitPattern, b[i].bitPattern); counts[0] += 1
                case (true, false): XCTAssertEqual(o[i].bitPattern, f[0][i].bitPattern, "\(e.name)[\(i)]"); counts[1] += 1
                case (false, true): XCTAssertEqual(o[i].bitPattern, f[1][i].bitPattern, "\(e.name)[\(i)]"); counts[1] += 1
                case (true, true):
                    let want = Float(Double(b[i]) + ((Double(f[0][i]) - Double(b[i])) + (Double(f[1][i]) - Double(b[i]))) / 2)
                    XCTAssertEqual(o[i].bitPattern, want.bitPattern, "\(e.name)[\(i)]"); counts[2] += 1
                }
            }
        }
        XCTAssertGreaterThan(counts[2], 100, "the fixture masks overlap")
        XCTAssertEqual(counts[2], GraftStitch.sharedEntries(tasks))
        // Tensors outside the eligible ones (embeddings, norms) stay the base's.
        XCTAssertEqual(out.tensor("model.embed_tokens.weight"), base.model.parameters.tensor("model.embed_tokens.weight"))
        // One task: its graft; empty masks: the base.
        let graft = ParameterBuffer(layout: base.model.layout)
        masks[0].materialize(into: graft, pair: pairs[0])
        try GraftStitch.stitch([tasks[0]], into: out)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: out.base, count: out.layout.totalCount)),
                       Array(UnsafeBufferPointer(start: graft.base, count: graft.layout.totalCount)))
        try GraftStitch.stitch(pairs.map { GraftStitch.Task(name: $0.tunedPath, pair: $0, mask: GraftMask(empty: $0)) }, into: out)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: out.base, count: out.layout.totalCount)),
                       Array(UnsafeBufferPointer(start: base.model.parameters.base, count: out.layout.totalCount)))
        // Names must differ; tasks must share the base.
        XCTAssertThrowsError(try GraftStitch.stitch([tasks[0], tasks[0]], into: out)) { e in
            XCTAssertTrue("\(e)".contains("given twice"), "\(e)")
        }
        let otherBase = try PretrainedModel(path: GraftTableTests.family.appendingPathComponent("base").path)
        let foreign = try GraftPair(base: otherBase.model, tuned: try TransformerModel.load(path: GraftTableTests.family.appendingPathComponent("profession-full").path),
                                    basePath: "other", tunedPath: "profession", eligibility: GraftEligibility())
        XCTAssertThrowsError(try GraftStitch.stitch([tasks[0], GraftStitch.Task(name: "p", pair: foreign, mask: GraftMask(empty: foreign))], into: out)) { e in
            XCTAssertTrue("\(e)".contains("same base model"), "\(e)")
        }
    }

    /// The report scores each task's own graft exactly as the single-task graft table does, and
    /// the stitched row is the stitched model's score.
    func testReportScoresMatchTheSingleTaskTable() throws {
        let (base, tuned, pairs) = try load(["capital", "continent"])
        let data = try ["capital", "continent"].map { t in
            try PromptCompletion.readJSONL(GraftTableTests.family.appendingPathComponent("data/\(t)-heldout.jsonl"))
                .map { (base.tokenizer.encode($0.prompt), base.tokenizer.encode($0.completion, addSpecialTokens: false)) }
        }
        let masks = try pairs.map { MagnitudeGraft.select($0, count: try $0.keptCount(sparsity: 0.01)) }
        let tasks = zip(["capital", "continent"], zip(pairs, masks)).map { GraftStitch.Task(name: $0, pair: $1.0, mask: $1.1) }
        let stitched = try TransformerModel.load(path: GraftTableTests.family.appendingPathComponent("base").path)
        try GraftStitch.stitch(tasks, into: stitched.parameters)
        let r = try GraftStitch.report(tasks, base: base.model, basePath: "base", tuned: tuned, stitched: stitched,
                                       heldOut: [("capital", data[0]), ("continent", data[1])], selection: "magnitude")
        for k in 0..<2 {
            let single = try GraftTable.run(pair: pairs[k], base: base.model, tuned: tuned[k], sparsities: [0.01], heldOut: data[k])
            XCTAssertEqual(r.tasks[k].base, single.report.rows[0].score)
            XCTAssertEqual(r.tasks[k].tuned, single.report.rows[1].score)
            XCTAssertEqual(r.tasks[k].graft, single.report.rows[2].score)
            XCTAssertEqual(r.tasks[k].gainKept(r.tasks[k].graft, nll: true)!, single.report.rows[2].nllRecovered!, accuracy: 1e-12)
            XCTAssertEqual(r.tasks[k].stitched, try Evaluator.evaluate(model: stitched, tokenized: data[k]))
        }
        XCTAssertNotEqual(r.tasks[0].stitched, r.tasks[0].graft, "the other task's entries change the score")
        let table = r.table()
        XCTAssertTrue(table.contains("capital    base"), table)
        XCTAssertEqual(table.split(separator: "\n").count, 1 + 4 * 2)
    }
}
