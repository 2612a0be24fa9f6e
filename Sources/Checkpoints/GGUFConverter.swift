import Foundation
import Tensors

/// Converts a llama-family GGUF file (architectures llama, mistral, qwen2) into a Hugging Face
/// folder that `transformers` loads: config.json from the `{arch}.*` metadata,
/// model.safetensors (every tensor dequantised, renamed, Q/K rows un-permuted for llama and
/// mistral, stored as `dtype`), tokenizer.json + tokenizer_config.json rebuilt from
/// `tokenizer.ggml.*` (byte-level BPE), and generation_config.json with the BOS/EOS ids.
///
/// The output goes through `OutputFolder`: checked before any tensor is read (never the input's
/// path; an existing non-empty folder only with `force`, and then only a previous weightsmith
/// output), assembled in a staging folder beside it and renamed into place at the end.
public enum GGUFConverter {
    public struct Summary: Sendable {
        public var tensors: Int
        public var parameters: Int
        public var architecture: String
        public var files: [String]
    }

    /// NaN/±Inf in a dequantised tensor make the conversion fail with `CheckpointError.nonFinite`
    /// (naming the GGUF file and tensor) before anything is committed, unless `allowNonFinite`.
    public static func convert(gguf: GGUFFile, to outputDirectory: URL, dtype: DType = .f32, force: Bool = false,
                               allowNonFinite: Bool = false, dryRun: Bool = false, progress: ((Int, Int, String) -> Void)? = nil) throws -> Summary {
        let path = gguf.url.path
        let m = gguf.metadata
        let arch = try m.string("general.architecture")
        guard ["llama", "mistral", "qwen2"].contains(arch) else {
            throw GGUFError.invalidMetadata(path: path, key: "general.architecture", reason: "\"\(arch)\" cannot be converted (llama, mistral, qwen2)")
        }
        guard [.f32, .f16, .bf16].contains(dtype) else {
            throw GGUFError.invalidMetadata(path: path, key: "dtype", reason: "output dtype must be F32, F16 or BF16")
        }
        let out = try OutputFolder.prepare(outputDirectory, inputs: [gguf.url], force: force, command: "convert-gguf")
        // The counts and sizes written into config.json must describe the tensors in the file.
        _ = try GGUFNaming.checkedBlockCount(gguf, arch: arch)
        for key in ["embedding_length", "feed_forward_length", "attention.head_count"] {
            let v = try m.int("\(arch).\(key)")
            guard v > 0 else { throw GGUFError.invalidMetadata(path: path, key: "\(arch).\(key)", reason: "\(v) is not positive") }
        }
        let heads = try m.int("\(arch).attention.head_count")
        let kvHeads = m["\(arch).attention.head_count_kv"] != nil ? try m.int("\(arch).attention.head_count_kv") : heads
        let permuted = arch == "llama" || arch == "mistral"

        // Tensor plan: every GGUF tensor must map to a Hugging Face name.
        var plan: [(gguf: String, hf: String)] = []
        for t in gguf.tensors {
            if GGUFNaming.isDerived(t.name) {
                throw GGUFError.invalidMetadata(path: path, key: t.name, reason: "Llama 3 rope scaling factors cannot be converted yet")
            }
            guard let hf = GGUFNaming.huggingFaceName(t.name) else {
                throw GGUFError.invalidMetadata(path: path, key: t.name, reason: "no Hugging Face name for this tensor")
            }
            guard t.type.isDequantizable else { throw GGUFError.unsupportedTensorType(tensor: t.name, type: t.type.description) }
            plan.append((t.name, hf))
        }

        var parameters = 0
        if dryRun {
            // Everything but the weights is checked as the conversion would (config and tokenizer built, not written).
            let tied = gguf.info("output.weight") == nil
            _ = try configJSON(gguf, arch: arch, tied: tied, dtype: dtype)
            _ = try tokenizerJSON(m, path: path)
            parameters = plan.reduce(0) { $0 + gguf.info($1.gguf)!.shape.elementCount }
            return Summary(tensors: plan.count, parameters: parameters, architecture: arch,
                           files: ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        }
        try out.write { temp in
            let entries = plan.map { p in TensorEntry(name: p.hf, dtype: dtype, shape: gguf.info(p.gguf)!.shape) }
            let writer = try CheckpointWriter(directory: temp, entries: entries, metadata: ["format": "pt"], allowNonFinite: allowNonFinite)
            for (i, p) in plan.enumerated() {
                var t = try gguf.tensor(p.gguf)
                if permuted, let kind = GGUFNaming.permutation(of: p.gguf) {
                    t = try GGUFNaming.unpermuteRows(t, heads: kind == .query ? heads : kvHeads)
                }
                parameters += t.count
                try namingNonFiniteInput("\(path) (GGUF tensor \(p.gguf))") { try writer.write(p.hf, t) }
                progress?(i + 1, plan.count, p.hf)
            }
            try writer.finish()
            try writeSideFiles(of: gguf, arch: arch, dtype: dtype, into: temp, tokenizerRequired: true)
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: out.url.path).filter { !$0.hasPrefix(".") }.sorted()
        return Summary(tensors: plan.count, parameters: parameters, architecture: arch, files: files)
    }

    /// Writes config.json (from the GGUF metadata; `torch_dtype` = `dtype`), tokenizer.json and
    /// tokenizer_config.json (rebuilt from `tokenizer.ggml.*`) and generation_config.json into
    /// `directory`. Without `tokenizerRequired`, a vocabulary that cannot be written as a byte-level
    /// BPE tokenizer.json is skipped instead of failing.
    static func writeSideFiles(of gguf: GGUFFile, arch: String, dtype: DType, into directory: URL, tokenizerRequired: Bool) throws {
        let m = gguf.metadata
        let tied = gguf.info("output.weight") == nil
        try write(try configJSON(gguf, arch: arch, tied: tied, dtype: dtype), directory.appendingPathComponent("config.json"))
        let tokenizer: [String: Any]?
        if tokenizerRequired { tokenizer = try tokenizerJSON(m, path: gguf.url.path) } else { tokenizer = try? tokenizerJSON(m, path: gguf.url.path) }
        if let tokenizer {
            try write(tokenizer, directory.appendingPathComponent("tokenizer.json"))
            try write(tokenizerConfigJSON(m), directory.appendingPathComponent("tokenizer_config.json"))
        }
        var gen: [String: Any] = ["_from_gguf": gguf.url.lastPathComponent]
        if let b = try? m.int("tokenizer.ggml.bos_token_id") { gen["bos_token_id"] = b }
        if let e = try? m.int("tokenizer.ggml.eos_token_id") { gen["eos_token_id"] = e }
        try write(gen, directory.appendingPathComponent("generation_config.json"))
    }

    static func write(_ object: Any, _ url: URL) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try writeFileAtomically([UInt8](data), to: url)
    }

    /// config.json for transformers (both the 4.x `rope_theta` and the 5.x `rope_parameters` spelling).
    public static func configJSON(_ gguf: GGUFFile, arch: String, tied: Bool, dtype: DType) throws -> [String: Any] {
        let m = gguf.metadata
        func int(_ k: String) throws -> Int { try m.int("\(arch).\(k)") }
        let heads = try int("attention.head_count")
        let hidden = try int("embedding_length")
        let theta = m["\(arch).rope.freq_base"] != nil ? try m.double("\(arch).rope.freq_base") : 10000
        let vocab = m["\(arch).vocab_size"] != nil ? try int("vocab_size") : try m.stringArray("tokenizer.ggml.tokens").count
        let className = ["llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"][arch]!
        var c: [String: Any] = [
            "architectures": [className], "model_type": arch,
            "hidden_size": hidden, "intermediate_size": try int("feed_forward_length"),
            "num_hidden_layers": try int("block_count"), "num_attention_heads": heads,
            "num_key_value_heads": m["\(arch).attention.head_count_kv"] != nil ? try int("attention.head_count_kv") : heads,
            "head_dim": m["\(arch).attention.key_length"] != nil ? try int("attention.key_length") : hidden / heads,
            "rms_norm_eps": try m.double("\(arch).attention.layer_norm_rms_epsilon"),
            "rope_theta": theta, "rope_parameters": ["rope_type": "default", "rope_theta": theta],
            "max_position_embeddings": m["\(arch).context_length"] != nil ? try int("context_length") : 2048,
            "vocab_size": vocab, "tie_word_embeddings": tied, "hidden_act": "silu",
            "torch_dtype": ["F32": "float32", "F16": "float16", "BF16": "bfloat16"][dtype.rawValue]!,
        ]
        if arch == "llama" {
            c["attention_bias"] = gguf.info("blk.0.attn_q.bias") != nil
            c["mlp_bias"] = false
        }
        if arch == "mistral" { c["sliding_window"] = NSNull() }
        if let b = try? m.int("tokenizer.ggml.bos_token_id") { c["bos_token_id"] = b }
        if let e = try? m.int("tokenizer.ggml.eos_token_id") { c["eos_token_id"] = e }
        return c
    }

    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// tokenizer.json (byte-level BPE) rebuilt from `tokenizer.ggml.*`.
    public static func tokenizerJSON(_ m: GGUFMetadata, path: String) throws -> [String: Any] {
        let model = try m.string("tokenizer.ggml.model")
        guard model == "gpt2" else {
            throw GGUFError.invalidMetadata(path: path, key: "tokenizer.ggml.model", reason: "\"\(model)\" is not byte-level BPE (gpt2)")
        }
        let tokens = try m.stringArray("tokenizer.ggml.tokens")
        let types = m["tokenizer.ggml.token_type"] == nil ? [] : try m.intArray("tokenizer.ggml.token_type")
        let merges = m["tokenizer.ggml.merges"] == nil ? [] : try m.stringArray("tokenizer.ggml.merges")
        let pre = (try? m.string("tokenizer.ggml.pre")) ?? "default"
        let byteLevel: (Bool) -> [String: Any] = { regex in
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex]
        }
        let preTokenizer: [String: Any]
        switch pre {
        case "gpt-2", "gpt2", "default": preTokenizer = byteLevel(true)
        case "smollm", "starcoder":
            preTokenizer = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel(true)]]
        case "llama-bpe", "llama3", "llama-v3", "qwen2":
            let split: [String: Any] = ["type": "Split", "pattern": ["Regex": pre == "qwen2" ? qwen2Regex : llama3Regex],
                                        "behavior": "Isolated", "invert": false]
            preTokenizer = ["type": "Sequence", "pretokenizers": [split, byteLevel(false)]]
        default:
            throw GGUFError.invalidMetadata(path: path, key: "tokenizer.ggml.pre", reason: "\"\(pre)\" is not a known pre-tokenizer")
        }
        var vocab: [String: Int] = [:]
        var added: [[String: Any]] = []
        for (i, t) in tokens.enumerated() {
            let type = i < types.count ? types[i] : 1
            if type == 3 || type == 4 {
                added.append(["id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": type == 4, "special": type == 3])
            }
            if vocab[t] == nil { vocab[t] = i }
        }
        var post: [String: Any] = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        if m["tokenizer.ggml.add_bos_token"]?.boolValue == true, let bos = try? m.int("tokenizer.ggml.bos_token_id"), bos < tokens.count {
            let name = tokens[bos]
            post = ["type": "TemplateProcessing",
                    "single": [["SpecialToken": ["id": name, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                    "pair": [["SpecialToken": ["id": name, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                             ["SpecialToken": ["id": name, "type_id": 1]], ["Sequence": ["id": "B", "type_id": 1]]],
                    "special_tokens": [name: ["id": name, "ids": [bos], "tokens": [name]]]]
        }
        return [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": NSNull(), "pre_tokenizer": preTokenizer, "post_processor": post,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges] as [String: Any],
        ]
    }

    static func tokenizerConfigJSON(_ m: GGUFMetadata) -> [String: Any] {
        var c: [String: Any] = ["tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false]
        let tokens = (try? m.stringArray("tokenizer.ggml.tokens")) ?? []
        for (key, field) in [("bos_token", "tokenizer.ggml.bos_token_id"), ("eos_token", "tokenizer.ggml.eos_token_id"),
                             ("unk_token", "tokenizer.ggml.unknown_token_id"), ("pad_token", "tokenizer.ggml.padding_token_id")] {
            if let id = try? m.int(field), id >= 0, id < tokens.count { c[key] = tokens[id] }
        }
        if let t = try? m.string("tokenizer.chat_template") { c["chat_template"] = t }
        c["add_bos_token"] = m["tokenizer.ggml.add_bos_token"]?.boolValue ?? false
        return c
    }
}
