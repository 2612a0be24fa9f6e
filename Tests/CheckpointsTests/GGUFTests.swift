import Foundation
import Tensors
import XCTest
@testable import Checkpoints

final class GGUFTests: XCTestCase {
    static func fixture(_ name: String) -> URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("gguf/\(name)")
    }

    func testMetadataValueTypes() throws {
        let f = try GGUFFile(url: Self.fixture("types.gguf"))
        XCTAssertEqual(f.version, 3)
        let m = f.metadata
        XCTAssertEqual(m["test.u8"], .uint8(200))
        XCTAssertEqual(m["test.i8"], .int8(-100))
        XCTAssertEqual(m["test.u16"], .uint16(60000))
        XCTAssertEqual(m["test.i16"], .int16(-30000))
        XCTAssertEqual(m["test.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(m["test.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(m["test.f32"], .float32(1.5))
        XCTAssertEqual(m["test.bool"], .bool(true))
        XCTAssertEqual(try m.string("test.string"), "héllo wörld ✓")
        XCTAssertEqual(m["test.u64"], .uint64(18_000_000_000_000_000_000))
        XCTAssertEqual(m["test.i64"], .int64(-9_000_000_000_000_000_000))
        XCTAssertEqual(m["test.f64"], .float64(3.141592653589793))
        XCTAssertEqual(try m.intArray("test.array_i32"), [1, -2, 3])
        XCTAssertEqual(try m.stringArray("test.array_str"), ["a", "bc", ""])
        XCTAssertEqual(try m.doubleArray("test.array_f32"), [0.5, 2.0])
        XCTAssertEqual(try m.string("general.architecture"), "llama")
        XCTAssertThrowsError(try m.string("test.u8")) { e in
            XCTAssertEqual(e as? GGUFError, .wrongValueType(path: f.url.path, key: "test.u8", expected: "string", actual: "uint8"))
        }
        XCTAssertThrowsError(try m.int("nope"))
    }

    /// Every tensor type against gguf.quants.dequantize (exact: same Float32 arithmetic).
    func testDequantisationMatchesGGUFPackage() throws {
        for file in ["types.gguf", "v2.gguf"] {
            let f = try GGUFFile(url: Self.fixture(file))
            let expected = try GGUFFile(url: Self.fixture("expected.gguf"))
            XCTAssertEqual(Set(f.tensorNames), Set(expected.tensorNames))
            for name in expected.tensorNames {
                let got = try f.tensor(name), want = try expected.tensor(name)
                XCTAssertEqual(got.shape, want.shape, name)
                var maxDiff: Float = 0
                for (a, b) in zip(got.scalars, want.scalars) { maxDiff = max(maxDiff, abs(a - b)) }
                XCTAssertLessThanOrEqual(maxDiff, 1e-6 * max(1, want.scalars.map(abs).max() ?? 0), "\(file) \(name)")
                XCTAssertTrue(got.scalars.contains { $0 != 0 }, name)
            }
            XCTAssertEqual(f.info("q4_k")?.type, .q4_K)
            XCTAssertEqual(f.info("q6_k")?.shape, [2, 512])
            XCTAssertEqual(f.info("vector3d")?.shape, [2, 3, 4])
        }
        XCTAssertEqual(try GGUFFile(url: Self.fixture("v2.gguf")).version, 2)
    }

    func testCustomAlignment() throws {
        let f = try GGUFFile(url: Self.fixture("align64.gguf"))
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.dataOffset % 64, 0)
        XCTAssertEqual(try f.tensor("a").scalars, [0, 1, 2, 3, 4])
        XCTAssertEqual(try f.tensor("b").scalars, [0, 2, 4, 6, 8, 10, 12])
    }

    func testQKUnpermutationRestoresHuggingFaceRows() throws {
        let f = try GGUFFile(url: Self.fixture("llama_qk.gguf"))
        let e = try GGUFFile(url: Self.fixture("expected_qk.gguf"))
        let heads = try f.metadata.int("llama.attention.head_count")
        let kvHeads = try f.metadata.int("llama.attention.head_count_kv")
        for g in f.tensorNames {
            let hf = try XCTUnwrap(GGUFNaming.huggingFaceName(g))
            let n = GGUFNaming.permutation(of: g) == .query ? heads : kvHeads
            let restored = try GGUFNaming.unpermuteRows(f.tensor(g), heads: n)
            XCTAssertEqual(restored, try e.tensor(hf), g)
            XCTAssertEqual(try GGUFNaming.permuteRows(restored, heads: n), try f.tensor(g))
        }
    }

    func testNamingRoundTrip() {
        let pairs = [
            ("token_embd.weight", "model.embed_tokens.weight"), ("output.weight", "lm_head.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("blk.12.attn_output.weight", "model.layers.12.self_attn.o_proj.weight"),
            ("blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj.weight"),
            ("blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"),
            ("blk.1.attn_v.bias", "model.layers.1.self_attn.v_proj.bias"),
        ]
        for (g, h) in pairs {
            XCTAssertEqual(GGUFNaming.huggingFaceName(g), h)
            XCTAssertEqual(GGUFNaming.ggufName(h), g)
        }
        XCTAssertNil(GGUFNaming.huggingFaceName("blk.x.attn_q.weight"))
        XCTAssertNil(GGUFNaming.huggingFaceName("blk.1.unknown.weight"))
        XCTAssertTrue(GGUFNaming.isDerived("rope_freqs.weight"))
    }

    /// Each malformed file is rejected with the expected typed error, never a crash.
    func testHostileCorpusIsRejected() throws {
        let expectations: [String: (GGUFError) -> Bool] = [
            "empty": { if case .truncated = $0 { return true }; return false },
            "bad_magic": { if case .badMagic = $0 { return true }; return false },
            "version1": { $0 == .unsupportedVersion(path: $0.path, version: 1) },
            "version4": { if case .unsupportedVersion(_, 4) = $0 { return true }; return false },
            "truncated_header": { if case .truncated = $0 { return true }; return false },
            "kv_count_beyond_file": { if case .countTooLarge = $0 { return true }; return false },
            "tensor_count_beyond_file": { if case .countTooLarge = $0 { return true }; return false },
            "string_length_beyond_file": { if case .countTooLarge = $0 { return true }; return false },
            "array_count_beyond_file": { if case .countTooLarge = $0 { return true }; return false },
            "unknown_value_type": { if case .unknownValueType(_, "k", 99) = $0 { return true }; return false },
            "unknown_array_type": { if case .unknownValueType(_, "k", 77) = $0 { return true }; return false },
            "invalid_utf8_key": { if case .invalidString = $0 { return true }; return false },
            "bad_bool": { if case .invalidMetadata = $0 { return true }; return false },
            "duplicate_key": { if case .duplicateKey(_, "k") = $0 { return true }; return false },
            "bad_alignment": { if case .invalidAlignment(_, "3") = $0 { return true }; return false },
            "unknown_tensor_type": { if case .unknownTensorType(_, "t", 99) = $0 { return true }; return false },
            "too_many_dims": { if case .invalidDimensions = $0 { return true }; return false },
            "block_size_mismatch": { if case .invalidDimensions = $0 { return true }; return false },
            "misaligned_offset": { if case .misalignedTensor(_, "t", 4, 32) = $0 { return true }; return false },
            "data_beyond_file": { if case .tensorOutOfBounds = $0 { return true }; return false },
            "offset_beyond_file": { if case .tensorOutOfBounds = $0 { return true }; return false },
            "overlapping_tensors": { if case .overlappingTensors(_, "a", "b") = $0 { return true }; return false },
            "duplicate_tensor": { if case .duplicateTensor(_, "a") = $0 { return true }; return false },
            "huge_dims": { if case .invalidDimensions = $0 { return true }; return false },
        ]
        let dir = Self.fixture("hostile")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".gguf") }
        XCTAssertEqual(files.count, expectations.count)
        for file in files {
            let stem = String(file.dropLast(5))
            let check = try XCTUnwrap(expectations[stem], "no expectation for \(file)")
            do {
                _ = try GGUFFile(url: dir.appendingPathComponent(file))
                XCTFail("\(file) was accepted")
            } catch let e as GGUFError {
                XCTAssertTrue(check(e), "\(file): unexpected error \(e)")
                XCTAssertTrue(e.description.contains(file), "\(file): message does not name the file: \(e)")
            }
        }
    }

    func testKnownButUnsupportedTypeIsRefusedOnRead() throws {
        let f = try GGUFFile(url: Self.fixture("unsupported_q2k.gguf"))
        XCTAssertEqual(f.info("q2_k")?.type, .q2_K)
        XCTAssertThrowsError(try f.tensor("q2_k")) { e in
            XCTAssertEqual(e as? GGUFError, .unsupportedTensorType(tensor: "q2_k", type: "Q2_K"))
        }
    }

    func testMissingFileAndTensor() throws {
        XCTAssertThrowsError(try GGUFFile(path: "/nonexistent/x.gguf")) { e in
            guard case .cannotOpen = e as? GGUFError else { return XCTFail("\(e)") }
        }
        let f = try GGUFFile(url: Self.fixture("align64.gguf"))
        XCTAssertThrowsError(try f.tensor("zzz"))
    }
}

extension GGUFError {
    var path: String {
        switch self {
        case let .unsupportedVersion(p, _): return p
        default: return ""
        }
    }
}
