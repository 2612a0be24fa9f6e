import Foundation
import Tensors
import Transformer
import Tokenizers

/// ROME settings (Meng et al. 2022, ROME, §3; defaults follow EasyEdit's Llama hyper-parameters, with fewer
/// context templates for CPU speed).
public struct RomeSettings: Sendable {
    public var layer: Int
    /// Adam steps on the value offset δ, its learning rate, weight decay on ‖δ‖²/‖v₀‖², and the
    /// clamp ‖δ‖ ≤ clampNorm·‖v₀‖ (v₀ = W k, the matrix's output at the key).
    public var steps = 25
    public var learningRate: Float = 0.5
    public var weightDecay: Float = 1e-3
    public var clampNorm: Float = 4
    /// Extra context prefixes: `contextTemplates` sampled from the model (`contextTokens` tokens
    /// each, seeded), each used as "<sample>. <prompt>" besides the bare prompt.
    public var contextTemplates = 5
    public var contextTokens = 5
    public var seed: UInt64 = 0
    /// Key statistics C = E[kkᵀ]; nil uses C = I (EasyEdit's `mom2_adjustment: false`).
    public var statistics: KeyStatistics?
    public var ridge: Double = 1e-3
    /// Weight of the "essence" term: KL between the unedited and the edited model's next-token
    /// distributions at the subject's last token of `essenceTemplate` ("{} is a" with the
    /// subject), which keeps what the model says about the subject in general (EasyEdit's
    /// `kl_factor`, 0.0625); 0 turns it off.
    public var klFactor: Float = 0.0625
    public var essenceTemplate = "{} is a"
    public init(layer: Int) { self.layer = layer }
}

public struct RomeResult: Sendable {
    public var edit: WeightEdit
    /// k: the key at the subject's last token of the bare prompt (I); direction û = C⁻¹k̄/(k·C⁻¹k̄);
    /// value v* = W k + δ (O). The update is ΔW = δ ûᵀ (Linear layout), so W' k = v* exactly.
    public var key: [Float]
    public var direction: [Float]
    public var value: [Float]
    /// δ = v* − W k: the change of the matrix's output (and of the residual stream) at the key.
    public var offset: [Float]
    public var losses: [Double]
    public var contexts: [String]
    public var subjectToken: Int
    /// The essence prompt and KL(p_unedited ‖ p_edited) there, after the edit (computed whatever
    /// `klFactor`, as a measure of how much the edit changed the subject's other facts).
    public var essencePrompt: String
    public var essenceKL: Double
}

/// ROME rank-one editing. Differences from the reference code, all deliberate:
/// - the value δ is optimised through the rank-one update itself (W₀ + δûᵀ applied to every
///   position, as it will be after the edit) rather than by adding δ at the subject position
///   only; at the key the two coincide (ûᵀk = 1);
/// - the essence term is KL(p_unedited ‖ p_edited) (the reference's `kl_div(init, new,
///   log_target=True)` is KL(p_edited ‖ p_unedited)); both vanish to second order at δ = 0 and
///   the engine's soft-target cross-entropy gives this direction's gradient, (q − p) per logit;
/// - the early stop looks at the target NLL alone (< 0.05), not the total loss.
public enum RomeEditor {
    /// Computes the edit without leaving it applied (the model's weights are restored).
    public static func edit(model: TransformerModel, tokenizer: BPETokenizer, request: EditRequest,
                            settings: RomeSettings) throws -> RomeResult {
        try request.validate()
        let c = model.config
        guard (0..<c.layers).contains(settings.layer) else { throw EditError.invalidRequest("layer \(settings.layer) outside 0..<\(c.layers)") }
        let I = c.intermediateSize, O = c.hiddenSize
        let name = model.mlpOutputWeight(layer: settings.layer)
        let inOut = model.isInOut(name)
        if let s = settings.statistics, s.weight != name || s.dimension != I {
            throw EditError.invalidRequest("key statistics are for \(s.weight) (\(s.dimension)), the edit is on \(name) (\(I))")
        }
        let scorer = EditScorer(model: model, tokenizer: tokenizer)
        let text = request.text, subject = try request.keySubject()
        guard let subjectRange = text.range(of: subject, options: .backwards) else {
            throw EditError.invalidRequest("the subject \"\(subject)\" does not occur in \"\(text)\"")
        }
        let (_, target) = try scorer.encode(prompt: text, target: request.target)
        let contexts = [""] + (try sampleContexts(model: model, tokenizer: tokenizer, settings: settings))
        let (prompts, positions) = subjectPrompts(tokenizer: tokenizer, text: text, subjectEnd: subjectRange.upperBound, contexts: contexts)

        // Keys at the subject's last token (a forward pass through the layers up to the edited one).
        let keys = try model.mlpKeys(prompts, layer: settings.layer)
        var offsets = [0]
        for p in prompts { offsets.append(offsets.last! + p.count) }
        func row(_ b: Int) -> [Float] { Array(keys[(offsets[b] + positions[b]) * I..<(offsets[b] + positions[b] + 1) * I]) }
        let key = row(0)
        var mean = [Float](repeating: 0, count: I)
        for b in 0..<prompts.count { for (j, v) in row(b).enumerated() { mean[j] += v / Float(prompts.count) } }
        let solved = try settings.statistics?.solve(mean, ridge: settings.ridge) ?? mean
        let denom = zip(solved, key).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        guard denom.isFinite, abs(denom) > 1e-12 else { throw EditError.numerical("the key is orthogonal to its direction (kᵀC⁻¹k̄ = \(denom))") }
        let u = solved.map { Float(Double($0) / denom) }

        // v₀ = W k.
        let w = model.parameters.pointer(name)
        var v0 = [Float](repeating: 0, count: O)
        for o in 0..<O { var s: Float = 0; for j in 0..<I { s += (inOut ? w[j * O + o] : w[o * I + j]) * key[j] }; v0[o] = s }
        let v0norm = Float(v0.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot())

        // The essence prompt, its subject position and the unedited distribution there.
        let essence = try EssenceTerm(model: model, tokenizer: tokenizer, subject: subject, template: settings.essenceTemplate)

        // Optimise δ with W = W₀ + δ ûᵀ applied in place (restored on exit).
        let count = I * O
        let w0 = Array(UnsafeBufferPointer(start: w, count: count))
        defer { w.update(from: w0, count: count) }
        func setWeights(_ d: [Float]) {
            for o in 0..<O { for j in 0..<I {
                let idx = inOut ? j * O + o : o * I + j
                w[idx] = w0[idx] + d[o] * u[j]
            } }
        }
        let batch = try EditBatches.teacherForced(prompts: prompts, target: target, pad: 0)
        let n = Float(batch.scoredTokens)
        var delta = [Float](repeating: 0, count: O), m = delta, v = delta
        var losses: [Double] = []
        let b1: Float = 0.9, b2: Float = 0.999
        for step in 1...max(settings.steps, 1) {
            setWeights(delta)
            let cap = try model.capture(batch, weight: name, lossScale: 1 / n)
            let nll = cap.lossSum / Double(n)
            let klCap = settings.klFactor > 0 ? try model.capture(essence.batch, weight: name, lossScale: settings.klFactor) : nil
            let kl = klCap.map { essence.kl(crossEntropy: $0.lossSum) } ?? 0
            let d2 = delta.reduce(0) { $0 + $1 * $1 }
            let loss = nll + Double(settings.klFactor) * kl + Double(settings.weightDecay * d2 / max(v0norm * v0norm, 1e-12))
            losses.append(loss)
            guard loss.isFinite else { throw EditError.numerical("ROME value loss became \(loss)") }
            if nll < 5e-2 || step > settings.steps { break }
            // g = Σ_rows delta_r (ûᵀ u_r) (target NLL and essence KL) + 2 wd δ / ‖v₀‖².
            var g = [Float](repeating: 0, count: O)
            for c in [cap] + (klCap.map { [$0] } ?? []) {
                for r in 0..<c.rows {
                    var s: Float = 0
                    for j in 0..<I { s += u[j] * c.u[r * I + j] }
                    if s == 0 { continue }
                    for o in 0..<O { g[o] += s * c.delta[r * O + o] }
                }
            }
            for o in 0..<O { g[o] += 2 * settings.weightDecay * delta[o] / max(v0norm * v0norm, 1e-12) }
            let c1 = 1 - pow(b1, Float(step)), c2 = 1 - pow(b2, Float(step))
            for o in 0..<O {
                m[o] = b1 * m[o] + (1 - b1) * g[o]
                v[o] = b2 * v[o] + (1 - b2) * g[o] * g[o]
                delta[o] -= settings.learningRate * (m[o] / c1) / ((v[o] / c2).squareRoot() + 1e-8)
            }
            let norm = delta.reduce(0) { $0 + $1 * $1 }.squareRoot(), limit = settings.clampNorm * v0norm
            if norm > limit { for o in 0..<O { delta[o] *= limit / norm } }
        }
        setWeights(delta)
        let essenceKL = try essence.kl(model: model)
        var dw = [Float](repeating: 0, count: count)
        for o in 0..<O { for j in 0..<I { dw[inOut ? j * O + o : o * I + j] = delta[o] * u[j] } }
        let shape = model.layout[name]!.shape
        return RomeResult(edit: WeightEdit(weight: name, delta: Tensor(shape: shape, scalars: dw)), key: key, direction: u,
                          value: zip(v0, delta).map { $0 + $1 }, offset: delta, losses: losses, contexts: contexts, subjectToken: positions[0],
                          essencePrompt: essence.prompt, essenceKL: essenceKL)
    }

    /// Token ids of "<context><text>" per context and the position of the subject's last token.
    static func subjectPrompts(tokenizer: BPETokenizer, text: String, subjectEnd: String.Index, contexts: [String]) -> ([[Int]], [Int]) {
        var prompts: [[Int]] = [], positions: [Int] = []
        for ctx in contexts {
            let ids = tokenizer.encode(ctx + text)
            let head = tokenizer.encode(ctx + String(text[..<subjectEnd]))
            var pos = min(head.count, ids.count) - 1
            while pos > 0 && (pos >= ids.count || ids[pos] != head[pos]) { pos -= 1 }
            prompts.append(ids); positions.append(max(pos, 0))
        }
        return (prompts, positions)
    }

    /// Short seeded samples from the model ("<sample>. "), braces and newlines removed.
    static func sampleContexts(model: TransformerModel, tokenizer: BPETokenizer, settings: RomeSettings) throws -> [String] {
        guard settings.contextTemplates > 0 else { return [] }
        let gen = TextGenerator(model: model, tokenizer: tokenizer)
        let start = tokenizer.encode("")
        let promptIds = start.isEmpty ? [tokenizer.bosTokenId ?? tokenizer.eosTokenId ?? 0] : start
        var out: [String] = []
        for i in 0..<settings.contextTemplates {
            let r = try gen.generate(promptIds: promptIds, maxTokens: settings.contextTokens,
                                     options: SamplingOptions(temperature: 1, topP: 0.9, seed: settings.seed &+ UInt64(i)))
            let t = r.text.replacingOccurrences(of: "{", with: "").replacingOccurrences(of: "}", with: "")
                .replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
            out.append(t.isEmpty ? "" : t + ". ")
        }
        return out
    }
}

/// ROME's essence term: the next-token distribution p at the subject's last token of
/// "{subject} is a" under the unedited model, as a soft target.
struct EssenceTerm {
    let prompt: String
    let batch: TrainingBatch
    let position: Int
    let p: [Float]
    /// H(p) = −Σ p log p, so that KL(p ‖ q) = H(p, q) − H(p).
    let entropy: Double

    init(model: TransformerModel, tokenizer: BPETokenizer, subject: String, template: String) throws {
        guard template.contains("{}") else { throw EditError.invalidRequest("the essence template \"\(template)\" has no {} for the subject") }
        prompt = template.replacingOccurrences(of: "{}", with: subject)
        let ids = tokenizer.encode(prompt)
        guard let at = prompt.range(of: subject) else { throw EditError.invalidRequest("the subject \"\(subject)\" is empty") }
        let head = tokenizer.encode(String(prompt[..<at.upperBound]))
        guard !ids.isEmpty, !head.isEmpty else { throw EditError.invalidRequest("the essence prompt \"\(prompt)\" encodes to no tokens") }
        var pos = min(head.count, ids.count) - 1
        while pos > 0 && ids[pos] != head[pos] { pos -= 1 }
        position = pos
        let logits = try model.forward([ids]).scalars
        let V = model.config.vocabSize
        let row = logits[pos * V..<(pos + 1) * V]
        let m = row.max()!
        let e = row.map { Double(Foundation.exp($0 - m)) }
        let z = e.reduce(0, +)
        p = e.map { Float($0 / z) }
        entropy = p.reduce(0.0) { $1 > 0 ? $0 - Double($1) * Foundation.log(Double($1)) : $0 }
        batch = try TrainingBatch(tokens: [ids], targets: [[Int](repeating: -1, count: ids.count)],
                                  softTargets: [.init(sequence: 0, position: pos, probabilities: p)])
    }

    /// KL(p ‖ q) from the batch's summed cross-entropy H(p, q).
    func kl(crossEntropy: Double) -> Double { max(0, crossEntropy - entropy) }

    /// KL(p ‖ q) under the model's current weights.
    func kl(model: TransformerModel) throws -> Double {
        let V = model.config.vocabSize
        let logits = try model.forward(batch.tokens).scalars
        let row = Array(logits[position * V..<(position + 1) * V])
        let m = row.max()!
        let lse = Double(m) + Foundation.log(row.reduce(0.0) { $0 + Double(Foundation.exp($1 - m)) })
        var h = 0.0
        for v in 0..<V where p[v] > 0 { h += Double(p[v]) * (lse - Double(row[v])) }
        return kl(crossEntropy: h)
    }
}
