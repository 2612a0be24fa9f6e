import ArgumentParser
import Checkpoints
import Foundation
import Tensors

struct MergeAdapterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-adapter",
        abstract: "Bake a PEFT LoRA adapter into its base (PEFT's merge_and_unload): W + (alpha/r) B A per adapted module.",
        discussion: """
            BASE is any model reference (folder, .safetensors, .gguf, org/name[@rev] from the Hugging Face cache); \
            ADAPTER is a PEFT adapter folder (adapter_config.json + adapter_model.safetensors). The result is a \
            Hugging Face folder with the base's config and tokenizer files; every tensor keeps the base's dtype \
            unless --dtype is given (modules_to_save replace the base's tensors). OUT goes through the usual \
            output folder checks: written atomically, never an input, replaced only with --force. \
            Every command also merges an adapter on the fly (ADAPTER alone uses base_model_name_or_path, \
            BASE+ADAPTER names the base); merge-adapter writes it once for tools that need a plain checkpoint.
            """
    )

    @Argument(help: "The base model (any model reference).")
    var base: String

    @Argument(help: "The PEFT adapter folder.")
    var adapter: String

    @Option(name: [.short, .long], help: "Output folder.")
    var output: String

    @Option(help: "Floating dtype of the output: f32, f16 or bf16 (default: the base's).")
    var dtype: String?

    @Flag(help: "Replace an existing OUT (only a previous weightsmith output).")
    var force = false

    @Flag(help: "Check the inputs and print what would be written, then stop.")
    var dryRun = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @OptionGroup var nonFinite: NonFiniteOption

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        try reportingErrors {
            var target: DType?
            if let dtype {
                guard let d = DType(userSpelling: dtype), [.f32, .f16, .bf16].contains(d) else {
                    throw ValidationError("--dtype must be f32, f16 or bf16, not \"\(dtype)\"")
                }
                target = d
            }
            if dryRun {
                let merged = try ModelReference.open(try ModelReference.localPath(adapter), base: base)
                let a = try LoRAAdapter(path: try ModelReference.localPath(adapter))
                _ = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: merged.sourceURLs, force: force, command: "merge-adapter")
                print("would write \(output): \(merged.tensorNames.count) tensors, \(a.modules.count) adapted modules, \(a.savedModules.count) modules_to_save")
                return
            }
            let s = try CheckpointConverter.mergeAdapter(base: base, adapter: adapter, output: output, dtype: target, force: force,
                                                         allowNonFinite: nonFinite.allowNonFinite)
            if json {
                func q(_ x: String) -> String { "\"" + x.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
                print("{\"output\": \(q(output)), \"tensors\": \(s.tensors), \"bytes\": \(s.bytesOut), \"files\": [\(s.files.map(q).joined(separator: ", "))], \"copied_files\": [\(s.copiedFiles.map(q).joined(separator: ", "))]}")
            } else {
                print("wrote \(output): \(s.tensors) tensors, \(ByteSize.format(s.bytesOut)) (\(base) + \(adapter))")
                print("files: \((s.files + s.copiedFiles).joined(separator: ", "))")
            }
        }
    }
}
