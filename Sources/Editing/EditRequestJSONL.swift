import Foundation

extension EditRequest {
    /// Reads edit requests: JSONL (one JSON object per non-empty line) or one JSON array of
    /// objects (how ROME's `counterfact.json` and EasyEdit's `zsre_mend_eval.json` ship), in any
    /// of three shapes:
    /// - flat (EasyEdit's CounterFact, and `weightsmith facts make`): `prompt`, `subject`,
    ///   `target_new`, `ground_truth`, `rephrase_prompt` or `paraphrase_prompts` (string or list),
    ///   `locality_prompt` or `locality_prompts` or `neighborhood_prompts` (string or list), and
    ///   optionally `neighborhood_answers` (one per neighbourhood prompt), `generation_prompts`,
    ///   `relation`, `split`;
    /// - CounterFact: `requested_rewrite` {prompt with `{}`, subject, target_new {str}, target_true {str}},
    ///   `paraphrase_prompts`, `neighborhood_prompts` (whose true answer is target_true, Meng et al.
    ///   2022 §3), `generation_prompts`;
    /// - zsRE (MEND-processed): `src`, `subject`, `alt`, `pred`, `rephrase`, `loc` (its `nq question: `
    ///   prefix removed), `loc_ans`.
    /// Targets get a leading space when they lack one (the tokenised continuation of a prompt).
    /// Errors name the file and the line (JSONL) or the element (array, 1-based).
    public static func readJSONL(_ url: URL) throws -> [EditRequest] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw EditError.cannotRead(path: url.path, reason: "\(error)")
        }
        return try parseJSONL(text, path: url.path)
    }

    /// Parses the text of an edit-request file as `readJSONL` does; `path` names it in errors.
    public static func parseJSONL(_ text: String, path: String) throws -> [EditRequest] {
        var out: [EditRequest] = []
        func add(_ obj: [String: Any], _ place: Int) throws {
            do {
                let r = try parse(obj)
                try r.validate()
                out.append(r)
            } catch let e as EditError {
                throw EditError.invalidRecord(path: path, line: place, reason: "\(e)")
            }
        }
        if text.drop(while: { $0.isWhitespace }).first == "[" {
            guard let arr = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [Any] else {
                throw EditError.cannotRead(path: path, reason: "not a JSON array of objects")
            }
            for (i, e) in arr.enumerated() {
                guard let obj = e as? [String: Any] else { throw EditError.invalidRecord(path: path, line: i + 1, reason: "element \(i + 1) is not a JSON object") }
                try add(obj, i + 1)
            }
            return out
        }
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.isEmpty { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any] else {
                throw EditError.invalidRecord(path: path, line: i + 1, reason: "not a JSON object")
            }
            try add(obj, i + 1)
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
        return try parsePrompts(text, path: url.path)
    }

    /// Parses the text of a locality-prompt file as `readPrompts` does; `path` names it in errors.
    public static func parsePrompts(_ text: String, path: String) throws -> [String] {
        var out: [String] = []
        for (i, line) in text.split(separator: "\n").enumerated() {
            let t = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.isEmpty { continue }
            if t.hasPrefix("{") {
                guard let obj = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any],
                      let p = (obj["prompt"] ?? obj["locality_prompt"]) as? String else {
                    throw EditError.invalidRecord(path: path, line: i + 1, reason: "expected {\"prompt\": string}")
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
            let truth = targetString(rw["target_true"]).map(spaced)
            let neighbours = strings(obj["neighborhood_prompts"])
            return EditRequest(prompt: p, subject: s, target: spaced(tn), groundTruth: truth,
                               paraphrases: strings(obj["paraphrase_prompts"]), localityPrompts: neighbours,
                               localityAnswers: truth.map { t in neighbours.map { _ in t } } ?? [],
                               generationPrompts: strings(obj["generation_prompts"]), relation: rw["relation_id"] as? String)
        }
        if let src = obj["src"] as? String {
            guard let alt = obj["alt"] as? String, !alt.isEmpty else { throw EditError.invalidRequest("zsRE record without alt") }
            let loc = strings(obj["loc"]).map { $0.hasPrefix("nq question: ") ? String($0.dropFirst(13)) : $0 }
            let locAns = strings(obj["loc_ans"]).map(spaced)
            return EditRequest(prompt: src, subject: obj["subject"] as? String, target: spaced(alt),
                               groundTruth: (obj["pred"] as? String).map(spaced), paraphrases: strings(obj["rephrase"]), localityPrompts: loc,
                               localityAnswers: locAns.count == loc.count ? locAns : [])
        }
        guard let p = obj["prompt"] as? String else { throw EditError.invalidRequest("missing \"prompt\"") }
        guard let tn = targetString(obj["target_new"] ?? obj["target"]) else { throw EditError.invalidRequest("missing \"target_new\"") }
        let para = strings(obj["rephrase_prompt"]) + strings(obj["rephrase_prompts"]) + strings(obj["paraphrase_prompts"])
        let loc = strings(obj["locality_prompt"]) + strings(obj["locality_prompts"]) + strings(obj["neighborhood_prompts"])
        return EditRequest(prompt: p, subject: obj["subject"] as? String, target: spaced(tn),
                           groundTruth: targetString(obj["ground_truth"] ?? obj["target_true"]).map(spaced), paraphrases: para, localityPrompts: loc,
                           localityAnswers: strings(obj["neighborhood_answers"]).map(spaced), generationPrompts: strings(obj["generation_prompts"]),
                           relation: obj["relation"] as? String, split: obj["split"] as? String)
    }
}

extension EditRequest {
    /// The record as one JSONL line (sorted keys), the flat shape `readJSONL` reads back.
    public func jsonLine(caseID: Int? = nil) throws -> String {
        var o: [String: Any] = ["prompt": prompt, "target_new": target, "paraphrase_prompts": paraphrases,
                                "neighborhood_prompts": localityPrompts]
        if let caseID { o["case_id"] = caseID }
        if let subject { o["subject"] = subject }
        if let groundTruth { o["ground_truth"] = groundTruth }
        if !localityAnswers.isEmpty { o["neighborhood_answers"] = localityAnswers }
        if !generationPrompts.isEmpty { o["generation_prompts"] = generationPrompts }
        if let relation { o["relation"] = relation }
        if let split { o["split"] = split }
        let d: Data
        do { d = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]) } catch {
            throw EditError.invalidRequest("record \(caseID.map(String.init) ?? "\"\(prompt)\"") cannot be written as JSON: \(error.localizedDescription)")
        }
        return String(decoding: d, as: UTF8.self)
    }
}
