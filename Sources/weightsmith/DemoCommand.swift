import ArgumentParser
import Foundation

/// The embedded-default walkthrough: each step is a real weightsmith command, printed before it
/// runs, on the small checkpoints committed under `fixtures/`.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run weightsmith's main jobs on the small committed checkpoints in fixtures/ and print the results.",
        discussion: "Run it from the repository root (or pass --fixtures). Outputs go to a fresh temporary folder, removed at the end unless --keep is given."
    )

    @Option(help: "The fixtures folder of the repository.")
    var fixtures: String = "fixtures"

    @Option(help: "Where to write outputs (default: a new temporary folder).")
    var output: String?

    @Flag(help: "Keep the outputs folder.")
    var keep = false

    func run() throws {
        let fm = FileManager.default
        guard fm.fileExists(atPath: fixtures + "/demo/base/model.safetensors") else {
            FileHandle.standardError.write(Data("error: \(fixtures)/demo/base/model.safetensors not found; run the demo from the repository root or pass --fixtures\n".utf8))
            throw ExitCode(1)
        }
        let out = output ?? (NSTemporaryDirectory() + "weightsmith-demo-\(getpid())")
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { if !keep && output == nil { try? fm.removeItem(atPath: out) } }

        var steps: [(title: String, args: [String])] = [
            ("What is in the small base checkpoint", ["inspect", "\(fixtures)/demo/base"]),
            ("Convert it to bfloat16, in two shards", ["convert", "\(fixtures)/demo/base", "\(out)/base-bf16", "--dtype", "bf16", "--shard-size", "200KB"]),
            ("Read the sharded copy back, with statistics", ["inspect", "\(out)/base-bf16", "--stats"]),
        ]
        steps += demoMergeSteps(fixtures: fixtures, out: out)
        steps.append(("Diagnose a LoRA against a full fine-tune of the same task",
                      ["compare", "--base", "\(fixtures)/demo/base", "--lora", "\(fixtures)/demo/lora-a", "--full", "\(fixtures)/demo/full-a"]))

        for (i, step) in steps.enumerated() {
            print("\n== \(i + 1)/\(steps.count) \(step.title)")
            print("$ weightsmith " + step.args.map(shellQuoted).joined(separator: " ").replacingOccurrences(of: out, with: "$OUT"))
            var command = try Weightsmith.parseAsRoot(step.args)
            try command.run()
        }
        print("\nDemo finished: \(steps.count) steps.\(keep || output != nil ? " Outputs in \(out)." : "")")
    }
}

/// Merge steps of the demo, present once the merge fixtures exist.
func demoMergeSteps(fixtures: String, out: String) -> [(title: String, args: [String])] {
    let m = fixtures + "/merge"
    guard FileManager.default.fileExists(atPath: m + "/base/model.safetensors") else { return [] }
    let fts = ["ft-a", "ft-b", "ft-c"].map { "\(m)/\($0)" }
    return [
        ("Plan a TIES merge of three fine-tunes (copy, add, upper-case) onto their base",
         ["merge", "--method", "ties", "--base", "\(m)/base"] + fts + ["--weight", "1", "--density", "0.5", "-o", "\(out)/merged", "--dry-run"]),
        ("Run it: streamed tensor by tensor into a Hugging Face folder with a model card",
         ["merge", "--method", "ties", "--base", "\(m)/base"] + fts + ["--weight", "1", "--density", "0.5", "-o", "\(out)/merged", "--quiet"]),
        ("Inspect the merged checkpoint", ["inspect", "\(out)/merged"]),
        ("Task-vector arithmetic: base + 0.8·copy + 0.8·add − 0.3·upper",
         ["compose", "--base", "\(m)/base", "0.8*copy + 0.8*add - 0.3*upper", "--model", "copy=\(fts[0])", "--model", "add=\(fts[1])",
          "--model", "upper=\(fts[2])", "-o", "\(out)/composed", "--quiet"]),
    ]
}

func shellQuoted(_ s: String) -> String {
    let safe = s.allSatisfy { $0.isLetter || $0.isNumber || "-_./=,:@%+".contains($0) }
    return safe ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
