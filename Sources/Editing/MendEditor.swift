import Foundation
import Tensors
import Transformer
import Tokenizers

/// MEND (Mitchell et al. 2022, §3): a trained editor maps the rank-one factors (u,
/// delta) of the fine-tuning gradient of each edited matrix to pseudo-factors (ũ, δ̃); the edit
/// is W̃ = W + α_i Σ_t δ̃_t ũ_tᵀ (the code's + sign, Linear layout; GPT-2 Conv1D: Ũᵀ D̃).
/// Edited matrices: the MLP matrices of the last three blocks (gate, up, down for Llama; c_fc,
/// c_proj for GPT-2); one `GradientTransform` per (d_in, d_out) shape, shared by its matrices
/// (the mode index = position among them). `editLRs` start at 1e-4.
public final class MendEditor {
    public let weights: [String]
    public var editLRs: [Float]
    /// Keyed by "d_in x d_out".
    public var transforms: [String: GradientTransform]
    public let conv1D: Bool

    /// The default edited matrices of `model` (its last three blocks' MLP matrices).
    public static func defaultWeights(_ model: TransformerModel, layers: Int = 3) -> [String] {
        let L = model.config.layers
        var out: [String] = []
        for l in max(0, L - layers)..<L {
            let d = model.block
            // GPT-2's editors were trained with c_proj before c_fc; keep that order.
            let modules = d.weightLayout == .inOut ? d.mlpModules.reversed() : d.mlpModules
            out += modules.map { d.name(l, $0) + ".weight" }
        }
        return out
    }

    /// (d_in, d_out) of a weight of `model`.
    static func features(_ model: TransformerModel, _ w: String) throws -> (Int, Int) {
        guard let e = model.layout[w], e.shape.rank == 2 else { throw EditError.invalidRequest("no matrix \(w) in the model") }
        return model.block.weightLayout == .inOut ? (e.shape[0], e.shape[1]) : (e.shape[1], e.shape[0])
    }

    public init(weights: [String], editLRs: [Float], transforms: [String: GradientTransform], conv1D: Bool) {
        self.weights = weights; self.editLRs = editLRs; self.transforms = transforms; self.conv1D = conv1D
    }

    /// A fresh (identity-initialised) editor for `model`.
    public convenience init(model: TransformerModel, weights: [String]? = nil, rank: Int = 1920, editLR: Float = 1e-4, seed: UInt64 = 0) throws {
        let ws = weights ?? Self.defaultWeights(model)
        var groups: [String: Int] = [:], order: [String] = []
        for w in ws {
            let (i, o) = try Self.features(model, w)
            let key = "\(i)x\(o)"
            if groups[key] == nil { order.append(key) }
            groups[key, default: 0] += 1
        }
        var ts: [String: GradientTransform] = [:]
        for (n, key) in order.enumerated() {
            let parts = key.split(separator: "x").compactMap { Int($0) }
            ts[key] = GradientTransform(inFeatures: parts[0], outFeatures: parts[1], rank: rank, modes: groups[key]!, seed: seed &+ UInt64(n))
        }
        self.init(weights: ws, editLRs: [Float](repeating: editLR, count: ws.count), transforms: ts, conv1D: model.block.weightLayout == .inOut)
    }

    /// The shared transform of weight index `i` and the weight's mode in it.
    func transform(for i: Int, model: TransformerModel) throws -> (GradientTransform, key: String, mode: Int) {
        let (din, dout) = try Self.features(model, weights[i])
        let key = "\(din)x\(dout)"
        guard let t = transforms[key] else { throw EditError.invalidRequest("the editor has no transform for shape \(key) (\(weights[i]))") }
        let mode = try weights[..<i].filter { try Self.features(model, $0) == (din, dout) }.count
        guard mode < t.modes else { throw EditError.invalidRequest("\(weights[i]) is mode \(mode) of \(t.modes)") }
        return (t, key, mode)
    }

    /// What one edit computed per weight: kept rows, the transform's tape, the output factors.
    public struct WeightFactors {
        public var weight: String
        public var tape: GradientTransform.Tape
        public var uTilde: [Float]      // (N, d_in)
        public var dTilde: [Float]      // (N, d_out)
    }

    /// Captures u and delta of every edited matrix in one backward of `batch` (mean NLL), runs
    /// the editors (updating their statistics first when `training`), and returns the factors
    /// and the weight edits ΔW_i = α_i D̃ᵀŨ (Linear layout; Conv1D: ŨᵀD̃).
    public func edit(model: TransformerModel, batch: TrainingBatch, training: Bool) throws -> (factors: [WeightFactors], edits: [WeightEdit]) {
        let caps = try model.captureAll(batch, weights: Set(weights), lossScale: 1 / Float(max(batch.scoredTokens, 1)))
        var factors: [WeightFactors] = [], edits: [WeightEdit] = []
        // Update every shared editor's statistics with all its rows before normalising any.
        var rowsOf: [Int: (z: [Float], n: Int)] = [:]
        for (i, w) in weights.enumerated() {
            guard let c = caps[w] else { throw EditError.unsupported("the backward never reached \(w)") }
            let (t, _, _) = try transform(for: i, model: model)
            let I = t.inFeatures, O = t.outFeatures
            let kept = GradientTransform.keptRows(u: c.u, delta: c.delta, rows: c.rows, inFeatures: I, outFeatures: O)
            var z = [Float](repeating: 0, count: kept.count * (I + O))
            for (k, r) in kept.enumerated() {
                for j in 0..<I { z[k * (I + O) + j] = c.u[r * I + j] }
                for j in 0..<O { z[k * (I + O) + I + j] = c.delta[r * O + j] }
            }
            rowsOf[i] = (z, kept.count)
            if training { t.updateStatistics(z, rows: kept.count) }
        }
        for (i, w) in weights.enumerated() {
            let (t, _, mode) = try transform(for: i, model: model)
            let (z, n) = rowsOf[i]!
            let I = t.inFeatures, O = t.outFeatures, D = I + O
            let tape = t.forward(try t.normalise(z, rows: n), rows: n, mode: mode)
            let z2 = tape.z[2]
            var ut = [Float](repeating: 0, count: n * I), dt = [Float](repeating: 0, count: n * O)
            for r in 0..<n {
                for j in 0..<I { ut[r * I + j] = z2[r * D + j] }
                for j in 0..<O { dt[r * O + j] = z2[r * D + I + j] }
            }
            var dw = [Float](repeating: 0, count: I * O)
            if conv1D {
                if n > 0 { sgemm(transposeA: true, transposeB: false, m: I, n: O, k: n, alpha: editLRs[i], a: ut, lda: I, b: dt, ldb: O, beta: 0, c: &dw, ldc: O) }
            } else {
                if n > 0 { sgemm(transposeA: true, transposeB: false, m: O, n: I, k: n, alpha: editLRs[i], a: dt, lda: O, b: ut, ldb: I, beta: 0, c: &dw, ldc: I) }
            }
            factors.append(WeightFactors(weight: w, tape: tape, uTilde: ut, dTilde: dt))
            edits.append(WeightEdit(weight: w, delta: Tensor(shape: model.layout[w]!.shape, scalars: dw)))
        }
        return (factors, edits)
    }
}

extension TransformerModel {
    /// u and delta of several linear layers in one forward + backward of `batch`.
    func captureAll(_ batch: TrainingBatch, weights: Set<String>, lossScale: Float) throws -> [String: LinearCapture] {
        let layout = try self.layout.subset(weights)
        let grads = ParameterBuffer(layout: layout)
        var caps: [String: LinearCapture] = [:]
        let sink = GradientSink(model: grads, linearHook: { r in
            guard weights.contains(r.weight) else { return }
            caps[r.weight] = LinearCapture(rows: r.rows, inFeatures: r.inFeatures, outFeatures: r.outFeatures,
                                           u: Array(r.u), delta: Array(r.delta), gradient: [], lossSum: 0)
        })
        let loss = try accumulateGradients(batch, into: sink, lossScale: lossScale)
        for (k, var c) in caps {
            c.gradient = grads.tensor(k)!.scalars
            c.lossSum = loss
            caps[k] = c
        }
        return caps
    }
}

extension MendEditor {
    /// The weight edits for one request (prompt → target, mean NLL), in eval mode (frozen
    /// statistics). Nothing is applied to the model.
    public func edits(for request: EditRequest, model: TransformerModel, tokenizer: BPETokenizer) throws -> [WeightEdit] {
        try request.validate()
        for w in weights where model.layout[w] == nil { throw EditError.invalidRequest("the editor edits \(w), which this model does not have") }
        let (p, t) = try EditScorer(model: model, tokenizer: tokenizer).encode(prompt: request.text, target: request.target)
        return try edit(model: model, batch: try EditBatches.teacherForced(prompts: [p], target: t, pad: 0), training: false).edits
    }
}
