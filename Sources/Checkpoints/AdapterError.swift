import Tensors

/// Errors for PEFT LoRA adapters: each names the file, the module or key, and expected vs actual.
public enum AdapterError: Error, Equatable, CustomStringConvertible, Sendable {
    case configMissing(path: String)
    case invalidConfig(path: String, key: String, reason: String)
    case unsupported(path: String, feature: String)
    /// A regex field (`target_modules`, a `rank_pattern` or `alpha_pattern` key) that is too long
    /// or does not compile; `pattern` is the offending text, quoted in the message as a short prefix.
    case invalidPattern(path: String, field: String, pattern: String, reason: String)
    case missingFactor(path: String, module: String, factor: String)
    case unexpectedKey(path: String, key: String)
    case rankMismatch(path: String, module: String, expected: Int, actual: Int, detail: String)
    case factorShapeMismatch(path: String, module: String, a: Shape, b: Shape)
    case targetNotInBase(module: String, tensor: String, base: String)
    case baseShapeMismatch(module: String, tensor: String, expected: Shape, actual: Shape)
    case emptyAdapter(path: String)

    public var description: String {
        switch self {
        case let .configMissing(p): return "\(p): no adapter_config.json (a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors)"
        case let .invalidConfig(p, k, r): return "\(p): \"\(k)\": \(r)"
        case let .invalidPattern(p, f, pat, r):
            let shown = pat.count <= 80 ? jsonQuoted(pat) : jsonQuoted(String(pat.prefix(80))) + "…"
            return "\(p): \"\(f)\": pattern \(shown) \(r)"
        case let .unsupported(p, f): return "\(p): unsupported adapter feature: \(f)"
        case let .missingFactor(p, m, f): return "\(p): module \"\(m)\" has no \(f) tensor (a LoRA module needs both lora_A and lora_B)"
        case let .unexpectedKey(p, k): return "\(p): tensor \"\(k)\" is neither a LoRA factor nor a saved module (expected base_model.model.<module>.lora_A/lora_B.weight)"
        case let .rankMismatch(p, m, e, a, d): return "\(p): module \"\(m)\": rank \(a) in the weights but \(e) expected (\(d))"
        case let .factorShapeMismatch(p, m, a, b): return "\(p): module \"\(m)\": lora_A \(a) and lora_B \(b) do not compose (need A [r, in], B [out, r])"
        case let .targetNotInBase(m, t, b): return "\(b): adapter module \"\(m)\" targets tensor \"\(t)\", which the base checkpoint does not have"
        case let .baseShapeMismatch(m, t, e, a): return "base tensor \"\(t)\" for adapter module \"\(m)\": expected shape \(e), got \(a)"
        case let .emptyAdapter(p): return "\(p): the adapter contains no LoRA modules"
        }
    }
}
