import Foundation

/// Llama, Mistral and Qwen2: RMSNorm, rotary positions, grouped-query attention, SwiGLU MLP.
/// Qwen2 has q/k/v biases; Llama may have `attention_bias` / `mlp_bias`; Mistral attends within
/// `sliding_window` on every layer, Qwen2 on the layers from `max_window_layers` when
/// `use_sliding_window` is set.
public enum LlamaFamily: ModelFamilyDefinition {
    public static let family = ModelConfig.Family.llama
    public static let modelTypes = ["llama", "mistral", "qwen2"]

    public static func config(_ r: ConfigReader) throws -> ModelConfig {
        let type = r.modelType
        let hidden = try r.int("hidden_size"), heads = try r.int("num_attention_heads")
        let attentionBias = try r.bool("attention_bias", false)
        let activation = try r.activation(["hidden_act"], default: "silu", allowed: ["silu": .silu])
        var c = ModelConfig(modelType: type, family: family, vocabSize: try r.int("vocab_size"), hiddenSize: hidden,
                            intermediateSize: try r.int("intermediate_size"), layers: try r.int("num_hidden_layers"), heads: heads,
                            kvHeads: try r.int("num_key_value_heads", heads), headDim: try r.int("head_dim", hidden / heads),
                            normEps: Float(try r.double("rms_norm_eps", 1e-6)), ropeTheta: try r.ropeTheta(10000),
                            ropeScaling: try r.ropeScaling(), maxPositions: try r.int("max_position_embeddings", 2048),
                            tieEmbeddings: try r.bool("tie_word_embeddings", false),
                            qkvBias: type == "qwen2" ? true : attentionBias, outputBias: type == "qwen2" ? false : attentionBias,
                            mlpBias: try r.bool("mlp_bias", false), activation: activation,
                            bosTokenId: r.ids("bos_token_id").first, eosTokenIds: r.ids("eos_token_id"))
        c.slidingWindow = try r.slidingWindow(defaultOn: type == "mistral")
        if c.slidingWindow != nil {
            let from = type == "qwen2" ? try r.int("max_window_layers", 0) : 0
            c.slidingLayers = try r.slidingLayers(count: c.layers) { $0 >= from }
        }
        return c
    }

    public static func block(_ c: ModelConfig) -> BlockDescription {
        BlockDescription(embedding: "model.embed_tokens.weight", layerPrefix: "model.layers.", finalNorm: "model.norm", norm: .rms(offset: 0),
                         inputNorm: "input_layernorm", qkv: .separate(["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
                         attentionOutput: "self_attn.o_proj", mlpNorm: "post_attention_layernorm",
                         mlpIn: .separate(["mlp.gate_proj", "mlp.up_proj"]), gated: true, mlpOutput: "mlp.down_proj", rotary: true)
    }
}

/// Qwen3: Llama's block with a per-head RMSNorm of q and k before the rotary embedding
/// (`q_norm`, `k_norm`), no biases by default, and `head_dim` independent of the hidden size.
public enum Qwen3Family: ModelFamilyDefinition {
    public static let family = ModelConfig.Family.qwen3
    public static let modelTypes = ["qwen3"]

    public static func config(_ r: ConfigReader) throws -> ModelConfig {
        var c = try LlamaFamily.config(r)
        c.family = family
        c.qkvBias = try r.bool("attention_bias", false)
        c.outputBias = c.qkvBias
        c.qkNorm = true
        if c.slidingWindow != nil {
            let from = try r.int("max_window_layers", 0)
            c.slidingLayers = try r.slidingLayers(count: c.layers) { $0 >= from }
        }
        return c
    }

    public static func block(_ c: ModelConfig) -> BlockDescription {
        var d = LlamaFamily.block(c)
        d.qkNorm = ("self_attn.q_norm", "self_attn.k_norm")
        return d
    }
}

/// Phi-3: Llama's block with fused projections, `qkv_proj` (q, k, v rows) and `gate_up_proj`
/// (gate, then up rows); windowed attention when `sliding_window` is set.
public enum Phi3Family: ModelFamilyDefinition {
    public static let family = ModelConfig.Family.phi3
    public static let modelTypes = ["phi3"]

    public static func config(_ r: ConfigReader) throws -> ModelConfig {
        if r.has("partial_rotary_factor"), (r.json["partial_rotary_factor"] as? NSNumber)?.doubleValue != 1 {
            throw r.error("partial_rotary_factor", "only 1.0 (rotary on the whole head) is supported")
        }
        if let rs = r.json["rope_scaling"] as? [String: Any], let kind = rs["type"] as? String ?? rs["rope_type"] as? String, kind != "default" {
            throw r.error("rope_scaling.type", "\"\(kind)\" (Phi-3's long-context scaling) is not supported")
        }
        var c = try LlamaFamily.config(r)
        c.family = family
        c.qkvBias = try r.bool("attention_bias", false)
        c.outputBias = c.qkvBias
        c.slidingWindow = r.has("sliding_window") ? try r.int("sliding_window") : nil
        c.slidingLayers = nil
        return c
    }

    public static func block(_ c: ModelConfig) -> BlockDescription {
        var d = LlamaFamily.block(c)
        d.qkv = .fused("self_attn.qkv_proj")
        d.mlpIn = .fused("mlp.gate_up_proj")
        return d
    }
}
