import Checkpoints
import Foundation
import Tensors

extension ModelConfig {
    /// The configuration of a llama-family GGUF file (`general.architecture` llama, mistral or qwen2).
    public init(gguf: GGUFFile) throws {
        let m = gguf.metadata
        let path = gguf.url.path
        let arch = try m.string("general.architecture")
        guard ["llama", "mistral", "qwen2"].contains(arch) else { throw ModelError.unsupportedModelType(path: path, modelType: arch) }
        func int(_ key: String) throws -> Int {
            let v = try m.int("\(arch).\(key)")
            guard v > 0 else { throw ModelError.invalidConfig(path: path, key: "\(arch).\(key)", reason: "\(v) is not positive") }
            return v
        }
        let heads = try int("attention.head_count")
        let hidden = try int("embedding_length")
        let vocab = m["\(arch).vocab_size"] != nil ? try int("vocab_size") : try m.stringArray("tokenizer.ggml.tokens").count
        let headDim = m["\(arch).attention.key_length"] != nil ? try int("attention.key_length") : hidden / heads
        if gguf.info("rope_freqs.weight") != nil {
            throw ModelError.invalidConfig(path: path, key: "rope_freqs.weight", reason: "Llama 3 rope scaling from GGUF is not supported yet")
        }
        let hasQBias = gguf.info("blk.0.attn_q.bias") != nil
        let eos = (try? m.int("tokenizer.ggml.eos_token_id")).map { [$0] } ?? []
        self.init(modelType: arch, family: .llama, vocabSize: vocab, hiddenSize: hidden,
                  intermediateSize: try int("feed_forward_length"), layers: try GGUFNaming.checkedBlockCount(gguf, arch: arch), heads: heads,
                  kvHeads: m["\(arch).attention.head_count_kv"] != nil ? try int("attention.head_count_kv") : heads,
                  headDim: headDim,
                  normEps: Float(try m.double("\(arch).attention.layer_norm_rms_epsilon")),
                  ropeTheta: m["\(arch).rope.freq_base"] != nil ? try m.double("\(arch).rope.freq_base") : 10000,
                  maxPositions: m["\(arch).context_length"] != nil ? try int("context_length") : 2048,
                  tieEmbeddings: gguf.info("output.weight") == nil, qkvBias: hasQBias,
                  outputBias: gguf.info("blk.0.attn_output.bias") != nil, mlpBias: false, activation: .silu,
                  bosTokenId: try? m.int("tokenizer.ggml.bos_token_id"), eosTokenIds: eos)
    }
}

extension TransformerModel {
    /// Opens a model from a path: a `.gguf` file, or a Hugging Face folder / safetensors file
    /// with config.json beside it.
    /// Anything else is resolved by `ModelReference` (adapters merged, deltas on their base, hub ids).
    public static func load(path: String, base: String? = nil) throws -> TransformerModel {
        if path.hasSuffix(".gguf"), base == nil, FileManager.default.fileExists(atPath: path) { return try TransformerModel(gguf: GGUFFile(path: path)) }
        return try TransformerModel(checkpoint: ModelReference.open(path, base: base))
    }

    /// Loads every parameter from a safetensors checkpoint whose folder holds config.json.
    /// Every parameter must be present with its exact shape; checkpoint tensors that are not
    /// parameters are an error, except buffers transformers may save (`attn.bias`,
    /// `attn.masked_bias`, `rotary_emb.inv_freq`) and a duplicate `lm_head.weight` of tied models.
    public convenience init(checkpoint: Checkpoint) throws {
        guard let dir = checkpoint.directory else {
            throw ModelError.cannotRead(path: checkpoint.path, reason: "no folder with config.json")
        }
        try self.init(config: ModelConfig(configJSON: dir.appendingPathComponent("config.json")))
        let source = checkpoint.path
        self.source = source
        var used = Set<String>()
        for e in layout.entries {
            // Hub GPT-2 checkpoints store the transformer's tensors without the "transformer." prefix.
            let candidates = [e.name] + (e.name.hasPrefix("transformer.") ? [String(e.name.dropFirst(12))] : [])
            guard let name = candidates.first(where: { checkpoint.has($0) }) else {
                throw ModelError.missingTensor(source: source, name: e.name)
            }
            let bad = try parameters.set(e.name, checkpoint.tensor(name), source: source)
            if bad > 0 { nonFiniteWeights.append((name, bad, e.count)) }
            used.insert(name)
        }
        for name in checkpoint.tensorNames where !used.contains(name) {
            let ignorable = name.hasSuffix("attn.bias") && config.family == .gpt2 || name.hasSuffix("attn.masked_bias")
                || name.hasSuffix("rotary_emb.inv_freq") || (name == "lm_head.weight" && config.tieEmbeddings)
            if !ignorable { throw ModelError.unexpectedTensor(source: source, name: name) }
        }
    }

    /// Loads a llama-family GGUF file, dequantising every tensor to Float32 and undoing
    /// llama.cpp's Q/K row permutation. Unknown tensors are an error.
    public convenience init(gguf: GGUFFile) throws {
        try self.init(config: ModelConfig(gguf: gguf))
        let source = gguf.url.path
        self.source = source
        var loaded = Set<String>()
        for g in gguf.tensorNames {
            guard let hf = GGUFNaming.huggingFaceName(g) else { throw ModelError.unexpectedTensor(source: source, name: g) }
            let bad = try parameters.set(hf, try ggufTensorAsHuggingFace(gguf, g, config: config), source: source)
            if bad > 0 { nonFiniteWeights.append((hf, bad, layout[hf]?.count ?? 0)) }
            loaded.insert(hf)
        }
        for e in layout.entries where !loaded.contains(e.name) { throw ModelError.missingTensor(source: source, name: e.name) }
        // Keep Q8_0/Q4_1 matrices packed for decoding (the GGUF stays mapped while the model lives).
        let permutes = config.modelType == "llama" || config.modelType == "mistral"
        for g in gguf.tensorNames {
            guard let hf = GGUFNaming.huggingFaceName(g), layout[hf]?.shape.rank == 2 else { continue }
            let heads: Int? = switch GGUFNaming.permutation(of: g) {
            case .query: permutes ? config.heads : nil
            case .key: permutes ? config.kvHeads : nil
            case nil: nil
            }
            if let q = QuantizedMatrix.make(gguf, g, permutedHeads: heads) { quantized[hf] = q }
        }
    }
}

/// A GGUF tensor dequantised, with Q/K rows restored to Hugging Face order (llama.cpp permutes
/// them for the llama and mistral architectures only; qwen2 keeps Hugging Face's layout).
public func ggufTensorAsHuggingFace(_ gguf: GGUFFile, _ name: String, config: ModelConfig) throws -> Tensor {
    let t = try gguf.tensor(name)
    guard config.modelType == "llama" || config.modelType == "mistral" else { return t }
    switch GGUFNaming.permutation(of: name) {
    case .query: return try GGUFNaming.unpermuteRows(t, heads: config.heads)
    case .key: return try GGUFNaming.unpermuteRows(t, heads: config.kvHeads)
    case nil: return t
    }
}
