import Foundation
import XCTest
import Transformer

/// `compare --forgetting`: each fine-tune's forgetting equals what `eval` measures (its LM loss on
/// the text minus the base's), beside its intruder count, with Spearman's ρ over 4 fine-tunes.
final class CompareForgettingTests: XCTestCase {
    func testForgettingColumnEqualsEvalDifferences() throws {
        guard FileManager.default.isExecutableFile(atPath: CommandLineNonFiniteTests.binary.path) else { throw XCTSkip("binary not built") }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let fam = root.appendingPathComponent("fixtures/family")
        // The first 4,000 characters of the fixture corpus (the whole file is 20,002 tokens; five models
        // are scored twice here).
        let full = try String(contentsOfFile: fam.appendingPathComponent("data/corpus.txt").path, encoding: .utf8)
        let corpusURL = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ws-forgetting-\(getpid()).txt")
        try String(full.prefix(4000)).write(to: corpusURL, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: corpusURL) }
        let corpus = corpusURL.path
        let base = fam.appendingPathComponent("base").path
        let tunes = ["capital-full", "continent-full", "profession-full"].map { fam.appendingPathComponent($0).path }
        let lora = fam.appendingPathComponent("capital-lora").path
        let r = try CommandLineNonFiniteTests.run(["compare", "--base", base, "--lora", lora] + tunes.flatMap { ["--full", $0] }
                                                  + ["--no-cache", "--forgetting", corpus, "--window", "64", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let f = try XCTUnwrap(json["forgetting"] as? [String: Any])
        let entries = try XCTUnwrap(f["fine_tunes"] as? [[String: Any]])
        XCTAssertEqual(entries.map { $0["label"] as? String }, ["capital-lora", "capital-full", "continent-full", "profession-full"])
        let text = try String(contentsOfFile: corpus, encoding: .utf8)
        func loss(_ path: String, base: String? = nil) throws -> Double {
            let pm = try PretrainedModel(path: path, base: base)
            return try Evaluator(model: pm.model, tokenizer: pm.tokenizer).perplexity(text: text, window: 64).meanNLL
        }
        let b = try loss(base)
        XCTAssertEqual(try XCTUnwrap(f["base_loss"] as? Double), b, accuracy: 1e-9)
        for (e, path) in zip(entries, [lora] + tunes) {
            let l = try loss(path, base: path == lora ? base : nil)
            XCTAssertEqual(try XCTUnwrap(e["loss"] as? Double), l, accuracy: 1e-9, path)
            XCTAssertEqual(try XCTUnwrap(e["forgetting"] as? Double), l - b, accuracy: 1e-9, path)
        }
        // The LoRA has the fixture's one intruder at ε = 0.5; the full fine-tunes none.
        XCTAssertEqual(entries.map { $0["intruders"] as? Int }, [1, 0, 0, 0])
        XCTAssertNotNil(f["spearman"] as? Double, "4 fine-tunes give a rank correlation")
    }

    func testForgettingDataIsCheckedBeforeTheAnalysis() throws {
        guard FileManager.default.isExecutableFile(atPath: CommandLineNonFiniteTests.binary.path) else { throw XCTSkip("binary not built") }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let fam = root.appendingPathComponent("fixtures/family")
        let r = try CommandLineNonFiniteTests.run(["compare", "--base", fam.appendingPathComponent("base").path,
                                                   "--full", fam.appendingPathComponent("capital-full").path,
                                                   "--full", fam.appendingPathComponent("continent-full").path,
                                                   "--no-cache", "--forgetting", "/nonexistent/corpus.txt"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("/nonexistent/corpus.txt"), r.err)
        XCTAssertFalse(r.out.contains("summary"), "no analysis ran")
    }
}
