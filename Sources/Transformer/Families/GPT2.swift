import Foundation

/// GPT-2: LayerNorm, learned positions, fused qkv (Conv1D weights stored (in, out)), GELU MLP,
/// biases everywhere, tied embeddings.
public enum GPT2Family: ModelFamilyDefinition {
    public static let family = ModelConfig.Family.gpt2
    public static let modelTypes = ["gpt2"]

    public static func config(_ r: ConfigReader) throws -> ModelConfig {
        let hidden = try r.int("n_embd"), heads = try r.int("n_head")
        let activation = try r.activation(["activation_function"], default: "gelu_new",
                                          allowed: ["gelu_new": .geluTanh, "gelu_pytorch_tanh": .geluTanh, "gelu": .gelu])
        if try r.bool("scale_attn_by_inverse_layer_idx", false) || !(try r.bool("scale_attn_weights", true)) {
            throw r.error("scale_attn_weights", "only the standard 1/sqrt(d) scaling is supported")
        }
        guard hidden % heads == 0 else { throw r.error("n_head", "\(heads) does not divide n_embd \(hidden)") }
        return ModelConfig(modelType: "gpt2", family: family, vocabSize: try r.int("vocab_size"), hiddenSize: hidden,
                           intermediateSize: try r.int("n_inner", 4 * hidden), layers: try r.int("n_layer"), heads: heads, kvHeads: heads,
                           headDim: hidden / heads, normEps: Float(try r.double("layer_norm_epsilon", 1e-5)), ropeTheta: 0,
                           maxPositions: try r.int("n_positions", 1024), tieEmbeddings: try r.bool("tie_word_embeddings", true),
                           qkvBias: true, outputBias: true, mlpBias: true, activation: activation,
                           bosTokenId: r.ids("bos_token_id").first, eosTokenIds: r.ids("eos_token_id"))
    }

    public static func block(_ c: ModelConfig) -> BlockDescription {
        BlockDescription(embedding: "transformer.wte.weight", positionEmbedding: "transformer.wpe.weight", layerPrefix: "transformer.h.",
                         finalNorm: "transformer.ln_f", norm: .layer, weightLayout: .inOut, inputNorm: "ln_1", qkv: .fused("attn.c_attn"),
                         attentionOutput: "attn.c_proj", mlpNorm: "ln_2", mlpIn: .separate(["mlp.c_fc"]), gated: false,
                         mlpOutput: "mlp.c_proj", rotary: false)
    }
}
