import Foundation
import Tensors
import XCTest
@testable import Transformer

/// Optimizer, trainer modes and adapters on the tiny fixture models.
final class TrainingTests: XCTestCase {
    static func load(_ name: String) throws -> TransformerModel {
        try TransformerModel.load(path: ModelParityTests.dir.appendingPathComponent(name).path)
    }

    /// A small task: after a 2-token prompt (a, b), continue with b, 3, 1, 4, 1.
    static func task(_ n: Int, seed: UInt64) -> [TrainingExample] {
        var g = SeededGenerator(seed: seed)
        return (0..<n).map { _ in
            let a = Int(g.next() % 64), b = Int(g.next() % 64)
            return TrainingExample(context: [a, b], target: [b, 3, 1, 4, 1])
        }
    }

    func testFullFineTuneLowersLossAndIsDeterministic() throws {
        var finals: [[Float]] = []
        for _ in 0..<2 {
            let model = try Self.load("llama")
            var s = Trainer.Settings(steps: 30)
            s.batchSize = 8; s.learningRate = 3e-3; s.warmupSteps = 3; s.seed = 11
            let trainer = try Trainer(model: model, mode: .full, settings: s)
            let held = Self.task(16, seed: 2)
            let before = try trainer.heldOutLoss(held)
            let history = try trainer.train(Self.task(64, seed: 1), heldOut: held)
            let after = try XCTUnwrap(history.last?.heldOutLoss)
            XCTAssertLessThan(after, before * 0.7, "held-out loss \(before) -> \(after)")
            XCTAssertLessThan(history.last!.loss, history.first!.loss)
            finals.append(model.parameters.tensor("model.layers.1.mlp.down_proj.weight")!.scalars)
        }
        XCTAssertEqual(finals[0], finals[1], "same seed, same weights")
    }

    func testLoRAStartsAtTheBaseAndMatchesMergedGradients() throws {
        let model = try Self.load("llama")
        let (batch, _, _) = try GradientParityTests.reference("llama")
        let lora = try LoRAAdapters(model: model, settings: .init(rank: 4, alpha: 8, targetModules: ["q_proj", "down_proj"]), seed: 3)
        // B = 0: the adapted model's loss is the base's.
        let base = try model.lossAndGradients(batch, into: GradientSink())
        let adapted = try model.lossAndGradients(batch, into: GradientSink(), lora: lora)
        XCTAssertEqual(base, adapted)
        // Give B values, then compare with the merged model: dB = s G A^T, dA = s B^T G for G = dL/dW'.
        var rng = SeededRandom(seed: 4)
        for m in lora.modules {
            let b = lora.parameters.pointer(m.name + ".lora_B.weight")
            for i in 0..<m.outFeatures * 4 { b[i] = Float(rng.nextNormal() * 0.1) }
        }
        let lg = ParameterBuffer(layout: lora.parameters.layout)
        let loraLoss = try model.lossAndGradients(batch, into: GradientSink(lora: lg), lora: lora)
        let merged = try Self.load("llama")
        lora.merge(into: merged)
        let mg = ParameterBuffer(layout: merged.layout)
        let mergedLoss = try merged.lossAndGradients(batch, into: GradientSink(model: mg))
        XCTAssertEqual(loraLoss, mergedLoss, accuracy: 1e-5)
        let s = Double(lora.scale)
        for m in lora.modules {
            let (O, I, r) = (m.outFeatures, m.inFeatures, 4)
            let G = mg.tensor(m.name + ".weight")!.scalars
            let A = lora.parameters.tensor(m.name + ".lora_A.weight")!.scalars, B = lora.parameters.tensor(m.name + ".lora_B.weight")!.scalars
            var dB = [Float](repeating: 0, count: O * r), dA = [Float](repeating: 0, count: r * I)
            for o in 0..<O { for k in 0..<r { var t = 0.0; for i in 0..<I { t += Double(G[o * I + i]) * Double(A[k * I + i]) }; dB[o * r + k] = Float(s * t) } }
            for k in 0..<r { for i in 0..<I { var t = 0.0; for o in 0..<O { t += Double(B[o * r + k]) * Double(G[o * I + i]) }; dA[k * I + i] = Float(s * t) } }
            XCTAssertLessThan(GradientParityTests.relativeDiff(lg.tensor(m.name + ".lora_B.weight")!.scalars, dB), 1e-4, m.name)
            XCTAssertLessThan(GradientParityTests.relativeDiff(lg.tensor(m.name + ".lora_A.weight")!.scalars, dA), 1e-4, m.name)
        }
    }

    func testLoRATrainingLowersLossAndLeavesTheBase() throws {
        let model = try Self.load("llama")
        let before = model.parameters.tensor("model.layers.0.self_attn.q_proj.weight")!.scalars
        var s = Trainer.Settings(steps: 30)
        s.learningRate = 1e-2; s.seed = 5
        let trainer = try Trainer(model: model, mode: .lora(.init(rank: 4, alpha: 8)), settings: s)
        let held = Self.task(16, seed: 2)
        let l0 = try trainer.heldOutLoss(held)
        let h = try trainer.train(Self.task(64, seed: 1), heldOut: held)
        XCTAssertLessThan(h.last!.heldOutLoss!, l0 * 0.8)
        XCTAssertEqual(model.parameters.tensor("model.layers.0.self_attn.q_proj.weight")!.scalars, before)
    }

    /// A packed row (each pair its own block of causal attention, positions from 0) gives the
    /// loss and the gradients of every parameter that the pairs give run one by one, and that
    /// a right-padded batch gives: packing changes the cost, not the result.
    func testPackedBatchMatchesSequencesRunAlone() throws {
        for name in ["llama3", "gpt2"] {
            let model = try Self.load(name)
            var g = SeededGenerator(seed: 21)
            let V = UInt64(model.config.vocabSize)
            let pairs: [(prompt: [Int], completion: [Int])] = (0..<5).map { i in
                (prompt: (0..<(2 + i % 3)).map { _ in Int(g.next() % V) }, completion: (0..<(1 + i % 2)).map { _ in Int(g.next() % V) })
            }
            let scored = pairs.reduce(0) { $0 + $1.completion.count }
            let scale = 1 / Float(scored)
            let alone = ParameterBuffer(layout: model.layout)
            var aloneLoss = 0.0
            for p in pairs {
                aloneLoss += try model.accumulateGradients(try .completions([p]), into: GradientSink(model: alone), lossScale: scale)
            }
            let packed = ParameterBuffer(layout: model.layout)
            let batch = try TrainingBatch.packedCompletions(pairs)
            XCTAssertEqual(batch.batchSize, 1)
            XCTAssertEqual(batch.segments, [pairs.map { $0.prompt.count + $0.completion.count }])
            let packedLoss = try model.accumulateGradients(batch, into: GradientSink(model: packed), lossScale: scale)
            let padded = ParameterBuffer(layout: model.layout)
            let paddedLoss = try model.accumulateGradients(try .completions(pairs), into: GradientSink(model: padded), lossScale: scale)
            XCTAssertEqual(packedLoss, aloneLoss, accuracy: 1e-4 * aloneLoss, name)
            XCTAssertEqual(paddedLoss, aloneLoss, accuracy: 1e-4 * aloneLoss, name)
            for e in model.layout.entries {
                let a = alone.tensor(e.name)!.scalars
                XCTAssertGreaterThan(a.map(abs).max()!, 0, "\(name) \(e.name) has a gradient")
                XCTAssertLessThan(GradientParityTests.relativeDiff(packed.tensor(e.name)!.scalars, a), 1e-4, "\(name) packed \(e.name)")
                XCTAssertLessThan(GradientParityTests.relativeDiff(padded.tensor(e.name)!.scalars, a), 1e-4, "\(name) padded \(e.name)")
            }
            // Packing is not the same as one long sequence: attention across pairs would change the loss.
            let joined = try TrainingBatch(tokens: batch.tokens, targets: batch.targets)
            let joinedLoss = try model.accumulateGradients(joined, into: GradientSink(), lossScale: scale)
            XCTAssertGreaterThan(abs(joinedLoss - aloneLoss), 1e-3 * aloneLoss, name)
        }
        XCTAssertThrowsError(try TrainingBatch(tokens: [[1, 2, 3]], targets: [[2, 3, -1]], segments: [[2, 2]])) { err in
            XCTAssertTrue("\(err)".contains("segment lengths must be positive and sum to the row length 3"), "\(err)")
        }
        XCTAssertEqual(TrainingBatch.packedRuns(lengths: [3, 4, 2, 9, 1], tokens: 7), [0..<2, 2..<3, 3..<4, 4..<5])
    }

    /// The L1 pull (LT-SFT's `full_l1_reg`, Ansell et al. 2022) draws the trained weights towards
    /// where they started: same data and seed, a strong pull ends much closer in L1 than none; in
    /// sparse mode the entries outside the mask still never move; LoRA refuses it.
    func testL1PullDrawsTheWeightsTowardsTheStart() throws {
        func run(_ pull: Double, sparse: Bool) throws -> (distance: Double, outsideMoved: Int) {
            let model = try Self.load("llama")
            let n = model.layout.totalCount
            let start = Array(UnsafeBufferPointer(start: model.parameters.base, count: n))
            var s = Trainer.Settings(steps: 20)
            s.learningRate = 3e-3; s.seed = 3; s.l1Pull = pull * Double(n)
            let mask = try SparseMask.random(model: model, density: 0.3, pattern: nil, seed: 4)
            try Trainer(model: model, mode: sparse ? .sparse(mask) : .full, settings: s).train(Self.task(32, seed: 1))
            var d = 0.0, outside = 0
            for e in model.layout.entries {
                let mo = mask.layout[e.name]
                for i in 0..<e.count {
                    let now = model.parameters.base[e.offset + i], was = start[e.offset + i]
                    d += abs(Double(now) - Double(was))
                    if sparse, now != was, !(mo.map { mask.values.base[$0.offset + i] != 0 } ?? false) { outside += 1 }
                }
            }
            return (d, outside)
        }
        let free = try run(0, sparse: false), pulled = try run(0.05, sparse: false)
        XCTAssertLessThan(pulled.distance, 0.5 * free.distance, "L1 distance to the start: \(pulled.distance) with the pull, \(free.distance) without")
        let sparse = try run(0.05, sparse: true)
        XCTAssertEqual(sparse.outsideMoved, 0)
        XCTAssertGreaterThan(sparse.distance, 0)
        var s = Trainer.Settings(steps: 1)
        s.l1Pull = 0.1
        XCTAssertThrowsError(try Trainer(model: try Self.load("llama"), mode: .lora(.init(rank: 2, alpha: 4)), settings: s)) { e in
            XCTAssertTrue("\(e)".contains("not LoRA"), "\(e)")
        }
        s.l1Pull = -1
        XCTAssertThrowsError(try Trainer(model: try Self.load("llama"), mode: .full, settings: s))
    }

    func testMaskPatternIsBoundedAndValidated() throws {
        let model = try Self.load("llama3")
        for (pattern, want) in [("(mlp", "is not a valid regular expression"),
                                (String(repeating: "mlp|", count: 1_100), "is 4400 characters long; at most 4096 are accepted")] {
            XCTAssertThrowsError(try SparseMask.random(model: model, density: 0.1, pattern: pattern, seed: 1)) { err in
                XCTAssertTrue("\(err)".contains(want), "\(err)")
                XCTAssertLessThan("\(err)".count, 250)
            }
        }
        XCTAssertNoThrow(try SparseMask.random(model: model, density: 0.1, pattern: "mlp", seed: 1))
    }

    func testSparseTrainingOnlyChangesMaskedEntries() throws {
        for name in ["llama3", "gpt2"] {
            let model = try Self.load(name)
            let original = Array(UnsafeBufferPointer(start: model.parameters.base, count: model.layout.totalCount))
            let mask = try SparseMask.random(model: model, density: 0.1, pattern: nil, seed: 9)
            var s = Trainer.Settings(steps: 10)
            s.learningRate = 1e-2; s.weightDecay = 0.1
            let trainer = try Trainer(model: model, mode: .sparse(mask), settings: s)
            let h = try trainer.train(Self.task(32, seed: 1))
            XCTAssertLessThan(h.last!.loss, h.first!.loss)
            var changed = 0
            for e in model.layout.entries {
                let mo = mask.layout[e.name]
                for i in 0..<e.count {
                    let now = model.parameters.base[e.offset + i], was = original[e.offset + i]
                    let allowed = mo.map { mask.values.base[$0.offset + i] != 0 } ?? false
                    if !allowed { XCTAssertEqual(now, was, "\(name) \(e.name)[\(i)] changed outside the mask"); if now != was { return } }
                    if now != was { changed += 1 }
                }
            }
            XCTAssertGreaterThan(changed, mask.trainableCount / 2, name)
        }
    }

    /// One AdamW step against the closed form, with decay on matrices only.
    func testAdamWStep() {
        var layout = ParameterLayout()
        layout.add("w", [2, 2]); layout.add("b", [2])
        let p = ParameterBuffer(layout: layout), g = ParameterBuffer(layout: layout)
        for i in 0..<6 { p.base[i] = Float(i) - 2; g.base[i] = 0.5 * Float(i) - 1 }
        let opt = AdamW(layout: layout, settings: .init(weightDecay: 0.1))
        for _ in 0..<2 { opt.step(parameter: { p.pointer($0) }, gradients: g, learningRate: 0.01) }
        for i in 0..<6 {
            var x = Double(i) - 2, m = 0.0, v = 0.0
            let gi = 0.5 * Double(i) - 1
            for t in 1...2 {
                if i < 4 { x -= 0.01 * 0.1 * x }
                m = 0.9 * m + 0.1 * gi; v = 0.999 * v + 0.001 * gi * gi
                x -= 0.01 * (m / (1 - pow(0.9, Double(t)))) / ((v / (1 - pow(0.999, Double(t)))).squareRoot() + 1e-8)
            }
            XCTAssertEqual(Double(p.base[i]), x, accuracy: 1e-6)
        }
        let sch = LearningRateSchedule(peak: 1, warmupSteps: 10, totalSteps: 110, kind: .cosine)
        XCTAssertEqual(sch.rate(step: 5), 0.5, accuracy: 1e-12)
        XCTAssertEqual(sch.rate(step: 60), 0.5, accuracy: 1e-12)
        XCTAssertEqual(sch.rate(step: 110), 0, accuracy: 1e-12)
    }

    /// The saved adapter loads in PEFT and gives our merged model's logits.
    func testPEFTLoadsTheAdapter() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import peft, transformers, torch"]
        probe.standardError = Pipe(); probe.standardOutput = Pipe()
        do { try probe.run(); probe.waitUntilExit() } catch { throw XCTSkip("python3 not available") }
        guard probe.terminationStatus == 0 else { throw XCTSkip("python3 with peft, transformers and torch is not importable (pip install peft)") }

        let dir = ModelParityTests.dir.appendingPathComponent("llama")
        let model = try TransformerModel.load(path: dir.path)
        let lora = try LoRAAdapters(model: model, settings: .init(rank: 4, alpha: 6, rsLoRA: true, targetModules: ["q_proj", "v_proj", "up_proj"]), seed: 1)
        var rng = SeededRandom(seed: 2)
        for m in lora.modules {
            let b = lora.parameters.pointer(m.name + ".lora_B.weight")
            for i in 0..<m.outFeatures * 4 { b[i] = Float(rng.nextNormal() * 0.2) }
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ws-peft-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try lora.save(to: out, baseModelNameOrPath: dir.path)
        lora.merge(into: model)
        let ids = [[1, 5, 9, 33, 2, 60, 17]]
        let ours = try model.forward(ids).scalars
        let script = """
        import sys, json, torch, transformers as tf
        from peft import PeftModel
        base = tf.AutoModelForCausalLM.from_pretrained(sys.argv[1])
        m = PeftModel.from_pretrained(base, sys.argv[2]).eval()
        with torch.no_grad():
            print(json.dumps(m(torch.tensor(\(ids))).logits.flatten().tolist()))
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir.path, out.path]
        let pipe = Pipe()
        p.standardOutput = pipe; p.standardError = Pipe()
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let text = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        let theirs = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [Double])
        XCTAssertEqual(theirs.count, ours.count)
        let d = zip(ours, theirs).map { abs(Double($0.0) - $0.1) }.max() ?? 1
        let baseLogits = try TransformerModel.load(path: dir.path).forward(ids).scalars
        let shift = zip(ours, baseLogits).map { abs($0.0 - $0.1) }.max() ?? 0
        print("PEFT parity: max |ours - peft| = \(d), adapter shifts logits by up to \(shift)")
        XCTAssertLessThan(d, 1e-4)
        XCTAssertGreaterThan(shift, 0.05)
    }
}
