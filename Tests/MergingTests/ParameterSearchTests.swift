import XCTest
@testable import Merging

final class ParameterSearchTests: XCTestCase {
    /// One parameter: an even grid of `budget` points, and the best trial is the grid's best point.
    func testOneParameterIsAGridWhoseBestIsTheGridsBest() throws {
        let f: (Double) -> Double = { x in (x - 0.37) * (x - 0.37) }
        let trials = try ParameterSearch.minimise([.init(name: "lambda", lo: 0, hi: 1)], budget: 21) { f($0[0]) }
        XCTAssertEqual(trials.map { $0.values[0] }, (0...20).map { Double($0) / 20 })
        let best = trials.min { $0.objective < $1.objective }!
        XCTAssertEqual(best.values[0], 0.35, accuracy: 1e-12)
    }

    /// Several parameters: CMA-ES finds the minimum of a shifted, rotated quadratic in the box,
    /// deterministically for a seed, and never leaves the box.
    func testCMAESFindsTheMinimumOfAQuadraticInTheBox() throws {
        let dims = (0..<4).map { ParameterSearch.Dimension(name: "x\($0)", lo: -1, hi: 3) }
        let target = [0.2, 1.5, -0.4, 2.1]
        let f: ([Double]) -> Double = { x in
            let d = zip(x, target).map { $0 - $1 }
            return d[0] * d[0] + 4 * d[1] * d[1] + (d[2] + d[3]) * (d[2] + d[3]) + 0.5 * d[3] * d[3]
        }
        let a = try ParameterSearch.minimise(dims, budget: 400, seed: 3, objective: f)
        let b = try ParameterSearch.minimise(dims, budget: 400, seed: 3, objective: f)
        XCTAssertEqual(a.map(\.objective), b.map(\.objective))
        for t in a { for (v, d) in zip(t.values, dims) { XCTAssertTrue(v >= d.lo && v <= d.hi) } }
        let best = a.min { $0.objective < $1.objective }!
        XCTAssertLessThan(best.objective, 1e-3, "\(best.values)")
        XCTAssertLessThan(best.objective, a[0].objective)
    }
}
