import Foundation
@testable import Checkpoints
@testable import Merging
import XCTest

/// A full disk in the middle of a write (ENOSPC injected into `SafetensorsWriter` after N bytes,
/// see `SafetensorsWriter.injectDiskFull`): the error names the final output path, nothing is
/// left at OUT, no staging or temporary entry is left beside it, and with --force the previous
/// output is byte for byte what it was. Inputs are the committed fixture family.
final class DiskFullTests: XCTestCase {
    static let family = Binary.root.appendingPathComponent("fixtures/family")
    let fm = FileManager.default
    var dir: URL!

    override func setUpWithError() throws {
        guard fm.fileExists(atPath: Self.family.appendingPathComponent("base/model.safetensors").path) else {
            throw XCTSkip("fixtures/family is missing")
        }
        dir = fm.temporaryDirectory.appendingPathComponent("diskfull-test-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir {
            SafetensorsWriter.clearInjectedDiskFull(under: dir)
            try? fm.removeItem(at: dir)
        }
    }

    func model(_ name: String) -> String { Self.family.appendingPathComponent(name).path }

    /// Every regular file under `url` (or `url` itself) with its bytes.
    func snapshot(_ url: URL) throws -> [String: Data] {
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else { return [:] }
        if !isDir.boolValue { return ["": try Data(contentsOf: url)] }
        var out: [String: Data] = [:]
        for rel in fm.subpaths(atPath: url.path) ?? [] {
            let p = url.appendingPathComponent(rel)
            if fm.fileExists(atPath: p.path, isDirectory: &isDir), !isDir.boolValue { out[rel] = try Data(contentsOf: p) }
        }
        return out
    }

    /// Runs `body` with ENOSPC injected under `dir` and checks the error and what is left.
    /// `expectedEntries` is the listing of `dir` afterwards (everything, hidden entries included).
    func expectDiskFull(output: URL, afterBytes: Int, skippingFiles: Int = 0, expectedEntries: [String],
                        file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) throws {
        SafetensorsWriter.injectDiskFull(under: dir, afterBytes: afterBytes, skippingFiles: skippingFiles)
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            let message = "\(e)"
            XCTAssertTrue(message.contains(output.path), "the error names the final path: \(message)", file: file, line: line)
            XCTAssertTrue(message.contains("No space left on device"), message, file: file, line: line)
            XCTAssertFalse(message.contains(".weightsmith-") || message.contains(".tmp-"), "the error names a staging path: \(message)",
                           file: file, line: line)
        }
        XCTAssertFalse(SafetensorsWriter.clearInjectedDiskFull(under: dir), "no writer took the fault", file: file, line: line)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir.path).sorted(), expectedEntries.sorted(), file: file, line: line)
    }

    func linearMerge(_ out: URL, force: Bool = false, shardBytes: Int? = nil) throws {
        let yaml = "merge_method: linear\nmodels:\n  - model: \(model("capital-full"))\n    parameters: {weight: 1}\n"
            + "  - model: \(model("profession-full"))\n    parameters: {weight: 1}\n"
        var options = ExecutionOptions(progress: false)
        options.overwrite = force
        options.hashInputs = false
        if let shardBytes { options.maxShardBytes = shardBytes }
        _ = try MergeExecutor.run(try MergePlanner.plan(RecipeParser.parse(yaml)), to: out, options: options)
    }

    // (a) merge into a new OUT.
    func testMergeIntoNewOutput() throws {
        let out = dir.appendingPathComponent("merged")
        for bytes in [0, 5_000, 1_500_000] {   // in the header, in the first tensors, half-way
            try expectDiskFull(output: out, afterBytes: bytes, expectedEntries: []) { try linearMerge(out) }
            XCTAssertFalse(fm.fileExists(atPath: out.path))
        }
        // A sharded output failing in its third shard (two shards already complete in staging).
        try expectDiskFull(output: out, afterBytes: 200_000, skippingFiles: 2, expectedEntries: []) { try linearMerge(out, shardBytes: 1_000_000) }
        // Then the same merge succeeds, and leaves only OUT.
        try linearMerge(out)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir.path), ["merged"])
        XCTAssertNotNil(try Checkpoint(path: out.path).info("model.norm.weight"))
    }

    // (b) convert: a single-file output and a folder output.
    func testConvertToSingleFileAndFolder() throws {
        let file = dir.appendingPathComponent("capital.safetensors")
        for bytes in [0, 100_000, 3_000_000] {
            try expectDiskFull(output: file, afterBytes: bytes, expectedEntries: []) {
                _ = try CheckpointConverter.convert(input: model("capital-full"), output: file.path, options: .init(dtype: .f32))
            }
        }
        let folder = dir.appendingPathComponent("capital-bf16")
        try expectDiskFull(output: folder, afterBytes: 400_000, expectedEntries: []) {
            _ = try CheckpointConverter.convert(input: model("capital-full"), output: folder.path, options: .init(dtype: .bf16))
        }
        try expectDiskFull(output: folder, afterBytes: 10_000, skippingFiles: 1, expectedEntries: []) {
            _ = try CheckpointConverter.convert(input: model("capital-full"), output: folder.path, options: .init(maxShardBytes: 1_000_000))
        }
        _ = try CheckpointConverter.convert(input: model("capital-full"), output: file.path)
        _ = try CheckpointConverter.convert(input: model("capital-full"), output: folder.path)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir.path).sorted(), ["capital-bf16", "capital.safetensors"])
    }

    // (c) --force over an existing OUT: the old OUT stays byte-identical.
    func testForceKeepsThePreviousOutputIntact() throws {
        let out = dir.appendingPathComponent("merged")
        try linearMerge(out)
        let before = try snapshot(out)
        XCTAssertGreaterThan(before.count, 3)
        for bytes in [0, 1_000_000] {
            try expectDiskFull(output: out, afterBytes: bytes, expectedEntries: ["merged"]) { try linearMerge(out, force: true) }
            XCTAssertEqual(try snapshot(out), before)
        }
        let file = dir.appendingPathComponent("capital.safetensors")
        _ = try CheckpointConverter.convert(input: model("capital-full"), output: file.path)
        let fileBefore = try snapshot(file)
        try expectDiskFull(output: file, afterBytes: 1_000_000, expectedEntries: ["merged", "capital.safetensors"]) {
            _ = try CheckpointConverter.convert(input: model("capital-full"), output: file.path, options: .init(dtype: .f16), force: true)
        }
        XCTAssertEqual(try snapshot(file), fileBefore)
        let folder = dir.appendingPathComponent("converted")
        _ = try CheckpointConverter.convert(input: model("capital-full"), output: folder.path)
        let folderBefore = try snapshot(folder)
        try expectDiskFull(output: folder, afterBytes: 600_000, expectedEntries: ["merged", "capital.safetensors", "converted"]) {
            _ = try CheckpointConverter.convert(input: model("capital-full"), output: folder.path, options: .init(dtype: .bf16), force: true)
        }
        XCTAssertEqual(try snapshot(folder), folderBefore)
        // The fault is gone once taken: the forced run now replaces the output.
        try linearMerge(out, force: true)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir.path).sorted(), ["capital.safetensors", "converted", "merged"])
    }

    /// Writers elsewhere never see a fault armed for another folder.
    func testFaultIsScopedToItsFolder() throws {
        let other = dir.appendingPathComponent("other")
        try fm.createDirectory(at: other, withIntermediateDirectories: true)
        SafetensorsWriter.injectDiskFull(under: other, afterBytes: 0)
        let file = dir.appendingPathComponent("capital.safetensors")
        _ = try CheckpointConverter.convert(input: model("capital-full"), output: file.path)
        XCTAssertTrue(SafetensorsWriter.clearInjectedDiskFull(under: other), "the fault was still pending")
    }
}
