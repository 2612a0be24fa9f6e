import ArgumentParser
import Checkpoints
import Foundation
import Tensors
import Transformer

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a model on JSONL prompt/completion pairs or plain text: full, LoRA (PEFT adapter) or sparse (masked).",
        discussion: """
        Writes OUT as a Hugging Face folder (full, sparse; sparse also writes sparse_mask.safetensors) or a \
        PEFT adapter folder (lora). Prints a progress line (step, loss, learning rate, tokens/s, ETA) and the \
        held-out loss (from --eval-data, else a --holdout fraction of DATA) periodically and at the end. \
        Deterministic for a given --seed. OUT is checked before any work (never the model's folder, inside it \
        or above it; an existing non-empty OUT only with --force, and only a previous weightsmith output) and \
        appears atomically when training is done.
        """)

    enum Mode: String, ExpressibleByArgument, CaseIterable { case full, lora, sparse }

    @Argument(help: "A model reference: a Hugging Face folder, a .safetensors file, a .gguf file, a PEFT adapter (merged onto its base), BASE+ADAPTER, BASE+DELTA, or org/name[@revision] from the local Hugging Face cache.")
    var model: String
    @Option(help: "The base of an adapter, task vector or sparse delta given as MODEL.") var base: String?
    @Argument(help: "Training data: a .jsonl file of {\"prompt\", \"completion\"} objects (loss on completions), or plain text.")
    var data: String
    @Option(name: .long, help: "full, lora or sparse.")
    var mode: Mode = .full
    @Option(name: .shortAndLong, help: "Output folder (must not exist or be empty).")
    var output: String
    @Flag(name: .long, help: "Replace OUT when it is a previous weightsmith output.")
    var force = false

    @OptionGroup var nonFinite: NonFiniteOption

    @Option(name: .long, help: "Optimizer steps.") var steps = 100
    @Option(name: .long, help: "Examples per micro-batch.") var batchSize = 8
    @Option(name: .long, help: "Micro-batches per optimizer step (gradient accumulation).") var accumulation = 1
    @Option(name: .long, help: "Peak learning rate (default: 1e-4 full, 1e-3 lora and sparse).") var lr: Double?
    @Option(name: .long, help: "Linear warm-up steps.") var warmup = 0
    @Option(name: .long, help: "Schedule after warm-up: constant, linear or cosine.") var schedule = "cosine"
    @Option(name: .long, help: "Final learning rate as a fraction of the peak.") var minLrRatio = 0.0
    @Option(name: .long, help: "AdamW weight decay (matrices only).") var weightDecay = 0.0
    @Option(name: .long, help: "Clip the global gradient norm (0: no clipping).") var clip = 1.0
    @Option(name: .long, help: "Seed (data order, LoRA init, random masks).") var seed: UInt64 = 0
    @Option(name: .long, help: "Maximum tokens per example (plain text: window length).") var maxLength = 128

    @Option(name: .long, help: "Held-out data (same format as DATA).") var evalData: String?
    @Option(name: .long, help: "Fraction of DATA held out when --eval-data is not given.") var holdout = 0.1
    @Option(name: .long, help: "Held-out loss every N steps (0: at the end only).") var evalEvery = 0
    @Option(name: .long, help: "Print a progress line every N steps (default: steps / 10).") var logEvery: Int?

    @Option(name: .long, help: "LoRA rank.") var rank = 8
    @Option(name: .long, help: "LoRA alpha.") var alpha = 16.0
    @Flag(name: .long, help: "rsLoRA scaling alpha / sqrt(r).") var rslora = false
    @Option(name: .long, help: "LoRA target modules, comma-separated.") var targetModules = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"

    @Option(name: .long, help: "Sparse mode: a mask safetensors file (tensor names of the model, nonzero = trainable).") var mask: String?
    @Option(name: .long, help: "Sparse mode without --mask: fraction of entries trained, chosen at random (seeded).") var maskDensity: Double?
    @Option(name: .long, help: "Sparse mode without --mask: regex selecting the masked tensors (default: all matrices).") var maskTensors: String?

    @Option(name: .long, help: "Saved dtype for full/sparse: f32, bf16 or f16.") var dtype = "f32"

    func run() throws {
        guard let kind = LearningRateSchedule.Kind(rawValue: schedule) else { throw ValidationError("--schedule must be constant, linear or cosine") }
        guard let saveType = ["f32": DType.f32, "bf16": .bf16, "f16": .f16][dtype] else { throw ValidationError("--dtype must be f32, bf16 or f16") }
        if model.hasSuffix(".gguf") && mode != .lora {
            throw ValidationError("--mode \(mode.rawValue) writes a Hugging Face folder and needs one as input: convert the GGUF first (weightsmith convert-gguf)")
        }
        // The output path is checked (and locked) before the model is loaded or trained.
        let inputs = [model, data, evalData, mask].compactMap { $0 }.map { URL(fileURLWithPath: $0) }
        let out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: inputs, force: force, command: "finetune --mode \(mode.rawValue)")
        let loaded = try PretrainedModel(path: model, base: base)
        if !nonFinite.allowNonFinite { try loaded.model.requireFiniteWeights() }
        let m = loaded.model
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

        let trainerMode: Trainer.Mode
        switch mode {
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
        var s = Trainer.Settings(steps: steps)
        s.batchSize = batchSize; s.accumulation = accumulation
        s.learningRate = lr ?? (mode == .full ? 1e-4 : 1e-3)
        s.warmupSteps = warmup; s.schedule = kind; s.minLearningRateRatio = minLrRatio
        s.weightDecay = weightDecay; s.clipNorm = clip > 0 ? clip : nil; s.seed = seed; s.evalEvery = evalEvery
        let trainer = try Trainer(model: m, mode: trainerMode, settings: s)
        say("\(mode.rawValue) fine-tuning: \(trainer.trainableCount) trainable of \(m.layout.totalCount) parameters; " +
              "\(train.count) training examples, \(heldOut.count) held out")
        if !heldOut.isEmpty { say(String(format: "held-out loss before: %.4f", try trainer.heldOutLoss(heldOut))) }
        let every = max(1, logEvery ?? steps / 10)
        try trainer.train(train, heldOut: heldOut) { p in
            guard p.step % every == 0 || p.step == p.totalSteps || p.heldOutLoss != nil else { return }
            var line = String(format: "step %d/%d  loss %.4f  lr %.2e  %.0f tok/s  ETA %@", p.step, p.totalSteps, p.loss, p.learningRate,
                              p.tokensPerSecond, Self.clock(p.eta))
            if let h = p.heldOutLoss { line += String(format: "  held-out %.4f", h) }
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }

        let baseDir = loaded.directory ?? (URL(fileURLWithPath: model).hasDirectoryPath || FileManager.default.fileExists(atPath: model + "/config.json")
            ? URL(fileURLWithPath: model) : URL(fileURLWithPath: model).deletingLastPathComponent())
        try out.write { staging in
            switch trainerMode {
            case .lora:
                try trainer.lora!.write(into: staging, baseModelNameOrPath: model)
            case let .sparse(mk):
                try m.writeFolder(into: staging, dtype: saveType, sideFilesFrom: baseDir, allowNonFinite: nonFinite.allowNonFinite)
                try mk.write(to: staging.appendingPathComponent("sparse_mask.safetensors"))
            case .full:
                try m.writeFolder(into: staging, dtype: saveType, sideFilesFrom: baseDir, allowNonFinite: nonFinite.allowNonFinite)
            }
        }
        print("wrote \(output)")
    }

    func say(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
