import ArgumentParser
import Checkpoints
import Foundation
import Merging
import Tensors
import Transformer

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Search a recipe's numeric parameters for the best held-out score (a grid for one parameter, CMA-ES for several).",
        discussion: """
        Example: weightsmith search ties.yml --held-out a.jsonl --held-out b.jsonl \\
                   --vary 'models.*.parameters.weight=0:1' --vary 'parameters.density=0.1:0.9' --budget 60 -o OUT
        --vary PATH=LO:HI names a number of the recipe: parameters.NAME (global), models.K.parameters.NAME \
        (the K-th model, from 0) or models.*.parameters.NAME (one variable per model). Each tried recipe \
        is merged in memory from the mapped inputs (the values `merge` would write) and scored on every \
        --held-out set (completion NLL and greedy exact match, as `eval`); the objective is the mean \
        over the sets of --metric. Every trial is logged as JSONL (--log, and search.jsonl in OUT); \
        scores are cached like `soup`'s. OUT gets the best recipe's merge, its recipe, and the log.
        Forgetting (Ilharco et al. 2023, §3): with --keep CONTROL.jsonl=0.95 (repeatable) the search \
        makes the --held-out score worst instead, among recipes whose score on every control set stays \
        at least 95% of the recipe's base_model's (exact match for --metric em, exp(−NLL) for nll); \
        recipes that miss a control rank after every one that keeps it.
        """)

    @Argument(help: "A mergekit-style recipe (models form).") var recipe: String
    @Option(name: .long, help: "Held-out JSONL prompt/completion pairs (repeatable).") var heldOut: [String] = []
    @Option(name: .long, help: "PATH=LO:HI, e.g. parameters.density=0.1:0.9 (repeatable).") var vary: [String] = []
    @Option(help: "Number of recipes to try.") var budget = 30
    @Option(help: "What is minimised: nll or em (1 − exact match).") var metric: String = "nll"
    @Option(help: "Seed of CMA-ES (and of randomised merge methods).") var seed: UInt64 = 0
    @Option(help: "Also append every trial to this JSONL file as it is measured.") var log: String?
    @Option(name: [.short, .customLong("output")], help: "Write the best recipe's merge here (a new folder).") var output: String?
    @Flag(help: "Replace OUT if it is a previous weightsmith output.") var force = false
    @Flag(help: "Do not read or write the score cache.") var noCache = false
    @Flag(help: "No progress output.") var quiet = false
    @Flag(help: "Check the recipe, the ranges, the held-out data and OUT, print the search plan, then stop (nothing merged, scored, cached, logged or written).") var dryRun = false
    @Option(help: "Forgetting: CONTROL.jsonl=FRACTION keeps the control score at least FRACTION of base_model's while the --held-out score is made worst (repeatable).") var keep: [String] = []
    @OptionGroup var nonFinite: NonFiniteOption

    struct Variable {
        let dimension: ParameterSearch.Dimension
        let model: Int?
        let parameter: String
    }

    func validate() throws {
        guard !heldOut.isEmpty else { throw ValidationError("--held-out DATA.jsonl is required") }
        guard !vary.isEmpty else { throw ValidationError("give at least one --vary PATH=LO:HI") }
        guard budget >= 1, budget <= 100_000 else { throw ValidationError("--budget must be between 1 and 100000, got \(budget)") }
        guard CandidateScorer.Metric(rawValue: metric) != nil else { throw ValidationError("--metric must be nll or em, got \(metric)") }
    }

    static func parseVary(_ spec: String, modelCount: Int) throws -> [Variable] {
        let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ValidationError("--vary expects PATH=LO:HI, got \(spec)") }
        let range = parts[1].split(separator: ":").map { Double($0) }
        guard range.count == 2, let lo = range[0], let hi = range[1], lo.isFinite, hi.isFinite, hi > lo else {
            throw ValidationError("--vary \(parts[0]): the range must be LO:HI with numbers and HI > LO, got \(parts[1])")
        }
        let path = parts[0].split(separator: ".").map(String.init)
        if path.count == 2, path[0] == "parameters" {
            return [Variable(dimension: .init(name: parts[0], lo: lo, hi: hi), model: nil, parameter: path[1])]
        }
        if path.count == 4, path[0] == "models", path[2] == "parameters" {
            if path[1] == "*" {
                return (0..<modelCount).map { k in
                    Variable(dimension: .init(name: "models.\(k).parameters.\(path[3])", lo: lo, hi: hi), model: k, parameter: path[3])
                }
            }
            guard let k = Int(path[1]), (0..<modelCount).contains(k) else {
                throw ValidationError("--vary \(parts[0]): the recipe has models 0...\(modelCount - 1)")
            }
            return [Variable(dimension: .init(name: parts[0], lo: lo, hi: hi), model: k, parameter: path[3])]
        }
        throw ValidationError("--vary \(parts[0]): expected parameters.NAME, models.K.parameters.NAME or models.*.parameters.NAME")
    }

    @OptionGroup var threading: ThreadsOption

    /// --dry-run: the variables and their ranges, the budget, the held-out sets and, with -o, the
    /// merge of the starting recipe (every tried recipe has its tensors); nothing merged or scored.
    func describe(variables: [Variable], start: [Double], plan: MergePlan, sets: [HeldOutSet], model: TransformerModel) throws {
        // Every layout entry must come from the merge, as each trial checks.
        let produced = Set(plan.jobs.map(\.output))
        if let missing = model.layout.entries.first(where: { !produced.contains($0.name) }) {
            throw ValidationError("the merge does not produce \(missing.name), which the model needs")
        }
        let method = variables.count == 1 ? "a grid of \(budget) points" : "CMA-ES (population \(4 + Int(3 * Foundation.log(Double(variables.count))))), \(budget) trials"
        print("search over \(variables.count) parameter\(variables.count == 1 ? "" : "s") of \(plan.method.name) by \(method), metric \(metric), seed \(seed)")
        for (v, x) in zip(variables, start) {
            print("  \(v.dimension.name) in [\(v.dimension.lo), \(v.dimension.hi)], start \(String(format: "%.4g", x))")
        }
        let examples = sets.map { $0.tokenized.count }.reduce(0, +)
        print("held out: \(sets.count) set\(sets.count == 1 ? "" : "s") (\(sets.map(\.name).joined(separator: ", "))), \(examples) examples; up to \(budget * sets.count) evaluations, \(noCache ? "without" : "with") the score cache")
        if let log { print("would append every trial to \(log)") }
        guard let output else { print("would write nothing (no -o)"); return }
        print("would write \(output): the best recipe's merge, \(plan.jobs.count) tensors, \(formatBytes(plan.outputBytes)), config.json, tokenizer files, README.md and search.jsonl")
    }

    /// The `--vary` dimensions, checked against the method: each names a numeric parameter, once,
    /// and both ends of its range are values the method accepts (a grid tries both; CMA-ES clamps
    /// to them).
    func searchVariables(modelCount: Int, method mergeMethod: any MergeMethod) throws -> [Variable] {
        let variables = try vary.flatMap { try Self.parseVary($0, modelCount: modelCount) }
        guard Set(variables.map(\.dimension.name)).count == variables.count else { throw ValidationError("a parameter is varied twice") }
        for v in variables {
            guard let spec = mergeMethod.parameters.first(where: { $0.name == v.parameter }) else {
                throw ValidationError("--vary \(v.dimension.name): \(mergeMethod.name) has no parameter \(v.parameter) (it has \(mergeMethod.parameters.map(\.name).joined(separator: ", ")))")
            }
            guard spec.kind == .number else { throw ValidationError("--vary \(v.dimension.name): \(v.parameter) is true/false, not a number") }
            for end in [v.dimension.lo, v.dimension.hi] {
                if let why = spec.problem(with: .number(end), allowExtrapolation: false) {
                    throw ValidationError("--vary \(v.dimension.name)=\(v.dimension.lo):\(v.dimension.hi): \(v.parameter) \(why)")
                }
            }
        }
        return variables
    }

    /// The printed result: the best 10 trials in rank order with their values and scores (and,
    /// with --keep, how much of each control set they keep).
    func rankingTable(variables: [Variable], trials: [ParameterSearch.Trial], scores: [SoupScore], objective: ForgettingObjective?,
                      metric: CandidateScorer.Metric, shown target: (SoupScore) -> SoupScore,
                      ranksBefore: (SoupScore, SoupScore) -> Bool) -> String {
        let method = variables.count == 1 ? "grid of \(budget) points" : "CMA-ES (population \(4 + Int(3 * Foundation.log(Double(variables.count)))))"
        var table = "search over \(variables.count) parameter\(variables.count == 1 ? "" : "s") by \(method), metric \(metric.rawValue): \(trials.count) trials"
            + (objective == nil ? "\n" : "; forgetting: the worst score on the --held-out sets among recipes that keep every control set\n")
        let ranked = trials.indices.sorted { a, b in ranksBefore(scores[a], scores[b]) || (!ranksBefore(scores[b], scores[a]) && a < b) }
        table += "rank  trial  " + variables.map { SoupCommand.lpad($0.dimension.name, max(8, $0.dimension.name.count)) }.joined(separator: "  ")
            + "  " + SoupCommand.lpad(objective == nil ? "mean NLL" : "target NLL", 8) + "  " + SoupCommand.lpad(objective == nil ? "mean EM" : "target EM", 7)
            + (objective?.constraints.map { "  " + SoupCommand.lpad("\($0.name) kept (≥ \(String(format: "%.3g", 100 * $0.fraction))%)", 10) }.joined() ?? "") + "\n"
        for (r, k) in ranked.prefix(10).enumerated() {
            table += SoupCommand.lpad("\(r + 1)", 4) + "  " + SoupCommand.lpad("\(k)", 5) + "  "
            table += zip(variables, trials[k].values).map { SoupCommand.lpad(String(format: "%.4f", $1), max(8, $0.dimension.name.count)) }.joined(separator: "  ")
            let shown = target(scores[k])
            table += "  " + SoupCommand.lpad(String(format: "%.4f", shown.meanNLL), objective == nil ? 8 : 10)
                + "  " + SoupCommand.lpad(String(format: "%.1f%%", 100 * shown.exactMatch), objective == nil ? 7 : 9)
            if let objective {
                let v = objective.verdict(scores[k])
                for (i, c) in objective.constraints.enumerated() {
                    let head = "\(c.name) kept (≥ \(String(format: "%.3g", 100 * c.fraction))%)"
                    table += "  " + SoupCommand.lpad(String(format: "%.1f%%", 100 * v.retained[i]) + (v.retained[i] >= c.fraction ? "  " : " ✗"), head.count)
                }
            }
            table += "\n"
        }
        return SoupCommand.trimmingTrailingSpaces(table)
    }

    func run() throws {
        try threading.apply()
        let metric = CandidateScorer.Metric(rawValue: metric)!
        let say: (String) -> Void = { s in if !quiet { FileHandle.standardError.write(Data((s + "\n").utf8)) } }
        var template = try RecipeParser.parse(file: recipe)
        guard let models = template.models, !models.isEmpty else {
            throw ValidationError("\(recipe): search supports recipes with `models:` (not `slices:`)")
        }
        let variables = try searchVariables(modelCount: models.count, method: try MergeMethodRegistry.method(named: template.mergeMethod))
        template.text = nil
        let searchDir = URL(fileURLWithPath: recipe).deletingLastPathComponent().path
        func candidate(_ values: [Double]) -> Recipe {
            var r = template
            for (v, x) in zip(variables, values) {
                if let k = v.model { r.models![k].parameters.settings[v.parameter] = .value(.number(x)) }
                else { r.parameters.settings[v.parameter] = .value(.number(x)) }
            }
            return r
        }
        // The current values of the recipe (where set and in range) start CMA-ES.
        let start = variables.map { v -> Double in
            let table = v.model.map { models[$0].parameters } ?? template.parameters
            if case let .value(.number(x))? = table[v.parameter], x >= v.dimension.lo, x <= v.dimension.hi { return x }
            return (v.dimension.lo + v.dimension.hi) / 2
        }
        let firstPlan = try MergePlanner.plan(candidate(start), options: PlanOptions(seed: seed, searchDirectory: searchDir, threads: threading.count))
        if !firstPlan.problems.isEmpty { throw MergeError.preflight(firstPlan.problems) }
        let inputPaths = firstPlan.inputs.map(\.checkpoint.path)
        let prepared = try output.map { out in
            try OutputFolder.prepare(URL(fileURLWithPath: out), inputs: (inputPaths + heldOut + [recipe]).map { URL(fileURLWithPath: $0) }
                + firstPlan.inputs.compactMap(\.checkpoint.directory), force: force, command: "search")
        }
        guard let configDir = firstPlan.inputs[firstPlan.configSource].checkpoint.directory,
              let tokDir = firstPlan.inputs[firstPlan.tokenizerSource].checkpoint.directory else {
            throw ValidationError("\(recipe): the inputs have no folder with config.json and tokenizer.json")
        }
        let model = TransformerModel(config: try ModelConfig(configJSON: configDir.appendingPathComponent("config.json")))
        let keeps = try keep.map { try ForgettingObjective.parseKeep($0) }
        let sets = try SoupCommand.heldOutSets(heldOut + keeps.map(\.path), tokenizerJSON: tokDir.appendingPathComponent("tokenizer.json"))
        let targets = Array(heldOut.indices)
        /// The target sets' part of a score (all of it without --keep).
        func target(_ s: SoupScore) -> SoupScore { SoupScore(sets: targets.map { s.sets[$0] }) }
        var objective: ForgettingObjective? = nil
        if !keeps.isEmpty {
            guard let b = firstPlan.jobs.lazy.compactMap(\.base).first?.model else {
                throw ValidationError("\(recipe): --keep compares with the recipe's base_model, and it has none")
            }
            if dryRun {
                print("forgetting: the --held-out score made worst while \(keeps.map { "\(URL(fileURLWithPath: $0.path).lastPathComponent) keeps \(String(format: "%.3g", 100 * $0.fraction))%" }.joined(separator: ", ")) of \(firstPlan.inputs[b].label)'s score")
                return try describe(variables: variables, start: start, plan: firstPlan, sets: sets, model: model)
            }
            let reference = try CandidateScorer(ingredients: [firstPlan.inputs[b].path], sets: sets).score(weights: [1])
            objective = try ForgettingObjective(metric: metric, targetSets: targets,
                                                controlSets: keeps.indices.map { (sets[heldOut.count + $0].name, heldOut.count + $0, keeps[$0].fraction) },
                                                reference: reference)
            say("base_model \(firstPlan.inputs[b].label): " + objective!.constraints.map {
                "\($0.name) \(metric == .em ? String(format: "EM %.3f", $0.reference) : String(format: "NLL %.4f", -Foundation.log($0.reference)))" }.joined(separator: ", "))
        }
        if dryRun { return try describe(variables: variables, start: start, plan: firstPlan, sets: sets, model: model) }
        /// Whether trial a ranks before trial b.
        func ranksBefore(_ a: SoupScore, _ b: SoupScore) -> Bool {
            if let objective { return objective.isPreferred(objective.verdict(a), over: objective.verdict(b)) }
            return a.isBetter(than: b, metric)
        }
        let digests = noCache ? "" : try inputPaths.map { try SoupCommand.digest(of: $0) }.joined(separator: ",")
        let cache = noCache ? nil : ScoreCache()
        let workers = max(1, BLASThreads.budget / BLASThreads.current)
        var logHandle: FileHandle? = nil
        if let log {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            logHandle = FileHandle(forWritingAtPath: log)
            guard logHandle != nil else { throw ValidationError("cannot write --log \(log)") }
        }
        defer { try? logHandle?.close() }

        var lines: [String] = []
        var scores: [SoupScore] = []
        var evaluations = 0
        let t0 = Date()
        var best = Double.infinity
        let trials = try ParameterSearch.minimise(variables.map(\.dimension), budget: budget, seed: seed, start: start) { values in
            let r = candidate(values)
            let plan = try MergePlanner.plan(r, options: PlanOptions(seed: seed, searchDirectory: searchDir, threads: threading.count))
            if !plan.problems.isEmpty { throw MergeError.preflight(plan.problems) }
            let yaml = r.yaml()
            var results: [EvaluationResult?] = sets.map { s in cache?["recipe|\(yaml)|seed \(seed)|\(digests)|\(s.digest)"] }
            if results.contains(where: { $0 == nil }) {
                var filled = Set<String>()
                try MergeExecutor.runInMemory(plan) { name, count in
                    guard let e = model.layout[name] else { return nil }
                    filled.insert(name)
                    return UnsafeMutableBufferPointer(start: model.parameters.pointer(name), count: e.count)
                }
                if let missing = model.layout.entries.first(where: { !filled.contains($0.name) }) {
                    throw ValidationError("the merge does not produce \(missing.name), which the model needs")
                }
                for (i, s) in sets.enumerated() where results[i] == nil {
                    let e = try Evaluator.evaluate(model: model, tokenized: s.tokenized, workers: workers)
                    evaluations += 1
                    results[i] = e
                    cache?["recipe|\(yaml)|seed \(seed)|\(digests)|\(s.digest)"] = e
                }
                cache?.save()
            }
            let score = SoupScore(sets: results.map { $0! })
            scores.append(score)
            let verdict = objective?.verdict(score)
            let f = verdict?.objective ?? score.loss(metric)
            best = min(best, f)
            let shown = target(score)
            var obj: [String: Any] = ["trial": scores.count - 1, "mean_nll": shown.meanNLL, "exact_match": shown.exactMatch,
                                      "objective": f, "seconds": Date().timeIntervalSince(t0),
                                      "sets": Dictionary(uniqueKeysWithValues: zip(sets.map(\.name), score.sets.map { ["mean_nll": $0.meanNLL, "exact_match": $0.exactMatch ?? 0] }))]
            obj["parameters"] = Dictionary(uniqueKeysWithValues: zip(variables.map(\.dimension.name), values))
            if let verdict, let objective {
                obj["feasible"] = verdict.feasible
                obj["retained"] = Dictionary(uniqueKeysWithValues: zip(objective.constraints.map(\.name), verdict.retained))
            }
            let line = String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self)
            lines.append(line)
            logHandle?.write(Data((line + "\n").utf8))
            let point = zip(variables, values).map { "\($0.dimension.name)=\(String(format: "%.4g", $1))" }.joined(separator: " ")
            if let verdict {
                let bestText = best < 0 ? String(format: "best target %@ %.4f", metric.rawValue, metric == .em ? 1 + best : -best) : "none keeps the control yet"
                say(String(format: "trial %d/%d: %@ -> target NLL %.4f, EM %.3f, control kept %@%@ (%@, %.1fs)", scores.count, budget, point,
                           shown.meanNLL, shown.exactMatch, verdict.retained.map { String(format: "%.1f%%", 100 * $0) }.joined(separator: "/"),
                           verdict.feasible ? "" : " ✗", bestText, Date().timeIntervalSince(t0)))
            } else {
                say(String(format: "trial %d/%d: %@ -> NLL %.4f, EM %.3f (best %@ %.4f, %.1fs)", scores.count, budget, point,
                           score.meanNLL, score.exactMatch, metric.rawValue, metric == .em ? 1 - best : best, Date().timeIntervalSince(t0)))
            }
            return f
        }
        guard let bestTrial = trials.indices.min(by: { a, b in
            ranksBefore(scores[a], scores[b]) || (!ranksBefore(scores[b], scores[a]) && a < b) }) else { return }
        if let objective, !objective.verdict(scores[bestTrial]).feasible {
            throw ValidationError("no tried recipe keeps every control set (--keep); widen the ranges toward the base or raise --budget")
        }
        let table = rankingTable(variables: variables, trials: trials, scores: scores, objective: objective, metric: metric,
                                 shown: target, ranksBefore: ranksBefore)
        print(table, terminator: "")
        print("\(evaluations) evaluations run, \(trials.count * sets.count - evaluations) from the cache, " + String(format: "%.2fs", Date().timeIntervalSince(t0)))
        if let output, let prepared {
            let plan = try MergePlanner.plan(candidate(trials[bestTrial].values), options: PlanOptions(seed: seed, searchDirectory: searchDir, threads: threading.count))
            var o = ExecutionOptions(hashInputs: true, progress: !quiet, overwrite: force)
            o.command = "search"
            o.allowNonFinite = nonFinite.allowNonFinite
            o.preparedOutput = prepared
            let report = try MergeExecutor.run(plan, to: URL(fileURLWithPath: output), options: o,
                                               cardAppendix: "## Parameter search (weightsmith search)\n\nChosen on: \(heldOut.joined(separator: ", ")).\n\n```\n\(table)```\n\nEvery trial: `search.jsonl`.\n",
                                               extraFiles: ["search.jsonl": Array((lines.joined(separator: "\n") + "\n").utf8)])
            print("wrote \(report.outputDirectory.path) (best: trial \(bestTrial)): \(report.files.joined(separator: ", "))")
        }
    }
}
