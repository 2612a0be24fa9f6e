import Checkpoints
import Foundation
import Tensors
import XCTest
@testable import Transformer

/// `merge-adapter` and the on-the-fly adapter merge against PEFT's `merge_and_unload`
/// (Tests/TransformerTests/Fixtures/merge-adapter, written by scripts/make_merge_adapter_fixture.py:
/// rank_pattern, alpha_pattern and a modules_to_save head included).
final class MergeAdapterTests: XCTestCase {
    static let dir = ModelParityTests.dir.deletingLastPathComponent().appendingPathComponent("merge-adapter")
    var base: String { Self.dir.appendingPathComponent("base").path }
    var adapter: String { Self.dir.appendingPathComponent("adapter").path }
    var expected: Checkpoint { get throws { try Checkpoint(path: Self.dir.appendingPathComponent("merged").path) } }

    func maxDiff(_ a: Tensor, _ b: Tensor) -> Float { zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) } }

    func assertEqualsPEFT(_ c: Checkpoint, file: StaticString = #filePath, line: UInt = #line) throws {
        let want = try expected
        XCTAssertEqual(c.tensorNames, want.tensorNames, file: file, line: line)
        let b = try Checkpoint(path: base)
        var changed = 0
        for n in want.tensorNames {
            let got = try c.tensor(n), w = try want.tensor(n)
            XCTAssertEqual(got.shape, w.shape, n, file: file, line: line)
            XCTAssertLessThan(maxDiff(got, w), 1e-6, n, file: file, line: line)
            if maxDiff(w, try b.tensor(n)) > 1e-4 { changed += 1 }
        }
        // 7 adapted modules x 2 layers, and lm_head from modules_to_save.
        XCTAssertEqual(changed, 15, file: file, line: line)
    }

    func testMergeAdapterEqualsPEFTMergeAndUnload() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-merge-adapter-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let out = tmp.appendingPathComponent("out")
        let s = try CheckpointConverter.mergeAdapter(base: base, adapter: adapter, output: out.path)
        XCTAssertEqual(s.tensors, 21)
        XCTAssertEqual(s.copiedFiles.sorted(), ["config.json", "generation_config.json"])
        let written = try Checkpoint(path: out.path)
        try assertEqualsPEFT(written)
        for n in written.tensorNames { XCTAssertEqual(written.info(n)?.dtype, .f32) }
        // The output folder rules: no second write without --force; with it, the same bytes.
        XCTAssertThrowsError(try CheckpointConverter.mergeAdapter(base: base, adapter: adapter, output: out.path))
        let before = try Data(contentsOf: out.appendingPathComponent("model.safetensors"))
        _ = try CheckpointConverter.mergeAdapter(base: base, adapter: adapter, output: out.path, force: true)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("model.safetensors")), before)
        // bf16 output: every tensor stored as BF16, within bf16 rounding of PEFT's values.
        let half = tmp.appendingPathComponent("bf16")
        _ = try CheckpointConverter.mergeAdapter(base: base, adapter: adapter, output: half.path, dtype: .bf16)
        let h = try Checkpoint(path: half.path)
        for n in h.tensorNames {
            XCTAssertEqual(h.info(n)?.dtype, .bf16)
            let w = try expected.tensor(n), g = try h.tensor(n)
            for (x, y) in zip(g.scalars, w.scalars) { XCTAssertEqual(x, y, accuracy: abs(y) / 128 + 1e-6) }
        }
        // The base given as the adapter is refused with a message naming it.
        XCTAssertThrowsError(try CheckpointConverter.mergeAdapter(base: base, adapter: base, output: tmp.appendingPathComponent("x").path)) { e in
            XCTAssertTrue("\(e)".contains("not a PEFT adapter"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("x").path))
    }

    /// The adapter given alone (base_model_name_or_path "../base", beside the adapter) and as
    /// BASE+ADAPTER merges to the same tensors on the fly.
    func testOnTheFlyMergeEqualsPEFT() throws {
        try assertEqualsPEFT(try ModelReference.open(adapter))
        try assertEqualsPEFT(try ModelReference.open("\(base)+\(adapter)"))
        try assertEqualsPEFT(try ModelReference.open(adapter, base: base))
        // The forward pass of the merged-on-the-fly model equals the one of PEFT's merged folder.
        let a = try TransformerModel(checkpoint: ModelReference.open(adapter))
        let b = try TransformerModel(checkpoint: expected)
        let ids = [[1, 5, 9, 33, 2, 60]]
        XCTAssertLessThan(maxDiff(try a.forward(ids), try b.forward(ids)), 1e-5)
    }
}
