import Foundation
import Tensors
import XCTest
@testable import Checkpoints

final class SparseDeltaTests: XCTestCase {
    private func sample() -> [SparseDeltaTensor] {
        [
            SparseDeltaTensor(name: "a.weight", shape: [3, 4], dtype: .f32, indices: [0, 5, 11], values: [1.5, -2.25, 3e-7]),
            SparseDeltaTensor(name: "b.bias", shape: [6], dtype: .bf16, indices: [2], values: [0.5]),
            SparseDeltaTensor(name: "c.empty", shape: [2, 2], dtype: .f16, indices: [], values: []),
        ]
    }

    func testRoundTripIsExact() throws {
        let dir = try makeTemporaryDirectory()
        let url = dir.appendingPathComponent("d.safetensors")
        try SparseDeltaWriter.write(sample(), to: url)
        let f = try SparseDeltaFile(path: url.path)
        XCTAssertEqual(f.tensorNames, ["a.weight", "b.bias", "c.empty"])
        for t in sample() {
            XCTAssertEqual(try f.sparse(t.name), t)
        }
        XCTAssertEqual(f.density("a.weight"), 3.0 / 12.0)
        var expected = [Float](repeating: 0, count: 12)
        expected[0] = 1.5; expected[5] = -2.25; expected[11] = 3e-7
        XCTAssertEqual(try f.dense("a.weight").scalars, expected)
        XCTAssertEqual(f.file.metadata["format"], "weightsmith-sparse-delta")
        // No temporary sibling is left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["d.safetensors"])
    }

    /// `inspect` of a sparse delta (given alone) lists kept entries and density per tensor, in
    /// text and JSON; a model has no such section.
    func testInspectShowsDensityPerTensor() throws {
        let dir = try makeTemporaryDirectory()
        let url = dir.appendingPathComponent("d.safetensors")
        try SparseDeltaWriter.write(sample(), to: url)
        let r = try InspectReport(checkpoint: ModelReference.open(url.path, allowDeltas: true), stats: false)
        let rows = try XCTUnwrap(r.sparseRows)
        XCTAssertEqual(rows.map(\.name), ["a.weight", "b.bias", "c.empty"])
        XCTAssertEqual(rows.map(\.kept), [3, 1, 0])
        XCTAssertEqual(rows.map(\.density), [0.25, 1.0 / 6.0, 0])
        let text = r.text()
        XCTAssertTrue(text.contains("sparse delta: 3 tensors, 4 kept of 22 dense entries (density 18.18%)"), text)
        XCTAssertTrue(text.contains("  a.weight  [3, 4]     3   25.00%\n  b.bias    [6]        1   16.67%\n  c.empty   [2, 2]     0       0%\n"), text)
        XCTAssertTrue(r.json().contains("{\"name\": \"a.weight\", \"shape\": [3, 4], \"kept\": 3, \"density\": 0.25}"), r.json())
        let plain = dir.appendingPathComponent("m.safetensors")
        let w = try SafetensorsWriter(url: plain, entries: [TensorEntry(name: "w", dtype: .f32, shape: [2])])
        try w.write("w", Tensor(shape: [2], scalars: [1, 2]))
        try w.finish()
        let m = try InspectReport(checkpoint: ModelReference.open(plain.path), stats: false)
        XCTAssertNil(m.sparseRows)
        XCTAssertFalse(m.text().contains("sparse delta"))
    }

    func testSizeOnDiskIsProportionalToKeptEntries() throws {
        let dir = try makeTemporaryDirectory()
        func size(_ k: Int) throws -> Int {
            let url = dir.appendingPathComponent("k\(k).safetensors")
            let idx = (0..<k).map { Int64($0 * 7) }
            let t = SparseDeltaTensor(name: "w", shape: [1000, 1000], dtype: .f32, indices: idx, values: idx.map { Float($0) })
            try SparseDeltaWriter.write([t], to: url)
            return try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int
        }
        let s0 = try size(0), s1 = try size(1000), s2 = try size(2000)
        XCTAssertEqual(s1 - s0, 1000 * 12, accuracy: 16)  // 8 index + 4 value bytes per entry (header padding aside)
        XCTAssertEqual(s2 - s1, 1000 * 12, accuracy: 16)
        XCTAssertLessThan(s2, 1000 * 1000 * 4 / 100)
    }

    /// Writes a file whose indices bypass the writer's checks (as a hostile producer would).
    private func hostile(_ indices: [Int64], values: Int, shape: [Int] = [10]) throws -> URL {
        let dir = try makeTemporaryDirectory()
        let url = dir.appendingPathComponent("h.safetensors")
        let entries = [TensorEntry(name: "w.idx", dtype: .i64, shape: Shape([indices.count])),
                       TensorEntry(name: "w.val", dtype: .f32, shape: Shape([values]))]
        let meta = ["format": "weightsmith-sparse-delta", "version": "1", "index_order": "row-major",
                    "shapes": "{\"w\":[\(shape.map(String.init).joined(separator: ","))]}"]
        let w = try SafetensorsWriter(url: url, entries: entries, metadata: meta)
        try indices.withUnsafeBytes { try w.write("w.idx", rawBytes: $0) }
        try [Float](repeating: 1, count: values).withUnsafeBufferPointer { try w.write("w.val", scalars: $0) }
        try w.finish()
        return url
    }

    func testHostileFilesGiveTypedErrors() throws {
        let oob = try hostile([1, 10], values: 2)
        XCTAssertThrowsError(try SparseDeltaFile(path: oob.path)) { e in
            XCTAssertEqual(e as? SparseDeltaError, .indexOutOfRange(path: oob.path, tensor: "w", position: 1, index: 10, size: 10))
            XCTAssertTrue("\(e)".contains(oob.path))
        }
        let neg = try hostile([-1], values: 1)
        XCTAssertThrowsError(try SparseDeltaFile(path: neg.path)) { e in
            XCTAssertEqual(e as? SparseDeltaError, .indexOutOfRange(path: neg.path, tensor: "w", position: 0, index: -1, size: 10))
        }
        let dup = try hostile([2, 2], values: 2)
        XCTAssertThrowsError(try SparseDeltaFile(path: dup.path)) { e in
            XCTAssertEqual(e as? SparseDeltaError, .duplicateIndex(path: dup.path, tensor: "w", position: 1, index: 2))
        }
        let desc = try hostile([5, 3], values: 2)
        XCTAssertThrowsError(try SparseDeltaFile(path: desc.path)) { e in
            XCTAssertEqual(e as? SparseDeltaError, .notAscending(path: desc.path, tensor: "w", position: 1, previous: 5, index: 3))
        }
        let count = try hostile([1, 2], values: 3)
        XCTAssertThrowsError(try SparseDeltaFile(path: count.path)) { e in
            XCTAssertEqual(e as? SparseDeltaError, .countMismatch(path: count.path, tensor: "w", indices: 2, values: 3))
        }
        // A plain checkpoint is refused as a sparse delta, by name.
        let dir = try makeTemporaryDirectory()
        let plain = dir.appendingPathComponent("p.safetensors")
        let w = try SafetensorsWriter(url: plain, entries: [TensorEntry(name: "w", dtype: .f32, shape: [2])])
        try w.write("w", Tensor(shape: [2], scalars: [1, 2]))
        try w.finish()
        XCTAssertThrowsError(try SparseDeltaFile(path: plain.path)) { e in
            guard case .notASparseDelta(let p, _)? = e as? SparseDeltaError else { return XCTFail("\(e)") }
            XCTAssertEqual(p, plain.path)
        }
    }

    func testWriterRefusesBadIndicesAndLeavesNoFile() throws {
        let dir = try makeTemporaryDirectory()
        let url = dir.appendingPathComponent("bad.safetensors")
        let t = SparseDeltaTensor(name: "w", shape: [4], dtype: .f32, indices: [3, 1], values: [1, 2])
        XCTAssertThrowsError(try SparseDeltaWriter.write([t], to: url)) { e in
            XCTAssertEqual(e as? SparseDeltaError, .notAscending(path: url.path, tensor: "w", position: 1, previous: 3, index: 1))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    func testComposingDisjointDeltasEqualsTheirSum() throws {
        var rng = SystemRandomNumberGenerator()
        let n = 64
        let dense1 = (0..<n).map { i in i % 3 == 0 ? Float.random(in: -1...1, using: &rng) : 0 }
        let dense2 = (0..<n).map { i in i % 3 == 1 ? Float.random(in: -1...1, using: &rng) : 0 }
        let dir = try makeTemporaryDirectory()
        let u1 = dir.appendingPathComponent("1.safetensors"), u2 = dir.appendingPathComponent("2.safetensors")
        try SparseDeltaWriter.write([SparseDelta.sparsify(name: "w", diff: Tensor(shape: [8, 8], scalars: dense1))], to: u1)
        try SparseDeltaWriter.write([SparseDelta.sparsify(name: "w", diff: Tensor(shape: [8, 8], scalars: dense2))], to: u2)
        let base = Tensor(shape: [8, 8], scalars: (0..<n).map { Float($0) * 0.125 })
        var composed = base
        try SparseDeltaFile(path: u1.path).sparse("w").add(into: &composed)
        try SparseDeltaFile(path: u2.path).sparse("w").add(into: &composed)
        let sum = (0..<n).map { base.scalars[$0] + dense1[$0] + dense2[$0] }
        XCTAssertEqual(composed.scalars, sum)
        XCTAssertEqual(try SparseDeltaFile(path: u1.path).count("w"), 22)
    }

    /// A file written by scripts/make_sparse_delta_fixtures.py (safetensors + numpy) reads back to
    /// the values the script records in sparse_delta_expected.json.
    func testPythonFixtureReadsBack() throws {
        let f = try SparseDeltaFile(path: Fixtures.url("sparse_delta.safetensors").path)
        let data = try Data(contentsOf: Fixtures.url("sparse_delta_expected.json"))
        let expected = try JSONSerialization.jsonObject(with: data) as! [String: [String: Any]]
        XCTAssertEqual(Set(f.tensorNames), Set(expected.keys))
        for (name, e) in expected {
            let dense = try f.dense(name)
            XCTAssertEqual(dense.shape.dims, e["shape"] as! [Int], name)
            let values = (e["dense"] as! [NSNumber]).map { $0.floatValue }
            XCTAssertEqual(dense.scalars, values, name)
            XCTAssertEqual(try f.sparse(name).dtype.rawValue, e["dtype"] as! String)
        }
    }
}
