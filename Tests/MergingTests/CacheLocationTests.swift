import Checkpoints
import Foundation
import XCTest

/// A cache folder (`--cache-dir` of spectrum/compare/repair, `--stats-cache` of edit/edit-eval)
/// is never an input folder or inside one: the command refuses before it computes anything, and
/// the input is left byte for byte as it was. Elsewhere the cache works as before.
final class CacheLocationTests: XCTestCase {
    private let fm = FileManager.default

    private func temporaryDirectory() throws -> URL {
        let d = fm.temporaryDirectory.appendingPathComponent("ws-cache-\(UUID().uuidString)")
        try fm.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    private func listing(_ dir: URL) -> [String] { (fm.subpaths(atPath: dir.path) ?? []).sorted() }

    private func copyOfBase(_ tmp: URL) throws -> URL {
        let model = tmp.appendingPathComponent("model")
        try fm.copyItem(at: Binary.root.appendingPathComponent("fixtures/family/base"), to: model)
        return model
    }

    func testCheckRefusesAnInputOrAFolderInsideOne() throws {
        let tmp = try temporaryDirectory()
        let model = try copyOfBase(tmp)
        let lora = tmp.appendingPathComponent("lora")
        try fm.createDirectory(at: lora, withIntermediateDirectories: true)
        for cache in [model, model.appendingPathComponent("svd"), model.appendingPathComponent("a/b/c")] {
            XCTAssertThrowsError(try OutputFolder.checkCacheFolder(cache, inputs: [model.path], option: "--cache-dir")) {
                XCTAssertTrue("\($0)".contains("refusing to keep the --cache-dir cache"), "\($0)")
            }
        }
        // BASE+ADAPTER is checked part by part; a symbolic link is resolved.
        XCTAssertThrowsError(try OutputFolder.checkCacheFolder(lora.appendingPathComponent("x"), inputs: ["\(model.path)+\(lora.path)"], option: "--stats-cache"))
        let link = tmp.appendingPathComponent("link")
        try fm.createSymbolicLink(at: link, withDestinationURL: model)
        XCTAssertThrowsError(try OutputFolder.checkCacheFolder(link.appendingPathComponent("cache"), inputs: [model.path], option: "--stats-cache"))
        // Beside an input, or in a parent of one, is fine (nothing is written into the input); nothing is created.
        try OutputFolder.checkCacheFolder(tmp.appendingPathComponent("cache/svd"), inputs: [model.path], option: "--cache-dir")
        try OutputFolder.checkCacheFolder(tmp, inputs: [model.path], option: "--cache-dir")
        XCTAssertFalse(fm.fileExists(atPath: tmp.appendingPathComponent("cache").path))
    }

    func testCommandsRefuseACacheInsideTheirInput() throws {
        try Binary.requireBuilt()
        let tmp = try temporaryDirectory()
        let model = try copyOfBase(tmp)
        let before = listing(model)
        let tuned = Binary.root.appendingPathComponent("fixtures/family/capital-full").path
        let spectrum = try Binary.run(["spectrum", "--base", model.path, "--tuned", tuned, "--cache-dir", model.appendingPathComponent("svd").path, "--quiet"])
        XCTAssertNotEqual(spectrum.status, 0)
        XCTAssertTrue(spectrum.err.contains("refusing to keep the --cache-dir cache inside the input"), spectrum.err)
        let out = tmp.appendingPathComponent("edited")
        let edit = try Binary.run(["edit", model.path, "--prompt", "The capital of France is", "--target", " Rome", "--method", "rome",
                                   "--layer", "0", "--stats-cache", model.path, "-o", out.path, "--quiet"])
        XCTAssertNotEqual(edit.status, 0)
        XCTAssertTrue(edit.err.contains("refusing to keep the --stats-cache cache in the input"), edit.err)
        XCTAssertFalse(fm.fileExists(atPath: out.path), "no output when the cache is refused")
        XCTAssertEqual(listing(model), before, "the input folder is unchanged")
        // A cache beside the input works and fills.
        let cache = tmp.appendingPathComponent("svd")
        let ok = try Binary.run(["spectrum", "--base", model.path, "--tuned", tuned, "--cache-dir", cache.path, "--quiet"])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertFalse(listing(cache).isEmpty, "decompositions cached")
        XCTAssertEqual(listing(model), before)
    }
}
