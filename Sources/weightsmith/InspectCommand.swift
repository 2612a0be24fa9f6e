import ArgumentParser
import Checkpoints
import Foundation

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List the tensors of a checkpoint: name, dtype, shape, parameters, bytes, totals and metadata.",
        discussion: "PATH is a .safetensors file, a *.safetensors.index.json, or a Hugging Face folder."
    )

    @Argument(help: "A .safetensors file, an index file, or a Hugging Face folder.")
    var path: String

    @Flag(help: "Print JSON for scripts instead of a table.")
    var json = false

    @Flag(help: "Stream through the data and add min, max, mean, std and NaN/Inf counts per tensor.")
    var stats = false

    func run() throws {
        try reportingErrors {
            let report = try InspectReport(checkpoint: Checkpoint(path: path), stats: stats)
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
