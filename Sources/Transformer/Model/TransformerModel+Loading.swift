import Checkpoints
import Foundation
import Tensors

extension ModelConfig {
    /// The configuration of a GGUF file: the config.json its architecture's table writes
    /// (`GGUFArchitecture.configJSON`, the one `convert-gguf` writes), read by the family.
    public init(gguf: GGUFFile) throws {
        let path = gguf.url.path
        let (arch, architecture): (String, GGUFArchitecture)
        do { (arch, architecture) = try GGUFArchitecture.of(gguf) } catch GGUFError.invalidMetadata(_, _, _) {
            throw ModelError.unsupportedModelType(path: path, modelType: (try? gguf.metadata.string("general.architecture")) ?? "?")
        }
        try self.init(json: try architecture.configJSON(gguf, arch: arch, dtype: .f32), path: path)
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

    /// Loads a GGUF file (any `GGUFArchitecture`), dequantising every tensor to Float32 and
    /// undoing the converter's changes (Q/K row permutation, Gemma's 1 + w norms, GPT-2's
    /// transposes). Unknown tensors are an error.
    public convenience init(gguf: GGUFFile) throws {
        try self.init(config: ModelConfig(gguf: gguf))
        let source = gguf.url.path
        self.source = source
        let (arch, architecture) = try GGUFArchitecture.of(gguf)
        let plan = try architecture.plan(gguf, arch: arch)
        var loaded = Set<String>()
        for (g, hf) in plan {
            guard layout[hf] != nil else { throw ModelError.unexpectedTensor(source: source, name: g) }
            let bad = try parameters.set(hf, try architecture.tensor(gguf, g, heads: config.heads, kvHeads: config.kvHeads), source: source)
            if bad > 0 { nonFiniteWeights.append((hf, bad, layout[hf]?.count ?? 0)) }
            loaded.insert(hf)
        }
        for e in layout.entries where !loaded.contains(e.name) { throw ModelError.missingTensor(source: source, name: e.name) }
        // Keep Q8_0/Q4_1 matrices packed for decoding (the GGUF stays mapped while the model
        // lives) when the file holds them in Hugging Face's (out, in) layout.
        for (g, hf) in plan where layout[hf]?.shape.rank == 2 && config.block.weightLayout == .outIn {
            let heads: Int?
            switch architecture.change(of: g) {
            case .none: heads = nil
            case .unpermute(.query): heads = config.heads
            case .unpermute(.key): heads = config.kvHeads
            case .subtractOne, .transpose: continue
            }
            if let q = QuantizedMatrix.make(gguf, g, permutedHeads: heads) { quantized[hf] = q }
        }
    }
}
