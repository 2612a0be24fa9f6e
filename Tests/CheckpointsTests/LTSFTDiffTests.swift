import Foundation
import Tensors
import XCTest
@testable import Checkpoints

/// LT-SFT's pytorch_diff.bin through the restricted reader, on the file written by
/// scripts/make_pytorch_diff_fixture.py with torch.save (its first index step a numpy int64, as
/// the reference encoder writes it; one tensor 3-D and float16; one dense 'abs' tensor).
final class LTSFTDiffTests: XCTestCase {
    static var bin: URL { Fixtures.url("lt_sft/pytorch_diff.bin") }

    func testReadsTheTorchFileToTheScriptsDenseValues() throws {
        let d = try LTSFTDiff(path: Self.bin.path)
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("lt_sft/expected.json"))) as! [String: [String: Any]]
        XCTAssertEqual(d.absNames, ["classifier.weight"])
        XCTAssertEqual(Set(d.diffs.map(\.name)), Set(expected.filter { $0.value["kind"] as! String == "diff" }.keys))
        for t in d.diffs {
            let e = expected[t.name]!
            XCTAssertEqual(t.shape.dims, e["shape"] as! [Int], t.name)
            XCTAssertEqual(t.dense().scalars, (e["dense"] as! [NSNumber]).map(\.floatValue), t.name)
            XCTAssertEqual(t.indices, t.indices.sorted(), "row-major indices ascending")
            XCTAssertTrue(t.values.allSatisfy { $0 != 0 })
        }
        XCTAssertEqual(d.diffs.first { $0.name.hasSuffix("intermediate.dense.weight") }?.dtype, .f16)
        // Written as a sparse delta, it reads back exactly.
        let dir = try makeTemporaryDirectory()
        let url = dir.appendingPathComponent("sft.safetensors")
        try SparseDeltaWriter.write(d.diffs, to: url)
        let back = try SparseDeltaFile(path: url.path)
        for t in d.diffs { XCTAssertEqual(try back.sparse(t.name), t) }
    }

    /// One byte pattern of the fixture's pickle replaced by another of the same length (stored
    /// ZIP members have no CRC check here, so the archive stays valid).
    func patched(_ from: String, _ to: String) throws -> [UInt8] { try patched(Array(from.utf8), Array(to.utf8)) }

    func patched(_ f: [UInt8], _ t: [UInt8]) throws -> [UInt8] {
        var bytes = [UInt8](try Data(contentsOf: Self.bin))
        precondition(f.count == t.count)
        guard let i = (0...(bytes.count - f.count)).first(where: { Array(bytes[$0..<($0 + f.count)]) == f }) else {
            XCTFail("pattern \(f) not in the fixture"); return bytes
        }
        bytes.replaceSubrange(i..<(i + f.count), with: t)
        return bytes
    }

    func read(_ bytes: [UInt8]) -> String {
        do { _ = try bytes.withUnsafeBytes { try LTSFTDiff.read($0, path: "x.bin") }; return "no error" } catch { return "\(error)" }
    }

    func testRefusesGlobalsOpcodesAndBadIndicesWithoutRunningAnything() throws {
        // A global outside the allowed set (same length as the original) is refused by name.
        XCTAssertTrue(read(try patched("torch\nFloatStorage", "posix\nposix_spawnp")).contains("global posix.posix_spawnp is not allowed"))
        XCTAssertTrue(read(try patched("collections\nOrderedDict", "subprocess\ncheck_output")).contains("global subprocess.check_output is not allowed"))
        // A step of 0 after the first index (a repeated index).
        let steps = read(try patched("K\u{06}K\u{03}K\u{05}K\u{01}e", "K\u{06}K\u{00}K\u{05}K\u{01}e"))
        XCTAssertTrue(steps.contains("index step 2 is 0 (indices must be strictly ascending)"), steps)
        // Indices past the end of the tensor (5 × 4 = 20 entries).
        let past = read(try patched("K\u{06}K\u{03}K\u{05}K\u{01}e", "K\u{06}K\u{03}K\u{05}K\u{09}e"))
        XCTAssertTrue(past.contains("outside 0..<20"), past)
        // An opcode the reader does not know (INST, which would call a class).
        XCTAssertTrue(read(try patched([0x80, 0x02, 0x7D], [0x80, 0x02, 0x69])).contains("opcode 0x69 is not supported"))
        // Every error names the Python route for trusted files.
        XCTAssertTrue(past.contains("python3 -c"))
        // A truncated archive, and a plain pickle without a ZIP around it.
        let full = [UInt8](try Data(contentsOf: Self.bin))
        XCTAssertTrue(read(Array(full.prefix(full.count - 30))).contains("no end-of-central-directory record"))
        XCTAssertTrue(read([0x80, 0x02, 0x7D, 0x2E]).contains("not a valid ZIP archive"))
    }

    /// The index codec: first-dimension-fastest to row-major on a 2×3 tensor, and on a synthetic
    /// 70000 × 70000 tensor (4.9e9 entries, nothing allocated) indices past 2³¹ stay exact where
    /// the reference decoder's int32 cumulative sum would wrap.
    func testIndexCodecIsFortranOrderAndSixtyFourBit() throws {
        // [R, C] = [2, 3]: first-dimension-fastest index = row + col·2; row-major = row·3 + col.
        XCTAssertEqual(try LTSFTDiff.rowMajorIndices(steps: [0, 1, 1, 1, 1, 1], dims: [2, 3]), [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(try LTSFTDiff.rowMajorIndices(steps: [5], dims: [2, 3]), [5])          // (1, 2)
        XCTAssertEqual(try LTSFTDiff.rowMajorIndices(steps: [1], dims: [2, 3, 4]), [12])      // (1, 0, 0)
        let big = try LTSFTDiff.rowMajorIndices(steps: [2_000_000_000, 1_000_000_000], dims: [70_000, 70_000])
        // 3e9 = row 10000 + col 42857·70000 -> 10000·70000 + 42857.
        XCTAssertEqual(big, [Int64(2_000_000_000 % 70_000) * 70_000 + 2_000_000_000 / 70_000, 10_000 * 70_000 + 42_857])
        XCTAssertThrowsError(try LTSFTDiff.rowMajorIndices(steps: [1, Int64.max], dims: [70_000, 70_000])) {
            XCTAssertTrue("\($0)".contains("overflows Int64"), "\($0)")
        }
        XCTAssertThrowsError(try LTSFTDiff.rowMajorIndices(steps: [4_899_999_999, 1], dims: [70_000, 70_000])) {
            XCTAssertTrue("\($0)".contains("outside 0..<4900000000"), "\($0)")
        }
        XCTAssertThrowsError(try LTSFTDiff.rowMajorIndices(steps: [-1], dims: [2, 3]))
    }

    func testRestrictedPickleReadsPlainValues() throws {
        // {'a': [1, -2, 300, 2**40], 'b': (True, None, 'é')} as protocol 2 (pickle.dumps).
        let bytes: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00, 0x28, 0x58, 0x01, 0x00, 0x00, 0x00, 0x61, 0x71, 0x01, 0x5D, 0x71, 0x02,
                              0x28, 0x4B, 0x01, 0x4A, 0xFE, 0xFF, 0xFF, 0xFF, 0x4D, 0x2C, 0x01, 0x8A, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
                              0x65, 0x58, 0x01, 0x00, 0x00, 0x00, 0x62, 0x71, 0x03, 0x88, 0x4E, 0x58, 0x02, 0x00, 0x00, 0x00, 0xC3, 0xA9,
                              0x71, 0x04, 0x87, 0x71, 0x05, 0x75, 0x2E]
        let v = try bytes.withUnsafeBytes { try RestrictedPickle.load($0, path: "p") }
        guard case let .dict(d) = v, case let .list(a)? = d["a"], case let .tuple(b)? = d["b"] else { return XCTFail("\(v)") }
        XCTAssertEqual(a.items.map { v -> Int64? in if case let .int(i) = v { return i } else { return nil } }, [1, -2, 300, 1 << 40])
        guard b.count == 3, case .bool(true) = b[0], case .none = b[1], case .string("é") = b[2] else { return XCTFail("\(b)") }
    }
}
