import Checkpoints
import Foundation

/// A recipe's `chat_template:` (as mergekit reads it): `auto` (the template most of the inputs
/// use), the name of a built-in template, or a literal Jinja template. The merged folder then
/// holds it as `chat_template.jinja` (what transformers ≥ 4.43 writes and reads first), and the
/// copied `tokenizer_config.json` loses its own `chat_template` key so that nothing contradicts it.
public enum ChatTemplates {
    /// Built-in templates, written for weightsmith from each format's public description.
    public static let builtIn: [String: String] = [
        "chatml": #"{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"#,
        "llama3": #"{{ bos_token | default('') }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + (message['content'] | trim) + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"#,
        "mistral": #"{{ bos_token | default('') }}{% set ns = namespace(system='') %}{% for message in messages %}{% if message['role'] == 'system' %}{% set ns.system = message['content'] + '\n\n' %}{% elif message['role'] == 'user' %}{{ '[INST] ' + ns.system + message['content'] + ' [/INST]' }}{% set ns.system = '' %}{% elif message['role'] == 'assistant' %}{{ message['content'] + (eos_token | default('')) }}{% endif %}{% endfor %}"#,
        "alpaca": #"{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}{% elif message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}{{ '### Response:\n' + message['content'] + (eos_token | default('')) + '\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"#,
    ]

    /// The template a model folder declares: `chat_template.jinja`, else `tokenizer_config.json`'s
    /// `chat_template` (a string, or the entry named "default" of a list of named templates),
    /// else `chat_template.json`'s. Trimmed of surrounding whitespace, as mergekit compares them.
    public static func template(of directory: URL) -> String? {
        let fm = FileManager.default
        if let data = fm.contents(atPath: directory.appendingPathComponent("chat_template.jinja").path),
           let s = String(data: data, encoding: .utf8), !s.isEmpty {
            return s.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        for file in ["tokenizer_config.json", "chat_template.json"] {
            guard let data = fm.contents(atPath: directory.appendingPathComponent(file).path),
                  let json = try? StrictJSONParser.parse(Array(data)) else { continue }
            switch json["chat_template"] {
            case let .string(s)?: return s.trimmingCharacters(in: .whitespacesAndNewlines)
            case let .array(entries)?:
                for e in entries {
                    if case .string("default")? = e["name"], case let .string(s)? = e["template"] {
                        return s.trimmingCharacters(in: .whitespacesAndNewlines)
                    }
                }
            default: continue
            }
        }
        return nil
    }

    public enum Resolution: Equatable {
        case template(String, note: String)
        /// `auto` and no input has a template: nothing is set (mergekit does the same).
        case none(note: String)
        case problem(String)
    }

    /// Resolves the recipe's `chat_template` value against the inputs' folders (in recipe order,
    /// base first): `auto` takes the template used by most inputs (a tie goes to the one met first).
    public static func resolve(_ value: String, inputs: [(label: String, directory: URL?)]) -> Resolution {
        if value == "auto" {
            var counts: [String: Int] = [:], order: [String] = [], users: [String: [String]] = [:]
            for input in inputs {
                guard let d = input.directory, let t = template(of: d) else { continue }
                if counts[t] == nil { order.append(t) }
                counts[t, default: 0] += 1
                users[t, default: []].append(input.label)
            }
            guard let best = order.max(by: { counts[$0]! < counts[$1]! || (counts[$0]! == counts[$1]! && order.firstIndex(of: $0)! > order.firstIndex(of: $1)!) }) else {
                return .none(note: "chat_template: auto: no input declares a chat template; none is set")
            }
            return .template(best, note: "chat_template: auto chose the template of \(users[best]!.joined(separator: ", "))"
                + (order.count > 1 ? " (\(counts[best]!) of \(counts.values.reduce(0, +)) inputs with a template)" : ""))
        }
        if let t = builtIn[value] { return .template(t, note: "chat_template: the built-in \(value) template") }
        let looksLikeName = value.count < 256 && !value.contains("\n") && !value.contains("{")
        if looksLikeName {
            return .problem("chat_template \"\(value)\" is neither auto, a built-in template (\(builtIn.keys.sorted().joined(separator: ", "))) nor a Jinja template")
        }
        guard value.count >= 20 else {
            return .problem("chat_template is too short to be a Jinja template (\(value.count) characters)")
        }
        return .template(value, note: "chat_template: the recipe's own template")
    }

    /// Writes `template` into a merged folder whose tokenizer files were copied from an input.
    static func install(_ template: String, in dir: URL) throws {
        let fm = FileManager.default
        let config = dir.appendingPathComponent("tokenizer_config.json")
        if let data = fm.contents(atPath: config.path), let json = try? StrictJSONParser.parse(Array(data)),
           case let .object(entries) = json, entries.contains(where: { $0.key == "chat_template" }) {
            let kept = JSONValue.object(entries.filter { $0.key != "chat_template" })
            try writeFileAtomically(Array((JSONText.string(kept) + "\n").utf8), to: config)
        }
        let processor = dir.appendingPathComponent("chat_template.json")
        if fm.fileExists(atPath: processor.path) { try fm.removeItem(at: processor) }
        try writeFileAtomically(Array(template.utf8), to: dir.appendingPathComponent("chat_template.jinja"))
    }
}
