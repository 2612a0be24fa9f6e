import Foundation
import XCTest
@testable import Checkpoints
import Tensors

/// Files written by the official Python `safetensors` package (scripts/make_safetensors_fixtures.py)
/// read back exactly: names, dtypes, shapes, stored bytes, metadata and Float32 values.
final class PythonFixtureTests: XCTestCase {
    struct ExpectedTensor: Decodable {
        let dtype: String
        let shape: [Int]
        let raw_hex: String
        let f32_bits: [UInt32]?
    }

    struct ExpectedFile: Decodable {
        let metadata: [String: String]
        let tensors: [String: ExpectedTensor]
    }

    func expected() throws -> [String: ExpectedFile] {
        let data = try Data(contentsOf: Fixtures.url("expected.json"))
        return try JSONDecoder().decode([String: ExpectedFile].self, from: data)
    }

    func check(_ file: SafetensorsFile, _ exp: ExpectedFile, _ label: String) throws {
        XCTAssertEqual(file.metadata, exp.metadata, label)
        XCTAssertEqual(Set(file.tensorNames), Set(exp.tensors.keys), label)
        for (name, e) in exp.tensors {
            let info = try XCTUnwrap(file.info(name), "\(label): \(name)")
            XCTAssertEqual(info.dtype.rawValue, e.dtype, "\(label): \(name)")
            XCTAssertEqual(info.shape.dims, e.shape, "\(label): \(name)")
            try file.withRawBytes(name) { raw in
                XCTAssertEqual(Fixtures.hex(raw), e.raw_hex, "\(label): \(name) bytes")
            }
            if let bits = e.f32_bits {
                let t = try file.tensor(name)
                XCTAssertEqual(t.shape.dims, e.shape)
                XCTAssertEqual(t.scalars.count, bits.count, "\(label): \(name)")
                for (i, (got, want)) in zip(t.scalars, bits).enumerated() {
                    let w = Float(bitPattern: want)
                    if w.isNaN {
                        XCTAssertTrue(got.isNaN, "\(label): \(name)[\(i)] should be NaN")
                    } else {
                        XCTAssertEqual(got.bitPattern, want, "\(label): \(name)[\(i)] = \(got), expected \(w)")
                    }
                }
            } else {
                // FP8 and complex are listed but their numeric conversion is refused with a typed error.
                XCTAssertThrowsError(try file.tensor(name)) { error in
                    guard case let CheckpointError.conversion(_, tensor, underlying) = error,
                          case let TensorError.unsupportedConversion(from, to, _) = underlying else {
                        return XCTFail("\(name): unexpected error \(error)")
                    }
                    XCTAssertEqual(tensor, name)
                    XCTAssertEqual(from.rawValue, e.dtype)
                    XCTAssertEqual(to, .f32)
                    XCTAssertTrue("\(error)".contains("not supported"), "\(error)")
                }
            }
        }
    }

    func testEverySingleFileReadsExactly() throws {
        let all = try expected()
        XCTAssertGreaterThanOrEqual(all.count, 5)
        for (rel, exp) in all.sorted(by: { $0.key < $1.key }) {
            let file = try SafetensorsFile(url: Fixtures.url(rel))
            try check(file, exp, rel)
        }
    }

    func testAllSafetensorsDtypesArePresent() throws {
        let all = try expected()
        let dtypes = Set(all.values.flatMap { $0.tensors.values.map(\.dtype) })
        for d in ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "U16", "U32", "U64",
                  "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0", "C64"] {
            XCTAssertTrue(dtypes.contains(d), "fixtures lack \(d)")
        }
    }

    func testScalarAndEmptyTensors() throws {
        let f = try SafetensorsFile(url: Fixtures.url("scalar_and_empty.safetensors"))
        XCTAssertEqual(f.info("scalar")?.shape.dims, [])
        XCTAssertEqual(try f.tensor("scalar").scalars, [2.75])
        XCTAssertEqual(try f.tensor("scalar_i64").scalars, [-7])
        XCTAssertEqual(try f.tensor("empty").scalars, [])
        XCTAssertEqual(f.info("empty_2d")?.byteCount, 0)
        XCTAssertEqual(try f.tensor("empty_2d").shape.dims, [3, 0])
    }

    func testShardedCheckpointOpensAsOneFromFolderAndIndex() throws {
        let all = try expected()
        let shardFiles = all.filter { $0.key.hasPrefix("sharded/") }
        XCTAssertEqual(shardFiles.count, 2)
        var union: [String: String] = [:]
        for (rel, exp) in shardFiles { for name in exp.tensors.keys { union[name] = rel } }
        for path in [Fixtures.url("sharded").path, Fixtures.url("sharded/model.safetensors.index.json").path] {
            let c = try Checkpoint(path: path)
            XCTAssertEqual(c.tensorNames, union.keys.sorted())
            XCTAssertEqual(c.shards.count, 2)
            XCTAssertNotNil(c.indexURL)
            XCTAssertEqual(c.metadata, ["format": "pt"])
            XCTAssertEqual(c.directory?.standardizedFileURL.path, Fixtures.url("sharded").standardizedFileURL.path)
            for (name, rel) in union {
                XCTAssertEqual(c.shard(of: name)?.url.lastPathComponent, URL(fileURLWithPath: rel).lastPathComponent)
                let e = all[rel]!.tensors[name]!
                XCTAssertEqual(try c.tensor(name).scalars.map(\.bitPattern), e.f32_bits)
            }
            XCTAssertEqual(c.info("model.embed_tokens.weight")?.shape.dims, [32, 8])
            XCTAssertEqual(c.totalParameters, union.keys.reduce(0) { $0 + c.info($1)!.elementCount })
            guard case let .object(config)? = try c.folderJSON("config.json") else { return XCTFail("config.json") }
            XCTAssertTrue(config.contains { $0.key == "model_type" })
        }
    }
}
