import ArgumentParser
import CFileIO
import Foundation
import Tensors

@main
struct Weightsmith: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weightsmith",
        abstract: "Merge, edit and diagnose fine-tuned transformer checkpoints on the CPU.",
        version: "0.1.0",
        subcommands: [
            DemoCommand.self,
            InspectCommand.self,
            ConvertCommand.self,
            SpectrumCommand.self, CompareCommand.self, ExtractLoRACommand.self,
            GenerateCommand.self,
            EvalCommand.self,
            FinetuneCommand.self,
            ConvertGGUFCommand.self, ConvertLTSFTCommand.self, MergeAdapterCommand.self,
            MergeCommand.self, TaskVectorCommand.self, ComposeCommand.self,
            EditCommand.self, EditEvalCommand.self, TrainEditorCommand.self, FactsCommand.self,
            SoupCommand.self, SearchCommand.self,
            GraftCommand.self, MasksCommand.self, SFTCommand.self,
            RepairCommand.self, InterferenceCommand.self,
        ]
    )

    /// Sets weightsmith's BLAS threading before any command runs (one BLAS thread unless
    /// OPENBLAS_NUM_THREADS is set: weightsmith parallelises itself; see `BLASThreads`).
    static func main() async {
        BLASThreads.configureDefault()
        // Line-buffered stdout: the per-step lines of long commands (finetune, train-editor) reach a
        // log file or a pipe as they are printed, not when the command ends.
        ws_stdout_line_buffered()
        // `compose "-0.5*a + b"`: a leading minus would be read as an option.
        let arguments = ComposeCommand.protectingExpression(Array(CommandLine.arguments.dropFirst()))
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            // A malformed command line: ArgumentParser's message, with the usage line.
            exit(withError: error)
        }
        do {
            if var c = command as? any AsyncParsableCommand { try await c.run() } else { try command.run() }
        } catch let e as ValidationError {
            // Found while running (a file, a value): the message says what to fix, and a usage
            // line would only hide it.
            FileHandle.standardError.write(Data("Error: \(e.message)\n".utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        } catch {
            exit(withError: error)
        }
    }
}
