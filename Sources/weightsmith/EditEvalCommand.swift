import ArgumentParser
import Editing
import Foundation
import Transformer

struct EditEvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit-eval",
        abstract: "Score editing methods over edit records: one table, the unedited model first, CounterFact's and EasyEdit's metrics.",
        discussion: """
        For each method of --method (comma-separated: rome, ft, mend, memit), edits MODEL with every \
        record of --requests and scores it. Single-edit protocol by default: each record alone (edit, \
        score, restore); --sequential keeps the edits, one after another, and scores all records after \
        the last (and after every --every K edits); --batch edits MEMIT's records all at once. \
        Columns (means over the records; a dash where no record has the data): \
        ES efficacy score, the share with P(new) > P(true) on the edit prompt; EM efficacy magnitude, \
        P(new) − P(true); PS paraphrase score; NS neighbourhood score, the share of neighbourhood \
        prompts whose own answer stays more likely than the new target (Meng et al. 2022, §3; P is the \
        per-token geometric mean probability; with --batch or --sequential, neighbourhood prompts that \
        mention a subject edited in the run are left out of every row, and their count printed); GE generation entropy of greedy generations from the \
        generation prompts (bits; ROME's tables print it × 100); rel / gen / loc: EasyEdit's \
        token-level reliability, generalization and locality (Wang et al. 2024); hit: records whose \
        greedy answer is the target; ppl: the perplexity of the --perplexity text. The seconds per edit follow the table. No model is written; with --stats-corpus the key \
        statistics are cached (--stats-cache), as for edit.
        """)

    @Argument(help: "A model reference (as for edit).") var model: String
    @Option(help: "The base of an adapter, task vector or sparse delta given as MODEL.") var base: String?
    @Option(name: .long, help: "Comma-separated methods: rome, ft, mend (needs --editor), memit (needs --stats-corpus).") var method: String
    @Option(name: .long, help: "Edit records (JSONL or a JSON array; see docs/edit-records.md).") var requests: String
    @Option(name: .long, help: "Keep only the records of this split (train, validation, test).") var split: String?
    @Option(name: .long, help: "Score only the first N records (after --split).") var limit: Int?
    @Flag(name: .long, help: "Sequential protocol: keep every edit; score all records after the last.") var sequential = false
    @Option(name: .long, help: "With --sequential: also a row after every K edits (over the records edited so far).") var every: Int?
    @Flag(name: .long, help: "MEMIT: all records in one edit (the other methods keep their protocol).") var batch = false
    @Option(name: .long, help: "New tokens generated from each generation prompt for GE (0: not measured).") var generationTokens = 100
    @Option(name: .long, help: "A text file whose perplexity each row reports (a ppl column; single-edit rows: the mean over the edits).") var perplexity: String?
    @Option(name: .long, help: "Window of the --perplexity text in tokens (at most the model's context).") var window = 256
    @Flag(name: .long, help: "Print the rows as JSON on stdout.") var json = false
    @Flag(help: "No progress on stderr.") var quiet = false
    @OptionGroup(title: "Editor settings (as for edit)") var editorOptions: EditorOptions
    @OptionGroup var nonFinite: NonFiniteOption
    @OptionGroup var threading: ThreadsOption

    func run() throws {
        try threading.apply()
        var methods: [EditMethod] = []
        for name in method.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let m = EditMethod(rawValue: name) else {
                throw ValidationError("--method: unknown method \"\(name)\" (choose from \(EditMethod.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if !methods.contains(m) { methods.append(m) }
        }
        guard !methods.isEmpty else { throw ValidationError("--method: give at least one of rome, ft, mend, memit") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        if let every, every < 1 { throw ValidationError("--every must be at least 1, got \(every)") }
        if every != nil && !sequential { throw ValidationError("--every needs --sequential") }
        if batch && !methods.contains(.memit) { throw ValidationError("--batch applies to --method memit only") }
        if batch && sequential { throw ValidationError("--batch and --sequential exclude each other") }
        if methods.contains(.mend) && editorOptions.editor == nil {
            throw ValidationError("--method mend needs --editor EDITOR (a MEND editor trained by weightsmith train-editor)")
        }
        if methods.contains(.memit) && editorOptions.statsCorpus == nil {
            throw ValidationError("--method memit needs --stats-corpus TEXT (the key covariance of each edited layer)")
        }
        var rs = try EditRequest.readJSONL(URL(fileURLWithPath: requests))
        if let split { rs = rs.filter { $0.split == split } }
        if let limit { rs = Array(rs.prefix(limit)) }
        guard !rs.isEmpty else { throw ValidationError("no records in \(requests)\(split.map { " with split \($0)" } ?? "")") }
        if methods.contains(.rome) || methods.contains(.memit) {
            for (i, r) in rs.enumerated() {
                do { _ = try r.keySubject() } catch { throw ValidationError("\(requests): record \(i + 1): \(error)") }
            }
        }

        var pplText: String? = nil
        if let f = perplexity {
            do { pplText = try String(contentsOfFile: f, encoding: .utf8) } catch {
                throw ValidationError("cannot read --perplexity \(f): " + (FileManager.default.fileExists(atPath: f) ? "not UTF-8 text" : "no such file"))
            }
            guard pplText!.contains(where: { !$0.isWhitespace }) else { throw ValidationError("--perplexity \(f): no text to score (the file is empty)") }
        }
        if window < 2 { throw ValidationError("--window must be at least 2, got \(window)") }
        try editorOptions.checkCache(inputs: [model, base].compactMap { $0 })
        let loaded = try PretrainedModel(path: model, base: base)
        if !nonFinite.allowNonFinite { try loaded.model.requireFiniteWeights() }
        let m = loaded.model, tok = loaded.tokenizer
        // MEMIT's batch edit is one long step (a value per fact, then one solve per layer): its own
        // progress, so a 100-fact run in a log shows it is alive between the unedited row and the scores.
        let memitProgress = batch && !quiet ? ProgressLine(label: "edit-eval: value steps and layers (memit)") : nil
        let editors = try Editors(options: editorOptions, model: m, tokenizer: tok, methods: methods, memitProgress: memitProgress)
        if !quiet && !editors.notes.isEmpty { FileHandle.standardError.write(Data(editors.notes.utf8)) }
        let evaluation = try EditEvaluation(model: m, tokenizer: tok, requests: rs, generationTokens: generationTokens,
                                             excludingEditedSubjects: sequential || batch)
        evaluation.perplexityText = pplText
        evaluation.perplexityWindow = window

        func progress(_ label: String) -> ((Int, Int) -> Void) {
            let line = ProgressLine(label: label)
            // Redrawn on a terminal; otherwise a plain "edit-eval: P% (d/n records, LABEL), ..." line
            // at most every 30 s, so that a long run in a log or a pipe shows it is alive.
            var last = Date()
            // Timed from the row's first record: MEMIT's batch row makes its edit (with its own
            // progress) before scoring the first record, which would otherwise count in the ETA.
            var start: Date? = nil
            return { done, total in
                guard !quiet else { return }
                if start == nil {
                    start = Date()
                    line.restart()
                }
                if line.tty {
                    line.update(done, total)
                    if done == total { line.finish() }
                    return
                }
                let now = Date()
                guard done < total, now.timeIntervalSince(last) >= 30 else { return }
                last = now
                // `start` is the time of the first record's end, so rate over the records after it.
                let el = now.timeIntervalSince(start!), eta = done > 1 ? el / Double(done - 1) * Double(total - done) : 0
                FileHandle.standardError.write(Data(String(format: "edit-eval: %d%% (%d/%d records, %@), %.0f s elapsed, ETA %.0f s\n",
                                                           100 * done / max(total, 1), done, total, label, el, eta).utf8))
            }
        }
        var rows = [try evaluation.unedited(progress: progress("unedited"))]
        for meth in methods {
            let name = meth.rawValue
            if meth == .memit && batch {
                rows.append(try evaluation.batch(name: "memit (batch)", method: { try editors.memitBatch($0) }, progress: progress(name)))
                FileHandle.standardError.write(Data(("memit: " + editors.lastDetail).utf8))
            } else if sequential {
                rows += try evaluation.sequential(name: "\(name) (sequential)", every: every, method: { try editors.edits(meth, $0) }, progress: progress(name))
            } else {
                rows.append(try evaluation.single(name: name, method: { try editors.edits(meth, $0) }, progress: progress(name)))
            }
        }
        if json {
            try printJSON(EditEvalJSON(model: model, requests: rs.count, protocol: sequential ? "sequential" : "single",
                                       memitProtocol: batch ? "batch" : nil, generationTokens: generationTokens, excludedNeighbourhoodPrompts: evaluation.excludedNeighbourhoodPrompts,
                                       rows: rows))
            return
        }
        print("\(rs.count) records, \(sequential ? "sequential" : "single-edit") protocol\(batch ? " (memit: one batch edit)" : ""); GE from \(generationTokens) greedy tokens")
        if evaluation.excludedNeighbourhoodPrompts > 0 {
            print("\(evaluation.excludedNeighbourhoodPrompts) neighbourhood prompts mention a subject edited in this run and are left out of NS and loc in every row")
        }
        print(EditEvalTable.render(rows))
        print(EditEvalTable.timing(rows))
    }
}

struct EditEvalJSON: Encodable {
    var model: String
    var requests: Int
    /// The protocol of every row but MEMIT's with --batch ("single" or "sequential").
    var `protocol`: String
    /// "batch" with --batch: the MEMIT row is one edit of all records at once.
    var memitProtocol: String?
    var generationTokens: Int
    var excludedNeighbourhoodPrompts: Int
    var rows: [EditEvaluationRow]
}

enum EditEvalTable {
    static func render(_ rows: [EditEvaluationRow]) -> String {
        func f(_ x: Double?, _ digits: Int = 3) -> String {
            guard let x else { return "-" }
            let s = String(format: "%.\(digits)f", x)
            // No "-0.000" for a value that rounds to zero.
            return s.hasPrefix("-") && s.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) ? String(s.dropFirst()) : s
        }
        let ppl = rows.contains { $0.perplexity != nil }
        let header = ["method", "edits", "ES", "EM", "PS", "NS", "GE", "rel", "gen", "loc", "hit"] + (ppl ? ["ppl"] : [])
        let body = rows.map { r in
            [r.name, "\(r.edits)", f(r.efficacyScore), f(r.efficacyMagnitude), f(r.paraphraseScore), f(r.neighbourhoodScore),
             f(r.generationEntropy, 2), f(r.reliability), f(r.generalization), f(r.locality), "\(r.reachedTarget)/\(r.requests)"]
                + (ppl ? [f(r.perplexity, 2)] : [])
        }
        let all = [header] + body
        let widths = header.indices.map { c in all.map { $0[c].count }.max()! }
        return all.map { row in
            row.enumerated().map { c, s in
                c == 0 ? s + String(repeating: " ", count: widths[c] - s.count) : String(repeating: " ", count: widths[c] - s.count) + s
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// The time per edit of each method (its last row), on one line below the table.
    static func timing(_ rows: [EditEvaluationRow]) -> String {
        let last = rows.filter { !$0.name.contains(" @") }
        return "seconds per edit: " + last.compactMap { r in r.secondsPerEdit.map { String(format: "%@ %.2f s", r.name, $0) } }.joined(separator: ", ")
    }
}
