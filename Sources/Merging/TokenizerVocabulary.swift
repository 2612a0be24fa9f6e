import Checkpoints
import Foundation

/// The vocabulary of a fast tokenizer as its tokenizer.json holds it: the model's tokens
/// (`model.vocab`: an object token → id for BPE, WordPiece and WordLevel, a list of
/// `[token, score]` for Unigram) and the added tokens, with the id rule of Hugging Face
/// `tokenizers`' `add_tokens` (used to extend it) and the JSON it is written back as.
///
/// What does *not* hold: a model token and an added token of the same content are one token (the
/// added entry reuses the model's id), as in `tokenizers`; vocabularies whose ids are not
/// `0..<count` are refused by `TokenizerUnion`, not here.
struct TokenizerVocabulary {
    /// One `added_tokens` entry: its id, content and the JSON object as written.
    struct Added {
        var id: Int
        var content: String
        var entry: JSONValue
    }

    /// The whole tokenizer.json.
    private(set) var json: JSONValue
    /// `model.vocab`.
    private(set) var modelTokens: [String: Int]
    private(set) var added: [Added]
    /// Token → id over model and added tokens (`get_vocab()` of a fast tokenizer).
    private(set) var ids: [String: Int]
    /// Contents of `added`, and its largest id (so that adding n tokens is O(n)).
    private var addedContents: Set<String> = []
    private var largestAddedID: Int?

    /// Reads `json` (a parsed tokenizer.json); nil when it has no readable `model.vocab`.
    init?(json: JSONValue) {
        self.json = json
        var model: [String: Int] = [:]
        switch json["model"]?["vocab"] {
        case let .object(members)?:
            for (k, v) in members {
                guard case let .integer(i) = v else { return nil }
                model[k] = i
            }
        case let .array(entries)?:
            for (i, e) in entries.enumerated() {
                guard case let .array(pair) = e, case let .string(t)? = pair.first else { return nil }
                model[t] = i
            }
        default: return nil
        }
        modelTokens = model
        added = []
        if case let .array(list)? = json["added_tokens"] {
            for e in list {
                guard case let .integer(id)? = e["id"], case let .string(c)? = e["content"] else { return nil }
                added.append(Added(id: id, content: c, entry: e))
            }
        }
        ids = model
        for a in added {
            ids[a.content] = a.id
            addedContents.insert(a.content)
            largestAddedID = max(largestAddedID ?? a.id, a.id)
        }
    }

    /// Reads `directory/tokenizer.json`; nil when the file is absent, throws when it is unreadable.
    static func read(_ directory: URL) throws -> TokenizerVocabulary? {
        let url = directory.appendingPathComponent("tokenizer.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        let json: JSONValue
        do { json = try StrictJSONParser.parse(Array(data)) } catch {
            throw MergeError.other("\(url.path): not valid JSON: \(error)")
        }
        guard let v = TokenizerVocabulary(json: json) else {
            throw MergeError.other("\(url.path): no model.vocab with integer ids, or an added token without id and content")
        }
        return v
    }

    var modelType: String? { if case let .string(t)? = json["model"]?["type"] { return t } else { return nil } }
    var count: Int { ids.count }
    func isAdded(_ token: String) -> Bool { addedContents.contains(token) }

    /// Without the tokens whose id is `vocabSize` or more (mergekit's `get_stripped_tokenizer`:
    /// model tokens, added tokens and the BPE merges that use a removed token). Throws for a
    /// tokenizer that would lose tokens and is not BPE.
    func stripped(to vocabSize: Int, label: String) throws -> TokenizerVocabulary {
        let unused = Set(ids.filter { $0.value >= vocabSize }.map(\.key))
        guard !unused.isEmpty else { return self }
        guard modelType == "BPE", case let .object(vocab)? = json["model"]?["vocab"] else {
            throw MergeError.other("\(label): its tokenizer has \(unused.count) tokens with ids ≥ vocab_size \(vocabSize) and is \(modelType ?? "of no known type"), not BPE; only BPE tokenizers can be stripped for a tokenizer merge (as in mergekit)")
        }
        func keepMerge(_ m: JSONValue) -> Bool {
            switch m {
            case let .string(s): return !s.split(separator: " ").contains { unused.contains(String($0)) }
            case let .array(parts): return !parts.contains { if case let .string(t) = $0 { return unused.contains(t) } else { return false } }
            default: return true
            }
        }
        var model = json["model"]!
        model = JSONText.setting(model, "vocab", .object(vocab.filter { m in
            if case let .integer(i) = m.value { return i < vocabSize } else { return true }
        }))
        if case let .array(merges)? = model["merges"] { model = JSONText.setting(model, "merges", .array(merges.filter(keepMerge))) }
        var out = JSONText.setting(json, "model", model)
        out = JSONText.setting(out, "added_tokens", .array(added.filter { $0.id < vocabSize }.map(\.entry)))
        return TokenizerVocabulary(json: out)!
    }

    /// The entry `tokenizers` writes for a plain string given to `add_tokens` (transformers makes
    /// it a normalized, non-special `AddedToken`).
    static func plainEntry(_ content: String) -> JSONValue {
        .object([("id", .integer(0)), ("content", .string(content)), ("single_word", .bool(false)), ("lstrip", .bool(false)),
                 ("rstrip", .bool(false)), ("normalized", .bool(true)), ("special", .bool(false))])
    }

    /// `tokenizers`' `add_tokens` for one token (`entry`: its JSON object, id ignored): an added
    /// token of the same content already present is left as it is; a model token becomes an
    /// added token with its id; a new token gets the next id: the model vocabulary's size while
    /// no added token lies at or beyond it, else one more than the largest added id.
    mutating func add(_ content: String, entry: JSONValue) {
        if isAdded(content) { return }
        let id: Int
        if let existing = ids[content] {
            id = existing
        } else {
            let size = modelTokens.count
            if let top = largestAddedID, top >= size || size == 0 { id = top + 1 } else { id = size }
        }
        added.append(Added(id: id, content: content, entry: JSONText.setting(entry, "id", .integer(id))))
        ids[content] = id
        addedContents.insert(content)
        largestAddedID = max(largestAddedID ?? id, id)
    }

    /// The tokenizer.json text: the original with `added_tokens` replaced (sorted by id, as
    /// `tokenizers` serialises them).
    func serialized() -> String {
        let list = added.sorted { $0.id < $1.id }.map(\.entry)
        return JSONText.string(JSONText.setting(json, "added_tokens", .array(list)), indent: "") + "\n"
    }

    /// Tokens by id, or nil when the ids are not exactly `0..<count`.
    func tokensByID() -> [String]? {
        var out = [String?](repeating: nil, count: ids.count)
        for (t, i) in ids {
            guard i >= 0, i < out.count, out[i] == nil else { return nil }
            out[i] = t
        }
        return out.map { $0! }
    }
}
