import Foundation

/// Gemma 2 (Gemma Team 2024, §2): RMSNorm scaling by (1 + w), a norm before and after both the
/// attention and the MLP ("sandwich"), the embeddings multiplied by √hidden, GeGLU (tanh GELU
/// gate), attention scaled by `query_pre_attn_scalar`^-1/2, tanh soft-capping of the attention
/// scores and of the final logits, and a sliding window on every other layer (the even ones).
public enum Gemma2Family: ModelFamilyDefinition {
    public static let family = ModelConfig.Family.gemma2
    public static let modelTypes = ["gemma2"]

    public static func config(_ r: ConfigReader) throws -> ModelConfig {
        var c = try gemmaBase(r, family: family)
        c.attentionSoftcap = try r.optionalDouble("attn_logit_softcapping").map { Float($0) }
        c.finalSoftcap = try r.optionalDouble("final_logit_softcapping").map { Float($0) }
        c.slidingLayers = try r.slidingLayers(count: c.layers) { $0 % 2 == 0 }
        return c
    }

    public static func block(_ c: ModelConfig) -> BlockDescription {
        BlockDescription(embedding: "model.embed_tokens.weight", layerPrefix: "model.layers.", finalNorm: "model.norm", norm: .rms(offset: 1),
                         inputNorm: "input_layernorm", qkv: .separate(["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
                         attentionOutput: "self_attn.o_proj", postAttentionNorm: "post_attention_layernorm",
                         mlpNorm: "pre_feedforward_layernorm", mlpIn: .separate(["mlp.gate_proj", "mlp.up_proj"]), gated: true,
                         mlpOutput: "mlp.down_proj", postMlpNorm: "post_feedforward_layernorm", rotary: true)
    }

    /// The keys Gemma 2 and 3 share.
    static func gemmaBase(_ r: ConfigReader, family: ModelConfig.Family) throws -> ModelConfig {
        let hidden = try r.int("hidden_size"), heads = try r.int("num_attention_heads")
        let activation = try r.activation(["hidden_activation", "hidden_act"], default: "gelu_pytorch_tanh",
                                          allowed: ["gelu_pytorch_tanh": .geluTanh, "gelu_new": .geluTanh])
        let headDim = try r.int("head_dim", 256)
        let bias = try r.bool("attention_bias", false)
        var c = ModelConfig(modelType: r.modelType, family: family, vocabSize: try r.int("vocab_size"), hiddenSize: hidden,
                            intermediateSize: try r.int("intermediate_size"), layers: try r.int("num_hidden_layers"), heads: heads,
                            kvHeads: try r.int("num_key_value_heads", heads), headDim: headDim,
                            normEps: Float(try r.double("rms_norm_eps", 1e-6)), ropeTheta: try r.ropeTheta(10000),
                            ropeScaling: try r.ropeScaling(), maxPositions: try r.int("max_position_embeddings", 8192),
                            tieEmbeddings: try r.bool("tie_word_embeddings", true), qkvBias: bias, outputBias: bias, mlpBias: false,
                            activation: activation, bosTokenId: r.ids("bos_token_id").first, eosTokenIds: r.ids("eos_token_id"))
        c.normWeightOffset = 1
        c.embeddingScale = Float(hidden).squareRoot()
        c.attentionScale = 1 / Float(try r.double("query_pre_attn_scalar", Double(headDim))).squareRoot()
        c.slidingWindow = r.has("sliding_window") ? try r.int("sliding_window") : nil
        return c
    }
}

/// Gemma 3's text decoder (`gemma3_text`; Gemma Team 2025, §2): Gemma 2's block with a per-head
/// norm of q and k instead of soft-capping, and local layers (a sliding window, `layer_types`
/// or 5 local to 1 global) whose rotary base is `rope_local_base_freq`.
public enum Gemma3Family: ModelFamilyDefinition {
    public static let family = ModelConfig.Family.gemma3
    public static let modelTypes = ["gemma3_text"]

    public static func config(_ r: ConfigReader) throws -> ModelConfig {
        var c = try Gemma2Family.gemmaBase(r, family: family)
        c.qkNorm = true
        c.attentionSoftcap = try r.optionalDouble("attn_logit_softcapping").map { Float($0) }
        c.finalSoftcap = try r.optionalDouble("final_logit_softcapping").map { Float($0) }
        c.ropeTheta = try r.ropeTheta(1_000_000)
        let perKind = (r.json["rope_parameters"] as? [String: Any])?["sliding_attention"] != nil
        c.localRopeTheta = perKind ? try r.ropeTheta(10000, kind: "sliding_attention") : try r.double("rope_local_base_freq", 10000)
        let pattern = try r.int("sliding_window_pattern", 6)
        c.slidingLayers = try r.slidingLayers(count: c.layers) { ($0 + 1) % pattern != 0 }
        return c
    }

    public static func block(_ c: ModelConfig) -> BlockDescription {
        var d = Gemma2Family.block(c)
        d.qkNorm = ("self_attn.q_norm", "self_attn.k_norm")
        return d
    }
}
