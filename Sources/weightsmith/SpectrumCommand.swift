import ArgumentParser
import Checkpoints
import Foundation
import Spectral

struct SpectrumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spectrum",
        abstract: "Spectral diagnostics: one fine-tune against its base (update spectra, ranks, intruder dimensions), or one model alone (WeightWatcher's metrics).",
        discussion: """
        spectrum --base BASE (--tuned T | --lora A): the update ΔW of each matrix against the base: relative norm, \
        effective and stable rank, energy, intruder dimensions (Shuttleworth et al. 2024).

        spectrum MODEL: no base needed. WeightWatcher's per-matrix metrics of the empirical spectral density \
        (Martin & Mahoney 2021): the power-law exponent α of the eigenvalues of WᵀW (fitted as weightwatcher 0.7.7 \
        fits it), alpha_weighted, log norms, stable rank, matrix entropy and the over-/under-trained warnings, \
        with the package's column names in --json; --plots DIR draws alpha-by-layer.svg. Only --modules, --json, \
        --plots and --jobs apply.
        """
    )

    @Argument(help: "A model to analyse alone (WeightWatcher's metrics): any model reference.")
    var model: String?

    @Option(help: "The base model: any model reference (folder, .safetensors, .gguf, org/name from the HF cache, BASE+ADAPTER).")
    var base: String?

    @Option(help: "A fine-tune of the same base: any model reference (a task vector or sparse delta is added to --base).")
    var tuned: String?

    @Option(help: "A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors).")
    var lora: String?

    @Option(help: "With --tuned MERGED: an ingredient of the merge (repeatable); reports how much of its top update subspace survives in the merged update.")
    var ingredient: [String] = []

    @OptionGroup var options: SpectralOptionGroup

    func validate() throws {
        if model != nil {
            guard base == nil, tuned == nil, lora == nil, ingredient.isEmpty else {
                throw ValidationError("give either MODEL (one model alone) or --base with --tuned or --lora, not both")
            }
            return
        }
        guard base != nil else { throw ValidationError("give MODEL (one model alone) or --base BASE with --tuned or --lora") }
        guard (tuned == nil) != (lora == nil) else { throw ValidationError("give exactly one of --tuned and --lora") }
    }

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        if let model { return try runAlone(model) }
        let base = base!
        let plots = try options.preparePlots(inputs: [base, tuned, lora].compactMap { $0 } + ingredient)
        let baseCkpt = try ModelReference.open(base)
        let ft = lora != nil ? try FineTune.open(path: lora!, lora: true) : try FineTune.open(path: tuned!, lora: false, base: base)
        var fts = [ft] + (try ingredient.map { try FineTune.open(path: $0, base: base) })
        if Set(fts.map(\.label)).count != fts.count { for i in fts.indices { fts[i].label = fts[i].path } }
        let names = try SpectralAnalysis.selectMatrices(base: baseCkpt, fineTunes: fts, modules: options.modules)
        let total = names.count
        let progress = SharedProgress.onTerminal(label: "spectrum: matrices", total: total, quiet: quiet)
        var report = try SpectralAnalysis.run(base: baseCkpt, fineTunes: fts, modules: options.modules,
                                              options: try options.spectralOptions(), jobs: options.workerCount(),
                                              progress: tickProgress(progress))
        if !ingredient.isEmpty {
            // The report is the merged update's; the ingredients enter only through the overlaps.
            let merged = fts[0].label
            report.survival = IngredientSurvival.from(report.overlaps, merged: merged, ingredients: fts.dropFirst().map(\.label))
            report.overlaps = report.overlaps.filter { $0.first == merged || $0.second == merged }
            report.fineTunes = [report.fineTunes[0]]
        }
        if options.alpha { report.alpha = try AlphaComparison.run(base: baseCkpt, fineTunes: [fts[0]], names: names, jobs: options.workerCount()) }
        try options.emit(report, plotsFolder: plots)
    }

    /// WeightWatcher's metrics of one model.
    func runAlone(_ path: String) throws {
        let plots = try options.preparePlots(inputs: [path])
        let ckpt = try ModelReference.open(path)
        let total = try ModelSpectrum.select(ckpt, modules: options.modules).names.count
        let progress = SharedProgress.onTerminal(label: "spectrum: matrices", total: total, quiet: quiet)
        let report = try ModelSpectrum.analyze(ckpt, modules: options.modules, jobs: options.workerCount(), progress: tickProgress(progress))
        if options.json { try printJSON(report) } else { print(report.text(), terminator: "") }
        if let plots {
            let files = try ModelSpectrumPlot.write(report, with: plots)
            if !options.json { print("plots: " + files.map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: ", ") + " in \(options.plots!)") }
        }
    }
}
