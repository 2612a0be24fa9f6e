import ArgumentParser
import Checkpoints
import Foundation
import Grafting
import Transformer

/// Composable sparse fine-tunes (Ansell et al. 2022): `sft train` (LT-SFT, as `finetune --mode
/// lt-sft`) and `sft compose` (θ_base + Σ φ_i, with each task's held-out score alone and composed).
struct SFTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft",
        abstract: "Composable sparse fine-tunes (Ansell et al. 2022): train an LT-SFT delta, compose deltas onto a base.",
        subcommands: [Train.self, Compose.self])

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "LT-SFT: `finetune MODEL DATA --mode lt-sft` with the same options (--density, --steps, --full-steps, --sparse-lr, --l1-pull, --include, ...).",
            discussion: "Every argument is passed to `weightsmith finetune` with --mode lt-sft; see `weightsmith finetune --help`.")

        @Argument(parsing: .captureForPassthrough, help: "MODEL DATA and finetune's options.") var arguments: [String] = []

        func run() throws {
            if arguments.contains("--mode") { throw ValidationError("sft train sets --mode lt-sft itself") }
            let command = try FinetuneCommand.parse(arguments + ["--mode", "lt-sft"])
            try command.run()
        }
    }

    struct Compose: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add sparse deltas onto their base: θ = θ_base + Σ φ_i (Ansell et al. 2022, §3), with each task's held-out score alone and composed.",
            discussion: """
            Each DELTA is [NAME=]PATH: an LT-SFT output (finetune --mode lt-sft, sft train), a graft output or any \
            weightsmith sparse delta. Entries listed by several deltas get the sum of their values. With \
            --held-out NAME=FILE, the table scores that task with its delta alone (θ_base + φ_NAME) and in the \
            composition, the interference the paper measures. Coefficients: `weightsmith compose "a + 0.5*b" \
            --model a=DELTA ...`. OUT (written atomically) is a Hugging Face folder with the base's side files, \
            sft_compose_report.json and README.md.
            """)

        @Argument(help: "The base model (Hugging Face folder).") var base: String
        @Argument(help: "Sparse deltas: [NAME=]PATH.") var deltas: [String] = []
        @Option(name: .customLong("held-out"), help: "NAME=FILE: JSONL prompt/completion pairs of a delta's task.") var heldOut: [String] = []
        @Option(name: .shortAndLong, help: "Output folder (must not exist or be empty; never an input or inside one).") var output: String
        @Flag(name: .long, help: "Replace OUT if it is a previous weightsmith output.") var force = false
        @Flag(name: .long, help: "Print the report as JSON.") var json = false
        @OptionGroup var threading: ThreadsOption
        @OptionGroup var nonFinite: NonFiniteOption

        struct Row: Codable {
            var task: String
            var delta: String
            var entries: Int
            var heldOut: String?
            var alone: EvaluationResult?
            var composed: EvaluationResult?
            enum CodingKeys: String, CodingKey { case task, delta, entries, heldOut = "held_out", alone, composed }
        }

        func run() throws {
            try threading.apply()
            try reportingErrors { try compose() }
        }

        func compose() throws {
            guard !deltas.isEmpty else { throw ValidationError("give at least one sparse delta after the base") }
            let named = deltas.map { spec -> (name: String, path: String) in
                if let eq = spec.firstIndex(of: "="), !FileManager.default.fileExists(atPath: spec) {
                    return (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
                }
                return (URL(fileURLWithPath: spec).deletingPathExtension().lastPathComponent, spec)
            }
            let names = named.map(\.name)
            if let dup = names.first(where: { n in names.filter { $0 == n }.count > 1 }) {
                throw ValidationError("delta name \"\(dup)\" is given twice (name them NAME=PATH)")
            }
            var heldOutFor: [String: String] = [:]
            for h in heldOut {
                guard let eq = h.firstIndex(of: "="), !FileManager.default.fileExists(atPath: h) else {
                    throw ValidationError("--held-out \"\(h)\": give NAME=FILE, NAME one of the deltas (\(names.joined(separator: ", ")))")
                }
                let n = String(h[..<eq])
                guard names.contains(n) else { throw ValidationError("--held-out \(n)=...: no delta is called \"\(n)\" (deltas: \(names.joined(separator: ", ")))") }
                guard heldOutFor[n] == nil else { throw ValidationError("--held-out: delta \"\(n)\" is given twice") }
                heldOutFor[n] = String(h[h.index(after: eq)...])
            }
            let inputs = ([base] + named.map(\.path) + Array(heldOutFor.values)).map { URL(fileURLWithPath: $0) }
            let out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: inputs, force: force, command: "sft compose")

            let loaded = try PretrainedModel(path: base)
            let model = loaded.model, P = model.parameters
            let files = try named.map { try SparseDeltaFile(locating: $0.path) }
            var rows: [Row] = []
            for ((name, path), d) in zip(named, files) {
                var entries = 0
                for t in d.tensorNames {
                    guard let e = model.layout[t] else {
                        throw GraftError.deltaMismatch(path: path, tensor: t, reason: "not a tensor of the base \(base)")
                    }
                    guard e.shape == d.shapes[t]! else {
                        throw GraftError.deltaMismatch(path: path, tensor: t, reason: "shape \(d.shapes[t]!.dims) in the delta, \(e.shape.dims) in the base")
                    }
                    entries += d.count(t)
                }
                rows.append(Row(task: name, delta: path, entries: entries, heldOut: heldOutFor[name]))
            }
            let tok = loaded.tokenizer
            let data = try rows.map { r in
                try r.heldOut.map { h in try PromptCompletion.readJSONL(URL(fileURLWithPath: h)).map { (tok.encode($0.prompt), tok.encode($0.completion, addSpecialTokens: false)) } }
            }
            // Adds deltas onto the model in place, runs body, puts the base values back bit for bit.
            func withDeltas<T>(_ ds: [SparseDeltaFile], _ body: () throws -> T) throws -> T {
                var saved: [(UnsafeMutablePointer<Float>, [Int64], [Float])] = []
                defer { for (p, idx, vals) in saved.reversed() { for (i, v) in zip(idx, vals) { p[Int(i)] = v } } }
                for d in ds {
                    for t in d.tensorNames {
                        let s = try d.sparse(t), p = P.pointer(t)
                        saved.append((p, s.indices, s.indices.map { p[Int($0)] }))
                        for (i, v) in zip(s.indices, s.values) { p[Int(i)] += v }
                    }
                }
                return try body()
            }
            for (k, d) in files.enumerated() where data[k] != nil {
                rows[k].alone = try withDeltas([d]) { try Evaluator.evaluate(model: model, tokenized: data[k]!) }
            }
            try withDeltas(files) {
                for k in files.indices where data[k] != nil { rows[k].composed = try Evaluator.evaluate(model: model, tokenized: data[k]!) }
                if !nonFinite.allowNonFinite { try model.requireFiniteWeights() }
                let meta = ["format": "pt", "weightsmith.sft_compose": named.map { "\($0.name)=\($0.path)" }.joined(separator: ", ")]
                try out.write { staging in
                    try model.save(to: staging, sideFilesFrom: loaded.directory, metadata: meta, allowNonFinite: nonFinite.allowNonFinite)
                    let report = try ReportColumns.json(rows)
                    try Data((report + "\n").utf8).write(to: staging.appendingPathComponent("sft_compose_report.json"))
                    var card = "# Composed sparse fine-tunes (weightsmith sft compose)\n\n"
                    card += "θ = θ_base + Σ φ_i (Ansell et al. 2022, \"Composable Sparse Fine-Tuning for Cross-Lingual Transfer\", §3).\n\n"
                    card += "- base: `\(base)`\n" + rows.map { "- \($0.task): `\($0.delta)`, \($0.entries) entries\n" }.joined()
                    if rows.contains(where: { $0.heldOut != nil }) { card += "\n```\n" + table(rows) + "\n```\n" }
                    try Data(card.utf8).write(to: staging.appendingPathComponent("README.md"))
                }
            }
            if json {
                print(try ReportColumns.json(rows))
            } else {
                print("composed \(rows.count) sparse deltas onto \(base): " + rows.map { "\($0.task) (\($0.entries) entries)" }.joined(separator: ", "))
                if rows.contains(where: { $0.heldOut != nil }) { print(table(rows)) }
                print("wrote \(output)")
            }
        }

        /// Per task with held-out data: NLL and exact match with its delta alone and composed.
        func table(_ rows: [Row]) -> String {
            func em(_ r: EvaluationResult?) -> String { r?.exactMatch.map { String(format: "%.3f", $0) } ?? "-" }
            func nll(_ r: EvaluationResult?) -> String { r.map { String(format: "%.4f", $0.meanNLL) } ?? "-" }
            var lines = [["task", "NLL alone", "NLL composed", "change", "EM alone", "EM composed"]]
            for r in rows where r.heldOut != nil {
                let change = (r.alone != nil && r.composed != nil) ? String(format: "%+.4f", r.composed!.meanNLL - r.alone!.meanNLL) : "-"
                lines.append([r.task, nll(r.alone), nll(r.composed), change, em(r.alone), em(r.composed)])
            }
            return ReportColumns.render(lines)
        }
    }
}
