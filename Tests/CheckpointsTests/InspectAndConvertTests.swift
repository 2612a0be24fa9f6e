import Foundation
import XCTest
@testable import Checkpoints
import Tensors

/// The library side of `weightsmith inspect` and `convert`: sizes, streamed statistics,
/// the report, and conversions checked value by value.
final class InspectAndConvertTests: XCTestCase {
    func testByteSizeParsing() throws {
        XCTAssertEqual(try ByteSize.parse("500MB"), 500_000_000)
        XCTAssertEqual(try ByteSize.parse("2GB"), 2_000_000_000)
        XCTAssertEqual(try ByteSize.parse("1GiB"), 1 << 30)
        XCTAssertEqual(try ByteSize.parse("1.5 gb"), 1_500_000_000)
        XCTAssertEqual(try ByteSize.parse("4096"), 4096)
        XCTAssertEqual(try ByteSize.parse("10kB"), 10_000)
        XCTAssertEqual(try ByteSize.parse("3MiB"), 3 << 20)
        for bad in ["", "GB", "-1GB", "0", "1.2.3GB", "2 XB", "0.5B", "1e30TB", ".5GB", "12 MB extra"] {
            XCTAssertThrowsError(try ByteSize.parse(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("invalid size"), "\(error)")
            }
        }
        XCTAssertEqual(ByteSize.format(512), "512 B")
        XCTAssertEqual(ByteSize.format(1_536_000), "1.54 MB")
        XCTAssertEqual(ByteSize.format(2_147_483_648), "2.15 GB")
    }

    func stats(_ values: [Float], _ dtype: DType = .f32) throws -> TensorStatistics {
        let bytes = dtype == .f32 ? values.withUnsafeBytes { [UInt8]($0) } : try DTypeConversion.encode(values, as: dtype)
        return try bytes.withUnsafeBytes { try TensorStatistics.compute($0, dtype: dtype, count: values.count) }
    }

    func testStatisticsMatchFloat64ReferenceAcrossChunks() throws {
        // 200_003 values span four chunks; a large offset checks that the variance does not cancel.
        var values = (0..<200_003).map { i in Float(1000) + Float((i * 7919) % 1001) / 1000 }
        values[5] = .nan
        values[70_000] = .infinity
        values[150_000] = -.infinity
        let got = try stats(values)
        let want = TensorStatistics.reference(values)
        XCTAssertEqual(got.nanCount, 1)
        XCTAssertEqual(got.infCount, 2)
        XCTAssertEqual(got.finiteCount, 200_000)
        XCTAssertEqual(got.min, want.min)
        XCTAssertEqual(got.max, want.max)
        XCTAssertEqual(got.mean!, want.mean!, accuracy: 1e-9 * 1000)
        XCTAssertEqual(got.std!, want.std!, accuracy: 1e-9)
        XCTAssertEqual(want.std!, 0.28896, accuracy: 1e-4)  // uniform on 1001 steps of 1/1000: sqrt((1001^2-1)/12)/1000
    }

    func testStatisticsOfSpecialTensors() throws {
        let empty = try stats([])
        XCTAssertEqual(empty.count, 0)
        XCTAssertNil(empty.mean)
        let allNaN = try stats([.nan, .nan, .infinity])
        XCTAssertEqual(allNaN.nanCount, 2)
        XCTAssertEqual(allNaN.infCount, 1)
        XCTAssertNil(allNaN.min)
        let bf = try stats([1, 2, 3, 4], .bf16)
        XCTAssertEqual(bf.mean, 2.5)
        XCTAssertEqual(bf.std!, (1.25 as Double).squareRoot(), accuracy: 1e-15)
        XCTAssertThrowsError(try [UInt8](repeating: 0, count: 4).withUnsafeBytes {
            try TensorStatistics.compute($0, dtype: .f8e4m3, count: 4)
        })
    }

    func testReportOfShardedFixture() throws {
        let report = try InspectReport(checkpoint: Checkpoint(path: Fixtures.url("sharded").path), stats: true)
        XCTAssertEqual(report.rows.count, 11)
        XCTAssertEqual(report.totalParameters, 32 * 8 + 4 * 64 + 3 * 128 + 3 * 8)
        XCTAssertEqual(report.totalBytes, 2 * report.totalParameters)
        XCTAssertEqual(report.rows.first?.name, "model.embed_tokens.weight")
        let norm = try XCTUnwrap(report.rows.first { $0.name == "model.norm.weight" })
        XCTAssertEqual(norm.stats?.mean, 1)
        XCTAssertEqual(norm.stats?.std, 0)
        XCTAssertEqual(norm.file, "model-00002-of-00002.safetensors")
        let text = report.text()
        XCTAssertTrue(text.contains("total: 11 tensors, 920 parameters, 1,840 bytes"), text)
        XCTAssertTrue(text.contains("format: pt"))
        // The JSON form parses and carries the same numbers.
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        XCTAssertEqual(json["total_parameters"] as? Int, 920)
        let tensors = try XCTUnwrap(json["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.count, 11)
        let embed = try XCTUnwrap(tensors.first { $0["name"] as? String == "model.embed_tokens.weight" })
        let values = try Checkpoint(path: Fixtures.url("sharded").path).tensor("model.embed_tokens.weight").scalars
        let ref = TensorStatistics.reference(values)
        let s = try XCTUnwrap(embed["stats"] as? [String: Any])
        XCTAssertEqual(s["mean"] as? Double ?? .nan, ref.mean!, accuracy: 1e-12)
        XCTAssertEqual(s["max"] as? Double, ref.max)
    }

    /// Hostile names and metadata print as escapes: no terminal control bytes reach the output.
    func testReportEscapesControlCharacters() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-escape-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("evil.safetensors")
        let name = "w\u{1B}[2J\nfake.row\u{7}\u{202E}", plain = "model.norm.weight"
        let w = try SafetensorsWriter(url: url, entries: [TensorEntry(name: name, dtype: .f32, shape: [2]), TensorEntry(name: plain, dtype: .f32, shape: [2])],
                                      metadata: ["note\u{0}": "line1\nline2\u{9B}31m"])
        try w.write(name, Tensor(shape: [2], scalars: [1, 2]))
        try w.write(plain, Tensor(shape: [2], scalars: [1, 2]))
        try w.finish()
        let text = try InspectReport(checkpoint: Checkpoint(path: url.path), stats: false).text()
        for bad: Unicode.Scalar in ["\u{1B}", "\u{7}", "\u{0}", "\u{9B}", "\u{202E}"] {
            XCTAssertFalse(text.unicodeScalars.contains(bad), "U+\(String(bad.value, radix: 16)) printed raw")
        }
        XCTAssertTrue(text.contains("w\\u{1B}[2J\\nfake.row\\u{7}\\u{202E}"), text)
        XCTAssertTrue(text.contains("note\\u{0}: line1\\nline2\\u{9B}31m"), text)
        // One line per tensor: the newline in the name did not start a row.
        XCTAssertFalse(text.split(separator: "\n").contains { $0.hasPrefix("fake.row") }, text)
        XCTAssertTrue(text.contains(plain))
    }

    func testReportWithNonFiniteStatsIsValidJSON() throws {
        let report = try InspectReport(checkpoint: Checkpoint(path: Fixtures.url("all_dtypes.safetensors").path), stats: true)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(report.json().utf8)))
        XCTAssertNil(report.rows.first { $0.name == "f8_e4m3" }?.stats)
        XCTAssertEqual(report.rows.first { $0.name == "f32" }?.stats?.nanCount, 1)
    }

    func testConfigDtypeRewriteTouchesOnlyDtypeValues() throws {
        let input = #"{"torch_dtype": "bfloat16", "text_config": {"dtype":"float16", "name": "torch_dtype"}, "quantization_config": {"dtype": "int4"}, "x": "\"dtype\": \"float16\""}"#
        let out = String(decoding: try CheckpointConverter.retypedConfig(Array(input.utf8), to: .f32, path: "config.json"), as: UTF8.self)
        XCTAssertEqual(out, #"{"torch_dtype": "float32", "text_config": {"dtype":"float32", "name": "torch_dtype"}, "quantization_config": {"dtype": "int4"}, "x": "\"dtype\": \"float16\""}"#)
        XCTAssertThrowsError(try CheckpointConverter.retypedConfig(Array("{nope".utf8), to: .f32, path: "config.json"))
    }

    func testNaturalOrder() {
        let names = ["layers.10.w", "layers.2.w", "layers.1.w", "embed", "layers.02.w"]
        XCTAssertEqual(names.sorted(by: naturalOrder), ["embed", "layers.1.w", "layers.2.w", "layers.02.w", "layers.10.w"])
    }

    func testConvertShardedBF16FolderToF32ShardsIsExact() throws {
        let out = try makeTemporaryDirectory().appendingPathComponent("converted")
        let input = Fixtures.url("sharded").path
        let s = try CheckpointConverter.convert(input: input, output: out.path,
                                                options: .init(dtype: .f32, maxShardBytes: try ByteSize.parse("2kB")))
        XCTAssertEqual(s.converted, 11)
        XCTAssertEqual(s.copiedFiles, ["config.json", "tokenizer_config.json"])
        let a = try Checkpoint(path: input), b = try Checkpoint(path: out.path)
        XCTAssertEqual(b.tensorNames, a.tensorNames)
        XCTAssertEqual(s.files.count, b.shards.count + 1)  // shards + index
        XCTAssertEqual(b.shards.count, 3)  // 3680 bytes, greedy in name order into shards of at most 2000
        for shard in b.shards {
            XCTAssertLessThanOrEqual(shard.allInfos.reduce(0) { $0 + $1.byteCount }, 2000)
        }
        XCTAssertEqual(b.metadata, ["format": "pt"])
        for name in a.tensorNames {
            XCTAssertEqual(b.info(name)?.dtype, .f32)
            XCTAssertEqual(try b.tensor(name), try a.tensor(name), name)  // BF16 -> F32 is exact
        }
        // config.json is copied with torch_dtype following the new dtype; other files byte for byte.
        let config = String(decoding: try Data(contentsOf: out.appendingPathComponent("config.json")), as: UTF8.self)
        let original = String(decoding: try Data(contentsOf: Fixtures.url("sharded/config.json")), as: UTF8.self)
        XCTAssertEqual(config, original.replacingOccurrences(of: "\"torch_dtype\": \"bfloat16\"", with: "\"torch_dtype\": \"float32\""))
        XCTAssertNotEqual(config, original)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("tokenizer_config.json")),
                       try Data(contentsOf: Fixtures.url("sharded/tokenizer_config.json")))
        // Back to BF16 in one file: the original bytes again (F32 -> BF16 rounding of BF16 values is exact).
        let back = out.deletingLastPathComponent().appendingPathComponent("back.safetensors")
        _ = try CheckpointConverter.convert(input: out.path, output: back.path, options: .init(dtype: .bf16))
        let c = try Checkpoint(path: back.path)
        for name in a.tensorNames {
            let x = try a.withRawBytes(name) { [UInt8]($0) }, y = try c.withRawBytes(name) { [UInt8]($0) }
            XCTAssertEqual(x, y, name)
        }
    }

    func testConvertRoundsF32ToF16AndKeepsIntegers() throws {
        let dir = try makeTemporaryDirectory()
        let out = dir.appendingPathComponent("n.safetensors")
        // 1e30 in "bias" overflows F16: refused (counted on the encoded values), nothing written...
        XCTAssertThrowsError(try CheckpointConverter.convert(input: Fixtures.url("numpy_writer.safetensors").path, output: out.path,
                                                             options: .init(dtype: .f16))) { e in
            guard case let .nonFinite(_, t, c, n, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual([t, "\(c)", "\(n)"], ["bias", "1", "3"])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        // ...unless allowed.
        let s = try CheckpointConverter.convert(input: Fixtures.url("numpy_writer.safetensors").path, output: out.path,
                                                options: .init(dtype: .f16, allowNonFinite: true))
        XCTAssertEqual(s.keptDType, ["ids"])
        let src = try Checkpoint(path: Fixtures.url("numpy_writer.safetensors").path), dst = try Checkpoint(path: out.path)
        XCTAssertEqual(dst.info("ids")?.dtype, .i32)
        XCTAssertEqual(src.metadata, [:])
        XCTAssertEqual(dst.metadata, ["format": "pt"])
        XCTAssertEqual(try dst.tensor("ids"), try src.tensor("ids"))
        XCTAssertEqual(dst.info("bias")?.dtype, .f16)
        // Every tensor starts at a multiple of its element size (I32 first, then the F16 ones).
        for name in dst.tensorNames {
            let info = try XCTUnwrap(dst.info(name))
            XCTAssertEqual(info.dataOffsets.lowerBound % info.dtype.byteSize, 0, name)
        }
        XCTAssertEqual(dst.shards[0].tensorNames, ["ids", "bias", "weight"])
        // F64 -> F32 -> F16: 1e30 overflows to +inf, -1.5 and 0.25 are exact.
        XCTAssertEqual(try dst.tensor("bias").scalars, [-1.5, 0.25, .infinity])
        let w = try src.tensor("weight").scalars
        XCTAssertEqual(try dst.tensor("weight").scalars, w.map { f16BitsToFloat(floatToF16Bits($0)) })
    }

    func testConvertRefusesToOverwriteInputsAndBadRequests() throws {
        let dir = try makeTemporaryDirectory()
        let copy = dir.appendingPathComponent("in.safetensors")
        try FileManager.default.copyItem(at: Fixtures.url("numpy_writer.safetensors"), to: copy)
        let before = try Data(contentsOf: copy)
        XCTAssertThrowsError(try CheckpointConverter.convert(input: copy.path, output: copy.path, options: .init(dtype: .f16))) {
            XCTAssertTrue("\($0)".contains("refusing to write the output onto the input"), "\($0)")
        }
        // Through another spelling of the same path.
        let alias = dir.appendingPathComponent("./sub/../in.safetensors").path
        XCTAssertThrowsError(try CheckpointConverter.convert(input: copy.path, output: alias))
        XCTAssertEqual(try Data(contentsOf: copy), before)
        // Into the input's own folder.
        XCTAssertThrowsError(try CheckpointConverter.convert(input: Fixtures.url("sharded").path, output: Fixtures.url("sharded").path)) {
            XCTAssertTrue("\($0)".contains("refusing to write the output onto the input"), "\($0)")
        }
        // FP8 cannot change dtype; nothing is left behind.
        let out = dir.appendingPathComponent("out")
        XCTAssertThrowsError(try CheckpointConverter.convert(input: Fixtures.url("all_dtypes.safetensors").path, output: out.path,
                                                             options: .init(dtype: .f32))) { error in
            guard case CheckpointError.conversion = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try CheckpointConverter.convert(input: copy.path, output: dir.appendingPathComponent("x.safetensors").path,
                                                             options: .init(maxShardBytes: 100)))
        // Nothing is left behind by the refused or failed runs (no staging entry, no lock file).
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["in.safetensors"])
        // An existing non-empty output folder is refused, an empty one is replaced.
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: false)
        _ = try CheckpointConverter.convert(input: copy.path, output: out.path)
        XCTAssertEqual(try Checkpoint(path: out.path).tensorNames, ["bias", "ids", "weight"])
        XCTAssertThrowsError(try CheckpointConverter.convert(input: copy.path, output: out.path)) {
            XCTAssertTrue("\($0)".contains("not empty"), "\($0)")
        }
        // --force replaces a previous output, never an unrelated folder.
        _ = try CheckpointConverter.convert(input: copy.path, output: out.path, options: .init(dtype: .f16, allowNonFinite: true), force: true)
        XCTAssertEqual(try Checkpoint(path: out.path).info("weight")?.dtype, .f16)
        let mine = dir.appendingPathComponent("mine")
        try FileManager.default.createDirectory(at: mine, withIntermediateDirectories: false)
        try Data("notes".utf8).write(to: mine.appendingPathComponent("notes.txt"))
        XCTAssertThrowsError(try CheckpointConverter.convert(input: copy.path, output: mine.path, force: true)) {
            XCTAssertEqual($0 as? OutputError, .notWeightsmithOutput(path: mine.path))
        }
        XCTAssertEqual(try Data(contentsOf: mine.appendingPathComponent("notes.txt")), Data("notes".utf8))
        XCTAssertEqual(try Data(contentsOf: copy), before)
    }
}
