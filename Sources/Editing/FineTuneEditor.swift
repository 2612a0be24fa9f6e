import Foundation
import Tensors
import Transformer
import Tokenizers

/// FT-L: constrained fine-tuning of one MLP output matrix (Zhu et al. 2020; ROME's FT+L baseline, Meng et al. 2022 §4 /
/// EasyEdit's FT with `prompt_last`). Adam on that matrix only, up to `steps` steps, stopping when
/// the loss falls below 1e-2; after every step each entry is clamped into [W0 − ε, W0 + ε]
/// (the L∞ norm constraint; `normBound` nil = unconstrained). The backward pass runs only down
/// to the edited layer.
public struct FineTuneSettings: Sendable, Equatable {
    public enum Objective: String, Sendable, CaseIterable { case promptLast = "prompt-last", teacherForced = "teacher-forced" }
    public var layer: Int
    public var steps = 25
    public var learningRate: Float = 5e-4
    public var normBound: Float? = 5e-4
    public var objective: Objective = .promptLast
    public init(layer: Int, steps: Int = 25, learningRate: Float = 5e-4, normBound: Float? = 5e-4, objective: Objective = .promptLast) {
        self.layer = layer; self.steps = steps; self.learningRate = learningRate; self.normBound = normBound; self.objective = objective
    }
}

public struct FineTuneResult: Sendable {
    public var edit: WeightEdit
    public var losses: [Double]
}

public enum FineTuneEditor {
    /// Computes the edit without leaving it applied: the model's weights are restored on return.
    public static func edit(model: TransformerModel, tokenizer: BPETokenizer, request: EditRequest,
                            settings: FineTuneSettings) throws -> FineTuneResult {
        try request.validate()
        guard (0..<model.config.layers).contains(settings.layer) else {
            throw EditError.invalidRequest("layer \(settings.layer) outside 0..<\(model.config.layers)")
        }
        if let b = settings.normBound, !(b > 0) { throw EditError.invalidRequest("the norm bound must be positive, got \(b)") }
        let scorer = EditScorer(model: model, tokenizer: tokenizer)
        let (p, t) = try scorer.encode(prompt: request.text, target: request.target)
        let batch: TrainingBatch
        switch settings.objective {
        case .promptLast: batch = try EditBatches.promptLast(prompt: p, target: t)
        case .teacherForced: batch = try EditBatches.teacherForced(prompts: [p], target: t, pad: 0)
        }
        let name = model.mlpOutputWeight(layer: settings.layer)
        let layout = try model.layout.subset([name])
        let grads = ParameterBuffer(layout: layout)
        let adam = AdamW(layout: layout, settings: AdamW.Settings())
        let w = model.parameters.pointer(name)
        let count = layout.totalCount
        let w0 = Array(UnsafeBufferPointer(start: w, count: count))
        defer { w.update(from: w0, count: count) }
        var losses: [Double] = []
        for _ in 0..<settings.steps {
            grads.zero()
            let loss = try model.lossAndGradients(batch, into: GradientSink(model: grads))
            losses.append(loss)
            guard loss.isFinite else { throw EditError.numerical("FT loss became \(loss)") }
            if loss < 1e-2 { break }
            adam.step(parameter: { _ in w }, gradients: grads, learningRate: settings.learningRate)
            if let eps = settings.normBound {
                for i in 0..<count { w[i] = min(max(w[i], w0[i] - eps), w0[i] + eps) }
            }
        }
        var delta = [Float](repeating: 0, count: count)
        for i in 0..<count { delta[i] = w[i] - w0[i] }
        return FineTuneResult(edit: WeightEdit(weight: name, delta: Tensor(shape: layout.entries[0].shape, scalars: delta)), losses: losses)
    }
}
