import ArgumentParser
import Foundation
import Merging
import Tensors

struct TaskVectorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task-vector",
        abstract: "Task vectors (fine-tune minus base) as checkpoints.",
        subcommands: [Extract.self]
    )

    struct Extract: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write TUNED − BASE as a checkpoint folder (usable by compose).",
            discussion: "Example: weightsmith task-vector extract base ft-math -o tv-math --density 0.2"
        )

        @Argument(help: "The base model.") var base: String
        @Argument(help: "The fine-tuned model.") var tuned: String
        @Option(name: [.short, .customLong("output")], help: "Output folder.") var output: String
        @Option(name: .customLong("density"),
                help: "Keep only this fraction of entries per tensor, the largest magnitudes (0 < d ≤ 1, as TIES's density); others are stored as 0.")
        var density: Double = 1
        /// The former name of --density (a fraction, where spectrum's and repair's --top-k is a count): accepted, with a note.
        @Option(name: .customLong("top-k"), help: .hidden) var formerTopK: Double?
        @Option(name: [.customLong("dtype"), .customLong("out-dtype")], help: "Storage dtype: f32, bf16, f16 (default: the base's). --out-dtype is the same option.") var outDtype: String?
        @Flag(help: "Print the plan and check OUT, then stop (nothing is written).") var dryRun = false
        @Flag(help: "Replace the output folder if it exists.") var force = false
        @Flag(help: "No progress output.") var quiet = false
        @Flag(help: "Print the result as JSON on stdout (output, tensors, bytes, dtype, files; with --dry-run, what would be written).") var json = false
        @OptionGroup var nonFinite: NonFiniteOption

        @OptionGroup var threading: ThreadsOption

        func run() throws {
            try threading.apply()
            let dtype = try outDtype.map(parseOutDType)
            if formerTopK != nil {
                guard density == 1 else { throw ValidationError("--top-k is the former name of --density; give one of them") }
                FileHandle.standardError.write(Data("note: task-vector extract --top-k is now --density (a fraction of entries per tensor; --top-k counts singular vectors in spectrum and repair)\n".utf8))
            }
            let plan = try TaskVectors.extractPlan(base: base, tuned: tuned, topK: formerTopK ?? density, outDType: dtype,
                                                   threads: threading.count)
            // One dtype name when every tensor has it, else "mixed".
            let dtypes = Set(plan.jobs.map(\.outDType.rawValue))
            let dtypeName = dtypes.count == 1 ? dtypes.first! : "mixed"
            if dryRun {
                if !json { print(plan.describe(), terminator: "") }
                if !plan.problems.isEmpty { throw MergeError.preflight(plan.problems) }
                var o = ExecutionOptions(overwrite: force)
                o.command = "task-vector extract"
                let check = try MergeExecutor.checkOutput(plan, to: URL(fileURLWithPath: output), options: o)
                guard json else { print(check); return }
                FileHandle.standardError.write(Data((check + "\n").utf8))
                return try printJSON(TaskVectorDryRunJSON(output: URL(fileURLWithPath: output).path, dryRun: true, tensors: plan.jobs.count,
                                                          bytes: plan.outputBytes, dtype: dtypeName))
            }
            var options = ExecutionOptions(progress: !quiet, overwrite: force)
            options.metadata = [TaskVectors.kindKey: TaskVectors.kindValue]
            options.command = "task-vector extract"
            options.allowNonFinite = nonFinite.allowNonFinite
            let report = try MergeExecutor.run(plan, to: URL(fileURLWithPath: output), options: options)
            if json { return try WrittenFolderJSON(report, notes: plan.notes, dtype: dtypeName).printed() }
            print("wrote task vector \(report.outputDirectory.path): \(report.tensors) tensors, \(formatBytes(report.outputBytes))")
        }
    }
}

/// `task-vector extract --dry-run --json`: what would be written (the run's report is `WrittenFolderJSON`).
struct TaskVectorDryRunJSON: Encodable {
    let output: String
    let dryRun: Bool
    let tensors: Int
    let bytes: Int
    let dtype: String
}

func parseOutDType(_ s: String) throws -> DType {
    guard let d = DType(userSpelling: s), [.f32, .bf16, .f16, .f64].contains(d) else {
        throw ValidationError("--dtype must be f32, bf16, f16 or f64 (float32, bfloat16, float16, float64), got \(s)")
    }
    return d
}
