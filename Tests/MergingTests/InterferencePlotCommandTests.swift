import Foundation
import XCTest

/// `interference --svg`: the heat map is written only where asked, atomically, never over an
/// input, a folder or an existing file without --force; a bad metric is refused before any work.
final class InterferencePlotCommandTests: XCTestCase {
    func testSvgIsWrittenCheckedAndRefusedOverExistingFiles() throws {
        try Binary.requireBuilt()
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ws-intsvg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let f = "fixtures/family"
        let args = ["interference", "--base", "\(f)/base", "\(f)/capital-full", "\(f)/profession-full", "--threads", "1"]
        let svg = tmp.appendingPathComponent("map.svg")
        let r = try Binary.run(args + ["--svg", svg.path, "--svg-metric", "cosine"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("capital-full × profession-full"), r.out)
        let text = try String(contentsOf: svg, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("<svg "), text)
        XCTAssertTrue(text.contains("cosine of the task vectors"), text)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["map.svg"], "no staging or lock left")

        // An existing file is refused without --force and kept; --force replaces it (atomically).
        let mine = tmp.appendingPathComponent("mine.svg")
        try Data("my picture".utf8).write(to: mine)
        let e = try Binary.run(args + ["--svg", mine.path])
        XCTAssertNotEqual(e.status, 0, e.out)
        XCTAssertTrue(e.err.contains(mine.path), e.err)
        XCTAssertEqual(try String(contentsOf: mine, encoding: .utf8), "my picture")
        let again = try Binary.run(args + ["--svg", svg.path, "--force"])
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(try String(contentsOf: svg, encoding: .utf8).contains("TIES sign conflict"))
        // A folder is never replaced by the plot.
        let folder = tmp.appendingPathComponent("folder.svg")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        XCTAssertNotEqual(try Binary.run(args + ["--svg", folder.path, "--force"]).status, 0)
        // An input is never a plot target; a bad metric is refused up front.
        let input = try Binary.run(args + ["--svg", "\(f)/base/model.safetensors", "--force"])
        XCTAssertNotEqual(input.status, 0)
        let bad = try Binary.run(args + ["--svg", tmp.appendingPathComponent("x.svg").path, "--svg-metric", "angle"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("--svg-metric must be one of sign-conflict, cosine, overlap"), bad.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("x.svg").path))
    }
}
