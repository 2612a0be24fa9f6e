import Checkpoints
import Foundation

/// The output vocabulary of a merge with `tokenizer_source:` / `tokenizer:` set, and where each
/// input's rows of it are (mergekit's `mergekit/tokenizer/build.py`):
///
/// - `base`: the base model's tokenizer (the first model's without a base), stripped of the
///   tokens whose id is ≥ its config.json `vocab_size`;
/// - a model: that model's tokenizer as it is;
/// - `union`: the stripped base tokenizer, extended (as `tokenizers`' `add_tokens` does) with
///   every other input's tokens it lacks (ids < that input's `vocab_size`), then with every
///   input's added tokens (special ones keep their settings; the first input defining a token
///   wins). Inputs are taken base first, then in recipe order, each one's tokens by id.
///   mergekit walks the models in a set's and a hash map's order, so the ids its union gives the
///   extra tokens vary from run to run; the tokens, the base's ids and the id range are the same.
///
/// and then the `tokenizer.tokens:` names not yet in it, as plain added tokens. Every input's
/// permutation maps an output id to the input's own row of that token, or -1.
public struct VocabularyAlignment: Sendable {
    /// Output tokens by id.
    public let tokens: [String]
    /// Rows of the output's vocabulary matrices (and config.json `vocab_size`): `tokens.count`
    /// rounded up to `pad_to_multiple_of`.
    public let rows: Int
    /// Per plan input: output id → the input's row of that token, or -1.
    let permutations: [[Int32]]
    /// Per output id with a `tokens:` entry: the resolved source and `force`.
    let settings: [Int: (source: ResolvedTokenSource?, force: Bool, token: String)]
    /// The output tokenizer.json and tokenizer_config.json when they differ from the tokenizer
    /// source's files (nil: the source's files are copied as they are).
    let files: [String: [UInt8]]?

    enum ResolvedTokenSource {
        /// The same token's row of plan input `input`.
        case model(input: Int)
        /// Row `row` of plan input `input`.
        case row(input: Int, row: Int)
        case zero
    }

    /// Every output token is each input's own row and there is nothing to pad or override.
    func isIdentity(rowCounts: [Int], inputs: [Int]) -> Bool {
        guard rows == tokens.count, settings.isEmpty else { return false }
        for (k, i) in inputs.enumerated() {
            guard rowCounts[k] == tokens.count else { return false }
            for (n, p) in permutations[i].enumerated() where Int(p) != n { return false }
        }
        return true
    }
}

enum TokenizerUnion {
    /// `.donor`: a tokenizer-only folder that is not one of the recipe's models (mergekit 0.1.5
    /// accepts a path as `tokenizer_source`); its vocabulary is taken as it is, not stripped.
    enum Source: Equatable { case union, base, model(Int), donor(URL) }

    /// The vocabulary-defining part of a folder's tokenizer (tokenizer.json's vocab and added
    /// tokens, else tokenizer.model's bytes), to tell identical vocabularies apart from different ones.
    static func fingerprint(of directory: URL) -> (kind: String, value: JSONValue?, bytes: [UInt8]?)? {
        let fm = FileManager.default
        if let data = fm.contents(atPath: directory.appendingPathComponent("tokenizer.json").path) {
            guard let json = try? StrictJSONParser.parse(Array(data)) else { return ("tokenizer.json", nil, Array(data)) }
            return ("tokenizer.json", .array([json["model"]?["vocab"] ?? .null, json["added_tokens"] ?? .array([])]), nil)
        }
        if let data = fm.contents(atPath: directory.appendingPathComponent("tokenizer.model").path) {
            return ("tokenizer.model", nil, Array(data))
        }
        return nil
    }

    /// config.json `vocab_size` of an input, nil when absent.
    static func configVocabSize(_ c: Checkpoint) -> Int? {
        guard let config = try? c.folderJSON("config.json") else { return nil }
        if case let .integer(n)? = config["vocab_size"] { return n }
        if case let .integer(n)? = config["text_config"]?["vocab_size"] { return n }
        return nil
    }

    /// Builds the alignment, or returns the problems (each naming the key or input) and notes.
    /// `reference` is the base (or first) input, `source` the setting.
    static func align(inputs: [PlannedInput], reference: Int, source: Source, recipe: Recipe,
                      indexOf: [String: Int]) -> (alignment: VocabularyAlignment?, problems: [String], notes: [String]) {
        let key = recipe.tokenEmbeddings.isEmpty && recipe.padVocabularyToMultipleOf == nil ? "tokenizer_source" : "tokenizer"
        var problems: [String] = []
        var notes: [String] = []
        // 1. Every input's vocabulary (the reference's stripped to its vocab_size).
        var vocabularies: [TokenizerVocabulary?] = []
        for (i, input) in inputs.enumerated() {
            guard let dir = input.checkpoint.directory else {
                problems.append("\(key): \(input.label) has no folder with a tokenizer, so its vocabulary is unknown")
                vocabularies.append(nil)
                continue
            }
            do {
                guard var v = try TokenizerVocabulary.read(dir) else {
                    vocabularies.append(nil)
                    continue
                }
                if i == reference, let n = configVocabSize(input.checkpoint) { v = try v.stripped(to: n, label: input.label) }
                vocabularies.append(v)
            } catch {
                problems.append("\(key): \(error)")
                vocabularies.append(nil)
            }
        }
        guard problems.isEmpty else { return (nil, problems, notes) }
        if vocabularies.contains(where: { $0 == nil }) {
            // Without tokenizer.json (e.g. only a SentencePiece tokenizer.model), identical
            // tokenizer files are still a trivial union; anything else needs tokenizer.json.
            let ref = inputs[reference].checkpoint.directory.flatMap(fingerprint)
            let missing = inputs.indices.filter { vocabularies[$0] == nil }.map { inputs[$0].label }
            let same = ref != nil && inputs.allSatisfy { i in
                guard let f = i.checkpoint.directory.flatMap(fingerprint) else { return false }
                return f.kind == ref!.kind && f.value == ref!.value && f.bytes == ref!.bytes
            }
            if same && recipe.tokenEmbeddings.isEmpty && recipe.padVocabularyToMultipleOf == nil { return (nil, [], notes) }
            problems.append("\(key): \(missing.joined(separator: ", ")) \(missing.count == 1 ? "has" : "have") no tokenizer.json; "
                + "merging vocabularies needs every input's fast tokenizer (tokenizer.json), as mergekit does")
            return (nil, problems, notes)
        }
        let vocab = vocabularies.map { $0! }
        let sizes = inputs.indices.map { i in configVocabSize(inputs[i].checkpoint) ?? vocab[i].count }

        // 2. The output vocabulary.
        var out: TokenizerVocabulary
        var tokenizerSource = reference
        var donorDirectory: URL?
        switch source {
        case let .donor(dir):
            donorDirectory = dir
            do {
                guard let v = try TokenizerVocabulary.read(dir) else {
                    problems.append("\(key): donor folder \(dir.path) has no tokenizer.json")
                    return (nil, problems, notes)
                }
                out = v
            } catch {
                problems.append("\(key): donor folder \(dir.path): \(error)")
                return (nil, problems, notes)
            }
        case .base: out = vocab[reference]
        case let .model(i): out = vocab[i]; tokenizerSource = i
        case .union:
            out = vocab[reference]
            var extra: [String] = []
            var seen = Set<String>()
            var added: [(content: String, entry: JSONValue)] = []
            var addedIndex: [String: Int] = [:]
            var conflicting = Set<String>()
            for i in [reference] + inputs.indices.filter({ $0 != reference }) {
                var beyond = 0
                for (t, id) in vocab[i].ids.sorted(by: { $0.value < $1.value }) {
                    guard id < sizes[i] else { beyond += 1; continue }
                    if seen.insert(t).inserted { extra.append(t) }
                }
                if beyond > 0 {
                    notes.append("tokenizer_source: union: \(beyond) token\(beyond == 1 ? " has an id" : "s have ids") ≥ vocab_size \(sizes[i]) in \(inputs[i].label) and \(beyond == 1 ? "is" : "are") left out of the union (as in mergekit)")
                }
                for a in vocab[i].added.sorted(by: { $0.id < $1.id }) where a.id < sizes[i] {
                    if let k = addedIndex[a.content] {
                        if !sameSettings(added[k].entry, a.entry) { conflicting.insert(a.content) }
                        continue
                    }
                    addedIndex[a.content] = added.count
                    added.append((a.content, a.entry))
                }
            }
            for t in extra where addedIndex[t] == nil && vocab[reference].ids[t] == nil {
                out.add(t, entry: TokenizerVocabulary.plainEntry(t))
            }
            for a in added { out.add(a.content, entry: a.entry) }
            for t in conflicting.sorted() {
                notes.append("tokenizer_source: union: token \(JSONText.quote(t)) is added with different settings by different inputs; the first input's are used (as mergekit does)")
            }
        }
        for e in recipe.tokenEmbeddings where out.ids[e.token] == nil {
            out.add(e.token, entry: TokenizerVocabulary.plainEntry(e.token))
        }
        guard let tokens = out.tokensByID() else {
            problems.append("\(key): the output tokenizer's ids are not 0..<\(out.count) (a gap or a repeated id in tokenizer.json), so its embedding rows cannot be laid out")
            return (nil, problems, notes)
        }
        var rows = tokens.count
        if let m = recipe.padVocabularyToMultipleOf, rows % m != 0 { rows += m - rows % m }

        // 3. Permutations.
        var permutations: [[Int32]] = []
        for i in inputs.indices {
            var p = [Int32](repeating: -1, count: tokens.count)
            var beyond = 0
            for (n, t) in tokens.enumerated() {
                guard let id = vocab[i].ids[t] else { continue }
                if id >= sizes[i] { beyond += 1; continue }
                p[n] = Int32(id)
            }
            if beyond > 0 {
                notes.append("\(key): \(beyond) token\(beyond == 1 ? " of the output vocabulary has an id" : "s of the output vocabulary have ids") ≥ vocab_size \(sizes[i]) in \(inputs[i].label) and \(beyond == 1 ? "is" : "are") taken as absent from it")
            }
            permutations.append(p)
        }

        // 4. `tokens:` entries.
        let idOf = Dictionary(tokens.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var settings: [Int: (source: VocabularyAlignment.ResolvedTokenSource?, force: Bool, token: String)] = [:]
        for e in recipe.tokenEmbeddings {
            let where_ = "tokenizer.tokens.\(e.token)\(e.line > 0 ? " (line \(e.line))" : "")"
            var resolved: VocabularyAlignment.ResolvedTokenSource?
            switch e.source {
            case nil: resolved = nil
            case .zero?: resolved = .zero
            case let .model(m)?:
                guard let i = indexOf[m] else { problems.append("\(where_): source \(m) is not one of the recipe's models"); continue }
                resolved = .model(input: i)
            case let .modelToken(m, token, tokenID)?:
                guard let i = indexOf[m] else { problems.append("\(where_): source model \(m) is not one of the recipe's models"); continue }
                if let token {
                    guard let id = vocab[i].ids[token] else {
                        problems.append("\(where_): token \(JSONText.quote(token)) is not in \(m)'s vocabulary"); continue
                    }
                    resolved = .row(input: i, row: id)
                } else {
                    resolved = .row(input: i, row: tokenID!)
                }
            }
            settings[idOf[e.token]!] = (resolved, e.force, e.token)
        }

        // 5. The files, when the vocabulary is not the source's as it is.
        var files: [String: [UInt8]]?
        let sourceDirectory = donorDirectory ?? inputs[tokenizerSource].checkpoint.directory!
        let sourceFiles = try? TokenizerVocabulary.read(sourceDirectory)
        if donorDirectory != nil || sourceFiles.map({ $0.ids != out.ids || $0.added.count != out.added.count }) ?? true {
            var f: [String: [UInt8]] = ["tokenizer.json": Array(out.serialized().utf8)]
            if let donorDirectory {
                // A donor's other tokenizer files (special_tokens_map.json, ...) come from it too.
                for name in MergeExecutor.tokenizerFiles where name != "tokenizer.json" && name != "tokenizer_config.json"
                    && !MergeExecutor.slowVocabularyFiles.contains(name) {
                    if let data = FileManager.default.contents(atPath: donorDirectory.appendingPathComponent(name).path) { f[name] = Array(data) }
                }
            }
            if let data = FileManager.default.contents(atPath: sourceDirectory.appendingPathComponent("tokenizer_config.json").path),
               let config = try? StrictJSONParser.parse(Array(data)) {
                f["tokenizer_config.json"] = Array((JSONText.string(withAddedTokens(config, out)) + "\n").utf8)
            }
            files = f
        }
        return (VocabularyAlignment(tokens: tokens, rows: rows, permutations: permutations, settings: settings, files: files), problems, notes)
    }

    /// Two added-token entries with the same flags (ids aside).
    static func sameSettings(_ a: JSONValue, _ b: JSONValue) -> Bool {
        ["content", "single_word", "lstrip", "rstrip", "normalized", "special"].allSatisfy { a[$0] == b[$0] }
    }

    /// tokenizer_config.json with `added_tokens_decoder` (when it has one) listing every added
    /// token of `vocab`, so that a loader reading it agrees with tokenizer.json.
    static func withAddedTokens(_ config: JSONValue, _ vocab: TokenizerVocabulary) -> JSONValue {
        guard case let .object(decoder)? = config["added_tokens_decoder"] else { return config }
        var members = decoder
        let present = Set(decoder.map(\.key))
        for a in vocab.added.sorted(by: { $0.id < $1.id }) where !present.contains(String(a.id)) {
            let fields = ["content", "lstrip", "normalized", "rstrip", "single_word", "special"].compactMap { k in a.entry[k].map { (key: k, value: $0) } }
            members.append((String(a.id), .object(fields)))
        }
        return JSONText.setting(config, "added_tokens_decoder", .object(members))
    }
}
