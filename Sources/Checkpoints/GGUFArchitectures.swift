import Foundation
import Tensors

/// What llama.cpp's converter (convert_hf_to_gguf.py) does to one model family, and how to undo
/// it: the GGUF tensor names of each Hugging Face tensor, the changes made to some tensors, and
/// the `{arch}.*` metadata that becomes config.json. `convert-gguf`, the GGUF checkpoints that
/// `merge`, `inspect` and `spectrum` read, and the transformer's native GGUF loading all read a
/// file through its architecture here; adding a family is one value and one line in `all`.
///
/// The tables are the `gguf` package's `TensorNameMap` for these architectures; the changes are
/// the converter's: llama and mistral Q/K rows permuted to interleaved pairs (`GGUFNaming`),
/// Gemma's RMSNorm weights stored as 1 + w (llama.cpp's RMSNorm multiplies by the weight
/// itself), GPT-2's Conv1D matrices transposed to (out, in) and its tied output matrix written
/// out as `output.weight`.
public struct GGUFArchitecture: Sendable {
    /// What to do to a GGUF tensor to get the Hugging Face one.
    public enum Change: Sendable, Equatable {
        case none
        /// Undo the Q/K row permutation (rows of `heads` query or key/value heads).
        case unpermute(GGUFNaming.Permuted)
        /// The file holds 1 + w (Gemma's norms).
        case subtractOne
        /// The file holds the transpose (GPT-2's Conv1D weights).
        case transpose
    }

    /// `general.architecture` values this entry reads.
    public let names: [String]
    /// The Hugging Face `model_type` and model class written into config.json.
    public let modelType: String
    public let className: String
    let global: [(gguf: String, hf: String)]
    let layerPrefix: String
    let perLayer: [(gguf: String, hf: String)]
    let permutesQK: Bool
    let normsPlusOne: Bool
    /// Per-layer GGUF names stored transposed.
    let transposed: Set<String>
    /// GPT-2: `output.weight` is a copy of `token_embd.weight` when the model ties them.
    let outputMayDuplicateEmbedding: Bool
    /// GGUF tensors with no Hugging Face tensor (derived from the config there) that cannot be
    /// turned back into config keys yet, with the reason.
    let unsupportedTensors: [String: String]
    let extraConfig: @Sendable (GGUFArchitecture.Reader) throws -> [String: Any]

    public static let all: [GGUFArchitecture] = [.llama, .qwen2, .qwen3, .gemma2, .gemma3, .phi3, .gpt2]

    /// Every readable `general.architecture`, for error messages.
    public static var supportedNames: [String] { all.flatMap(\.names) }

    public static func named(_ arch: String) -> GGUFArchitecture? { all.first { $0.names.contains(arch) } }

    /// The architecture of a file, or a typed error naming the file and the value.
    public static func of(_ gguf: GGUFFile) throws -> (arch: String, architecture: GGUFArchitecture) {
        let arch = try gguf.metadata.string("general.architecture")
        guard let a = named(arch) else {
            throw GGUFError.invalidMetadata(path: gguf.url.path, key: "general.architecture",
                                            reason: "\"\(arch)\" is not supported (\(supportedNames.joined(separator: ", ")))")
        }
        return (arch, a)
    }

    // MARK: Names

    /// The Hugging Face name of a GGUF tensor, or nil when the table has none.
    public func huggingFaceName(_ gguf: String) -> String? {
        if let g = global.first(where: { $0.gguf == gguf }) { return g.hf }
        let parts = gguf.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let n = Int(parts[1]), n >= 0, String(n) == parts[1] else { return nil }
        guard let m = perLayer.first(where: { $0.gguf == parts[2] }) else { return nil }
        return "\(layerPrefix)\(n).\(m.hf)"
    }

    /// The GGUF name of a Hugging Face tensor, or nil.
    public func ggufName(_ hf: String) -> String? {
        if let g = global.first(where: { $0.hf == hf }) { return g.gguf }
        guard hf.hasPrefix(layerPrefix) else { return nil }
        let rest = hf.dropFirst(layerPrefix.count)
        guard let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]) else { return nil }
        let tail = String(rest[rest.index(after: dot)...])
        guard let m = perLayer.first(where: { $0.hf == tail }) else { return nil }
        return "blk.\(n).\(m.gguf)"
    }

    /// The change the converter made to a GGUF tensor.
    public func change(of ggufName: String) -> Change {
        if permutesQK, let p = GGUFNaming.permutation(of: ggufName) { return .unpermute(p) }
        if normsPlusOne && ggufName.hasSuffix("norm.weight") { return .subtractOne }
        let parts = ggufName.split(separator: ".", maxSplits: 2)
        if parts.count == 3, parts[0] == "blk", transposed.contains(String(parts[2])) { return .transpose }
        return .none
    }

    // MARK: Tensors

    /// Every GGUF tensor with its Hugging Face name, in file order: the block count checked
    /// against the tensors, unknown and unsupported tensors refused (naming the file and tensor),
    /// every type decodable. GPT-2's written-out copy of a tied embedding is left out.
    public func plan(_ gguf: GGUFFile, arch: String) throws -> [(gguf: String, hf: String)] {
        let path = gguf.url.path
        _ = try GGUFNaming.checkedBlockCount(gguf, arch: arch)
        let skipOutput = try outputIsTiedCopy(gguf)
        var plan: [(gguf: String, hf: String)] = []
        for t in gguf.tensors {
            if let reason = unsupportedTensors[t.name] { throw GGUFError.invalidMetadata(path: path, key: t.name, reason: reason) }
            if skipOutput && t.name == "output.weight" { continue }
            guard let hf = huggingFaceName(t.name) else {
                throw GGUFError.invalidMetadata(path: path, key: t.name, reason: "no Hugging Face name for this tensor in the \(arch) table")
            }
            guard t.type.isDequantizable else { throw GGUFError.unsupportedTensorType(tensor: t.name, type: t.type.description) }
            plan.append((t.name, hf))
        }
        return plan
    }

    /// Whether the model ties its output matrix to the embedding: no `output.weight`, or (GPT-2)
    /// one whose bytes equal `token_embd.weight`'s.
    public func tiesEmbeddings(_ gguf: GGUFFile) throws -> Bool {
        gguf.info("output.weight") == nil ? true : try outputIsTiedCopy(gguf)
    }

    private func outputIsTiedCopy(_ gguf: GGUFFile) throws -> Bool {
        guard outputMayDuplicateEmbedding else { return false }
        return try gguf.sameBytes("output.weight", "token_embd.weight")
    }

    /// The Hugging Face shape of a GGUF tensor.
    public func huggingFaceShape(_ info: GGUFTensorInfo) -> Shape {
        change(of: info.name) == .transpose && info.shape.rank == 2 ? Shape([info.shape[1], info.shape[0]]) : info.shape
    }

    /// A GGUF tensor dequantised to Float32 with the converter's change undone.
    public func tensor(_ gguf: GGUFFile, _ name: String, heads: Int, kvHeads: Int) throws -> Tensor {
        let t = try gguf.tensor(name)
        switch change(of: name) {
        case .none: return t
        case .unpermute(.query): return try GGUFNaming.unpermuteRows(t, heads: heads)
        case .unpermute(.key): return try GGUFNaming.unpermuteRows(t, heads: kvHeads)
        case .subtractOne: return Tensor(shape: t.shape, scalars: t.scalars.map { $0 - 1 })
        case .transpose:
            guard t.shape.rank == 2 else { return t }
            let r = t.shape[0], c = t.shape[1]
            var out = [Float](repeating: 0, count: t.count)
            t.scalars.withUnsafeBufferPointer { s in
                for i in 0..<r { for j in 0..<c { out[j * r + i] = s[i * c + j] } }
            }
            return Tensor(shape: Shape([c, r]), scalars: out)
        }
    }

    /// The head counts the Q/K permutation needs (positive), from the metadata.
    public func headCounts(_ gguf: GGUFFile, arch: String) throws -> (heads: Int, kvHeads: Int) {
        let r = Reader(gguf: gguf, arch: arch)
        let heads = try r.positive("attention.head_count")
        return (heads, try r.positive("attention.head_count_kv", default: heads))
    }

    // MARK: config.json

    /// Typed access to `{arch}.*` metadata, with errors naming the file and key.
    public struct Reader {
        public let gguf: GGUFFile
        public let arch: String
        var m: GGUFMetadata { gguf.metadata }
        public func has(_ key: String) -> Bool { m["\(arch).\(key)"] != nil }
        /// The full key when the file has it; otherwise `d`'s value (nil: a "missing" error).
        private func present<T>(_ key: String, default d: T?) throws -> (full: String, fallback: T?) {
            let full = "\(arch).\(key)"
            if m[full] != nil { return (full, nil) }
            guard let d else { throw GGUFError.invalidMetadata(path: gguf.url.path, key: full, reason: "missing") }
            return (full, d)
        }
        public func positive(_ key: String, default d: Int? = nil) throws -> Int {
            let (full, fallback) = try present(key, default: d)
            if let fallback { return fallback }
            let v = try m.int(full)
            guard v > 0 else { throw GGUFError.invalidMetadata(path: gguf.url.path, key: full, reason: "\(v) is not positive") }
            return v
        }
        public func number(_ key: String, default d: Double? = nil) throws -> Double {
            let (full, fallback) = try present(key, default: d)
            if let fallback { return fallback }
            var v = try m.double(full)
            guard v.isFinite, v > 0 else { throw GGUFError.invalidMetadata(path: gguf.url.path, key: full, reason: "\(v) is not a positive number") }
            // A float32 value (most GGUF numbers) as the decimal it was written from: 1e-05, not 9.99999974737875e-06.
            if let f = Float(exactly: v), let shortest = Double("\(f)") { v = shortest }
            return v
        }
        public func optionalNumber(_ key: String) throws -> Double? { has(key) ? try number(key) : nil }
        public func string(_ key: String) -> String? { try? m.string("\(arch).\(key)") }
    }

    /// config.json for transformers: the keys every architecture shares, then its own. `dtype`
    /// is the stored type of the weights (`torch_dtype`).
    public func configJSON(_ gguf: GGUFFile, arch: String, dtype: DType) throws -> [String: Any] {
        let r = Reader(gguf: gguf, arch: arch)
        let m = gguf.metadata
        // The block count is checked against the tensors before any key is read.
        _ = try GGUFNaming.checkedBlockCount(gguf, arch: arch)
        let vocab = r.has("vocab_size") ? try r.positive("vocab_size") : try m.stringArray("tokenizer.ggml.tokens").count
        guard vocab > 0 else { throw GGUFError.invalidMetadata(path: gguf.url.path, key: "tokenizer.ggml.tokens", reason: "empty vocabulary") }
        var c: [String: Any] = [
            "architectures": [className], "model_type": modelType, "vocab_size": vocab,
            "tie_word_embeddings": try tiesEmbeddings(gguf),
            "torch_dtype": ["F32": "float32", "F16": "float16", "BF16": "bfloat16"][dtype.rawValue] ?? "float32",
        ]
        if let b = try? m.int("tokenizer.ggml.bos_token_id") { c["bos_token_id"] = b }
        if let e = try? m.int("tokenizer.ggml.eos_token_id") { c["eos_token_id"] = e }
        // Written even when absent (null), so that a config class's own default (Phi-3: 32000) does not apply.
        c["pad_token_id"] = (try? m.int("tokenizer.ggml.padding_token_id")).map { $0 as Any } ?? NSNull()
        for (k, v) in try extraConfig(r) { c[k] = v }
        return c
    }

    /// The keys of the rotary, RMSNorm decoders (everything here but GPT-2).
    static func decoderConfig(_ r: Reader, defaultTheta: Double = 10000, defaultContext: Int = 2048) throws -> [String: Any] {
        let heads = try r.positive("attention.head_count")
        let hidden = try r.positive("embedding_length")
        let theta = try r.number("rope.freq_base", default: defaultTheta)
        var rope: [String: Any] = ["rope_type": "default", "rope_theta": theta]
        if let f = try linearRopeFactor(r) { rope = ["rope_type": "linear", "factor": f, "rope_theta": theta] }
        return [
            "num_hidden_layers": try GGUFNaming.checkedBlockCount(r.gguf, arch: r.arch),
            "hidden_size": hidden, "intermediate_size": try r.positive("feed_forward_length"),
            "num_attention_heads": heads, "num_key_value_heads": try r.positive("attention.head_count_kv", default: heads),
            "head_dim": try r.positive("attention.key_length", default: hidden / max(1, heads)),
            "rms_norm_eps": try r.number("attention.layer_norm_rms_epsilon"),
            "rope_theta": theta, "rope_parameters": rope,
            "max_position_embeddings": try r.positive("context_length", default: defaultContext),
            "hidden_act": "silu",
        ]
    }

    /// `{arch}.rope.scaling.type` linear: its `rope.scaling.factor`; none: nil; others refused.
    static func linearRopeFactor(_ r: Reader) throws -> Double? {
        guard let kind = r.string("rope.scaling.type"), kind != "none" else { return nil }
        guard kind == "linear" else {
            throw GGUFError.invalidMetadata(path: r.gguf.url.path, key: "\(r.arch).rope.scaling.type", reason: "\"\(kind)\" rope scaling cannot be read yet (none, linear)")
        }
        return try r.number("rope.scaling.factor")
    }

    /// The sliding window of `{arch}.attention.sliding_window` (0 or absent: none).
    static func slidingWindow(_ r: Reader) throws -> Int? {
        guard r.has("attention.sliding_window") else { return nil }
        let w = try r.gguf.metadata.int("\(r.arch).attention.sliding_window")
        guard w >= 0 else { throw GGUFError.invalidMetadata(path: r.gguf.url.path, key: "\(r.arch).attention.sliding_window", reason: "\(w) is negative") }
        return w == 0 ? nil : w
    }

    // MARK: The architectures

    static let llamaGlobal: [(gguf: String, hf: String)] = [
        ("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"), ("output.weight", "lm_head.weight"),
    ]
    static let llamaAttention: [(gguf: String, hf: String)] = [
        ("attn_norm.weight", "input_layernorm.weight"),
        ("attn_q.weight", "self_attn.q_proj.weight"), ("attn_k.weight", "self_attn.k_proj.weight"), ("attn_v.weight", "self_attn.v_proj.weight"),
        ("attn_q.bias", "self_attn.q_proj.bias"), ("attn_k.bias", "self_attn.k_proj.bias"), ("attn_v.bias", "self_attn.v_proj.bias"),
        ("attn_output.weight", "self_attn.o_proj.weight"),
    ]
    static let llamaMLP: [(gguf: String, hf: String)] = [
        ("ffn_gate.weight", "mlp.gate_proj.weight"), ("ffn_up.weight", "mlp.up_proj.weight"), ("ffn_down.weight", "mlp.down_proj.weight"),
    ]
    static let qkNorms: [(gguf: String, hf: String)] = [("attn_q_norm.weight", "self_attn.q_norm.weight"), ("attn_k_norm.weight", "self_attn.k_norm.weight")]
    static let ropeFreqs = ["rope_freqs.weight": "Llama 3 rope scaling factors cannot be read yet"]

    /// Llama and Mistral (llama.cpp writes Mistral as `llama` too): Q/K rows permuted.
    public static let llama = GGUFArchitecture(
        names: ["llama", "mistral"], modelType: "llama", className: "LlamaForCausalLM", global: llamaGlobal,
        layerPrefix: "model.layers.", perLayer: llamaAttention + [("ffn_norm.weight", "post_attention_layernorm.weight")] + llamaMLP,
        permutesQK: true, normsPlusOne: false, transposed: [], outputMayDuplicateEmbedding: false, unsupportedTensors: ropeFreqs,
        extraConfig: { r in
            var c = try decoderConfig(r)
            if r.arch == "mistral" {
                c["model_type"] = "mistral"; c["architectures"] = ["MistralForCausalLM"]; c["sliding_window"] = try slidingWindow(r) ?? NSNull()
            } else {
                c["attention_bias"] = r.gguf.info("blk.0.attn_q.bias") != nil
                c["mlp_bias"] = false
            }
            return c
        })

    /// Qwen2: Hugging Face's row order kept (rotate-half RoPE in llama.cpp), q/k/v biases.
    public static let qwen2 = GGUFArchitecture(
        names: ["qwen2"], modelType: "qwen2", className: "Qwen2ForCausalLM", global: llamaGlobal,
        layerPrefix: "model.layers.", perLayer: llamaAttention + [("ffn_norm.weight", "post_attention_layernorm.weight")] + llamaMLP,
        permutesQK: false, normsPlusOne: false, transposed: [], outputMayDuplicateEmbedding: false, unsupportedTensors: ropeFreqs,
        extraConfig: { r in try decoderConfig(r, defaultTheta: 1_000_000) })

    /// Qwen3: Qwen2 without biases, with per-head q/k RMSNorms.
    public static let qwen3 = GGUFArchitecture(
        names: ["qwen3"], modelType: "qwen3", className: "Qwen3ForCausalLM", global: llamaGlobal,
        layerPrefix: "model.layers.", perLayer: llamaAttention + qkNorms + [("ffn_norm.weight", "post_attention_layernorm.weight")] + llamaMLP,
        permutesQK: false, normsPlusOne: false, transposed: [], outputMayDuplicateEmbedding: false, unsupportedTensors: ropeFreqs,
        extraConfig: { r in
            var c = try decoderConfig(r, defaultTheta: 1_000_000)
            c["attention_bias"] = r.gguf.info("blk.0.attn_q.bias") != nil
            return c
        })

    static let gemmaLayer: [(gguf: String, hf: String)] = llamaAttention + [
        ("post_attention_norm.weight", "post_attention_layernorm.weight"), ("ffn_norm.weight", "pre_feedforward_layernorm.weight"),
        ("post_ffw_norm.weight", "post_feedforward_layernorm.weight"),
    ] + llamaMLP

    /// The query scale llama.cpp uses for Gemma (no GGUF key holds `query_pre_attn_scalar`): the
    /// head size, except for the 27B models, which scale by hidden / heads (Gemma Team 2024,
    /// Table 1; llama.cpp recognises them by their layer count, 46 for Gemma 2 and 62 for Gemma 3).
    static func gemmaQueryScalar(_ c: [String: Any], twentySevenBLayers: Int) -> Int {
        let layers = c["num_hidden_layers"] as? Int ?? 0, hidden = c["hidden_size"] as? Int ?? 0, heads = c["num_attention_heads"] as? Int ?? 1
        return layers == twentySevenBLayers ? hidden / max(1, heads) : c["head_dim"] as? Int ?? 256
    }

    /// Gemma 2: norms stored as 1 + w, sandwich norms, soft-caps in the metadata, tied output.
    public static let gemma2 = GGUFArchitecture(
        names: ["gemma2"], modelType: "gemma2", className: "Gemma2ForCausalLM", global: llamaGlobal,
        layerPrefix: "model.layers.", perLayer: gemmaLayer,
        permutesQK: false, normsPlusOne: true, transposed: [], outputMayDuplicateEmbedding: false, unsupportedTensors: [:],
        extraConfig: { r in
            var c = try decoderConfig(r, defaultContext: 8192)
            c.removeValue(forKey: "hidden_act")
            c["hidden_activation"] = "gelu_pytorch_tanh"
            c["attn_logit_softcapping"] = try r.optionalNumber("attn_logit_softcapping") ?? NSNull()
            c["final_logit_softcapping"] = try r.optionalNumber("final_logit_softcapping") ?? NSNull()
            c["sliding_window"] = try slidingWindow(r) ?? NSNull()
            c["query_pre_attn_scalar"] = gemmaQueryScalar(c, twentySevenBLayers: 46)
            return c
        })

    /// Gemma 3 (text): Gemma 2's block with q/k norms (also stored as 1 + w), five local layers
    /// to one global (llama.cpp's pattern; `attention.sliding_window_pattern` when the file has
    /// it), the local layers' rotary base `rope.freq_base_swa` (default 10000).
    public static let gemma3 = GGUFArchitecture(
        names: ["gemma3"], modelType: "gemma3_text", className: "Gemma3ForCausalLM", global: llamaGlobal,
        layerPrefix: "model.layers.", perLayer: gemmaLayer + qkNorms,
        permutesQK: false, normsPlusOne: true, transposed: [], outputMayDuplicateEmbedding: false, unsupportedTensors: [:],
        extraConfig: { r in
            var c = try decoderConfig(r, defaultTheta: 1_000_000, defaultContext: 131_072)
            c.removeValue(forKey: "hidden_act")
            c["hidden_activation"] = "gelu_pytorch_tanh"
            // Linear scaling (4B-27B: factor 8) applies to the global layers only.
            let local = try r.number("rope.freq_base_swa", default: 10000)
            c["rope_parameters"] = ["full_attention": c["rope_parameters"] ?? [:],
                                    "sliding_attention": ["rope_type": "default", "rope_theta": local]]
            c["rope_local_base_freq"] = local
            c["final_logit_softcapping"] = try r.optionalNumber("final_logit_softcapping") ?? NSNull()
            let window = try slidingWindow(r)
            c["sliding_window"] = window ?? NSNull()
            let layers = c["num_hidden_layers"] as? Int ?? 0
            let pattern = r.has("attention.sliding_window_pattern") ? try r.positive("attention.sliding_window_pattern") : 6
            c["layer_types"] = (0..<layers).map { window != nil && ($0 + 1) % pattern != 0 ? "sliding_attention" : "full_attention" }
            c["query_pre_attn_scalar"] = gemmaQueryScalar(c, twentySevenBLayers: 62)
            return c
        })

    /// Phi-3: fused `attn_qkv` (qkv_proj) and `ffn_up` (gate_up_proj); rotary on the whole head.
    public static let phi3 = GGUFArchitecture(
        names: ["phi3"], modelType: "phi3", className: "Phi3ForCausalLM", global: llamaGlobal,
        layerPrefix: "model.layers.",
        perLayer: [("attn_norm.weight", "input_layernorm.weight"), ("attn_qkv.weight", "self_attn.qkv_proj.weight"),
                   ("attn_output.weight", "self_attn.o_proj.weight"), ("ffn_norm.weight", "post_attention_layernorm.weight"),
                   ("ffn_up.weight", "mlp.gate_up_proj.weight"), ("ffn_down.weight", "mlp.down_proj.weight")],
        permutesQK: false, normsPlusOne: false, transposed: [], outputMayDuplicateEmbedding: false,
        unsupportedTensors: ["rope_factors_long.weight": "Phi-3's long-context (longrope) rope factors cannot be read yet",
                             "rope_factors_short.weight": "Phi-3's long-context (longrope) rope factors cannot be read yet"],
        extraConfig: { r in
            var c = try decoderConfig(r, defaultContext: 4096)
            let headDim = c["head_dim"] as? Int ?? 0
            if r.has("rope.dimension_count"), try r.positive("rope.dimension_count") != headDim {
                throw GGUFError.invalidMetadata(path: r.gguf.url.path, key: "\(r.arch).rope.dimension_count",
                                                reason: "rotary on part of the head (partial_rotary_factor < 1) is not supported")
            }
            c["sliding_window"] = try slidingWindow(r) ?? NSNull()
            if r.has("rope.scaling.original_context_length") {
                c["original_max_position_embeddings"] = try r.positive("rope.scaling.original_context_length")
            }
            return c
        })

    /// GPT-2: LayerNorms with biases, learned positions, Conv1D matrices stored transposed.
    public static let gpt2 = GGUFArchitecture(
        names: ["gpt2"], modelType: "gpt2", className: "GPT2LMHeadModel",
        global: [("token_embd.weight", "transformer.wte.weight"), ("position_embd.weight", "transformer.wpe.weight"),
                 ("output_norm.weight", "transformer.ln_f.weight"), ("output_norm.bias", "transformer.ln_f.bias"),
                 ("output.weight", "lm_head.weight")],
        layerPrefix: "transformer.h.",
        perLayer: [("attn_norm.weight", "ln_1.weight"), ("attn_norm.bias", "ln_1.bias"),
                   ("attn_qkv.weight", "attn.c_attn.weight"), ("attn_qkv.bias", "attn.c_attn.bias"),
                   ("attn_output.weight", "attn.c_proj.weight"), ("attn_output.bias", "attn.c_proj.bias"),
                   ("ffn_norm.weight", "ln_2.weight"), ("ffn_norm.bias", "ln_2.bias"),
                   ("ffn_up.weight", "mlp.c_fc.weight"), ("ffn_up.bias", "mlp.c_fc.bias"),
                   ("ffn_down.weight", "mlp.c_proj.weight"), ("ffn_down.bias", "mlp.c_proj.bias")],
        permutesQK: false, normsPlusOne: false,
        transposed: ["attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight"],
        outputMayDuplicateEmbedding: true, unsupportedTensors: [:],
        extraConfig: { r in
            let hidden = try r.positive("embedding_length")
            let ff = try r.positive("feed_forward_length", default: 4 * hidden)
            return [
                "n_embd": hidden, "n_head": try r.positive("attention.head_count"), "n_layer": try GGUFNaming.checkedBlockCount(r.gguf, arch: r.arch),
                "n_positions": try r.positive("context_length", default: 1024), "n_inner": ff == 4 * hidden ? NSNull() : ff,
                "layer_norm_epsilon": try r.number("attention.layer_norm_epsilon", default: 1e-5),
                "activation_function": "gelu_new",
            ]
        })
}
