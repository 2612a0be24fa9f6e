import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Tensors
import XCTest
@testable import Spectral

/// Intruder repair (Shuttleworth et al. 2024, §5): a planted intruder is removed by λ = 0 and
/// untouched by λ = 1, the control scales the intended neighbour, and the PEFT-style adapter
/// refactorisation equals the dense repair where it is exact.
final class RepairTests: XCTestCase {
    /// A random orthogonal (n, n) matrix (Q of a seeded Gaussian).
    func orthogonal(_ n: Int, seed: UInt64) throws -> Tensor { try qr(random(n, n, seed: seed)).q }

    func column(_ q: Tensor, _ j: Int) -> [Float] { (0..<q.shape[0]).map { q.scalars[$0 * q.shape[1] + j] } }

    func outer(_ u: [Float], _ v: [Float], _ s: Float) -> [Float] {
        var o = [Float](repeating: 0, count: u.count * v.count)
        for i in u.indices { for j in v.indices { o[i * v.count + j] = s * u[i] * v[j] } }
        return o
    }

    func relative(_ a: [Float], _ b: [Float]) -> Double {
        let d = zip(a, b).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
        return d / b.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
    }

    /// W0 (32, 24) = Σ_{i<24} s_i p_i q_iᵀ with s = 10 … 1 and a small last value s_23 = 1e-4; the
    /// planted intruder is σ_p u vᵀ with u = p_31 (orthogonal to every left singular vector of W0)
    /// and v = q_23 (the right vector of the small value), so W = W0 + σ_p u vᵀ has the triplet
    /// (√(σ_p² + s_23²), (σ_p u + s_23 p_23)/σ', v): λ = 0 leaves W0 − s_23 p_23 vᵀ, 3e-6 relative
    /// to W0. (s_23 is not smaller because a float32 SVD cannot resolve the vector of a value
    /// below ~1e-5 σ_1: at 1e-6 LAPACK's 24th left vector of W0 had cos 0.54 with u.)
    struct Planted {
        var w0: Tensor, w: Tensor, u: [Float], v: [Float], sigma: Float, p: Tensor, q: Tensor, s: [Float]
    }

    func planted(sigma: Float = 5.7) throws -> Planted {
        let (m, n) = (32, 24)
        let p = try orthogonal(m, seed: 11), q = try orthogonal(n, seed: 12)
        var s = (0..<n).map { Float(10) - Float($0) * 9 / Float(n - 2) }
        s[n - 1] = 1e-4
        var w0 = [Float](repeating: 0, count: m * n)
        for i in 0..<n {
            let o = outer(column(p, i), column(q, i), s[i])
            for k in w0.indices { w0[k] += o[k] }
        }
        let u = column(p, m - 1), v = column(q, n - 1)
        let plant = outer(u, v, sigma)
        let w = zip(w0, plant).map { $0 + $1 }
        return Planted(w0: Tensor(shape: [m, n], scalars: w0), w: Tensor(shape: [m, n], scalars: w), u: u, v: v, sigma: sigma, p: p, q: q, s: s)
    }

    func testPlantedIntruderIsFoundAndRemovedByLambdaZero() throws {
        let pl = try planted()
        let d = try RepairDecomposition.compute(name: "model.layers.0.mlp.up_proj.weight", base: pl.w0, tuned: pl.w, topK: 16, epsilon: 0.5)
        // σ_p = 5.7 sits between s_10 = 5.91 and s_11 = 5.5 of W0 (10 − 9i/22): rank 11 of W.
        XCTAssertEqual(d.profile.intruders.map(\.rank), [11])
        XCTAssertLessThan(d.profile.intruders[0].maxCosine, 1e-2)
        XCTAssertEqual(Double(d.s[11]), Double(pl.sigma), accuracy: 1e-5)
        XCTAssertEqual(d.selected(.topIntruder), [11])
        XCTAssertEqual(d.selected(.allIntruders), [11])
        var w = pl.w.scalars
        d.apply(to: &w, lambda: 0, ranks: d.selected(.topIntruder))
        XCTAssertLessThan(relative(w, pl.w0.scalars), 1e-5, "λ = 0 must give back W0")
        XCTAssertEqual(d.changeNorm(lambda: 0, ranks: [11]), Double(pl.sigma), accuracy: 1e-5)
        // λ = 0.5 halves the planted direction: W' = W0 + σ_p/2 u vᵀ.
        var half = pl.w.scalars
        d.apply(to: &half, lambda: 0.5, ranks: [11])
        let expected = zip(pl.w0.scalars, outer(pl.u, pl.v, pl.sigma / 2)).map { $0 + $1 }
        XCTAssertLessThan(relative(half, expected), 1e-5)
    }

    func testLambdaOneLeavesTheMatrixUntouched() throws {
        let pl = try planted()
        let d = try RepairDecomposition.compute(name: "w", base: pl.w0, tuned: pl.w, topK: 16, epsilon: 0.5)
        var w = pl.w.scalars
        d.apply(to: &w, lambda: 1, ranks: d.selected(.topIntruder))
        XCTAssertEqual(w, pl.w.scalars, "λ = 1 is the identity, bit for bit")
        XCTAssertEqual(d.changeNorm(lambda: 1, ranks: [11]), 0)
    }

    func testNoIntruderNoChange() throws {
        let pl = try planted()
        // Tuning along W0's own top direction creates no intruder.
        var w = pl.w0.scalars
        let o = outer(column(pl.p, 0), column(pl.q, 0), 3)
        for k in w.indices { w[k] += o[k] }
        let d = try RepairDecomposition.compute(name: "w", base: pl.w0, tuned: Tensor(shape: pl.w0.shape, scalars: w), topK: 16, epsilon: 0.5)
        XCTAssertTrue(d.profile.intruders.isEmpty)
        XCTAssertTrue(d.selected(.topIntruder).isEmpty)
        XCTAssertTrue(d.selected(.control).isEmpty)
        XCTAssertNil(RepairChange(d, target: .topIntruder, lambda: 0))
    }

    func testControlScalesTheNeighbour() throws {
        let pl = try planted()
        let d = try RepairDecomposition.compute(name: "w", base: pl.w0, tuned: pl.w, topK: 16, epsilon: 0.5)
        // The intruder is rank 11; its neighbour rank 12 is W0's triplet (s_11, p_11, q_11).
        XCTAssertEqual(d.selected(.control), [12])
        XCTAssertGreaterThan(d.profile.maxCosines[12], 0.99)
        var w = pl.w.scalars
        d.apply(to: &w, lambda: 0.5, ranks: d.selected(.control))
        let expected = zip(pl.w.scalars, outer(column(pl.p, 11), column(pl.q, 11), -0.5 * pl.s[11])).map { $0 + $1 }
        XCTAssertLessThan(relative(w, expected), 1e-5, "the control halves W0's 12th direction and nothing else")
        let change = try XCTUnwrap(RepairChange(d, target: .control, lambda: 0.5))
        XCTAssertEqual(change.intruderRank, 11)
        XCTAssertEqual(change.directions.map(\.rank), [12])
        XCTAssertEqual(change.directions[0].role, "control")
        XCTAssertEqual(change.changeNorm, 0.5 * Double(pl.s[11]), accuracy: 1e-5)
        // At the top of the spectrum the control falls back to the lower neighbour.
        let big = try planted(sigma: 20)
        let d2 = try RepairDecomposition.compute(name: "w", base: big.w0, tuned: big.w, topK: 10, epsilon: 0.5)
        XCTAssertEqual(d2.selected(.topIntruder), [0])
        XCTAssertEqual(d2.selected(.control), [1])
    }

    /// A rank-2 LoRA whose update is the planted direction (B = [a u, b u], A = [v; v]/…): the
    /// repaired update λσ_p u vᵀ + (λ − 1) s_23 p_23 vᵀ has rank 1 ≤ r, so the refactorised adapter
    /// reproduces the dense repair exactly (to float rounding).
    func testAdapterRefactorisationEqualsDenseRepairWhereExact() throws {
        let pl = try planted()
        let (m, n, r) = (32, 24, 2)
        let scale: Float = 2  // alpha = 4, r = 2
        var b = [Float](repeating: 0, count: m * r), a = [Float](repeating: 0, count: r * n)
        for i in 0..<m { b[i * r] = 0.75 * pl.u[i]; b[i * r + 1] = 0.25 * pl.u[i] }
        for j in 0..<n { a[j] = pl.v[j] * pl.sigma / scale; a[n + j] = pl.v[j] * pl.sigma / scale }
        let at = Tensor(shape: [r, n], scalars: a), bt = Tensor(shape: [m, r], scalars: b)
        var w = pl.w0.scalars
        let delta = matmul(bt, at)
        for k in w.indices { w[k] += scale * delta.scalars[k] }
        XCTAssertLessThan(relative(w, pl.w.scalars), 1e-6)
        let d = try RepairDecomposition.compute(name: "w", base: pl.w0, tuned: Tensor(shape: [m, n], scalars: w), topK: 16, epsilon: 0.5)
        for lambda in [0.0, 0.3, 0.75] {
            let ranks = d.selected(.allIntruders)
            var dense = w
            d.apply(to: &dense, lambda: lambda, ranks: ranks)
            let f = try d.refactorised(a: at, b: bt, scale: scale, lambda: lambda, ranks: ranks)
            XCTAssertEqual(f.a.shape, [r, n]); XCTAssertEqual(f.b.shape, [m, r])
            XCTAssertLessThan(f.truncation, 1e-5)
            var merged = pl.w0.scalars
            let nd = matmul(f.b, f.a)
            for k in merged.indices { merged[k] += scale * nd.scalars[k] }
            XCTAssertLessThan(relative(merged, dense), 1e-5, "λ = \(lambda): adapter output equals the full repair")
        }
    }

    /// When ΔW' has rank r + 1 the truncation drops exactly the smallest singular value: the
    /// reported loss equals σ_{r+1} / ‖ΔW'‖ computed independently by a full SVD.
    func testTruncationLossIsReported() throws {
        let pl = try planted()
        let (m, n, r) = (32, 24, 1)
        // A rank-1 LoRA 20 u (q_5 + q_7)ᵀ/√2: W's top vector mixes u with p_5 and p_7 (an intruder,
        // cos ≈ 0.3) and its right vector is not in A's row space, so ΔW' has rank 2 > r.
        let q57 = zip(column(pl.q, 5), column(pl.q, 7)).map { ($0 + $1) / Float(2).squareRoot() }
        let bt = Tensor(shape: [m, r], scalars: pl.u.map { $0 * 20 }), at = Tensor(shape: [r, n], scalars: q57)
        var w = pl.w0.scalars
        let delta = matmul(bt, at)
        for k in w.indices { w[k] += delta.scalars[k] }
        let d = try RepairDecomposition.compute(name: "w", base: pl.w0, tuned: Tensor(shape: [m, n], scalars: w), topK: 16, epsilon: 0.5)
        let ranks = d.selected(.topIntruder)
        XCTAssertEqual(ranks.count, 1)
        var dense = w
        d.apply(to: &dense, lambda: 0.5, ranks: ranks)
        let dw = zip(dense, pl.w0.scalars).map { $0 - $1 }
        let full = try svd(Tensor(shape: [m, n], scalars: dw))
        let tot = full.s.map { Double($0) * Double($0) }.reduce(0, +)
        let expected = (full.s.dropFirst(r).map { Double($0) * Double($0) }.reduce(0, +) / tot).squareRoot()
        let f = try d.refactorised(a: at, b: bt, scale: 1, lambda: 0.5, ranks: ranks)
        XCTAssertGreaterThan(expected, 1e-3)
        XCTAssertEqual(f.truncation, expected, accuracy: 1e-4)
        // The kept component is the best rank-1 approximation (Eckart–Young).
        let nd = matmul(f.b, f.a)
        let best = full.u.scalars.indices.isEmpty ? [] : outer(column(full.u, 0), (0..<n).map { full.vt.scalars[$0] }, full.s[0])
        XCTAssertLessThan(relative(nd.scalars, best), 1e-4)
    }
}

/// The sweep's report pieces: the paper's percentages and the SVG.
final class RepairSweepTests: XCTestCase {
    func testPercentChangeIsRelativeToTheFineTune() {
        XCTAssertEqual(RepairSweepRow.percentChange(0.2, 0.25)!, -20, accuracy: 1e-12)
        // Forgetting 4.0 → 3.0: forgetting reduced by 25 %.
        XCTAssertEqual(RepairSweepRow.percentChange(3.0, 4.0)!, -25, accuracy: 1e-12)
        // A negative reference (the fine-tune lowered the loss) keeps the sign meaning "less".
        XCTAssertEqual(RepairSweepRow.percentChange(-0.3, -0.2)!, -50, accuracy: 1e-12)
        XCTAssertNil(RepairSweepRow.percentChange(0.1, 0))
        XCTAssertNil(RepairSweepRow.percentChange(nil, 1))
    }

    func testPlotIsWellFormedWithOnePointPerLambda() throws {
        let rows = [RepairSweepRow(label: "base", lambda: nil, exactMatch: 0, taskNLL: 5, forgettingLoss: 2, forgetting: 0, taskChangePercent: nil, forgettingChangePercent: nil, changeNorm: 0),
                    RepairSweepRow(label: "fine-tune", lambda: 1, exactMatch: 0.5, taskNLL: 1, forgettingLoss: 4, forgetting: 2, taskChangePercent: nil, forgettingChangePercent: nil, changeNorm: 0)]
            + [0.1, 0.5, 0.9].map { l in RepairSweepRow(label: "λ = \(l)", lambda: l, exactMatch: 0.4 + 0.1 * l, taskNLL: 1, forgettingLoss: 3 + l, forgetting: 1 + l,
                                                         taskChangePercent: nil, forgettingChangePercent: nil, changeNorm: 1) }
        let svg = RepairPlot.svg(rows: rows, title: "t <&>")
        final class Counter: NSObject, XMLParserDelegate {
            var circles = 0, polylines = 0
            func parser(_ p: XMLParser, didStartElement e: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                if e == "circle" { circles += 1 }
                if e == "polyline" { polylines += 1 }
            }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let c = Counter()
        parser.delegate = c
        let ok = parser.parse()
        XCTAssertTrue(ok, "the SVG parses as XML: \(String(describing: parser.parserError)) line \(parser.lineNumber)")
        XCTAssertEqual(c.circles, 4 + 2, "four λ points (1, 0.1, 0.5, 0.9) and two legend markers")
        XCTAssertEqual(c.polylines, 1)
        XCTAssertTrue(svg.contains("base: forgetting 0"))
    }
}
