import ArgumentParser
import Checkpoints
import Foundation
import Grafting
import Transformer
import Tokenizers

struct GraftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graft",
        abstract: "Graft the few entries of a fine-tune that carry its skill onto the base (Panigrahi et al. 2023), at one or more sparsities.",
        discussion: """
        The magnitude graft keeps the global top-k entries of |TUNED − BASE| over the eligible tensors \
        (every tensor but embeddings, lm_head and norms; --include REGEX to choose), k = round(sparsity × \
        eligible parameters); ties go to earlier tensors and lower indices. With --held-out, each graft is \
        scored like `weightsmith eval` (mean NLL, greedy exact match) and the table shows the share of the \
        fine-tune's gain it keeps. OUT (written atomically) holds the graft of one sparsity: the smallest \
        keeping at least 95% of the gain (with --held-out; else the first listed; --pick to choose) as a \
        Hugging Face folder (config.json, tokenizer files, model.safetensors), graft.safetensors (the mask \
        as a sparse delta: tuned − base at the kept entries), graft_report.json and README.md. \
        With --train DATA, that graft is the base patch of the trained mask of the paper (sigmoid relaxation \
        γ(S) = b + (1 − 2b) σ(S − c), gradient steps on S through the model at θ(γ)); the rounded mask is \
        kept when train + validation exact match improves, and it is what OUT then holds. \
        --mask MASK (a graft output folder, its graft.safetensors, or any sparse delta: the entries it lists) \
        grafts those entries instead, as a "saved" row of the table; with --train it is the base patch.

        Several tasks (--tuned NAME=DIR, repeated; one --sparsity): each task's magnitude graft (or its --mask NAME=MASK, e.g. a trained graft saved by an earlier run) is stitched into one model, Localize-and-Stitch (He et al. 2024, §3): θ = θ_base + Σ_t (m_t / max(1, Σ_s m_s)) ⊙ τ_t, each kept entry the task's value, entries kept by several tasks the mean. With --held-out NAME=FILE, the table scores each task's base, fine-tune, own graft and the stitched model. OUT holds the stitched model, graft-NAME.safetensors per task, stitch_report.json and README.md.
        """)

    @Option(name: .long, help: "The base model (Hugging Face folder).") var base: String
    @Option(name: .customLong("tuned"), help: "The fine-tune of the base (same architecture); repeat as --tuned NAME=DIR to graft several tasks and stitch them (Localize-and-Stitch).") var tunedArgs: [String] = []
    @Option(name: .long, help: "Comma-separated fractions of the eligible parameters to graft, e.g. 0.0001,0.001,0.01.") var sparsity = "0.0001"
    @Option(name: .customLong("held-out"), help: "Held-out JSONL {\"prompt\", \"completion\"} pairs to score the grafts on (with several tasks: NAME=FILE per task).") var heldOutArgs: [String] = []
    @Option(name: .long, help: "Regular expression: only tensors whose name matches are eligible (replaces the default rule).") var include: String?
    @Option(name: .long, help: "Write this sparsity (one of --sparsity) instead of the automatic choice.") var pick: Double?
    @Option(name: .shortAndLong, help: "Output folder (must not exist or be empty; never an input or inside one).") var output: String
    @Flag(name: .long, help: "Replace OUT if it is a previous weightsmith output.") var force = false
    @Flag(name: .long, help: "Print the report as JSON.") var json = false
    @Flag(help: "Check the models, the data, the mask and OUT, print the grafts that would be scored and the files that would be written, then stop (nothing scored, trained or written).") var dryRun = false

    @Option(name: .customLong("mask"), help: "Apply a saved mask instead of choosing one: a graft output folder, its graft.safetensors, or any sparse delta (its entries); with --train, the base patch. With several tasks: NAME=MASK for a task.") var maskArgs: [String] = []
    @Option(name: .long, help: "Train the mask on these JSONL pairs (Panigrahi et al. 2023, §3), starting from the magnitude graft of the chosen sparsity.") var train: String?
    @Option(name: .long, help: "Trained mask: gradient steps.") var steps = 10
    @Option(name: .long, help: "Trained mask: learning rate on the mask logits S (the paper's 1e7).") var lr = 1e7
    @Option(name: .long, help: "Trained mask: sigmoid bias c in γ = b + (1 − 2b) σ(S − c).") var sigmoidBias = 10.0
    @Option(name: .long, help: "Trained mask: validation JSONL (default: a seeded 20% of --train).") var validation: String?
    @Option(name: .long, help: "Trained mask: examples per gradient micro-batch (at most 128 micro-batches per step).") var batchSize = 8
    @Option(name: .long, help: "Trained mask: seed (S initialisation, validation split).") var seed: UInt64 = 0

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var nonFinite: NonFiniteOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    /// Single-task form: the one --tuned, --held-out and --mask.
    var tuned: String { tunedArgs[0] }
    var heldOut: String? { heldOutArgs.first }
    var mask: String? { maskArgs.first }

    /// Several tasks: more than one --tuned, or one given as NAME=DIR.
    var isMultiTask: Bool { tunedArgs.count > 1 || tunedArgs.contains { Self.namedValue($0) != nil } }

    /// NAME=VALUE when NAME is a plain name (no path separator) and the whole is not an existing path.
    static func namedValue(_ s: String) -> (name: String, value: String)? {
        guard let eq = s.firstIndex(of: "="), !FileManager.default.fileExists(atPath: s) else { return nil }
        let name = String(s[..<eq]), value = String(s[s.index(after: eq)...])
        guard !name.isEmpty, !name.contains("/"), !value.isEmpty else { return nil }
        return (name, value)
    }

    func run() throws {
        try threading.apply()
        try reportingErrors {
            guard !tunedArgs.isEmpty else { throw ValidationError("give the fine-tune with --tuned DIR (or several as --tuned NAME=DIR)") }
            if isMultiTask { try graftTasks() } else {
                if heldOutArgs.count > 1 || maskArgs.count > 1 {
                    throw ValidationError("--held-out and --mask are given once for one fine-tune (several tasks: --tuned NAME=DIR with --held-out NAME=FILE)")
                }
                try graft()
            }
        }
    }

    func graft() throws {
        let sparsities = try sparsity.split(separator: ",").map { part -> Double in
            guard let v = Double(part.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--sparsity: \"\(part)\" is not a number") }
            return v
        }
        guard !sparsities.isEmpty else { throw ValidationError("--sparsity: give at least one value") }
        guard Set(sparsities).count == sparsities.count else { throw ValidationError("--sparsity: a value is repeated") }
        for s in sparsities where !(s > 0 && s <= 1) { throw GraftError.invalidSparsity(value: s) }
        if base.hasSuffix(".gguf") || tuned.hasSuffix(".gguf") {
            throw ValidationError("graft writes a Hugging Face folder and reads Hugging Face folders: convert a GGUF first (weightsmith convert-gguf)")
        }
        let eligibility = try GraftEligibility(include: include)
        let inputs = [base, tuned, heldOut, train, validation, mask].compactMap { $0 }.map { URL(fileURLWithPath: $0) }
        let out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: inputs, force: force, command: "graft")

        let baseModel = try PretrainedModel(path: base)
        let tunedModel = try TransformerModel.load(path: tuned)
        let pair = try GraftPair(base: baseModel.model, tuned: tunedModel, basePath: base, tunedPath: tuned, eligibility: eligibility)
        let tok = baseModel.tokenizer
        let heldOutPairs = try heldOut.map { path in
            try PromptCompletion.readJSONL(URL(fileURLWithPath: path)).map { (tok.encode($0.prompt), tok.encode($0.completion, addSpecialTokens: false)) }
        }
        if dryRun { return try describe(pair: pair, sparsities: sparsities, heldOut: heldOutPairs, tokenizer: tok, maxLength: baseModel.model.config.maxPositions) }
        let quiet = self.quiet
        let log: (String) -> Void = { msg in if !quiet { FileHandle.standardError.write(Data("graft: \(msg)\n".utf8)) } }
        let quietLog: (String) -> Void = isatty(2) != 0 ? log : { _ in }
        let result = try GraftTable.run(pair: pair, base: baseModel.model, tuned: tunedModel, sparsities: sparsities,
                                        heldOut: heldOutPairs, heldOutName: heldOut, pick: pick, progress: quietLog)
        var report = result.report
        var mask = result.chosenMask
        if let saved = self.mask {
            let file = try SparseDeltaFile(locating: saved)
            mask = try GraftMask(pair: pair, delta: file, path: saved)
            report = try GraftTable.appendSaved(report: report, pair: pair, base: baseModel.model, mask: mask, heldOut: heldOutPairs, source: saved)
        }

        if let train {
            let maxLength = baseModel.model.config.maxPositions
            let trainData = try TrainingData.load(URL(fileURLWithPath: train), tokenizer: tok, maxLength: maxLength)
            var trainSet = trainData, validationSet: [TrainingExample]
            if let validation {
                validationSet = try TrainingData.load(URL(fileURLWithPath: validation), tokenizer: tok, maxLength: maxLength)
            } else {
                (trainSet, validationSet) = TrainingData.split(trainData, heldOutFraction: 0.2, seed: seed)
            }
            var settings = TrainedGraft.Settings(steps: steps)
            settings.learningRate = lr; settings.sigmoidBias = sigmoidBias; settings.batchSize = batchSize; settings.seed = seed
            let trained = try TrainedGraft.train(pair: pair, baseModel: baseModel.model, basePatch: mask, train: trainSet,
                                                 validation: validationSet, settings: settings, progress: quietLog)
            mask = trained.mask
            report = try GraftTable.appendTrained(report: report, pair: pair, base: baseModel.model, tuned: tunedModel, mask: mask,
                                                  heldOut: heldOutPairs, summary: trained.summary)
        }

        if json {
            print(try report.json())
        } else {
            print("\(report.method) graft of \(tuned) onto \(base): \(report.eligibleParameters) eligible parameters in \(report.eligibleTensors) tensors (\(report.eligibility))")
            print(report.table())
            let zeros = mask.zeroDifferences(pair)
            print("writing \(report.training != nil ? "the trained mask" : self.mask != nil ? "the saved mask" : "sparsity \(String(format: "%g", report.chosenSparsity))") (k = \(mask.count)\(zeros > 0 ? ", \(zeros) of them with τ = 0" : "")): \(report.chosenReason)")
        }

        let source = baseModel.directory
        let meta = ["format": "pt", "weightsmith.graft": "\(report.method) sparsity \(report.chosenSparsity) k \(mask.count)"]
        let deltaMeta = ["weightsmith.graft.method": report.method, "weightsmith.graft.sparsity": "\(report.chosenSparsity)",
                         "weightsmith.graft.k": "\(mask.count)", "weightsmith.graft.eligible": "\(pair.eligibleCount)",
                         "weightsmith.graft.base": base, "weightsmith.graft.tuned": tuned]
        try out.write { staging in
            try mask.withApplied(to: baseModel.model.parameters, pair: pair) {
                try baseModel.model.save(to: staging, sideFilesFrom: source, metadata: meta, allowNonFinite: nonFinite.allowNonFinite)
            }
            try mask.writeSparseDelta(pair, to: staging.appendingPathComponent("graft.safetensors"), metadata: deltaMeta,
                                     allowNonFinite: nonFinite.allowNonFinite)
            try Data((try report.json() + "\n").utf8).write(to: staging.appendingPathComponent("graft_report.json"))
            let files = (try FileManager.default.contentsOfDirectory(atPath: staging.path)).filter { !$0.hasPrefix(".") }.sorted() + ["README.md"]
            try Data(report.modelCard(files: files).utf8).write(to: staging.appendingPathComponent("README.md"))
        }
        if !json { print("wrote \(output)") }
    }

    /// --dry-run: the pair, the sparsities (k each), the saved mask and the training data checked
    /// as the run checks them; the grafts that would be scored and OUT's files.
    func describe(pair: GraftPair, sparsities: [Double], heldOut: [([Int], [Int])]?, tokenizer tok: BPETokenizer, maxLength: Int) throws {
        if let pick, !sparsities.contains(pick) { throw GraftError.pickNotRequested(pick: pick, requested: sparsities) }
        let ks = try sparsities.map { try pair.keptCount(sparsity: $0) }
        print("magnitude graft of \(tuned) onto \(base): \(pair.eligibleCount) eligible parameters in \(pair.tensors.count) tensors (\(pair.eligibility))")
        print("sparsities: " + zip(sparsities, ks).map { "\(String(format: "%g", $0)) (k = \($1))" }.joined(separator: ", "))
        if let heldOut, let heldOutPath = self.heldOut { print("would score every graft on \(heldOut.count) held-out pairs of \(heldOutPath)") }
        if let saved = mask {
            let m = try GraftMask(pair: pair, delta: try SparseDeltaFile(locating: saved), path: saved)
            print("saved mask \(saved): k = \(m.count)")
        }
        if let train {
            let data = try TrainingData.load(URL(fileURLWithPath: train), tokenizer: tok, maxLength: maxLength)
            let validationText = try validation.map { v in
                "\(try TrainingData.load(URL(fileURLWithPath: v), tokenizer: tok, maxLength: maxLength).count) validation examples of \(v)"
            } ?? "a seeded 20% of them for validation"
            print("would train the mask \(steps) steps (lr \(String(format: "%g", lr)), batch \(batchSize)) on \(data.count) examples of \(train), \(validationText)")
        }
        let which = train != nil ? "the trained mask" : mask != nil ? "the saved mask"
            : pick.map { "sparsity \(String(format: "%g", $0))" } ?? (heldOut != nil ? "the smallest sparsity keeping 95% of the gain" : "sparsity \(String(format: "%g", sparsities[0]))")
        print("would write \(output): \(which) as config.json, tokenizer files, model.safetensors, graft.safetensors, graft_report.json and README.md")
    }
}
