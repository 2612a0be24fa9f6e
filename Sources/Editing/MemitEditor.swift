import CLinearAlgebra
import Checkpoints
import Foundation
import Tensors
import Transformer
import Tokenizers

/// MEMIT settings (Meng et al. 2023, MEMIT, §4.3; defaults follow the reference's GPT-J
/// hyper-parameters where they carry over).
public struct MemitSettings: Sendable {
    /// The edited layers, ascending; the residual target is set at the last one.
    public var layers: [Int]
    /// The value step: Adam on an offset δ added to the residual stream after the last layer at
    /// the subject's last token (of the prompt in every context and of the essence prompt), its
    /// learning rate, weight decay on ‖δ‖/‖h‖² (the reference's form: the norm over the squared
    /// norm), the clamp ‖δ‖ ≤ clampNorm·‖h‖ (h: the unedited residual there), and the essence KL
    /// weight; contexts sampled as in ROME. The steps stop early when the whole loss (NLL + KL +
    /// weight decay) falls below 0.05, as in the reference.
    public var steps = 25
    public var learningRate: Float = 0.5
    public var weightDecay: Float = 0.5
    public var clampNorm: Float = 0.75
    public var klFactor: Float = 0.0625
    public var essenceTemplate = "{} is a"
    public var contextTemplates = 5
    public var contextTokens = 5
    public var seed: UInt64 = 0
    /// The weight of the bare prompt's key in a fact's key, the sampled contexts sharing the rest
    /// equally. MEMIT's released code averages per kind of context (the bare prompt is one kind,
    /// the sampled prefixes another) and then over the kinds, which gives the bare prompt 1/2;
    /// 1/(contexts + 1) is ROME's plain mean over all prompts.
    public var bareKeyWeight: Double = 0.5
    /// Key statistics per layer, C = E[kkᵀ] (nil for a layer: C = I).
    public var statistics: [Int: KeyStatistics] = [:]
    /// λ, the weight of the preserved keys against the new ones (`mom2_update_weight`); nil:
    /// `defaultUpdateWeight(intermediateSize:)`.
    public var updateWeight: Double? = nil
    /// C is regularised as in ROME: C + ridge·mean(diag C)·I.
    public var ridge: Double = 1e-3
    /// A folder for the value step's results (δ and its losses per request), keyed by everything
    /// δ depends on: the model's parameters, the request, its prompts as tokens and subject
    /// positions, the last layer and the value-step settings; nil: no cache. λ, the statistics,
    /// the other layers, the ridge and the bare key weight do not enter δ, so sweeping them reuses
    /// every δ (MEMIT's reference code caches its z vectors the same way).
    public var valueCache: URL? = nil
    public init(layers: [Int]) { self.layers = layers }

    /// The reference's λ = 15,000 for GPT-J, whose keys have 16,384 dimensions, kept per key
    /// dimension: λ = 15,000 · I / 16,384 (1,406 for SmolLM2-135M, I = 1,536). A fact's share of
    /// its wanted change is s/(λ + s) with s = kᵀC⁻¹k, which grows with I for typical keys
    /// (s ≈ I when k is distributed like the corpus keys), so the unscaled 15,000 on a small
    /// model keeps the old facts at the new ones' expense: on SmolLM2-135M, 10 test facts in one
    /// edit reached efficacy 0.2 with λ = 15,000 and 0.9 with λ = 1,500 (neighbourhood 0.96).
    public static func defaultUpdateWeight(intermediateSize: Int) -> Double { 15_000 * Double(intermediateSize) / 16_384 }

    /// `updateWeight`, or the default for keys of `intermediateSize` dimensions.
    public func effectiveUpdateWeight(intermediateSize: Int) -> Double {
        updateWeight ?? Self.defaultUpdateWeight(intermediateSize: intermediateSize)
    }
}

public struct MemitResult: Sendable {
    /// One rank-≤n update per edited layer, in `layers` order.
    public var edits: [WeightEdit]
    /// Per request: the wanted change δ of the residual stream at the last layer, and the change
    /// the finished edit achieves there (the two agree when the keys can be separated).
    public var offsets: [[Float]]
    public var achieved: [[Float]]
    /// Per request: the value step's losses (first, last).
    public var valueLosses: [(Double, Double)]
    /// How many of the δ came from `MemitSettings.valueCache`.
    public var cachedValues = 0
}

/// MEMIT: many facts at once, spread over several MLP output matrices. For each request a
/// target z = h + δ for the residual stream h at the subject's last token after the last layer
/// (δ by Adam with δ added to the residual there, see `MemitSettings`). Then, layer by layer in ascending order, with the edits of
/// the earlier layers applied: keys K (n, I) at the subject (the bare prompt's key weighted 1/2, the
/// context prompts' the other 1/2, see `MemitSettings.bareKeyWeight`),
/// the residual R = (z − h_current) / (layers left), and
///   ΔW = Rᵀ K (λ·C + KᵀK)⁻¹        (Linear layout (O, I); Meng et al. 2023, Eq. 14),
/// solved in Float64 by Cholesky. With one request and one layer this is ROME's update scaled
/// by s / (λ + s), s = kᵀC⁻¹k (Sherman–Morrison), and ROME's exactly as λ → 0.
public enum MemitEditor {
    /// Computes the edits without leaving them applied (the model is restored on return).
    public static func edit(model: TransformerModel, tokenizer: BPETokenizer, requests: [EditRequest],
                            settings: MemitSettings, progress: ((Int, Int) -> Void)? = nil) throws -> MemitResult {
        guard !requests.isEmpty else { throw EditError.invalidRequest("MEMIT needs at least one request") }
        let c = model.config
        let layers = settings.layers
        guard !layers.isEmpty, layers == layers.sorted(), Set(layers).count == layers.count,
              layers.allSatisfy({ (0..<c.layers).contains($0) }) else {
            throw EditError.invalidRequest("MEMIT layers \(layers) must be distinct, ascending and in 0..<\(c.layers)")
        }
        let I = c.intermediateSize, O = c.hiddenSize, n = requests.count
        let lambda = settings.effectiveUpdateWeight(intermediateSize: I)
        guard lambda >= 0, lambda.isFinite else { throw EditError.invalidRequest("the update weight λ must be finite and ≥ 0, got \(lambda)") }
        guard (0...1).contains(settings.bareKeyWeight) else { throw EditError.invalidRequest("the bare prompt's key weight must be in [0, 1], got \(settings.bareKeyWeight)") }
        let last = layers.last!
        // Prompts (per context) and subject positions per request.
        var rs = RomeSettings(layer: last)
        rs.contextTemplates = settings.contextTemplates; rs.contextTokens = settings.contextTokens; rs.seed = settings.seed
        let contexts = [""] + (try RomeEditor.sampleContexts(model: model, tokenizer: tokenizer, settings: rs))
        var prompts: [[[Int]]] = [], positions: [[Int]] = []
        for r in requests {
            try r.validate()
            let text = r.text
            let subject = try r.keySubject()
            guard let range = text.range(of: subject, options: .backwards) else {
                throw EditError.invalidRequest("the subject \"\(subject)\" does not occur in \"\(text)\"")
            }
            let (p, pos) = RomeEditor.subjectPrompts(tokenizer: tokenizer, text: text, subjectEnd: range.upperBound, contexts: contexts)
            prompts.append(p); positions.append(pos)
        }
        // 1. Values: δ per request at the last layer (from the cache when it has them).
        var offsets: [[Float]] = [], losses: [(Double, Double)] = []
        let modelKey = settings.valueCache == nil ? 0 : ValueCache.modelKey(model)
        var cachedValues = 0
        for (i, r) in requests.enumerated() {
            let url = settings.valueCache.map { ValueCache.url(in: $0, modelKey: modelKey, tokenizer: tokenizer, request: r,
                                                                 prompts: prompts[i], positions: positions[i], layer: last, settings: settings) }
            if let url, let hit = ValueCache.read(url, dimension: O) {
                offsets.append(hit.delta); losses.append(hit.losses); cachedValues += 1
            } else {
                let (d, l) = try value(model: model, tokenizer: tokenizer, request: r, prompts: prompts[i], positions: positions[i],
                                       layer: last, settings: settings)
                offsets.append(d); losses.append(l)
                if let url { try ValueCache.write(url, delta: d, losses: l) }
            }
            progress?(i + 1, n + layers.count)
        }
        let h0 = try residuals(model: model, layer: last, prompts: prompts.map { $0[0] }, positions: positions.map { $0[0] })
        let targets = (0..<n).map { i in (0..<O).map { h0[i][$0] + offsets[i][$0] } }

        var edits: [WeightEdit] = []
        // Restored bit for bit on return (subtracting the deltas again is exact only up to rounding).
        let snapshot = WeightSnapshot(model: model)
        defer { snapshot.restore() }
        for (li, l) in layers.enumerated() {
            let name = model.mlpOutputWeight(layer: l)
            let inOut = model.isInOut(name)
            if let s = settings.statistics[l], s.weight != name || s.dimension != I {
                throw EditError.invalidRequest("key statistics are for \(s.weight) (\(s.dimension)), layer \(l) is \(name) (\(I))")
            }
            let K = try keys(model: model, layer: l, prompts: prompts, positions: positions, bareWeight: settings.bareKeyWeight)
            let cur = try residuals(model: model, layer: last, prompts: prompts.map { $0[0] }, positions: positions.map { $0[0] })
            let left = Double(layers.count - li)
            // A = λ C + Kᵀ K (I, I); X = A⁻¹ Kᵀ (I, n).
            var a = [Double](repeating: 0, count: I * I)
            if let s = settings.statistics[l] {
                var trace = 0.0
                for j in 0..<I { trace += s.moment[j * I + j] }
                let rid = settings.ridge * max(trace / Double(I), 1e-12)
                for j in 0..<(I * I) { a[j] = lambda * s.moment[j] }
                for j in 0..<I { a[j * I + j] += lambda * rid }
            } else {
                for j in 0..<I { a[j * I + j] = lambda }
            }
            for i in 0..<n { let k = K[i]; for p in 0..<I where k[p] != 0 { let kp = Double(k[p]); for q in 0..<I { a[p * I + q] += kp * Double(k[q]) } } }
            var x = [Double](repeating: 0, count: I * n)
            for i in 0..<n { for j in 0..<I { x[j * n + i] = Double(K[i][j]) } }
            let info = LAPACKE_dposv(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "U")), Int32(I), Int32(n), &a, Int32(I), &x, Int32(n))
            guard info == 0 else { throw EditError.numerical("MEMIT solve at layer \(l) failed (info \(info)); give key statistics or a larger λ") }
            // ΔW[o, j] = Σ_i R[i, o] X[j, i].
            var dw = [Float](repeating: 0, count: I * O)
            for o in 0..<O {
                var r = [Double](repeating: 0, count: n)
                for i in 0..<n { r[i] = Double(targets[i][o] - cur[i][o]) / left }
                for j in 0..<I {
                    var s = 0.0
                    for i in 0..<n { s += r[i] * x[j * n + i] }
                    dw[inOut ? j * O + o : o * I + j] = Float(s)
                }
            }
            guard dw.allSatisfy({ $0.isFinite }) else { throw EditError.numerical("MEMIT update at layer \(l) is not finite") }
            let e = WeightEdit(weight: name, delta: Tensor(shape: model.layout[name]!.shape, scalars: dw))
            try snapshot.apply(e)
            edits.append(e)
            progress?(n + li + 1, n + layers.count)
        }
        let final = try residuals(model: model, layer: last, prompts: prompts.map { $0[0] }, positions: positions.map { $0[0] })
        let achieved = (0..<n).map { i in (0..<O).map { final[i][$0] - h0[i][$0] } }
        return MemitResult(edits: edits, offsets: offsets, achieved: achieved, valueLosses: losses, cachedValues: cachedValues)
    }

    /// MEMIT's value step for one request: δ minimising the target NLL over the context prompts
    /// (+ essence KL + weight decay) when added to the residual after block `layer` at the subject.
    static func value(model: TransformerModel, tokenizer: BPETokenizer, request: EditRequest, prompts: [[Int]], positions: [Int],
                      layer: Int, settings: MemitSettings) throws -> ([Float], (Double, Double)) {
        let O = model.config.hiddenSize
        let name = model.mlpOutputWeight(layer: layer)
        let scorer = EditScorer(model: model, tokenizer: tokenizer)
        let (_, target) = try scorer.encode(prompt: request.text, target: request.target)
        let batch = try EditBatches.teacherForced(prompts: prompts, target: target, pad: 0)
        let T = batch.tokens[0].count
        let editRows = positions.enumerated().map { $0.offset * T + $0.element }
        let essence = try EssenceTerm(model: model, tokenizer: tokenizer, subject: try request.keySubject(), template: settings.essenceTemplate)
        let h = try residuals(model: model, layer: layer, prompts: [prompts[0]], positions: [positions[0]])[0]
        let hn2 = max(h.reduce(0) { $0 + $1 * $1 }, 1e-12)
        let limit = settings.clampNorm * hn2.squareRoot()
        var delta = [Float](repeating: 0, count: O), m = delta, v = delta
        let saved = model.residualEdit
        defer { model.residualEdit = saved }
        func inject(_ rows: [Int]) {
            let d = delta
            model.residualEdit = { l, x, _ in if l == layer { for r in rows { for o in 0..<O { x[r * O + o] += d[o] } } } }
        }
        let n = Float(batch.scoredTokens), b1: Float = 0.9, b2: Float = 0.999
        var first = 0.0, lastLoss = 0.0
        for step in 1...max(settings.steps + 1, 1) {
            inject(editRows)
            let cap = try model.capture(batch, weight: name, lossScale: 1 / n)
            let nll = cap.lossSum / Double(n)
            var klCap: LinearCapture? = nil
            if settings.klFactor > 0 {
                inject([essence.position])
                klCap = try model.capture(essence.batch, weight: name, lossScale: settings.klFactor)
            }
            let kl = klCap.map { essence.kl(crossEntropy: $0.lossSum) } ?? 0
            let dn = delta.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let loss = nll + Double(settings.klFactor) * kl + Double(settings.weightDecay * dn / hn2)
            guard loss.isFinite else { throw EditError.numerical("MEMIT value loss became \(loss)") }
            if step == 1 { first = loss }
            lastLoss = loss
            if loss < 5e-2 || step > settings.steps { break }
            var g = [Float](repeating: 0, count: O)
            for r in editRows { for o in 0..<O { g[o] += cap.delta[r * O + o] } }
            if let k = klCap { for o in 0..<O { g[o] += k.delta[essence.position * O + o] } }
            if dn > 0 { for o in 0..<O { g[o] += settings.weightDecay * delta[o] / (dn * hn2) } }
            let c1 = 1 - pow(b1, Float(step)), c2 = 1 - pow(b2, Float(step))
            for o in 0..<O {
                m[o] = b1 * m[o] + (1 - b1) * g[o]
                v[o] = b2 * v[o] + (1 - b2) * g[o] * g[o]
                delta[o] -= settings.learningRate * (m[o] / c1) / ((v[o] / c2).squareRoot() + 1e-8)
            }
            let norm = delta.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > limit { for o in 0..<O { delta[o] *= limit / norm } }
        }
        return (delta, (first, lastLoss))
    }

    /// The residual stream after block `layer` at one position of each prompt.
    static func residuals(model: TransformerModel, layer: Int, prompts: [[Int]], positions: [Int]) throws -> [[Float]] {
        let C = model.config.hiddenSize
        var out: [[Float]] = []
        let saved = model.residualTap
        defer { model.residualTap = saved }
        for (p, pos) in zip(prompts, positions) {
            var row = [Float](repeating: 0, count: C)
            model.residualTap = { l, x, _ in if l == layer { for j in 0..<C { row[j] = x[pos * C + j] } } }
            _ = try model.forward([p], lastOnly: true)
            out.append(row)
        }
        return out
    }

    /// Per request, the key (input of layer `layer`'s MLP output matrix) at the subject's last
    /// token, averaged over its prompts: the bare prompt (the first) with weight `bareWeight`, the
    /// context prompts sharing the rest (the bare prompt alone when there are none).
    static func keys(model: TransformerModel, layer: Int, prompts: [[[Int]]], positions: [[Int]], bareWeight: Double) throws -> [[Float]] {
        let I = model.config.intermediateSize
        var out: [[Float]] = []
        for (ps, pos) in zip(prompts, positions) {
            let u = try model.mlpKeys(ps, layer: layer)
            let weights: [Float] = ps.count == 1 ? [1]
                : [Float(bareWeight)] + Array(repeating: Float((1 - bareWeight) / Double(ps.count - 1)), count: ps.count - 1)
            var k = [Float](repeating: 0, count: I)
            var offset = 0
            for b in 0..<ps.count {
                for j in 0..<I { k[j] += u[(offset + pos[b]) * I + j] * weights[b] }
                offset += ps[b].count
            }
            out.append(k)
        }
        return out
    }
}

/// `MemitSettings.valueCache`: one small safetensors file per δ (`delta`, the losses in the metadata).
enum ValueCache {
    /// A 64-bit hash of every parameter, eight bytes at a time (cache keys only, not security).
    static func modelKey(_ model: TransformerModel) -> UInt64 {
        let P = model.parameters
        var h: UInt64 = 0x9e3779b97f4a7c15
        for e in model.layout.entries {
            var x = FNV1a(); x.add(Array(e.name.utf8)); h = (h ^ x.value) &* 0xff51afd7ed558ccd
            let words = e.count / 2
            (P.base + e.offset).withMemoryRebound(to: UInt64.self, capacity: words) { w in
                for i in 0..<words { h = (h ^ w[i]) &* 0x100000001b3; h ^= h >> 29 }
            }
            if e.count % 2 == 1 { h = (h ^ UInt64(P.base[e.offset + e.count - 1].bitPattern)) &* 0x100000001b3 }
        }
        return h
    }

    static func url(in dir: URL, modelKey: UInt64, tokenizer: BPETokenizer, request: EditRequest, prompts: [[Int]], positions: [Int],
                    layer: Int, settings: MemitSettings) -> URL {
        var h = FNV1a()
        func add(_ s: String) { h.add(Array(s.utf8)); h.add([0]) }
        add("memit-value v2 \(modelKey) layer \(layer)")
        add("\(settings.steps) \(settings.learningRate) \(settings.weightDecay) \(settings.clampNorm) \(settings.klFactor) \(settings.contextTokens)")
        add(settings.essenceTemplate)
        add(request.text); add(request.target); add((try? request.keySubject()) ?? "")
        add(tokenizer.encode(request.text).map(String.init).joined(separator: ","))
        add(tokenizer.encode(request.target, addSpecialTokens: false).map(String.init).joined(separator: ","))
        for p in prompts { add(p.map(String.init).joined(separator: ",")) }
        add(positions.map(String.init).joined(separator: ","))
        return dir.appendingPathComponent("memit-value-\(String(h.value, radix: 16)).safetensors")
    }

    static func read(_ url: URL, dimension: Int) -> (delta: [Float], losses: (Double, Double))? {
        guard FileManager.default.fileExists(atPath: url.path), let f = try? SafetensorsFile(url: url),
              let t = try? f.tensor("delta"), t.shape.dims == [dimension],
              let a = f.metadata["loss_first"].flatMap(Double.init), let b = f.metadata["loss_last"].flatMap(Double.init) else { return nil }
        return (t.scalars, (a, b))
    }

    static func write(_ url: URL, delta: [Float], losses: (Double, Double)) throws {
        do { try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true) } catch {
            throw EditError.cannotRead(path: url.deletingLastPathComponent().path, reason: "cannot create: \(error)")
        }
        let w = try SafetensorsWriter(url: url, entries: [TensorEntry(name: "delta", dtype: .f32, shape: Shape([delta.count]))],
                                      metadata: ["loss_first": String(losses.0), "loss_last": String(losses.1)])
        try w.write("delta", Tensor(shape: [delta.count], scalars: delta))
        try w.finish()
    }
}
