import Foundation
import Tensors
import Transformer
import Tokenizers

/// Gradients of a `MendEditor`'s trainable parameters: per transform key, and of the edit lrs.
public struct MendGradients {
    public var transforms: [String: GradientTransform.Gradients]
    public var editLRs: [Float]

    /// All gradient arrays in a fixed order (for norms, clipping and Adam), with names.
    func flat() -> [(String, [Float])] {
        var out: [(String, [Float])] = []
        for k in transforms.keys.sorted() {
            let g = transforms[k]!
            for j in 0..<2 { out += [("\(k).U\(j)", g.U[j]), ("\(k).V\(j)", g.V[j]), ("\(k).b\(j)", g.b[j]), ("\(k).s\(j)", g.s[j]), ("\(k).o\(j)", g.o[j])] }
        }
        out.append(("edit_lrs", editLRs))
        return out
    }
}

/// Which prompts the outer edit loss L_e is measured on. MEND's code measures it on a rephrase of the
/// edit (Mitchell et al. 2022, §3: "equivalence neighbourhood"); EasyEdit's trainer on the edit prompt
/// itself; `both` takes the mean of the two per-token NLLs.
public enum MendEditLossPrompts: String, Sendable, CaseIterable {
    case paraphrase, prompt, both
}

/// Outer objective of MEND meta-training for one edit (Mitchell et al. 2022, §3), with its hand-written
/// backward:
///   L = c_edit · L_e + c_loc · L_loc,  L_e = the mean over the outer batches of the per-token NLL of
///   the target in the edited model (the first rephrase, else the prompt; or the prompt; or both),
/// where L_loc = KL(p_pre ‖ p_post) averaged over every position of the locality sequences (each
/// prompt with the unedited model's two greedy tokens), p_pre the unedited model's next-token
/// distribution (soft targets, recomputed for each step), as in MEND's code. The raw gradient factors
/// are detached (MEND's code calls backward without create_graph): ∂L/∂φ flows only through
/// W̃ = W + α D̃ᵀŨ, with G = ∂L/∂W̃ from an ordinary backward of the edited model.
public struct MendObjective {
    public var cEdit: Float = 0.1
    public var cLoc: Float = 1.0
    public init(cEdit: Float = 0.1, cLoc: Float = 1.0) { self.cEdit = cEdit; self.cLoc = cLoc }

    /// The edit's batches: inner (prompt → target), outer (the prompts L_e is measured on, each
    /// → target; at least one), locality sequences (right-padded with 0; `localityLengths` their
    /// real lengths; no targets).
    public struct Batches {
        public var inner: TrainingBatch
        public var outer: [TrainingBatch]
        public var locality: TrainingBatch?
        public var localityLengths: [Int] = []
    }

    public static func batches(model: TransformerModel, tokenizer: BPETokenizer, request: EditRequest,
                               editLossOn: MendEditLossPrompts = .paraphrase) throws -> Batches {
        let scorer = EditScorer(model: model, tokenizer: tokenizer)
        let (p, t) = try scorer.encode(prompt: request.text, target: request.target)
        let inner = try EditBatches.teacherForced(prompts: [p], target: t, pad: 0)
        var paraphrase: TrainingBatch? = nil
        if editLossOn != .prompt, let para = request.paraphrases.first {
            let (q, tq) = try scorer.encode(prompt: para, target: request.target)
            paraphrase = try EditBatches.teacherForced(prompts: [q], target: tq, pad: 0)
        }
        let outer: [TrainingBatch]
        switch (editLossOn, paraphrase) {
        case (.paraphrase, let q?): outer = [q]
        case (.both, let q?): outer = [inner, q]
        default: outer = [inner]
        }
        var loc: TrainingBatch? = nil, lengths: [Int] = []
        if !request.localityPrompts.isEmpty {
            let ref = try scorer.localityReference(request.localityPrompts, tokens: 2)
            let seqs = zip(ref.prompts, ref.continuations).map { $0 + $1 }
            let T = seqs.map(\.count).max()!
            lengths = seqs.map(\.count)
            loc = try TrainingBatch(tokens: seqs.map { $0 + [Int](repeating: 0, count: T - $0.count) },
                                    targets: seqs.map { _ in [Int](repeating: -1, count: T) })
        }
        return Batches(inner: inner, outer: outer, locality: loc, localityLengths: lengths)
    }

    /// The locality sequences with the current model's next-token distribution as the soft
    /// target at every real position, the summed entropy of those targets, and their count.
    static func localityTargets(model: TransformerModel, batch: TrainingBatch, lengths: [Int]) throws
        -> (batch: TrainingBatch, entropy: Double, positions: Int) {
        let V = model.config.vocabSize, T = batch.length
        let logits = try model.forward(batch.tokens).scalars
        var soft: [TrainingBatch.SoftTarget] = [], entropy = 0.0
        for (b, len) in lengths.enumerated() {
            for t in 0..<len {
                let row = logits[(b * T + t) * V..<(b * T + t + 1) * V]
                let m = Double(row.max()!)
                let e = row.map { Foundation.exp(Double($0) - m) }
                let z = e.reduce(0, +)
                let p = e.map { Float($0 / z) }
                for q in p where q > 0 { entropy -= Double(q) * Foundation.log(Double(q)) }
                soft.append(.init(sequence: b, position: t, probabilities: p))
            }
        }
        return (try TrainingBatch(tokens: batch.tokens, targets: batch.targets, softTargets: soft), entropy, soft.count)
    }

    /// The summed cross-entropy of `batch` under the model as it is, from one forward pass:
    /// −log q at every hard target and −Σ p log q at every soft target (no backward).
    static func crossEntropy(model: TransformerModel, batch: TrainingBatch) throws -> Double {
        let V = model.config.vocabSize, T = batch.length
        let logits = try model.forward(batch.tokens).scalars
        func row(_ r: Int) -> ArraySlice<Float> { logits[r * V..<(r + 1) * V] }
        var sum = 0.0
        for (b, ys) in batch.targets.enumerated() {
            for (t, y) in ys.enumerated() where y >= 0 { sum -= logSoftmax(row(b * T + t), y) }
        }
        for st in batch.softTargets {
            let q = row(st.sequence * T + st.position), (m, l) = logNormaliser(q)
            for (v, p) in st.probabilities.enumerated() where p > 0 { sum -= Double(p) * (Double(q[q.startIndex + v]) - m - l) }
        }
        return sum
    }

    /// The outer loss of one edit without gradients (validation): the edit made once, the
    /// outer NLL and the locality KL from forward passes of the edited model, and `scored`
    /// run while the edit is applied. The model is left unedited.
    public func loss<R>(editor: MendEditor, model: TransformerModel, batches: Batches,
                        scored: () throws -> R) throws -> (loss: Double, editLoss: Double, localityLoss: Double, scored: R) {
        let locality = try batches.locality.map { try Self.localityTargets(model: model, batch: $0, lengths: batches.localityLengths) }
        let edits = try editor.edit(model: model, batch: batches.inner, training: false).edits
        let snapshot = WeightSnapshot(model: model)
        defer { snapshot.restore() }
        for e in edits { try snapshot.apply(e) }
        var le = 0.0
        for b in batches.outer { le += try Self.crossEntropy(model: model, batch: b) / Double(max(b.scoredTokens, 1)) }
        le /= Double(max(batches.outer.count, 1))
        var ll = 0.0
        if let loc = locality, loc.positions > 0 {
            ll = max(0, try Self.crossEntropy(model: model, batch: loc.batch) - loc.entropy) / Double(loc.positions)
        }
        return (Double(cEdit) * le + Double(cLoc) * ll, le, ll, try scored())
    }

    /// The outer loss and the gradients of every editor parameter for one edit. The model is
    /// left unedited. `updateStatistics` = training mode of the normalisation.
    public func lossAndGradients(editor: MendEditor, model: TransformerModel, batches: Batches,
                                 updateStatistics: Bool) throws -> (loss: Double, editLoss: Double, localityLoss: Double, gradients: MendGradients) {
        let locality = try batches.locality.map { try Self.localityTargets(model: model, batch: $0, lengths: batches.localityLengths) }
        let (factors, edits) = try editor.edit(model: model, batch: batches.inner, training: updateStatistics)
        // Restored bit for bit (reverting by subtraction would drift the model by rounding over a training run).
        let snapshot = WeightSnapshot(model: model)
        defer { snapshot.restore() }
        for e in edits { try snapshot.apply(e) }
        let layout = try model.layout.subset(Set(editor.weights))
        let G = ParameterBuffer(layout: layout)
        var le = 0.0
        let outers = Float(max(batches.outer.count, 1))
        for b in batches.outer {
            let ne = Float(max(b.scoredTokens, 1))
            le += try model.accumulateGradients(b, into: GradientSink(model: G), lossScale: cEdit / (ne * outers)) / Double(ne)
        }
        le /= Double(outers)
        var ll = 0.0
        if let loc = locality, loc.positions > 0 {
            let nl = Float(loc.positions)
            let h = try model.accumulateGradients(loc.batch, into: GradientSink(model: G), lossScale: cLoc / nl)
            ll = max(0, h - loc.entropy) / Double(nl)
        }
        var grads = MendGradients(transforms: editor.transforms.mapValues { $0.zeroGradients() }, editLRs: [Float](repeating: 0, count: editor.weights.count))
        for (i, f) in factors.enumerated() {
            let (t, key, _) = try editor.transform(for: i, model: model)
            let I = t.inFeatures, O = t.outFeatures, D = I + O, n = f.tape.rows
            guard n > 0 else { continue }
            let g = G.tensor(f.weight)!.scalars
            let alpha = editor.editLRs[i]
            // Linear: G (O, I); dŨ = α D̃ G, dD̃ = α Ũ Gᵀ.  Conv1D: G (I, O); dD̃ = α Ũ G, dŨ = α D̃ Gᵀ.
            var dU = [Float](repeating: 0, count: n * I), dD = [Float](repeating: 0, count: n * O)
            sgemm(transposeA: false, transposeB: editor.conv1D, m: n, n: I, k: O, alpha: 1, a: f.dTilde, lda: O, b: g, ldb: editor.conv1D ? O : I, beta: 0, c: &dU, ldc: I)
            sgemm(transposeA: false, transposeB: !editor.conv1D, m: n, n: O, k: I, alpha: 1, a: f.uTilde, lda: I, b: g, ldb: editor.conv1D ? O : I, beta: 0, c: &dD, ldc: O)
            var dAlpha = 0.0
            for k in 0..<(n * O) { dAlpha += Double(f.dTilde[k]) * Double(dD[k]) }
            grads.editLRs[i] += Float(dAlpha)
            var dz = [Float](repeating: 0, count: n * D)
            for r in 0..<n {
                for j in 0..<I { dz[r * D + j] = alpha * dU[r * I + j] }
                for j in 0..<O { dz[r * D + I + j] = alpha * dD[r * O + j] }
            }
            t.backward(f.tape, dz2: dz, into: &grads.transforms[key]!)
        }
        return (Double(cEdit) * le + Double(cLoc) * ll, le, ll, grads)
    }
}
