import Foundation
import Tensors
import Yams

/// A recipe problem, naming the file, the line and the key path.
public struct RecipeError: Error, Equatable, CustomStringConvertible, Sendable {
    public let file: String
    public let line: Int?
    public let key: String
    public let message: String
    public var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(key.isEmpty ? "" : "\(key): ")\(message)"
    }
}

/// Parses mergekit YAML recipes into `Recipe` (mergekit's `MergeConfiguration` schema).
///
/// Accepted top-level keys: `merge_method`, `base_model`, `models`, `slices`, `parameters`,
/// `dtype`, `out_dtype`, `tokenizer_source` (or a `tokenizer:` block: `source:`, `tokens:`,
/// `pad_to_multiple_of:`), `chat_template`. `modules` is refused with an explanation;
/// any other key is an error (mergekit ignores unknown keys, which hides typos).
public enum RecipeParser {
    public static func parse(file path: String) throws -> Recipe {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RecipeError(file: path, line: nil, key: "", message: "cannot read the recipe file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw RecipeError(file: path, line: nil, key: "", message: "the recipe is not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    /// The first line (1-based) that starts a block-style explicit mapping key (`? `), outside block
    /// scalars. Recipes never need one (their keys are plain strings), and nested explicit keys
    /// made `Yams.compose` take exponential time: a 1,463-byte input found by the recipe fuzzer
    /// ran for minutes (16 of its lines already over 100 s). Such a recipe is refused before it is
    /// composed.
    static func explicitKeyLine(_ text: String) -> Int? {
        var blockIndent: Int? = nil  // inside a block scalar (`|`, `>`) whose header line had this indent
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw[...]
            let indent = line.prefix(while: { $0 == " " || $0 == "\t" }).count
            var rest = line.dropFirst(indent)
            if let b = blockIndent {
                if rest.isEmpty || indent > b { continue }
                blockIndent = nil
            }
            // Sequence entries ("- ") before the node itself.
            while rest.hasPrefix("- ") || rest == "-" { rest = rest.dropFirst().drop(while: { $0 == " " || $0 == "\t" }) }
            if rest == "?" || rest.hasPrefix("? ") || rest.hasPrefix("?\t") { return i + 1 }
            // A block scalar header ends the line: `key: |`, `- >-`, `key: |2+` (comments aside).
            let content = rest.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? rest
            let trimmed = content.reversed().drop(while: { $0 == " " || $0 == "\t" })
            let header = trimmed.prefix(while: { "+-0123456789".contains($0) })
            if let c = trimmed.dropFirst(header.count).first, c == "|" || c == ">" {
                let before = trimmed.dropFirst(header.count + 1).first
                if before == nil || before == " " || before == ":" || before == "-" { blockIndent = indent }
            }
        }
        return nil
    }

    /// `Yams.compose` after refusing explicit mapping keys (`explicitKeyLine`); YAML errors name the line.
    static func compose(_ text: String, file: String) throws -> Node? {
        if let line = explicitKeyLine(text) {
            throw RecipeError(file: file, line: line, key: "", message: "explicit mapping keys (\"? \") are not accepted in a recipe: write keys as plain strings")
        }
        do { return try Yams.compose(yaml: text) } catch let e as YamlError {
            throw RecipeError(file: file, line: yamlLine(e), key: "", message: "invalid YAML: \(yamlProblem(e))")
        }
    }

    public static func parse(_ text: String, file: String = "<recipe>") throws -> Recipe {
        let root = try compose(text, file: file)
        guard let root, let map = root.mapping else {
            throw RecipeError(file: file, line: root?.mark?.line, key: "", message: "a recipe must be a YAML mapping with at least merge_method")
        }
        let p = Parser(file: file)
        var recipe = Recipe(mergeMethod: "", text: text, file: file)
        var seenMethod = false
        for (k, v) in map {
            guard let key = k.string else { throw p.error(k, "", "keys must be strings") }
            switch key {
            case "merge_method":
                recipe.mergeMethod = try p.string(v, key)
                seenMethod = true
                guard MergeMethodRegistry.names.contains(recipe.mergeMethod) else {
                    throw p.error(v, key, "unknown merge method \"\(recipe.mergeMethod)\"; known: \(MergeMethodRegistry.names.joined(separator: ", "))")
                }
            case "base_model": recipe.baseModel = try p.modelReference(v, key)
            case "models":
                guard let seq = v.sequence else { throw p.error(v, key, "expected a list of {model: ..., parameters: ...}") }
                recipe.models = try seq.enumerated().map { i, n in try p.source(n, "\(key)[\(i)]", allowRange: false) }
            case "slices":
                guard let seq = v.sequence else { throw p.error(v, key, "expected a list of {sources: [...]}") }
                recipe.slices = try seq.enumerated().map { i, n in try p.slice(n, "\(key)[\(i)]") }
            case "parameters": recipe.parameters = try p.table(v, key)
            case "dtype": recipe.dtype = try p.dtype(v, key)
            case "out_dtype": recipe.outDType = try p.dtype(v, key)
            case "tokenizer_source":
                guard recipe.tokenizerSource == nil else { throw p.error(k, key, "give either tokenizer_source: or tokenizer:, not both") }
                recipe.tokenizerSource = try p.string(v, key)
            case "modules": throw p.error(k, key, "multi-module recipes (modules:) are not supported; use models: or slices:")
            case "tokenizer":
                guard recipe.tokenizerSource == nil else { throw p.error(k, key, "give either tokenizer_source: or tokenizer:, not both") }
                let block = try p.tokenizerBlock(v, key)
                recipe.tokenizerSource = block.source
                recipe.tokenEmbeddings = block.tokens
                recipe.padVocabularyToMultipleOf = block.pad
            case "chat_template": recipe.chatTemplate = try p.string(v, key)
            case "name":
                throw p.error(k, key, "name: belongs to multi-document recipes (documents separated by ---, as mergekit-multi reads them)")
            default: throw p.error(k, key, "unknown key (expected merge_method, base_model, models, slices, parameters, dtype, out_dtype, tokenizer_source, tokenizer, chat_template)")
            }
        }
        guard seenMethod else { throw RecipeError(file: file, line: root.mark?.line, key: "merge_method", message: "missing (e.g. merge_method: ties)") }
        switch (recipe.models, recipe.slices) {
        case (nil, nil): throw RecipeError(file: file, line: root.mark?.line, key: "models", message: "a recipe needs models: or slices:")
        case (.some, .some): throw RecipeError(file: file, line: root.mark?.line, key: "slices", message: "give either models: or slices:, not both")
        case let (m?, nil) where m.isEmpty: throw RecipeError(file: file, line: root.mark?.line, key: "models", message: "the list is empty")
        case let (nil, s?) where s.isEmpty: throw RecipeError(file: file, line: root.mark?.line, key: "slices", message: "the list is empty")
        default: break
        }
        try validateParameterNames(recipe)
        return recipe
    }

    /// Every parameter name used must be declared by the method (typos are errors, not ignored).
    public static func validateParameterNames(_ r: Recipe) throws {
        let method = try MergeMethodRegistry.method(named: r.mergeMethod)
        let specs = Dictionary(method.parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func check(_ t: ParameterTable, _ key: String, perModelOnly: Bool) throws {
            for name in t.settings.keys.sorted() {
                guard let spec = specs[name] else {
                    throw RecipeError(file: r.file, line: t.lines[name], key: "\(key).\(name)",
                        message: "\(method.name) has no parameter \"\(name)\"; its parameters: \(method.parameters.map(\.name).joined(separator: ", "))")
                }
                if perModelOnly && spec.scope == .global {
                    throw RecipeError(file: r.file, line: t.lines[name], key: "\(key).\(name)",
                        message: "\"\(name)\" is a global parameter of \(method.name); set it under the top-level (or slice) parameters")
                }
            }
        }
        try check(r.parameters, "parameters", perModelOnly: false)
        for (i, m) in (r.models ?? []).enumerated() { try check(m.parameters, "models[\(i)].parameters", perModelOnly: true) }
        for (i, s) in (r.slices ?? []).enumerated() {
            try check(s.parameters, "slices[\(i)].parameters", perModelOnly: false)
            for (j, src) in s.sources.enumerated() { try check(src.parameters, "slices[\(i)].sources[\(j)].parameters", perModelOnly: true) }
        }
    }

    static func yamlLine(_ e: YamlError) -> Int? {
        switch e {
        case let .scanner(_, _, mark, _), let .parser(_, _, mark, _), let .composer(_, _, mark, _): return mark.line
        default: return nil
        }
    }

    static func yamlProblem(_ e: YamlError) -> String {
        switch e {
        case let .scanner(_, problem, _, _), let .parser(_, problem, _, _), let .composer(_, problem, _, _): return problem
        case let .duplicatedKeysInMapping(duplicates, _): return "duplicated keys \(duplicates.joined(separator: ", "))"
        default: return String(describing: e)
        }
    }

    struct Parser {
        let file: String

        func error(_ n: Node, _ key: String, _ message: String) -> RecipeError {
            RecipeError(file: file, line: n.mark?.line, key: key, message: message)
        }

        func string(_ n: Node, _ key: String) throws -> String {
            guard let s = n.scalar?.string, !s.isEmpty else { throw error(n, key, "expected a non-empty string") }
            return s
        }

        func modelReference(_ n: Node, _ key: String) throws -> String {
            if let m = n.mapping, let inner = m["model"] { return try modelReference(inner, key + ".model") }
            let s = try string(n, key)
            return s
        }

        /// mergekit's `tokenizer:` block (`mergekit/tokenizer/config.py`): `source:` (union by
        /// default), `tokens:` (per-token embedding sources), `pad_to_multiple_of:`.
        func tokenizerBlock(_ n: Node, _ key: String) throws -> (source: String, tokens: [TokenEmbeddingSetting], pad: Int?) {
            guard let m = n.mapping else { throw error(n, key, "expected {source: union|base|MODEL, tokens: {...}, pad_to_multiple_of: N}") }
            var source = "union"
            var tokens: [TokenEmbeddingSetting] = []
            var pad: Int?
            for (k, v) in m {
                let name = k.string ?? ""
                switch name {
                case "source": source = try string(v, "\(key).source")
                case "tokens":
                    if v.null != nil { continue }
                    guard let tm = v.mapping else { throw error(v, "\(key).tokens", "expected a mapping of TOKEN: {source: ..., force: ...}") }
                    for (tk, tv) in tm {
                        guard let token = tk.string else { throw error(tk, "\(key).tokens", "token names must be strings") }
                        tokens.append(try tokenEmbedding(token, tv, "\(key).tokens.\(token)"))
                    }
                case "pad_to_multiple_of":
                    if v.null != nil { continue }
                    guard let x = v.int, x > 0 else { throw error(v, "\(key).\(name)", "expected a positive integer, e.g. 64") }
                    pad = x
                default: throw error(k, "\(key).\(name)", "unknown key (expected source, tokens, pad_to_multiple_of)")
                }
            }
            return (source, tokens, pad)
        }

        /// One `tokens:` entry: `{source: MODEL | {kind: zero} | {kind: model_token, model: M,
        /// token: T | token_id: N}, force: BOOL}`.
        func tokenEmbedding(_ token: String, _ n: Node, _ key: String) throws -> TokenEmbeddingSetting {
            var e = TokenEmbeddingSetting(token: token, line: n.mark?.line ?? 0)
            if n.null != nil { return e }
            guard let m = n.mapping else { throw error(n, key, "expected {source: ..., force: true|false}") }
            for (k, v) in m {
                let name = k.string ?? ""
                switch name {
                case "force":
                    guard let b = v.bool else { throw error(v, "\(key).force", "expected true or false") }
                    e.force = b
                case "source":
                    if v.null != nil { continue }
                    if v.scalar != nil { e.source = .model(try modelReference(v, "\(key).source")); continue }
                    guard let sm = v.mapping else { throw error(v, "\(key).source", "expected MODEL, {kind: zero} or {kind: model_token, model: ..., token: ...}") }
                    if sm["kind"] == nil, sm["model"] != nil { e.source = .model(try modelReference(v, "\(key).source")); continue }
                    var kind: String?, model: String?, tok: String?, id: Int?
                    for (sk, sv) in sm {
                        switch sk.string ?? "" {
                        case "kind": kind = try string(sv, "\(key).source.kind")
                        case "model": model = try modelReference(sv, "\(key).source.model")
                        case "token": tok = try string(sv, "\(key).source.token")
                        case "token_id":
                            guard let x = sv.int, x >= 0 else { throw error(sv, "\(key).source.token_id", "expected a non-negative integer") }
                            id = x
                        default: throw error(sk, "\(key).source.\(sk.string ?? "?")", "unknown key (expected kind, model, token, token_id)")
                        }
                    }
                    switch kind {
                    case "zero"?:
                        guard model == nil, tok == nil, id == nil else { throw error(v, "\(key).source", "{kind: zero} takes no other keys") }
                        e.source = .zero
                    case "model_token"?:
                        guard let model else { throw error(v, "\(key).source.model", "missing (the model whose row is taken)") }
                        guard (tok == nil) != (id == nil) else { throw error(v, "\(key).source", "give exactly one of token: and token_id:") }
                        e.source = .modelToken(model: model, token: tok, tokenID: id)
                    case let other?: throw error(v, "\(key).source.kind", "unknown kind \"\(other)\" (expected zero or model_token)")
                    case nil: throw error(v, "\(key).source.kind", "missing (zero or model_token)")
                    }
                default: throw error(k, "\(key).\(name)", "unknown key (expected source, force)")
                }
            }
            return e
        }

        func dtype(_ n: Node, _ key: String) throws -> DType {
            let s = try string(n, key)
            let name = s.hasPrefix("torch.") ? String(s.dropFirst(6)) : s
            guard let d = DType(userSpelling: name), [.f32, .f16, .bf16, .f64].contains(d) else {
                throw error(n, key, "\"\(s)\" is not a floating-point dtype (float32, bfloat16, float16, float64)")
            }
            return d
        }

        func source(_ n: Node, _ key: String, allowRange: Bool) throws -> RecipeSource {
            if n.scalar != nil { return RecipeSource(model: try modelReference(n, key), line: n.mark?.line ?? 0) }
            guard let m = n.mapping else { throw error(n, key, "expected {model: PATH, parameters: {...}}") }
            var src = RecipeSource(model: "", line: n.mark?.line ?? 0)
            var hasModel = false
            for (k, v) in m {
                let name = k.string ?? ""
                switch name {
                case "model": src.model = try modelReference(v, "\(key).model"); hasModel = true
                case "parameters": src.parameters = try table(v, "\(key).parameters")
                case "layer_range" where allowRange:
                    guard let seq = v.sequence, seq.count == 2, let a = seq[0].int, let b = seq[1].int, a >= 0, b > a else {
                        throw error(v, "\(key).layer_range", "expected [start, end) with 0 ≤ start < end, e.g. [0, 16]")
                    }
                    src.layerRange = a..<b
                default:
                    throw error(k, "\(key).\(name)", allowRange ? "unknown key (expected model, parameters, layer_range)"
                                                             : "unknown key (expected model, parameters; layer_range belongs in slices:)")
                }
            }
            guard hasModel else { throw error(n, "\(key).model", "missing") }
            return src
        }

        func slice(_ n: Node, _ key: String) throws -> RecipeSlice {
            guard let m = n.mapping else { throw error(n, key, "expected {sources: [...]}") }
            var s = RecipeSlice(sources: [], line: n.mark?.line ?? 0)
            var hasSources = false
            for (k, v) in m {
                let name = k.string ?? ""
                switch name {
                case "sources":
                    guard let seq = v.sequence, !seq.isEmpty else { throw error(v, "\(key).sources", "expected a non-empty list") }
                    s.sources = try seq.enumerated().map { i, n in try source(n, "\(key).sources[\(i)]", allowRange: true) }
                    hasSources = true
                case "parameters": s.parameters = try table(v, "\(key).parameters")
                case "base_model": s.baseModel = try modelReference(v, "\(key).base_model")
                case "residual_weight": break  // declared by mergekit but unused there too
                default: throw error(k, "\(key).\(name)", "unknown key (expected sources, parameters, base_model)")
                }
            }
            guard hasSources else { throw error(n, "\(key).sources", "missing") }
            for (i, src) in s.sources.enumerated() where src.layerRange == nil {
                throw RecipeError(file: file, line: src.line, key: "\(key).sources[\(i)].layer_range", message: "missing (every slice source needs one)")
            }
            let lengths = Set(s.sources.compactMap { $0.layerRange?.count })
            if lengths.count > 1 {
                throw error(n, key, "all sources of a slice must take the same number of layers, got \(s.sources.map { $0.layerRange.map { "[\($0.lowerBound), \($0.upperBound))" } ?? "?" }.joined(separator: ", "))")
            }
            return s
        }

        func table(_ n: Node, _ key: String) throws -> ParameterTable {
            if n.null != nil { return ParameterTable() }
            guard let m = n.mapping else { throw error(n, key, "expected a mapping of parameter: value") }
            var t = ParameterTable()
            for (k, v) in m {
                guard let name = k.string else { throw error(k, key, "parameter names must be strings") }
                t.settings[name] = try setting(v, "\(key).\(name)")
                t.lines[name] = k.mark?.line
            }
            return t
        }

        func value(_ n: Node, _ key: String) throws -> ParameterValue {
            guard let s = n.scalar else { throw error(n, key, "expected a number or true/false") }
            switch s.string.lowercased() {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: break
            }
            guard let x = n.float, x.isFinite else { throw error(n, key, "expected a number or true/false, got \"\(s.string)\"") }
            return .number(x)
        }

        func setting(_ n: Node, _ key: String) throws -> ParameterSetting {
            if n.scalar != nil { return .value(try value(n, key)) }
            guard let seq = n.sequence else { throw error(n, key, "expected a value, a list of values (gradient) or a list of {filter, value}") }
            guard !seq.isEmpty else { throw error(n, key, "empty list") }
            if seq.allSatisfy({ $0.mapping != nil }) {
                return .conditional(try seq.enumerated().map { i, e in
                    let m = e.mapping!
                    var filter: String?
                    var val: ParameterSetting?
                    for (k, v) in m {
                        switch k.string ?? "" {
                        case "filter": filter = try string(v, "\(key)[\(i)].filter")
                        case "value": val = try setting(v, "\(key)[\(i)].value")
                        default: throw error(k, "\(key)[\(i)].\(k.string ?? "?")", "unknown key (expected filter, value)")
                        }
                    }
                    guard let val else { throw error(e, "\(key)[\(i)].value", "missing") }
                    return (filter, val)
                })
            }
            let values = try seq.enumerated().map { i, e in try value(e, "\(key)[\(i)]") }
            let numbers = values.compactMap { v -> Double? in if case let .number(x) = v { return x } else { return nil } }
            if numbers.count == values.count { return .gradient(numbers) }
            return .steps(values)
        }
    }
}
