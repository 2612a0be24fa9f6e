import Checkpoints
import Foundation
import XCTest

/// `weightsmith sft compose BASE DELTA...`: θ_base + Σ φ_i, with each task's score alone and composed.
final class SFTComposeCommandTests: XCTestCase {
    let family = "fixtures/family"

    func testComposedModelIsTheBasePlusTheDeltasAndScoresMatchEval() throws {
        try Binary.requireBuilt()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-sftc-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // Two deltas with overlapping entries: 1% magnitude grafts of two tasks.
        for t in ["capital", "continent"] {
            let r = try Binary.run(["graft", "--base", "\(family)/base", "--tuned", "\(family)/\(t)-full", "--sparsity", "0.01",
                                    "--quiet", "-o", dir.appendingPathComponent(t).path])
            XCTAssertEqual(r.status, 0, r.err)
        }
        let out = dir.appendingPathComponent("composed").path
        let r = try Binary.run(["sft", "compose", "\(family)/base", "a=\(dir.path)/capital", "b=\(dir.path)/continent",
                                "--held-out", "b=\(family)/data/continent-heldout.jsonl", "-o", out])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("composed 2 sparse deltas onto \(family)/base: a (7373 entries), b (7373 entries)"), r.out)
        // The composed weights: base + φ_a + φ_b entry by entry (Float32 adds in delta order).
        let base = try SafetensorsFile(url: Binary.root.appendingPathComponent("\(family)/base/model.safetensors"))
        let composed = try SafetensorsFile(url: URL(fileURLWithPath: out + "/model.safetensors"))
        let a = try SparseDeltaFile(locating: "\(dir.path)/capital"), b = try SparseDeltaFile(locating: "\(dir.path)/continent")
        var shared = 0
        for name in base.tensorNames {
            var want = try base.tensor(name)
            if a.has(name) { try a.sparse(name).add(into: &want) }
            if b.has(name) { try b.sparse(name).add(into: &want) }
            XCTAssertEqual(try composed.tensor(name).scalars.map(\.bitPattern), want.scalars.map(\.bitPattern), name)
            if a.has(name) && b.has(name) { shared += Set(try a.sparse(name).indices).intersection(try b.sparse(name).indices).count }
        }
        XCTAssertGreaterThan(shared, 0, "the two deltas overlap")
        // The table's numbers are `eval`'s: alone as BASE+DELTA, composed as the written model.
        let alone = try Binary.run(["eval", "\(family)/base+\(dir.path)/continent/graft.safetensors", "\(family)/data/continent-heldout.jsonl", "--json"])
        let comp = try Binary.run(["eval", out, "\(family)/data/continent-heldout.jsonl", "--json"])
        func nll(_ s: String) throws -> Double {
            try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any])?["mean_nll"] as? Double)
        }
        let row = try XCTUnwrap(r.out.split(separator: "\n").first { $0.hasPrefix("b ") })
        XCTAssertTrue(row.contains(String(format: "%.4f", try nll(alone.out))), "\(row) vs \(alone.out)")
        XCTAssertTrue(row.contains(String(format: "%.4f", try nll(comp.out))), "\(row) vs \(comp.out)")
        // The base stays untouched, and a held-out name must be one of the deltas.
        let bad = try Binary.run(["sft", "compose", "\(family)/base", "a=\(dir.path)/capital", "--held-out", "c=x.jsonl", "-o", dir.appendingPathComponent("never").path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("no delta is called \"c\""), bad.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("never").path))
    }
}
