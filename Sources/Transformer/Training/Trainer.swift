import Foundation

/// Fine-tunes a model in place: full (every parameter), LoRA (adapters only, base frozen) or
/// sparse (only the entries of a mask), with AdamW, a warm-up + decay schedule, global-norm
/// gradient clipping and gradient accumulation. Deterministic for a given seed: batches are
/// drawn from a seeded shuffle, epoch after epoch.
///
/// One optimizer step = `accumulation` micro-batches of `batchSize` examples (each packed end to
/// end in one row); the loss is the mean NLL over all scored tokens of the step, plus the optional
/// L1 pull towards the starting weights.
public final class Trainer: @unchecked Sendable {
    public enum Mode: Sendable {
        case full
        case lora(LoRAAdapters.Settings)
        case sparse(SparseMask)
    }

    public struct Settings: Sendable {
        public var steps: Int
        public var batchSize = 8
        public var accumulation = 1
        public var learningRate = 1e-3
        public var warmupSteps = 0
        public var schedule = LearningRateSchedule.Kind.cosine
        public var minLearningRateRatio = 0.0
        public var weightDecay = 0.0
        /// Clip the global gradient norm to this value (nil: no clipping).
        public var clipNorm: Double? = 1.0
        public var seed: UInt64 = 0
        /// Held-out loss every this many steps (0: only at the end).
        public var evalEvery = 0
        /// λ of the L1 pull towards the weights the trainer started from (full and sparse modes):
        /// the step's loss gains λ·Σ|θ − θ_start| / N over the trainable entries, N the model's
        /// parameter count, as LT-SFT's `full_l1_reg`/`sparse_l1_reg` (Ansell et al. 2022; the
        /// reference's language adapters use 0.1). Its gradient λ·sign(θ − θ_start) / N (0 where
        /// θ = θ_start) is added before clipping. The reported loss is the NLL alone.
        public var l1Pull = 0.0
        public init(steps: Int) { self.steps = steps }
    }

    public struct Progress: Sendable {
        public var step: Int
        public var totalSteps: Int
        public var loss: Double
        public var learningRate: Double
        public var gradientNorm: Double
        public var tokensPerSecond: Double
        public var elapsed: Double
        public var eta: Double
        public var heldOutLoss: Double?
    }

    public let model: TransformerModel
    public let mode: Mode
    public let settings: Settings
    public let lora: LoRAAdapters?
    let gradients: ParameterBuffer
    let optimizer: AdamW
    let mask: ParameterBuffer?
    let schedule: LearningRateSchedule
    /// The trainable tensors at the start (for the L1 pull), in the gradients' layout.
    let anchor: ParameterBuffer?

    public init(model: TransformerModel, mode: Mode, settings: Settings) throws {
        guard settings.steps > 0, settings.batchSize > 0, settings.accumulation > 0, settings.learningRate > 0 else {
            throw ModelError.invalidInput("steps, batch size, accumulation and learning rate must be positive")
        }
        self.model = model
        self.mode = mode
        // Packed GGUF copies used by decoding would go stale once the weights change.
        if case .lora = mode {} else { model.quantized = [:] }
        self.settings = settings
        switch mode {
        case .full:
            lora = nil; mask = nil
            gradients = ParameterBuffer(layout: model.layout)
        case let .lora(s):
            let a = try LoRAAdapters(model: model, settings: s, seed: settings.seed)
            lora = a; mask = nil
            gradients = ParameterBuffer(layout: a.parameters.layout)
        case let .sparse(m):
            lora = nil; mask = m.values
            gradients = ParameterBuffer(layout: m.layout)
        }
        guard settings.l1Pull >= 0, settings.l1Pull.isFinite else { throw ModelError.invalidInput("the L1 pull must be a finite number ≥ 0") }
        if settings.l1Pull > 0 {
            if case .lora = mode { throw ModelError.invalidInput("the L1 pull towards the starting weights applies to full and sparse training, not LoRA") }
            let a = ParameterBuffer(layout: gradients.layout)
            for e in gradients.layout.entries { a.pointer(e.name).update(from: model.parameters.pointer(e.name), count: e.count) }
            anchor = a
        } else {
            anchor = nil
        }
        optimizer = AdamW(layout: gradients.layout, settings: AdamW.Settings(weightDecay: Float(settings.weightDecay)))
        schedule = LearningRateSchedule(peak: settings.learningRate, warmupSteps: settings.warmupSteps, totalSteps: settings.steps,
                                        kind: settings.schedule, minRatio: settings.minLearningRateRatio)
    }

    /// Number of trainable scalars (mask entries for sparse).
    public var trainableCount: Int {
        if let mask { return (0..<mask.layout.totalCount).reduce(0) { $0 + (mask.base[$1] != 0 ? 1 : 0) } }
        return gradients.layout.totalCount
    }

    func sink() -> GradientSink {
        lora == nil ? GradientSink(model: gradients) : GradientSink(lora: gradients)
    }

    /// g += λ·sign(θ − θ_start) / N for every trainable tensor (the L1 pull's gradient).
    func addL1Pull(_ anchor: ParameterBuffer) {
        let c = Float(settings.l1Pull / Double(model.layout.totalCount))
        for e in gradients.layout.entries {
            let g = gradients.pointer(e.name), a = anchor.pointer(e.name), w = model.parameters.pointer(e.name)
            for i in 0..<e.count {
                let d = w[i] - a[i]
                if d > 0 { g[i] += c } else if d < 0 { g[i] -= c }
            }
        }
    }

    /// A micro-batch: its examples packed end to end in one row (each attends only to itself),
    /// so no padding is computed; the loss and gradients are those of a padded batch.
    static func batch(_ examples: ArraySlice<TrainingExample>) throws -> TrainingBatch {
        try TrainingBatch.packedCompletions(examples.map { ($0.context, $0.target) })
    }

    /// Mean NLL of the target tokens of `examples` under the current weights (and adapters).
    public func heldOutLoss(_ examples: [TrainingExample], batchSize: Int = 16) throws -> Double {
        var nll = 0.0, n = 0
        var i = 0
        while i < examples.count {
            let b = try Self.batch(examples[i..<min(i + batchSize, examples.count)])
            nll += try model.accumulateGradients(b, into: GradientSink(), lora: lora, lossScale: 0)
            n += b.scoredTokens
            i += batchSize
        }
        guard n > 0 else { throw ModelError.invalidInput("no scored tokens in the held-out data") }
        return nll / Double(n)
    }

    /// Runs `settings.steps` optimizer steps; `report` is called after every step.
    @discardableResult
    /// One step at a time; each pass's matrix products use the whole thread budget
    /// (`TransformerModel.accumulateGradients`).
    public func train(_ examples: [TrainingExample], heldOut: [TrainingExample] = [], report: (Progress) -> Void = { _ in }) throws -> [Progress] {
        guard !examples.isEmpty else { throw ModelError.invalidInput("no training examples") }
        var rng = SeededGenerator(seed: settings.seed &+ 0x5EED)
        var order = examples.shuffledDeterministically(using: &rng)
        var cursor = 0
        func nextExamples(_ k: Int) -> [TrainingExample] {
            var out: [TrainingExample] = []
            while out.count < k {
                if cursor == order.count { order = examples.shuffledDeterministically(using: &rng); cursor = 0 }
                out.append(order[cursor]); cursor += 1
            }
            return out
        }
        let start = Date()
        var tokens = 0
        var history: [Progress] = []
        for step in 1...settings.steps {
            let micro = try (0..<settings.accumulation).map { _ in try Self.batch(nextExamples(settings.batchSize)[...]) }
            let scored = micro.reduce(0) { $0 + $1.scoredTokens }
            guard scored > 0 else { throw ModelError.invalidInput("a training step has no scored tokens") }
            gradients.zero()
            var nll = 0.0
            for b in micro {
                nll += try model.accumulateGradients(b, into: sink(), lora: lora, lossScale: 1 / Float(scored))
                tokens += b.tokens.reduce(0) { $0 + $1.count }
            }
            if let anchor { addL1Pull(anchor) }
            if let mask { gradients.multiply(by: mask) }
            let norm = gradients.globalNorm()
            if let clip = settings.clipNorm, norm > clip { gradients.scale(by: Float(clip / norm)) }
            let lr = schedule.rate(step: step)
            if let lora {
                optimizer.step(parameter: { lora.parameters.pointer($0) }, gradients: gradients, learningRate: Float(lr))
            } else {
                optimizer.step(parameter: { self.model.parameters.pointer($0) }, gradients: gradients, learningRate: Float(lr), mask: mask)
            }
            let elapsed = Date().timeIntervalSince(start)
            var p = Progress(step: step, totalSteps: settings.steps, loss: nll / Double(scored), learningRate: lr, gradientNorm: norm,
                             tokensPerSecond: Double(tokens) / max(elapsed, 1e-9), elapsed: elapsed,
                             eta: elapsed / Double(step) * Double(settings.steps - step), heldOutLoss: nil)
            let evalNow = !heldOut.isEmpty && (step == settings.steps || (settings.evalEvery > 0 && step % settings.evalEvery == 0))
            if evalNow { p.heldOutLoss = try heldOutLoss(heldOut) }
            history.append(p)
            report(p)
        }
        return history
    }
}
