import Foundation

/// One model family: the `model_type`s it reads, how its `config.json` keys and defaults map to
/// a `ModelConfig`, and its block description (tensor names and steps). Adding a family is one
/// file with a type conforming to this protocol plus one line in `ModelFamilies.all`; the
/// engine's forward, training forward and backward, the layout, LoRA and the editors follow from
/// the description (Transformer README, "Adding a model family").
public protocol ModelFamilyDefinition: Sendable {
    static var family: ModelConfig.Family { get }
    /// The `model_type` values of config.json this family reads.
    static var modelTypes: [String] { get }
    /// Parses config.json (keys and defaults as transformers' configuration class has them).
    static func config(_ json: ConfigReader) throws -> ModelConfig
    static func block(_ config: ModelConfig) -> BlockDescription
}

/// The registry of families.
public enum ModelFamilies {
    public static let all: [any ModelFamilyDefinition.Type] = [
        LlamaFamily.self, GPT2Family.self, Qwen3Family.self, Gemma2Family.self, Gemma3Family.self, Phi3Family.self,
    ]

    public static func definition(of family: ModelConfig.Family) -> any ModelFamilyDefinition.Type {
        guard let d = all.first(where: { $0.family == family }) else { preconditionFailure("family \(family.name) is not registered") }
        return d
    }

    public static func definition(modelType: String) -> (any ModelFamilyDefinition.Type)? {
        all.first { $0.modelTypes.contains(modelType) }
    }

    /// Every supported `model_type`, for error messages.
    public static var modelTypes: [String] { all.flatMap { $0.modelTypes } }
}

/// Typed access to a config.json object, with errors naming the file and key.
public struct ConfigReader {
    public let json: [String: Any]
    public let path: String

    public init(json: [String: Any], path: String) { self.json = json; self.path = path }

    public var modelType: String { json["model_type"] as? String ?? "" }

    public func has(_ key: String) -> Bool { json[key] != nil && !(json[key] is NSNull) }

    public func error(_ key: String, _ reason: String) -> ModelError { .invalidConfig(path: path, key: key, reason: reason) }

    /// A positive integer, or `fallback` when absent or null.
    public func int(_ key: String, _ fallback: Int? = nil) throws -> Int {
        if let v = json[key], !(v is NSNull) {
            guard let n = v as? NSNumber, let i = Int(exactly: n.doubleValue), i > 0 else { throw error(key, "expected a positive integer, got \(v)") }
            return i
        }
        guard let f = fallback else { throw error(key, "missing") }
        return f
    }

    /// A positive finite number, or `fallback` when absent or null.
    public func double(_ key: String, _ fallback: Double) throws -> Double {
        guard let v = json[key], !(v is NSNull) else { return fallback }
        guard let n = v as? NSNumber, n.doubleValue.isFinite, n.doubleValue > 0 else { throw error(key, "expected a positive number, got \(v)") }
        return n.doubleValue
    }

    /// A positive finite number, or nil when absent or null.
    public func optionalDouble(_ key: String) throws -> Double? {
        guard has(key) else { return nil }
        return try double(key, 0)
    }

    public func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        guard let v = json[key], !(v is NSNull) else { return fallback }
        guard let b = v as? Bool else { throw error(key, "expected true/false, got \(v)") }
        return b
    }

    public func ids(_ key: String) -> [Int] {
        if let n = json[key] as? NSNumber { return [n.intValue] }
        if let a = json[key] as? [NSNumber] { return a.map(\.intValue) }
        return []
    }

    /// transformers 5's "rope_parameters", or its entry for one attention kind when the config
    /// has one per kind (Gemma 3: "full_attention", "sliding_attention").
    public func ropeParameters(_ kind: String = "full_attention") -> [String: Any]? {
        guard let rp = json["rope_parameters"] as? [String: Any] else { return nil }
        if let nested = rp[kind] as? [String: Any] { return nested }
        return rp["rope_theta"] != nil || rp["rope_type"] != nil ? rp : nil
    }

    /// The rotary base: transformers 5 keeps it in "rope_parameters", 4.x in "rope_theta".
    public func ropeTheta(_ fallback: Double, kind: String = "full_attention") throws -> Double {
        if let rp = ropeParameters(kind), let t = rp["rope_theta"] {
            guard let n = t as? NSNumber, n.doubleValue > 0 else { throw error("rope_parameters.rope_theta", "expected a positive number, got \(t)") }
            return n.doubleValue
        }
        return try double("rope_theta", fallback)
    }

    /// `rope_scaling` (or transformers 5's `rope_parameters`): none/default, Llama 3's, or
    /// linear (read by `ropeLinearFactor`).
    public func ropeScaling() throws -> ModelConfig.Llama3RopeScaling? {
        guard let rs = (json["rope_scaling"] as? [String: Any]) ?? ropeParameters() else { return nil }
        let kind = rs["rope_type"] as? String ?? rs["type"] as? String ?? "?"
        switch kind {
        case "default", "linear": return nil
        case "llama3":
            func num(_ k: String) throws -> Double {
                guard let n = rs[k] as? NSNumber, n.doubleValue > 0 else { throw error("rope_scaling.\(k)", "missing or not positive") }
                return n.doubleValue
            }
            return ModelConfig.Llama3RopeScaling(factor: try num("factor"), lowFreqFactor: try num("low_freq_factor"),
                                                 highFreqFactor: try num("high_freq_factor"),
                                                 originalMaxPositions: Int(try num("original_max_position_embeddings")))
        default:
            throw error("rope_scaling.rope_type (or rope_parameters)", "\"\(kind)\" is not supported (default, linear, llama3)")
        }
    }

    /// Linear rope scaling (positions divided by `factor`, i.e. the inverse frequencies; as
    /// transformers' `_compute_linear_scaling_rope_parameters`) of the global layers, or nil.
    /// Gemma 3 4B-27B scale their full-attention layers by 8 and keep the local ones unscaled; a
    /// scaled local kind is refused.
    public func ropeLinearFactor() throws -> Double? {
        if let local = (json["rope_parameters"] as? [String: Any])?["sliding_attention"] as? [String: Any],
           let kind = local["rope_type"] as? String ?? local["type"] as? String, kind != "default" {
            throw error("rope_parameters.sliding_attention.rope_type", "\"\(kind)\" on the local layers is not supported (default only)")
        }
        guard let rs = (json["rope_scaling"] as? [String: Any]) ?? ropeParameters(),
              (rs["rope_type"] as? String ?? rs["type"] as? String) == "linear" else { return nil }
        guard let n = rs["factor"] as? NSNumber, n.doubleValue.isFinite, n.doubleValue > 0 else {
            throw error("rope_scaling.factor", "missing or not a positive number (linear scaling)")
        }
        return n.doubleValue
    }

    /// `sliding_window` when windowed attention is on (`use_sliding_window`, default `defaultOn`).
    public func slidingWindow(defaultOn: Bool) throws -> Int? {
        guard has("sliding_window"), try bool("use_sliding_window", defaultOn) else { return nil }
        return try int("sliding_window")
    }

    /// Which layers attend within the window: `layer_types` ("sliding_attention" /
    /// "full_attention") when config.json has it, else `fallback(layer)`.
    public func slidingLayers(count: Int, fallback: (Int) -> Bool) throws -> [Bool] {
        guard let types = json["layer_types"] else { return (0..<count).map(fallback) }
        guard let names = types as? [String], names.count == count else {
            throw error("layer_types", "expected \(count) strings (one per layer)")
        }
        return try names.map { n in
            switch n {
            case "sliding_attention": return true
            case "full_attention": return false
            default: throw error("layer_types", "\"\(n)\" is not supported (sliding_attention, full_attention)")
            }
        }
    }

    /// The activation named by `key` (or its fallback), among `allowed`.
    public func activation(_ keys: [String], default name: String, allowed: [String: ModelConfig.Activation]) throws -> ModelConfig.Activation {
        let key = keys.first(where: has) ?? keys[0]
        let act = json[key] as? String ?? name
        guard let a = allowed[act] else {
            throw error(key, "\"\(act)\" is not supported (expected \(allowed.keys.sorted().joined(separator: ", ")))")
        }
        return a
    }
}
