import Foundation
import XCTest

/// The command line's flag table, read from the built binary (`--experimental-dump-help`): one
/// idea, one spelling, on every command it applies to. Skipped when the binary is not built.
final class CommandLineFlagTableTests: XCTestCase {
    static func run(_ args: [String]) throws -> Binary.Run { try Binary.run(args) }

    override func setUpWithError() throws { try Binary.requireBuilt() }

    /// Every leaf command ("merge", "task-vector extract", ...) with its visible options' long
    /// names; the names of one option are grouped (e.g. ["dtype", "out-dtype"]).
    func table() throws -> [String: [[String]]] {
        let r = try Self.run(["--experimental-dump-help"])
        XCTAssertEqual(r.status, 0, r.err)
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        var out: [String: [[String]]] = [:]
        func walk(_ c: [String: Any], _ path: [String]) {
            let name = (path + [c["commandName"] as? String ?? ""]).dropFirst().joined(separator: " ")
            let subs = c["subcommands"] as? [[String: Any]] ?? []
            if subs.isEmpty || name.isEmpty == false && subs.allSatisfy({ ($0["commandName"] as? String) == "help" }) {
                var opts: [[String]] = []
                // Hidden options are former names kept for old scripts (they print a note).
                for a in c["arguments"] as? [[String: Any]] ?? [] where (a["shouldDisplay"] as? Bool) != false {
                    let names = (a["names"] as? [[String: Any]] ?? []).filter { ($0["kind"] as? String) == "long" }.compactMap { $0["name"] as? String }
                    if !names.isEmpty { opts.append(names) }
                }
                out[name] = opts
            }
            for s in subs where (s["commandName"] as? String) != "help" { walk(s, path + [c["commandName"] as? String ?? ""]) }
        }
        walk(try XCTUnwrap(root["command"] as? [String: Any]), [])
        return out
    }

    /// Commands that write a model, adapter, delta, mask or data file.
    static let writers = ["convert", "convert-gguf", "convert-lt-sft", "extract-lora", "finetune", "merge-adapter", "merge",
                          "task-vector extract", "compose", "edit", "train-editor", "facts make", "soup", "search", "graft", "repair"]
    /// Commands that compute enough for the thread count to matter.
    static let computing = ["convert", "convert-gguf", "extract-lora", "finetune", "merge-adapter", "merge", "task-vector extract",
                            "compose", "edit", "edit-eval", "train-editor", "facts make", "soup", "search", "graft", "repair", "spectrum", "compare",
                            "eval", "generate", "interference"]
    /// Commands that print a report a script may want to read.
    static let reporting = ["merge", "compose", "edit", "edit-eval", "inspect", "spectrum", "compare", "extract-lora", "eval", "merge-adapter", "soup",
                            "graft", "repair", "interference", "finetune"]
    /// Writers with --dry-run (check inputs and OUT, print what would be written, write nothing).
    static let dryRunning = ["convert", "convert-gguf", "extract-lora", "finetune", "merge-adapter", "merge", "task-vector extract", "compose", "edit"]

    func testOneSpellingPerIdea() throws {
        let t = try table()
        XCTAssertGreaterThanOrEqual(t.count, 24, "\(t.keys.sorted())")
        func has(_ command: String, _ flag: String) -> Bool { t[command]?.contains { $0.contains(flag) } ?? false }
        for c in Self.writers {
            XCTAssertNotNil(t[c], c)
            XCTAssertTrue(has(c, "force"), "\(c) lacks --force")
            XCTAssertTrue(has(c, "quiet"), "\(c) lacks --quiet")
            // Every writer of weights refuses NaN/Inf unless told (facts make writes JSONL).
            if c != "facts make" { XCTAssertTrue(has(c, "allow-nonfinite"), "\(c) lacks --allow-nonfinite") }
        }
        for c in Self.dryRunning { XCTAssertTrue(has(c, "dry-run"), "\(c) lacks --dry-run") }
        for c in Self.computing { XCTAssertTrue(has(c, "threads"), "\(c) lacks --threads") }
        for c in Self.reporting { XCTAssertTrue(has(c, "json"), "\(c) lacks --json") }
        for (c, opts) in t {
            // The output dtype is --dtype everywhere (--out-dtype only as its alias).
            for names in opts where names.contains("out-dtype") { XCTAssertTrue(names.contains("dtype"), "\(c): --out-dtype without --dtype") }
            // Spellings that name one idea differently are not used.
            for names in opts {
                for bad in ["workers-threads", "num-threads", "overwrite", "silent", "no-progress", "out-type", "output-dtype"] {
                    XCTAssertFalse(names.contains(bad), "\(c): --\(bad)")
                }
            }
            // A fraction is a density; --top-k is a count (spectrum, compare, repair) and nothing else.
            for names in opts where names.contains("top-k") {
                XCTAssertTrue(["spectrum", "compare", "repair"].contains(c), "\(c): --top-k names a fraction here; call it --density")
            }
            // No option is declared twice under one name.
            let flat = opts.flatMap { $0 }
            XCTAssertEqual(flat.count, Set(flat).count, "\(c): \(flat)")
        }
    }

    func testThreadsAndQuietBehave() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-flags-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: tmp) }
        let bad = try Self.run(["eval", "fixtures/merge/base", "fixtures/merge/eval/add.jsonl", "--threads", "0"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("--threads must be between 1 and 4096"), bad.err)
        let one = try Self.run(["eval", "fixtures/merge/base", "fixtures/merge/eval/add.jsonl", "--threads", "1", "--quiet"])
        let two = try Self.run(["eval", "fixtures/merge/base", "fixtures/merge/eval/add.jsonl", "--threads", "2", "--quiet"])
        XCTAssertEqual(one.status, 0, one.err)
        XCTAssertEqual(one.out, two.out, "the thread count must not change the result")
        XCTAssertTrue(one.out.contains("mean NLL"), one.out)
        XCTAssertEqual(one.err, "")
        // merge --json: one JSON object with the folder's facts.
        let mj = try Self.run(["merge", "--method", "linear", "fixtures/merge/ft-a", "fixtures/merge/ft-b", "-o",
                               tmp.appendingPathComponent("m").path, "--json", "--quiet"])
        XCTAssertEqual(mj.status, 0, mj.err)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(mj.out.utf8)) as? [String: Any], mj.out)
        XCTAssertEqual(obj["tensors"] as? Int, 21)
        XCTAssertEqual(obj["bytes"] as? Int, 427_264)
        XCTAssertTrue((obj["files"] as? [String] ?? []).contains("model.safetensors"))
        XCTAssertEqual(obj["output"] as? String, tmp.appendingPathComponent("m").path)
        // finetune --quiet prints only the result line.
        let ft = try Self.run(["finetune", "fixtures/merge/base", "fixtures/merge/eval/add.jsonl", "--mode", "lora", "--steps", "2",
                               "-o", tmp.appendingPathComponent("ft").path, "--quiet", "--threads", "1"])
        XCTAssertEqual(ft.status, 0, ft.err)
        XCTAssertEqual(ft.out.split(separator: "\n").count, 1, ft.out)
        XCTAssertTrue(ft.out.hasPrefix("wrote"), ft.out)
    }

    /// Every --dry-run says what it would write, exits 0 and leaves nothing behind; a bad OUT is
    /// refused by the dry run as by the real run.
    func testDryRunsWriteNothing() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-dry-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: tmp) }
        func out(_ name: String) -> String { tmp.appendingPathComponent(name).path }
        let family = "fixtures/family"
        let runs: [[String]] = [
            ["convert", "fixtures/merge/base", out("c"), "--dtype", "bf16", "--shard-size", "100kB"],
            ["convert", "fixtures/merge/base", out("c.safetensors")],
            ["convert-gguf", "Tests/TransformerTests/Fixtures/models/llama_gguf.gguf", out("g")],
            ["extract-lora", "--base", "\(family)/base", "--tuned", "\(family)/capital-full", "--rank", "2", "-o", out("l")],
            ["finetune", "fixtures/merge/base", "fixtures/merge/eval/add.jsonl", "--mode", "full", "-o", out("f")],
            ["finetune", "fixtures/merge/base", "fixtures/merge/eval/add.jsonl", "--mode", "lora", "-o", out("fl")],
            ["finetune", "fixtures/merge/base", "fixtures/merge/eval/add.jsonl", "--mode", "lt-sft", "-o", out("ft")],
            ["edit", "\(family)/base", "--prompt", "The capital of France is", "--target", " Rome", "-o", out("e")],
            ["merge-adapter", "\(family)/base", "\(family)/capital-lora", "-o", out("ma")],
            ["merge", "--method", "linear", "fixtures/merge/ft-a", "fixtures/merge/ft-b", "-o", out("m")],
        ]
        for args in runs {
            let r = try Self.run(args + ["--dry-run"])
            XCTAssertEqual(r.status, 0, "\(args): \(r.err)")
            XCTAssertTrue(r.out.contains("would write \(tmp.path)/"), "\(args): \(r.out)")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), [], "\(args) left files behind")
        }
        let c = try Self.run(["convert", "fixtures/merge/base", "fixtures/merge/base/inside", "--dry-run"])
        XCTAssertNotEqual(c.status, 0)
        XCTAssertTrue(c.err.contains("inside the input"), c.err)
        for args in [["finetune", "fixtures/merge/base", "fixtures/merge/eval/add.jsonl", "-o", "fixtures/merge"],
                     ["merge", "--method", "linear", "fixtures/merge/ft-a", "fixtures/merge/ft-b", "-o", "fixtures/merge/ft-a"],
                     ["edit", "fixtures/family/base", "--prompt", "The capital of France is", "--target", " Rome", "-o", "fixtures/family"]] {
            let r = try Self.run(args + ["--dry-run"])
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.err.contains("input"), "\(args): \(r.err)")
        }
    }

    /// `finetune --json`: one object on stdout (snake_case keys, progress on stderr) with the run's figures.
    func testFinetuneJSON() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-ftjson-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: tmp) }
        let r = try Self.run(["finetune", "fixtures/merge/base", "fixtures/merge/eval/add.jsonl", "--mode", "lora", "--steps", "3", "-o", tmp.path,
                              "--json", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.err)
        let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
        XCTAssertEqual(o["mode"] as? String, "lora")
        XCTAssertEqual(o["steps"] as? Int, 3)
        XCTAssertEqual(o["trainable_parameters"] as? Int, 16384)
        XCTAssertEqual(o["files"] as? [String], ["adapter_config.json", "adapter_model.safetensors"])
        let before = try XCTUnwrap(o["held_out_loss_before"] as? Double), after = try XCTUnwrap(o["held_out_loss_after"] as? Double)
        XCTAssertLessThan(after, before, "three LoRA steps at lr 1e-3 lower the held-out loss")
        XCTAssertTrue(r.err.contains("step 3/3"), r.err)
        XCTAssertFalse(o.keys.contains { $0.contains(where: \.isUppercase) }, "\(o.keys)")
    }

    /// Every --json report uses snake_case keys (spectrum and extract-lora used camelCase).
    func testJSONKeysAreSnakeCase() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-snake-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: tmp) }
        let f = "fixtures/family"
        let runs: [[String]] = [
            ["spectrum", "--base", "\(f)/base", "--tuned", "\(f)/capital-full", "--no-cache"],
            ["compare", "--base", "\(f)/base", "--lora", "\(f)/capital-lora", "--full", "\(f)/capital-full", "--no-cache"],
            ["extract-lora", "--base", "\(f)/base", "--tuned", "\(f)/capital-full", "--rank", "2", "-o", tmp.appendingPathComponent("l").path],
            ["eval", "\(f)/base", "\(f)/data/capital-heldout.jsonl"],
            ["interference", "--base", "\(f)/base", "\(f)/capital-full", "\(f)/profession-full"],
        ]
        func keys(_ x: Any, _ into: inout Set<String>) {
            if let d = x as? [String: Any] { for (k, v) in d { into.insert(k); keys(v, &into) } }
            if let a = x as? [Any] { for v in a { keys(v, &into) } }
        }
        for args in runs {
            let r = try Self.run(args + ["--json", "--threads", "1"])
            XCTAssertEqual(r.status, 0, "\(args): \(r.err)")
            var all = Set<String>()
            keys(try JSONSerialization.jsonObject(with: Data(r.out.utf8)), &all)
            XCTAssertGreaterThan(all.count, 3, "\(args)")
            let camel = all.filter { $0.contains(where: \.isUppercase) && !$0.contains(".") }
            XCTAssertEqual(camel, [], "\(args[0])")
        }
    }
}
