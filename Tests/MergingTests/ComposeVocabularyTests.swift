import Checkpoints
import Foundation
import XCTest

/// `compose --vocab`: terms whose vocabularies differ (a fine-tune with extra tokens, a stored task
/// vector of the base's size) compose as `merge --vocab` merges the same task vectors; without it,
/// the pre-flight names the option; `--search` refuses it up front.
final class ComposeVocabularyTests: XCTestCase {
    func testComposeWithVocabEqualsTheMergeOfTheSameTaskVectors() throws {
        try Binary.requireBuilt()
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-cvocab-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let v = "fixtures/merge/vocab"
        func ok(_ args: [String]) throws {
            let r = try Binary.run(args + ["--quiet", "--threads", "1"])
            XCTAssertEqual(r.status, 0, "\(args): \(r.err)")
        }
        // A same-vocabulary fine-tune of the base and its stored task vector.
        let near = tmp.appendingPathComponent("near"), tv = tmp.appendingPathComponent("tv")
        let recipe = tmp.appendingPathComponent("near.yml")
        try Data("merge_method: linear\nmodels:\n  - model: \(v)/base\n    parameters: {weight: 0.7}\n  - model: \(v)/ft-b\n    parameters: {weight: 0.3}\ntokenizer_source: base\ndtype: float32\n".utf8).write(to: recipe)
        try ok(["merge", recipe.path, near.path])
        try ok(["task-vector", "extract", "\(v)/base", near.path, "-o", tv.path])

        let expression = ["compose", "--base", "\(v)/base", "0.5*a + 0.8*t", "--model", "a=\(v)/ft-a", "--model", "t=\(tv.path)"]
        let refused = try Binary.run(expression + ["-o", tmp.appendingPathComponent("x").path])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("vocabulary sizes differ for \"model.embed_tokens.weight\""), refused.err)
        XCTAssertTrue(refused.err.contains("--vocab truncate"), refused.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("x").path))

        for choice in ["base", "truncate"] {
            let composed = tmp.appendingPathComponent("c-\(choice)"), merged = tmp.appendingPathComponent("m-\(choice)")
            try ok(expression + ["-o", composed.path, "--vocab", choice])
            try ok(["merge", "--method", "task_arithmetic", "--base", "\(v)/base", "\(v)/ft-a", near.path, "--weight", "0.5", "--weight", "0.8",
                    "--vocab", choice, "-o", merged.path])
            let c = try Checkpoint(path: composed.path), m = try Checkpoint(path: merged.path)
            XCTAssertEqual(c.tensorNames, m.tensorNames)
            for name in c.tensorNames {
                let (x, y) = (try c.tensor(name), try m.tensor(name))
                XCTAssertEqual(x.shape, y.shape, name)
                if name.contains("embed_tokens") { XCTAssertEqual(x.shape.dims, [259, 16], "the base's rows, \(choice)") }
                let d = zip(x.scalars, y.scalars).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                XCTAssertLessThan(d, 1e-6, "\(choice) \(name)")
            }
        }
        let search = try Binary.run(expression + ["--vocab", "base", "--search", "lambda=0:1:0.5", "--held-out", "fixtures/merge/eval/copy.jsonl"])
        XCTAssertNotEqual(search.status, 0)
        XCTAssertTrue(search.err.contains("--vocab does not go with --search"), search.err)
        // Without --vocab, the search's pre-flight says what to do instead.
        let plain = try Binary.run(expression + ["--search", "lambda=0:1:0.5", "--held-out", "fixtures/merge/eval/copy.jsonl"])
        XCTAssertNotEqual(plain.status, 0)
        let advice = "with --search, --vocab is not available: compose or merge with --vocab first, then search over that output"
        XCTAssertEqual(plain.err.components(separatedBy: advice).count - 1, 1, "the advice once, however many matrices differ: \(plain.err)")
    }
}
