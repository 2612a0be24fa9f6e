import Foundation
import XCTest
@testable import Editing

/// The built `weightsmith` binary (beside the test bundle) running `edit-eval` and `edit` on the
/// fixture model. Skipped when the binary has not been built (`swift build -c release` builds it).
final class EditCommandLineTests: XCTestCase {
    static let binary = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("weightsmith")
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var base: String { root.appendingPathComponent("fixtures/family/base").path }

    struct Run { var status: Int32; var out: String; var err: String }

    func run(_ args: [String]) throws -> Run {
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["OPENBLAS_NUM_THREADS": "1"]) { _, b in b }
        let o = Pipe(), e = Pipe()
        p.standardOutput = o
        p.standardError = e
        try p.run()
        let od = o.fileHandleForReading.readDataToEndOfFile(), ed = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: od, as: UTF8.self), err: String(decoding: ed, as: UTF8.self))
    }

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else { throw XCTSkip("\(Self.binary.path) not built") }
        _ = try familyBase()
    }

    func tmp() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ws-cli-edit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    /// Four `facts make`-style records of the fixture's capitals, written as JSONL.
    func records(_ dir: URL) throws -> URL {
        let pm = try familyBase()
        let rel = try FactTable.builtin.relation("capital")
        let cands = try FactBenchmark.candidates(model: pm.model, tokenizer: pm.tokenizer, relations: [rel])
        let rs = FactBenchmark.make(relations: [rel], candidates: cands, settings: FactSettings()).prefix(4)
        let url = dir.appendingPathComponent("facts.jsonl")
        try (rs.enumerated().map { try $0.element.jsonLine(caseID: $0.offset) }.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func testEditEvalTableAndJSON() throws {
        let dir = try tmp()
        let facts = try records(dir).path
        let common = [Self.base, "--method", "rome,ft", "--requests", facts, "--layer", "0", "--steps", "30", "--generation-tokens", "10"]
        let j = try run(["edit-eval"] + common + ["--json"])
        XCTAssertEqual(j.status, 0, j.err)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(j.out.utf8)) as? [String: Any], j.out)
        XCTAssertEqual(obj["requests"] as? Int, 4)
        XCTAssertEqual(obj["protocol"] as? String, "single")
        XCTAssertNil(obj["memit_protocol"])
        let rows = try XCTUnwrap(obj["rows"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["name"] as? String }, ["unedited", "rome", "ft"])
        for r in rows {
            for k in ["efficacy_score", "paraphrase_score", "neighbourhood_score", "reliability", "generalization", "locality"] {
                let v = try XCTUnwrap(r[k] as? Double, "\(k) in \(r)")
                XCTAssertTrue((0...1).contains(v), "\(k) = \(v)")
            }
            let em = try XCTUnwrap(r["efficacy_magnitude"] as? Double)
            XCTAssertTrue((-1...1).contains(em), "EM = \(em)")
            let ge = try XCTUnwrap(r["generation_entropy"] as? Double)
            XCTAssertTrue(ge > 0 && ge < 10, "GE = \(ge)")
            XCTAssertEqual(r["requests"] as? Int, 4)
        }
        XCTAssertEqual(rows[0]["locality"] as? Double, 1)
        XCTAssertEqual(rows[0]["efficacy_score"] as? Double, 0)
        XCTAssertGreaterThan(rows[1]["reliability"] as! Double, rows[0]["reliability"] as! Double)
        // The unedited row is `edit --requests`'s "before" (the same scorer and references).
        let e = try run(["edit", Self.base, "--requests", facts, "--method", "rome", "--layer", "0", "--steps", "30", "--json"])
        XCTAssertEqual(e.status, 0, e.err)
        let eo = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(e.out.utf8)) as? [String: Any], e.out)
        let b = try XCTUnwrap(eo["before"] as? [String: Any])
        XCTAssertEqual(b["efficacy"] as? Double, rows[0]["reliability"] as? Double)
        XCTAssertEqual(b["paraphrase"] as? Double, rows[0]["generalization"] as? Double)
        XCTAssertEqual(b["locality"] as? Double, rows[0]["locality"] as? Double)
        // And the after-scores of the single-edit protocol are rome's row.
        let a = try XCTUnwrap(eo["after"] as? [String: Any])
        XCTAssertEqual(a["efficacy"] as? Double, rows[1]["reliability"] as? Double)

        let t = try run(["edit-eval"] + common + ["--limit", "2", "--sequential"])
        XCTAssertEqual(t.status, 0, t.err)
        let lines = t.out.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines[0].hasPrefix("2 records, sequential protocol"), t.out)
        XCTAssertTrue(lines[1].hasPrefix("method ") && lines[1].contains("ES") && lines[1].contains("loc"), t.out)
        XCTAssertEqual(lines.dropFirst(2).dropLast().map { String($0.prefix(while: { $0 != " " })) }, ["unedited", "rome", "ft"], t.out)
        XCTAssertTrue(lines.last!.hasPrefix("seconds per edit: rome (sequential) "), t.out)
        XCTAssertTrue(lines[3].contains("(sequential)"), t.out)
        // Nothing but the requests file in the folder.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["facts.jsonl"])
    }

    func testEditEvalBadInput() throws {
        let dir = try tmp()
        let facts = try records(dir).path
        let mend = try run(["edit-eval", Self.base, "--method", "rome,mend", "--requests", facts])
        XCTAssertEqual(mend.status, 64, mend.err)
        XCTAssertTrue(mend.err.contains("--method mend needs --editor"), mend.err)
        let unknown = try run(["edit-eval", Self.base, "--method", "rome,knn", "--requests", facts])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.err.contains("unknown method \"knn\""), unknown.err)
        let memit = try run(["edit-eval", Self.base, "--method", "memit", "--requests", facts])
        XCTAssertEqual(memit.status, 64, memit.err)
        XCTAssertTrue(memit.err.contains("--method memit needs --stats-corpus"), memit.err)
        let batch = try run(["edit-eval", Self.base, "--method", "rome", "--batch", "--requests", facts])
        XCTAssertTrue(batch.err.contains("--batch applies to --method memit only"), batch.err)
        let bad = dir.appendingPathComponent("bad.jsonl")
        try "{\"prompt\": \"The capital of {} is\", \"subject\": \"France\", \"target_new\": \" Rome\"}\n{\"prompt\": \"x\"}\n".write(to: bad, atomically: true, encoding: .utf8)
        let b = try run(["edit-eval", Self.base, "--method", "ft", "--requests", bad.path])
        XCTAssertEqual(b.status, 1)
        XCTAssertTrue(b.err.contains("\(bad.path): line 2: "), b.err)
        XCTAssertTrue(b.err.contains("target_new"), b.err)
    }

    /// MEMIT in one batch edit and one fact at a time: both rows after the unedited one, and the
    /// single-edit row over one record equals the batch row over that record.
    func testEditEvalMemitBatchAndSingle() throws {
        let dir = try tmp()
        let facts = try records(dir).path
        let corpus = Self.root.appendingPathComponent("fixtures/family/data/corpus.txt").path
        let common = [Self.base, "--method", "memit", "--requests", facts, "--layers", "0,1", "--update-weight", "1", "--stats-corpus", corpus,
                      "--stats-tokens", "5000", "--stats-cache", dir.appendingPathComponent("cache").path, "--steps", "10", "--generation-tokens", "0", "--json"]
        func rows(_ extra: [String]) throws -> [[String: Any]] {
            let r = try run(["edit-eval"] + common + extra)
            XCTAssertEqual(r.status, 0, r.err)
            let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
            // The other rows' protocol, and MEMIT's own with --batch.
            XCTAssertEqual(o["protocol"] as? String, "single")
            XCTAssertEqual(o["memit_protocol"] as? String, extra.contains("--batch") ? "batch" : nil, r.out)
            return try XCTUnwrap(o["rows"] as? [[String: Any]])
        }
        let b = try rows(["--batch"])
        XCTAssertEqual(b.map { $0["name"] as? String }, ["unedited", "memit (batch)"])
        XCTAssertEqual(b[1]["edits"] as? Int, 4)
        XCTAssertNotEqual(b[1]["efficacy_magnitude"] as? Double, b[0]["efficacy_magnitude"] as? Double)
        let one = try rows(["--limit", "1"]), oneBatch = try rows(["--limit", "1", "--batch"])
        XCTAssertEqual(one[1]["name"] as? String, "memit")
        for k in ["efficacy_magnitude", "reliability", "generalization", "locality", "neighbourhood_score"] {
            XCTAssertEqual(one[1][k] as? Double, oneBatch[1][k] as? Double, k)
        }
    }

    /// `edit` on a single fact: a failed edit says so and writes nothing (unless --allow-failed);
    /// --steps reaches FT-L; a lowercase prompt without --subject is refused for ROME; a target
    /// without its leading space is warned about; --json parses.
    func testSingleEditReportsFailureAndHonoursFlags() throws {
        let dir = try tmp()
        let common = [Self.base, "--prompt", "The capital of France is", "--target", " Rome", "--layer", "0"]
        let ft = try run(["edit"] + common + ["--method", "ft", "-o", dir.appendingPathComponent("ft").path])
        XCTAssertEqual(ft.status, 1)
        XCTAssertTrue(ft.err.contains("the ft edit failed: the model continues with \" Paris\" instead of \" Rome\""), ft.err)
        XCTAssertTrue(ft.out.contains("in 25 steps"), ft.out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("ft").path))
        let ft40 = try run(["edit"] + common + ["--method", "ft", "--steps", "40", "--allow-failed", "-o", dir.appendingPathComponent("ft40").path])
        XCTAssertEqual(ft40.status, 0, ft40.err)
        XCTAssertTrue(ft40.out.contains("in 40 steps"), ft40.out)
        XCTAssertTrue(ft40.err.contains("writing the model anyway (--allow-failed)"), ft40.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("ft40/model.safetensors").path))

        let lower = try run(["edit", Self.base, "--prompt", "the capital of france is", "--target", " Rome", "--layer", "0", "-o", dir.appendingPathComponent("lc").path])
        XCTAssertEqual(lower.status, 1)
        XCTAssertTrue(lower.err.contains("cannot guess the subject of \"the capital of france is\""), lower.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("lc").path))

        let out = dir.appendingPathComponent("rome").path
        let j = try run([ "edit", Self.base, "--prompt", "The capital of France is", "--target", "Rome", "--layer", "0", "--steps", "60", "--json", "--allow-failed", "-o", out])
        XCTAssertEqual(j.status, 0, j.err)
        XCTAssertTrue(j.err.contains("warning: the target \"Rome\" has no leading space"), j.err)
        let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(j.out.utf8)) as? [String: Any], j.out)
        XCTAssertEqual(o["method"] as? String, "rome")
        XCTAssertEqual(o["weights"] as? [String], ["model.layers.0.mlp.down_proj.weight"])
        XCTAssertNotNil(o["reached_target"] as? Bool)
        XCTAssertEqual((o["before"] as? [String: Any])?["answer"] as? String, " Paris")

        let ok = try run(["edit"] + common + ["--steps", "60", "--json", "-o", dir.appendingPathComponent("rome2").path])
        XCTAssertEqual(ok.status, 0, ok.err)
        let oo = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(ok.out.utf8)) as? [String: Any], ok.out)
        XCTAssertEqual(oo["reached_target"] as? Bool, true)
        XCTAssertEqual((oo["after"] as? [String: Any])?["answer"] as? String, " Rome")
        XCTAssertEqual(oo["output"] as? String, dir.appendingPathComponent("rome2").path)
    }
}
