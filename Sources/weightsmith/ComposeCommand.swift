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
        graft.safetensors, an LT-SFT output of `finetune --mode lt-sft`), read as BASE+DELTA. Put spaces around a minus sign:
        `ft-a` is a name.
        Search (Ilharco et al. 2023, §2): --search lambda=0:1:0.05 --held-out DATA.jsonl scores \
        BASE + λ Σ c·(model − BASE) for every λ of the grid in memory (completion NLL and greedy exact \
        match, as `eval`; scores cached like `soup`), prints the table and writes the best λ's model \
        with -o (the names must then refer to fine-tuned checkpoints, not task vectors).
        """
    )

    @Option(help: "The base model.") var base: String
    @Argument(help: "Expression such as \"0.7*math + 0.5*code - 0.3*toxic\".") var expression: String
    @Option(name: .customLong("model"), help: "NAME=PATH for every name in the expression.") var models: [String] = []
    @Option(name: [.short, .customLong("output")], help: "Output folder.") var output: String?
    @Option(help: "Output dtype: float32, bfloat16, float16 (default: the base's).") var outDtype: String?
    @Flag(help: "Print the plan, then stop.") var dryRun = false
    @Flag(help: "Replace the output folder if it exists.") var force = false
    @Flag(help: "Skip the SHA-256 of the inputs in the model card.") var noHash = false
    @Flag(help: "No progress output.") var quiet = false
    @Option(help: "Search the shared scale of the coefficients on a grid: lambda=LO:HI:STEP.") var search: String?
    @Option(name: .long, help: "Held-out JSONL for --search (repeatable; the score is the mean over the sets).") var heldOut: [String] = []
    @Option(help: "What --search minimises: nll or em (ties in em broken by nll, then the smaller λ).") var metric: String = "nll"
    @Flag(help: "--search: do not read or write the score cache.") var noCache = false

    func run() throws {
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
            guard let best = try runSearch(search, table: table), output != nil else { return }
            lambda = best
        } else if !heldOut.isEmpty {
            throw ValidationError("--held-out is used with --search")
        }
        let plan = try TaskVectors.composePlan(base: base, expression: expression, models: table, outDType: try outDtype.map(parseOutDType),
                                               lambda: lambda)
        if dryRun {
            print(plan.describe(), terminator: "")
            if !plan.problems.isEmpty { throw MergeError.preflight(plan.problems) }
            return
        }
        guard let output else { throw ValidationError("missing -o OUT_DIR") }
        let report = try MergeExecutor.run(plan, to: URL(fileURLWithPath: output),
                                           options: { var o = ExecutionOptions(hashInputs: !noHash, progress: !quiet, overwrite: force); o.command = "compose"; return o }())
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
        return (0..<n).map { lo + Double($0) * step }
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
        let paths = [base] + terms.map { TaskVectors.modelReference(table[$0.name]!, base: base) }
        for p in paths where TaskVectors.isTaskVector(try ModelReference.open(p, allowDeltas: true)) {
            throw ValidationError("\(p) is a task vector; --search needs the fine-tuned checkpoints (and a model as --base)")
        }
        let prepared = try output.map { out -> OutputFolder in
            try OutputFolder.prepare(URL(fileURLWithPath: out), inputs: (paths + heldOut).map { URL(fileURLWithPath: $0) }
                + paths.flatMap { (try? ModelReference.open($0, allowDeltas: true))?.sourceURLs ?? [] }, force: force, command: "compose")
        }
        let base0 = try ModelReference.open(base)
        guard let dir = base0.directory else { throw ValidationError("\(base): no folder with tokenizer.json") }
        let sets = try SoupCommand.heldOutSets(heldOut, tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
        let digests = noCache ? nil : try paths.map { try SoupCommand.digest(of: $0) }
        let scorer = try CandidateScorer(ingredients: paths, sets: sets, cache: noCache ? nil : ScoreCache(), digests: digests)
        let sumC = terms.reduce(0) { $0 + $1.coefficient }
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
        for k in scores.indices.dropFirst() where scores[k].isBetter(than: scores[best], metric) { best = k }
        var out = "task arithmetic λ search: \(base) + λ·(\(expression)), metric \(metric.rawValue)\n"
        out += SoupCommand.summary(rows: lambdas.enumerated().map { k, l in
            (String(format: "λ = %.4g", l) + (k == best ? "  <- best" : ""), scores[k]) }, sets: sets, labels: [], individual: [])
        print(out, terminator: "")
        print("\(scorer.evaluations) evaluations run, \(lambdas.count * sets.count - scorer.evaluations) from the cache, "
              + String(format: "%.2fs", Date().timeIntervalSince(t0)))
        if let prepared {
            let plan = try TaskVectors.composePlan(base: base, expression: expression, models: table, outDType: try outDtype.map(parseOutDType),
                                                   lambda: lambdas[best])
            var o = ExecutionOptions(hashInputs: !noHash, progress: !quiet, overwrite: force)
            o.command = "compose"
            o.preparedOutput = prepared
            let report = try MergeExecutor.run(plan, to: URL(fileURLWithPath: output!), options: o,
                                               cardAppendix: "## λ search (weightsmith compose --search)\n\nChosen on: \(heldOut.joined(separator: ", ")); metric: \(metric.rawValue).\n\n```\n\(out)```\n")
            print("wrote \(report.outputDirectory.path) with λ = \(lambdas[best]): \(report.files.joined(separator: ", "))")
            return nil
        }
        return lambdas[best]
    }
}
