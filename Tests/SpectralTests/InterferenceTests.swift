import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Checkpoints
import Tensors
import XCTest
@testable import Spectral

/// `Interference` against scripts/interference_reference.py (numpy, float64) on the fixture
/// family's three full fine-tunes (committed Fixtures/expected_interference.json).
final class InterferenceTests: XCTestCase {
    struct Expected: Decodable {
        struct M: Decodable { var cosine: Double; var sign_conflict: Double?; var both_kept: Int; var overlap: Double }
        struct P: Decodable { var first: String; var second: String; var overall: M; var matrices: [String: M] }
        var density: Double; var rank: Int; var tasks: [String]; var thresholds: [String: Double]; var pairs: [P]
    }

    func testMatchesTheNumpyReferenceOnTheFixtureFamily() throws {
        let e = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Paths.fixtures.appendingPathComponent("expected_interference.json")))
        let family = Paths.root.appendingPathComponent("fixtures/family")
        let base = try Checkpoint(path: family.appendingPathComponent("base").path)
        let fts = try e.tasks.map { try FineTune.open(path: family.appendingPathComponent($0).path, lora: false) }
        var o = Interference.Options()
        o.density = e.density; o.rank = e.rank
        let r = try Interference.run(base: base, fineTunes: fts, options: o)
        for (t, th) in zip(r.thresholds, e.tasks.map { e.thresholds[$0]! }) { XCTAssertEqual(t, th, accuracy: 1e-7 * max(1, abs(th))) }
        XCTAssertEqual(r.pairs.count, e.pairs.count)
        for (p, q) in zip(r.pairs, e.pairs) {
            XCTAssertEqual([p.first, p.second], [q.first, q.second])
            XCTAssertEqual(p.overall.cosine, q.overall.cosine, accuracy: 1e-6)
            XCTAssertEqual(p.overall.bothKept, q.overall.both_kept)
            XCTAssertEqual(p.overall.signConflict ?? -1, q.overall.sign_conflict ?? -1, accuracy: 1e-12)
            XCTAssertEqual(p.overall.overlap, q.overall.overlap, accuracy: 1e-4)
            XCTAssertEqual(p.matrices.count, q.matrices.count)
            for m in p.matrices {
                let x = try XCTUnwrap(q.matrices[m.name], m.name)
                XCTAssertEqual(m.metrics.cosine, x.cosine, accuracy: 1e-5, m.name)
                XCTAssertEqual(m.metrics.bothKept, x.both_kept, m.name)
                XCTAssertEqual(m.metrics.signConflict ?? -1, x.sign_conflict ?? -1, accuracy: 1e-12, m.name)
                XCTAssertEqual(m.metrics.overlap, x.overlap, accuracy: 1e-4, m.name)
            }
        }
    }

    /// Invariants: a task vector against itself has cosine 1, no sign conflict and overlap 1;
    /// against its negation, cosine −1 and every kept entry in conflict.
    func testSelfAndNegation() throws {
        let dir = tempDir("interference")
        defer { try? FileManager.default.removeItem(at: dir) }
        let w0 = random(12, 8, seed: 1), t = random(12, 8, seed: 2, std: 0.1)
        let plus = Tensor(shape: w0.shape, scalars: zip(w0.scalars, t.scalars).map { $0 + $1 })
        let minus = Tensor(shape: w0.shape, scalars: zip(w0.scalars, t.scalars).map { $0 - $1 })
        try writeSafetensors(dir.appendingPathComponent("base.safetensors"), [("model.layers.0.mlp.up_proj.weight", w0)])
        try writeSafetensors(dir.appendingPathComponent("a.safetensors"), [("model.layers.0.mlp.up_proj.weight", plus)])
        try writeSafetensors(dir.appendingPathComponent("b.safetensors"), [("model.layers.0.mlp.up_proj.weight", plus)])
        try writeSafetensors(dir.appendingPathComponent("c.safetensors"), [("model.layers.0.mlp.up_proj.weight", minus)])
        let base = try Checkpoint(path: dir.appendingPathComponent("base.safetensors").path)
        let fts = try ["a", "b", "c"].map { try FineTune.open(path: dir.appendingPathComponent("\($0).safetensors").path, lora: false) }
        var o = Interference.Options(); o.rank = 4
        let r = try Interference.run(base: base, fineTunes: fts, options: o)
        let ab = r.pairs[0], ac = r.pairs[1]
        XCTAssertEqual(ab.overall.cosine, 1, accuracy: 1e-6)
        XCTAssertEqual(ab.overall.signConflict, 0)
        XCTAssertEqual(ab.overall.overlap, 1, accuracy: 1e-5)
        XCTAssertEqual(ac.overall.cosine, -1, accuracy: 1e-5)
        XCTAssertEqual(ac.overall.signConflict ?? 0, 1, accuracy: 1e-12)
        XCTAssertEqual(ac.overall.bothKept, 96 - Int(96 * 0.8), "top 20% of 96 entries, ties kept")
        XCTAssertEqual(ac.overall.overlap, 1, accuracy: 1e-5)
    }

    /// A NaN or ±Inf in the base or a fine-tune is a typed error naming the tensor and the file,
    /// before any SVD sees it.
    func testNonFiniteInputsAreRefusedNamingTensorAndFile() throws {
        let dir = tempDir("interference-nan")
        defer { try? FileManager.default.removeItem(at: dir) }
        let name = "model.layers.0.mlp.up_proj.weight"
        let w0 = random(12, 8, seed: 1), t = random(12, 8, seed: 2, std: 0.1)
        var bad = Tensor(shape: w0.shape, scalars: zip(w0.scalars, t.scalars).map { $0 + $1 })
        bad.scalars[5] = .nan; bad.scalars[7] = -.infinity
        try writeSafetensors(dir.appendingPathComponent("base.safetensors"), [(name, w0)])
        try writeSafetensors(dir.appendingPathComponent("good.safetensors"), [(name, Tensor(shape: w0.shape, scalars: zip(w0.scalars, t.scalars).map { $0 - $1 }))])
        try writeSafetensors(dir.appendingPathComponent("bad.safetensors"), [(name, bad)], allowNonFinite: true)
        var o = Interference.Options(); o.rank = 4
        let open = { (f: String) in try FineTune.open(path: dir.appendingPathComponent(f).path, lora: false) }
        let base = try Checkpoint(path: dir.appendingPathComponent("base.safetensors").path)
        XCTAssertThrowsError(try Interference.run(base: base, fineTunes: [try open("good.safetensors"), try open("bad.safetensors")], options: o)) { e in
            XCTAssertEqual(e as? SpectralError, .nonFinite(tensor: name, path: dir.appendingPathComponent("bad.safetensors").path, count: 2))
        }
        // The same file as the base.
        let badBase = try Checkpoint(path: dir.appendingPathComponent("bad.safetensors").path)
        XCTAssertThrowsError(try Interference.run(base: badBase, fineTunes: [try open("good.safetensors"), try open("base.safetensors")], options: o)) { e in
            XCTAssertEqual(e as? SpectralError, .nonFinite(tensor: name, path: dir.appendingPathComponent("bad.safetensors").path, count: 2))
        }
    }

    /// The heat map: well-formed SVG, one cell per (pair, matrix) holding that matrix's value,
    /// the largest value in the scale's top colour and the smallest in its bottom one.
    func testHeatMapHasOneCellPerMatrixColouredByItsValue() throws {
        let family = Paths.root.appendingPathComponent("fixtures/family")
        let base = try Checkpoint(path: family.appendingPathComponent("base").path)
        let fts = try ["capital-full", "continent-full", "profession-full"].map { try FineTune.open(path: family.appendingPathComponent($0).path, lora: false) }
        let r = try Interference.run(base: base, fineTunes: fts, options: Interference.Options())
        for metric in InterferencePlot.Metric.allCases {
            let svg = InterferencePlot.svg(r, metric: metric)
            let doc = try XMLDocument(xmlString: svg)
            let cells = try doc.nodes(forXPath: "//*[local-name()='rect'][*[local-name()='title']]")
            XCTAssertEqual(cells.count, r.pairs.reduce(0) { $0 + $1.matrices.count }, metric.rawValue)
            XCTAssertEqual(r.pairs.count, 3)
            XCTAssertEqual(r.pairs[0].matrices.count, 28, "4 layers x 7 module types")
            let values = r.pairs.flatMap { $0.matrices.compactMap { metric.value($0.metrics) } }
            let (lo, hi) = (values.min()!, values.max()!)
            for p in r.pairs {
                for m in p.matrices {
                    guard let v = metric.value(m.metrics) else { continue }
                    let title = "\(m.moduleType) layer \(m.layer.map(String.init) ?? "-"): \(String(format: "%.4f", v))"
                    XCTAssertTrue(cells.contains { $0.stringValue == title }, title)
                    // The cell's own fill: the attribute of the <rect> that holds this <title>.
                    let rect = try XCTUnwrap(svg.components(separatedBy: "\n").first { $0.hasPrefix("<rect") && $0.contains("<title>\(title)</title>") }, title)
                    let fill = rect.components(separatedBy: "fill=\"").dropFirst().first.map { String($0.prefix(7)) }
                    XCTAssertEqual(fill, InterferencePlot.color((v - lo) / (hi - lo)).fill, title)
                    if v == hi { XCTAssertEqual(fill, "#fde725") }
                    if v == lo { XCTAssertEqual(fill, "#440154") }
                }
            }
        }
        // The scale is ordered: darker (less luminous) for smaller values.
        func luminance(_ hex: String) -> Double {
            let v = Int(hex.dropFirst(), radix: 16)!
            return 0.2126 * Double(v >> 16) + 0.7152 * Double((v >> 8) & 255) + 0.0722 * Double(v & 255)
        }
        let ramp = stride(from: 0.0, through: 1.0, by: 0.05).map { luminance(InterferencePlot.color($0).fill) }
        for (a, b) in zip(ramp, ramp.dropFirst()) { XCTAssertLessThan(a, b) }
    }
}
