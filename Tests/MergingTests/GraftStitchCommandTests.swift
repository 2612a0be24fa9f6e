import Checkpoints
import Foundation
import XCTest

/// `weightsmith graft --tuned NAME=DIR ...`: several tasks' grafts stitched into one model.
final class GraftStitchCommandTests: XCTestCase {
    let family = "fixtures/family"

    func testTwoTasksStitchedWithTheirMasksAndReport() throws {
        try Binary.requireBuilt()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-stitch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let out = dir.appendingPathComponent("stitched").path
        let r = try Binary.run(["graft", "--base", "\(family)/base", "--tuned", "capital=\(family)/capital-full",
                                "--tuned", "continent=\(family)/continent-full", "--held-out", "continent=\(family)/data/continent-heldout.jsonl",
                                "--sparsity", "0.01", "-o", out])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("k per task: capital 7373, continent 7373; entries in more than one mask:"), r.out)
        XCTAssertTrue(r.out.contains("continent  base"), r.out)
        XCTAssertFalse(r.out.contains("capital    base"), "no held-out data for capital: no rows")
        let files = try FileManager.default.contentsOfDirectory(atPath: out).filter { !$0.hasPrefix(".") }.sorted()
        XCTAssertEqual(files, ["README.md", "config.json", "graft-capital.safetensors", "graft-continent.safetensors", "model.safetensors",
                               "stitch_report.json", "tokenizer.json"])
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/stitch_report.json"))) as! [String: Any]
        let tasks = report["tasks"] as! [[String: Any]]
        XCTAssertEqual(tasks.map { $0["task"] as! String }, ["capital", "continent"])
        XCTAssertNil(tasks[0]["stitched"], "no held-out data for capital")
        XCTAssertNotNil(tasks[1]["stitched"])
        let shared = report["shared_entries"] as! Int
        XCTAssertGreaterThan(shared, 0)
        // The per-task masks are sparse deltas of k entries each, and the stitched model is the
        // base plus their mean where they overlap: outside both masks it is the base.
        let capital = try SparseDeltaFile(locating: out + "/graft-capital.safetensors")
        let kept = try capital.tensorNames.reduce(0) { $0 + (try capital.sparse($1).indices.count) }
        XCTAssertEqual(kept, 7373)
        let base = try SafetensorsFile(url: URL(fileURLWithPath: "\(family)/base/model.safetensors", relativeTo: Binary.root))
        let stitched = try SafetensorsFile(url: URL(fileURLWithPath: out + "/model.safetensors"))
        XCTAssertEqual(try stitched.tensor("model.embed_tokens.weight"), try base.tensor("model.embed_tokens.weight"))
        XCTAssertNotEqual(try stitched.tensor("model.layers.0.mlp.up_proj.weight"), try base.tensor("model.layers.0.mlp.up_proj.weight"))
    }

    /// Refusals name the problem and write nothing.
    func testRefusals() throws {
        try Binary.requireBuilt()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-stitch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("never").path
        let two = ["graft", "--base", "\(family)/base", "--tuned", "a=\(family)/capital-full", "--tuned", "b=\(family)/continent-full"]
        for (extra, message) in [(["--sparsity", "0.01,0.1"], "stitching several tasks takes one value"),
                                 (["--train", "\(family)/data/capital-train.jsonl"], "train each task's mask with a single-task graft"),
                                 (["--held-out", "c=\(family)/data/capital-heldout.jsonl"], "no --tuned task is called \"c\""),
                                 (["--held-out", "\(family)/data/capital-heldout.jsonl"], "with several tasks give NAME=FILE"),
                                 (["--tuned", "a=\(family)/profession-full"], "task name \"a\" is given twice")] {
            let r = try Binary.run(two + extra + ["-o", out])
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.err.contains(message), "\(extra): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(extra) wrote \(out)")
        }
        let bad = try Binary.run(["graft", "--base", "\(family)/base", "--tuned", "x y=\(family)/capital-full", "--tuned", "b=\(family)/continent-full", "-o", out])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("must be 1 to 64 letters"), bad.err)
    }
}
