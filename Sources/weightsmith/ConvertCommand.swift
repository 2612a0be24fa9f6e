import ArgumentParser
import Checkpoints
import Foundation
import Tensors

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Rewrite a checkpoint with another dtype or sharding, streaming tensor by tensor.",
        discussion: """
            IN is a .safetensors file, an index file or a Hugging Face folder. OUT ending in .safetensors \
            is written as one file; any other OUT is a folder (model.safetensors, or shards + index with \
            --shard-size) with the input folder's config, tokenizer and generation files. Only floating \
            tensors change dtype. OUT is checked before any work and written atomically; it is never an input, \
            inside one or above one; an existing OUT is replaced only with --force, and a folder only when it \
            is a previous weightsmith output. \
            IN may also be a llama-family .gguf file: OUT is then a Hugging Face folder (as convert-gguf).
            """
    )

    @Argument(help: "Input checkpoint.")
    var input: String

    @Argument(help: "Output .safetensors file or folder.")
    var output: String

    @Option(help: "Floating dtype of the output: f32, f16 or bf16 (default: keep).")
    var dtype: String?

    @Option(name: .customLong("shard-size"), help: "Maximum shard size, e.g. 500MB, 2GB, 1GiB (folder output).")
    var shardSize: String?

    @Flag(help: "Replace an existing OUT (a folder only when it is a previous weightsmith output).")
    var force = false

    @Flag(help: "Check IN and OUT and print what would be written (tensors, bytes, files), then stop.")
    var dryRun = false

    @Flag(help: "Print the result as JSON on stdout (output, tensors, bytes, dtype, files).")
    var json = false

    @OptionGroup var nonFinite: NonFiniteOption

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        if input.hasSuffix(".gguf") {
            // A GGUF file converts to a Hugging Face folder (config, safetensors, tokenizer.json).
            guard shardSize == nil else { throw ValidationError("--shard-size is not supported for a GGUF input") }
            let gguf = try ConvertGGUFCommand.parse([input, output] + (dtype.map { ["--dtype", $0] } ?? []) + (force ? ["--force"] : []) + (dryRun ? ["--dry-run"] : [])
                + (nonFinite.allowNonFinite ? ["--allow-nonfinite"] : []) + (json ? ["--json"] : []) + (quiet ? ["--quiet"] : []))
            try gguf.run()
            return
        }
        try reportingErrors {
            var options = CheckpointConverter.Options(allowNonFinite: nonFinite.allowNonFinite)
            if let dtype {
                guard let d = DType(userSpelling: dtype), [.f32, .f16, .bf16].contains(d) else {
                    throw ValidationError("--dtype must be f32, f16 or bf16, not \"\(dtype)\"")
                }
                options.dtype = d
            }
            if let shardSize { options.maxShardBytes = try ByteSize.parse(shardSize) }
            options.dryRun = dryRun
            let s = try CheckpointConverter.convert(input: input, output: output, options: options, force: force)
            if json {
                return try printJSON(ConvertJSON(output: output, dryRun: dryRun, tensors: s.tensors, bytesIn: s.bytesIn, bytes: s.bytesOut,
                                                 dtype: options.dtype?.rawValue, converted: s.converted, keptDtype: s.keptDType,
                                                 files: s.files, copiedFiles: s.copiedFiles))
            }
            print((dryRun ? "would write" : "wrote") + " \(output): \(s.tensors) tensors, \(ByteSize.format(s.bytesIn)) -> \(ByteSize.format(s.bytesOut))"
                + (options.dtype.map { ", \(s.converted) converted to \($0.rawValue)" } ?? ""))
            print("files: \(s.files.joined(separator: ", "))")
            if !s.copiedFiles.isEmpty { print("copied: \(s.copiedFiles.joined(separator: ", "))") }
            if !s.keptDType.isEmpty {
                print("kept in their dtype (not floating point): \(s.keptDType.joined(separator: ", "))")
            }
        }
    }
}

/// `convert --json`: what was (with --dry-run, would be) written. `bytes` counts tensor data (as
/// merge's report); `dtype` (the safetensors spelling, as `inspect --json`) is present only when
/// --dtype was given (else every tensor keeps its own).
struct ConvertJSON: Encodable {
    let output: String
    let dryRun: Bool
    let tensors: Int
    let bytesIn: Int
    let bytes: Int
    let dtype: String?
    let converted: Int
    let keptDtype: [String]
    let files: [String]
    let copiedFiles: [String]
}
