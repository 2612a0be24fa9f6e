import ArgumentParser
import Checkpoints
import Foundation
import Spectral

struct SpectrumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spectrum",
        abstract: "Spectral diagnostics of one fine-tune against its base: update spectra, effective/stable rank, relative norms, intruder dimensions.",
        discussion: "Give the fine-tune as --tuned (a checkpoint) or --lora (a PEFT adapter folder)."
    )

    @Option(help: "The base model: any model reference (folder, .safetensors, .gguf, org/name from the HF cache, BASE+ADAPTER).")
    var base: String

    @Option(help: "A fine-tune of the same base: any model reference (a task vector or sparse delta is added to --base).")
    var tuned: String?

    @Option(help: "A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors).")
    var lora: String?

    @OptionGroup var options: SpectralOptionGroup

    func validate() throws {
        guard (tuned == nil) != (lora == nil) else { throw ValidationError("give exactly one of --tuned and --lora") }
    }

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        let plots = try options.preparePlots(inputs: [base, tuned, lora].compactMap { $0 })
        let baseCkpt = try ModelReference.open(base)
        let ft = lora != nil ? try FineTune.open(path: lora!, lora: true) : try FineTune.open(path: tuned!, lora: false, base: base)
        let total = try SpectralAnalysis.selectMatrices(base: baseCkpt, fineTunes: [ft], modules: options.modules).count
        let progress = SharedProgress.onTerminal(label: "spectrum: matrices", total: total, quiet: quiet)
        let report = try SpectralAnalysis.run(base: baseCkpt, fineTunes: [ft], modules: options.modules,
                                              options: try options.spectralOptions(), jobs: options.workerCount(),
                                              progress: tickProgress(progress))
        try options.emit(report, plotsFolder: plots)
    }
}
