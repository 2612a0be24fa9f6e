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
                            "graft", "repair", "interference", "finetune", "convert", "convert-gguf", "task-vector extract"]
    /// Writers with --dry-run (check inputs and OUT, print what would be written, write nothing): every writer.
    static let dryRunning = ["convert", "convert-gguf", "convert-lt-sft", "extract-lora", "finetune", "merge-adapter", "merge", "task-vector extract",
                             "compose", "edit", "train-editor", "facts make", "soup", "search", "graft", "repair"]

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
        XCTAssertEqual(Set(Self.dryRunning), Set(Self.writers), "every writer has --dry-run")
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
            ["convert-lt-sft", "Tests/CheckpointsTests/Fixtures/lt_sft/pytorch_diff.bin", "-o", out("sft"), "--skip-abs"],
            ["train-editor", "\(family)/base", "fixtures/edits/train.jsonl", "-o", out("editor.safetensors"), "--rank", "4", "--steps", "3"],
            ["facts", "make", "\(family)/base", "--relations", "capital,continent", "-o", out("facts.jsonl")],
            ["soup", "\(family)/capital-full", "\(family)/continent-full", "--held-out", "\(family)/data/capital-heldout.jsonl",
             "--held-out", "\(family)/data/continent-heldout.jsonl", "--base", "\(family)/base", "-o", out("soup")],
            ["soup", "\(family)/capital-full", "\(family)/continent-full", "--held-out", "\(family)/data/capital-heldout.jsonl", "--learned",
             "--per-layer", "-o", out("soup-l")],
            ["search", "fixtures/merge/recipes/ties.yml", "--held-out", "fixtures/merge/eval/add.jsonl", "--vary", "models.*.parameters.density=0.2:0.8",
             "--budget", "4", "--log", out("search.jsonl"), "-o", out("search")],
            ["graft", "--base", "\(family)/base", "--tuned", "\(family)/capital-full", "--sparsity", "0.001,0.01",
             "--held-out", "\(family)/data/capital-heldout.jsonl", "--train", "\(family)/data/capital-train.jsonl", "-o", out("graft")],
            ["repair", "--base", "\(family)/base", "--lora", "\(family)/capital-lora", "-o", out("repair")],
            ["repair", "--base", "\(family)/base", "--tuned", "\(family)/capital-full", "--sweep", "lambda=0.3,0.7",
             "--held-out", "\(family)/data/capital-heldout.jsonl", "--forgetting", "\(family)/data/corpus.txt", "--plot", out("repair.svg"), "--no-cache"],
        ]
        // The line each dry run prints about its plan, besides "would write".
        let planLines = ["convert-lt-sft": "would convert", "train-editor": "would train 3 steps", "facts": "capital: ", "soup": "would score",
                         "search": "search over 3 parameters", "graft": "sparsities: 0.001 (k = ", "repair": "matrices, one SVD each"]
        for args in runs {
            let r = try Self.run(args + ["--dry-run"])
            XCTAssertEqual(r.status, 0, "\(args): \(r.err)")
            XCTAssertTrue(r.out.contains("would write \(tmp.path)/"), "\(args): \(r.out)")
            if let line = planLines[args[0]] { XCTAssertTrue(r.out.contains(line), "\(args): \(r.out)") }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), [], "\(args) left files behind")
            for name in ["sft", "editor.safetensors", "facts.jsonl", "soup", "soup-l", "search", "search.jsonl", "graft", "repair", "repair.svg"] {
                XCTAssertFalse(FileManager.default.fileExists(atPath: out(name)), "\(args) wrote \(name)")
            }
        }
        // A dry run refuses what the run refuses: an existing OUT without --force, dense 'abs' tensors without --skip-abs.
        let existing = tmp.appendingPathComponent("taken")
        try FileManager.default.createDirectory(at: existing, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: existing.appendingPathComponent("keep.txt"))
        try Data("x".utf8).write(to: tmp.appendingPathComponent("taken.safetensors"))
        for args in [["convert-lt-sft", "Tests/CheckpointsTests/Fixtures/lt_sft/pytorch_diff.bin", "-o", existing.path, "--skip-abs"],
                     ["train-editor", "\(family)/base", "fixtures/edits/train.jsonl", "-o", out("taken.safetensors")],
                     ["facts", "make", "\(family)/base", "-o", out("taken.safetensors")],
                     ["soup", "\(family)/capital-full", "--held-out", "\(family)/data/capital-heldout.jsonl", "-o", existing.path],
                     ["graft", "--base", "\(family)/base", "--tuned", "\(family)/capital-full", "-o", existing.path],
                     ["repair", "--base", "\(family)/base", "--lora", "\(family)/capital-lora", "-o", existing.path]] {
            let r = try Self.run(args + ["--dry-run"])
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.err.contains("already exists"), "\(args): \(r.err)")
        }
        let abs = try Self.run(["convert-lt-sft", "Tests/CheckpointsTests/Fixtures/lt_sft/pytorch_diff.bin", "-o", out("sft"), "--dry-run"])
        XCTAssertNotEqual(abs.status, 0)
        XCTAssertTrue(abs.err.contains("--skip-abs"), abs.err)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: tmp.path)), ["taken", "taken.safetensors"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: existing.path), ["keep.txt"])
        try FileManager.default.removeItem(at: existing)
        try FileManager.default.removeItem(at: tmp.appendingPathComponent("taken.safetensors"))
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
            ["convert", "fixtures/merge/base", tmp.appendingPathComponent("c").path, "--dtype", "bf16"],
            ["convert-gguf", "Tests/TransformerTests/Fixtures/models/llama_gguf.gguf", tmp.appendingPathComponent("g").path],
            ["task-vector", "extract", "\(f)/base", "\(f)/capital-full", "-o", tmp.appendingPathComponent("tv").path],
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

    /// `convert`, `convert-gguf` and `task-vector extract --json`: one object on stdout with what
    /// was written (or, with --dry-run, would be: the same figures, nothing written).
    func testConvertAndTaskVectorJSON() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-cvjson-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: tmp) }
        func object(_ args: [String]) throws -> [String: Any] {
            let r = try Self.run(args + ["--json", "--threads", "1"])
            XCTAssertEqual(r.status, 0, "\(args): \(r.err)")
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], "\(args): \(r.out)")
        }
        let c = tmp.appendingPathComponent("c").path
        let dry = try object(["convert", "fixtures/merge/base", c, "--dtype", "bf16", "--dry-run"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: c))
        let wet = try object(["convert", "fixtures/merge/base", c, "--dtype", "bf16"])
        XCTAssertEqual(dry["dry_run"] as? Bool, true)
        XCTAssertEqual(wet["dry_run"] as? Bool, false)
        XCTAssertEqual(wet["output"] as? String, c)
        XCTAssertEqual(wet["dtype"] as? String, "BF16", "the safetensors spelling, as inspect --json")
        XCTAssertEqual(wet["tensors"] as? Int, 21)
        // 427,264 bytes of f32 tensors in the fixture (merge's report above), halved in bf16.
        XCTAssertEqual(wet["bytes_in"] as? Int, 427_264)
        XCTAssertEqual(wet["bytes"] as? Int, 213_632)
        XCTAssertTrue((wet["files"] as? [String] ?? []).contains("model.safetensors"), "\(wet)")
        for k in ["tensors", "bytes", "bytes_in", "converted", "files"] {
            XCTAssertEqual("\(dry[k] ?? "nil")", "\(wet[k] ?? "nil")", "convert --dry-run --json \(k)")
        }

        let g = tmp.appendingPathComponent("g").path
        let gd = try object(["convert-gguf", "Tests/TransformerTests/Fixtures/models/llama_gguf.gguf", g, "--dry-run"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: g))
        let gw = try object(["convert-gguf", "Tests/TransformerTests/Fixtures/models/llama_gguf.gguf", g, "--quiet"])
        XCTAssertEqual(gw["architecture"] as? String, "llama")
        XCTAssertEqual(gw["dtype"] as? String, "F32")
        let parameters = try XCTUnwrap(gw["parameters"] as? Int)
        XCTAssertEqual(gw["bytes"] as? Int, 4 * parameters)
        XCTAssertEqual(gd["tensors"] as? Int, gw["tensors"] as? Int)
        XCTAssertEqual(gd["bytes"] as? Int, gw["bytes"] as? Int)
        XCTAssertTrue((gw["files"] as? [String] ?? []).contains("model.safetensors"), "\(gw)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: g + "/model.safetensors"))

        let tv = tmp.appendingPathComponent("tv").path
        let td = try object(["task-vector", "extract", "fixtures/family/base", "fixtures/family/capital-full", "-o", tv, "--dry-run"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: tv))
        let tw = try object(["task-vector", "extract", "fixtures/family/base", "fixtures/family/capital-full", "-o", tv, "--quiet"])
        XCTAssertEqual(td["dry_run"] as? Bool, true)
        XCTAssertEqual(tw["output"] as? String, tv)
        XCTAssertEqual(tw["dtype"] as? String, td["dtype"] as? String)
        XCTAssertEqual(tw["tensors"] as? Int, td["tensors"] as? Int)
        XCTAssertEqual(tw["bytes"] as? Int, td["bytes"] as? Int)
        XCTAssertGreaterThan(tw["tensors"] as? Int ?? 0, 0)
        XCTAssertTrue((tw["files"] as? [String] ?? []).contains("model.safetensors"), "\(tw)")
    }
}
