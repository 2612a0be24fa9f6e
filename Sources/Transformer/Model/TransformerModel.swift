import Foundation
import Tensors

/// A decoder-only transformer of any registered family (Llama, Mistral, Qwen2/3, Gemma 2/3,
/// Phi-3, GPT-2), its parameters in one buffer, its steps read from `config.block`.
///
/// `forward` runs a batch of equal-length token sequences, continuing from what `cache` holds,
/// and returns logits (B, T, V) — or (B, 1, V) for the last position only. Each step of the
/// block is a separate forward function with a shape comment (RMSNorm.swift, Attention.swift...),
/// so a backward pass can sit beside each.
public final class TransformerModel: @unchecked Sendable {
    public let config: ModelConfig
    public let parameters: ParameterBuffer
    /// The family's block description (names and steps), read by every pass.
    public let block: BlockDescription
    /// Rotary inverse frequencies of the global layers, and of the sliding ones when their base
    /// differs (Gemma 3's `rope_local_base_freq`).
    let invFreq: [Float], localInvFreq: [Float]
    /// Parameter name -> stage (`BlockDescription`), for the backward's stopping rule.
    let stages: [String: Int]
    /// `block.steps`, computed once.
    let steps: [BlockDescription.Step]
    /// GGUF block-quantised copies of weight matrices (by Hugging Face name), used instead of
    /// the Float32 parameters when few rows are processed (decoding). Empty unless loaded from GGUF.
    public internal(set) var quantized: [String: QuantizedMatrix] = [:]
    /// At most this many rows go through the quantised kernels; more use sgemm.
    public var quantizedRowLimit = 2
    /// Parameters that held NaN/±Inf when loaded (name, count), counted while the weights were
    /// copied into the buffer; `requireFiniteWeights` turns them into an error.
    public internal(set) var nonFiniteWeights: [(tensor: String, count: Int, elements: Int)] = []
    /// Where the weights were loaded from (for error messages).
    public internal(set) var source: String = "model"
    /// Called by `forward` after every block with the block index and the residual stream
    /// (B·T rows of hiddenSize floats); MEMIT reads the hidden state at its last edited layer.
    public var residualTap: ((_ layer: Int, _ residual: UnsafePointer<Float>, _ rows: Int) -> Void)? = nil
    /// Called by `forward` and the training forward after every block, before `residualTap`, to
    /// change the residual stream in place (an additive change leaves the backward unchanged: the
    /// gradient at a block's output is the gradient of what was added to it). MEMIT's value step.
    public var residualEdit: ((_ layer: Int, _ residual: UnsafeMutablePointer<Float>, _ rows: Int) -> Void)? = nil

    public init(config: ModelConfig) {
        self.config = config
        parameters = ParameterBuffer(layout: ParameterLayout(config: config))
        let d = config.block
        block = d
        let global = d.rotary ? ropeInverseFrequencies(headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling) : []
        invFreq = config.ropeLinearFactor.map { f in global.map { $0 / Float(f) } } ?? global
        localInvFreq = d.rotary ? config.localRopeTheta.map { ropeInverseFrequencies(headDim: config.headDim, theta: $0, scaling: nil) } ?? invFreq : []
        var st: [String: Int] = [:]
        let steps = d.steps
        self.steps = steps
        for l in 0..<config.layers {
            for (i, step) in steps.enumerated() {
                for m in d.modules(of: step) { for suffix in [".weight", ".bias"] { st[d.name(l, m) + suffix] = 1 + steps.count * l + i } }
            }
        }
        for suffix in [".weight", ".bias"] { st[d.finalNorm + suffix] = 1 + steps.count * config.layers }
        st["lm_head.weight"] = 2 + steps.count * config.layers
        stages = st
    }

    /// Columns per row of the scratch a fused projection's output goes through (qkv, gate_up;
    /// 0 when every projection is separate).
    var fusedWidth: Int {
        let c = config
        if case .fused = block.qkv, case .fused = block.mlpIn { return max(c.qDim + 2 * c.kvDim, 2 * c.intermediateSize) }
        if case .fused = block.qkv { return c.qDim + 2 * c.kvDim }
        if case .fused = block.mlpIn { return 2 * c.intermediateSize }
        return 0
    }

    /// Steps per block (S in the stage numbering).
    var stepCount: Int { steps.count }

    /// The stage of step `step` in layer `l`.
    func stage(_ l: Int, _ step: BlockDescription.Step) -> Int { 1 + stepCount * l + (steps.firstIndex(of: step) ?? 0) }

    /// Layer `l`'s attention options: scale, window, soft-cap.
    func attentionOptions(layer l: Int) -> AttentionOptions {
        AttentionOptions(D: config.headDim, scale: config.attentionScale, window: config.isSliding(layer: l) ? config.slidingWindow : nil,
                         softcap: config.attentionSoftcap)
    }

    func invFreq(layer l: Int) -> [Float] { config.isSliding(layer: l) ? localInvFreq : invFreq }

    public var layout: ParameterLayout { parameters.layout }

    /// Throws `ModelError.nonFinite` naming the first parameter that held NaN/±Inf when loaded.
    /// `eval`, `generate` and `edit` call it unless `--allow-nonfinite` is given.
    public func requireFiniteWeights() throws {
        guard let (t, c, n) = nonFiniteWeights.first else { return }
        throw ModelError.nonFinite(source: source, tensor: t, count: c, elements: n)
    }

    /// The embedding table and the output projection (the same tensor when tied).
    var embeddingName: String { block.embedding }
    var outputName: String { config.tieEmbeddings ? embeddingName : "lm_head.weight" }

    public func makeCache(batch: Int, capacity: Int) -> KVCache { KVCache(config: config, batch: batch, capacity: capacity) }

    /// - Parameters:
    ///   - tokens: B sequences of the same length T >= 1, ids in 0..<vocabSize.
    ///   - cache: past keys/values (advanced by T); nil runs the sequences from position 0.
    ///   - lastOnly: compute logits for the last position only (generation).
    /// - Returns: logits of shape (B, T, V), or (B, 1, V) with `lastOnly`.
    public func forward(_ tokens: [[Int]], cache: KVCache? = nil, lastOnly: Bool = false) throws -> Tensor {
        let c = config
        let B = tokens.count
        guard B > 0, let T = tokens.first?.count, T > 0, tokens.allSatisfy({ $0.count == T }) else {
            throw ModelError.invalidInput("forward needs a non-empty batch of non-empty sequences of equal length")
        }
        for seq in tokens { for t in seq where t < 0 || t >= c.vocabSize {
            throw ModelError.invalidInput("token id \(t) outside the vocabulary (0..<\(c.vocabSize))")
        } }
        let kv = cache ?? makeCache(batch: B, capacity: T)
        guard kv.batch == B, kv.kvDim == c.kvDim, kv.layers == c.layers else {
            throw ModelError.invalidInput("the KV cache was made for another batch size or model")
        }
        let start = kv.length
        guard start + T <= kv.capacity else {
            throw ModelError.invalidInput("sequence of \(start + T) positions exceeds the KV cache capacity \(kv.capacity)")
        }
        // The context length is enforced for every family: attention memory grows as T², and a
        // 1 MB prompt (250k tokens) otherwise aborts on a 250 GB allocation.
        if start + T > c.maxPositions {
            throw ModelError.invalidInput("\(start + T) positions exceed the model's context length of \(c.maxPositions) (max_position_embeddings); shorten the input")
        }
        let flatTokens = tokens.flatMap { $0.map { Int32($0) } }
        let positions = (0..<B * T).map { Int32(start + $0 % T) }
        let rows: [Int]? = lastOnly ? (0..<B).map { $0 * T + T - 1 } : nil
        let logits = run(flatTokens: flatTokens, positions: positions, layout: .batch(B: B, T: T, cache: kv, start: start), logitRows: rows)
        kv.length = start + T
        return Tensor(shape: [B, lastOnly ? 1 : T, c.vocabSize], scalars: logits)
    }

    /// Several independent sequences laid end to end in one pass ("packing"): each starts at
    /// position 0 and attends only to itself (block-diagonal causal attention), while every
    /// linear layer sees all rows at once, so the GEMMs are as large as a padded batch's without
    /// computing padding. Logits are computed only for `logitRows` (indices into the
    /// concatenation, in order), the rows an evaluation scores.
    /// - Returns: logits of shape (logitRows.count, V).
    public func forwardPacked(_ sequences: [[Int]], logitRows: [Int]) throws -> Tensor {
        let c = config
        let (segments, total) = try packedSegments(sequences, caller: "forwardPacked")
        for r in logitRows where r < 0 || r >= total {
            throw ModelError.invalidInput("logit row \(r) outside the packed sequence of \(total) tokens")
        }
        let flatTokens = sequences.flatMap { $0.map { Int32($0) } }
        var positions: [Int32] = []
        positions.reserveCapacity(total)
        for seq in sequences { for i in 0..<seq.count { positions.append(Int32(i)) } }
        let logits = run(flatTokens: flatTokens, positions: positions, layout: .packed(segments), logitRows: logitRows)
        return Tensor(shape: [logitRows.count, c.vocabSize], scalars: logits)
    }

    /// The input of layer `layer`'s MLP output matrix (`down_proj` / `c_proj`, the "keys" of
    /// ROME and MEMIT) at every token of `sequences`, each run from position 0 on its own
    /// (packed, no padding), row-major (Σ lengths, intermediateSize). A forward pass through the
    /// layers up to `layer` only: no later layer, no logits, no backward; on the Float32
    /// parameters even when the model holds quantised copies.
    public func mlpKeys(_ sequences: [[Int]], layer: Int) throws -> [Float] {
        let c = config
        guard (0..<c.layers).contains(layer) else { throw ModelError.invalidInput("layer \(layer) outside 0..<\(c.layers)") }
        let (segments, total) = try packedSegments(sequences, caller: "mlpKeys")
        let limit = quantizedRowLimit
        quantizedRowLimit = 0
        defer { quantizedRowLimit = limit }
        var positions: [Int32] = []
        positions.reserveCapacity(total)
        for seq in sequences { for i in 0..<seq.count { positions.append(Int32(i)) } }
        var keys = [Float](repeating: 0, count: total * c.intermediateSize)
        keys.withUnsafeMutableBufferPointer { out in
            _ = run(flatTokens: sequences.flatMap { $0.map { Int32($0) } }, positions: positions, layout: .packed(segments),
                    logitRows: [], keysOf: (layer, out.baseAddress!))
        }
        return keys
    }

    /// Checks packed sequences (non-empty, within the context length and the sliding window,
    /// ids in the vocabulary) and lays them end to end: (offset, length) per sequence and the total.
    func packedSegments(_ sequences: [[Int]], caller: String) throws -> (segments: [(offset: Int, length: Int)], total: Int) {
        let c = config
        guard !sequences.isEmpty, sequences.allSatisfy({ !$0.isEmpty }) else {
            throw ModelError.invalidInput("\(caller) needs a non-empty list of non-empty sequences")
        }
        var segments: [(offset: Int, length: Int)] = []
        var total = 0
        for seq in sequences {
            if seq.count > c.maxPositions {
                throw ModelError.invalidInput("\(seq.count) positions exceed the model's context length of \(c.maxPositions) (max_position_embeddings); shorten the input")
            }
            for t in seq where t < 0 || t >= c.vocabSize {
                throw ModelError.invalidInput("token id \(t) outside the vocabulary (0..<\(c.vocabSize))")
            }
            segments.append((total, seq.count))
            total += seq.count
        }
        return (segments, total)
    }

    /// How the rows of one pass are grouped into sequences for attention.
    enum RowLayout {
        /// B sequences of T rows each, continuing from `start` positions held in `cache`.
        case batch(B: Int, T: Int, cache: KVCache, start: Int)
        /// Independent sequences from position 0, keys and values taken from this pass only.
        case packed([(offset: Int, length: Int)])
    }

    /// The layer walk shared by `forward` and `forwardPacked`. Returns logits for `logitRows`
    /// (all rows when nil), row-major (rows, V).
    /// With `keysOf` = (layer, out): stops inside that layer once the input of its MLP output
    /// matrix is computed, copies it (N rows of intermediateSize) to `out` and returns no logits.
    func run(flatTokens: [Int32], positions: [Int32], layout: RowLayout, logitRows: [Int]?,
             keysOf: (layer: Int, out: UnsafeMutablePointer<Float>)? = nil) -> [Float] {
        let c = config, d = block
        let N = flatTokens.count, C = c.hiddenSize, I = c.intermediateSize

        let x = Scratch(N * C), xn = Scratch(N * C)
        let q = Scratch(N * c.qDim), k = Scratch(N * c.kvDim), v = Scratch(N * c.kvDim)
        let att = Scratch(N * c.qDim), proj = Scratch(N * C)
        let h1 = Scratch(N * I), h2 = Scratch(N * I)
        let fused = Scratch(N * fusedWidth)
        defer { [x, xn, q, k, v, att, proj, h1, h2, fused].forEach { $0.free() } }

        embed(out: x.p, tokens: flatTokens, positions: positions)
        for l in 0..<(keysOf.map { $0.layer + 1 } ?? c.layers) {
            let p = { (m: String) in d.name(l, m) }
            // Attention sub-block.
            norm(out: xn.p, x: x.p, p(d.inputNorm), N: N, C: C)
            projectQKV(q: q.p, k: k.p, v: v.p, x: xn.p, layer: l, N: N, fused: fused.p) { out, x, w, b, n, i, o, _ in
                self.linear(out: out, x: x, weight: w, bias: b, N: n, I: i, O: o)
            }
            if let (qn, kn) = d.qkNorm {
                norm(out: q.p, x: q.p, p(qn), N: N * c.heads, C: c.headDim)
                norm(out: k.p, x: k.p, p(kn), N: N * c.kvHeads, C: c.headDim)
            }
            if d.rotary {
                let f = invFreq(layer: l)
                ropeForward(x: q.p, positions: positions, heads: c.heads, D: c.headDim, invFreq: f)
                ropeForward(x: k.p, positions: positions, heads: c.kvHeads, D: c.headDim, invFreq: f)
            }
            let options = attentionOptions(layer: l)
            switch layout {
            case let .batch(B, T, kv, start):
                for b in 0..<B {
                    let kc = kv.keys(layer: l, sequence: b), vc = kv.values(layer: l, sequence: b)
                    (kc + start * c.kvDim).update(from: k.p + b * T * c.kvDim, count: T * c.kvDim)
                    (vc + start * c.kvDim).update(from: v.p + b * T * c.kvDim, count: T * c.kvDim)
                    attentionForward(out: att.p + b * T * c.qDim, probs: nil, q: q.p + b * T * c.qDim, keys: kc, values: vc,
                                     T: T, start: start, H: c.heads, KV: c.kvHeads, D: c.headDim, options: options)
                }
            case let .packed(segments):
                for (o, n) in segments {
                    attentionForward(out: att.p + o * c.qDim, probs: nil, q: q.p + o * c.qDim, keys: k.p + o * c.kvDim,
                                     values: v.p + o * c.kvDim, T: n, start: 0, H: c.heads, KV: c.kvHeads, D: c.headDim, options: options)
                }
            }
            linear(out: proj.p, x: att.p, weight: p(d.attentionOutput) + ".weight", bias: p(d.attentionOutput) + ".bias", N: N, I: c.qDim, O: C)
            if let pn = d.postAttentionNorm { norm(out: proj.p, x: proj.p, p(pn), N: N, C: C) }
            addInPlace(x.p, proj.p, N * C)
            // MLP sub-block.
            norm(out: xn.p, x: x.p, p(d.mlpNorm), N: N, C: C)
            mlpHidden(h: h1.p, up: h2.p, x: xn.p, layer: l, N: N, fused: fused.p) { out, x, w, b, n, i, o, _ in
                self.linear(out: out, x: x, weight: w, bias: b, N: n, I: i, O: o)
            }
            if d.gated { gatedForward(out: h1.p, gate: h1.p, up: h2.p, count: N * I, activation: c.activation) } else {
                geluForward(h1.p, count: N * I, activation: c.activation)
            }
            if let (kl, out) = keysOf, kl == l { out.update(from: h1.p, count: N * I); return [] }
            linear(out: proj.p, x: h1.p, weight: p(d.mlpOutput) + ".weight", bias: p(d.mlpOutput) + ".bias", N: N, I: I, O: C)
            if let pn = d.postMlpNorm { norm(out: proj.p, x: proj.p, p(pn), N: N, C: C) }
            addInPlace(x.p, proj.p, N * C)
            residualEdit?(l, x.p, N)
            residualTap?(l, UnsafePointer(x.p), N)
        }
        // Final norm and output projection, on the requested rows only.
        let rows: Int
        if let wanted = logitRows {
            rows = wanted.count
            for (i, r) in wanted.enumerated() { (xn.p + i * C).update(from: x.p + r * C, count: C) }
            if rows > 0 { x.p.update(from: xn.p, count: rows * C) }
        } else {
            rows = N
        }
        norm(out: xn.p, x: x.p, d.finalNorm, N: rows, C: C)
        var logits = [Float](repeating: 0, count: rows * c.vocabSize)
        if rows > 0 {
            logits.withUnsafeMutableBufferPointer { out in
                linear(out: out.baseAddress!, x: xn.p, weight: outputName, bias: nil, N: rows, I: C, O: c.vocabSize, layout: .outIn)
                if let cap = c.finalSoftcap { softcapInPlace(out.baseAddress!, count: rows * c.vocabSize, cap: cap) }
            }
        }
        return logits
    }

    /// The token embeddings (scaled for Gemma) plus learned positions (GPT-2), into x (N, C).
    func embed(out x: UnsafeMutablePointer<Float>, tokens: [Int32], positions: [Int32]) {
        let C = config.hiddenSize
        embeddingForward(out: x, tokens: tokens, table: parameters.pointer(embeddingName), C: C)
        if let s = config.embeddingScale { for i in 0..<tokens.count * C { x[i] *= s } }
        if let pe = block.positionEmbedding { positionEmbeddingForward(out: x, positions: positions, table: parameters.pointer(pe), C: C) }
    }

    /// A norm by module name (RMSNorm with the family's offset, or LayerNorm), N rows of C;
    /// `out` may be `x`. `stats` keep (mean, rstd) for the backward.
    func norm(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, _ module: String, N: Int, C: Int,
              mean: UnsafeMutablePointer<Float>? = nil, rstd: UnsafeMutablePointer<Float>? = nil) {
        let P = parameters
        switch block.norm {
        case let .rms(offset):
            rmsNormForward(out: out, rstd: rstd, x: x, weight: P.pointer(module + ".weight"), N: N, C: C, eps: config.normEps, offset: offset)
        case .layer:
            layerNormForward(out: out, mean: mean, rstd: rstd, x: x, weight: P.pointer(module + ".weight"), bias: P.pointer(module + ".bias"),
                             N: N, C: C, eps: config.normEps)
        }
    }

    /// A linear layer's computation, as the forward (quantised-aware) or the training forward
    /// (LoRA-aware) runs it: (out, x, weight name, bias name, N, I, O, layout).
    typealias LinearStep = (UnsafeMutablePointer<Float>, UnsafePointer<Float>, String, String, Int, Int, Int, WeightLayout) -> Void

    /// q (N, qDim), k, v (N, kvDim) from the normalised input x: three products, or one fused
    /// product into `fused` (N, qDim + 2 kvDim) split by columns.
    func projectQKV(q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                    layer l: Int, N: Int, fused: UnsafeMutablePointer<Float>, _ linear: LinearStep) {
        let c = config, d = block, C = c.hiddenSize
        switch d.qkv {
        case let .separate(m):
            for (out, name, O) in [(q, m[0], c.qDim), (k, m[1], c.kvDim), (v, m[2], c.kvDim)] {
                linear(out, x, d.name(l, name) + ".weight", d.name(l, name) + ".bias", N, C, O, d.weightLayout)
            }
        case let .fused(m):
            let W = c.qDim + 2 * c.kvDim
            linear(fused, x, d.name(l, m) + ".weight", d.name(l, m) + ".bias", N, C, W, d.weightLayout)
            splitColumns(fused, rows: N, into: [(q, c.qDim), (k, c.kvDim), (v, c.kvDim)])
        }
    }

    /// The MLP's input products from the normalised x: gate into `h` and up into `up` (gated;
    /// fused gate_up split by columns through `fused` (N, 2I)), or fc into `h` (plain).
    func mlpHidden(h: UnsafeMutablePointer<Float>, up: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, layer l: Int, N: Int,
                   fused: UnsafeMutablePointer<Float>, _ linear: LinearStep) {
        let c = config, d = block, C = c.hiddenSize, I = c.intermediateSize
        switch d.mlpIn {
        case let .separate(m):
            linear(h, x, d.name(l, m[0]) + ".weight", d.name(l, m[0]) + ".bias", N, C, I, d.weightLayout)
            if d.gated { linear(up, x, d.name(l, m[1]) + ".weight", d.name(l, m[1]) + ".bias", N, C, I, d.weightLayout) }
        case let .fused(m):
            linear(fused, x, d.name(l, m) + ".weight", d.name(l, m) + ".bias", N, C, 2 * I, d.weightLayout)
            splitColumns(fused, rows: N, into: [(h, I), (up, I)])
        }
    }

    /// A (out, in)-layout linear layer by parameter name: the quantised kernel for few rows when
    /// the weight has one, sgemm on the Float32 parameters otherwise.
    /// (In, out)-layout weights (GPT-2 Conv1D) run through sgemm.
    func linear(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight: String, bias: String?, N: Int, I: Int, O: Int,
                layout: WeightLayout? = nil) {
        let b = bias.flatMap { parameters.optionalPointer($0) }
        if (layout ?? block.weightLayout) == .inOut {
            linearForward(out: out, x: x, weight: parameters.pointer(weight), bias: b, N: N, I: I, O: O, layout: .inOut)
        } else if N <= quantizedRowLimit, let q = quantized[weight], q.rows == O, q.cols == I {
            quantizedLinearForward(out: out, x: x, weight: q, bias: b, N: N)
        } else {
            linearForward(out: out, x: x, weight: parameters.pointer(weight), bias: b, N: N, I: I, O: O, layout: .outIn)
        }
    }
}

/// A scratch buffer freed explicitly at the end of a forward pass.
final class Scratch {
    let p: UnsafeMutablePointer<Float>
    init(_ count: Int) { p = .allocate(capacity: max(count, 1)) }
    func free() { p.deallocate() }
}

/// Copies the column blocks of a row-major (rows, Σ widths) matrix into (rows, width) matrices:
/// the outputs of a fused projection (qkv, gate_up) apart.
func splitColumns(_ source: UnsafePointer<Float>, rows: Int, into parts: [(UnsafeMutablePointer<Float>, Int)]) {
    let W = parts.reduce(0) { $0 + $1.1 }
    for n in 0..<rows {
        var o = 0
        for (p, w) in parts { (p + n * w).update(from: source + n * W + o, count: w); o += w }
    }
}

/// The inverse of `splitColumns`: (rows, width) matrices side by side into (rows, Σ widths).
func joinColumns(_ parts: [(UnsafeMutablePointer<Float>, Int)], rows: Int, into target: UnsafeMutablePointer<Float>) {
    let W = parts.reduce(0) { $0 + $1.1 }
    for n in 0..<rows {
        var o = 0
        for (p, w) in parts { (target + n * W + o).update(from: p + n * w, count: w); o += w }
    }
}

/// x = cap · tanh(x / cap) (Gemma 2's soft-capping).
func softcapInPlace(_ x: UnsafeMutablePointer<Float>, count: Int, cap: Float) {
    for i in 0..<count { x[i] = cap * tanh(x[i] / cap) }
}

@inline(__always)
func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
    for i in 0..<n { a[i] += b[i] }
}
