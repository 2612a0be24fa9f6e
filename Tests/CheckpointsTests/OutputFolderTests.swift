import Checkpoints
import Foundation
import XCTest

final class OutputFolderTests: XCTestCase {
    private let fm = FileManager.default

    private func makeInput(_ dir: URL, _ name: String) throws -> URL {
        let d = dir.appendingPathComponent(name)
        try fm.createDirectory(at: d, withIntermediateDirectories: true)
        try Data("weights of \(name)".utf8).write(to: d.appendingPathComponent("model.safetensors"))
        return d
    }

    private func hiddenEntries(_ dir: URL) throws -> [String] {
        try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") && !$0.hasSuffix("weightsmith-lock") }.sorted()
    }

    func testWritesAtomicallyWithMarkerAndNoStagingLeft() throws {
        let tmp = try makeTemporaryDirectory()
        let input = try makeInput(tmp, "cap")
        let out = tmp.appendingPathComponent("merged")
        let folder = try OutputFolder.prepare(out, inputs: [input], force: false, command: "merge")
        try folder.write { staging in
            XCTAssertFalse(self.fm.fileExists(atPath: out.path), "nothing at the final path before the commit")
            XCTAssertTrue(staging.lastPathComponent.hasPrefix(".merged.weightsmith-\(getpid())-"))
            try Data("x".utf8).write(to: staging.appendingPathComponent("model.safetensors"))
        }
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: out.path).sorted(), [OutputFolder.markerName, "model.safetensors"])
        XCTAssertEqual(try hiddenEntries(tmp), [])
    }

    func testMissingParentFoldersAreCreated() throws {
        let tmp = try makeTemporaryDirectory()
        let out = tmp.appendingPathComponent("runs/today/merged")
        let folder = try OutputFolder.prepare(out, inputs: [], force: false, command: "merge")
        try folder.write { staging in
            try Data("x".utf8).write(to: staging.appendingPathComponent("model.safetensors"))
        }
        XCTAssertTrue(fm.fileExists(atPath: out.appendingPathComponent("model.safetensors").path))
    }

    func testErrorInBodyLeavesNothing() throws {
        let tmp = try makeTemporaryDirectory()
        let out = tmp.appendingPathComponent("merged")
        struct Boom: Error {}
        let folder = try OutputFolder.prepare(out, inputs: [], force: false, command: "merge")
        XCTAssertThrowsError(try folder.write { staging in
            try Data("x".utf8).write(to: staging.appendingPathComponent("half.safetensors"))
            throw Boom()
        })
        XCTAssertFalse(fm.fileExists(atPath: out.path))
        XCTAssertEqual(try hiddenEntries(tmp), [])
    }

    func testRefusesOutputOntoInsideOrAboveAnInput() throws {
        let tmp = try makeTemporaryDirectory()
        let parent = tmp.appendingPathComponent("p")
        let input = try makeInput(parent, "cap")
        let link = tmp.appendingPathComponent("link")
        try fm.createSymbolicLink(at: link, withDestinationURL: input)
        let cases: [(URL, String)] = [
            (input, "onto"), (link, "onto"), (parent, "as a parent folder of"),
            (input.appendingPathComponent("sub"), "inside"), (link.appendingPathComponent("sub"), "inside"),
        ]
        for (out, relation) in cases {
            for force in [false, true] {
                XCTAssertThrowsError(try OutputFolder.prepare(out, inputs: [input], force: force, command: "merge")) { e in
                    guard case let .overlapsInput(_, _, r) = e as? OutputError else { return XCTFail("\(out.path): \(e)") }
                    XCTAssertEqual(r, relation, out.path)
                }
            }
        }
        XCTAssertEqual(try Data(contentsOf: input.appendingPathComponent("model.safetensors")), Data("weights of cap".utf8))
    }

    func testExistingNonEmptyNeedsForceAndForceOnlyReplacesOurOutputs() throws {
        let tmp = try makeTemporaryDirectory()
        let unrelated = tmp.appendingPathComponent("m")
        try fm.createDirectory(at: unrelated, withIntermediateDirectories: true)
        try Data("precious".utf8).write(to: unrelated.appendingPathComponent("precious.txt"))
        XCTAssertThrowsError(try OutputFolder.prepare(unrelated, inputs: [], force: false, command: "merge")) {
            XCTAssertEqual($0 as? OutputError, .exists(path: unrelated.path))
        }
        XCTAssertThrowsError(try OutputFolder.prepare(unrelated, inputs: [], force: true, command: "merge")) {
            XCTAssertEqual($0 as? OutputError, .notWeightsmithOutput(path: unrelated.path))
        }
        XCTAssertEqual(try Data(contentsOf: unrelated.appendingPathComponent("precious.txt")), Data("precious".utf8))

        // A previous output is replaced with --force, and only then.
        let out = tmp.appendingPathComponent("out")
        try OutputFolder.prepare(out, inputs: [], force: false, command: "merge").write { s in
            try Data("v1".utf8).write(to: s.appendingPathComponent("a"))
        }
        XCTAssertThrowsError(try OutputFolder.prepare(out, inputs: [], force: false, command: "merge"))
        try OutputFolder.prepare(out, inputs: [], force: true, command: "merge").write { s in
            try Data("v2".utf8).write(to: s.appendingPathComponent("b"))
        }
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: out.path).sorted(), [OutputFolder.markerName, "b"])
        XCTAssertEqual(try hiddenEntries(tmp), [])

        // An existing empty folder is fine without --force.
        let empty = tmp.appendingPathComponent("empty")
        try fm.createDirectory(at: empty, withIntermediateDirectories: true)
        try OutputFolder.prepare(empty, inputs: [], force: false, command: "merge").write { s in
            try Data("x".utf8).write(to: s.appendingPathComponent("c"))
        }
        XCTAssertTrue(fm.fileExists(atPath: empty.appendingPathComponent("c").path))
    }

    func testSecondRunToTheSamePathFailsFastWhileLocked() throws {
        let tmp = try makeTemporaryDirectory()
        let out = tmp.appendingPathComponent("m")
        let first = try OutputFolder.prepare(out, inputs: [], force: false, command: "merge")
        XCTAssertThrowsError(try OutputFolder.prepare(out, inputs: [], force: false, command: "merge")) {
            XCTAssertEqual($0 as? OutputError, .locked(path: out.path))
        }
        try first.write { s in try Data("x".utf8).write(to: s.appendingPathComponent("a")) }
        _ = first
    }

    func testStaleStagingOfDeadProcessIsRemovedLiveOneKept() throws {
        let tmp = try makeTemporaryDirectory()
        // A PID far above pid_max is never alive; our own parent is.
        let stale = tmp.appendingPathComponent(".m.weightsmith-2147483000-abc")
        let live = tmp.appendingPathComponent(".m.weightsmith-\(getppid())-def")
        let unrelated = tmp.appendingPathComponent(".m.weightsmith-notapid")
        for d in [stale, live, unrelated] { try fm.createDirectory(at: d, withIntermediateDirectories: true) }
        let folder = try OutputFolder.prepare(tmp.appendingPathComponent("m"), inputs: [], force: false, command: "merge")
        XCTAssertFalse(fm.fileExists(atPath: stale.path))
        XCTAssertTrue(fm.fileExists(atPath: live.path))
        XCTAssertTrue(fm.fileExists(atPath: unrelated.path))
        _ = folder
    }

    func testSingleFileOutput() throws {
        let tmp = try makeTemporaryDirectory()
        let input = tmp.appendingPathComponent("in.safetensors")
        try Data("in".utf8).write(to: input)
        XCTAssertThrowsError(try OutputFolder.prepare(input, inputs: [input], force: true, command: "convert", kind: .file))
        let out = tmp.appendingPathComponent("out.safetensors")
        try OutputFolder.prepare(out, inputs: [input], force: false, command: "convert", kind: .file).write { s in
            try Data("v1".utf8).write(to: s)
        }
        XCTAssertThrowsError(try OutputFolder.prepare(out, inputs: [input], force: false, command: "convert", kind: .file)) {
            XCTAssertEqual($0 as? OutputError, .exists(path: out.path))
        }
        try OutputFolder.prepare(out, inputs: [input], force: true, command: "convert", kind: .file).write { s in
            try Data("v2".utf8).write(to: s)
        }
        XCTAssertEqual(try Data(contentsOf: out), Data("v2".utf8))
        XCTAssertEqual(try hiddenEntries(tmp), [])
        // A folder is never replaced by a file output.
        let dir = try makeInput(tmp, "d")
        XCTAssertThrowsError(try OutputFolder.prepare(dir, inputs: [], force: true, command: "convert", kind: .file))
    }

    func testDanglingSymlinkOutputIsAClearError() throws {
        let tmp = try makeTemporaryDirectory()
        let link = tmp.appendingPathComponent("out")
        try fm.createSymbolicLink(atPath: link.path, withDestinationPath: tmp.appendingPathComponent("nowhere").path)
        XCTAssertThrowsError(try OutputFolder.prepare(link, inputs: [], force: false, command: "merge")) {
            XCTAssertTrue("\($0)".contains("dangling"), "\($0)")
        }
    }
}
