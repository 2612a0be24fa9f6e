import Foundation
import Tensors
import Transformer

/// ROME settings (reference §2.2; defaults follow EasyEdit's Llama hyper-parameters, with fewer
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
    public init(layer: Int) { self.layer = layer }
}

public struct RomeResult: Sendable {
    public var edit: WeightEdit
    /// k: the key at the subject's last token of the bare prompt (I); direction û = C⁻¹k̄/(k·C⁻¹k̄);
    /// value v* = W k + δ (O). The update is ΔW = δ ûᵀ (Linear layout), so W' k = v* exactly.
    public var key: [Float]
    public var direction: [Float]
    public var value: [Float]
    public var losses: [Double]
    public var contexts: [String]
    public var subjectToken: Int
}

/// ROME rank-one editing. Differences from the reference code, all deliberate:
/// - the value δ is optimised through the rank-one update itself (W₀ + δûᵀ applied to every
///   position, as it will be after the edit) rather than by adding δ at the subject position
///   only; at the key the two coincide (ûᵀk = 1);
/// - no KL "essence" term (the loss is the target NLL plus the weight decay, under the clamp).
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
        let text = request.text, subject = request.resolvedSubject
        guard let subjectRange = text.range(of: subject, options: .backwards) else {
            throw EditError.invalidRequest("the subject \"\(subject)\" does not occur in \"\(text)\"")
        }
        let (_, target) = try scorer.encode(prompt: text, target: request.target)
        let contexts = [""] + (try sampleContexts(model: model, tokenizer: tokenizer, settings: settings))
        // Prompts and subject positions per context.
        var prompts: [[Int]] = [], positions: [Int] = []
        for ctx in contexts {
            let ids = tokenizer.encode(ctx + text)
            let head = tokenizer.encode(ctx + String(text[..<subjectRange.upperBound]))
            var pos = min(head.count, ids.count) - 1
            while pos > 0 && (pos >= ids.count || ids[pos] != head[pos]) { pos -= 1 }
            prompts.append(ids); positions.append(max(pos, 0))
        }

        // Keys at the subject's last token, on the layers up to the edited one.
        let prefix = try model.prefix(layers: settings.layer + 1)
        let T = prompts.map(\.count).max()!
        let padded = prompts.map { $0 + [Int](repeating: 0, count: T - $0.count) }
        let keyCapture = try prefix.capture(try TrainingBatch(tokens: padded, targets: padded.map { [Int](repeating: -1, count: $0.count) }),
                                            weight: name, lossScale: 0)
        func row(_ b: Int) -> [Float] { Array(keyCapture.u[(b * T + positions[b]) * I..<(b * T + positions[b] + 1) * I]) }
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
            let d2 = delta.reduce(0) { $0 + $1 * $1 }
            let loss = nll + Double(settings.weightDecay * d2 / max(v0norm * v0norm, 1e-12))
            losses.append(loss)
            guard loss.isFinite else { throw EditError.numerical("ROME value loss became \(loss)") }
            if nll < 5e-2 || step > settings.steps { break }
            // g = Σ_rows delta_r (ûᵀ u_r) + 2 wd δ / ‖v₀‖².
            var g = [Float](repeating: 0, count: O)
            for r in 0..<cap.rows {
                var s: Float = 0
                for j in 0..<I { s += u[j] * cap.u[r * I + j] }
                if s == 0 { continue }
                for o in 0..<O { g[o] += s * cap.delta[r * O + o] }
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
        var dw = [Float](repeating: 0, count: count)
        for o in 0..<O { for j in 0..<I { dw[inOut ? j * O + o : o * I + j] = delta[o] * u[j] } }
        let shape = model.layout[name]!.shape
        return RomeResult(edit: WeightEdit(weight: name, delta: Tensor(shape: shape, scalars: dw)), key: key, direction: u,
                          value: zip(v0, delta).map { $0 + $1 }, losses: losses, contexts: contexts, subjectToken: positions[0])
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
