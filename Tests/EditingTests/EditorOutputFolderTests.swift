import Checkpoints
import Foundation
import Tensors
import Transformer
import XCTest
@testable import Editing
#if canImport(Glibc)
import Glibc
#endif

/// train-editor's file output keeps the discipline of `OutputFolder` (kind .file).
final class EditorOutputFolderTests: XCTestCase {
    func testEditorFileIsAtomicAndNeverOverwrittenWithoutForce() throws {
        let fm = FileManager.default
        let pm = try familyBase()
        let editor = try MendEditor(model: pm.model, rank: 4, editLR: 1e-3, seed: 9)
        let dir = fm.temporaryDirectory.appendingPathComponent("ws-editor-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let data = dir.appendingPathComponent("edits.jsonl")
        try Data("{}\n".utf8).write(to: data)
        let out = dir.appendingPathComponent("editor.safetensors")
        func hidden() throws -> [String] { try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") } }

        // The output is never an input.
        XCTAssertThrowsError(try editor.save(to: data, force: true, inputs: [data])) {
            guard case .overlapsInput = $0 as? OutputError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(try Data(contentsOf: data), Data("{}\n".utf8))
        // A write that fails half-way (2 KB file size limit, as a full disk) leaves nothing.
        let res = __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
        var old = rlimit()
        getrlimit(res, &old)
        let handler = signal(SIGXFSZ, SIG_IGN)
        var limited = rlimit(rlim_cur: 2048, rlim_max: old.rlim_max)
        setrlimit(res, &limited)
        XCTAssertThrowsError(try editor.save(to: out))
        setrlimit(res, &old)
        signal(SIGXFSZ, handler)
        XCTAssertFalse(fm.fileExists(atPath: out.path))
        XCTAssertEqual(try hidden(), [])

        try editor.save(to: out)
        XCTAssertEqual(try MendEditor.load(out).weights, editor.weights)
        let first = try Data(contentsOf: out)
        XCTAssertThrowsError(try editor.save(to: out)) { XCTAssertEqual($0 as? OutputError, .exists(path: out.path)) }
        XCTAssertEqual(try Data(contentsOf: out), first)
        try editor.save(to: out, force: true)
        XCTAssertEqual(try MendEditor.load(out).weights, editor.weights)
        // A folder is never replaced by the file.
        let folder = dir.appendingPathComponent("folder.safetensors")
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        XCTAssertThrowsError(try editor.save(to: folder, force: true))
        XCTAssertEqual(try hidden(), [])
    }
}
