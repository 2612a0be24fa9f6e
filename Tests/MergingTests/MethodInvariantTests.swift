import XCTest
@testable import Merging
import Tensors

/// Invariants that hold whatever the reference implementation says.
final class MethodInvariantTests: XCTestCase {
    func random(_ shape: Shape, seed: UInt64, scale: Float = 1) -> Tensor {
        var r = SeededRandom(seed: seed)
        return Tensor(shape: shape, scalars: (0..<shape.elementCount).map { _ in Float(r.nextUniform() * 2 - 1) * scale })
    }

    func p(_ global: [String: ParameterValue] = [:], _ perModel: [[String: ParameterValue]]) -> ResolvedParameters {
        ResolvedParameters(global: global, perModel: perModel)
    }

    func testLinearWeightsOneZeroGiveFirstModel() throws {
        let a = random([300, 7], seed: 1), b = random([300, 7], seed: 2)
        let out = try LinearMerge().merge(base: nil, models: [a, b], parameters: p([:], [["weight": .number(1)], ["weight": .number(0)]]))
        XCTAssertEqual(out, a)
    }

    func testLinearZeroWeightSumIsAnError() throws {
        let a = random([10], seed: 1), b = random([10], seed: 2)
        XCTAssertThrowsError(try LinearMerge().merge(base: nil, models: [a, b],
                                                     parameters: p([:], [["weight": .number(1)], ["weight": .number(-1)]])))
    }

    func testSlerpEndpoints() throws {
        let a = random([64, 33], seed: 3), b = random([64, 33], seed: 4)
        let t0 = try SlerpMerge().merge(base: a, models: [b], parameters: p(["t": .number(0)], [[:]]))
        XCTAssertEqual(t0, a)
        let t1 = try SlerpMerge().merge(base: a, models: [b], parameters: p(["t": .number(1)], [[:]]))
        for (x, y) in zip(t1.scalars, b.scalars) { XCTAssertEqual(x, y, accuracy: 1e-6) }
    }

    func testTaskArithmeticLambdaZeroGivesBase() throws {
        let base = random([50, 40], seed: 5)
        let ms = (6..<9).map { random([50, 40], seed: UInt64($0)) }
        for name in ["task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "della_linear"] {
            let m = try MergeMethodRegistry.method(named: name)
            let density: Double = name.hasPrefix("della") ? 0.5 : 0.4
            let out = try m.merge(base: base, models: ms,
                                  parameters: p(["lambda": .number(0)], ms.map { _ in ["weight": .number(1), "density": .number(density)] }))
            XCTAssertEqual(out, base, name)
        }
    }

    func testTiesOneModelFullDensityIsTaskArithmetic() throws {
        let base = random([70, 30], seed: 10), x = random([70, 30], seed: 11)
        let params = p(["lambda": .number(0.8)], [["weight": .number(0.6), "density": .number(1)]])
        let ties = try MergeMethodRegistry.method(named: "ties").merge(base: base, models: [x], parameters: params)
        // TIES normalises by the weight: base + λ·δ; task arithmetic (normalize: false) gives base + λ·w·δ.
        let ta = try MergeMethodRegistry.method(named: "task_arithmetic").merge(
            base: base, models: [x], parameters: p(["lambda": .number(0.8), "normalize": .bool(true)], [["weight": .number(0.6)]]))
        for (a, b) in zip(ties.scalars, ta.scalars) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        let expected = zip(base.scalars, x.scalars).map { b, x in Float(Double(b) + 0.8 * (Double(x) - Double(b))) }
        for (a, e) in zip(ties.scalars, expected) { XCTAssertEqual(a, e, accuracy: 1e-6) }
    }

    /// Localize-and-Stitch (He et al. 2024, §3.2): each task keeps its top-density |τ_t| of the
    /// tensor; an entry kept by one task gets that task's τ in full, one kept by several the mean
    /// of theirs, one kept by none the base. Disjoint masks stitch to the sum of the masked task
    /// vectors; at density 1 every entry is the mean of the models (a uniform linear merge).
    func testLocalizeStitchAveragesOnlyWhereMasksOverlap() throws {
        let m = try MergeMethodRegistry.method(named: "localize_stitch")
        XCTAssertEqual(m.parameters.first { $0.name == "density" }?.defaultValue, .number(0.05), "the dataless variant's ρ")
        let n = 40
        let base = random([n], seed: 20)
        // Task vectors with distinct magnitudes: task 0 is large on entries 0..<8, task 1 on 4..<12.
        func tuned(_ big: Range<Int>, seed: UInt64) -> (Tensor, [Float]) {
            var r = SeededRandom(seed: seed)
            let tau: [Float] = (0..<n).map { big.contains($0) ? Float(2 + $0) * (r.nextUniform() < 0.5 ? -1 : 1) : Float(r.nextUniform() * 0.5 + 0.01) }
            return (Tensor(shape: [n], scalars: zip(base.scalars, tau).map { Float(Double($0) + Double($1)) }), tau)
        }
        let (a, ta) = tuned(0..<8, seed: 21), (b, tb) = tuned(4..<12, seed: 22)
        let d = p([:], [["density": .number(0.2)], ["density": .number(0.2)]])   // 8 of 40 entries each
        let out = try m.merge(base: base, models: [a, b], parameters: d)
        for j in 0..<n {
            let da = Double(a.scalars[j]) - Double(base.scalars[j]), db = Double(b.scalars[j]) - Double(base.scalars[j])
            let want: Double
            switch (j < 8, (4..<12).contains(j)) {
            case (true, true): want = (da + db) / 2
            case (true, false): want = da
            case (false, true): want = db
            case (false, false): want = 0
            }
            XCTAssertEqual(Double(out.scalars[j]), Double(base.scalars[j]) + want, accuracy: 1e-5, "entry \(j) (τ \(ta[j]), \(tb[j]))")
        }
        // Disjoint masks: the sum of the masked task vectors.
        let (c, _) = tuned(20..<28, seed: 23)
        let disjoint = try m.merge(base: base, models: [a, c], parameters: d)
        for j in 0..<n {
            let dj = j < 8 ? Double(a.scalars[j]) - Double(base.scalars[j]) : (20..<28).contains(j) ? Double(c.scalars[j]) - Double(base.scalars[j]) : 0
            XCTAssertEqual(Double(disjoint.scalars[j]), Double(base.scalars[j]) + dj, accuracy: 1e-5, "entry \(j)")
        }
        // Density 1: the uniform average of the models.
        let all = try m.merge(base: base, models: [a, b], parameters: p([:], [["density": .number(1)], ["density": .number(1)]]))
        let linear = try LinearMerge().merge(base: nil, models: [a, b], parameters: p([:], [["weight": .number(1)], ["weight": .number(1)]]))
        for (x, y) in zip(all.scalars, linear.scalars) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }

    func testPassthroughCopies() throws {
        let x = random([5, 5], seed: 12)
        XCTAssertEqual(try PassthroughMerge().merge(base: nil, models: [x]), x)
    }

    func testUniformSoupOfIdenticalModelsIsTheModel() throws {
        let x = random([100, 17], seed: 13)
        let out = try LinearMerge().merge(base: nil, models: [x, x, x], parameters: p([:], Array(repeating: ["weight": .number(1)], count: 3)))
        for (a, b) in zip(out.scalars, x.scalars) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        let k = try KarcherMerge().merge(base: nil, models: [x, x])
        for (a, b) in zip(k.scalars, x.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testBreadcrumbsTinyTensorKeepsItsTaskVector() throws {
        // gamma·n < 1: mergekit zeroes the task vector; we drop only the smallest magnitudes.
        let base = Tensor(zeros: [8])
        let x = Tensor(shape: [8], scalars: [1, -2, 3, -4, 5, -6, 7, -8])
        let out = try MergeMethodRegistry.method(named: "breadcrumbs").merge(
            base: base, models: [x], parameters: p([:], [["weight": .number(1), "density": .number(0.5)]]))
        XCTAssertEqual(out.scalars, [0, 0, 0, 0, 5, -6, 7, -8])
    }

    func testMagnitudeTiesKeepLowerIndexFirst() throws {
        let base = Tensor(zeros: [6])
        let x = Tensor(shape: [6], scalars: [1, -1, 1, -1, 2, 1])
        let out = try MergeMethodRegistry.method(named: "ties").merge(
            base: base, models: [x], parameters: p([:], [["weight": .number(1), "density": .number(0.5)]]))
        XCTAssertEqual(out.scalars, [1, -1, 0, 0, 2, 0])
    }
}

final class RankSelectionTests: XCTestCase {
    func testRadixSelectionMatchesSortingWithTiesAndSpecials() {
        var r = SeededRandom(seed: 5)
        // Few distinct magnitudes (many ties), signed zeros, infinities and NaN.
        var values: [Float] = (0..<5000).map { _ in Float(Int(r.nextUniform() * 40) - 20) * 0.125 }
        values += [0, -0, .infinity, -.infinity, .nan, 1e-30, -1e-30]
        values.withUnsafeBufferPointer { v in
            for k in [0, 1, 17, 2500, 4999, 5003, v.count - 1] {
                XCTAssertEqual(RankSelection.keyOfRank(v, k), RankSelection.keyOfRankBySorting(v, k), "rank \(k)")
            }
        }
    }
}

extension MethodInvariantTests {
    /// Rows that no fine-tune changed stay the base's in the SVD-based merges, even though the
    /// stacked singular vectors are then rank deficient (the reference's full polar factor and
    /// Iso-C's flattened spectrum fill the null space with directions chosen by rounding).
    /// The changed rows still carry a real merge (not the base).
    func testSVDMergesLeaveUntouchedRowsAlone() throws {
        let (m, n) = (96, 16)
        let base = random([m, n], seed: 20)
        // Each task changes only rows 0..<12 (rank ≤ 12 < k = 16 / 1, 16 / 3).
        let tasks = (21..<24).map { seed -> Tensor in
            let d = random([12, n], seed: UInt64(seed), scale: 0.1)
            var x = base
            for i in 0..<(12 * n) { x.scalars[i] += d.scalars[i] }
            return x
        }
        for name in ["tsv", "iso_c", "iso_cts"] {
            for models in [[tasks[0]], tasks] {
                let out = try MergeMethodRegistry.method(named: name).merge(base: base, models: models,
                                                                              parameters: p([:], models.map { _ in [:] }))
                var untouched = 0.0, changed = 0.0
                for i in 0..<m { for j in 0..<n {
                    let d = abs(Double(out.scalars[i * n + j]) - Double(base.scalars[i * n + j]))
                    if i < 12 { changed = max(changed, d) } else { untouched = max(untouched, d) }
                } }
                XCTAssertLessThan(untouched, 1e-6, "\(name), \(models.count) task(s): rows no task changed moved by \(untouched)")
                XCTAssertGreaterThan(changed, 1e-3, "\(name), \(models.count) task(s)")
            }
        }
    }
}
