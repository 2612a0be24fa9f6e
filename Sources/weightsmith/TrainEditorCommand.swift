import ArgumentParser
import Checkpoints
import Editing
import Foundation
import Transformer

struct TrainEditorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-editor",
        abstract: "Meta-train a MEND editor on JSONL edit records and save it as safetensors.",
        discussion: """
        The editor transforms the rank-one gradient factors of the MLP matrices of the last --layers \
        blocks (identity init, running normalisation, IDMLP of rank --rank). Outer loss per edit: \
        c_edit · NLL of the target after the first rephrase prompt (else the prompt) + c_loc · \
        KL(unedited ‖ edited) of the next-token distributions at every position of the record's \
        locality prompts (each with the unedited model's two greedy tokens). Adam with gradient \
        accumulation and clipping; a second Adam on the edit learning rates. Prints the loss every \
        --log-every steps.
        """)

    @Argument(help: "A Hugging Face folder.") var model: String
    @Argument(help: "JSONL edit records (prompt/subject/target_new/rephrase_prompts/locality_prompts, CounterFact or zsRE).") var data: String
    @Option(name: .shortAndLong, help: "Output editor file (.safetensors).") var output: String
    @Option(name: .long, help: "Optimizer steps.") var steps = 100
    @Option(name: .long, help: "Edits per optimizer step (gradient accumulation).") var accumulation = 10
    @Option(name: .long, help: "Adam learning rate of the editor (MEND: 1e-6 on large models).") var lr: Float = 1e-6
    @Option(name: .long, help: "Adam learning rate of the edit learning rates.") var lrLr: Float = 1e-4
    @Option(name: .long, help: "Initial edit learning rate.") var editLr: Float = 1e-4
    @Option(name: .long, help: "Low-rank width of the IDMLP blocks (capped at d_in + d_out).") var rank = 1920
    @Option(name: .long, help: "Edit the MLP matrices of this many last blocks.") var layers = 3
    @Option(name: .long, help: "Weight of the edit loss.") var cEdit: Float = 0.1
    @Option(name: .long, help: "Weight of the locality loss.") var cLoc: Float = 1.0
    @Option(name: .long, help: "Print every N steps.") var logEvery = 10
    @Option(name: .long, help: "Seed (V init).") var seed: UInt64 = 0
    @Flag(name: .long, help: "Replace an existing OUT file.") var force = false
    @Flag(help: "Check the model, the records and OUT, print the training plan and what would be written, then stop (no training, nothing written).") var dryRun = false

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var nonFinite: NonFiniteOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        // The output path is checked (and locked) before the model is loaded or trained.
        let out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: [model, data].map { URL(fileURLWithPath: $0) },
                                           force: force, command: "train-editor", kind: .file)
        let loaded = try PretrainedModel(path: model)
        let requests = try EditRequest.readJSONL(URL(fileURLWithPath: data))
        let editor = try MendEditor(model: loaded.model, weights: MendEditor.defaultWeights(loaded.model, layers: layers),
                                    rank: rank, editLR: editLr, seed: seed)
        var s = MendTrainingSettings()
        s.steps = steps; s.accumulation = accumulation; s.learningRate = lr; s.editLRLearningRate = lrLr; s.cEdit = cEdit; s.cLoc = cLoc
        if dryRun {
            // The trainer's own precondition, checked here so a dry run fails where the run would.
            guard !requests.isEmpty else { throw ValidationError("\(data): no training edits") }
            // The tensors MendEditor.writeFile stores, all f32: U, V, b, s, o twice per transform, its
            // running mean and m2, and the edit learning rates.
            let scalars = editor.transforms.values.reduce(editor.editLRs.count) { n, t in
                n + [t.U, t.V, t.b, t.s, t.o].reduce(2 * t.D) { $0 + $1.reduce(0) { $0 + $1.count } }
            }
            let tensors = 12 * editor.transforms.count + 1
            print("MEND editor for \(editor.weights.count) matrices (\(editor.weights.joined(separator: ", "))), \(editor.transforms.count) shared transforms of rank \(rank)")
            print("would train \(steps) steps of \(accumulation) edits on \(requests.count) training edits of \(data) (lr \(lr), edit lr \(editLr), c_edit \(cEdit), c_loc \(cLoc))")
            print("would write \(output): a MEND editor, \(tensors) f32 tensors, \(ByteSize.format(scalars * 4))")
            return
        }
        if !quiet { print("MEND editor for \(editor.weights.count) matrices, \(editor.transforms.count) shared transforms; \(requests.count) training edits") }
        let t0 = Date()
        try MendTrainer.train(editor: editor, model: loaded.model, tokenizer: loaded.tokenizer, requests: requests, settings: s) { log in
            if !quiet, log.step % max(logEvery, 1) == 0 || log.step == 1 || log.step == steps {
                let elapsed = Date().timeIntervalSince(t0)
                let eta = elapsed / Double(log.step) * Double(steps - log.step)
                print(String(format: "step %4d/%d  loss %.4f  edit NLL %.4f  locality KL %.4f  (%.1f s, ETA %@)", log.step, steps, log.loss, log.editLoss,
                             log.localityLoss, elapsed, FinetuneCommand.clock(eta)))
            }
        }
        try out.write { staging in try editor.writeFile(to: staging, allowNonFinite: nonFinite.allowNonFinite) }
        print("edit lrs: " + editor.editLRs.map { String(format: "%.3g", $0) }.joined(separator: " "))
        print("wrote \(output)")
    }
}
