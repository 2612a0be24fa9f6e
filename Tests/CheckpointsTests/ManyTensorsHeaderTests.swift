import Checkpoints
import Foundation
import XCTest

/// Issue 13, item 10: a valid header listing very many tensors. Checks values (names, order,
/// offsets, shapes) on 100,000 tensors listed in shuffled order, and that strict validation
/// still holds at that size (duplicate names, overlaps, gaps). No timing assertions; the speed is
/// measured in BENCHMARKS.md ("Many-tensor header").
final class ManyTensorsHeaderTests: XCTestCase {
    static let count = 100_000

    static func name(_ i: Int) -> String { "model.layers.\(i / 1000).t\(i % 1000)" }

    /// A safetensors file of `count` F32 [1] tensors; tensor i holds Float(i) at offset 4i. The
    /// header lists them in a shuffled order; `edit` may rewrite entry i's JSON.
    static func file(count: Int = count, edit: (Int, String) -> String = { $1 }) -> [UInt8] {
        var order = Array(0..<count)
        var g = SystemRandomNumberGenerator()
        order.shuffle(using: &g)
        var json = "{\"__metadata__\":{\"format\":\"pt\"}"
        for i in order {
            json += ",\"\(name(i))\":" + edit(i, "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\(4 * i),\(4 * i + 4)]}")
        }
        json += "}"
        var bytes = [UInt8]()
        let header = Array(json.utf8)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes += $0 }
        bytes += header
        for i in 0..<count { withUnsafeBytes(of: Float(i).bitPattern.littleEndian) { bytes += $0 } }
        return bytes
    }

    func testHundredThousandTensorsParseInOffsetOrder() throws {
        let bytes = Self.file()
        let (metadata, tensors) = try SafetensorsFile.validateHeader(bytes)
        XCTAssertEqual(metadata, ["format": "pt"])
        XCTAssertEqual(tensors.count, Self.count)
        for (i, t) in tensors.enumerated() {
            guard t.name == Self.name(i), t.dataOffsets == 4 * i..<4 * i + 4, t.shape.dims == [1], t.dtype == .f32 else {
                return XCTFail("tensor #\(i): \(t)")
            }
        }
        // The same file opened from disk, and the report inspect prints (natural name order).
        let url = try makeTemporaryDirectory().appendingPathComponent("many.safetensors")
        try Data(bytes).write(to: url)
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(file.tensorNames.count, Self.count)
        XCTAssertEqual(try file.tensor(Self.name(12_345)).scalars, [12_345])
        let report = try InspectReport(checkpoint: Checkpoint(path: url.path), stats: false)
        XCTAssertEqual(report.rows.count, Self.count)
        XCTAssertEqual(report.rows.prefix(3).map(\.name), ["model.layers.0.t0", "model.layers.0.t1", "model.layers.0.t2"])
        XCTAssertEqual(report.rows[1000].name, "model.layers.1.t0")
        XCTAssertEqual(report.rows.last?.name, Self.name(Self.count - 1))
        XCTAssertEqual(report.totalParameters, Self.count)
        let text = report.text()
        XCTAssertTrue(text.contains("model.layers.99.t999"))
    }

    func testStrictValidationHoldsAtThisSize() throws {
        // A duplicate name deep inside the header.
        var dup = Self.file(count: 20_000)
        let needle = Array("\"model.layers.7.t7\":".utf8), replacement = Array("\"model.layers.7.t8\":".utf8)
        let at = try XCTUnwrap(dup.firstRange(of: needle))
        dup.replaceSubrange(at, with: replacement)
        XCTAssertThrowsError(try SafetensorsFile.validateHeader(dup)) { XCTAssertTrue("\($0)".contains("model.layers.7.t8"), "\($0)") }
        // Two tensors sharing bytes (tensor 9000 points at tensor 8999's range; the data then ends short).
        let overlap = Self.file(count: 20_000) { i, entry in
            i == 9000 ? "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[35996,36000]}" : entry
        }
        XCTAssertThrowsError(try SafetensorsFile.validateHeader(overlap)) { XCTAssertTrue("\($0)".contains("overlap"), "\($0)") }
        // A gap: tensor 15000 moved past the end of the data.
        let gap = Self.file(count: 20_000) { i, entry in
            i == 15_000 ? "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[80000,80004]}" : entry
        }
        XCTAssertThrowsError(try SafetensorsFile.validateHeader(gap))
    }
}
