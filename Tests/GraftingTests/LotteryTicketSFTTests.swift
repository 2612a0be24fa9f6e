import Checkpoints
import Foundation
import Tensors
import Transformer
import XCTest
@testable import Grafting

/// LT-SFT (Ansell et al. 2022, §3) on the tiny Llama fixture of the Transformer tests.
final class LotteryTicketSFTTests: XCTestCase {
    static let llama = TrainedGraftGradientTests.llama

    /// Seeded token sequences; the last 4 tokens of each are the scored completion.
    static func examples(seed: UInt64, count: Int) -> [TrainingExample] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in
            let t = (0..<12).map { _ in Int(rng.next() % 64) }
            return TrainingExample(context: Array(t.prefix(8)), target: Array(t.suffix(4)))
        }
    }

    static func settings(density: Double, steps: Int = 6) throws -> LotteryTicketSFT.Settings {
        var s = Trainer.Settings(steps: steps)
        s.batchSize = 4; s.learningRate = 1e-2; s.schedule = .constant; s.seed = 4
        return LotteryTicketSFT.Settings(density: density, eligibility: try GraftEligibility(), fullPhase: s, sparsePhase: s)
    }

    func testSelectsTheMostMovedEntriesAndLeavesEveryOtherEntryAtTheBase() throws {
        let data = Self.examples(seed: 1, count: 16)
        let settings = try Self.settings(density: 0.05)
        let model = try TransformerModel.load(path: Self.llama.path)
        let base = try TransformerModel.load(path: Self.llama.path)
        let r = try LotteryTicketSFT.train(model: model, examples: data, heldOut: Array(data.prefix(4)), settings: settings)

        // Phase 1 replayed on its own (the trainer is deterministic): the mask is the exact top-K
        // of |θ1 − θ0| by the brute-force reference rule.
        let replay = try TransformerModel.load(path: Self.llama.path)
        let eligible = try GraftPair(base: base, tuned: base, basePath: "b", tunedPath: "b", eligibility: settings.eligibility)
        let all = try SparseMask(model: replay, entries: eligible.tensors.map { ($0.name, nil) })
        try Trainer(model: replay, mode: .sparse(all), settings: settings.fullPhase).train(data, heldOut: Array(data.prefix(4)))
        let moved = try GraftPair(base: base, tuned: replay, basePath: "b", tunedPath: "phase 1", eligibility: settings.eligibility)
        let k = Int((0.05 * Double(eligible.eligibleCount)).rounded())
        XCTAssertEqual(r.mask.count, k)
        XCTAssertEqual(r.mask.parts.map(\.indices), bruteForceTopK(moved, k: k))
        XCTAssertEqual(r.heldOutFull, try Trainer(model: replay, mode: .full, settings: settings.fullPhase).heldOutLoss(Array(data.prefix(4))))

        // After phase 2: every entry outside the mask (eligible or not) is the base bit for bit,
        // and most entries inside it moved.
        var inMask = Set<Int>()
        for part in r.mask.parts { let e = model.layout[part.name]!; for i in part.indices { inMask.insert(e.offset + i) } }
        var changedInside = 0
        for i in 0..<model.layout.totalCount {
            if inMask.contains(i) {
                if model.parameters.base[i] != base.parameters.base[i] { changedInside += 1 }
            } else {
                XCTAssertEqual(model.parameters.base[i].bitPattern, base.parameters.base[i].bitPattern, "entry \(i) outside the mask changed")
            }
        }
        XCTAssertGreaterThan(changedInside, k * 9 / 10)
        // The delta is θ2 − θ0 at exactly the mask's entries.
        XCTAssertEqual(r.delta.map(\.name), r.mask.parts.filter { !$0.indices.isEmpty }.map(\.name))
        for d in r.delta {
            let e = model.layout[d.name]!
            XCTAssertEqual(d.indices.map { Int($0) }, r.mask.parts.first { $0.name == d.name }!.indices)
            for (i, v) in zip(d.indices, d.values) {
                XCTAssertEqual(v, model.parameters.base[e.offset + Int(i)] - base.parameters.base[e.offset + Int(i)])
            }
        }
        // Training helped on the (training) held-out examples.
        XCTAssertLessThan(r.heldOutSparse!, r.heldOutBase!)
        XCTAssertGreaterThan(r.selectedEnergyShare, 0.05)
        XCTAssertLessThanOrEqual(r.selectedEnergyShare, 1)
    }

    /// Two deltas written to disk, read back through `BASE+DELTA` references (one stacked on the
    /// other), give base + φ1 + φ2; with disjoint masks that is each delta's own value.
    func testDisjointDeltasComposeToTheirSumThroughModelReferences() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-ltsft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TransformerModel.load(path: Self.llama.path)
        // Two tasks on disjoint tensor sets, so the deltas cannot overlap.
        var deltas: [[SparseDeltaTensor]] = []
        for (j, include) in ["self_attn", "mlp"].enumerated() {
            var s = try Self.settings(density: 0.1, steps: 3)
            s.eligibility = try GraftEligibility(include: include)
            let m = try TransformerModel.load(path: Self.llama.path)
            deltas.append(try LotteryTicketSFT.train(model: m, examples: Self.examples(seed: UInt64(10 + j), count: 8), settings: s).delta)
            try SparseDeltaWriter.write(deltas[j], to: dir.appendingPathComponent("d\(j).safetensors"))
        }
        let ref = Self.llama.path + "+" + dir.appendingPathComponent("d0.safetensors").path + "+" + dir.appendingPathComponent("d1.safetensors").path
        let composed = try ModelReference.open(ref)
        var touched = 0
        for e in base.layout.entries {
            var want = base.parameters.tensor(e.name)!
            for d in deltas.joined() where d.name == e.name { d.add(into: &want); touched += 1 }
            XCTAssertEqual(try composed.tensor(e.name).scalars, want.scalars, e.name)
        }
        XCTAssertEqual(touched, deltas[0].count + deltas[1].count)
        XCTAssertTrue(deltas[0].allSatisfy { $0.name.contains("self_attn") } && deltas[1].allSatisfy { $0.name.contains("mlp") })
    }

    func testDensityOutsideTheUnitIntervalIsRefused() throws {
        let model = try TransformerModel.load(path: Self.llama.path)
        for d in [0, -0.1, 1.5, .nan] {
            XCTAssertThrowsError(try LotteryTicketSFT.train(model: model, examples: Self.examples(seed: 1, count: 2), settings: try Self.settings(density: d))) { e in
                XCTAssertTrue("\(e)".contains("outside (0, 1]"), "\(e)")
            }
        }
    }
}
