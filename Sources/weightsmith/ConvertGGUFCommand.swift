import ArgumentParser
import Checkpoints
import Foundation
import Tensors

struct ConvertGGUFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert-gguf",
        abstract: "Convert a GGUF file (llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3, gpt2) into a Hugging Face folder (config.json, model.safetensors, tokenizer.json).")

    @Argument(help: "The .gguf file.")
    var model: String

    @Argument(help: "Output folder (must not exist or be empty).")
    var output: String

    @Flag(help: "Replace OUT when it is a previous weightsmith output.")
    var force = false

    @Flag(help: "Check the file and OUT and print what would be written, then stop.")
    var dryRun = false

    @Flag(help: "Print the result as JSON on stdout (output, architecture, tensors, parameters, bytes, dtype, files, notes).")
    var json = false

    @OptionGroup var nonFinite: NonFiniteOption

    @Option(name: .long, help: "Stored dtype of the weights: f32 (exact dequantised values), bf16 or f16.")
    var dtype = "f32"

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        guard let d = DType(userSpelling: dtype), [.f32, .f16, .bf16].contains(d) else {
            throw ValidationError("--dtype must be f32, bf16 or f16")
        }
        let gguf = try GGUFFile(path: model)
        let types = Dictionary(grouping: gguf.tensors, by: { $0.type.description }).map { "\($0.key) x\($0.value.count)" }.sorted()
        if !quiet {
            let header = "\(model): GGUF v\(gguf.version), \(gguf.tensors.count) tensors (\(types.joined(separator: ", ")))\n"
            // With --json, stdout holds only the JSON object.
            if json { FileHandle.standardError.write(Data(header.utf8)) } else { print(header, terminator: "") }
        }
        let tty = isatty(2) != 0 && !quiet
        let summary = try GGUFConverter.convert(gguf: gguf, to: URL(fileURLWithPath: output), dtype: d, force: force,
                                                allowNonFinite: nonFinite.allowNonFinite, dryRun: dryRun) { done, total, _ in
            guard tty else { return }
            FileHandle.standardError.write(Data("\r\(done)/\(total) tensors\(done == total ? "\n" : "")".utf8))
        }
        if json {
            return try printJSON(ConvertGGUFJSON(output: output, dryRun: dryRun, architecture: summary.architecture, tensors: summary.tensors,
                                                 parameters: summary.parameters, bytes: summary.parameters * d.byteSize, dtype: d.rawValue,
                                                 files: summary.files, notes: summary.notes))
        }
        print((dryRun ? "would write" : "wrote") + " \(output): \(summary.architecture), \(summary.tensors) tensors, \(summary.parameters) parameters as \(d.rawValue)")
        print("files: \(summary.files.joined(separator: ", "))")
        for note in summary.notes { print("note: \(note)") }
    }
}

/// `convert-gguf --json`: what was (with --dry-run, would be) written; `bytes` counts the tensor
/// data of model.safetensors (parameters × the size of `dtype`, spelled as in safetensors: F32, BF16, F16).
struct ConvertGGUFJSON: Encodable {
    let output: String
    let dryRun: Bool
    let architecture: String
    let tensors: Int
    let parameters: Int
    let bytes: Int
    let dtype: String
    let files: [String]
    let notes: [String]
}
