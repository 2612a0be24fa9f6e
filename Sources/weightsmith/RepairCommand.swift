import ArgumentParser
import Checkpoints
import Foundation
import Spectral
import Tensors
import Transformer

struct RepairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Scale a fine-tune's intruder dimensions back (Shuttleworth et al. 2024, §5), optionally measuring task score and forgetting along λ.",
        discussion: """
        Per adapted matrix W = W0 + ΔW: W' = W + (λ − 1) σ_i u_i v_iᵀ for the highest-ranked intruder \
        (top-k left singular vector of W whose max |cos| with every left singular vector of W0 is below ε); \
        --all-intruders scales every intruder in the top k (PEFT's reduce_intruder_dimension); --control \
        scales the nearest non-intruder direction instead (the paper's control). One SVD per matrix, reused \
        for every λ of --sweep. OUT is a full checkpoint (config and tokenizer copied from the base), or with \
        --as-adapter (a --lora input) a PEFT adapter of the same rank: ΔW' refactorised and truncated to r. \
        --held-out (the fine-tune's task, JSONL) and --forgetting (plain text: LM loss; JSONL: probe NLL) \
        measure before and after: forgetting = forgetting loss − the base's, and the paper's pair \
        (% change in task exact match, % change in forgetting) relative to the unrepaired fine-tune (λ = 1).
        """)

    @Option(help: "The base model (Hugging Face folder).") var base: String
    @Option(help: "A PEFT LoRA adapter of the base.") var lora: String?
    @Option(help: "A fully fine-tuned checkpoint of the base.") var tuned: String?
    @Option(help: "Intruder threshold ε.") var epsilon = 0.5
    @Option(name: .customLong("top-k"), help: "Top singular vectors of W checked for intruders.") var topK = 10
    @Option(help: "Scale λ of the repaired directions (0 removes them, 1 leaves W unchanged).") var lambda = 0.5
    @Option(help: "A λ sweep, e.g. lambda=0.1,0.3,0.5,0.7,0.9 (one table; OUT, if given, is written at --lambda).") var sweep: String?
    @Flag(name: .customLong("all-intruders"), help: "Scale every intruder in the top k, not only the highest-ranked one.") var allIntruders = false
    @Flag(help: "Control: scale the intruder's nearest non-intruder neighbour instead.") var control = false
    @Flag(name: .customLong("as-adapter"), help: "Write a PEFT adapter of the input adapter's rank instead of a full checkpoint (needs --lora).") var asAdapter = false
    @Option(help: "Only matrices whose tensor name matches this regular expression.") var modules: String?
    @Option(name: .customLong("held-out"), help: "The fine-tune's task: JSONL {\"prompt\", \"completion\"} (NLL, greedy exact match).") var heldOut: String?
    @Option(help: "Prior-knowledge data (repeatable): plain text (LM loss) or JSONL probes (completion NLL).") var forgetting: [String] = []
    @Option(help: "Token window for plain-text LM loss.") var window = 128
    @Option(help: "Write the sweep's SVG (task score vs forgetting along λ) to this file.") var plot: String?
    @Option(name: .shortAndLong, help: "Output folder (optional with --sweep).") var output: String?
    @Flag(help: "Replace OUT (and --plot) when it is a previous weightsmith output.") var force = false
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "Check the models, the data and OUT, print the matrices that would be decomposed, the λ values and what would be written, then stop (no SVD, no scoring, no cache, nothing written).") var dryRun = false
    @Option(name: .customLong("cache-dir"), help: "Folder for cached base decompositions (default $WEIGHTSMITH_CACHE_DIR or ~/.cache/weightsmith/svd).") var cacheDir: String?
    @Flag(name: .customLong("no-cache"), help: "Neither read nor write the decomposition cache.") var noCache = false

    func validate() throws {
        guard (tuned == nil) != (lora == nil) else { throw ValidationError("give exactly one of --tuned and --lora") }
        guard output != nil || sweep != nil else { throw ValidationError("give -o OUT (or --sweep to only measure)") }
        if asAdapter && lora == nil { throw ValidationError("--as-adapter needs a --lora input") }
        if control && allIntruders { throw ValidationError("--control scales one neighbour; it does not combine with --all-intruders") }
        if plot != nil && sweep == nil { throw ValidationError("--plot draws a --sweep") }
        if sweep != nil && heldOut == nil && forgetting.isEmpty { throw ValidationError("--sweep measures: give --held-out and/or --forgetting") }
        guard epsilon > 0 && epsilon <= 1 else { throw ValidationError("--epsilon must be in (0, 1]") }
        guard topK > 0 else { throw ValidationError("--top-k must be positive") }
        guard window >= 2 else { throw ValidationError("--window must be at least 2") }
    }

    var target: RepairTarget { control ? .control : (allIntruders ? .allIntruders : .topIntruder) }

    func lambdas() throws -> [Double] {
        guard let sweep else { return [lambda] }
        var spec = sweep.trimmingCharacters(in: .whitespaces)
        if spec.hasPrefix("lambda=") { spec = String(spec.dropFirst(7)) }
        let values = try spec.split(separator: ",").map { part -> Double in
            guard let v = Double(part.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                throw ValidationError("--sweep: \"\(part)\" is not a number (expected lambda=0.1,0.3,...)")
            }
            return v
        }
        guard !values.isEmpty else { throw ValidationError("--sweep: no λ values") }
        guard Set(values).count == values.count else { throw ValidationError("--sweep: a λ value is repeated") }
        return values
    }

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var nonFinite: NonFiniteOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        try reportingErrors { try repair() }
    }

    func log(_ s: String) { if !quiet { FileHandle.standardError.write(Data("repair: \(s)\n".utf8)) } }

    func repair() throws {
        let lambdas = try lambdas()
        let t0 = Date()
        let inputs = ([base, lora, tuned, heldOut] + forgetting.map { Optional($0) }).compactMap { $0 }.map { URL(fileURLWithPath: $0) }
        let out = try output.map { try OutputFolder.prepare(URL(fileURLWithPath: $0), inputs: inputs, force: force, command: "repair") }
        if !noCache {
            try OutputFolder.checkCacheFolder(cacheDir.map { URL(fileURLWithPath: $0) } ?? DecompositionCache.defaultDirectory,
                                              inputs: inputs.map(\.path), option: "--cache-dir")
        }
        let plotOut = try plot.map { try OutputFolder.prepare(URL(fileURLWithPath: $0), inputs: inputs, force: force, command: "repair", kind: .file) }

        let baseCkpt = try Checkpoint(path: base)
        let ft = lora != nil ? try FineTune.open(path: lora!, lora: true) : try FineTune.open(path: tuned!, lora: false)
        let names = try SpectralAnalysis.selectMatrices(base: baseCkpt, fineTunes: [ft], modules: modules)
        if dryRun { return try describe(ft, names: names, lambdas: lambdas) }
        let cache = noCache ? nil : DecompositionCache(directory: cacheDir.map { URL(fileURLWithPath: $0) } ?? DecompositionCache.defaultDirectory)

        // One decomposition per matrix (W0's left vectors, W's top-k triplets), reused for every λ.
        var mats: [RepairMatrix] = []
        let tSVD = Date()
        for name in names {
            var m = try RepairMatrix.load(name: name, base: baseCkpt, fineTune: ft)
            m.decomposition = try RepairDecomposition.compute(name: name, base: m.w0, tuned: m.w, topK: topK, epsilon: epsilon, cache: cache)
            mats.append(m)
        }
        let svdSeconds = Date().timeIntervalSince(tSVD)
        let changesAt: (Double) -> [RepairChange] = { l in mats.compactMap { RepairChange($0.decomposition!, target: target, lambda: l) } }
        let outLambda = lambda
        var report = RepairReport(base: base, fineTune: lora ?? tuned!, kind: lora != nil ? "lora" : "full", target: target.rawValue,
                                  epsilon: epsilon, topK: topK, lambda: outLambda, matrices: mats.count,
                                  matricesWithIntruders: mats.filter { !($0.decomposition!.profile.intruders.isEmpty) }.count,
                                  intrudersTotal: mats.map { $0.decomposition!.profile.intruders.count }.reduce(0, +),
                                  changes: changesAt(outLambda), sweep: nil, decompositionSeconds: svdSeconds,
                                  decompositions: mats.count, evaluationSeconds: nil, totalSeconds: 0, output: output, asAdapter: asAdapter)
        if target == .control {
            let none = mats.filter { !$0.decomposition!.profile.intruders.isEmpty && $0.decomposition!.selected(.control).isEmpty }.count
            if none > 0 { report.notes.append("\(none) matrices with intruders have no non-intruder neighbour in the top \(topK): left unchanged") }
        }

        // Measurement: base, λ = 1 (the fine-tune) and every λ, on one model rebuilt per λ.
        if heldOut != nil || !forgetting.isEmpty {
            let tEval = Date()
            report.sweep = try measure(ft, mats: mats, lambdas: lambdas)
            report.evaluationSeconds = Date().timeIntervalSince(tEval)
        }

        if let out {
            let source = baseCkpt.directory ?? URL(fileURLWithPath: base).deletingLastPathComponent()
            if asAdapter {
                guard case let .lora(adapter) = ft.source else { throw ValidationError("--as-adapter needs a --lora input") }
                guard adapter.savedModules.isEmpty else {
                    throw ValidationError("\(lora!): the adapter has modules_to_save (\(adapter.savedModules.keys.sorted().joined(separator: ", "))); --as-adapter would drop them, write a full checkpoint instead")
                }
                var modsOut: [LoRAAdapterWriter.Module] = []
                var truncation: [String: Double] = [:]
                for m in mats {
                    let mod = m.module!
                    let (a, b) = try adapter.factors(mod)
                    let ranks = m.decomposition!.selected(target)
                    if ranks.isEmpty || outLambda == 1 {
                        modsOut.append(.init(name: mod.name, a: a, b: b))
                    } else {
                        let f = try m.decomposition!.refactorised(a: a, b: b, scale: Float(mod.scale), lambda: outLambda, ranks: ranks)
                        modsOut.append(.init(name: mod.name, a: f.a, b: f.b))
                        truncation[m.name] = f.truncation
                    }
                }
                for i in report.changes.indices { report.changes[i].adapterTruncation = truncation[report.changes[i].name] }
                var config = adapter.config
                config.baseModelNameOrPath = base
                let cfg = config
                try out.write { staging in
                    try LoRAAdapterWriter.writeFiles(into: staging, modules: modsOut, baseModelNameOrPath: base,
                                                     metadata: ["format": "pt", "weightsmith.repair": "\(target.rawValue) lambda \(outLambda) epsilon \(epsilon)"], config: cfg,
                                                     allowNonFinite: nonFinite.allowNonFinite)
                    try Data((try report.json() + "\n").utf8).write(to: staging.appendingPathComponent("repair_report.json"))
                }
            } else {
                let model = try tunedModel(ft, mats: mats, lambda: outLambda)
                try out.write { staging in
                    try model.writeFolder(into: staging, sideFilesFrom: source,
                                          metadata: ["format": "pt", "weightsmith.repair": "\(target.rawValue) lambda \(outLambda) epsilon \(epsilon)"],
                                          allowNonFinite: nonFinite.allowNonFinite)
                    try Data((try report.json() + "\n").utf8).write(to: staging.appendingPathComponent("repair_report.json"))
                }
            }
        }
        if let plotOut, let rows = report.sweep {
            let svg = RepairPlot.svg(rows: rows, title: "repair sweep (\(target.rawValue), ε = \(epsilon)): \(URL(fileURLWithPath: lora ?? tuned!).lastPathComponent)")
            try plotOut.write { file in try Data(svg.utf8).write(to: file) }
        }
        report.totalSeconds = Date().timeIntervalSince(t0)
        if json { print(try report.json()) } else { print(report.text(), terminator: "") }
    }

    /// --dry-run: the fine-tune, the selected matrices and the data files checked (read, not
    /// scored), then the plan: one SVD per matrix, the λ values, the files of OUT and --plot.
    func describe(_ ft: FineTune, names: [String], lambdas: [Double]) throws {
        if asAdapter, case let .lora(adapter) = ft.source, !adapter.savedModules.isEmpty {
            throw ValidationError("\(lora!): the adapter has modules_to_save (\(adapter.savedModules.keys.sorted().joined(separator: ", "))); --as-adapter would drop them, write a full checkpoint instead")
        }
        for path in [heldOut].compactMap({ $0 }) {
            guard !(try PromptCompletion.readJSONL(URL(fileURLWithPath: path))).isEmpty else { throw ValidationError("\(path): no examples") }
        }
        try ForgettingProbes.check(forgetting)
        print("repair (\(target.rawValue)) of \(lora != nil ? "the LoRA \(lora!)" : "the fine-tune \(tuned!)") on \(base): \(names.count) matrices, "
              + "one SVD each (top \(topK), ε = \(epsilon)), \(noCache ? "without" : "with") the decomposition cache")
        if heldOut != nil || !forgetting.isEmpty {
            let what = ([heldOut.map { "task \($0)" }].compactMap { $0 } + forgetting.map { "forgetting \($0)" }).joined(separator: ", ")
            print("would score the base, the fine-tune and λ = \(lambdas.filter { $0 != 1 }.map { "\($0)" }.joined(separator: ", ")) on \(what)")
        }
        if let output {
            print("would write \(output): " + (asAdapter ? "a PEFT adapter of the input's rank (adapter_config.json, adapter_model.safetensors)"
                                                      : "the repaired model at λ = \(lambda) (config.json, model.safetensors, tokenizer files)") + " and repair_report.json")
        }
        if let plot { print("would write \(plot): the sweep's SVG") }
    }

    /// The fine-tuned model with every selected matrix repaired at λ (λ = 1: the fine-tune; for a
    /// LoRA, the merged W0 + ΔW, with modules_to_save applied).
    func tunedModel(_ ft: FineTune, mats: [RepairMatrix], lambda: Double) throws -> TransformerModel {
        let model: TransformerModel
        if case let .lora(adapter) = ft.source {
            model = try TransformerModel.load(path: base)
            for (name, key) in adapter.savedModules.sorted(by: { $0.key < $1.key }) {
                try model.parameters.set(Self.layoutName(model, name), try adapter.file.tensor(key), source: lora!)
            }
        } else {
            model = try TransformerModel.load(path: tuned!)
        }
        try set(model, mats: mats, lambda: lambda)
        return model
    }

    func set(_ model: TransformerModel, mats: [RepairMatrix], lambda: Double) throws {
        for m in mats {
            var w = m.w.scalars
            m.decomposition!.apply(to: &w, lambda: lambda, ranks: m.decomposition!.selected(target))
            var t = Tensor(shape: m.w.shape, scalars: w)
            if m.storedTransposed { t = t.transposed() }
            try model.parameters.set(Self.layoutName(model, m.name), t, source: lora ?? tuned!)
        }
    }

    static func layoutName(_ model: TransformerModel, _ name: String) -> String {
        model.layout[name] != nil ? name : (model.layout["transformer." + name] != nil ? "transformer." + name : name)
    }

    func measure(_ ft: FineTune, mats: [RepairMatrix], lambdas: [Double]) throws -> [RepairSweepRow] {
        let pm = try PretrainedModel(path: base)
        let tok = pm.tokenizer
        let workers = max(1, BLASThreads.budget / BLASThreads.current)
        let task = try heldOut.map { path -> [([Int], [Int])] in
            let ex = try PromptCompletion.readJSONL(URL(fileURLWithPath: path))
            guard !ex.isEmpty else { throw ValidationError("\(path): no examples") }
            return ex.map { (tok.encode($0.prompt), tok.encode($0.completion, addSpecialTokens: false)) }
        }
        let probes = try ForgettingProbes(paths: forgetting, tokenizer: tok, window: window)
        func score(_ model: TransformerModel) throws -> (em: Double?, nll: Double?, forget: Double?) {
            let t = try task.map { try Evaluator.evaluate(model: model, tokenized: $0, workers: workers) }
            return (t?.exactMatch, t?.meanNLL, try probes.loss(model, tokenizer: tok))
        }
        log("scoring the base")
        let b = try score(pm.model)
        let model = try tunedModel(ft, mats: mats, lambda: 1)
        log("scoring the fine-tune (λ = 1)")
        let ref = try score(model)
        var rows = [RepairSweepRow(label: "base", lambda: nil, exactMatch: b.em, taskNLL: b.nll, forgettingLoss: b.forget, forgetting: b.forget.map { _ in 0 },
                                   taskChangePercent: nil, forgettingChangePercent: nil, changeNorm: 0)]
        let fRef = zip2(ref.forget, b.forget).map { $0 - $1 }
        rows.append(RepairSweepRow(label: "fine-tune", lambda: 1, exactMatch: ref.em, taskNLL: ref.nll, forgettingLoss: ref.forget, forgetting: fRef,
                                   taskChangePercent: nil, forgettingChangePercent: nil, changeNorm: 0))
        for l in lambdas where l != 1 {
            try set(model, mats: mats, lambda: l)
            log("scoring λ = \(l)")
            let s = try score(model)
            let f = zip2(s.forget, b.forget).map { $0 - $1 }
            let norm = mats.map { m -> Double in let c = m.decomposition!.changeNorm(lambda: l, ranks: m.decomposition!.selected(target)); return c * c }.reduce(0, +).squareRoot()
            rows.append(RepairSweepRow(label: "λ = \(l)", lambda: l, exactMatch: s.em, taskNLL: s.nll, forgettingLoss: s.forget, forgetting: f,
                                       taskChangePercent: RepairSweepRow.percentChange(s.em, ref.em), forgettingChangePercent: RepairSweepRow.percentChange(f, fRef), changeNorm: norm))
        }
        return rows
    }

    func zip2(_ a: Double?, _ b: Double?) -> (Double, Double)? { if let a, let b { return (a, b) } else { return nil } }
}

/// One matrix of the repair: W0 and W in the normalised (out, in) orientation.
struct RepairMatrix {
    var name: String
    var w0: Tensor
    var w: Tensor
    var module: LoRAModule?
    /// The checkpoint stores the matrix (in, out) (fan_in_fan_out).
    var storedTransposed: Bool
    var decomposition: RepairDecomposition?

    static func load(name: String, base: Checkpoint, fineTune: FineTune) throws -> RepairMatrix {
        let stored = try base.tensor(name)
        switch fineTune.source {
        case let .dense(c):
            return RepairMatrix(name: name, w0: stored, w: try c.tensor(name), module: nil, storedTransposed: false)
        case let .lora(adapter):
            guard let mod = adapter.module(forBaseTensor: name) else {
                throw SpectralError.invalidOption("\(fineTune.path): the adapter has no module for \(name)")
            }
            let transposed = mod.baseIsTransposed && stored.shape == [mod.inFeatures, mod.outFeatures]
            let w0 = transposed ? stored.transposed() : stored
            var w = w0
            let d = try adapter.delta(mod)
            for i in w.scalars.indices { w.scalars[i] += d.scalars[i] }
            return RepairMatrix(name: name, w0: w0, w: w, module: mod, storedTransposed: transposed)
        }
    }
}

