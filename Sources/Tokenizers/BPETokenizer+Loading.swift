import Checkpoints
import Foundation

extension BPETokenizer {
    /// Loads a Hugging Face `tokenizer.json` with a byte-level BPE model. Recognised
    /// pre-tokenizers: `ByteLevel` (use_regex: GPT-2 pattern), `Split` with the Llama-3 or Qwen2
    /// pattern followed by `ByteLevel` without regex, `Digits(individual_digits)` before either.
    /// Post-processors: none, `ByteLevel`, or `TemplateProcessing` whose single template is
    /// [special]? $A [special]? (a BOS/EOS added by `encode`). Anything else throws.
    public convenience init(tokenizerJSON url: URL) throws {
        let path = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw TokenizerError.cannotRead(path: path, reason: "\(error)") }
        try self.init(tokenizerJSONData: data, path: path)
    }

    /// Loads the contents of a `tokenizer.json` as `init(tokenizerJSON:)` does; `path` names it in errors.
    public convenience init(tokenizerJSONData data: Data, path: String) throws {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TokenizerError.invalidJSON(path: path, key: "(root)", reason: "not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else {
            throw TokenizerError.invalidJSON(path: path, key: "model", reason: "missing")
        }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw TokenizerError.unsupported(path: path, key: "model.type", value: type) }
        if let bf = model["byte_fallback"] as? Bool, bf { throw TokenizerError.unsupported(path: path, key: "model.byte_fallback", value: "true") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let p = model[key] as? String, !p.isEmpty { throw TokenizerError.unsupported(path: path, key: "model.\(key)", value: p) }
        }
        if let n = root["normalizer"], !(n is NSNull) {
            throw TokenizerError.unsupported(path: path, key: "normalizer", value: (n as? [String: Any])?["type"] as? String ?? "?")
        }
        guard let vocab = model["vocab"] as? [String: Any] else {
            throw TokenizerError.invalidJSON(path: path, key: "model.vocab", reason: "missing or not an object")
        }
        var pairs: [(String, Int)] = []
        for (tok, v) in vocab {
            guard let id = (v as? NSNumber)?.intValue, id >= 0 else {
                throw TokenizerError.invalidJSON(path: path, key: "model.vocab[\(tok)]", reason: "id is not a non-negative integer")
            }
            pairs.append((tok, id))
        }
        var addedTokens: [AddedToken] = []
        for (i, entry) in ((root["added_tokens"] as? [[String: Any]]) ?? []).enumerated() {
            guard let id = (entry["id"] as? NSNumber)?.intValue, id >= 0, let content = entry["content"] as? String else {
                throw TokenizerError.invalidJSON(path: path, key: "added_tokens[\(i)]", reason: "needs an id and a content")
            }
            addedTokens.append(AddedToken(id: id, content: content, special: entry["special"] as? Bool ?? false))
        }
        let size = max((pairs.map(\.1).max() ?? -1), (addedTokens.map(\.id).max() ?? -1)) + 1
        guard size <= 10_000_000 else { throw TokenizerError.invalidJSON(path: path, key: "model.vocab", reason: "ids up to \(size)") }
        var vocabulary = [String](repeating: "", count: size)
        for (t, id) in pairs { vocabulary[id] = t }
        for a in addedTokens where vocabulary[a.id].isEmpty { vocabulary[a.id] = a.content }

        var merges: [(String, String)] = []
        for (i, m) in ((model["merges"] as? [Any]) ?? []).enumerated() {
            if let s = m as? String, let space = s.firstIndex(of: " ") {
                merges.append((String(s[..<space]), String(s[s.index(after: space)...])))
            } else if let a = m as? [String], a.count == 2 {
                merges.append((a[0], a[1]))
            } else {
                throw TokenizerError.invalidJSON(path: path, key: "model.merges[\(i)]", reason: "expected \"a b\" or [a, b]")
            }
        }
        let pre = try Self.preTokenizer(root["pre_tokenizer"], path: path)
        var bos: Int? = nil, eos: Int? = nil
        if let post = root["post_processor"] as? [String: Any] {
            let ptype = post["type"] as? String ?? "?"
            switch ptype {
            case "ByteLevel": break
            case "TemplateProcessing":
                let single = post["single"] as? [[String: Any]] ?? []
                let specials = post["special_tokens"] as? [String: Any] ?? [:]
                func specialId(_ item: [String: Any]) throws -> Int? {
                    guard let sp = item["SpecialToken"] as? [String: Any], let name = sp["id"] as? String else { return nil }
                    guard let entry = specials[name] as? [String: Any], let ids = entry["ids"] as? [NSNumber], ids.count == 1 else {
                        throw TokenizerError.unsupported(path: path, key: "post_processor.special_tokens", value: name)
                    }
                    return ids[0].intValue
                }
                let seqIndex = single.firstIndex { $0["Sequence"] != nil }
                guard let seq = seqIndex, single.count <= 3, seq <= 1, single.count - seq <= 2 else {
                    throw TokenizerError.unsupported(path: path, key: "post_processor.single", value: "\(single.count) items")
                }
                if seq == 1 { bos = try specialId(single[0]) }
                if single.count - seq == 2 { eos = try specialId(single[seq + 1]) }
            default:
                throw TokenizerError.unsupported(path: path, key: "post_processor.type", value: ptype)
            }
        }
        try self.init(vocabulary: vocabulary, merges: merges, addedTokens: addedTokens, preTokenizer: pre,
                      bosTokenId: bos, eosTokenId: eos, addBos: bos != nil, addEos: eos != nil, source: path)
    }

    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    static func preTokenizer(_ json: Any?, path: String) throws -> PreTokenizer {
        guard let obj = json as? [String: Any] else { return PreTokenizer(pattern: .none) }
        var steps: [[String: Any]] = [obj]
        if obj["type"] as? String == "Sequence" { steps = obj["pretokenizers"] as? [[String: Any]] ?? [] }
        var result = PreTokenizer(pattern: .none)
        for (i, step) in steps.enumerated() {
            let type = step["type"] as? String ?? "?"
            switch type {
            case "Digits" where i == 0 && step["individual_digits"] as? Bool == true:
                result.splitDigits = true
            case "Split":
                let pattern = (step["pattern"] as? [String: Any])?["Regex"] as? String ?? ""
                guard step["behavior"] as? String == "Isolated", step["invert"] as? Bool != true else {
                    throw TokenizerError.unsupported(path: path, key: "pre_tokenizer.Split.behavior", value: "\(step["behavior"] ?? "?")")
                }
                switch pattern {
                case llama3Regex: result.pattern = .llama3(maxDigits: 3)
                case qwen2Regex: result.pattern = .llama3(maxDigits: 1)
                case gpt2Regex: result.pattern = .gpt2
                default: throw TokenizerError.unsupported(path: path, key: "pre_tokenizer.Split.pattern", value: pattern)
                }
            case "ByteLevel":
                result.addPrefixSpace = step["add_prefix_space"] as? Bool ?? false
                if step["use_regex"] as? Bool ?? true {
                    guard result.pattern == .none else {
                        throw TokenizerError.unsupported(path: path, key: "pre_tokenizer", value: "Split followed by a regex ByteLevel")
                    }
                    result.pattern = .gpt2
                }
            default:
                throw TokenizerError.unsupported(path: path, key: "pre_tokenizer.type", value: type)
            }
        }
        return result
    }

    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata (model `gpt2`, i.e.
    /// byte-level BPE). Pre-tokenizer from `tokenizer.ggml.pre`: `gpt-2`/`default`/`gpt2` ->
    /// GPT-2 pattern; `llama-bpe`/`llama3` -> Llama-3; `qwen2` -> Qwen2; `smollm`/`starcoder` -> digits
    /// split + GPT-2. Control (3) and user-defined (4) token types become added tokens (control = special).
    public convenience init(gguf: GGUFFile) throws {
        let m = gguf.metadata
        let path = gguf.url.path
        let model = try m.string("tokenizer.ggml.model")
        guard model == "gpt2" else { throw TokenizerError.unsupported(path: path, key: "tokenizer.ggml.model", value: model) }
        let tokens = try m.stringArray("tokenizer.ggml.tokens")
        let types = m["tokenizer.ggml.token_type"] == nil ? [] : try m.intArray("tokenizer.ggml.token_type")
        // GGUF writers drop empty arrays: a vocabulary without merges has no merges key.
        let mergeStrings = m["tokenizer.ggml.merges"] == nil ? [] : try m.stringArray("tokenizer.ggml.merges")
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeStrings.count)
        for s in mergeStrings {
            guard let space = s.firstIndex(of: " ") else { throw TokenizerError.unknownMergeToken(path: path, merge: s) }
            merges.append((String(s[..<space]), String(s[s.index(after: space)...])))
        }
        let preName = (try? m.string("tokenizer.ggml.pre")) ?? "default"
        let pre: PreTokenizer
        switch preName {
        case "gpt-2", "gpt2", "default": pre = PreTokenizer(pattern: .gpt2)
        case "llama-bpe", "llama3", "llama-v3": pre = PreTokenizer(pattern: .llama3(maxDigits: 3))
        case "qwen2": pre = PreTokenizer(pattern: .llama3(maxDigits: 1))
        case "smollm", "starcoder": pre = PreTokenizer(pattern: .gpt2, splitDigits: true)
        default: throw TokenizerError.unsupported(path: path, key: "tokenizer.ggml.pre", value: preName)
        }
        var added: [AddedToken] = []
        for (i, t) in types.enumerated() where i < tokens.count && (t == 3 || t == 4) {
            added.append(AddedToken(id: i, content: tokens[i], special: t == 3))
        }
        let bos = try? m.int("tokenizer.ggml.bos_token_id")
        let eos = try? m.int("tokenizer.ggml.eos_token_id")
        let addBos = (m["tokenizer.ggml.add_bos_token"]?.boolValue) ?? false
        let addEos = (m["tokenizer.ggml.add_eos_token"]?.boolValue) ?? false
        try self.init(vocabulary: tokens, merges: merges, addedTokens: added, preTokenizer: pre,
                      bosTokenId: bos, eosTokenId: eos, addBos: addBos, addEos: addEos, source: path)
    }
}
