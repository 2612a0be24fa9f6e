import Foundation
import Tensors
import Transformer
import Tokenizers

/// MEND meta-training (Mitchell et al. 2022, MEND, §3): gradients accumulated over `accumulation` edits (each
/// /accumulation, a non-finite one skipped), global-norm clipping to `clip`, then Adam(lr) on
/// every editor parameter and edit lr, plus a second Adam(lrLR) step on the edit lrs.
public struct MendTrainingSettings: Sendable {
    public var steps = 100
    public var learningRate: Float = 1e-6
    public var editLRLearningRate: Float = 1e-4
    public var accumulation = 10
    public var clip: Float = 100
    public var cEdit: Float = 0.1
    public var cLoc: Float = 1.0
    /// Validate on the validation edits every this many steps (0: never; MEND validates on a
    /// held-out split and keeps the editor with the lowest validation loss, §4).
    public var validateEvery = 0
    /// Stop after this many validations without a better validation score (0: never stop early).
    public var patience = 0
    /// The prompts the outer edit loss is measured on.
    public var editLossOn: MendEditLossPrompts = .paraphrase
    /// What makes a validation the best one kept.
    public var keepBest: MendSelection = .loss
    public init() {}

    /// The part of the settings a checkpoint's best-editor record depends on.
    public var objectiveKey: String { "\(editLossOn.rawValue)/\(keepBest.rawValue)" }
}

/// How the editor kept at the end is chosen among the validations: the lowest outer loss (MEND's
/// code, `loss/total_edit_val`), or the highest edit success with the loss breaking ties (EasyEdit's
/// Llama settings early-stop on `edit/acc_val`).
public enum MendSelection: String, Sendable, CaseIterable {
    case loss
    case editSuccess = "edit-success"
}

/// One validation: the mean outer loss (and its two terms) over the validation edits, each made
/// by the current editor (frozen statistics) on the unedited model, and the edit success: the
/// mean teacher-forced token accuracy of the target after the edit prompt (MEND's ES, §5.1), with
/// the count of edits whose every target token is the argmax.
public struct MendValidationLog: Sendable {
    public var step: Int
    public var loss: Double
    public var editLoss: Double
    public var localityLoss: Double
    public var editSuccess: Double
    public var reached: Int
    public var count: Int
    /// The best validation so far (the editor kept).
    public var isBest: Bool
}

/// How a run ended: the steps done, whether it stopped early, the step of the editor kept (the
/// best validation's; the last step without validation).
public struct MendTrainingOutcome: Sendable {
    public var steps: Int
    public var stoppedEarly: Bool
    public var keptStep: Int
    public var bestLoss: Double?
    public var bestSuccess: Double?
    /// The resumed checkpoint's best-editor record was dropped: it was chosen under another
    /// `editLossOn` or `keepBest`.
    public var droppedResumedBest = false
}

public struct MendTrainingLog: Sendable {
    public var step: Int
    public var loss: Double
    public var editLoss: Double
    public var localityLoss: Double
}

/// Plain Adam over named flat arrays (β = 0.9, 0.999, ε = 1e-8).
struct FlatAdam {
    var m: [String: [Float]] = [:], v: [String: [Float]] = [:], t = 0
    mutating func step(_ name: String, _ p: inout [Float], _ g: [Float], lr: Float, count: Int) {
        if m[name] == nil { m[name] = [Float](repeating: 0, count: p.count); v[name] = m[name] }
        let c1 = 1 - pow(0.9, Float(count)), c2 = 1 - pow(0.999, Float(count))
        var mm = m[name]!, vv = v[name]!
        for i in 0..<p.count {
            mm[i] = 0.9 * mm[i] + 0.1 * g[i]
            vv[i] = 0.999 * vv[i] + 0.001 * g[i] * g[i]
            p[i] -= lr * (mm[i] / c1) / ((vv[i] / c2).squareRoot() + 1e-8)
        }
        m[name] = mm; v[name] = vv
    }
}

public enum MendTrainer {
    /// Trains `editor` on `requests` (cycled in order; each needs paraphrases or locality
    /// prompts to be useful). `log` receives one entry per optimizer step.
    public static func train(editor: MendEditor, model: TransformerModel, tokenizer: BPETokenizer, requests: [EditRequest],
                             settings: MendTrainingSettings, log: ((MendTrainingLog) -> Void)? = nil) throws {
        var state = MendTrainingState()
        _ = try train(editor: editor, model: model, tokenizer: tokenizer, requests: requests, validation: [], settings: settings,
                      state: &state, log: log)
    }

    /// Trains from `state` (a fresh one, or one read from a checkpoint) up to `settings.steps`.
    /// With validation edits and `validateEvery`, validates every that many steps and after the
    /// last, keeps a copy of the editor with the lowest validation loss, stops after `patience`
    /// validations without improvement, and leaves `editor` as that best copy on return.
    /// `checkpoint` is called after every validation (or every `validateEvery` steps without
    /// validation edits) and after the last step, with the state to save.
    public static func train(editor: MendEditor, model: TransformerModel, tokenizer: BPETokenizer, requests: [EditRequest],
                             validation: [EditRequest], settings: MendTrainingSettings, state: inout MendTrainingState,
                             log: ((MendTrainingLog) -> Void)? = nil, validationLog: ((MendValidationLog) -> Void)? = nil,
                             checkpoint: ((MendEditor, MendTrainingState) throws -> Void)? = nil) throws -> MendTrainingOutcome {
        guard !requests.isEmpty else { throw EditError.invalidRequest("no training edits") }
        guard settings.validateEvery >= 0, settings.patience >= 0 else { throw EditError.invalidRequest("validateEvery and patience must be ≥ 0") }
        let objective = MendObjective(cEdit: settings.cEdit, cLoc: settings.cLoc)
        let batches = try requests.map { try MendObjective.batches(model: model, tokenizer: tokenizer, request: $0, editLossOn: settings.editLossOn) }
        let validating = settings.validateEvery > 0 && !validation.isEmpty
        let validationBatches = validating ? try validation.map {
            try MendObjective.batches(model: model, tokenizer: tokenizer, request: $0, editLossOn: settings.editLossOn)
        } : []
        var dropped = false
        if let key = state.objectiveKey, key != settings.objectiveKey, state.best != nil || state.bestLoss != nil {
            // Scores measured under another objective or criterion do not compare with the new ones.
            state.best = nil; state.bestLoss = nil; state.bestSuccess = nil; state.sinceBest = 0; state.bestStep = 0
            dropped = true
        }
        state.objectiveKey = settings.objectiveKey
        let total = max(settings.steps, 1)
        var stoppedEarly = false
        while state.step < total {
            state.step += 1
            let step = state.step
            var acc: MendGradients? = nil
            var loss = 0.0, le = 0.0, ll = 0.0, used = 0
            for _ in 0..<max(settings.accumulation, 1) {
                let b = batches[state.next % batches.count]
                state.next += 1
                let r = try objective.lossAndGradients(editor: editor, model: model, batches: b, updateStatistics: true)
                guard r.loss.isFinite, r.gradients.flat().allSatisfy({ $0.1.allSatisfy(\.isFinite) }) else { continue }
                loss += r.loss; le += r.editLoss; ll += r.localityLoss; used += 1
                acc = acc.map { add($0, r.gradients) } ?? r.gradients
            }
            if var g = acc, used > 0 {
                let scale = 1 / Float(max(settings.accumulation, 1))
                g = map(g) { $0 * scale }
                let norm = Float(g.flat().reduce(0.0) { $0 + $1.1.reduce(0.0) { $0 + Double($1) * Double($1) } }.squareRoot())
                if norm > settings.clip { g = map(g) { $0 * settings.clip / norm } }
                for (key, t) in editor.transforms {
                    let gt = g.transforms[key]!
                    for j in 0..<2 {
                        state.adam.step("\(key).U\(j)", &t.U[j], gt.U[j], lr: settings.learningRate, count: step)
                        state.adam.step("\(key).V\(j)", &t.V[j], gt.V[j], lr: settings.learningRate, count: step)
                        state.adam.step("\(key).b\(j)", &t.b[j], gt.b[j], lr: settings.learningRate, count: step)
                        state.adam.step("\(key).s\(j)", &t.s[j], gt.s[j], lr: settings.learningRate, count: step)
                        state.adam.step("\(key).o\(j)", &t.o[j], gt.o[j], lr: settings.learningRate, count: step)
                    }
                }
                state.adam.step("edit_lrs", &editor.editLRs, g.editLRs, lr: settings.learningRate, count: step)
                state.lrAdam.step("edit_lrs", &editor.editLRs, g.editLRs, lr: settings.editLRLearningRate, count: step)
                log?(MendTrainingLog(step: step, loss: loss / Double(used), editLoss: le / Double(used), localityLoss: ll / Double(used)))
            }
            let due = settings.validateEvery > 0 && step % settings.validateEvery == 0
            if validating && (due || step == total) {
                var v = try validate(editor: editor, model: model, tokenizer: tokenizer, requests: validation, batches: validationBatches,
                                     objective: objective)
                v.step = step
                let better: Bool
                switch settings.keepBest {
                case .loss: better = state.bestLoss.map { v.loss < $0 } ?? true
                case .editSuccess:
                    let s = state.bestSuccess ?? -1
                    better = v.editSuccess > s || (v.editSuccess == s && v.loss < (state.bestLoss ?? .infinity))
                }
                if better {
                    state.bestLoss = v.loss; state.bestSuccess = v.editSuccess
                    state.bestStep = step; state.sinceBest = 0; state.best = editor.copy()
                    v.isBest = true
                } else {
                    state.sinceBest += 1
                }
                validationLog?(v)
                if settings.patience > 0 && state.sinceBest >= settings.patience { stoppedEarly = true }
            }
            if let checkpoint, due || step == total || stoppedEarly { try checkpoint(editor, state) }
            if stoppedEarly { break }
        }
        if validating, let best = state.best {
            editor.editLRs = best.editLRs
            editor.transforms = best.copy().transforms
        }
        return MendTrainingOutcome(steps: state.step, stoppedEarly: stoppedEarly, keptStep: validating ? state.bestStep : state.step,
                                   bestLoss: state.bestLoss, bestSuccess: state.bestSuccess, droppedResumedBest: dropped)
    }

    /// The validation scores of `editor` (frozen statistics) on `requests`; the model is left unedited.
    static func validate(editor: MendEditor, model: TransformerModel, tokenizer: BPETokenizer, requests: [EditRequest],
                         batches: [MendObjective.Batches], objective: MendObjective) throws -> MendValidationLog {
        let scorer = EditScorer(model: model, tokenizer: tokenizer)
        var loss = 0.0, le = 0.0, ll = 0.0, success = 0.0, reached = 0
        for (r, b) in zip(requests, batches) {
            let (p, t) = try scorer.encode(prompt: r.text, target: r.target)
            let o = try objective.loss(editor: editor, model: model, batches: b) { try scorer.targetScore(prompt: p, target: t).accuracy }
            loss += o.loss; le += o.editLoss; ll += o.localityLoss
            success += o.scored
            if o.scored == 1 { reached += 1 }
        }
        let n = Double(max(requests.count, 1))
        return MendValidationLog(step: 0, loss: loss / n, editLoss: le / n, localityLoss: ll / n, editSuccess: success / n,
                                 reached: reached, count: requests.count, isBest: false)
    }

    static func add(_ a: MendGradients, _ b: MendGradients) -> MendGradients {
        var out = a
        for k in a.transforms.keys {
            let x = b.transforms[k]!
            for j in 0..<2 {
                for i in 0..<out.transforms[k]!.U[j].count { out.transforms[k]!.U[j][i] += x.U[j][i] }
                for i in 0..<out.transforms[k]!.V[j].count { out.transforms[k]!.V[j][i] += x.V[j][i] }
                for i in 0..<out.transforms[k]!.b[j].count { out.transforms[k]!.b[j][i] += x.b[j][i] }
                for i in 0..<out.transforms[k]!.s[j].count { out.transforms[k]!.s[j][i] += x.s[j][i] }
                for i in 0..<out.transforms[k]!.o[j].count { out.transforms[k]!.o[j][i] += x.o[j][i] }
            }
        }
        for i in 0..<out.editLRs.count { out.editLRs[i] += b.editLRs[i] }
        return out
    }

    static func map(_ a: MendGradients, _ f: (Float) -> Float) -> MendGradients {
        var out = a
        for k in a.transforms.keys {
            var t = out.transforms[k]!
            t.U = t.U.map { $0.map(f) }; t.V = t.V.map { $0.map(f) }; t.b = t.b.map { $0.map(f) }
            t.s = t.s.map { $0.map(f) }; t.o = t.o.map { $0.map(f) }
            out.transforms[k] = t
        }
        out.editLRs = out.editLRs.map(f)
        return out
    }
}
