import ArgumentParser
import Foundation
import Checkpoints
import Merging
import Transformer

struct ComposeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compose",
        abstract: "Task arithmetic from an expression: BASE + Σ c·(model − BASE).",
        discussion: """
        Example: weightsmith compose --base base "0.7*math + 0.5*code - 0.3*toxic" \\
                   --model math=ft-math --model code=tv-code --model toxic=ft-toxic -o out
        A name refers to a fine-tuned checkpoint (its task vector is taken against --base), to a
        task vector written by `weightsmith task-vector extract`, or to a sparse delta (`graft`'s
        graft.safetensors, an LT-SFT output of `finetune --mode lt-sft`), read as BASE+DELTA.

        Expressions (recursive descent; spaces are ignored):
          expression := sum
          sum        := product (("+" | "-") product)*
          product    := unary (("*" | "/") unary)*
          unary      := ("+" | "-") unary | primary
          primary    := NUMBER | NAME | "(" sum ")"
        e.g. "cap + 0.5 * (prof + cont)", "(a - b)/2", "-0.5*cap + prof". The result must be \
        linear: numbers scale models or parenthesised sums; a number added to a model, a product \
        of two models and a division by a model are errors, reported with their column. A name \
        used twice gets the sum of its coefficients. A hyphen between letters or digits belongs to \
        the name (`ft-a`): write `ft - a` to subtract.
        A leading minus: "-0.5*cap + prof" is taken as the expression (not as an option) as it is \
        written; a lone one-letter term such as "-a" needs `--` before it, after the options \
        (`compose --base B --model a=A -- "-a"`), or a space: " -a".

        Search (Ilharco et al. 2023, §2): --search lambda=0:1:0.05 --held-out DATA.jsonl scores \
        BASE + λ Σ c·(model − BASE) for every λ of the grid in memory (completion NLL and greedy exact \
        match, as `eval`; scores cached like `soup`), prints the table and writes the best λ's model \
        with -o. Names may refer to fine-tuned checkpoints or to task vectors (searched as BASE+VECTOR).
        Forgetting by negation (Ilharco et al. 2023, §3): with --keep CONTROL.jsonl=0.95 (repeatable) the \
        search instead picks the λ that scores worst on the --held-out (target) sets among those whose \
        score on every control set stays at least 95% of the base's (exact match for --metric em, the \
        per-token likelihood exp(−NLL) for --metric nll), e.g.
          weightsmith compose --base M " -1*toxic" --model toxic=tv-toxic --search lambda=0:1:0.1 \
            --held-out toxic.jsonl --keep control.jsonl=0.95 -o M-forgot
        """
    )

    @Option(help: "The base model.") var base: String
    @Argument(help: "Expression such as \"0.7*math + 0.5*code - 0.3*toxic\" or \"cap + 0.5 * (prof + cont)\" (grammar below; a leading minus works as written).")
    var expression: String
    @OptionGroup var nonFinite: NonFiniteOption
    @Option(name: .customLong("model"), help: "NAME=PATH for every name in the expression.") var models: [String] = []
    @Option(name: [.short, .customLong("output")], help: "Output folder.") var output: String?
    @Option(name: [.customLong("dtype"), .customLong("out-dtype")], help: "Output dtype: f32, bf16, f16 (or float32, bfloat16, float16; default: the base's). --out-dtype is the same option.") var outDtype: String?
    @Flag(help: "Print the plan and check OUT, then stop (nothing is written).") var dryRun = false
    @Flag(help: "Replace the output folder if it exists.") var force = false
    @Flag(help: "Skip the SHA-256 of the inputs in the model card.") var noHash = false
    @Flag(help: "No progress output.") var quiet = false
    @Flag(help: "Print the result as JSON (output, tensors, bytes, seconds, files, notes) instead of the \"wrote\" line.") var json = false
    @Option(help: "Search the shared scale of the coefficients on a grid: lambda=LO:HI:STEP.") var search: String?
    @Option(name: .long, help: "Held-out JSONL for --search (repeatable; the score is the mean over the sets).") var heldOut: [String] = []
    @Option(help: "What --search minimises: nll or em (ties in em broken by nll, then the smaller λ).") var metric: String = "nll"
    @Flag(help: "--search: do not read or write the score cache.") var noCache = false
    @Option(help: "--search for forgetting: CONTROL.jsonl=FRACTION keeps the control score at least FRACTION of the base's while the --held-out score is made worst (repeatable).") var keep: [String] = []

    @Option(help: "Vocabulary size differences: truncate (common rows) or base (the base's rows), as merge's --vocab.") var vocab: String?

    /// `--vocab` parsed.
    func vocabulary() throws -> VocabularyChoice? {
        guard let vocab else { return nil }
        guard let v = VocabularyChoice(rawValue: vocab) else { throw ValidationError("--vocab must be truncate or base, got \(vocab)") }
        return v
    }

    @OptionGroup var threading: ThreadsOption

    func run() throws {
        try threading.apply()
        var table: [String: String] = [:]
        for m in models {
            let parts = m.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw ValidationError("--model expects NAME=PATH, got \(m)") }
            guard table[parts[0]] == nil else { throw ValidationError("--model \(parts[0]) given twice") }
            table[parts[0]] = parts[1]
        }
        var lambda = 1.0
        if let search {
            guard !dryRun else { throw ValidationError("--search and --dry-run do not go together") }
            guard vocab == nil else {
                throw ValidationError("--vocab does not go with --search (the search scores weighted sums of ingredients of one shape): compose or merge with --vocab first, then search over the outputs")
            }
            guard let best = try runSearch(search, table: table), output != nil else { return }
            lambda = best
        } else if !heldOut.isEmpty || !keep.isEmpty {
            throw ValidationError("\(heldOut.isEmpty ? "--keep" : "--held-out") is used with --search")
        }
        let plan = try TaskVectors.composePlan(base: base, expression: expression, models: table, outDType: try outDtype.map(parseOutDType),
                                               lambda: lambda, vocabulary: try vocabulary(), threads: threading.count)
        if dryRun {
            print(plan.describe(), terminator: "")
            if !plan.problems.isEmpty { throw MergeError.preflight(plan.problems) }
            if let output {
                var o = ExecutionOptions(overwrite: force)
                o.command = "compose"
                print(try MergeExecutor.checkOutput(plan, to: URL(fileURLWithPath: output), options: o))
            }
            return
        }
        guard let output else { throw ValidationError("missing -o OUT_DIR") }
        let report = try MergeExecutor.run(plan, to: URL(fileURLWithPath: output),
                                           options: { var o = ExecutionOptions(hashInputs: !noHash, progress: !quiet, overwrite: force); o.command = "compose"
                                               o.allowNonFinite = nonFinite.allowNonFinite; return o }())
        if json { return try WrittenFolderJSON(report, notes: plan.notes).printed() }
        print("wrote \(report.outputDirectory.path): \(report.files.joined(separator: ", "))")
    }

    /// The grid LO:HI:STEP (inclusive of HI up to rounding), at most 1000 points.
    static func grid(_ spec: String) throws -> [Double] {
        guard spec.hasPrefix("lambda=") else { throw ValidationError("--search supports lambda=LO:HI:STEP, got \(spec)") }
        let parts = spec.dropFirst(7).split(separator: ":").map { Double($0) }
        guard parts.count == 3, let lo = parts[0], let hi = parts[1], let step = parts[2], lo.isFinite, hi.isFinite, step.isFinite,
              step > 0, hi >= lo else {
            throw ValidationError("--search lambda=LO:HI:STEP needs numbers with HI >= LO and STEP > 0, got \(spec)")
        }
        let n = Int(((hi - lo) / step + 1e-9).rounded(.down)) + 1
        guard n <= 1000 else { throw ValidationError("--search \(spec) has \(n) points; at most 1000") }
        // Rounded to 12 significant digits, so that 0.1 steps give 0.7 and not 0.7000000000000001.
        return (0..<n).map { k in
            let v = lo + Double(k) * step
            return Double(String(format: "%.12g", v)) ?? v
        }
    }

    /// Scores every λ of the grid in memory and returns the best one.
    func runSearch(_ spec: String, table: [String: String]) throws -> Double? {
        // Returns the best λ, or nil when it has written the output itself.
        let lambdas = try Self.grid(spec)
        guard let metric = CandidateScorer.Metric(rawValue: metric) else { throw ValidationError("--metric must be nll or em, got \(metric)") }
        guard !heldOut.isEmpty else { throw ValidationError("--search needs --held-out DATA.jsonl") }
        let terms = try CompositionExpression.parse(expression)
        for t in terms where table[t.name] == nil {
            throw MergeError.invalidExpression(expression: expression, position: t.position, reason: "\"\(t.name)\" is not defined; add --model \(t.name)=PATH")
        }
        let keeps = try keep.map { try ForgettingObjective.parseKeep($0) }
        let given = [base] + terms.map { table[$0.name]! }
        if [.taskVector, .sparseDelta].contains(try ModelReference.open(base, allowDeltas: true).referenceKind) {
            throw ValidationError("--base \(base) is a task vector or sparse delta; the base must be a model")
        }
        // θ = base + λ Σ c_i τ_i is the same combination of the base and the models base + τ_i
        // whether τ_i is given as a fine-tune (τ_i = x_i − base) or as a vector (x_i = BASE+VECTOR).
        let paths = try given.enumerated().map { k, p -> String in
            guard k > 0 else { return p }
            let kind = try ModelReference.open(p, allowDeltas: true).referenceKind
            return [.taskVector, .sparseDelta].contains(kind) ? "\(base)+\(p)" : p
        }
        // The plan that will be written must be valid before anything is measured.
        let check = try TaskVectors.composePlan(base: base, expression: expression, models: table, outDType: try outDtype.map(parseOutDType), lambda: 1,
                                               threads: threading.count)
        if !check.problems.isEmpty {
            // --vocab does not go with --search: say what does instead of pointing at it.
            let advice = check.vocabularyMismatches.isEmpty ? []
                : ["with --search, --vocab is not available: compose or merge with --vocab first, then search over that output"]
            throw MergeError.preflight(check.problems + advice)
        }
        let prepared = try output.map { out -> OutputFolder in
            try OutputFolder.prepare(URL(fileURLWithPath: out), inputs: (given + heldOut + keeps.map(\.path)).map { URL(fileURLWithPath: $0) }
                + paths.flatMap { (try? ModelReference.open($0, allowDeltas: true))?.sourceURLs ?? [] }, force: force, command: "compose")
        }
        let base0 = try ModelReference.open(base)
        guard let dir = base0.directory else { throw ValidationError("\(base): no folder with tokenizer.json") }
        let sets = try SoupCommand.heldOutSets(heldOut + keeps.map(\.path), tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
        let digests = noCache ? nil : try paths.map { try SoupCommand.digest(of: $0) }
        let scorer = try CandidateScorer(ingredients: paths, sets: sets, cache: noCache ? nil : ScoreCache(), digests: digests)
        scorer.allowNonFinite = nonFinite.allowNonFinite
        let sumC = terms.reduce(0) { $0 + $1.coefficient }
        guard keeps.isEmpty || heldOut.count + keeps.count == sets.count else { throw ValidationError("--keep: internal set count") }
        let t0 = Date()
        var scores: [SoupScore] = []
        for (k, l) in lambdas.enumerated() {
            // θ = base + λ Σ c_i (x_i − base) = (1 − λ Σc) base + Σ λ c_i x_i
            let s = try scorer.score(weights: [1 - l * sumC] + terms.map { l * $0.coefficient })
            scores.append(s)
            if !quiet {
                FileHandle.standardError.write(Data(String(format: "  λ %.4g: NLL %.4f, EM %.3f (%d/%d, %.1fs)\n", l, s.meanNLL, s.exactMatch,
                                                           k + 1, lambdas.count, Date().timeIntervalSince(t0)).utf8))
            }
        }
        var best = 0
        var out: String
        if keeps.isEmpty {
            for k in scores.indices.dropFirst() where scores[k].isBetter(than: scores[best], metric) { best = k }
            out = "task arithmetic λ search: \(base) + λ·(\(expression.trimmingCharacters(in: .whitespaces))), metric \(metric.rawValue)\n"
            out += SoupCommand.summary(rows: lambdas.enumerated().map { k, l in
                (String(format: "λ = %.4g", l) + (k == best ? "  <- best" : ""), scores[k]) }, sets: sets, labels: [], individual: [])
        } else {
            // The reference is the base itself (λ = 0).
            let reference = try scorer.score(weights: [1] + terms.map { _ in 0 })
            let objective = try ForgettingObjective(metric: metric, targetSets: Array(heldOut.indices),
                                                    controlSets: keeps.enumerated().map { i, k in (sets[heldOut.count + i].name, heldOut.count + i, k.fraction) },
                                                    reference: reference)
            guard let b = objective.best(scores) else {
                throw ValidationError("no λ of \(spec) keeps every control set (--keep); the grid should include λ = 0 (the base)")
            }
            best = b
            out = "forgetting by negation: \(base) + λ·(\(expression.trimmingCharacters(in: .whitespaces))), metric \(metric.rawValue); the λ that scores worst on "
                + heldOut.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }.joined(separator: ", ")
                + " while every control set keeps its share of the base's score\n"
            out += Self.forgettingTable(lambdas: lambdas, scores: scores, reference: reference, objective: objective, sets: sets, best: best)
        }
        print(out, terminator: "")
        let measured = (lambdas.count + (keeps.isEmpty ? 0 : 1)) * sets.count
        print("\(scorer.evaluations) evaluations run, \(max(0, measured - scorer.evaluations)) from the cache, "
              + String(format: "%.2fs", Date().timeIntervalSince(t0)))
        if let prepared {
            let plan = try TaskVectors.composePlan(base: base, expression: expression, models: table, outDType: try outDtype.map(parseOutDType),
                                                   lambda: lambdas[best], threads: threading.count)
            var o = ExecutionOptions(hashInputs: !noHash, progress: !quiet, overwrite: force)
            o.command = "compose"
            o.allowNonFinite = nonFinite.allowNonFinite
            o.preparedOutput = prepared
            let chosen = "Chosen on: \(heldOut.joined(separator: ", "))" + (keeps.isEmpty ? "" : "; control sets kept: "
                + keeps.map { "\($0.path) ≥ \(String(format: "%.3g", 100 * $0.fraction))% of the base's" }.joined(separator: ", "))
            let report = try MergeExecutor.run(plan, to: URL(fileURLWithPath: output!), options: o,
                                               cardAppendix: "## λ search (weightsmith compose --search)\n\n\(chosen); metric: \(metric.rawValue).\n\n```\n\(out)```\n")
            print("wrote \(report.outputDirectory.path) with λ = \(lambdas[best]): \(report.files.joined(separator: ", "))")
            return nil
        }
        return lambdas[best]
    }

    /// One row per λ: the target sets' mean NLL and EM, then per control set its NLL, EM and the
    /// share of the base's score it keeps; "<- best" on the chosen row, "below X%" where a
    /// constraint fails.
    static func forgettingTable(lambdas: [Double], scores: [SoupScore], reference: SoupScore, objective: ForgettingObjective,
                                sets: [HeldOutSet], best: Int) -> String {
        // The base's row is the λ = 0 row when the grid has one.
        let showBase = lambdas.first != 0
        let labels = (showBase ? ["base"] : []) + lambdas.enumerated().map { k, l in
            String(format: "λ = %.4g", l) + (l == 0 ? " (base)" : "") + (k == best ? "  <- best" : "") }
        let w = max(12, labels.map(\.count).max() ?? 0)
        var s = SoupCommand.pad("", w) + "  " + SoupCommand.lpad("target NLL", 10) + "  " + SoupCommand.lpad("target EM", 9)
        for c in objective.constraints { s += "  " + SoupCommand.pad("\(c.name) (keep \(String(format: "%.3g", 100 * c.fraction))%)", 36) }
        s += "\n"
        for (k, score) in ((showBase ? [reference] : []) + scores).enumerated() {
            let v = objective.verdict(score)
            let t = objective.targetSets.map { score.sets[$0] }
            let em = t.map { $0.exactMatch ?? 0 }.reduce(0, +) / Double(max(1, t.count))
            s += SoupCommand.pad(labels[k], w) + "  " + SoupCommand.lpad(String(format: "%.4f", v.targetNLL), 10)
                + "  " + SoupCommand.lpad(String(format: "%.1f%%", 100 * em), 9)
            for (i, c) in objective.constraints.enumerated() {
                let r = score.sets[c.set]
                let cell = String(format: "NLL %.3f EM %5.1f%% kept %5.1f%%", r.meanNLL, 100 * (r.exactMatch ?? 0), 100 * v.retained[i])
                s += "  " + SoupCommand.pad(cell + (v.retained[i] >= c.fraction ? "" : " ✗"), 36)
            }
            s += "\n"
        }
        return SoupCommand.trimmingTrailingSpaces(s)
    }
}

extension ComposeCommand {
    /// The command line with a `compose` expression that starts with a minus protected from
    /// option parsing (ArgumentParser takes any `-...` word for an option): such a word gets a
    /// leading space, which the expression parser ignores. A word counts as an expression when it
    /// starts with a single `-` and is longer than a short option (`-o`), or is `-` and one
    /// non-letter (`-2`). Words after `--` are left alone (already positional); other commands'
    /// arguments are returned unchanged.
    static func protectingExpression(_ arguments: [String]) -> [String] {
        guard arguments.first == configuration.commandName else { return arguments }
        var out = arguments
        for k in out.indices.dropFirst() {
            let w = out[k]
            if w == "--" { break }
            guard w.hasPrefix("-"), !w.hasPrefix("--"), w.count > 1 else { continue }
            if w.count > 2 || !w[w.index(after: w.startIndex)].isLetter { out[k] = " " + w }
        }
        return out
    }
}
