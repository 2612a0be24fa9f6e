import Foundation
import XCTest
@testable import Checkpoints
import Tensors

final class RoundTripTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ws-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    func testWriteThenReadKeepsValuesAndDtypes() throws {
        let dir = try temporaryDirectory()
        let url = dir.appendingPathComponent("a.safetensors")
        let a = Tensor(shape: [2, 3], scalars: [1, -2.5, 3.25, 0, 1e-3, 65504])
        let b = Tensor(shape: [3], scalars: [1, 2, 3])
        let entries = [TensorEntry(name: "a", dtype: .f32, shape: a.shape), TensorEntry(name: "b", dtype: .bf16, shape: b.shape),
                       TensorEntry(name: "c", dtype: .f16, shape: a.shape)]
        let w = try SafetensorsWriter(url: url, entries: entries, metadata: ["format": "pt"])
        try w.write("a", a)
        try w.write("b", b)
        try w.write("c", a)
        try w.finish()
        let f = try SafetensorsFile(url: url)
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(try f.tensor("a"), a)
        XCTAssertEqual(try f.tensor("b").scalars, [1, 2, 3])
        XCTAssertEqual(try f.tensor("c").scalars[5], 65504)
        XCTAssertEqual(f.info("b")?.dtype, .bf16)
        // Header length is a multiple of 8 (space padded), as the official writer does.
        XCTAssertEqual(f.dataStart % 8, 0)
    }

    func testUnfinishedWriterLeavesNoFile() throws {
        let dir = try temporaryDirectory()
        let url = dir.appendingPathComponent("b.safetensors")
        do {
            let w = try SafetensorsWriter(url: url, entries: [TensorEntry(name: "x", dtype: .f32, shape: [2])])
            XCTAssertThrowsError(try w.write("y", Tensor(zeros: [2])))
            XCTAssertThrowsError(try w.finish())
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    func testShardedFolderOpensAsOneCheckpoint() throws {
        let dir = try temporaryDirectory()
        let entries = (0..<4).map { TensorEntry(name: "t\($0)", dtype: .f32, shape: [10]) }
        let w = try CheckpointWriter(directory: dir, entries: entries, maxShardBytes: 80)
        for (i, e) in entries.enumerated() { try w.write(e.name, Tensor(repeating: Float(i), shape: [10])) }
        try w.finish()
        XCTAssertEqual(w.shardFileNames.count, 2)
        let c = try Checkpoint(path: dir.path)
        XCTAssertEqual(c.tensorNames, ["t0", "t1", "t2", "t3"])
        XCTAssertEqual(try c.tensor("t3").scalars, [Float](repeating: 3, count: 10))
        XCTAssertNotNil(c.indexURL)
    }

    func testJSONQuotingRoundTripsThroughTheStrictParser() throws {
        let odd = "a\"b\\c\nd\te\u{01}f\u{1F}é😀"
        XCTAssertEqual(jsonQuoted("\u{01}"), "\"\\u0001\"")
        XCTAssertEqual(try StrictJSONParser.parse(Array(jsonQuoted(odd).utf8)), .string(odd))
    }
}
