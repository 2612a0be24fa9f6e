import Foundation
import Tensors
import Transformer
import XCTest
@testable import Editing

final class MendTests: XCTestCase {
    /// Identity init: the IDMLP returns its input bit-exactly.
    func testIdentityInit() {
        let t = GradientTransform(inFeatures: 4, outFeatures: 6, rank: 3, modes: 2, seed: 1)
        var rng = SeededRandom(seed: 2)
        let z = rng.normalFloats(5 * 10)
        XCTAssertEqual(t.forward(z, rows: 5, mode: 1).z[2], z)
    }

    /// Backward of the IDMLP vs central finite differences of L = Σ w ⊙ z₂ for every parameter
    /// block, and ∂U ≠ 0 at the identity init (clamp semantics).
    func testTransformBackwardFiniteDifferences() {
        let t = GradientTransform(inFeatures: 4, outFeatures: 6, rank: 3, modes: 2, seed: 3)
        var rng = SeededRandom(seed: 4)
        let n = 5, D = 10
        let z = rng.normalFloats(n * D), w = rng.normalFloats(n * D)
        // At init: U = 0, yet ∂U must not vanish.
        var g0 = t.zeroGradients()
        t.backward(t.forward(z, rows: n, mode: 1), dz2: w, into: &g0)
        XCTAssertGreaterThan(g0.U[0].map(abs).max()!, 1e-3)
        XCTAssertGreaterThan(g0.U[1].map(abs).max()!, 1e-3)
        // Away from the kinks.
        for j in 0..<2 {
            t.U[j] = rng.normalFloats(D * 3, std: 0.5); t.b[j] = rng.normalFloats(D, std: 0.5)
            t.s[j] = rng.normalFloats(2 * D, std: 0.5).map { $0 + 1 }; t.o[j] = rng.normalFloats(2 * D, std: 0.5)
        }
        func loss() -> Double {
            let z2 = t.forward(z, rows: n, mode: 1).z[2]
            return zip(z2, w).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        var g = t.zeroGradients()
        t.backward(t.forward(z, rows: n, mode: 1), dz2: w, into: &g)
        XCTAssertEqual(g.s[0][0..<D].reduce(0, +), 0, "mode 0 received gradient from mode-1 rows")
        let eps: Float = 1e-2
        var checked = 0
        func check(_ name: String, _ analytic: [Float], _ param: ReferenceWritableKeyPath<GradientTransform, [[Float]]>, _ j: Int) {
            for i in stride(from: 0, to: analytic.count, by: 3) {
                let x = t[keyPath: param][j][i]
                t[keyPath: param][j][i] = x + eps; let lp = loss()
                t[keyPath: param][j][i] = x - eps; let lm = loss()
                t[keyPath: param][j][i] = x
                let fd = (lp - lm) / Double(2 * eps)
                XCTAssertEqual(Double(analytic[i]), fd, accuracy: 2e-2 * max(1, abs(fd)), "\(name)\(j)[\(i)]")
                checked += 1
            }
        }
        for j in 0..<2 {
            check("U", g.U[j], \.U, j); check("V", g.V[j], \.V, j); check("b", g.b[j], \.b, j)
            check("s", g.s[j], \.s, j); check("o", g.o[j], \.o, j)
        }
        XCTAssertGreaterThan(checked, 50)
    }

    /// Welford/Chan batched statistics equal the two-pass mean and unbiased std.
    func testRunningStatistics() throws {
        let t = GradientTransform(inFeatures: 2, outFeatures: 1, rank: 2, modes: 1)
        var rng = SeededRandom(seed: 5)
        let a = rng.normalFloats(4 * 3), b = rng.normalFloats(7 * 3).map { $0 * 3 + 1 }
        t.updateStatistics(a, rows: 4); t.updateStatistics(b, rows: 7)
        let all = a + b
        for j in 0..<3 {
            let col = stride(from: j, to: all.count, by: 3).map { Double(all[$0]) }
            let mu = col.reduce(0, +) / 11
            let sd = (col.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / 10).squareRoot()
            XCTAssertEqual(t.mean[j], mu, accuracy: 1e-6)
            XCTAssertEqual((t.m2[j] / (t.count - 1)).squareRoot(), sd, accuracy: 1e-6)
        }
        let z = try t.normalise(b, rows: 7)
        XCTAssertEqual(Double(z[0]), (Double(b[0]) - t.mean[0]) / ((t.m2[0] / 10).squareRoot() + 1e-7), accuracy: 1e-5)
    }

    /// The whole hand-written meta-gradient (model backward → factorised edit backward → editor
    /// backward) vs finite differences of the outer loss on the fixture model.
    func testMetaGradientFiniteDifferences() throws {
        let pm = try familyBase()
        let m = pm.model
        let editor = try MendEditor(model: m, weights: ["model.layers.3.mlp.down_proj.weight", "model.layers.3.mlp.up_proj.weight"], rank: 8, editLR: 1e-3, seed: 7)
        let request = EditRequest(prompt: "The capital of France is", target: " Rome", paraphrases: ["France has its capital in"],
                                  localityPrompts: ["The capital of Spain is", "Norway is in"])
        let batches = try MendObjective.batches(model: m, tokenizer: pm.tokenizer, request: request)
        let objective = MendObjective()
        _ = try objective.lossAndGradients(editor: editor, model: m, batches: batches, updateStatistics: true)
        var rng = SeededRandom(seed: 8)
        for t in editor.transforms.values { for j in 0..<2 {
            t.U[j] = rng.normalFloats(t.U[j].count, std: 0.1); t.o[j] = rng.normalFloats(t.o[j].count, std: 0.1)
        } }
        let r = try objective.lossAndGradients(editor: editor, model: m, batches: batches, updateStatistics: false)
        XCTAssertGreaterThan(r.editLoss, 0)
        func loss() throws -> Double { try objective.lossAndGradients(editor: editor, model: m, batches: batches, updateStatistics: false).loss }
        let key = "352x128"
        let t = editor.transforms[key]!
        let ga = r.gradients.transforms[key]!
        var compared = 0
        func check(_ name: String, _ analytic: Float, _ get: () -> Float, _ set: (Float) -> Void, eps: Float) throws {
            let x = get()
            set(x + eps); let lp = try loss()
            set(x - eps); let lm = try loss()
            set(x)
            let fd = (lp - lm) / Double(2 * eps)
            print("meta-gradient \(name): analytic \(analytic) fd \(fd)")
            XCTAssertEqual(Double(analytic), fd, accuracy: 0.05 * abs(fd) + 2e-4, name)
            compared += 1
        }
        // The largest-gradient entries of a few blocks, and the edit lrs.
        for (name, arr, kp) in [("o1", ga.o[1], \GradientTransform.o), ("U1", ga.U[1], \GradientTransform.U), ("b0", ga.b[0], \GradientTransform.b)] as [(String, [Float], ReferenceWritableKeyPath<GradientTransform, [[Float]]>)] {
            let j = name.hasSuffix("1") ? 1 : 0
            let idx = arr.indices.max { abs(arr[$0]) < abs(arr[$1]) }!
            try check("\(name)[\(idx)]", arr[idx], { t[keyPath: kp][j][idx] }, { t[keyPath: kp][j][idx] = $0 }, eps: 1e-2)
        }
        for i in 0..<editor.weights.count {
            try check("edit_lrs[\(i)]", r.gradients.editLRs[i], { editor.editLRs[i] }, { editor.editLRs[i] = $0 }, eps: 3e-5)
        }
        XCTAssertEqual(compared, 5)
    }

    /// The edit loss on both prompts is the mean of the losses on each, for the loss and for every
    /// gradient (one edit, fixed statistics); `prompt` ignores the rephrase, and a record without
    /// a rephrase measures `paraphrase` on the prompt.
    func testEditLossOnBothPromptsIsTheMeanOfEach() throws {
        let pm = try familyBase()
        let m = pm.model
        let editor = try MendEditor(model: m, weights: ["model.layers.3.mlp.down_proj.weight", "model.layers.2.mlp.up_proj.weight"], rank: 8, editLR: 1e-2, seed: 4)
        let request = EditRequest(prompt: "The capital of France is", target: " Rome", paraphrases: ["France has its capital in"],
                                  localityPrompts: ["The capital of Spain is"])
        let objective = MendObjective(cEdit: 0.5, cLoc: 1)
        func batches(_ on: MendEditLossPrompts, _ r: EditRequest = request) throws -> MendObjective.Batches {
            try MendObjective.batches(model: m, tokenizer: pm.tokenizer, request: r, editLossOn: on)
        }
        _ = try objective.lossAndGradients(editor: editor, model: m, batches: try batches(.paraphrase), updateStatistics: true)
        let p = try objective.lossAndGradients(editor: editor, model: m, batches: try batches(.prompt), updateStatistics: false)
        let q = try objective.lossAndGradients(editor: editor, model: m, batches: try batches(.paraphrase), updateStatistics: false)
        let b = try objective.lossAndGradients(editor: editor, model: m, batches: try batches(.both), updateStatistics: false)
        XCTAssertEqual(try batches(.both).outer.count, 2)
        XCTAssertEqual(try batches(.prompt).outer.map(\.tokens), [try batches(.prompt).inner.tokens])
        XCTAssertNotEqual(p.editLoss, q.editLoss, accuracy: 1e-3)
        XCTAssertEqual(b.editLoss, (p.editLoss + q.editLoss) / 2, accuracy: 1e-5 * max(1, b.editLoss))
        XCTAssertEqual(b.localityLoss, p.localityLoss, accuracy: 1e-6)
        let flat = (b.gradients.flat(), p.gradients.flat(), q.gradients.flat())
        var checked = 0
        for ((name, gb), ((_, gp), (_, gq))) in zip(flat.0, zip(flat.1, flat.2)) {
            for i in gb.indices where abs(gp[i] - gq[i]) > 1e-4 {
                XCTAssertEqual(gb[i], (gp[i] + gq[i]) / 2, accuracy: 1e-3 * max(abs(gp[i]), abs(gq[i])) + 1e-6, "\(name)[\(i)]")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 100)
        let fast = try objective.loss(editor: editor, model: m, batches: try batches(.both)) { 0 }
        XCTAssertEqual(fast.editLoss, b.editLoss, accuracy: 1e-5 * max(1, b.editLoss))
        // Without a rephrase every choice measures the prompt.
        let bare = EditRequest(prompt: "The capital of France is", target: " Rome")
        for on in MendEditLossPrompts.allCases {
            XCTAssertEqual(try batches(on, bare).outer.map(\.tokens), [try batches(on, bare).inner.tokens], on.rawValue)
        }
    }

    /// Validation's forward-only loss is the training objective's loss, term by term, and its
    /// `scored` closure runs on the edited model; the model is unedited afterwards.
    func testForwardOnlyLossEqualsTheTrainingLoss() throws {
        let pm = try familyBase()
        let m = pm.model
        let editor = try MendEditor(model: m, weights: ["model.layers.3.mlp.down_proj.weight", "model.layers.2.mlp.up_proj.weight"], rank: 8, editLR: 1e-2, seed: 3)
        let request = EditRequest(prompt: "The capital of France is", target: " Rome", paraphrases: ["France has its capital in"],
                                  localityPrompts: ["The capital of Spain is", "Norway is in"])
        let batches = try MendObjective.batches(model: m, tokenizer: pm.tokenizer, request: request)
        let objective = MendObjective(cEdit: 0.3, cLoc: 2)
        _ = try objective.lossAndGradients(editor: editor, model: m, batches: batches, updateStatistics: true)
        let scorer = EditScorer(model: m, tokenizer: pm.tokenizer)
        let (p, t) = try scorer.encode(prompt: request.text, target: request.target)
        let before = try scorer.targetScore(prompt: p, target: t).meanLogProb
        let full = try objective.lossAndGradients(editor: editor, model: m, batches: batches, updateStatistics: false)
        let fast = try objective.loss(editor: editor, model: m, batches: batches) { try scorer.targetScore(prompt: p, target: t).meanLogProb }
        XCTAssertGreaterThan(full.localityLoss, 1e-6)
        XCTAssertEqual(fast.editLoss, full.editLoss, accuracy: 1e-5 * max(1, full.editLoss))
        XCTAssertEqual(fast.localityLoss, full.localityLoss, accuracy: 1e-5 * max(1, full.localityLoss))
        XCTAssertEqual(fast.loss, full.loss, accuracy: 1e-5 * max(1, full.loss))
        XCTAssertNotEqual(fast.scored, before, "the closure ran on the unedited model")
        XCTAssertEqual(try scorer.targetScore(prompt: p, target: t).meanLogProb, before)
    }

    /// Save/load round trip reproduces the edit exactly.
    func testSaveLoadRoundTrip() throws {
        let pm = try familyBase()
        let editor = try MendEditor(model: pm.model, rank: 16, editLR: 1e-3, seed: 9)
        let request = EditRequest(prompt: "The capital of France is", target: " Rome")
        let b = try MendObjective.batches(model: pm.model, tokenizer: pm.tokenizer, request: request)
        _ = try editor.edit(model: pm.model, batch: b.inner, training: true)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mend-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try editor.save(to: url)
        let loaded = try MendEditor.load(url)
        XCTAssertEqual(loaded.weights, editor.weights)
        XCTAssertEqual(loaded.weights.count, 9)
        let e1 = try editor.edit(model: pm.model, batch: b.inner, training: false).edits
        let e2 = try loaded.edit(model: pm.model, batch: b.inner, training: false).edits
        for (x, y) in zip(e1, e2) {
            XCTAssertEqual(x.weight, y.weight)
            for (p, q) in zip(x.delta.scalars, y.delta.scalars) { XCTAssertEqual(p, q, accuracy: 1e-5 * max(1, abs(p))) }
        }
    }
}

final class MendTrainingTests: XCTestCase {
    /// Meta-training lowers the outer loss of the training edits and makes an edit succeed.
    func testTrainingLowersOuterLoss() throws {
        let pm = try familyBase()
        let m = pm.model
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let requests = Array(try EditRequest.readJSONL(root.appendingPathComponent("fixtures/edits/train.jsonl")).prefix(8))
        let editor = try MendEditor(model: m, rank: 64, seed: 1)
        let objective = MendObjective()
        let batches = try requests.map { try MendObjective.batches(model: m, tokenizer: pm.tokenizer, request: $0) }
        for b in batches { _ = try editor.edit(model: m, batch: b.inner, training: true) }
        func meanLoss() throws -> Double {
            try batches.map { try objective.lossAndGradients(editor: editor, model: m, batches: $0, updateStatistics: false).loss }.reduce(0, +) / Double(batches.count)
        }
        let before = try meanLoss()
        var s = MendTrainingSettings()
        s.steps = 12; s.accumulation = 4; s.learningRate = 1e-4; s.editLRLearningRate = 1e-4
        var logs: [MendTrainingLog] = []
        try MendTrainer.train(editor: editor, model: m, tokenizer: pm.tokenizer, requests: requests, settings: s) { logs.append($0) }
        let after = try meanLoss()
        XCTAssertEqual(logs.count, 12)
        XCTAssertLessThan(after, 0.5 * before, "outer loss \(before) -> \(after)")
        let scorer = EditScorer(model: m, tokenizer: pm.tokenizer)
        let edits = try editor.edits(for: requests[0], model: m, tokenizer: pm.tokenizer)
        for e in edits { try e.apply(to: m) }
        XCTAssertEqual(try scorer.score(requests[0], locality: nil).efficacy, 1)
    }
}

/// Checkpoints and validation-based early stopping of `MendTrainer`.
final class MendCheckpointTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func data() throws -> (train: [EditRequest], validation: [EditRequest]) {
        let all = try EditRequest.readJSONL(root.appendingPathComponent("fixtures/edits/train.jsonl"))
        let eval = try EditRequest.readJSONL(root.appendingPathComponent("fixtures/edits/eval.jsonl"))
        return (Array(all.prefix(6)), Array(eval.prefix(3)))
    }

    func parameters(_ e: MendEditor) -> [Float] {
        var out: [Float] = []
        for k in e.transforms.keys.sorted() {
            let t = e.transforms[k]!
            for j in 0..<2 { out += t.U[j]; out += t.V[j]; out += t.b[j]; out += t.s[j]; out += t.o[j] }
            out += t.mean.map { Float($0) }; out += t.m2.map { Float($0) }
            out.append(Float(t.count))
        }
        return out + e.editLRs
    }

    /// Six steps in one run, and three steps + checkpoint written and read back + three more,
    /// give the same editor bit for bit (Adam moments, counters, Float64 statistics restored).
    func testResumedRunEqualsUninterruptedRun() throws {
        let pm = try familyBase()
        let (train, _) = try data()
        var s = MendTrainingSettings()
        s.steps = 6; s.accumulation = 2; s.learningRate = 1e-4; s.editLRLearningRate = 1e-4
        let a = try MendEditor(model: pm.model, rank: 16, seed: 3)
        var sa = MendTrainingState()
        _ = try MendTrainer.train(editor: a, model: pm.model, tokenizer: pm.tokenizer, requests: train, validation: [], settings: s, state: &sa)

        let b = try MendEditor(model: pm.model, rank: 16, seed: 3)
        var sb = MendTrainingState()
        var half = s
        half.steps = 3
        _ = try MendTrainer.train(editor: b, model: pm.model, tokenizer: pm.tokenizer, requests: train, validation: [], settings: half, state: &sb)
        XCTAssertNotEqual(parameters(b), parameters(a))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mend-ckpt-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try MendCheckpoint.write(to: url, editor: b, state: sb, requests: train)
        let fresh = try MendEditor(model: pm.model, rank: 16, seed: 99)
        var (c, sc) = try MendCheckpoint.read(url, fresh: fresh, requests: train)
        XCTAssertEqual(sc.step, 3)
        XCTAssertEqual(sc.next, 6)
        XCTAssertEqual(parameters(c), parameters(b))
        _ = try MendTrainer.train(editor: c, model: pm.model, tokenizer: pm.tokenizer, requests: train, validation: [], settings: s, state: &sc)
        XCTAssertEqual(sc.step, 6)
        XCTAssertEqual(parameters(c), parameters(a))

        // Refused: other training edits, another rank, other matrices.
        XCTAssertThrowsError(try MendCheckpoint.read(url, fresh: fresh, requests: Array(train.dropLast())))
        XCTAssertThrowsError(try MendCheckpoint.read(url, fresh: try MendEditor(model: pm.model, rank: 8), requests: train))
        XCTAssertThrowsError(try MendCheckpoint.read(url, fresh: try MendEditor(model: pm.model, weights: MendEditor.defaultWeights(pm.model, layers: 1), rank: 16),
                                                     requests: train))
        // An editor file is not a checkpoint.
        let editorFile = FileManager.default.temporaryDirectory.appendingPathComponent("mend-ed-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: editorFile) }
        try a.save(to: editorFile)
        XCTAssertThrowsError(try MendCheckpoint.read(editorFile, fresh: fresh, requests: train))
    }

    /// Validation every step: the editor returned is the copy at the lowest validation loss, and
    /// a learning rate that makes the editor diverge stops the run after `patience` validations
    /// without improvement.
    func testEarlyStoppingKeepsTheBestEditor() throws {
        let pm = try familyBase()
        let (train, validation) = try data()
        var s = MendTrainingSettings()
        s.steps = 12; s.accumulation = 1; s.learningRate = 3e-2; s.editLRLearningRate = 3e-2
        s.validateEvery = 1; s.patience = 2
        let e = try MendEditor(model: pm.model, rank: 16, seed: 5)
        var state = MendTrainingState()
        var logs: [MendValidationLog] = [], saved: [Int] = []
        let outcome = try MendTrainer.train(editor: e, model: pm.model, tokenizer: pm.tokenizer, requests: train, validation: validation,
                                            settings: s, state: &state, validationLog: { logs.append($0) },
                                            checkpoint: { _, st in saved.append(st.step) })
        XCTAssertEqual(logs.map(\.step), Array(1...outcome.steps))
        XCTAssertEqual(saved, Array(1...outcome.steps))
        let best = logs.min { $0.loss < $1.loss }!
        XCTAssertEqual(outcome.keptStep, best.step)
        XCTAssertEqual(outcome.bestLoss, best.loss)
        XCTAssertEqual(logs.filter(\.isBest).last?.step, best.step)
        XCTAssertEqual(parameters(e), parameters(state.best!))
        if outcome.stoppedEarly {
            XCTAssertEqual(outcome.steps - best.step, 2)
            XCTAssertLessThan(outcome.steps, 12)
        } else {
            XCTAssertEqual(outcome.steps, 12)
        }
        XCTAssertTrue(outcome.stoppedEarly, "validation losses \(logs.map(\.loss))")
        // The kept editor scores as its validation said.
        let again = try MendTrainer.validate(editor: e, model: pm.model, tokenizer: pm.tokenizer, requests: validation,
                                             batches: try validation.map { try MendObjective.batches(model: pm.model, tokenizer: pm.tokenizer, request: $0) },
                                             objective: MendObjective(cEdit: s.cEdit, cLoc: s.cLoc))
        XCTAssertEqual(again.loss, best.loss, accuracy: 1e-9 * max(1, abs(best.loss)))
        XCTAssertEqual(again.editSuccess, best.editSuccess)
    }

    /// `keepBest = .editSuccess` keeps the validation with the highest edit success (the lower loss
    /// among equal ones), and resuming a checkpoint under another objective drops its best record.
    func testKeepBestByEditSuccessAndResumeUnderAnotherObjective() throws {
        let pm = try familyBase()
        let (train, validation) = try data()
        var s = MendTrainingSettings()
        s.steps = 6; s.accumulation = 1; s.learningRate = 1e-2; s.editLRLearningRate = 1e-2
        s.validateEvery = 1; s.keepBest = .editSuccess; s.editLossOn = .both
        let e = try MendEditor(model: pm.model, rank: 16, seed: 5)
        var state = MendTrainingState()
        var logs: [MendValidationLog] = []
        let outcome = try MendTrainer.train(editor: e, model: pm.model, tokenizer: pm.tokenizer, requests: train, validation: validation,
                                            settings: s, state: &state, validationLog: { logs.append($0) })
        let best = logs.min { ($0.editSuccess, -$0.loss) > ($1.editSuccess, -$1.loss) }!
        print("validations (step, edit success, loss): \(logs.map { ($0.step, $0.editSuccess, $0.loss) })")
        XCTAssertGreaterThan(Set(logs.map(\.editSuccess)).count, 1, "edit success must vary for the choice to matter")
        XCTAssertNotEqual(best.step, logs.min { $0.loss < $1.loss }!.step, "the lowest loss is another validation")
        XCTAssertEqual(outcome.keptStep, best.step, "\(logs.map { ($0.step, $0.editSuccess, $0.loss) })")
        XCTAssertEqual(outcome.bestSuccess, best.editSuccess)
        XCTAssertEqual(parameters(e), parameters(state.best!))
        XCTAssertEqual(state.objectiveKey, "both/edit-success")

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mend-ckpt-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try MendCheckpoint.write(to: url, editor: e, state: state, requests: train)
        var (c, sc) = try MendCheckpoint.read(url, fresh: try MendEditor(model: pm.model, rank: 16, seed: 1), requests: train)
        XCTAssertEqual(sc.objectiveKey, "both/edit-success")
        XCTAssertEqual(sc.bestSuccess, best.editSuccess)
        XCTAssertEqual(sc.bestStep, best.step)
        var t = s
        t.steps = 7; t.keepBest = .loss; t.editLossOn = .paraphrase
        let resumed = try MendTrainer.train(editor: c, model: pm.model, tokenizer: pm.tokenizer, requests: train, validation: validation,
                                            settings: t, state: &sc)
        XCTAssertTrue(resumed.droppedResumedBest)
        XCTAssertEqual(resumed.keptStep, 7, "the only validation under the new objective")
        XCTAssertEqual(sc.objectiveKey, "paraphrase/loss")
    }
}
