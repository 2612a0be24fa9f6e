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
        Face folder, written atomically). ROME needs the subject (--subject, else the last capitalised \
        words of the prompt); with --stats-corpus it uses key statistics C = E[kkᵀ] from that text \
        (cached in --stats-cache), else C = I. MEND needs a trained --editor (weightsmith train-editor). \
        With --requests FILE (JSONL edit records) instead of --prompt/--target, runs the single-edit \
        protocol on every record (edit, score, restore) and prints the mean scores; nothing is written.
        """)

    enum Method: String, ExpressibleByArgument, CaseIterable { case rome, ft, mend, memit }

    @Argument(help: "A model reference: a Hugging Face folder, a .safetensors file, a .gguf file, a PEFT adapter (merged onto its base), BASE+ADAPTER, BASE+DELTA, or org/name[@revision] from the local Hugging Face cache.") var model: String
    @Option(help: "The base of an adapter, task vector or sparse delta given as MODEL.") var base: String?
    @Option(name: .long, help: "The prompt (or a template with {} for the subject).") var prompt: String?
    @Option(name: .long, help: "The new continuation, with its leading space.") var target: String?
    @Option(name: .long, help: "Score the method on these JSONL edit records instead (nothing is written).") var requests: String?
    @Option(name: .long, help: "The subject (default: the last capitalised words of the prompt).") var subject: String?
    @Option(name: .long, help: "rome, ft (FT-L), mend or memit (with --requests: all records in one edit; needs --stats-corpus).") var method: Method = .rome
    @Option(name: .long, help: "Layer whose MLP output matrix is edited (default: 5/32 of the layers, rounded down).") var layer: Int?
    @Option(name: .long, parsing: .singleValue, help: "A paraphrase prompt (repeatable).") var paraphrase: [String] = []
    @Option(name: .long, help: "Locality prompts: one per line, or JSONL with \"prompt\".") var localityPrompts: String?
    @Option(name: .shortAndLong, help: "Output folder (must not exist or be empty; never an input or inside one).") var output: String?
    @Option(name: .long, help: "MEND: the trained editor (.safetensors from train-editor).") var editor: String?

    @Option(name: .long, help: "ROME: text corpus for the key statistics (default: none, C = I).") var statsCorpus: String?
    @Option(name: .long, help: "ROME: tokens of the corpus used for the statistics.") var statsTokens = 20_000
    @Option(name: .long, help: "ROME: statistics cache folder (default: ~/.cache/weightsmith).") var statsCache: String?
    @Option(name: .long, help: "ROME: value optimisation steps.") var steps: Int?
    @Option(name: .long, help: "ROME: context templates sampled from the model.") var contexts = 5
    @Option(name: .long, help: "ROME: Adam learning rate of the value offset.") var valueLr: Float = 0.5
    @Option(name: .long, help: "Clamp of the value offset: ROME in multiples of |W k| (default 4); MEMIT in multiples of the residual stream's norm at the subject (default 0.75, the reference's).") var clampNorm: Float?
    @Option(name: .long, help: "ROME: weight of the essence term, KL at the subject in \"{subject} is a\" (0: off).") var klFactor: Float = 0.0625
    @Option(name: .long, help: "FT-L: Adam learning rate.") var lr: Float = 5e-4
    @Option(name: .long, help: "FT-L: L-infinity bound on the change of each weight (0: none).") var normBound: Float = 5e-4
    @Option(name: .long, help: "Seed (ROME context samples).") var seed: UInt64 = 0
    @Option(name: .long, help: "MEMIT: comma-separated layers (default: the ROME layer and the two below it).") var layers: String?
    @Option(name: .long, help: "MEMIT: λ, weight of the preserved keys (mom2_update_weight).") var updateWeight: Double = 15_000
    @Option(name: .long, help: "Keep only the records of this split (train, validation, test).") var split: String?

    @Flag(name: .long, help: "Replace OUT when it is a previous weightsmith output.") var force = false
    @OptionGroup var nonFinite: NonFiniteOption

    func run() throws {
        // The output path is checked (and locked) before anything is loaded or computed; see OutputFolder.
        var out: OutputFolder? = nil
        if requests == nil {
            guard prompt != nil, target != nil else { throw ValidationError("give --prompt and --target (or --requests FILE)") }
            guard let output else { throw ValidationError("give -o OUT for the edited model") }
            let inputs = [model, editor, statsCorpus, localityPrompts].compactMap { $0 }.map { URL(fileURLWithPath: $0) }
            out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: inputs, force: force, command: "edit")
        }
        let loaded = try PretrainedModel(path: model, base: base)
        if !nonFinite.allowNonFinite { try loaded.model.requireFiniteWeights() }
        let m = loaded.model, tok = loaded.tokenizer
        let L = m.config.layers
        let chosenLayer = layer ?? min(L - 1, L * 5 / 32)
        var detail = ""
        let mend = try editor.map { try MendEditor.load(URL(fileURLWithPath: $0)) }
        if method == .mend && mend == nil { throw ValidationError("--method mend needs --editor PATH (weightsmith train-editor)") }
        var statistics: KeyStatistics? = nil
        if method == .rome, let corpus = statsCorpus {
            let text: String
            do { text = try String(contentsOfFile: corpus, encoding: .utf8) } catch { throw ValidationError("cannot read \(corpus): \(error)") }
            let lines = text.split(separator: "\n").map(String.init)
            let dir = statsCache.map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/weightsmith")
            let ts = Date()
            let (stats, cached) = try KeyStatistics.cached(in: dir, model: m, tokenizer: tok, texts: lines, layer: chosenLayer, maxTokens: statsTokens)
            statistics = stats
            detail += String(format: "key statistics: %d tokens, %@ (%.1f s)\n", stats.tokens, cached ? "from cache" : "collected and cached", Date().timeIntervalSince(ts))
        } else if method == .rome {
            // Measured on SmolLM2-135M (France -> Rome, layer 4): with C = I "The capital of
            // Germany is" also answered Rome; with statistics from a 20k-token corpus it kept Berlin.
            detail += "key statistics: none (C = I); the edit may spread to other subjects, --stats-corpus TEXT makes it specific\n"
        }
        var lastLoss = ""
        func compute(_ request: EditRequest) throws -> [WeightEdit] {
            switch method {
            case .rome:
                var s = RomeSettings(layer: chosenLayer)
                s.contextTemplates = contexts; s.seed = seed; s.statistics = statistics
                s.learningRate = valueLr; s.clampNorm = clampNorm ?? 4; s.klFactor = klFactor
                if let st = steps { s.steps = st }
                let r = try RomeEditor.edit(model: m, tokenizer: tok, request: request, settings: s)
                lastLoss = "subject \"\(request.resolvedSubject)\", key at token \(r.subjectToken); value loss \(fmt(r.losses.first)) -> \(fmt(r.losses.last)) in \(r.losses.count) steps\n"
                    + "essence: KL(before || after) at the subject in \"\(r.essencePrompt)\" = \(fmt(r.essenceKL))\n"
                return [r.edit]
            case .ft:
                let r = try FineTuneEditor.edit(model: m, tokenizer: tok, request: request,
                                                settings: FineTuneSettings(layer: chosenLayer, learningRate: lr, normBound: normBound > 0 ? normBound : nil))
                lastLoss = "loss \(fmt(r.losses.first)) -> \(fmt(r.losses.last)) in \(r.losses.count) steps\n"
                return [r.edit]
            case .mend:
                return try mend!.edits(for: request, model: m, tokenizer: tok)
            case .memit:
                throw ValidationError("--method memit needs --requests FILE")
            }
        }

        if method == .memit {
            guard let file = requests else { throw ValidationError("--method memit needs --requests FILE (many facts in one edit)") }
            guard let corpus = statsCorpus else { throw ValidationError("--method memit needs --stats-corpus TEXT (the key covariance)") }
            var rs = try EditRequest.readJSONL(URL(fileURLWithPath: file))
            if let split { rs = rs.filter { $0.split == split } }
            guard !rs.isEmpty else { throw ValidationError("no records in \(file)\(split.map { " with split \($0)" } ?? "")") }
            let ls = try layers.map { try $0.split(separator: ",").map { guard let v = Int($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("bad --layers \(layers!)") }; return v } }
                ?? Array(max(0, chosenLayer - 2)...chosenLayer)
            var ms = MemitSettings(layers: ls)
            ms.updateWeight = updateWeight; ms.seed = seed; ms.contextTemplates = contexts; ms.klFactor = klFactor
            if let st = steps { ms.steps = st }
            if let c = clampNorm { ms.clampNorm = c }
            ms.learningRate = valueLr
            let text = try String(contentsOfFile: corpus, encoding: .utf8).split(separator: "\n").map(String.init)
            let dir = statsCache.map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/weightsmith")
            for l in ls { ms.statistics[l] = try KeyStatistics.cached(in: dir, model: m, tokenizer: tok, texts: text, layer: l, maxTokens: statsTokens).0 }
            let scorer = EditScorer(model: m, tokenizer: tok)
            let refs = try rs.map { $0.localityPrompts.isEmpty ? nil : try scorer.localityReference($0.localityPrompts) }
            let before = try zip(rs, refs).map { try scorer.score($0.0, locality: $0.1) }
            let t0 = Date()
            let progress = ProgressLine(label: "memit")
            let r = try MemitEditor.edit(model: m, tokenizer: tok, requests: rs, settings: ms) { progress.update($0, $1) }
            progress.finish()
            let seconds = Date().timeIntervalSince(t0)
            for e in r.edits { try e.apply(to: m) }
            let after = try zip(rs, refs).map { try scorer.score($0.0, locality: $0.1) }
            var es = 0
            for q in rs {
                if let gt = q.groundTruth {
                    let (p, t) = try scorer.encode(prompt: q.text, target: q.target)
                    let (_, o) = try scorer.encode(prompt: q.text, target: gt)
                    if try scorer.targetScore(prompt: p, target: t).meanLogProb > scorer.targetScore(prompt: p, target: o).meanLogProb { es += 1 }
                }
            }
            print("memit: \(rs.count) facts in one edit of layers \(ls.map(String.init).joined(separator: ",")) in \(String(format: "%.1f", seconds)) s; efficacy score P(new) > P(true) \(es)/\(rs.count); greedy answer = target in \(zip(rs, after).filter { $0.1.answer == $0.0.target }.count)/\(rs.count)")
            print(EditTable.render(before: EditBenchmark.mean(before), after: EditBenchmark.mean(after), answers: false))
            return
        }
        if let file = requests {
            var rs = try EditRequest.readJSONL(URL(fileURLWithPath: file))
            if let split { rs = rs.filter { $0.split == split } }
            let r = try EditBenchmark.run(model: m, tokenizer: tok, requests: rs, method: compute)
            print(detail, terminator: "")
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
        let scorer = EditScorer(model: m, tokenizer: tok)
        let reference = loc.isEmpty ? nil : try scorer.localityReference(loc)
        let before = try scorer.score(request, locality: reference)
        let t0 = Date()
        let edits = try compute(request)
        let seconds = Date().timeIntervalSince(t0)
        for e in edits { try e.apply(to: m) }
        let after = try scorer.score(request, locality: reference)
        let norm = edits.reduce(0.0) { $0 + $1.frobeniusNorm * $1.frobeniusNorm }.squareRoot()
        let what = edits.count == 1 ? edits[0].weight : "\(edits.count) matrices"
        print("\(method.rawValue) edit of \(what) in \(String(format: "%.2f", seconds)) s: |dW|_F = \(String(format: "%.4g", norm)), max |dW| = \(String(format: "%.3g", edits.map(\.maxAbs).max() ?? 0))")
        print(detail + lastLoss, terminator: "")
        print(EditTable.render(before: before, after: after))
        let source = loaded.directory ?? (URL(fileURLWithPath: model).hasDirectoryPath || FileManager.default.fileExists(atPath: model + "/config.json")
            ? URL(fileURLWithPath: model) : URL(fileURLWithPath: model).deletingLastPathComponent())
        try out.write { staging in
            try m.writeFolder(into: staging, sideFilesFrom: source, metadata: ["format": "pt", "weightsmith.edit": "\(method.rawValue) \(what)"],
                             allowNonFinite: nonFinite.allowNonFinite)
        }
        print("wrote \(output)")
    }

    func fmt(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
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
