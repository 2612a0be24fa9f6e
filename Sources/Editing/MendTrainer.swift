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
    public init() {}
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
        guard !requests.isEmpty else { throw EditError.invalidRequest("no training edits") }
        let objective = MendObjective(cEdit: settings.cEdit, cLoc: settings.cLoc)
        let batches = try requests.map { try MendObjective.batches(model: model, tokenizer: tokenizer, request: $0) }
        var adam = FlatAdam(), lrAdam = FlatAdam()
        var next = 0
        for step in 1...max(settings.steps, 1) {
            var acc: MendGradients? = nil
            var loss = 0.0, le = 0.0, ll = 0.0, used = 0
            for _ in 0..<max(settings.accumulation, 1) {
                let b = batches[next % batches.count]
                next += 1
                let r = try objective.lossAndGradients(editor: editor, model: model, batches: b, updateStatistics: true)
                guard r.loss.isFinite, r.gradients.flat().allSatisfy({ $0.1.allSatisfy(\.isFinite) }) else { continue }
                loss += r.loss; le += r.editLoss; ll += r.localityLoss; used += 1
                acc = acc.map { add($0, r.gradients) } ?? r.gradients
            }
            guard var g = acc, used > 0 else { continue }
            let scale = 1 / Float(max(settings.accumulation, 1))
            g = map(g) { $0 * scale }
            let norm = Float(g.flat().reduce(0.0) { $0 + $1.1.reduce(0.0) { $0 + Double($1) * Double($1) } }.squareRoot())
            if norm > settings.clip { g = map(g) { $0 * settings.clip / norm } }
            for (key, t) in editor.transforms {
                let gt = g.transforms[key]!
                for j in 0..<2 {
                    adam.step("\(key).U\(j)", &t.U[j], gt.U[j], lr: settings.learningRate, count: step)
                    adam.step("\(key).V\(j)", &t.V[j], gt.V[j], lr: settings.learningRate, count: step)
                    adam.step("\(key).b\(j)", &t.b[j], gt.b[j], lr: settings.learningRate, count: step)
                    adam.step("\(key).s\(j)", &t.s[j], gt.s[j], lr: settings.learningRate, count: step)
                    adam.step("\(key).o\(j)", &t.o[j], gt.o[j], lr: settings.learningRate, count: step)
                }
            }
            adam.step("edit_lrs", &editor.editLRs, g.editLRs, lr: settings.learningRate, count: step)
            lrAdam.step("edit_lrs", &editor.editLRs, g.editLRs, lr: settings.editLRLearningRate, count: step)
            log?(MendTrainingLog(step: step, loss: loss / Double(used), editLoss: le / Double(used), localityLoss: ll / Double(used)))
        }
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
