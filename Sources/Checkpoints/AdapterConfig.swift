import Foundation
import Tensors

/// The fields of a PEFT `adapter_config.json` that determine a LoRA update.
///
/// Per module (the dotted path of the adapted layer in the base model, e.g.
/// `model.layers.0.self_attn.q_proj`): rank r and alpha come from `rank_pattern` /
/// `alpha_pattern` when a pattern key matches (PEFT's rule: the first key `k` in file order for
/// which the regex `(.*\.)?(k)$` matches the whole module path), else from `r` / `lora_alpha`.
/// The scale is `alpha / r`, or `alpha / sqrt(r)` with `use_rslora`.
public struct AdapterConfig: Sendable, Equatable {
    public enum TargetModules: Sendable, Equatable {
        case names([String])     // a module matches when its path equals a name or ends with ".name"
        case regex(String)       // a module matches when the regex matches the whole path
        case unspecified
    }

    public var r: Int
    public var loraAlpha: Double
    public var useRSLoRA: Bool
    public var fanInFanOut: Bool
    public var targetModules: TargetModules { didSet { recompilePatterns() } }
    /// (pattern, rank) in file order.
    public var rankPattern: [(key: String, value: Int)] { didSet { recompilePatterns() } }
    /// (pattern, alpha) in file order.
    public var alphaPattern: [(key: String, value: Double)] { didSet { recompilePatterns() } }
    public var modulesToSave: [String]
    public var baseModelNameOrPath: String?
    /// The regexes of the three pattern fields, compiled once (see `AdapterPatterns`).
    private var patterns: AdapterPatterns

    private mutating func recompilePatterns() {
        patterns = AdapterPatterns(targetModules: targetModules, rankKeys: rankPattern.map(\.key), alphaKeys: alphaPattern.map(\.key))
    }

    public static func == (a: AdapterConfig, b: AdapterConfig) -> Bool {
        a.r == b.r && a.loraAlpha == b.loraAlpha && a.useRSLoRA == b.useRSLoRA && a.fanInFanOut == b.fanInFanOut
            && a.targetModules == b.targetModules && a.modulesToSave == b.modulesToSave
            && a.rankPattern.map(\.key) == b.rankPattern.map(\.key) && a.rankPattern.map(\.value) == b.rankPattern.map(\.value)
            && a.alphaPattern.map(\.key) == b.alphaPattern.map(\.key) && a.alphaPattern.map(\.value) == b.alphaPattern.map(\.value)
            && a.baseModelNameOrPath == b.baseModelNameOrPath
    }

    public init(r: Int, loraAlpha: Double, useRSLoRA: Bool = false, fanInFanOut: Bool = false,
                targetModules: TargetModules = .unspecified, rankPattern: [(key: String, value: Int)] = [],
                alphaPattern: [(key: String, value: Double)] = [], modulesToSave: [String] = [], baseModelNameOrPath: String? = nil) {
        self.r = r; self.loraAlpha = loraAlpha; self.useRSLoRA = useRSLoRA; self.fanInFanOut = fanInFanOut
        self.targetModules = targetModules; self.rankPattern = rankPattern; self.alphaPattern = alphaPattern
        self.modulesToSave = modulesToSave; self.baseModelNameOrPath = baseModelNameOrPath
        patterns = AdapterPatterns(targetModules: targetModules, rankKeys: rankPattern.map(\.key), alphaKeys: alphaPattern.map(\.key))
    }

    /// Reads and validates `adapter_config.json`.
    public init(contentsOf url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw AdapterError.configMissing(path: url.path) }
        try self.init(jsonBytes: Array(data), path: url.path)
    }

    /// Parses and validates the bytes of an `adapter_config.json`; `path` names it in errors.
    public init(jsonBytes: [UInt8], path: String) throws {
        let json: JSONValue
        do { json = try StrictJSONParser.parse(jsonBytes) } catch let e as JSONParseError {
            throw AdapterError.invalidConfig(path: path, key: "(file)", reason: "not valid JSON: \(e.description)")
        }
        try self.init(json: json, path: path)
    }

    /// Validates a parsed config. Unknown keys are ignored (PEFT has many that do not change
    /// the update); features that do change it and are not implemented are refused.
    public init(json: JSONValue, path: String) throws {
        guard case .object = json else { throw AdapterError.invalidConfig(path: path, key: "(file)", reason: "must be a JSON object") }
        func bad(_ key: String, _ reason: String) -> AdapterError { .invalidConfig(path: path, key: key, reason: reason) }
        func int(_ v: JSONValue?, _ key: String) throws -> Int? {
            switch v {
            case nil, .null?: return nil
            case let .integer(i)?: return i
            case let .number(d)? where d == d.rounded() && abs(d) < 1e15: return Int(d)
            case let x?: throw bad(key, "expected an integer, got \(x.kindName)")
            }
        }
        func number(_ v: JSONValue?, _ key: String) throws -> Double? {
            switch v {
            case nil, .null?: return nil
            case let .integer(i)?: return Double(i)
            case let .number(d)?: return d
            case let x?: throw bad(key, "expected a number, got \(x.kindName)")
            }
        }
        func bool(_ v: JSONValue?, _ key: String) throws -> Bool? {
            switch v {
            case nil, .null?: return nil
            case let .bool(b)?: return b
            case let x?: throw bad(key, "expected true or false, got \(x.kindName)")
            }
        }
        if case let .string(t)? = json["peft_type"], t.uppercased() != "LORA" {
            throw AdapterError.unsupported(path: path, feature: "peft_type \"\(t)\" (only LORA adapters are read)")
        }
        if try bool(json["use_dora"], "use_dora") == true {
            throw AdapterError.unsupported(path: path, feature: "use_dora (DoRA's magnitude vectors are not a low-rank update)")
        }
        guard let r = try int(json["r"], "r") else { throw bad("r", "missing") }
        guard r > 0 else { throw bad("r", "must be positive, got \(r)") }
        self.r = r
        let alpha = try number(json["lora_alpha"], "lora_alpha") ?? 8   // PEFT's default lora_alpha
        guard alpha.isFinite else { throw bad("lora_alpha", "must be finite") }
        loraAlpha = alpha
        useRSLoRA = try bool(json["use_rslora"], "use_rslora") ?? false
        fanInFanOut = try bool(json["fan_in_fan_out"], "fan_in_fan_out") ?? false
        switch json["target_modules"] {
        case nil, .null?: targetModules = .unspecified
        case let .string(s)?: targetModules = .regex(s)
        case let .array(items)?:
            targetModules = .names(try items.map {
                guard case let .string(s) = $0 else { throw bad("target_modules", "entries must be strings, found \($0.kindName)") }
                return s
            })
        case let x?: throw bad("target_modules", "expected a list of names or a regex string, got \(x.kindName)")
        }
        var rp: [(key: String, value: Int)] = []
        switch json["rank_pattern"] {
        case nil, .null?: break
        case let .object(members)?:
            for (k, v) in members {
                guard let rv = try int(v, "rank_pattern.\(k)"), rv > 0 else { throw bad("rank_pattern.\(k)", "must be a positive integer") }
                rp.append((k, rv))
            }
        case let x?: throw bad("rank_pattern", "expected an object, got \(x.kindName)")
        }
        rankPattern = rp
        var ap: [(key: String, value: Double)] = []
        switch json["alpha_pattern"] {
        case nil, .null?: break
        case let .object(members)?:
            for (k, v) in members {
                guard let av = try number(v, "alpha_pattern.\(k)"), av.isFinite else { throw bad("alpha_pattern.\(k)", "must be a finite number") }
                ap.append((k, av))
            }
        case let x?: throw bad("alpha_pattern", "expected an object, got \(x.kindName)")
        }
        alphaPattern = ap
        switch json["modules_to_save"] {
        case nil, .null?: modulesToSave = []
        case let .array(items)?:
            modulesToSave = try items.map {
                guard case let .string(s) = $0 else { throw bad("modules_to_save", "entries must be strings") }
                return s
            }
        case let x?: throw bad("modules_to_save", "expected a list, got \(x.kindName)")
        }
        if case let .string(s)? = json["base_model_name_or_path"] { baseModelNameOrPath = s } else { baseModelNameOrPath = nil }
        patterns = try AdapterPatterns.validated(targetModules: targetModules, rankKeys: rp.map(\.key), alphaKeys: ap.map(\.key), path: path)
    }

    /// PEFT's pattern rule: the first key whose regex `(.*\.)?(key)$` matches the module path.
    /// `compiled[i]` is the compiled regex of `patterns[i]`.
    static func firstMatch<V>(_ patterns: [(key: String, value: V)], _ compiled: [NSRegularExpression?], _ module: String) -> V? {
        for (i, (_, v)) in patterns.enumerated() where AdapterPatterns.matches(compiled[i], module) { return v }
        return nil
    }

    /// Rank of `module` (after rank_pattern).
    public func rank(for module: String) -> Int { AdapterConfig.firstMatch(rankPattern, patterns.rank, module) ?? r }
    /// Alpha of `module` (after alpha_pattern).
    public func alpha(for module: String) -> Double { AdapterConfig.firstMatch(alphaPattern, patterns.alpha, module) ?? loraAlpha }
    /// The factor s in ΔW = s · B A: alpha/r, or alpha/sqrt(r) with rsLoRA.
    public func scale(for module: String) -> Double {
        let rr = Double(rank(for: module)), a = alpha(for: module)
        return useRSLoRA ? a / rr.squareRoot() : a / rr
    }

    /// Whether a module path is a target (list: equal or ".name" suffix; regex: whole-path match).
    public func isTarget(_ module: String) -> Bool {
        switch targetModules {
        case .unspecified: return false
        case let .names(ns): return ns.contains { module == $0 || module.hasSuffix("." + $0) }
        case .regex: return AdapterPatterns.matches(patterns.target, module)
        }
    }

    /// The config as PEFT writes it (keys PEFT needs to load a plain LoRA adapter).
    public func jsonText(taskType: String? = "CAUSAL_LM") -> String {
        func q(_ s: String) -> String { jsonQuoted(s) }
        func num(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d) }
        let targets: String
        switch targetModules {
        case .unspecified: targets = "null"
        case let .regex(p): targets = q(p)
        case let .names(ns): targets = "[" + ns.map(q).joined(separator: ", ") + "]"
        }
        var lines = [
            "\"alpha_pattern\": {" + alphaPattern.map { "\(q($0.key)): \(num($0.value))" }.joined(separator: ", ") + "}",
            "\"base_model_name_or_path\": " + (baseModelNameOrPath.map(q) ?? "null"),
            "\"bias\": \"none\"",
            "\"fan_in_fan_out\": \(fanInFanOut)",
            "\"inference_mode\": true",
            "\"init_lora_weights\": true",
            "\"lora_alpha\": \(num(loraAlpha))",
            "\"lora_dropout\": 0.0",
            "\"modules_to_save\": " + (modulesToSave.isEmpty ? "null" : "[" + modulesToSave.map(q).joined(separator: ", ") + "]"),
            "\"peft_type\": \"LORA\"",
            "\"r\": \(r)",
            "\"rank_pattern\": {" + rankPattern.map { "\(q($0.key)): \($0.value)" }.joined(separator: ", ") + "}",
            "\"target_modules\": " + targets,
            "\"use_dora\": false",
            "\"use_rslora\": \(useRSLoRA)",
        ]
        if let taskType { lines.append("\"task_type\": \(q(taskType))") }
        return "{\n  " + lines.joined(separator: ",\n  ") + "\n}\n"
    }
}
