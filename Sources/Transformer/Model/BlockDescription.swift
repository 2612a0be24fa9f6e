import Foundation

/// A decoder family's structure, described once: tensor names, norm kind, how the projections
/// are laid out (separate or fused, (out, in) or GPT-2's (in, out)), and which optional steps a
/// block has. The forward pass, the training forward, the backward pass, the parameter layout,
/// LoRA targets and the editors' layer choice all read it; no other code branches on the family.
///
/// Every block is a pre-norm residual block, its steps in this order (absent ones skipped):
///
///     xn = norm(x)                        inputNorm
///     q, k, v = xn Wq, xn Wk, xn Wv       qkv          (fused: one matrix, split by columns)
///     q, k = norm(q), norm(k) per head    qkNorm       (Qwen3, Gemma 3)
///     q, k = rope(q), rope(k)                          (when the family has rotary positions)
///     a = attention(q, k, v) Wo           attentionOutput
///     a = norm(a)                         postAttentionNorm  (Gemma 2/3 "sandwich" norms)
///     x = x + a
///     xn = norm(x)                        mlpNorm
///     h = act(xn Wgate) * (xn Wup)        mlpIn        (gated; fused gate_up split by columns)
///       or act(xn Wfc)                                 (plain, GPT-2)
///     m = h Wdown                         mlpOutput
///     m = norm(m)                         postMlpNorm
///     x = x + m
///
/// A parameter's *stage* is its step's position in the whole forward order: 0 the embeddings,
/// 1 + S·l + i for step i (of S) of layer l, then the final norm and the head. The backward
/// computes the input gradient of a step only when something earlier trains.
public struct BlockDescription: Sendable, Equatable {
    public enum Norm: Sendable, Equatable {
        /// RMSNorm scaling by (offset + weight): offset 0 for Llama, 1 for Gemma (which stores w - 1).
        case rms(offset: Float)
        /// LayerNorm with weight and bias (GPT-2).
        case layer
    }

    /// Linear modules (names relative to the layer prefix, without ".weight") computing several
    /// outputs: one module each, or one fused module whose output columns are the parts in order.
    public enum Projection: Sendable, Equatable {
        case separate([String])
        case fused(String)

        public var modules: [String] {
            switch self {
            case let .separate(m): return m
            case let .fused(m): return [m]
            }
        }
    }

    public enum Step: String, Sendable, Equatable, CaseIterable {
        case inputNorm, qkv, qkNorm, attentionOutput, postAttentionNorm, mlpNorm, mlpIn, mlpOutput, postMlpNorm
    }

    public var embedding: String
    public var positionEmbedding: String?
    public var layerPrefix: String
    /// The final norm's module name ("model.norm").
    public var finalNorm: String
    public var norm: Norm
    public var weightLayout: WeightLayout
    public var inputNorm: String
    /// q, k, v (three separate modules, or one fused).
    public var qkv: Projection
    /// Per-head norms of q and k, applied before the rotary embedding.
    public var qkNorm: (q: String, k: String)?
    public var attentionOutput: String
    public var postAttentionNorm: String?
    public var mlpNorm: String
    /// gate and up (gated) or fc (plain).
    public var mlpIn: Projection
    public var gated: Bool
    public var mlpOutput: String
    public var postMlpNorm: String?
    public var rotary: Bool

    public init(embedding: String, positionEmbedding: String? = nil, layerPrefix: String, finalNorm: String, norm: Norm,
                weightLayout: WeightLayout = .outIn, inputNorm: String, qkv: Projection, qkNorm: (q: String, k: String)? = nil,
                attentionOutput: String, postAttentionNorm: String? = nil, mlpNorm: String, mlpIn: Projection, gated: Bool,
                mlpOutput: String, postMlpNorm: String? = nil, rotary: Bool) {
        self.embedding = embedding; self.positionEmbedding = positionEmbedding; self.layerPrefix = layerPrefix
        self.finalNorm = finalNorm; self.norm = norm; self.weightLayout = weightLayout; self.inputNorm = inputNorm
        self.qkv = qkv; self.qkNorm = qkNorm; self.attentionOutput = attentionOutput; self.postAttentionNorm = postAttentionNorm
        self.mlpNorm = mlpNorm; self.mlpIn = mlpIn; self.gated = gated; self.mlpOutput = mlpOutput; self.postMlpNorm = postMlpNorm
        self.rotary = rotary
    }

    public static func == (a: BlockDescription, b: BlockDescription) -> Bool {
        a.embedding == b.embedding && a.positionEmbedding == b.positionEmbedding && a.layerPrefix == b.layerPrefix
            && a.finalNorm == b.finalNorm && a.norm == b.norm && a.weightLayout == b.weightLayout && a.inputNorm == b.inputNorm
            && a.qkv == b.qkv && a.qkNorm?.q == b.qkNorm?.q && a.qkNorm?.k == b.qkNorm?.k && a.attentionOutput == b.attentionOutput
            && a.postAttentionNorm == b.postAttentionNorm && a.mlpNorm == b.mlpNorm && a.mlpIn == b.mlpIn && a.gated == b.gated
            && a.mlpOutput == b.mlpOutput && a.postMlpNorm == b.postMlpNorm && a.rotary == b.rotary
    }

    /// The steps this family's blocks have, in forward order.
    public var steps: [Step] {
        var s: [Step] = [.inputNorm, .qkv]
        if qkNorm != nil { s.append(.qkNorm) }
        s.append(.attentionOutput)
        if postAttentionNorm != nil { s.append(.postAttentionNorm) }
        s += [.mlpNorm, .mlpIn, .mlpOutput]
        if postMlpNorm != nil { s.append(.postMlpNorm) }
        return s
    }

    /// The modules (relative names) of one step.
    public func modules(of step: Step) -> [String] {
        switch step {
        case .inputNorm: return [inputNorm]
        case .qkv: return qkv.modules
        case .qkNorm: return qkNorm.map { [$0.q, $0.k] } ?? []
        case .attentionOutput: return [attentionOutput]
        case .postAttentionNorm: return postAttentionNorm.map { [$0] } ?? []
        case .mlpNorm: return [mlpNorm]
        case .mlpIn: return mlpIn.modules
        case .mlpOutput: return [mlpOutput]
        case .postMlpNorm: return postMlpNorm.map { [$0] } ?? []
        }
    }

    /// The linear modules of a block (LoRA targets, spectral tables), in forward order.
    public var linearModules: [String] { qkv.modules + [attentionOutput] + mlpIn.modules + [mlpOutput] }

    /// The MLP's matrices (MEND's default edit targets), in forward order.
    public var mlpModules: [String] { mlpIn.modules + [mlpOutput] }

    /// `layerPrefix` + layer + "." + module.
    public func name(_ layer: Int, _ module: String) -> String { "\(layerPrefix)\(layer).\(module)" }
}

extension ModelConfig {
    /// This configuration's block description, from its family's definition.
    public var block: BlockDescription { ModelFamilies.definition(of: family).block(self) }

    /// Whether layer `l` attends within `slidingWindow` only (Mistral: every layer; Gemma 2/3,
    /// Qwen: per `layer_types`).
    public func isSliding(layer l: Int) -> Bool {
        guard slidingWindow != nil else { return false }
        guard let kinds = slidingLayers else { return true }
        return l < kinds.count && kinds[l]
    }
}

extension ParameterLayout {
    /// The layout of a model with this config, in checkpoint order: the embeddings, each layer's
    /// steps (a step's weights, then its biases), the final norm and an untied head.
    public init(config c: ModelConfig) {
        self.init()
        let d = c.block
        let C = c.hiddenSize, I = c.intermediateSize
        func linear(_ name: String, out O: Int, in I: Int) { add(name + ".weight", d.weightLayout == .outIn ? [O, I] : [I, O]) }
        func norm(_ name: String, _ width: Int) {
            add(name + ".weight", [width])
            if d.norm == .layer { add(name + ".bias", [width]) }
        }
        add(d.embedding, [c.vocabSize, C])
        if let pe = d.positionEmbedding { add(pe, [c.maxPositions, C]) }
        for l in 0..<c.layers {
            let p = { (m: String) in d.name(l, m) }
            for step in d.steps {
                switch step {
                case .inputNorm: norm(p(d.inputNorm), C)
                case .qkv:
                    switch d.qkv {
                    case let .separate(m):
                        linear(p(m[0]), out: c.qDim, in: C); linear(p(m[1]), out: c.kvDim, in: C); linear(p(m[2]), out: c.kvDim, in: C)
                        if c.qkvBias { add(p(m[0]) + ".bias", [c.qDim]); add(p(m[1]) + ".bias", [c.kvDim]); add(p(m[2]) + ".bias", [c.kvDim]) }
                    case let .fused(m):
                        linear(p(m), out: c.qDim + 2 * c.kvDim, in: C)
                        if c.qkvBias { add(p(m) + ".bias", [c.qDim + 2 * c.kvDim]) }
                    }
                case .qkNorm:
                    if let (q, k) = d.qkNorm { norm(p(q), c.headDim); norm(p(k), c.headDim) }
                case .attentionOutput:
                    linear(p(d.attentionOutput), out: C, in: c.qDim)
                    if c.outputBias { add(p(d.attentionOutput) + ".bias", [C]) }
                case .postAttentionNorm: norm(p(d.postAttentionNorm!), C)
                case .mlpNorm: norm(p(d.mlpNorm), C)
                case .mlpIn:
                    switch d.mlpIn {
                    case let .separate(m):
                        for n in m { linear(p(n), out: I, in: C) }
                        if c.mlpBias { for n in m { add(p(n) + ".bias", [I]) } }
                    case let .fused(m):
                        linear(p(m), out: 2 * I, in: C)
                        if c.mlpBias { add(p(m) + ".bias", [2 * I]) }
                    }
                case .mlpOutput:
                    linear(p(d.mlpOutput), out: C, in: I)
                    if c.mlpBias { add(p(d.mlpOutput) + ".bias", [C]) }
                case .postMlpNorm: norm(p(d.postMlpNorm!), C)
                }
            }
        }
        norm(d.finalNorm, C)
        if !c.tieEmbeddings { add("lm_head.weight", [c.vocabSize, C]) }
    }
}
