import Checkpoints
import Foundation
import XCTest
@testable import Transformer

final class BoundedInputTests: XCTestCase {
    /// Issue 13, item 7: positions beyond the context length are refused before any allocation
    /// (a 1 MB prompt aborted on a 250 GB attention buffer), for every family.
    func testForwardRefusesPositionsBeyondTheContextLength() throws {
        let model = try TransformerModel.load(path: ModelParityTests.dir.appendingPathComponent("llama").path)
        let n = model.config.maxPositions
        _ = try model.forward([[Int](repeating: 1, count: min(n, 8))])
        XCTAssertThrowsError(try model.forward([[Int](repeating: 1, count: n + 1)])) {
            XCTAssertTrue("\($0)".contains("exceed the model's context length of \(n)"), "\($0)")
        }
    }

    /// Issue 13, item 8: `block_count` must match the blk.N tensors (4294967295 made generate
    /// allocate without bound; 5 on a 2-block file made convert-gguf write a folder that fails to load).
    func testGGUFBlockCountMustMatchItsTensors() throws {
        let src = ModelParityTests.dir.appendingPathComponent("llama_gguf.gguf")
        var bytes = [UInt8](try Data(contentsOf: src))
        let key = Array("llama.block_count".utf8)
        let at = try XCTUnwrap((0...(bytes.count - key.count)).first { Array(bytes[$0..<($0 + key.count)]) == key }) + key.count
        XCTAssertEqual(bytes[at], 4)  // u32
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-bc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (value, expected) in [(UInt32.max, "4294967295 blocks"), (5, "block 2 has no tensors")] {
            withUnsafeBytes(of: value.littleEndian) { for i in 0..<4 { bytes[at + 4 + i] = $0[i] } }
            let url = dir.appendingPathComponent("bc\(value).gguf")
            try Data(bytes).write(to: url)
            XCTAssertThrowsError(try TransformerModel.load(path: url.path)) { XCTAssertTrue("\($0)".contains(expected), "\($0)") }
            let out = dir.appendingPathComponent("out\(value)")
            XCTAssertThrowsError(try GGUFConverter.convert(gguf: try GGUFFile(url: url), to: out)) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        }
    }
}
