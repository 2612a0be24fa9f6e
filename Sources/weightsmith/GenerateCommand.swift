import ArgumentParser
import Foundation
import Transformer

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt (greedy, or seeded temperature/top-p sampling), streaming tokens.")

    @Argument(help: "A model reference: a Hugging Face folder, a .safetensors file, a .gguf file, a PEFT adapter (merged onto its base), BASE+ADAPTER, BASE+DELTA, or org/name[@revision] from the local Hugging Face cache.")
    var model: String

    @Option(help: "The base of an adapter, task vector or sparse delta given as MODEL.")
    var base: String?

    @Argument(help: "The prompt.")
    var prompt: String

    @Option(name: .long, help: "Maximum number of new tokens.")
    var maxTokens = 64

    @Option(name: .long, help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .long, help: "Nucleus sampling probability mass (with --temperature > 0).")
    var topP: Float = 1

    @Option(name: .long, help: "Seed of the sampler.")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Print timing (load, prefill, generation tokens/s) to stderr.")
    var stats = false

    @OptionGroup var nonFinite: NonFiniteOption

    @OptionGroup var threading: ThreadsOption

    func run() throws {
        try threading.apply()
        guard temperature >= 0, topP > 0, topP <= 1 else {
            throw ValidationError("--temperature must be >= 0 and --top-p in (0, 1]")
        }
        let loaded = try PretrainedModel(path: model, base: base)
        if !nonFinite.allowNonFinite { try loaded.model.requireFiniteWeights() }
        let generator = TextGenerator(model: loaded.model, tokenizer: loaded.tokenizer)
        FileHandle.standardOutput.write(Data(prompt.utf8))
        let result = try generator.generate(
            prompt: prompt, maxTokens: maxTokens,
            options: SamplingOptions(temperature: temperature, topP: topP, seed: seed)
        ) { piece in FileHandle.standardOutput.write(Data(piece.utf8)) }
        FileHandle.standardOutput.write(Data("\n".utf8))
        if stats {
            let n = result.tokens.count
            let line = String(format: "load %.2f s, prompt %d tokens in %.3f s (%.1f tokens/s), %d new tokens in %.3f s (%.1f tokens/s)\n",
                              loaded.loadSeconds, result.promptTokens.count, result.prefillSeconds,
                              Double(result.promptTokens.count) / max(result.prefillSeconds, 1e-9),
                              n, result.generationSeconds, Double(max(n - 1, 0)) / max(result.generationSeconds, 1e-9))
            FileHandle.standardError.write(Data(line.utf8))
        }
    }
}
