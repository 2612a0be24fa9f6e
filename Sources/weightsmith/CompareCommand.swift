import ArgumentParser
import Checkpoints
import Foundation
import Spectral
import Transformer

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Side-by-side spectral diagnosis of two or more fine-tunes of one base (LoRA adapters and/or full fine-tunes), with their update-subspace overlap.",
        discussion: """
        --forgetting DATA (repeatable: plain text for the LM loss, JSONL probes for the completion NLL) \
        also measures each fine-tune's forgetting (its loss minus the base's) beside its intruder count, \
        with Spearman's rank correlation of the two when there are at least 4 fine-tunes \
        (Shuttleworth et al. 2024, §4). --alpha adds WeightWatcher's α before and after.
        """
    )

    @Option(help: "The base checkpoint.")
    var base: String

    @Option(help: "A PEFT LoRA adapter folder (repeatable).")
    var lora: [String] = []

    @Option(help: "A fully fine-tuned checkpoint (repeatable).")
    var full: [String] = []

    @OptionGroup var options: SpectralOptionGroup

    @Option(help: "Prior-knowledge data (repeatable): plain text (LM loss) or JSONL probes (completion NLL); measures each fine-tune's forgetting.")
    var forgetting: [String] = []

    @Option(help: "Token window for the plain-text LM loss of --forgetting.")
    var window = 128

    func validate() throws {
        guard lora.count + full.count >= 2 else { throw ValidationError("compare needs at least two fine-tunes (--lora and/or --full)") }
        guard window >= 2 else { throw ValidationError("--window must be at least 2") }
    }

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        try ForgettingProbes.check(forgetting)
        let plots = try options.preparePlots(inputs: [base] + lora + full)
        let baseCkpt = try ModelReference.open(base)
        var fts = try lora.map { try FineTune.open(path: $0, lora: true) } + full.map { try FineTune.open(path: $0, lora: false, base: base) }
        // Labels must be distinct: fall back to the full path when two folders share a name.
        if Set(fts.map(\.label)).count != fts.count { for i in fts.indices { fts[i].label = fts[i].path } }
        let names = try SpectralAnalysis.selectMatrices(base: baseCkpt, fineTunes: fts, modules: options.modules)
        let total = names.count
        let progress = SharedProgress.onTerminal(label: "compare: matrices", total: total, quiet: quiet)
        var report = try SpectralAnalysis.run(base: baseCkpt, fineTunes: fts, modules: options.modules,
                                              options: try options.spectralOptions(), jobs: options.workerCount(),
                                              progress: tickProgress(progress))
        if options.alpha { report.alpha = try AlphaComparison.run(base: baseCkpt, fineTunes: fts, names: names, jobs: options.workerCount()) }
        if !forgetting.isEmpty { report.forgetting = try measureForgetting(fts, report: report) }
        try options.emit(report, plotsFolder: plots)
    }

    /// The base's and each fine-tune's forgetting loss (a LoRA merged into the base, as `eval` loads it).
    func measureForgetting(_ fts: [FineTune], report: SpectralReport) throws -> ForgettingColumn {
        func log(_ s: String) { if !quiet { FileHandle.standardError.write(Data("compare: \(s)\n".utf8)) } }
        let basePM = try PretrainedModel(path: base)
        let probes = try ForgettingProbes(paths: forgetting, tokenizer: basePM.tokenizer, window: window)
        log("forgetting: scoring the base")
        let baseLoss = try probes.loss(basePM.model, tokenizer: basePM.tokenizer)!
        let eps = report.epsilons.first ?? 0.5
        var entries: [ForgettingColumn.Entry] = []
        for (ft, r) in zip(fts, report.fineTunes) {
            log("forgetting: scoring \(ft.label)")
            let pm = try PretrainedModel(path: ft.path, base: base)
            try pm.model.requireFiniteWeights()
            let loss = try probes.loss(pm.model, tokenizer: basePM.tokenizer)!
            let intruders = r.summary.totalIntruders.first { $0.epsilon == eps }?.count ?? 0
            entries.append(.init(label: ft.label, loss: loss, forgetting: loss - baseLoss, intruders: intruders))
        }
        return ForgettingColumn(data: forgetting, baseLoss: baseLoss, epsilon: eps, fineTunes: entries)
    }
}
