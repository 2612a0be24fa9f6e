import Foundation
import Tensors

/// Converts a GGUF file (architectures llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3, gpt2:
/// `GGUFArchitecture.all`) into a Hugging Face folder that `transformers` loads: config.json from
/// the `{arch}.*` metadata, model.safetensors (every tensor dequantised, renamed, the converter's
/// changes undone: Q/K rows un-permuted for llama and mistral, Gemma's 1 + w norms, GPT-2's
/// transposed matrices; stored as `dtype`), tokenizer.json + tokenizer_config.json rebuilt from
/// `tokenizer.ggml.*` (byte-level BPE; a SentencePiece vocabulary is left out with a note), and
/// generation_config.json with the BOS/EOS ids.
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
        /// What was left out, for the user (a tokenizer that could not be rebuilt).
        public var notes: [String] = []
    }

    /// NaN/±Inf in a dequantised tensor make the conversion fail with `CheckpointError.nonFinite`
    /// (naming the GGUF file and tensor) before anything is committed, unless `allowNonFinite`.
    public static func convert(gguf: GGUFFile, to outputDirectory: URL, dtype: DType = .f32, force: Bool = false,
                               allowNonFinite: Bool = false, dryRun: Bool = false, progress: ((Int, Int, String) -> Void)? = nil) throws -> Summary {
        let path = gguf.url.path
        let (arch, architecture) = try GGUFArchitecture.of(gguf)
        guard [.f32, .f16, .bf16].contains(dtype) else {
            throw GGUFError.invalidMetadata(path: path, key: "dtype", reason: "output dtype must be F32, F16 or BF16")
        }
        let out = try OutputFolder.prepare(outputDirectory, inputs: [gguf.url], force: force, command: "convert-gguf")
        // The counts and sizes written into config.json must describe the tensors in the file;
        // every tensor must map to a Hugging Face name (the plan checks the block count first).
        let plan = try architecture.plan(gguf, arch: arch)
        _ = try architecture.configJSON(gguf, arch: arch, dtype: dtype)
        let (heads, kvHeads) = try architecture.headCounts(gguf, arch: arch)
        let tokenizerNote = tokenizerNote(gguf)

        var parameters = 0
        if dryRun {
            // Everything but the weights is checked as the conversion would (config and tokenizer built, not written).
            if tokenizerNote == nil { _ = try tokenizerJSON(gguf.metadata, path: path) }
            parameters = plan.reduce(0) { $0 + gguf.info($1.gguf)!.shape.elementCount }
            let files = ["config.json", "generation_config.json", "model.safetensors"] + (tokenizerNote == nil ? ["tokenizer.json", "tokenizer_config.json"] : [])
            return Summary(tensors: plan.count, parameters: parameters, architecture: arch, files: files, notes: tokenizerNote.map { [$0] } ?? [])
        }
        try out.write { temp in
            let entries = plan.map { p in TensorEntry(name: p.hf, dtype: dtype, shape: architecture.huggingFaceShape(gguf.info(p.gguf)!)) }
            let writer = try CheckpointWriter(directory: temp, entries: entries, metadata: ["format": "pt"], allowNonFinite: allowNonFinite)
            for (i, p) in plan.enumerated() {
                let t = try architecture.tensor(gguf, p.gguf, heads: heads, kvHeads: kvHeads)
                parameters += t.count
                try namingNonFiniteInput("\(path) (GGUF tensor \(p.gguf))") { try writer.write(p.hf, t) }
                progress?(i + 1, plan.count, p.hf)
            }
            try writer.finish()
            try writeSideFiles(of: gguf, arch: arch, dtype: dtype, into: temp, tokenizerRequired: tokenizerNote == nil)
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: out.url.path).filter { !$0.hasPrefix(".") }.sorted()
        return Summary(tensors: plan.count, parameters: parameters, architecture: arch, files: files, notes: tokenizerNote.map { [$0] } ?? [])
    }

    /// Why the tokenizer is not converted, or nil when it is: only byte-level BPE vocabularies
    /// (`tokenizer.ggml.model` gpt2) are rebuilt as tokenizer.json; a SentencePiece one (Gemma,
    /// Phi-3, Llama 2: `llama`) is left out with this note, the weights and config still written.
    static func tokenizerNote(_ gguf: GGUFFile) -> String? {
        let model = (try? gguf.metadata.string("tokenizer.ggml.model")) ?? "gpt2"
        if model == "gpt2" { return nil }
        return "tokenizer not converted: \"\(model)\" (SentencePiece) vocabularies are not rebuilt as tokenizer.json yet; copy tokenizer.json and tokenizer_config.json from the original Hugging Face model"
    }

    /// Writes config.json (from the GGUF metadata; `torch_dtype` = `dtype`), tokenizer.json and
    /// tokenizer_config.json (rebuilt from `tokenizer.ggml.*`) and generation_config.json into
    /// `directory`. Without `tokenizerRequired`, a vocabulary that cannot be written as a byte-level
    /// BPE tokenizer.json is skipped instead of failing.
    static func writeSideFiles(of gguf: GGUFFile, arch: String, dtype: DType, into directory: URL, tokenizerRequired: Bool) throws {
        let m = gguf.metadata
        try write(try configJSON(gguf, arch: arch, dtype: dtype), directory.appendingPathComponent("config.json"))
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
        try writeFileAtomically(Array((JSONText.string(JSONText.value(object)) + "\n").utf8), to: url)
    }

    /// config.json for transformers, from the file's architecture (`GGUFArchitecture`).
    public static func configJSON(_ gguf: GGUFFile, arch: String, dtype: DType) throws -> [String: Any] {
        guard let a = GGUFArchitecture.named(arch) else { return try GGUFArchitecture.of(gguf).architecture.configJSON(gguf, arch: arch, dtype: dtype) }
        return try a.configJSON(gguf, arch: arch, dtype: dtype)
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
