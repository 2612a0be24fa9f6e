import ArgumentParser
import Checkpoints
import Foundation
import Spectral

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Side-by-side spectral diagnosis of two or more fine-tunes of one base (LoRA adapters and/or full fine-tunes), with their update-subspace overlap."
    )

    @Option(help: "The base checkpoint.")
    var base: String

    @Option(help: "A PEFT LoRA adapter folder (repeatable).")
    var lora: [String] = []

    @Option(help: "A fully fine-tuned checkpoint (repeatable).")
    var full: [String] = []

    @OptionGroup var options: SpectralOptionGroup

    func validate() throws {
        guard lora.count + full.count >= 2 else { throw ValidationError("compare needs at least two fine-tunes (--lora and/or --full)") }
    }

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
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
        try options.emit(report, plotsFolder: plots)
    }
}
