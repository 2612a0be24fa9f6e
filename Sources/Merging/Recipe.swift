import Checkpoints
import Tensors

/// A parameter as written in a recipe, before it is evaluated for one tensor
/// (as mergekit's `config.py` resolves them).
public indirect enum ParameterSetting: Sendable, Equatable {
    /// A scalar: the value everywhere.
    case value(ParameterValue)
    /// A list of numbers: piecewise-linear over the layers of a slice (`t = k/(n−1)`).
    case gradient([Double])
    /// A list of non-numeric values: `steps[Int(t·(L−1))]`.
    case steps([ParameterValue])
    /// `[{filter: self_attn, value: ...}, {value: ...}]`: the first entry whose filter is absent,
    /// `"*"` or a substring of the tensor name.
    case conditional([(filter: String?, value: ParameterSetting)])

    public static func == (a: ParameterSetting, b: ParameterSetting) -> Bool {
        switch (a, b) {
        case let (.value(x), .value(y)): return x == y
        case let (.gradient(x), .gradient(y)): return x == y
        case let (.steps(x), .steps(y)): return x == y
        case let (.conditional(x), .conditional(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.filter == $1.filter && $0.value == $1.value }
        default: return false
        }
    }

    /// The value for tensor `name` at layer position `t` ∈ [0, 1]; nil when no filter matches.
    public func evaluate(tensor name: String, t: Double) -> ParameterValue? {
        switch self {
        case let .value(v): return v
        case let .gradient(g):
            guard !g.isEmpty else { return nil }
            let s = t * Double(g.count - 1)
            let i0 = min(g.count - 1, max(0, Int(s.rounded(.down))))
            let i1 = min(g.count - 1, i0 + 1)
            let f = s - Double(i0)
            return .number((1 - f) * g[i0] + f * g[i1])
        case let .steps(v):
            guard !v.isEmpty else { return nil }
            return v[min(v.count - 1, max(0, Int(t * Double(v.count - 1))))]
        case let .conditional(entries):
            for e in entries {
                if let f = e.filter, f != "*", !name.contains(f) { continue }
                return e.value.evaluate(tensor: name, t: t)
            }
            return nil
        }
    }
}

/// Parameters of one recipe level with the line each was written on.
public struct ParameterTable: Sendable, Equatable {
    public var settings: [String: ParameterSetting] = [:]
    public var lines: [String: Int] = [:]
    public init() {}
    public init(_ settings: [String: ParameterSetting]) { self.settings = settings }
    public subscript(name: String) -> ParameterSetting? { settings[name] }
    public var isEmpty: Bool { settings.isEmpty }
}

/// One input of a recipe: a model path with its parameters and, in a slice, its layer range.
public struct RecipeSource: Sendable, Equatable {
    public var model: String
    public var parameters: ParameterTable
    /// `[start, end)` of layers taken (slices only).
    public var layerRange: Range<Int>?
    public var line: Int
    public init(model: String, parameters: ParameterTable = ParameterTable(), layerRange: Range<Int>? = nil, line: Int = 0) {
        self.model = model
        self.parameters = parameters
        self.layerRange = layerRange
        self.line = line
    }
}

public struct RecipeSlice: Sendable, Equatable {
    public var sources: [RecipeSource]
    public var parameters: ParameterTable
    public var baseModel: String?
    public var line: Int
    public init(sources: [RecipeSource], parameters: ParameterTable = ParameterTable(), baseModel: String? = nil, line: Int = 0) {
        self.sources = sources
        self.parameters = parameters
        self.baseModel = baseModel
        self.line = line
    }
}

/// Where the embedding row of one output token comes from (mergekit's `tokenizer.tokens:` entries,
/// `mergekit/tokenizer/config.py`).
public enum TokenEmbeddingSource: Sendable, Equatable {
    /// `source: MODEL`: that model's row of the same token.
    case model(String)
    /// `source: {kind: model_token, model: MODEL, token: T}` or `token_id: N`: that model's row of
    /// another token (by its string in the model's own vocabulary, or by row index).
    case modelToken(model: String, token: String?, tokenID: Int?)
    /// `source: {kind: zero}`: a row of zeros.
    case zero

    /// The model the source names, if any.
    public var model: String? {
        switch self {
        case let .model(m), let .modelToken(m, _, _): return m
        case .zero: return nil
        }
    }
}

/// One `tokenizer.tokens:` entry: `source` (nil = mergekit's default rules) and `force` (use the
/// source even for models that have the token).
public struct TokenEmbeddingSetting: Sendable, Equatable {
    public var token: String
    public var source: TokenEmbeddingSource?
    public var force: Bool
    public var line: Int
    public init(token: String, source: TokenEmbeddingSource? = nil, force: Bool = false, line: Int = 0) {
        self.token = token
        self.source = source
        self.force = force
        self.line = line
    }
}

/// A merge recipe in mergekit's YAML format (the subset weightsmith runs), typed.
/// Exactly one of `models` and `slices` is set.
public struct Recipe: Sendable, Equatable {
    public var mergeMethod: String
    public var baseModel: String?
    public var models: [RecipeSource]?
    public var slices: [RecipeSlice]?
    public var parameters: ParameterTable
    /// mergekit's load/compute dtype; here it only chooses the output dtype when `outDType` is absent.
    public var dtype: DType?
    public var outDType: DType?
    /// `base` or a model path; nil = the base model (or the first model).
    public var tokenizerSource: String?
    /// `tokenizer.tokens:` in file order (each token once).
    public var tokenEmbeddings: [TokenEmbeddingSetting] = []
    /// `tokenizer.pad_to_multiple_of:`: output vocabulary rows rounded up to a multiple of this.
    public var padVocabularyToMultipleOf: Int?
    /// `chat_template:` as written: `auto`, a built-in name or a Jinja template (see `ChatTemplates`).
    public var chatTemplate: String?
    /// The YAML text the recipe came from (copied into the output); nil for a command-line recipe.
    public var text: String?
    public var file: String

    public init(mergeMethod: String, baseModel: String? = nil, models: [RecipeSource]? = nil, slices: [RecipeSlice]? = nil,
                parameters: ParameterTable = ParameterTable(), dtype: DType? = nil, outDType: DType? = nil,
                tokenizerSource: String? = nil, text: String? = nil, file: String = "<command line>") {
        self.mergeMethod = mergeMethod
        self.baseModel = baseModel
        self.models = models
        self.slices = slices
        self.parameters = parameters
        self.dtype = dtype
        self.outDType = outDType
        self.tokenizerSource = tokenizerSource
        self.text = text
        self.file = file
    }

    /// Every model path the recipe names, base first, without duplicates, in order of appearance.
    public var modelPaths: [String] {
        var out: [String] = []
        func add(_ p: String?) { if let p, !out.contains(p) { out.append(p) } }
        add(baseModel)
        for m in models ?? [] { add(m.model) }
        for s in slices ?? [] { add(s.baseModel); for src in s.sources { add(src.model) } }
        return out
    }

    /// The recipe as YAML (for a command-line recipe, which has no text).
    public func yaml() -> String {
        if let text { return text }
        func setting(_ s: ParameterSetting) -> String {
            switch s {
            case let .value(v): return v.description
            case let .gradient(g): return "[" + g.map { ParameterValue.number($0).description }.joined(separator: ", ") + "]"
            case let .steps(v): return "[" + v.map(\.description).joined(separator: ", ") + "]"
            case let .conditional(e):
                return "[" + e.map { "{" + ($0.filter.map { "filter: \($0), " } ?? "") + "value: \(setting($0.value))}" }.joined(separator: ", ") + "]"
            }
        }
        func table(_ t: ParameterTable, indent: String) -> String {
            t.settings.keys.sorted().map { "\(indent)\($0): \(setting(t.settings[$0]!))\n" }.joined()
        }
        var y = "merge_method: \(mergeMethod)\n"
        if let baseModel { y += "base_model: \(baseModel)\n" }
        if let models {
            y += "models:\n"
            for m in models {
                y += "  - model: \(m.model)\n"
                if !m.parameters.isEmpty { y += "    parameters:\n" + table(m.parameters, indent: "      ") }
            }
        }
        if !parameters.isEmpty { y += "parameters:\n" + table(parameters, indent: "  ") }
        if let dtype { y += "dtype: \(dtype.recipeName)\n" }
        if let outDType { y += "out_dtype: \(outDType.recipeName)\n" }
        if let tokenizerSource { y += "tokenizer_source: \(tokenizerSource)\n" }
        if let chatTemplate { y += "chat_template: \(JSONText.quote(chatTemplate))\n" }
        return y
    }
}

extension DType {
    /// The spelling used in recipes (`float32`, `bfloat16`...).
    public var recipeName: String {
        switch self {
        case .f32: return "float32"
        case .f16: return "float16"
        case .bf16: return "bfloat16"
        case .f64: return "float64"
        default: return rawValue.lowercased()
        }
    }
}
