import Checkpoints
import Foundation

/// Compares the architecture settings of every input's config.json with the input the output's
/// config is taken from: a merge of models whose activation, RoPE base, norm epsilon, head layout
/// or architecture differ runs to completion but gives a model whose config is wrong for some of
/// its weights. Every difference is reported at once (as pre-flight problems, or as notes when the
/// user allows it, mergekit's `--allow-crimes`). `num_hidden_layers`, `vocab_size` and
/// `tie_word_embeddings` are checked by the planner itself (slices, vocabulary choices, tied heads).
enum ConfigPreflight {
    /// Settings that must agree, each with the spellings transformers uses for it.
    static let settings: [(label: String, paths: [[String]])] = [
        ("model_type", [["model_type"]]),
        ("architectures", [["architectures"]]),
        ("hidden_size", [["hidden_size"], ["n_embd"]]),
        ("intermediate_size", [["intermediate_size"], ["n_inner"]]),
        ("num_attention_heads", [["num_attention_heads"], ["n_head"]]),
        ("num_key_value_heads", [["num_key_value_heads"]]),
        ("head_dim", [["head_dim"]]),
        ("hidden_act", [["hidden_act"], ["hidden_activation"], ["activation_function"]]),
        ("rope_theta", [["rope_theta"], ["rope_parameters", "rope_theta"]]),
        ("rope_type", [["rope_scaling", "rope_type"], ["rope_scaling", "type"], ["rope_parameters", "rope_type"]]),
        ("rope_scaling.factor", [["rope_scaling", "factor"], ["rope_parameters", "factor"]]),
        ("rms_norm_eps", [["rms_norm_eps"]]),
        ("layer_norm_eps", [["layer_norm_eps"], ["layer_norm_epsilon"]]),
        ("attention_bias", [["attention_bias"]]),
        ("mlp_bias", [["mlp_bias"]]),
        ("sliding_window", [["sliding_window"]]),
    ]
    /// Settings whose difference is worth a note but not a refusal.
    static let noted: [(label: String, paths: [[String]])] = [
        ("max_position_embeddings", [["max_position_embeddings"], ["n_positions"]]),
    ]

    static func value(_ config: JSONValue, _ paths: [[String]]) -> JSONValue? {
        for path in paths {
            var v: JSONValue? = config
            for k in path { v = v?[k] }
            if let v, v != .null { return v }
        }
        return nil
    }

    /// Equal as settings: numbers compare by value (10000 and 10000.0 agree) and up to float32
    /// rounding (a GGUF stores 1e-5 as 9.9999997e-6).
    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        func number(_ v: JSONValue) -> Double? {
            switch v {
            case let .integer(x): return Double(x)
            case let .number(x): return x
            default: return nil
            }
        }
        if let x = number(a), let y = number(b) { return x == y || abs(x - y) <= 1e-6 * max(abs(x), abs(y)) }
        return a == b
    }

    static func shown(_ v: JSONValue) -> String { JSONText.string(v).replacingOccurrences(of: "\n", with: " ") }

    /// (problems, notes) for `inputs` against `inputs[reference]`.
    static func check(_ inputs: [PlannedInput], reference: Int, allowMismatch: Bool) -> (problems: [String], notes: [String]) {
        guard let ref = try? inputs[reference].checkpoint.folderJSON("config.json") else { return ([], []) }
        var problems: [String] = [], notes: [String] = []
        for (i, input) in inputs.enumerated() where i != reference {
            guard let config = try? input.checkpoint.folderJSON("config.json") else { continue }
            for (group, isProblem) in [(settings, true), (noted, false)] {
                for s in group {
                    guard let a = value(ref, s.paths), let b = value(config, s.paths), !same(a, b) else { continue }
                    let text = "config.json: \(s.label) is \(shown(b)) in \(input.label) but \(shown(a)) in \(inputs[reference].label), whose config the output takes"
                    if isProblem && !allowMismatch {
                        problems.append(text + " (--allow-crimes merges anyway)")
                    } else {
                        notes.append(text)
                    }
                }
            }
        }
        return (problems, notes)
    }
}
