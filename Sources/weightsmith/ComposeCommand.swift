import ArgumentParser
import Foundation
import Merging

struct ComposeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compose",
        abstract: "Task arithmetic from an expression: BASE + Σ c·(model − BASE).",
        discussion: """
        Example: weightsmith compose --base base "0.7*math + 0.5*code - 0.3*toxic" \\
                   --model math=ft-math --model code=tv-code --model toxic=ft-toxic -o out
        A name refers to a fine-tuned checkpoint (its task vector is taken against --base) or to a
        task vector written by `weightsmith task-vector extract`. Put spaces around a minus sign:
        `ft-a` is a name.
        """
    )

    @Option(help: "The base model.") var base: String
    @Argument(help: "Expression such as \"0.7*math + 0.5*code - 0.3*toxic\".") var expression: String
    @Option(name: .customLong("model"), help: "NAME=PATH for every name in the expression.") var models: [String] = []
    @Option(name: [.short, .customLong("output")], help: "Output folder.") var output: String?
    @Option(help: "Output dtype: float32, bfloat16, float16 (default: the base's).") var outDtype: String?
    @Flag(help: "Print the plan, then stop.") var dryRun = false
    @Flag(help: "Replace the output folder if it exists.") var force = false
    @Flag(help: "Skip the SHA-256 of the inputs in the model card.") var noHash = false
    @Flag(help: "No progress output.") var quiet = false

    func run() throws {
        var table: [String: String] = [:]
        for m in models {
            let parts = m.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw ValidationError("--model expects NAME=PATH, got \(m)") }
            guard table[parts[0]] == nil else { throw ValidationError("--model \(parts[0]) given twice") }
            table[parts[0]] = parts[1]
        }
        let plan = try TaskVectors.composePlan(base: base, expression: expression, models: table, outDType: try outDtype.map(parseOutDType))
        if dryRun {
            print(plan.describe(), terminator: "")
            if !plan.problems.isEmpty { throw MergeError.preflight(plan.problems) }
            return
        }
        guard let output else { throw ValidationError("missing -o OUT_DIR") }
        let report = try MergeExecutor.run(plan, to: URL(fileURLWithPath: output),
                                           options: { var o = ExecutionOptions(hashInputs: !noHash, progress: !quiet, overwrite: force); o.command = "compose"; return o }())
        print("wrote \(report.outputDirectory.path): \(report.files.joined(separator: ", "))")
    }
}
