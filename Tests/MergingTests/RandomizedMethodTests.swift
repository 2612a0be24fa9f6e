import XCTest
@testable import Merging
import Tensors

/// DARE and DELLA cannot match torch's random stream; check their statistics and reproducibility.
final class RandomizedMethodTests: XCTestCase {
    func random(_ n: Int, seed: UInt64) -> [Float] {
        var r = SeededRandom(seed: seed)
        return (0..<n).map { _ in Float(r.nextUniform() * 2 - 1) }
    }

    func prune(_ method: Sparsification, density: Double, epsilon: Double = 0.15, rescale: Bool, seed: UInt64 = 1,
               cols: Int = 100) throws -> (before: [Float], after: [Float]) {
        let before = random(100_000, seed: 42)
        var after = before
        let rng = MergeRandom(seed: seed, tensor: "t", model: 0)
        try after.withUnsafeMutableBufferPointer {
            try Sparsifier.apply(method, $0, cols: cols, SparsifierSettings(density: density, gamma: 0.01, epsilon: epsilon, rescale: rescale),
                                 random: rng, tensor: "t")
        }
        return (before, after)
    }

    func testDareKeepsAboutDensityAndPreservesL1() throws {
        let (before, after) = try prune(.random, density: 0.3, rescale: true)
        let kept = Double(after.filter { $0 != 0 }.count) / Double(after.count)
        XCTAssertEqual(kept, 0.3, accuracy: 0.01)
        let l1a = before.reduce(0.0) { $0 + Double(abs($1)) }, l1b = after.reduce(0.0) { $0 + Double(abs($1)) }
        XCTAssertEqual(l1b / l1a, 1, accuracy: 1e-5)
        // kept entries are scaled copies of the originals (one common factor)
        let f = Double(l1a) / Double(before.indices.filter { after[$0] != 0 }.reduce(0.0) { $0 + Double(abs(before[$1])) })
        for i in before.indices where after[i] != 0 { XCTAssertEqual(Double(after[i]), Double(before[i]) * f, accuracy: 1e-5) }
    }

    func testDareIsReproducibleAndSeedDependent() throws {
        let a = try prune(.random, density: 0.5, rescale: false, seed: 7).after
        let b = try prune(.random, density: 0.5, rescale: false, seed: 7).after
        let c = try prune(.random, density: 0.5, rescale: false, seed: 8).after
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
    }

    func testDellaKeepProbabilityRisesWithMagnitude() throws {
        let (before, after) = try prune(.della, density: 0.5, epsilon: 0.3, rescale: false)
        let kept = Double(after.filter { $0 != 0 }.count) / Double(after.count)
        XCTAssertEqual(kept, 0.5, accuracy: 0.01)
        // within rows, the top magnitude decile is kept about 0.2 + 0.6·0.95 ≈ 0.77 of the time, the bottom ≈ 0.23
        var top = 0, topN = 0, bottom = 0, bottomN = 0
        for r in 0..<(before.count / 100) {
            let row = Array(before[(r * 100)..<(r * 100 + 100)])
            let order = row.indices.sorted { abs(row[$0]) < abs(row[$1]) }
            for (rank, j) in order.enumerated() {
                if rank >= 90 { topN += 1; if after[r * 100 + j] != 0 { top += 1 } }
                if rank < 10 { bottomN += 1; if after[r * 100 + j] != 0 { bottom += 1 } }
            }
        }
        XCTAssertEqual(Double(top) / Double(topN), 0.2 + 0.6 * 94.5 / 99, accuracy: 0.03)
        XCTAssertEqual(Double(bottom) / Double(bottomN), 0.2 + 0.6 * 4.5 / 99, accuracy: 0.03)
    }

    func testDellaRejectsEpsilonOutsideDensityRange() {
        XCTAssertThrowsError(try prune(.della, density: 0.9, epsilon: 0.15, rescale: true))
    }

    func testDareTiesMergeIsReproducibleWithSeed() throws {
        let shape: Shape = [200, 50]
        let base = Tensor(shape: shape, scalars: random(10_000, seed: 1))
        let ms = (2..<5).map { Tensor(shape: shape, scalars: random(10_000, seed: UInt64($0))) }
        let params = ResolvedParameters(global: [:], perModel: ms.map { _ in ["weight": .number(1), "density": .number(0.4)] })
        let m = try MergeMethodRegistry.method(named: "dare_ties")
        let a = try m.merge(base: base, models: ms, parameters: params, seed: 11)
        let b = try m.merge(base: base, models: ms, parameters: params, seed: 11)
        let c = try m.merge(base: base, models: ms, parameters: params, seed: 12)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
    }
}
