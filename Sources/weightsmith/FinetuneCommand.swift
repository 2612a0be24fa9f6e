import ArgumentParser
import Checkpoints
import Foundation
import Grafting
import Tensors
import Transformer

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a model on JSONL prompt/completion pairs or plain text: full, LoRA (PEFT adapter), sparse (masked) or LT-SFT (a sparse delta).",
        discussion: """
        Writes OUT as a Hugging Face folder (full, sparse; sparse also writes sparse_mask.safetensors) or a \
        PEFT adapter folder (lora). Prints a progress line (step, loss, learning rate, tokens/s, ETA) and the \
        held-out loss (from --eval-data, else a --holdout fraction of DATA) periodically and at the end. \
        Deterministic for a given --seed. OUT is checked before any work (never the model's folder, inside it \
        or above it; an existing non-empty OUT only with --force, and only a previous weightsmith output) and \
        appears atomically when training is done.
        --mode lt-sft (Ansell et al. 2022, §3): phase 1 fine-tunes every eligible entry (--full-steps, default \
        --steps), the --density fraction of eligible entries that moved most is selected (one global threshold), \
        the model is reset and phase 2 fine-tunes only those entries with a fresh optimizer (--steps); the \
        eligible tensors are the graft's (all but embeddings, lm_head and norms; --include REGEX to choose), the \
        others stay frozen. OUT then holds only sft.safetensors, the sparse delta (phase 2 − base at the selected \
        entries), and README.md: use it as BASE+OUT (eval, generate, merge, ...) or as a term of `compose`.
        """)

    enum Mode: String, ExpressibleByArgument, CaseIterable { case full, lora, sparse, ltSft = "lt-sft" }

    @Argument(help: "A model reference: a Hugging Face folder, a .safetensors file, a .gguf file, a PEFT adapter (merged onto its base), BASE+ADAPTER, BASE+DELTA, or org/name[@revision] from the local Hugging Face cache.")
    var model: String
    @Option(help: "The base of an adapter, task vector or sparse delta given as MODEL.") var base: String?
    @Argument(help: "Training data: a .jsonl file of {\"prompt\", \"completion\"} objects (loss on completions), or plain text.")
    var data: String
    @Option(name: .long, help: "full, lora, sparse or lt-sft.")
    var mode: Mode = .full
    @Option(name: .shortAndLong, help: "Output folder (must not exist or be empty).")
    var output: String
    @Flag(name: .long, help: "Replace OUT when it is a previous weightsmith output.")
    var force = false

    @OptionGroup var nonFinite: NonFiniteOption

    @Option(name: .long, help: "Optimizer steps.") var steps = 100
    @Option(name: .long, help: "Examples per micro-batch.") var batchSize = 8
    @Option(name: .long, help: "Micro-batches per optimizer step (gradient accumulation).") var accumulation = 1
    @Option(name: .long, help: "Peak learning rate (default: 1e-4 full and lt-sft, 1e-3 lora and sparse; lt-sft: both phases).") var lr: Double?
    @Option(name: .long, help: "Linear warm-up steps.") var warmup = 0
    @Option(name: .long, help: "Schedule after warm-up: constant, linear or cosine.") var schedule = "cosine"
    @Option(name: .long, help: "Final learning rate as a fraction of the peak.") var minLrRatio = 0.0
    @Option(name: .long, help: "AdamW weight decay (matrices only).") var weightDecay = 0.0
    @Option(name: .long, help: "Clip the global gradient norm (0: no clipping).") var clip = 1.0
    @Option(name: .long, help: "full, sparse, lt-sft (both phases): L1 pull towards the starting weights, λ·Σ|θ − θ_start| / N added to the loss (LT-SFT's full_l1_reg/sparse_l1_reg; 0.1 in Ansell et al.'s language SFTs).") var l1Pull = 0.0
    @Option(name: .long, help: "Seed (data order, LoRA init, random masks).") var seed: UInt64 = 0
    @Option(name: .customLong("max-length"), help: "Maximum tokens per example (plain text: window length; default 128, or the context length when shorter).") var maxLengthOption: Int?

    @Option(name: .long, help: "Held-out data (same format as DATA).") var evalData: String?
    @Option(name: .long, help: "Fraction of DATA held out when --eval-data is not given.") var holdout = 0.1
    @Option(name: .long, help: "Held-out loss every N steps (0: at the end only).") var evalEvery = 0
    @Option(name: .long, help: "Print a progress line every N steps (default: steps / 10).") var logEvery: Int?

    @Option(name: .long, help: "LoRA rank.") var rank = 8
    @Option(name: .long, help: "LoRA alpha.") var alpha = 16.0
    @Flag(name: .long, help: "rsLoRA scaling alpha / sqrt(r).") var rslora = false
    @Option(name: .long, help: "LoRA target modules, comma-separated (the default means every linear layer of the family's block, e.g. qkv_proj,o_proj,gate_up_proj,down_proj for Phi-3).") var targetModules = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"

    @Option(name: .long, help: "Sparse mode: a mask safetensors file (tensor names of the model, nonzero = trainable).") var mask: String?
    @Option(name: .long, help: "Sparse mode without --mask: fraction of entries trained, chosen at random (seeded).") var maskDensity: Double?
    @Option(name: .long, help: "Sparse mode without --mask: regex selecting the masked tensors (default: all matrices).") var maskTensors: String?

    @Option(name: .long, help: "lt-sft: fraction of the eligible entries in the delta (default 0.01, the value of Ansell et al. 2022).") var density: Double?
    @Option(name: .long, help: "lt-sft: phase 1 (full) steps (default: --steps).") var fullSteps: Int?
    @Option(name: .long, help: "lt-sft: peak learning rate of phase 2 (default: --lr).") var sparseLr: Double?
    @Option(name: .long, help: "lt-sft: regular expression: only tensors whose name matches are eligible (replaces the default rule).") var include: String?

    @Option(name: .long, help: "Saved dtype for full/sparse: f32, bf16 or f16.") var dtype = "f32"

    @Flag(help: "Check the model, the data and OUT, print what would be trained and written, then stop (nothing is trained or written).")
    var dryRun = false
    @Flag(help: "Print the result as one JSON object on stdout (progress lines go to stderr).")
    var json = false

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        if mode != .ltSft {
            for (given, flag) in [(density != nil, "--density"), (fullSteps != nil, "--full-steps"), (sparseLr != nil, "--sparse-lr"), (include != nil, "--include")] where given {
                throw ValidationError("\(flag) is an option of --mode lt-sft")
            }
        }
        guard let kind = LearningRateSchedule.Kind(rawValue: schedule) else { throw ValidationError("--schedule must be constant, linear or cosine") }
        guard let saveType = ["f32": DType.f32, "bf16": .bf16, "f16": .f16][dtype] else { throw ValidationError("--dtype must be f32, bf16 or f16") }
        // The output path is checked (and locked) before the model is loaded or trained.
        let inputs = [model, data, evalData, mask].compactMap { $0 }.map { URL(fileURLWithPath: $0) }
        let out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: inputs, force: force, command: "finetune --mode \(mode.rawValue)")
        let loaded = try PretrainedModel(path: model, base: base)
        if !nonFinite.allowNonFinite { try loaded.model.requireFiniteWeights() }
        let m = loaded.model
        let maxLength = maxLengthOption ?? min(128, m.config.maxPositions)
        guard maxLength <= m.config.maxPositions else {
            throw ValidationError("--max-length \(maxLength) exceeds the model's context length of \(m.config.maxPositions) positions")
        }
        let examples = try TrainingData.load(URL(fileURLWithPath: data), tokenizer: loaded.tokenizer, maxLength: maxLength)
        var train = examples, heldOut: [TrainingExample] = []
        if let evalData {
            heldOut = try TrainingData.load(URL(fileURLWithPath: evalData), tokenizer: loaded.tokenizer, maxLength: maxLength)
        } else {
            (train, heldOut) = TrainingData.split(examples, heldOutFraction: holdout, seed: seed)
        }

        if mode == .lora, model.lowercased().hasSuffix(".gguf"), !quiet {
            // adapter_config.json's base_model_name_or_path must name something PEFT can load.
            FileHandle.standardError.write(Data(("note: the adapter's base_model_name_or_path will be \(model): weightsmith resolves a GGUF base, " +
                "but PEFT loads only a Hugging Face folder or hub id; for PEFT, run `weightsmith convert-gguf \(model) DIR` and point " +
                "base_model_name_or_path at DIR (the adapter's tensor names are Hugging Face names either way)\n").utf8))
        }
        var s = Trainer.Settings(steps: steps)
        s.batchSize = batchSize; s.accumulation = accumulation
        s.learningRate = lr ?? (mode == .full || mode == .ltSft ? 1e-4 : 1e-3)
        s.warmupSteps = warmup; s.schedule = kind; s.minLearningRateRatio = minLrRatio
        s.weightDecay = weightDecay; s.clipNorm = clip > 0 ? clip : nil; s.seed = seed; s.evalEvery = evalEvery
        s.l1Pull = l1Pull
        if dryRun {
            try describe(loaded: loaded, train: train, heldOut: heldOut, settings: s, saveType: saveType)
            return
        }
        if mode == .ltSft {
            guard mask == nil, maskDensity == nil, maskTensors == nil else {
                throw ValidationError("--mode lt-sft chooses its own mask: --mask, --mask-density and --mask-tensors do not apply")
            }
            try lotteryTicket(loaded: loaded, train: train, heldOut: heldOut, settings: s, out: out)
            return
        }

        let trainerMode: Trainer.Mode
        switch mode {
        case .ltSft: preconditionFailure("handled above")
        case .full: trainerMode = .full
        case .lora:
            trainerMode = .lora(LoRAAdapters.Settings(rank: rank, alpha: alpha, rsLoRA: rslora,
                                                      targetModules: targetModules.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }))
        case .sparse:
            if let mask {
                trainerMode = .sparse(try SparseMask(url: URL(fileURLWithPath: mask), model: m))
            } else if let maskDensity {
                trainerMode = .sparse(try SparseMask.random(model: m, density: maskDensity, pattern: maskTensors, seed: seed))
            } else {
                throw ValidationError("--mode sparse needs --mask FILE or --mask-density D")
            }
        }
        let trainer = try Trainer(model: m, mode: trainerMode, settings: s)
        let t0 = Date()
        let lossBefore = heldOut.isEmpty ? nil : try trainer.heldOutLoss(heldOut)
        say("\(mode.rawValue) fine-tuning: \(trainer.trainableCount) trainable of \(m.layout.totalCount) parameters; " +
              "\(train.count) training examples, \(heldOut.count) held out")
        if let lossBefore { say(String(format: "held-out loss before: %.4f", lossBefore)) }
        let every = max(1, logEvery ?? steps / 10)
        var last: (loss: Double, heldOut: Double?, tokensPerSecond: Double) = (.nan, nil, 0)
        try trainer.train(train, heldOut: heldOut) { p in
            last.loss = p.loss; last.tokensPerSecond = p.tokensPerSecond
            if let h = p.heldOutLoss { last.heldOut = h }
            guard p.step % every == 0 || p.step == p.totalSteps || p.heldOutLoss != nil else { return }
            var line = String(format: "step %d/%d  loss %.4f  lr %.2e  %.0f tok/s  ETA %@", p.step, p.totalSteps, p.loss, p.learningRate,
                              p.tokensPerSecond, Self.clock(p.eta))
            if let h = p.heldOutLoss { line += String(format: "  held-out %.4f", h) }
            say(line)
        }

        let baseDir = loaded.directory
        try out.write { staging in
            switch trainerMode {
            case .lora:
                try trainer.lora!.write(into: staging, baseModelNameOrPath: model, allowNonFinite: nonFinite.allowNonFinite)
            case let .sparse(mk):
                try m.writeFolder(into: staging, dtype: saveType, sideFilesFrom: baseDir, allowNonFinite: nonFinite.allowNonFinite)
                try mk.write(to: staging.appendingPathComponent("sparse_mask.safetensors"))
            case .full:
                try m.writeFolder(into: staging, dtype: saveType, sideFilesFrom: baseDir, allowNonFinite: nonFinite.allowNonFinite)
            }
        }
        if json {
            try printJSON(FinetuneJSON(output: output, mode: mode.rawValue, steps: steps, trainableParameters: trainer.trainableCount,
                                       parameters: m.layout.totalCount, trainExamples: train.count, heldOutExamples: heldOut.count,
                                       finalTrainingLoss: last.loss, heldOutLossBefore: lossBefore, heldOutLossAfter: last.heldOut,
                                       tokensPerSecond: last.tokensPerSecond, seconds: Date().timeIntervalSince(t0), files: Self.files(in: output)))
        } else {
            print("wrote \(output)")
        }
    }

    /// --dry-run: what would be trained (trainable entries, examples, tokens, steps) and written.
    func describe(loaded: PretrainedModel, train: [TrainingExample], heldOut: [TrainingExample], settings s: Trainer.Settings,
                  saveType: DType) throws {
        let m = loaded.model
        let total = m.layout.totalCount
        let trainable: Int
        let files: [String]
        switch mode {
        case .full:
            trainable = total
            files = ["config.json", "model.safetensors (\(ByteSize.format(total * saveType.byteSize)))", "tokenizer files"]
        case .lora:
            let a = try LoRAAdapters(model: m, settings: LoRAAdapters.Settings(rank: rank, alpha: alpha, rsLoRA: rslora,
                                                                               targetModules: targetModules.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }),
                                     seed: seed)
            trainable = a.parameters.layout.totalCount
            files = ["adapter_config.json", "adapter_model.safetensors (\(ByteSize.format(trainable * 4)))"]
        case .sparse:
            let mk: SparseMask
            if let mask { mk = try SparseMask(url: URL(fileURLWithPath: mask), model: m) } else if let maskDensity {
                mk = try SparseMask.random(model: m, density: maskDensity, pattern: maskTensors, seed: seed)
            } else { throw ValidationError("--mode sparse needs --mask FILE or --mask-density D") }
            trainable = (0..<mk.values.layout.totalCount).reduce(0) { $0 + (mk.values.base[$1] != 0 ? 1 : 0) }
            files = ["config.json", "model.safetensors (\(ByteSize.format(total * saveType.byteSize)))", "sparse_mask.safetensors", "tokenizer files"]
        case .ltSft:
            let eligibility = try GraftEligibility(include: include)
            let eligible = m.layout.entries.filter { eligibility.isEligible($0.name) }.reduce(0) { $0 + $1.count }
            let k = Int((Double(eligible) * (density ?? 0.01)).rounded())
            trainable = eligible
            files = ["sft.safetensors (a sparse delta of about \(k) entries, \(ByteSize.format(k * 12)))", "README.md"]
        }
        let tokens = train.reduce(0) { $0 + $1.target.count }
        let perStep = s.batchSize * s.accumulation
        print("finetune --mode \(mode.rawValue) of \(model): \(trainable) of \(total) parameters trainable"
              + (mode == .ltSft ? " in phase 1 (eligible entries)" : ""))
        print("data: \(train.count) training examples (\(tokens) completion tokens), \(heldOut.count) held out; max length \(maxLengthOption ?? min(128, m.config.maxPositions))")
        print(String(format: "steps: %d of %d examples (%.1f epochs), peak lr %.2e, %@ schedule", s.steps, perStep,
                     train.isEmpty ? 0 : Double(s.steps * perStep) / Double(train.count), s.learningRate, schedule)
              + (mode == .ltSft ? ", then \(s.steps) sparse steps (phase 2)" : ""))
        print("would write \(output): " + files.joined(separator: ", "))
    }

    static func files(in folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// LT-SFT: two phases on `loaded.model` (in memory), then OUT = sft.safetensors + README.md.
    func lotteryTicket(loaded: PretrainedModel, train: [TrainingExample], heldOut: [TrainingExample], settings s: Trainer.Settings,
                       out: OutputFolder) throws {
        let m = loaded.model
        let density = self.density ?? 0.01
        var full = s
        if let fullSteps {
            guard fullSteps > 0 else { throw ValidationError("--full-steps must be positive") }
            full = Trainer.Settings(steps: fullSteps)
            full.batchSize = s.batchSize; full.accumulation = s.accumulation; full.learningRate = s.learningRate
            full.warmupSteps = s.warmupSteps; full.schedule = s.schedule; full.minLearningRateRatio = s.minLearningRateRatio
            full.weightDecay = s.weightDecay; full.clipNorm = s.clipNorm; full.seed = s.seed; full.evalEvery = s.evalEvery
            full.l1Pull = s.l1Pull
        }
        var sparse = s
        if let sparseLr { sparse.learningRate = sparseLr }
        let settings = LotteryTicketSFT.Settings(density: density, eligibility: try GraftEligibility(include: include), fullPhase: full, sparsePhase: sparse)
        say("lt-sft: phase 1 (full, \(full.steps) steps), then phase 2 (the top \(String(format: "%g", 100 * density))% of eligible entries, \(sparse.steps) steps); " +
            "\(train.count) training examples, \(heldOut.count) held out")
        let r = try LotteryTicketSFT.train(model: m, examples: train, heldOut: heldOut, settings: settings) { phase, p in
            let every = max(1, logEvery ?? p.totalSteps / 5)
            guard p.step % every == 0 || p.step == p.totalSteps || p.heldOutLoss != nil else { return }
            var line = String(format: "%@ step %d/%d  loss %.4f  lr %.2e", phase == .full ? "phase 1" : "phase 2", p.step, p.totalSteps, p.loss, p.learningRate)
            if let h = p.heldOutLoss { line += String(format: "  held-out %.4f", h) }
            say(line)
        }
        let kept = r.mask.count
        say(String(format: "selected %d of %d eligible entries (%.4g%%) in %d of %d tensors, holding %.1f%% of phase 1's squared movement",
                   kept, r.eligibleCount, 100 * Double(kept) / Double(r.eligibleCount), r.delta.count, r.eligibleTensors, 100 * r.selectedEnergyShare))
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
        if !heldOut.isEmpty {
            say("held-out loss: base \(f(r.heldOutBase)), phase 1 (full) \(f(r.heldOutFull)), phase 2 (sparse delta) \(f(r.heldOutSparse))")
        }
        let meta = ["weightsmith.lt_sft.density": "\(density)", "weightsmith.lt_sft.k": "\(kept)",
                    "weightsmith.lt_sft.eligible": "\(r.eligibleCount)", "weightsmith.lt_sft.base": model, "weightsmith.lt_sft.data": data,
                    "weightsmith.lt_sft.steps": "\(full.steps)+\(sparse.steps)"]
        var card = "# LT-SFT sparse delta\n\nWritten by `weightsmith finetune --mode lt-sft` (Ansell et al. 2022, §3) from `\(model)` on `\(data)`.\n\n"
        card += "- phase 1: \(full.steps) steps of every eligible entry (\(settings.eligibility.description)), peak lr \(full.learningRate)\n"
        card += "- selection: the \(kept) of \(r.eligibleCount) eligible entries that moved most (density \(density))\n"
        card += "- phase 2: \(sparse.steps) steps of those entries only, from the base, fresh AdamW, peak lr \(sparse.learningRate)\n"
        if !heldOut.isEmpty {
            card += "- held-out loss: base \(f(r.heldOutBase)), phase 1 \(f(r.heldOutFull)), phase 2 \(f(r.heldOutSparse))\n"
        }
        card += "\n`sft.safetensors` is a weightsmith sparse delta (row-major int64 indices and F32 values per tensor). Use it as `BASE+\(URL(fileURLWithPath: output).lastPathComponent)`.\n"
        try out.write { staging in
            try SparseDeltaWriter.write(r.delta, to: staging.appendingPathComponent("sft.safetensors"), extraMetadata: meta)
            try Data(card.utf8).write(to: staging.appendingPathComponent("README.md"))
        }
        if json {
            try printJSON(FinetuneJSON(output: output, mode: mode.rawValue, steps: full.steps + sparse.steps, trainableParameters: kept,
                                       parameters: m.layout.totalCount, trainExamples: train.count, heldOutExamples: heldOut.count,
                                       finalTrainingLoss: nil, heldOutLossBefore: r.heldOutBase, heldOutLossAfter: r.heldOutSparse,
                                       tokensPerSecond: nil, seconds: nil, files: Self.files(in: output)))
        } else {
            print("wrote \(output)")
        }
    }

    /// A progress or report line: stdout, or stderr with --json (stdout then holds only the JSON).
    func say(_ s: String) {
        guard !quiet else { return }
        (json ? FileHandle.standardError : FileHandle.standardOutput).write(Data((s + "\n").utf8))
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// `finetune --json`: the written folder and the run's figures (null where a mode has none).
struct FinetuneJSON: Encodable {
    var output: String
    var mode: String
    var steps: Int
    var trainableParameters: Int
    var parameters: Int
    var trainExamples: Int
    var heldOutExamples: Int
    var finalTrainingLoss: Double?
    var heldOutLossBefore: Double?
    var heldOutLossAfter: Double?
    var tokensPerSecond: Double?
    var seconds: Double?
    var files: [String]

    func encode(to encoder: Encoder) throws {
        enum K: String, CodingKey {
            case output, mode, steps, trainableParameters, parameters, trainExamples, heldOutExamples, finalTrainingLoss
            case heldOutLossBefore, heldOutLossAfter, tokensPerSecond, seconds, files
        }
        var c = encoder.container(keyedBy: K.self)
        try c.encode(output, forKey: .output); try c.encode(mode, forKey: .mode); try c.encode(steps, forKey: .steps)
        try c.encode(trainableParameters, forKey: .trainableParameters); try c.encode(parameters, forKey: .parameters)
        try c.encode(trainExamples, forKey: .trainExamples); try c.encode(heldOutExamples, forKey: .heldOutExamples)
        try c.encode(finalTrainingLoss, forKey: .finalTrainingLoss); try c.encode(heldOutLossBefore, forKey: .heldOutLossBefore)
        try c.encode(heldOutLossAfter, forKey: .heldOutLossAfter); try c.encode(tokensPerSecond, forKey: .tokensPerSecond)
        try c.encode(seconds, forKey: .seconds); try c.encode(files, forKey: .files)
    }
}
