import ArgumentParser
import Foundation
import Transformer

/// The embedded-default walkthrough: each step is a real weightsmith command, printed before it
/// runs, on the small checkpoints committed under `fixtures/family/` (a 0.8M-parameter Llama
/// pre-trained on templated facts, three full fine-tunes on three tasks, and a LoRA of one task;
/// made by `scripts/make_fixture_family.sh` with `weightsmith finetune`).
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
        let family = "\(fixtures)/family"
        guard fm.fileExists(atPath: "\(family)/base/model.safetensors") else {
            FileHandle.standardError.write(Data("error: \(family)/base/model.safetensors not found; run the demo from the repository root or pass --fixtures\n".utf8))
            throw ExitCode(1)
        }
        let out = output ?? (NSTemporaryDirectory() + "weightsmith-demo-\(getpid())")
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { if !keep && output == nil { try? fm.removeItem(atPath: out) } }

        let tasks = ["capital", "profession", "continent"]
        let fineTunes = tasks.map { "\(family)/\($0)-full" }
        var steps: [DemoStep] = [
            .command("What is in the base checkpoint", ["inspect", "\(family)/base"]),
            .command("Convert it to bfloat16 in 1 MB shards (output loads in Python safetensors and transformers)",
                     ["convert", "\(family)/base", "\(out)/base-bf16", "--dtype", "bf16", "--shard-size", "1MB"]),
            .command("A uniform soup of the three full fine-tunes",
                     ["merge", "--method", "linear"] + fineTunes + ["--weight", "1", "-o", "\(out)/soup", "--quiet", "--no-hash"]),
            .command("TIES: trim each task vector to its top 50%, elect signs, add to the base",
                     ["merge", "--method", "ties", "--base", "\(family)/base"] + fineTunes
                        + ["--weight", "1", "--density", "0.5", "-o", "\(out)/ties", "--quiet", "--no-hash"]),
            .command("Task arithmetic from an expression",
                     ["compose", "--base", "\(family)/base", "capital + profession + continent"]
                        + tasks.map { "--model=\($0)=\(family)/\($0)-full" } + ["-o", "\(out)/sum", "--quiet"]),
            .scoreboard("Greedy exact match on each task's held-out questions",
                        models: [("base", "\(family)/base")] + tasks.map { ("\($0)-full", "\(family)/\($0)-full") }
                            + [("soup", "\(out)/soup"), ("ties", "\(out)/ties"), ("sum", "\(out)/sum")],
                        tasks: tasks.map { ($0, "\(family)/data/\($0)-heldout.jsonl") }),
            .command("A greedy soup (Wortsman et al. 2022): ingredients ranked by their own held-out exact match, each kept only if the soup does not get worse",
                     ["soup"] + fineTunes + tasks.flatMap { ["--held-out", "\(family)/data/\($0)-heldout.jsonl"] }
                        + ["--greedy", "--metric", "em", "--base", "\(family)/base", "--no-cache", "--quiet", "-o", "\(out)/greedy-soup"]),
            .command("Graft the fine-tune's skill onto the base (Panigrahi et al. 2023): the top-k changed weights by magnitude, then a trained mask",
                     ["graft", "--base", "\(family)/base", "--tuned", "\(family)/continent-full", "--sparsity", "0.01,0.1",
                      "--held-out", "\(family)/data/continent-heldout.jsonl", "--train", "\(family)/data/continent-train.jsonl",
                      "--steps", "10", "-o", "\(out)/graft"]),
            .command("Diagnose a LoRA against a full fine-tune of the same task",
                     ["compare", "--base", "\(family)/base", "--lora", "\(family)/capital-lora", "--full", "\(family)/capital-full", "--no-cache"]),
        ]
        steps += demoEditSteps(family: family, out: out)

        for (i, step) in steps.enumerated() {
            print("\n== \(i + 1)/\(steps.count) \(step.title)")
            switch step {
            case let .command(_, args):
                print("> weightsmith " + args.map(shellQuoted).joined(separator: " ").replacingOccurrences(of: out, with: "$OUT"))
                // Some commands stream through FileHandle (unbuffered): keep the order of the output.
                fflush(nil)
                var command = try Weightsmith.parseAsRoot(args)
                try command.run()
                fflush(nil)
            case let .scoreboard(_, models, tasks):
                try printScoreboard(models: models, tasks: tasks, out: out)
            }
        }
        print("\nDemo finished: \(steps.count) steps.\(keep || output != nil ? " Outputs in \(out)." : "")")
    }
}

enum DemoStep {
    case command(String, [String])
    case scoreboard(String, models: [(String, String)], tasks: [(String, String)])

    var title: String {
        switch self {
        case let .command(t, _), let .scoreboard(t, _, _): return t
        }
    }
}

/// A single-fact edit with ROME (no training), its before/after metrics, and the edited model's answers.
func demoEditSteps(family: String, out: String) -> [DemoStep] {
    let fixtures = (family as NSString).deletingLastPathComponent
    return [
        .command("Edit one fact with ROME (rank-one update of one MLP matrix, key covariance from the corpus): France's capital becomes Rome",
                 ["edit", "\(family)/base", "--prompt", "The capital of France is", "--target", " Rome", "--method", "rome",
                  "--layer", "0", "--steps", "60", "--paraphrase", "France has its capital in",
                  "--stats-corpus", "\(family)/data/corpus.txt", "--stats-cache", "\(out)/rome-stats",
                  "--locality-prompts", "\(fixtures)/edits/locality.txt", "-o", "\(out)/edited"]),
        .command("The edited model answers with the new fact", ["generate", "\(out)/edited", "The capital of France is", "--max-tokens", "3"]),
        .command("and keeps an unrelated one", ["generate", "\(out)/edited", "The capital of Spain is", "--max-tokens", "4"]),
    ]
}

/// Exact match (and mean NLL of the completion) of each model on each task, as a table.
func printScoreboard(models: [(String, String)], tasks: [(String, String)], out: String) throws {
    print("(the same as `weightsmith eval MODEL fixtures/family/data/TASK-heldout.jsonl` for each pair)")
    let data = try tasks.map { try PromptCompletion.readJSONL(URL(fileURLWithPath: $0.1)) }
    let width = max(8, models.map(\.0.count).max() ?? 0)
    var header = "model".padding(toLength: width, withPad: " ", startingAt: 0)
    for (t, _) in tasks { header += "  " + "\(t) EM / NLL".padding(toLength: 20, withPad: " ", startingAt: 0) }
    print(header)
    for (name, path) in models {
        let loaded = try PretrainedModel(path: path)
        let evaluator = Evaluator(model: loaded.model, tokenizer: loaded.tokenizer)
        var line = name.padding(toLength: width, withPad: " ", startingAt: 0)
        for examples in data {
            let r = try evaluator.evaluate(examples)
            let cell = String(format: "%5.0f%% / %.2f", 100 * (r.exactMatch ?? 0), r.meanNLL)
            line += "  " + cell.padding(toLength: 20, withPad: " ", startingAt: 0)
        }
        print(line.trimmingCharacters(in: .whitespaces))
    }
}

func shellQuoted(_ s: String) -> String {
    let safe = s.allSatisfy { $0.isLetter || $0.isNumber || "-_./=,:@%+".contains($0) }
    return safe ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
