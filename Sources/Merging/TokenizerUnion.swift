import Checkpoints
import Foundation

/// `tokenizer_source: union` (mergekit: a vocabulary holding every input's tokens, embedding rows
/// permuted per input). Supported when the union is trivial: every input has the same vocabulary
/// (the same `model.vocab` and `added_tokens` in tokenizer.json, or the same tokenizer.model),
/// which is the common case of fine-tunes of one base; the output then takes the base's tokenizer.
/// Different vocabularies are a pre-flight problem that names the first difference.
enum TokenizerUnion {
    /// The vocabulary-defining part of a model folder's tokenizer, or nil when it has none.
    static func vocabulary(of directory: URL) -> (kind: String, value: JSONValue?, bytes: [UInt8]?)? {
        let fm = FileManager.default
        if let data = fm.contents(atPath: directory.appendingPathComponent("tokenizer.json").path) {
            guard let json = try? StrictJSONParser.parse(Array(data)) else { return ("tokenizer.json", nil, Array(data)) }
            let vocab = json["model"]?["vocab"] ?? .null
            let added = json["added_tokens"] ?? .array([])
            return ("tokenizer.json", .array([vocab, added]), nil)
        }
        if let data = fm.contents(atPath: directory.appendingPathComponent("tokenizer.model").path) {
            return ("tokenizer.model", nil, Array(data))
        }
        return nil
    }

    static func tokenCount(_ v: JSONValue?) -> Int? {
        guard case let .array(parts)? = v, parts.count == 2 else { return nil }
        switch parts[0] {
        case let .object(m): return m.count
        case let .array(a): return a.count
        default: return nil
        }
    }

    /// nil when every input has the reference's vocabulary, else the problem to report.
    static func problem(inputs: [PlannedInput], reference: Int) -> String? {
        guard let refDir = inputs[reference].checkpoint.directory, let ref = vocabulary(of: refDir) else {
            return "tokenizer_source: union: \(inputs[reference].label) has no tokenizer.json or tokenizer.model to start the union from"
        }
        for (i, input) in inputs.enumerated() where i != reference {
            guard let dir = input.checkpoint.directory, let v = vocabulary(of: dir) else {
                return "tokenizer_source: union: \(input.label) has no tokenizer.json or tokenizer.model, so its vocabulary is unknown"
            }
            let same = v.kind == ref.kind && v.value == ref.value && v.bytes == ref.bytes
            if !same {
                let sizes = [tokenCount(ref.value), tokenCount(v.value)]
                let detail = sizes.allSatisfy { $0 != nil } ? " (\(sizes[0]!) vs \(sizes[1]!) tokens)" : ""
                return "tokenizer_source: union: \(input.label) and \(inputs[reference].label) have different vocabularies\(detail); "
                    + "a union of different vocabularies is not supported yet: use tokenizer_source: base or a model (with --vocab truncate|base if the sizes differ)"
            }
        }
        return nil
    }
}
