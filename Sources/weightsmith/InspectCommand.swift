import ArgumentParser
import Checkpoints
import Foundation

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List the tensors of a checkpoint: name, dtype, shape, parameters, bytes, totals and metadata.",
        discussion: "PATH is any model reference: a Hugging Face folder (single or sharded), a .safetensors file or index, a .gguf file (dequantised), a PEFT adapter (merged onto its base), BASE+ADAPTER, BASE+DELTA, a task vector or sparse delta (shown as stored), or org/name[@revision] from the local Hugging Face cache."
    )

    @Argument(help: "A model reference (folder, .safetensors, index, .gguf, adapter, BASE+ADAPTER, org/name[@rev]).")
    var path: String

    @Option(help: "The base of an adapter, task vector or sparse delta given as PATH.")
    var base: String?

    @Flag(help: "Print JSON for scripts instead of a table.")
    var json = false

    @Flag(help: "Stream through the data and add min, max, mean, std and NaN/Inf counts per tensor.")
    var stats = false

    func run() throws {
        try reportingErrors {
            let report = try InspectReport(checkpoint: ModelReference.open(path, base: base, allowDeltas: true), stats: stats)
            print(json ? report.json() : report.text(), terminator: "")
        }
    }
}

/// Runs `body`; a thrown error is printed as `error: <description>` and exits with status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
