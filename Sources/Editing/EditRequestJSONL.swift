import Foundation

extension EditRequest {
    /// Reads edit requests, one JSON object per non-empty line, in any of three shapes:
    /// - flat (EasyEdit's CounterFact): `prompt`, `subject`, `target_new`, `ground_truth`,
    ///   `rephrase_prompt` or `paraphrase_prompts` (string or list), `locality_prompt` or
    ///   `locality_prompts` or `neighborhood_prompts` (string or list);
    /// - CounterFact: `requested_rewrite` {prompt with `{}`, subject, target_new {str}, target_true {str}},
    ///   `paraphrase_prompts`, `neighborhood_prompts`;
    /// - zsRE (MEND-processed): `src`, `subject`, `alt`, `pred`, `rephrase`, `loc` (its `nq question: `
    ///   prefix removed).
    /// Targets get a leading space when they lack one (the tokenised continuation of a prompt).
    public static func readJSONL(_ url: URL) throws -> [EditRequest] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw EditError.cannotRead(path: url.path, reason: "\(error)")
        }
        var out: [EditRequest] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.isEmpty { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any] else {
                throw EditError.invalidRecord(path: url.path, line: i + 1, reason: "not a JSON object")
            }
            do {
                let r = try parse(obj)
                try r.validate()
                out.append(r)
            } catch let e as EditError {
                throw EditError.invalidRecord(path: url.path, line: i + 1, reason: "\(e)")
            }
        }
        return out
    }

    /// Reads locality prompts: a JSONL file of objects with `prompt` (or `locality_prompt`), or
    /// plain text with one prompt per non-empty line.
    public static func readPrompts(_ url: URL) throws -> [String] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw EditError.cannotRead(path: url.path, reason: "\(error)")
        }
        var out: [String] = []
        for (i, line) in text.split(separator: "\n").enumerated() {
            let t = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.isEmpty { continue }
            if t.hasPrefix("{") {
                guard let obj = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any],
                      let p = (obj["prompt"] ?? obj["locality_prompt"]) as? String else {
                    throw EditError.invalidRecord(path: url.path, line: i + 1, reason: "expected {\"prompt\": string}")
                }
                out.append(p)
            } else {
                out.append(t)
            }
        }
        return out
    }

    static func strings(_ v: Any?) -> [String] {
        if let s = v as? String { return [s] }
        if let a = v as? [Any] { return a.compactMap { $0 as? String } }
        return []
    }

    static func targetString(_ v: Any?) -> String? {
        if let s = v as? String { return s }
        if let d = v as? [String: Any], let s = d["str"] as? String { return s }
        return nil
    }

    static func spaced(_ s: String) -> String { s.hasPrefix(" ") ? s : " " + s }

    static func parse(_ obj: [String: Any]) throws -> EditRequest {
        if let rw = obj["requested_rewrite"] as? [String: Any] {
            guard let p = rw["prompt"] as? String, let s = rw["subject"] as? String, let tn = targetString(rw["target_new"]) else {
                throw EditError.invalidRequest("requested_rewrite needs prompt, subject and target_new.str")
            }
            return EditRequest(prompt: p, subject: s, target: spaced(tn), groundTruth: targetString(rw["target_true"]).map(spaced),
                               paraphrases: strings(obj["paraphrase_prompts"]), localityPrompts: strings(obj["neighborhood_prompts"]))
        }
        if let src = obj["src"] as? String {
            guard let alt = obj["alt"] as? String, !alt.isEmpty else { throw EditError.invalidRequest("zsRE record without alt") }
            let loc = strings(obj["loc"]).map { $0.hasPrefix("nq question: ") ? String($0.dropFirst(13)) : $0 }
            return EditRequest(prompt: src, subject: obj["subject"] as? String, target: spaced(alt),
                               groundTruth: (obj["pred"] as? String).map(spaced), paraphrases: strings(obj["rephrase"]), localityPrompts: loc)
        }
        guard let p = obj["prompt"] as? String else { throw EditError.invalidRequest("missing \"prompt\"") }
        guard let tn = targetString(obj["target_new"] ?? obj["target"]) else { throw EditError.invalidRequest("missing \"target_new\"") }
        let para = strings(obj["rephrase_prompt"]) + strings(obj["rephrase_prompts"]) + strings(obj["paraphrase_prompts"])
        let loc = strings(obj["locality_prompt"]) + strings(obj["locality_prompts"]) + strings(obj["neighborhood_prompts"])
        return EditRequest(prompt: p, subject: obj["subject"] as? String, target: spaced(tn),
                           groundTruth: targetString(obj["ground_truth"] ?? obj["target_true"]).map(spaced), paraphrases: para, localityPrompts: loc)
    }
}
