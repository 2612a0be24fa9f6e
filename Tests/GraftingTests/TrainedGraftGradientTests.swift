import Foundation
import Tensors
import Transformer
import XCTest
@testable import Grafting

/// ∂L/∂S of the trained graft (Panigrahi et al. 2023, §3) through the whole model, against central
/// finite differences of the relaxed loss L(θ_base + γ(S) ⊙ τ) on the tiny Llama fixture of the
/// Transformer tests (2 layers, hidden 24, vocabulary 64).
///
/// The sigmoid bias is 2 here rather than the paper's 10, so σ'(S − c) ≈ 0.1–0.2 and a step in S
/// moves the loss well above Float32 rounding; the formula does not depend on c. The base patch
/// holds about a third of the entries, so the (1 − 2b) sign flip is exercised on both kinds of
/// entry: a gradient without it, or without σ', or without τ, fails the per-entry checks.
final class TrainedGraftGradientTests: XCTestCase {
    static let llama = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TransformerTests/Fixtures/models/llama")

    func testMaskGradientMatchesFiniteDifferences() throws {
        let base = try TransformerModel.load(path: Self.llama.path)
        // A synthetic fine-tune: every entry moved by a seeded normal of 0.5 × the tensor's RMS.
        let tuned = TransformerModel(config: base.config)
        tuned.parameters.base.update(from: base.parameters.base, count: base.layout.totalCount)
        var rng = SeededRandom(seed: 12)
        for e in base.layout.entries {
            let p = tuned.parameters.base + e.offset
            var ss = 0.0
            for i in 0..<e.count { ss += Double(p[i]) * Double(p[i]) }
            let rms = max((ss / Double(e.count)).squareRoot(), 1e-3)
            for i in 0..<e.count { p[i] += Float(0.5 * rms * rng.nextNormal()) }
        }
        let pair = try GraftPair(base: base, tuned: tuned, basePath: "llama", tunedPath: "llama+noise", eligibility: GraftEligibility())
        let patch = MagnitudeGraft.select(pair, count: pair.eligibleCount / 3)
        let relax = try Relaxation(pair: pair, basePatch: patch, sigmoidBias: 2, seed: 3)
        let work = TransformerModel(config: base.config)
        work.parameters.base.update(from: base.parameters.base, count: base.layout.totalCount)

        // Two sequences of 10 tokens, every next token scored.
        var tokenRng = SeededRandom(seed: 5)
        let rows = (0..<2).map { _ in (0..<11).map { _ in Int(tokenRng.next() % 64) } }
        let batch = try TrainingBatch(tokens: rows.map { Array($0.dropLast()) }, targets: rows.map { Array($0.dropFirst()) })

        func loss(_ logits: [Float]) throws -> Double {
            let saved = relax.logits
            defer { relax.logits = saved }
            relax.logits = logits
            relax.setRelaxed(work.parameters)
            return try relax.lossAndGradient(model: work, batches: [batch]).0
        }
        relax.setRelaxed(work.parameters)
        let (l0, g) = try relax.lossAndGradient(model: work, batches: [batch])
        XCTAssertEqual(try loss(relax.logits), l0, "the loss is a function of S alone")
        XCTAssertGreaterThan(g.map(abs).max() ?? 0, 1e-4, "the gradient is not trivially zero")

        // Per entry: the largest |∂L/∂S| inside the base patch (b = 1) and outside it (b = 0).
        var flat = 0
        var inside: [(Int, Float)] = [], outside: [(Int, Float)] = []
        for (part, t) in zip(patch.parts, pair.tensors) {
            let kept = Set(part.indices)
            for i in 0..<t.count {
                if kept.contains(i) { inside.append((flat + i, g[flat + i])) } else { outside.append((flat + i, g[flat + i])) }
            }
            flat += t.count
        }
        XCTAssertEqual(relax.patch.reduce(0, +), Float(patch.count))
        let picks = inside.sorted { abs($0.1) > abs($1.1) }.prefix(4) + outside.sorted { abs($0.1) > abs($1.1) }.prefix(4)
        let h: Float = 0.25
        for (i, gi) in picks {
            var plus = relax.logits, minus = relax.logits
            plus[i] += h; minus[i] -= h
            let fd = (try loss(plus) - loss(minus)) / Double(2 * h)
            XCTAssertEqual(Double(gi), fd, accuracy: 0.05 * abs(fd) + 2e-6, "entry \(i) (b = \(relax.patch[i]))")
        }

        // Along a random direction over every entry (all of S moves at once).
        var vRng = SeededRandom(seed: 9)
        let v = (0..<g.count).map { _ in Float(vRng.nextNormal()) }
        let predicted = zip(g, v).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        // (The central difference converges to the analytic value as h shrinks: 4.9e-3 at h = 0.2,
        // 6.10e-3 at 0.05, 6.175e-3 at 0.01 against 6.179e-3; the gradient without the (1 − 2b)
        // factor gives 8.9e-2.)
        let hd: Float = 0.01
        let fd = (try loss(zip(relax.logits, v).map { $0 + hd * $1 }) - loss(zip(relax.logits, v).map { $0 - hd * $1 })) / Double(2 * hd)
        XCTAssertEqual(predicted, fd, accuracy: 0.005 * abs(fd))
        print(String(format: "trained-graft gradient: loss %.5f, directional derivative %.6e (analytic) vs %.6e (finite difference)", l0, predicted, fd))
    }
}
