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
        c_edit · NLL of the target after the first rephrase prompt (else the prompt; MEND's choice, \
        --edit-loss-on paraphrase), after the edit prompt itself (EasyEdit's, --edit-loss-on prompt) \
        or the mean of both (--edit-loss-on both) + c_loc · \
        KL(unedited ‖ edited) of the next-token distributions at every position of the record's \
        locality prompts (each with the unedited model's two greedy tokens). Adam with gradient \
        accumulation and clipping; a second Adam on the edit learning rates. Prints the loss every \
        --log-every steps. Records with a "split" field (weightsmith facts make): training uses \
        --split (default train) and validation --validation-split (default validation): every \
        --validate-every steps the editor edits each validation record and the mean outer loss and \
        edit success are printed; the editor with the lowest validation loss (--keep-best loss) or \
        the highest edit success (--keep-best edit-success, ties to the lower loss) is the one \
        written, and training stops after --patience validations without improvement. --checkpoint FILE \
        saves the run after every validation and at the end; --resume FILE continues one.
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
    @Option(name: .long, help: "Measure the edit loss on: paraphrase (MEND; the prompt when a record has none), prompt (EasyEdit), both (their mean).")
    var editLossOn: MendEditLossPrompts = .paraphrase
    @Option(name: .long, help: "Keep the editor of the validation with: loss (the lowest outer loss, MEND) or edit-success (the highest edit success).")
    var keepBest: MendSelection = .loss
    @Option(name: .long, help: "Print every N steps.") var logEvery = 10
    @Option(name: .long, help: "Seed (V init).") var seed: UInt64 = 0
    @Option(name: .long, help: "Train on the records of this split (default: train when the records have splits, else all).") var split: String?
    @Option(name: .long, help: "Validate on the records of this split (default: validation, when present).") var validationSplit: String?
    @Option(name: .long, help: "Validate every N steps (0: never; default 10 when there are validation records).") var validateEvery: Int?
    @Option(name: .long, help: "Stop after this many validations without a better one by --keep-best (0: never).") var patience = 5
    @Option(name: .long, help: "Save the training state (editor, best editor, Adam moments, counters) to FILE after every validation and at the end.") var checkpoint: String?
    @Option(name: .long, help: "Continue the run saved in this checkpoint (same model, data, --layers and --rank).") var resume: String?
    @Flag(name: .long, help: "Replace an existing OUT file (and --checkpoint file).") var force = false
    @Flag(help: "Check the model, the records and OUT, print the training plan and what would be written, then stop (no training, nothing written).") var dryRun = false

    @OptionGroup var threading: ThreadsOption
    @OptionGroup var nonFinite: NonFiniteOption
    @OptionGroup var quietOption: QuietOption
    var quiet: Bool { quietOption.quiet }

    func run() throws {
        try threading.apply()
        if let v = validateEvery, v < 0 { throw ValidationError("--validate-every must be ≥ 0, got \(v)") }
        if patience < 0 { throw ValidationError("--patience must be ≥ 0, got \(patience)") }
        if steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
        let inputs = [model, data].map { URL(fileURLWithPath: $0) }
        // The output paths are checked (and locked) before the model is loaded or trained.
        let out = try OutputFolder.prepare(URL(fileURLWithPath: output), inputs: inputs + (resume.map { [URL(fileURLWithPath: $0)] } ?? []),
                                           force: force, command: "train-editor", kind: .file)
        let checkpointURL = checkpoint.map { URL(fileURLWithPath: $0) }
        var checkpointFolder: OutputFolder? = nil
        if let checkpointURL {
            guard checkpointURL.standardizedFileURL.path != URL(fileURLWithPath: output).standardizedFileURL.path else {
                throw ValidationError("--checkpoint and --output must be different files")
            }
            // Continuing into the checkpoint it resumes from replaces that file; any other existing file needs --force.
            let same = resume.map { URL(fileURLWithPath: $0).standardizedFileURL.path == checkpointURL.standardizedFileURL.path } ?? false
            checkpointFolder = try OutputFolder.prepare(checkpointURL, inputs: inputs, force: force || same, command: "train-editor", kind: .file)
        }
        let loaded = try PretrainedModel(path: model)
        let all = try EditRequest.readJSONL(URL(fileURLWithPath: data))
        let hasSplits = all.contains { $0.split != nil }
        let trainSplit = split ?? (hasSplits ? "train" : nil)
        let requests = trainSplit.map { s in all.filter { $0.split == s } } ?? all
        guard !requests.isEmpty else { throw ValidationError("\(data): no training edits\(trainSplit.map { " with split \($0)" } ?? "")") }
        let valSplit = validationSplit ?? (hasSplits ? "validation" : nil)
        let validation = valSplit.map { s in all.filter { $0.split == s } } ?? []
        if validationSplit != nil && validation.isEmpty { throw ValidationError("\(data): no records with split \(valSplit!) for validation") }
        if let trainSplit, trainSplit == valSplit { throw ValidationError("--split and --validation-split are both \(trainSplit)") }
        let every = validateEvery ?? (validation.isEmpty ? 0 : 10)
        var editor = try MendEditor(model: loaded.model, weights: MendEditor.defaultWeights(loaded.model, layers: layers),
                                    rank: rank, editLR: editLr, seed: seed)
        var s = MendTrainingSettings()
        s.steps = steps; s.accumulation = accumulation; s.learningRate = lr; s.editLRLearningRate = lrLr; s.cEdit = cEdit; s.cLoc = cLoc
        s.validateEvery = every; s.patience = validation.isEmpty ? 0 : patience
        s.editLossOn = editLossOn; s.keepBest = keepBest
        var state = MendTrainingState()
        if let resume {
            (editor, state) = try MendCheckpoint.read(URL(fileURLWithPath: resume), fresh: editor, requests: requests)
            guard state.step < steps else {
                throw ValidationError("\(resume) has already run \(state.step) steps; give --steps above that to continue")
            }
        }
        if dryRun {
            // The tensors MendEditor.writeFile stores, all f32: U, V, b, s, o twice per transform, its
            // running mean and m2, and the edit learning rates.
            let scalars = editor.transforms.values.reduce(editor.editLRs.count) { n, t in
                n + [t.U, t.V, t.b, t.s, t.o].reduce(2 * t.D) { $0 + $1.reduce(0) { $0 + $1.count } }
            }
            let tensors = 12 * editor.transforms.count + 1
            print("MEND editor for \(editor.weights.count) matrices (\(editor.weights.joined(separator: ", "))), \(editor.transforms.count) shared transforms of rank \(rank)")
            print("would train \(steps) steps of \(accumulation) edits on \(requests.count) training edits of \(data)\(trainSplit.map { " (split \($0))" } ?? "") (lr \(lr), edit lr \(editLr), c_edit \(cEdit), c_loc \(cLoc), edit loss on \(editLossOn.rawValue))"
                  + (state.step > 0 ? ", from step \(state.step) of \(resume!)" : ""))
            if every > 0 && !validation.isEmpty {
                print("would validate every \(every) steps on \(validation.count) records (split \(valSplit!)), keeping the best by \(keepBest.rawValue), stopping after \(s.patience) without improvement")
                if let key = state.objectiveKey, key != s.objectiveKey, state.bestLoss != nil {
                    print("would drop the checkpoint's best editor (step \(state.bestStep)): it was chosen under \(key), this run uses \(s.objectiveKey)")
                }
            }
            print("would write \(output): a MEND editor, \(tensors) f32 tensors, \(ByteSize.format(scalars * 4))")
            if let checkpoint { print("would write \(checkpoint): the training state, after every validation and at the end") }
            return
        }
        if !quiet {
            print("MEND editor for \(editor.weights.count) matrices, \(editor.transforms.count) shared transforms; \(requests.count) training edits"
                  + (validation.isEmpty || every == 0 ? "" : ", \(validation.count) validation edits (every \(every) steps)")
                  + (state.step > 0 ? "; resuming at step \(state.step)" : ""))
        }
        if !quiet, let key = state.objectiveKey, key != s.objectiveKey, state.bestLoss != nil {
            print("note: the checkpoint's best editor (step \(state.bestStep)) was chosen under \(key) (edit loss on / kept by); this run uses \(s.objectiveKey), so validation starts a new record")
        }
        let t0 = Date(), first = state.step
        let outcome = try MendTrainer.train(editor: editor, model: loaded.model, tokenizer: loaded.tokenizer, requests: requests,
                                            validation: validation, settings: s, state: &state, log: { log in
            if !quiet, log.step % max(logEvery, 1) == 0 || log.step == first + 1 || log.step == steps {
                let elapsed = Date().timeIntervalSince(t0)
                let eta = elapsed / Double(log.step - first) * Double(steps - log.step)
                print(String(format: "step %4d/%d  loss %.4f  edit NLL %.4f  locality KL %.4f  (%.1f s, ETA %@)", log.step, steps, log.loss, log.editLoss,
                             log.localityLoss, elapsed, FinetuneCommand.clock(eta)))
            }
        }, validationLog: { v in
            guard !quiet else { return }
            print(String(format: "validation at step %d: loss %.4f  edit NLL %.4f  locality KL %.4f  edit success %.3f (%d/%d reach the target)%@",
                         v.step, v.loss, v.editLoss, v.localityLoss, v.editSuccess, v.reached, v.count, v.isBest ? "  best so far" : ""))
        }, checkpoint: checkpointFolder == nil ? nil : { e, st in
            let folder = try checkpointFolder ?? OutputFolder.prepare(checkpointURL!, inputs: inputs, force: true, command: "train-editor", kind: .file)
            checkpointFolder = nil
            try folder.write { staging in try MendCheckpoint.write(to: staging, editor: e, state: st, requests: requests) }
        })
        try out.write { staging in try editor.writeFile(to: staging, allowNonFinite: nonFinite.allowNonFinite) }
        let seconds = Date().timeIntervalSince(t0)
        print("trained \(outcome.steps - first) steps in \(String(format: "%.1f", seconds)) s" + (first > 0 ? " (steps \(first + 1)-\(outcome.steps))" : "")
              + (outcome.stoppedEarly ? ", stopped early" : "")
              + (s.validateEvery > 0 && !validation.isEmpty ? String(format: "; kept the editor of step %d (validation loss %.4f, edit success %.3f)", outcome.keptStep, outcome.bestLoss ?? .nan, outcome.bestSuccess ?? .nan) : ""))
        print("edit lrs: " + editor.editLRs.map { String(format: "%.3g", $0) }.joined(separator: " "))
        if let checkpoint { print("wrote \(checkpoint) (training state)") }
        print("wrote \(output)")
    }
}
