import ArgumentParser
import Checkpoints
import Foundation
import Spectral

struct ExtractLoRACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract-lora",
        abstract: "Write a PEFT LoRA adapter approximating a full fine-tune by the truncated SVD of each update.",
        discussion: "For every selected matrix, ΔW = W − W0 ≈ U_r Σ_r V_rᵀ; the adapter stores B = U_r Σ_r^½ and A = Σ_r^½ V_rᵀ with lora_alpha = r (scale 1). Prints the energy of ΔW captured per module."
    )

    @Option(help: "The base checkpoint.")
    var base: String

    @Option(help: "The fully fine-tuned checkpoint.")
    var tuned: String

    @Option(help: "LoRA rank.")
    var rank: Int

    @Option(name: .shortAndLong, help: "Output adapter folder (must not exist or be empty).")
    var output: String

    @Flag(help: "Replace OUT when it is a previous weightsmith output.")
    var force = false

    @Option(help: "Only matrices whose tensor name matches this regular expression (default: every 2-D non-embedding weight).")
    var modules: String?

    @Flag(help: "Print the per-module table as JSON.")
    var json = false

    @Flag(help: "Check the inputs and OUT and print the matrices that would be extracted, then stop (no SVD, nothing written).")
    var dryRun = false

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var nonFinite: NonFiniteOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        guard rank > 0 else { throw ValidationError("--rank must be positive") }
        if dryRun {
            let p = try LoRAExtraction.plan(base: try ModelReference.open(base), tuned: try ModelReference.open(tuned, base: base), rank: rank,
                                            modules: modules, output: URL(fileURLWithPath: output), force: force)
            for m in p.matrices { print("\(m.name)  \(m.rows)x\(m.cols)  rank \(m.rank)") }
            print("would write \(output): a rank-\(rank) PEFT adapter of \(p.matrices.count) matrices (adapter_config.json, adapter_model.safetensors, \(ByteSize.format(p.bytes)))")
            return
        }
        let result = try LoRAExtraction.extract(base: try ModelReference.open(base), tuned: try ModelReference.open(tuned, base: base), rank: rank,
                                                modules: modules, output: URL(fileURLWithPath: output), baseName: base, force: force,
                                                allowNonFinite: nonFinite.allowNonFinite)
        if json {
            try printJSON(result)
        } else {
            print(LoRAExtraction.render(result))
        }
    }
}
