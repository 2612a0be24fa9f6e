import Checkpoints
import Foundation
import Tensors
import XCTest
@testable import Grafting

final class MaskOverlapTests: XCTestCase {
    func testCountsSharesJaccardAndRatioToRandom() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-masks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let q0 = "model.layers.0.self_attn.q_proj.weight", u1 = "model.layers.1.mlp.up_proj.weight", q1 = "model.layers.1.self_attn.q_proj.weight"
        func delta(_ name: String, _ parts: [(String, [Int64])], eligible: Int?) throws -> SparseDeltaFile {
            let url = dir.appendingPathComponent(name)
            try SparseDeltaWriter.write(parts.map { SparseDeltaTensor(name: $0.0, shape: [4, 5], dtype: .f32, indices: $0.1, values: $0.1.map { _ in 0.5 }) },
                                        to: url, extraMetadata: eligible.map { ["weightsmith.graft.eligible": "\($0)"] } ?? [:])
            return try SparseDeltaFile(path: url.path)
        }
        // A: 4 entries in q0, 2 in u1; B: 2 in q0 (1 shared), 3 in u1 (2 shared), 1 in q1 (a tensor A lacks).
        let a = try delta("a.safetensors", [(q0, [0, 3, 7, 19]), (u1, [1, 2])], eligible: 100)
        let b = try delta("b.safetensors", [(q0, [3, 4]), (u1, [1, 2, 10]), (q1, [0])], eligible: 100)
        let p = try MaskOverlap.compare(a, b, first: "a", second: "b")
        XCTAssertEqual(p.overall, MaskOverlap.Counts(a: 6, b: 6, both: 3, universe: 100))
        XCTAssertEqual(p.overall.aInB, 0.5)
        XCTAssertEqual(p.overall.jaccard, 3.0 / 9.0)
        XCTAssertEqual(p.overall.ratioToRandom, 3 / (36.0 / 100), accuracy: 1e-12)
        // Per layer the universe is the listed tensors' entries: layer 1 holds u1 and q1 (40).
        XCTAssertEqual(p.layers.map(\.0), ["0", "1"])
        XCTAssertEqual(p.layers[0].1, MaskOverlap.Counts(a: 4, b: 2, both: 1, universe: 20))
        XCTAssertEqual(p.layers[1].1, MaskOverlap.Counts(a: 2, b: 4, both: 2, universe: 40))
        XCTAssertEqual(p.layers[1].1.ratioToRandom, 2 / (8.0 / 40), accuracy: 1e-12)
        XCTAssertEqual(p.modules.map(\.0), ["q_proj", "up_proj"])
        XCTAssertEqual(p.modules[0].1, MaskOverlap.Counts(a: 4, b: 3, both: 1, universe: 40))
        // Without an agreed eligible count, N is the listed tensors' entries (60).
        let c = try delta("c.safetensors", [(q0, [3, 4]), (u1, [1, 2, 10]), (q1, [0])], eligible: nil)
        XCTAssertEqual(try MaskOverlap.compare(a, c, first: "a", second: "c").overall.universe, 60)
        // A mask with itself: shares and Jaccard 1.
        let s = try MaskOverlap.compare(a, a, first: "a", second: "a").overall
        XCTAssertEqual([s.aInB, s.bInA, s.jaccard], [1, 1, 1])
        XCTAssertTrue(MaskOverlap.text([p]).contains("a × b    6    6      3   0.500   0.500   0.3333       8.33"), MaskOverlap.text([p]))
    }
}
