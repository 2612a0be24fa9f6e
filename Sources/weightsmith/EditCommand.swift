import ArgumentParser
import Checkpoints
import Editing
import Foundation
import Transformer

struct EditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Apply a single-fact edit (ROME, FT-L or MEND) and write the edited model, or score a method (or MEMIT, all at once) on many edits.",
        discussion: """
        Makes MODEL continue --prompt with --target (give the target its leading space, " Rome"). \
        Prints efficacy (teacher-forced target-token accuracy and the target's per-token probability), \
        paraphrase accuracy and locality (the share of the original model's greedy tokens on the \
        --locality-prompts that the model still predicts) before and after, and writes OUT (a Hugging \
        Face folder, written atomically). An edit that does not reach its target (the greedy continuation \
        is not the target) is reported as failed: exit status 1 and nothing written, unless --allow-failed. ROME needs the subject (--subject, else the last capitalised \
        words of the prompt); with --stats-corpus it uses key statistics C = E[kkᵀ] from that text \
        (cached in --stats-cache), else C = I. MEND needs a trained --editor (weightsmith train-editor). \
        With --requests FILE (JSONL edit records) instead of --prompt/--target, runs the single-edit \
        protocol on every record (edit, score, restore) and prints the mean scores; nothing is written.
        """)

    @Argument(help: "A model reference: a Hugging Face folder, a .safetensors file, a .gguf file, a PEFT adapter (merged onto its base), BASE+ADAPTER, BASE+DELTA, or org/name[@revision] from the local Hugging Face cache.") var model: String
    @Option(help: "The base of an adapter, task vector or sparse delta given as MODEL.") var base: String?
    @Option(name: .long, help: "The prompt (or a template with {} for the subject).") var prompt: String?
    @Option(name: .long, help: "The new continuation, with its leading space.") var target: String?
    @Option(name: .long, help: "Score the method on these JSONL edit records instead (nothing is written).") var requests: String?
    @Option(name: .long, help: "The subject (default: the last capitalised words of the prompt).") var subject: String?
    @Option(name: .long, help: "rome, ft (FT-L), mend or memit (with --requests: all records in one edit; needs --stats-corpus).") var method: EditMethod = .rome
    @Option(name: .long, parsing: .singleValue, help: "A paraphrase prompt (repeatable).") var paraphrase: [String] = []
    @Option(name: .long, help: "Locality prompts: one per line, or JSONL with \"prompt\".") var localityPrompts: String?
    @Option(name: .shortAndLong, help: "Output folder (must not exist or be empty; never an input or inside one).") var output: String?
    @Option(name: .long, help: "Keep only the records of this split (train, validation, test).") var split: String?
    @OptionGroup(title: "Editor settings") var editorOptions: EditorOptions

    @Flag(name: .long, help: "Replace OUT when it is a previous weightsmith output.") var force = false
    @OptionGroup var nonFinite: NonFiniteOption
    @OptionGroup var threading: ThreadsOption
    @OptionGroup var quietOption: QuietOption

    @Flag(name: .long, help: "Write OUT even when the edit does not reach its target (by default a failed edit exits with status 1 and writes nothing).") var allowFailed = false
    @Flag(name: .long, help: "Print the result as JSON on stdout (notes go to stderr).") var json = false
    @Flag(name: .long, help: "Check the model, the request (or --requests records) and OUT, print what would be edited and written, then stop (no key statistics, no edit, nothing written).") var dryRun = false

    func run() throws {
        try threading.apply()
        // The output path is checked (and locked) before anything is loaded or computed; see OutputFolder.
        var out: OutputFolder? = nil
        if requests == nil {
            guard prompt != nil, target != nil else { throw ValidationError("give --prompt and --target (or --requests FILE)") }
            guard let output else { throw ValidationError("give -o OUT for the edited model") }
            let inputs = ([model, localityPrompts].compactMap { $0 } + editorOptions.inputs).map { URL(fileURLWithPath: $0) }
            out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: inputs, force: force, command: "edit")
        }
        if method == .mend && editorOptions.steps != nil {
            throw ValidationError("--steps does not apply to --method mend (its edit is one pass of the trained editor)")
        }
        if method == .memit && requests == nil { throw ValidationError("--method memit needs --requests FILE (many facts in one edit)") }
        try editorOptions.checkCache(inputs: [model, base, localityPrompts].compactMap { $0 })
        let loaded = try PretrainedModel(path: model, base: base)
        if !nonFinite.allowNonFinite { try loaded.model.requireFiniteWeights() }
        let m = loaded.model, tok = loaded.tokenizer
        if dryRun { return try describe(loaded) }
        let memitProgress = method == .memit && !quietOption.quiet ? ProgressLine(label: "memit") : nil
        let editors = try Editors(options: editorOptions, model: m, tokenizer: tok, methods: [method], memitProgress: memitProgress)
        func note(_ text: String) {
            if text.isEmpty || quietOption.quiet { return }
            if json { FileHandle.standardError.write(Data(text.utf8)) } else { print(text, terminator: "") }
        }

        if let file = requests {
            var rs = try EditRequest.readJSONL(URL(fileURLWithPath: file))
            if let split { rs = rs.filter { $0.split == split } }
            guard !rs.isEmpty else { throw ValidationError("no records in \(file)\(split.map { " with split \($0)" } ?? "")") }
            if method == .memit {
                try memitAtOnce(rs, editors: editors, progress: memitProgress!, note: note)
                return
            }
            let r = try EditBenchmark.run(model: m, tokenizer: tok, requests: rs) { try editors.edits(method, $0) }
            note(editors.notes)
            if json {
                try printJSON(BenchmarkJSON(method: method.rawValue, protocol: "single", requests: r.requests, secondsPerEdit: r.secondsPerEdit,
                                            reachedTarget: r.answerChanged, before: r.before, after: r.after))
                return
            }
            print("\(method.rawValue) on \(r.requests) edits (single-edit protocol), \(String(format: "%.2f", r.secondsPerEdit)) s per edit; greedy answer = target in \(r.answerChanged)/\(r.requests)")
            print(EditTable.render(before: r.before, after: r.after, answers: false))
            return
        }
        guard let prompt, let target, let output, let out else { throw ValidationError("give --prompt, --target and -o OUT (or --requests FILE)") }
        if !target.hasPrefix(" ") && !prompt.hasSuffix(" ") {
            FileHandle.standardError.write(Data("warning: the target \"\(target)\" has no leading space; it is appended to the prompt verbatim (\"\(prompt)\(target)\"). Did you mean \" \(target)\"?\n".utf8))
        }
        var loc: [String] = []
        if let f = localityPrompts { loc = try EditRequest.readPrompts(URL(fileURLWithPath: f)) }
        let request = EditRequest(prompt: prompt, subject: subject, target: target, paraphrases: paraphrase, localityPrompts: loc)
        try request.validate()
        if method == .rome { _ = try request.keySubject() }
        let scorer = EditScorer(model: m, tokenizer: tok)
        let reference = loc.isEmpty ? nil : try scorer.localityReference(loc)
        let before = try scorer.score(request, locality: reference)
        let t0 = Date()
        let edits = try editors.edits(method, request)
        let seconds = Date().timeIntervalSince(t0)
        for e in edits { try e.apply(to: m) }
        let after = try scorer.score(request, locality: reference)
        let norm = edits.reduce(0.0) { $0 + $1.frobeniusNorm * $1.frobeniusNorm }.squareRoot()
        let maxAbs = edits.map(\.maxAbs).max() ?? 0
        let what = edits.count == 1 ? edits[0].weight : "\(edits.count) matrices"
        // Reached = every target token is the argmax after the prompt (teacher forced), i.e. the
        // greedy continuation is the target.
        let reached = after.efficacy == 1
        let failure = reached ? nil : EditFailed(method: method.rawValue, target: target, answer: after.answer, efficacy: after.efficacy)
        let writes = reached || allowFailed
        if json {
            note(editors.notes + editors.lastDetail)
            try printJSON(SingleEditJSON(method: method.rawValue, weights: edits.map(\.weight), seconds: seconds, updateNorm: norm, updateMaxAbs: Double(maxAbs),
                                         before: before, after: after, reachedTarget: reached, output: writes ? output : nil))
        } else {
            print("\(method.rawValue) edit of \(what) in \(String(format: "%.2f", seconds)) s: |dW|_F = \(String(format: "%.4g", norm)), max |dW| = \(String(format: "%.3g", maxAbs))")
            print(editors.notes + editors.lastDetail, terminator: "")
            print(EditTable.render(before: before, after: after))
        }
        if let failure {
            // The report first, then the verdict, also when both streams go to one pipe.
            fflush(nil)
            guard allowFailed else { throw failure }
            FileHandle.standardError.write(Data("warning: \(failure.description); writing the model anyway (--allow-failed)\n".utf8))
        }
        let source = loaded.directory
        try out.write { staging in
            try m.writeFolder(into: staging, sideFilesFrom: source, metadata: ["format": "pt", "weightsmith.edit": "\(method.rawValue) \(what)"],
                             allowNonFinite: nonFinite.allowNonFinite)
        }
        if !json { print("wrote \(output)") }
    }

    /// --dry-run: the request(s) validated as the edit would validate them, the layer(s) and
    /// matrices that would change, and OUT; nothing computed or written.
    func describe(_ loaded: PretrainedModel) throws {
        let L = loaded.model.config.layers
        let layer = editorOptions.layer ?? min(L - 1, L * 5 / 32)
        guard (0..<L).contains(layer) else { throw ValidationError("--layer \(layer) is outside 0..<\(L) (the model has \(L) layers)") }
        let matrix = loaded.model.mlpOutputWeight(layer: layer)
        if let file = requests {
            var rs = try EditRequest.readJSONL(URL(fileURLWithPath: file))
            if let split { rs = rs.filter { $0.split == split } }
            guard !rs.isEmpty else { throw ValidationError("no records in \(file)\(split.map { " with split \($0)" } ?? "")") }
            for r in rs {
                try r.validate()
                if method == .rome || method == .memit { _ = try r.keySubject() }
            }
            print("\(method.rawValue) on \(rs.count) records of \(file)" + (method == .memit ? " in one edit" : ", one at a time (edit, score, restore)")
                  + "; edited: \(method == .memit ? "the MLP output matrices of layers \(editorOptions.layers ?? "\(max(0, layer - 2))-\(layer)")" : matrix); nothing would be written")
            return
        }
        guard let prompt, let target, let output else { throw ValidationError("give --prompt, --target and -o OUT (or --requests FILE)") }
        var loc: [String] = []
        if let f = localityPrompts { loc = try EditRequest.readPrompts(URL(fileURLWithPath: f)) }
        let request = EditRequest(prompt: prompt, subject: subject, target: target, paraphrases: paraphrase, localityPrompts: loc)
        try request.validate()
        let tok = loaded.tokenizer
        let targetIDs = tok.encode(target, addSpecialTokens: false)
        let pieces = try targetIDs.map { "\"" + (try tok.decode([$0])) + "\"" }.joined(separator: " ")
        print("\(method.rawValue) edit of \(matrix) (layer \(layer) of \(L))")
        if method == .rome { print("subject: \"\(try request.keySubject())\"") }
        print("prompt \"\(prompt)\" -> target \(pieces) (\(targetIDs.count) tokens); \(paraphrase.count) paraphrases, \(loc.count) locality prompts")
        print("would write \(output): config.json, model.safetensors, tokenizer files (from \(loaded.directory.path))")
    }

    /// MEMIT with every record in one edit: scores before and after, and CounterFact's efficacy score.
    func memitAtOnce(_ rs: [EditRequest], editors: Editors, progress: ProgressLine, note: (String) -> Void) throws {
        let m = editors.model
        let scorer = EditScorer(model: m, tokenizer: editors.tokenizer)
        // Scored without the neighbourhood prompts that name another subject of the batch: those answers are meant to change.
        let (scored, excluded) = EditEvaluation.leavingOutEditedSubjects(rs)
        let refs = try scored.map { $0.localityPrompts.isEmpty ? nil : try scorer.localityReference($0.localityPrompts) }
        let before = try zip(scored, refs).map { try scorer.score($0.0, locality: $0.1) }
        let t0 = Date()
        let edits = try editors.memitBatch(rs)
        progress.finish()
        let seconds = Date().timeIntervalSince(t0)
        for e in edits { try e.apply(to: m) }
        let after = try zip(scored, refs).map { try scorer.score($0.0, locality: $0.1) }
        let es = try rs.reduce(0.0) { $0 + (try scorer.counterFact($1).efficacyScore ?? 0) }
        let reached = zip(rs, after).filter { $0.1.answer == $0.0.target }.count
        note(editors.notes + editors.lastDetail)
        if json {
            try printJSON(BenchmarkJSON(method: "memit", protocol: "batch", requests: rs.count, secondsPerEdit: seconds / Double(rs.count),
                                        reachedTarget: reached, before: EditBenchmark.mean(before), after: EditBenchmark.mean(after),
                                        excludedNeighbourhoodPrompts: excluded))
            return
        }
        print("memit: \(rs.count) facts in one edit of layers \(editors.memitLayers.map(String.init).joined(separator: ",")) in \(String(format: "%.1f", seconds)) s; efficacy score P(new) > P(true) \(Int(es))/\(rs.count); greedy answer = target in \(reached)/\(rs.count)")
        if excluded > 0 { print("locality over the neighbourhood prompts that name no other edited subject (\(excluded) left out)") }
        print(EditTable.render(before: EditBenchmark.mean(before), after: EditBenchmark.mean(after), answers: false))
    }
}

/// An edit whose target is not the model's greedy continuation afterwards.
struct EditFailed: Error, CustomStringConvertible {
    var method: String, target: String, answer: String, efficacy: Double
    var description: String {
        "the \(method) edit failed: the model continues with \"\(answer)\" instead of \"\(target)\" (target-token accuracy \(String(format: "%.3f", efficacy))); nothing written (--allow-failed writes it anyway)"
    }
}

struct SingleEditJSON: Encodable {
    var method: String
    var weights: [String]
    var seconds: Double
    var updateNorm: Double
    var updateMaxAbs: Double
    var before: EditScores
    var after: EditScores
    var reachedTarget: Bool
    var output: String?
}

struct BenchmarkJSON: Encodable {
    var method: String
    var `protocol`: String
    var requests: Int
    var secondsPerEdit: Double
    var reachedTarget: Int
    var before: EditScores
    var after: EditScores
    /// MEMIT's batch: neighbourhood prompts naming another edited subject, left out of locality.
    var excludedNeighbourhoodPrompts: Int? = nil
}

enum EditTable {
    static func render(before: EditScores, after: EditScores, answers: Bool = true) -> String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "-" }
        var rows: [(String, String, String)] = [
            ("efficacy (token acc)", f(before.efficacy), f(after.efficacy)),
            ("P(target) per token", f(before.efficacyProbability), f(after.efficacyProbability)),
            ("paraphrase (token acc)", f(before.paraphrase), f(after.paraphrase)),
            ("locality (kept tokens)", f(before.locality), f(after.locality)),
        ]
        if answers { rows.append(("greedy answer", "\"\(before.answer)\"", "\"\(after.answer)\"")) }
        let w0 = rows.map(\.0.count).max()!, w1 = max(rows.map(\.1.count).max()!, 6)
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        var out = pad("metric", w0) + "  " + pad("before", w1) + "  after\n"
        for r in rows { out += pad(r.0, w0) + "  " + pad(r.1, w1) + "  " + r.2 + "\n" }
        return String(out.dropLast())
    }
}
