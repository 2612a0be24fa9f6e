import ArgumentParser
import Checkpoints
import Foundation
import Merging
import Tensors
import Transformer
import Tokenizers

struct SoupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soup",
        abstract: "Model soups chosen by held-out score: uniform, greedy (Wortsman et al. 2022, Recipe 1) or learned mixing coefficients.",
        discussion: """
        Every candidate soup is built in memory from the memory-mapped ingredients and scored on the \
        --held-out sets (completion NLL and greedy exact match, as `eval`; with several sets, the mean \
        over the sets). --greedy ranks the ingredients by their own score and adds each to the average \
        only when the soup's score does not get worse; --learned optimises softmax mixing coefficients \
        (one per ingredient, or per ingredient and layer with --per-layer) by gradient descent on the \
        held-out NLL. Scores are cached by the content of the ingredients and the data \
        (~/.cache/weightsmith/scores.json), so a rerun evaluates nothing again. With -o, the chosen soup \
        is written like `merge --method linear` (a Hugging Face folder whose README.md holds the table \
        and the mergekit recipe that reproduces it).
        """)

    enum Mode: String, EnumerableFlag { case uniform, greedy, learned }

    @Argument(help: "The ingredients: Hugging Face folders (or safetensors files in one) of the same architecture.")
    var ingredients: [String]

    @Option(name: .long, help: "Held-out JSONL prompt/completion pairs (repeatable; the score is the mean over the sets).")
    var heldOut: [String] = []

    @Flag(help: "Which soup (default: greedy).")
    var mode: Mode = .greedy

    @Option(name: .long, help: "What the greedy soup compares and ranks by: nll or em (ties in em are broken by nll).")
    var metric: String = "nll"

    @Option(name: .long, help: "The pre-trained model, scored as a reference row (not an ingredient).")
    var base: String?

    @Flag(name: .long, help: "Learned soup: one coefficient per ingredient and decoder layer.")
    var perLayer = false

    @Option(name: .long, help: "Learned soup: optimisation steps.")
    var steps = 20

    @Option(name: .long, help: "Learned soup: Adam learning rate of the coefficient logits.")
    var lr = 0.1

    @Option(name: [.short, .customLong("output")], help: "Write the chosen soup here (a new folder; default: only print the table).")
    var output: String?

    @Flag(help: "Replace OUT if it is a previous weightsmith output.")
    var force = false

    @Option(name: [.customLong("dtype"), .customLong("out-dtype")], help: "Output dtype: f32, bf16, f16 (default: the first ingredient's). --out-dtype is the same option.")
    var outDtype: String?

    @Flag(name: .long, help: "Do not read or write the score cache.")
    var noCache = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Flag(help: "Check the ingredients, the held-out data and OUT, print the plan (candidates, evaluations, what would be written), then stop (nothing scored, cached or written).")
    var dryRun = false

    @Flag(help: "No progress output.")
    var quiet = false

    @OptionGroup var nonFinite: NonFiniteOption

    func validate() throws {
        guard !ingredients.isEmpty else { throw ValidationError("give at least one ingredient") }
        guard !heldOut.isEmpty else { throw ValidationError("--held-out DATA.jsonl is required (the data the soup is chosen on)") }
        guard CandidateScorer.Metric(rawValue: metric) != nil else { throw ValidationError("--metric must be nll or em, got \(metric)") }
        guard steps >= 0, steps <= 100_000 else { throw ValidationError("--steps must be between 0 and 100000, got \(steps)") }
        guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number, got \(lr)") }
        if perLayer && mode != .learned { throw ValidationError("--per-layer applies to --learned only") }
        guard Set(ingredients).count == ingredients.count else { throw ValidationError("an ingredient is listed twice") }
    }

    @OptionGroup var threading: ThreadsOption

    func run() throws {
        try threading.apply()
        let metric = CandidateScorer.Metric(rawValue: metric)!
        let log: (String) -> Void = { s in if !quiet { FileHandle.standardError.write(Data((s + "\n").utf8)) } }
        // The output is checked (and locked) before any work.
        let prepared = try output.map { out -> OutputFolder in
            let inputs = (ingredients + (base.map { [$0] } ?? []) + heldOut).map { URL(fileURLWithPath: $0) }
                + ingredients.flatMap { (try? ModelReference.open($0))?.sourceURLs ?? [] }
            return try OutputFolder.prepare(URL(fileURLWithPath: out), inputs: inputs, force: force, command: "soup")
        }
        let first = try ModelReference.open(ingredients[0])
        guard let dir = first.directory else { throw ValidationError("\(ingredients[0]): no folder with config.json and tokenizer.json") }
        let sets = try Self.heldOutSets(heldOut, tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
        if dryRun { return try describe(sets: sets, metric: metric) }
        let digests = noCache ? nil : try ingredients.map(Self.digest(of:))
        let cache = noCache ? nil : ScoreCache()
        let scorer = try CandidateScorer(ingredients: ingredients, sets: sets, cache: cache, digests: digests)
        scorer.allowNonFinite = nonFinite.allowNonFinite
        let labels = Self.labels(ingredients)
        let n = ingredients.count

        let t0 = Date()
        var done = 0
        scorer.onScore = { _, _, _ in done += 1 }
        let baseScore = try base.map { b -> SoupScore in
            log("scoring the base \(b)")
            let bs = try CandidateScorer(ingredients: [b], sets: sets, cache: cache, digests: noCache ? nil : [Self.digest(of: b)])
            bs.allowNonFinite = nonFinite.allowNonFinite
            return try bs.score(weights: [1])
        }
        log("scoring \(n) ingredient\(n == 1 ? "" : "s") on \(sets.count) held-out set\(sets.count == 1 ? "" : "s") (\(sets.map { $0.tokenized.count }.reduce(0, +)) examples)")
        var individual: [SoupScore] = []
        for i in 0..<n {
            individual.append(try scorer.score(weights: Soups.onehot(i, n)))
            log(String(format: "  %@: NLL %.4f, EM %.3f", labels[i], individual[i].meanNLL, individual[i].exactMatch))
        }
        let bestSingle = (0..<n).min { individual[$0].isBetter(than: individual[$1], metric) || (!individual[$1].isBetter(than: individual[$0], metric) && $0 < $1) }!
        let uniform = n == 1 ? individual[0] : try scorer.score(weights: Array(repeating: 1, count: n))

        var table = ""
        var chosenWeights: [Double]
        var perLayerWeights: (groups: [String], coefficients: [[Double]])? = nil
        var chosen: SoupScore
        var jsonExtra: [String: Any] = [:]
        switch mode {
        case .uniform:
            chosenWeights = Array(repeating: 1, count: n)
            chosen = uniform
            table = Self.summary(rows: [("best single (\(labels[bestSingle]))", individual[bestSingle]), ("uniform soup (\(n))", uniform)]
                + (baseScore.map { [("base", $0)] } ?? []), sets: sets, labels: labels, individual: individual)
        case .greedy:
            let r = try Soups.greedy(scorer, metric: metric, individual: individual) { step in
                log(String(format: "  + %@: soup NLL %.4f, EM %.3f -> %@", labels[step.ingredient], step.soup.meanNLL, step.soup.exactMatch,
                           step.kept ? "kept" : "dropped"))
            }
            chosenWeights = r.weights
            chosen = r.score
            table = Self.greedyTable(r, labels: labels, metric: metric)
            let keptNames = r.kept.map { labels[$0] }.joined(separator: ", ")
            table += "\n" + Self.summary(rows: (baseScore.map { [("base", $0)] } ?? [])
                + [("best single (\(labels[bestSingle]))", individual[bestSingle]), ("uniform soup (\(n))", uniform),
                   ("greedy soup (\(r.kept.count) of \(n): \(keptNames))", r.score)], sets: sets, labels: labels, individual: individual)
            let stepsJSON: [[String: Any]] = r.steps.map { ["ingredient": labels[$0.ingredient], "kept": $0.kept, "score": Self.json($0.soup)] }
            let greedyJSON: [String: Any] = ["order": r.order.map { labels[$0] }, "kept": r.kept.map { labels[$0] }, "steps": stepsJSON]
            jsonExtra["greedy"] = greedyJSON
        case .learned:
            var options = Soups.LearnedOptions()
            options.steps = steps
            options.learningRate = lr
            options.perLayer = perLayer
            let r = try Soups.learned(scorer, options: options) { s in
                log(String(format: "  step %d/%d: held-out NLL %.4f, |dL/dβ| %.3g (%.1fs)", s.step, steps, s.loss, s.gradientNorm, Date().timeIntervalSince(t0)))
            }
            let (_, groupOf) = Soups.groups(of: scorer.model, perLayer: perLayer)
            try scorer.build { r.coefficients[groupOf[$0]] }
            chosen = try scorer.scoreCurrent()
            chosenWeights = r.coefficients[perLayer ? r.groups.count - 1 : 0]
            if perLayer { perLayerWeights = (r.groups, r.coefficients) }
            table = Self.learnedTable(r, labels: labels)
            table += "\n" + Self.summary(rows: (baseScore.map { [("base", $0)] } ?? [])
                + [("best single (\(labels[bestSingle]))", individual[bestSingle]), ("uniform soup (\(n))", uniform),
                   ("learned soup (step \(r.bestStep))", chosen)], sets: sets, labels: labels, individual: individual)
            jsonExtra["learned"] = ["groups": r.groups, "coefficients": r.coefficients, "best_step": r.bestStep,
                                    "history": r.history.map { ["step": $0.step, "loss": $0.loss, "gradient_norm": $0.gradientNorm] as [String: Any] }]
        }
        let seconds = Date().timeIntervalSince(t0)
        let footer = "\(scorer.evaluations) evaluation\(scorer.evaluations == 1 ? "" : "s") run, \(done - scorer.evaluations) from the cache, "
            + String(format: "%.2fs", seconds)

        var written: String? = nil
        if let output, let prepared {
            let recipe = try makeRecipe(weights: chosenWeights, perLayer: perLayerWeights, labels: labels)
            let plan = try MergePlanner.plan(recipe, options: PlanOptions(threads: threading.count))
            var exec = ExecutionOptions(hashInputs: true, progress: !quiet, overwrite: force)
            exec.command = "soup"
            exec.allowNonFinite = nonFinite.allowNonFinite
            exec.preparedOutput = prepared
            let heading = mode == .greedy ? "Greedy soup" : mode == .learned ? "Learned soup" : "Uniform soup"
            let appendix = "## \(heading) (weightsmith soup)\n\nChosen on: \(heldOut.joined(separator: ", ")); metric: \(metric.rawValue).\n\n```\n\(table)```\n"
            let report = try MergeExecutor.run(plan, to: URL(fileURLWithPath: output), options: exec, cardAppendix: appendix)
            written = report.outputDirectory.path
        }

        if json {
            var obj: [String: Any] = [
                "mode": mode.rawValue, "metric": metric.rawValue, "held_out": heldOut,
                "ingredients": (0..<n).map { ["path": ingredients[$0], "label": labels[$0], "score": Self.json(individual[$0])] as [String: Any] },
                "uniform": Self.json(uniform), "best_single": labels[bestSingle], "chosen": Self.json(chosen),
                "weights": chosenWeights, "evaluations": scorer.evaluations, "seconds": seconds,
            ]
            if let baseScore { obj["base"] = Self.json(baseScore) }
            if let written { obj["output"] = written }
            for (k, v) in jsonExtra { obj[k] = v }
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            print(table, terminator: "")
            print(footer)
            if let written { print("wrote \(written)") }
        }
    }

    /// --dry-run: the ingredients (one architecture), the base and the held-out sets checked as the
    /// scorer checks them, the candidates the mode would score and, with -o, the uniform soup's plan
    /// (the chosen soup has the same tensors); no score is computed, cached or written.
    func describe(sets: [HeldOutSet], metric: CandidateScorer.Metric) throws {
        let n = ingredients.count
        let scorer = try CandidateScorer(ingredients: ingredients, sets: sets)
        if let base { _ = try CandidateScorer(ingredients: [base], sets: sets) }
        let labels = Self.labels(ingredients)
        let examples = sets.map { $0.tokenized.count }.reduce(0, +)
        print("\(mode.rawValue) soup of \(n) ingredient\(n == 1 ? "" : "s") (\(labels.joined(separator: ", "))), \(scorer.model.config.layers) layers"
              + (base.map { "; base \($0) scored as a reference" } ?? ""))
        print("held out: \(sets.count) set\(sets.count == 1 ? "" : "s") (\(sets.map(\.name).joined(separator: ", "))), \(examples) examples; metric \(metric.rawValue)")
        // Each ingredient alone and the uniform soup, then the mode's own candidates.
        let candidates: String
        switch mode {
        case .uniform: candidates = "\(n == 1 ? 1 : n + 1) candidates (each ingredient, the uniform soup)"
        case .greedy: candidates = "up to \(n == 1 ? 1 : 2 * n) candidates (each ingredient, the uniform soup, \(n - 1) greedy addition\(n == 2 ? "" : "s"))"
        case .learned: candidates = "\(n == 1 ? 1 : n + 1) candidates and \(steps) Adam steps on \(perLayer ? "\(n) coefficients per layer and for the rest" : "\(n) coefficients") (lr \(lr))"
        }
        print("would score \(candidates) on every set, \(noCache ? "without" : "with") the score cache")
        guard let output else { print("would write nothing (no -o)"); return }
        let plan = try MergePlanner.plan(try makeRecipe(weights: Array(repeating: 1, count: n), perLayer: nil, labels: labels), options: PlanOptions(threads: threading.count))
        if !plan.problems.isEmpty { throw MergeError.preflight(plan.problems) }
        print("would write \(output): the chosen soup, \(plan.jobs.count) tensors, \(formatBytes(plan.outputBytes)), config.json, tokenizer files and README.md")
    }

    /// A mergekit `linear` recipe with the chosen weights (zero-weight ingredients left out).
    func makeRecipe(weights: [Double], perLayer: (groups: [String], coefficients: [[Double]])?, labels: [String]) throws -> Recipe {
        var models: [RecipeSource] = []
        for (i, path) in ingredients.enumerated() {
            var t = ParameterTable()
            if let perLayer {
                // Per decoder layer ("model.layers.L." filters), then everything else.
                var entries: [(filter: String?, value: ParameterSetting)] = []
                for (g, name) in perLayer.groups.enumerated() where name.hasPrefix("layer ") {
                    entries.append((filter: "layers.\(name.dropFirst(6)).", value: .value(.number(perLayer.coefficients[g][i]))))
                }
                entries.append((filter: nil, value: .value(.number(perLayer.coefficients.last![i]))))
                t.settings["weight"] = .conditional(entries)
            } else {
                guard weights[i] != 0 else { continue }
                t.settings["weight"] = .value(.number(weights[i]))
            }
            models.append(RecipeSource(model: path, parameters: t))
        }
        var recipe = Recipe(mergeMethod: "linear", models: models)
        if let outDtype {
            guard let d = Tensors.DType(userSpelling: outDtype), [.f32, .bf16, .f16].contains(d) else {
                throw ValidationError("--out-dtype must be float32, bfloat16 or float16, got \(outDtype)")
            }
            recipe.outDType = d
        }
        return recipe
    }

    /// The held-out sets, tokenized, each keyed for the score cache by the SHA-256 of its file
    /// and of the tokenizer (shared by soup, compose --search and search).
    static func heldOutSets(_ paths: [String], tokenizerJSON: URL) throws -> [HeldOutSet] {
        let tokenizer = try BPETokenizer(tokenizerJSON: tokenizerJSON)
        let tokenizerDigest = (try? SHA256.hexDigest(ofFile: tokenizerJSON.path)) ?? "unreadable"
        return try paths.map { path in
            let examples = try PromptCompletion.readJSONL(URL(fileURLWithPath: path))
            guard !examples.isEmpty else { throw ValidationError("\(path): no examples") }
            return HeldOutSet(name: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent,
                              digest: ((try? SHA256.hexDigest(ofFile: path)) ?? "unreadable") + "+" + tokenizerDigest,
                              tokenized: examples.map { (tokenizer.encode($0.prompt), tokenizer.encode($0.completion, addSpecialTokens: false)) })
        }
    }

    /// A checkpoint's content digest for the score cache: its tensor files and config.json.
    static func digest(of path: String) throws -> String {
        let ck = try ModelReference.open(path)
        var files = ck.dataFiles
        if let d = ck.directory { files.append(d.appendingPathComponent("config.json").path) }
        let h = InputFingerprints.digests(files)
        return files.map { h[$0] ?? "unreadable" }.joined(separator: "+")
    }

    /// Short names: the folder names, or the whole paths when two folders share a name.
    static func labels(_ paths: [String]) -> [String] {
        let names = paths.map { p -> String in
            let u = URL(fileURLWithPath: p)
            return u.pathExtension == "safetensors" ? u.deletingLastPathComponent().lastPathComponent : u.lastPathComponent
        }
        return Set(names).count == names.count ? names : paths
    }

    static func json(_ s: SoupScore) -> [String: Any] {
        ["mean_nll": s.meanNLL, "exact_match": s.exactMatch,
         "sets": s.sets.map { ["examples": $0.examples, "mean_nll": $0.meanNLL, "exact_match": $0.exactMatch ?? 0] as [String: Any] }]
    }

    static func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
    static func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
    /// Each line of `s` without trailing spaces (tables padded column by column).
    static func trimmingTrailingSpaces(_ s: String) -> String {
        s.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            var l = Substring(line)
            while l.last == " " { l = l.dropLast() }
            return String(l)
        }.joined(separator: "\n")
    }

    /// Every ingredient in rank order with its own score, the soup's score when it was tried,
    /// and whether it was kept.
    static func greedyTable(_ r: Soups.GreedyResult, labels: [String], metric: CandidateScorer.Metric) -> String {
        let w = max(10, labels.map(\.count).max() ?? 0)
        var s = "greedy soup: ingredients ranked by their own held-out \(metric == .nll ? "NLL" : "exact match"), each added when the soup does not get worse\n"
        s += "rank  " + pad("ingredient", w) + "  " + lpad("own NLL", 8) + "  " + lpad("own EM", 7) + "  " + lpad("soup NLL", 8) + "  " + lpad("soup EM", 7) + "  kept\n"
        for (k, step) in r.steps.enumerated() {
            let own = r.individual[step.ingredient]
            s += lpad("\(k + 1)", 4) + "  " + pad(labels[step.ingredient], w) + "  "
            s += lpad(String(format: "%.4f", own.meanNLL), 8) + "  " + lpad(String(format: "%.1f%%", 100 * own.exactMatch), 7) + "  "
            s += lpad(String(format: "%.4f", step.soup.meanNLL), 8) + "  " + lpad(String(format: "%.1f%%", 100 * step.soup.exactMatch), 7) + "  "
            s += (k == 0 ? "yes (start)" : step.kept ? "yes" : "no") + "\n"
        }
        return s
    }

    static func learnedTable(_ r: Soups.LearnedResult, labels: [String]) -> String {
        let w = max(10, r.groups.map(\.count).max() ?? 0)
        var s = "learned soup: softmax mixing coefficients after \(r.history.count - 1) Adam steps on the held-out NLL (best at step \(r.bestStep): NLL "
        s += String(format: "%.4f, from %.4f at the uniform start)\n", r.history[r.bestStep].loss, r.history[0].loss)
        s += pad("group", w) + labels.map { "  " + lpad($0, max(8, $0.count)) }.joined() + "\n"
        for (g, name) in r.groups.enumerated() {
            s += pad(name, w) + zip(labels, r.coefficients[g]).map { "  " + lpad(String(format: "%.4f", $1), max(8, $0.count)) }.joined() + "\n"
        }
        return s
    }

    /// Rows of mean NLL / EM and each set's EM / NLL.
    static func summary(rows: [(String, SoupScore)], sets: [HeldOutSet], labels: [String], individual: [SoupScore]) -> String {
        let w = max(12, rows.map(\.0.count).max() ?? 0)
        var s = pad("", w) + "  " + lpad("mean NLL", 8) + "  " + lpad("mean EM", 7)
        if sets.count > 1 { for set in sets { s += "  " + pad(set.name, 22) } }
        s += "\n"
        for (name, score) in rows {
            s += pad(name, w) + "  " + lpad(String(format: "%.4f", score.meanNLL), 8) + "  " + lpad(String(format: "%.1f%%", 100 * score.exactMatch), 7)
            if sets.count > 1 {
                for r in score.sets { s += "  " + pad(String(format: "EM %5.1f%% NLL %.3f", 100 * (r.exactMatch ?? 0), r.meanNLL), 22) }
            }
            s += "\n"
        }
        return s
    }
}
