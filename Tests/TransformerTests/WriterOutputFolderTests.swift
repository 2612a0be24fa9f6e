import Checkpoints
import Foundation
import Tensors
import XCTest
@testable import Transformer
#if canImport(Glibc)
import Glibc
#endif

/// Every writer reachable from Transformer (finetune full/sparse/edit's folder writer, LoRA
/// adapters, convert to a folder and to a file, convert-gguf, the adapter writer of
/// extract-lora) keeps the output discipline of `OutputFolder`: refused overlaps with inputs,
/// refused existing outputs without --force, --force never replaces an unrelated folder, and a
/// write that fails half-way (the file size limit: a "disk full" of 2 KB) leaves nothing.
final class WriterOutputFolderTests: XCTestCase {
    private let fm = FileManager.default

    struct Writer {
        var name: String
        /// The input the writer reads (copied into the test's folder).
        var input: URL
        var kind: OutputFolder.Kind = .directory
        /// Writes `output` (with `force`).
        var run: (_ output: URL, _ force: Bool) throws -> Void
        /// Checks a written output.
        var check: (_ output: URL) throws -> Void
    }

    private func tmp() throws -> URL {
        let d = fm.temporaryDirectory.appendingPathComponent("ws-writers-\(UUID().uuidString)")
        try fm.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    /// A copy of a fixture model folder (or file) under `dir/inputs`.
    private func copyInput(_ source: URL, into dir: URL) throws -> URL {
        let inputs = dir.appendingPathComponent("inputs")
        try fm.createDirectory(at: inputs, withIntermediateDirectories: true)
        let to = inputs.appendingPathComponent(source.lastPathComponent)
        try fm.copyItem(at: source, to: to)
        return to
    }

    /// Path -> bytes of every file under `url` (or of the file).
    private func snapshot(_ url: URL) throws -> [String: Data] {
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else { return [:] }
        guard isDir.boolValue else { return [url.path: try Data(contentsOf: url)] }
        var out: [String: Data] = [:]
        for rel in fm.subpaths(atPath: url.path) ?? [] {
            let p = url.appendingPathComponent(rel)
            var d: ObjCBool = false
            if fm.fileExists(atPath: p.path, isDirectory: &d), !d.boolValue { out[rel] = try Data(contentsOf: p) }
        }
        return out
    }

    /// Hidden entries next to the outputs (staging folders, lock files) in `dir`.
    private func leftovers(_ dir: URL) throws -> [String] {
        try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }.sorted()
    }

    /// Runs `body` with RLIMIT_FSIZE at `bytes` and SIGXFSZ ignored, so that any write past
    /// `bytes` in a file fails with EFBIG, as on a full disk.
    static func withFileSizeLimit<T>(_ bytes: rlim_t, _ body: () throws -> T) rethrows -> T {
        let res = __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
        var old = rlimit()
        getrlimit(res, &old)
        let oldHandler = signal(SIGXFSZ, SIG_IGN)
        var limited = rlimit(rlim_cur: bytes, rlim_max: old.rlim_max)
        setrlimit(res, &limited)
        defer {
            setrlimit(res, &old)
            signal(SIGXFSZ, oldHandler)
        }
        return try body()
    }

    func checkDiscipline(_ w: Writer, dir: URL) throws {
        let before = try snapshot(w.input)
        let parentOfInput = w.input.deletingLastPathComponent()
        var isDir: ObjCBool = false
        _ = fm.fileExists(atPath: w.input.path, isDirectory: &isDir)
        var overlaps: [(URL, String)] = [(w.input, "onto"), (parentOfInput, "as a parent folder of")]
        if isDir.boolValue {
            overlaps.append((w.input.appendingPathComponent(w.kind == .file ? "out.safetensors" : "out"), "inside"))
        }
        for (out, relation) in overlaps {
            for force in [false, true] {
                XCTAssertThrowsError(try w.run(out, force), "\(w.name) -> \(out.path)") { e in
                    guard case let .overlapsInput(_, _, r) = e as? OutputError else { return XCTFail("\(w.name): \(e)") }
                    XCTAssertEqual(r, relation, "\(w.name) -> \(out.path)")
                }
            }
        }

        let outName = w.kind == .file ? "out.safetensors" : "out"
        let out = dir.appendingPathComponent(outName)
        if w.kind == .directory {
            // An unrelated non-empty folder: refused without --force, and with it.
            let mine = dir.appendingPathComponent("mine")
            try fm.createDirectory(at: mine, withIntermediateDirectories: true)
            try Data("precious".utf8).write(to: mine.appendingPathComponent("precious.txt"))
            XCTAssertThrowsError(try w.run(mine, false), w.name) { XCTAssertEqual($0 as? OutputError, .exists(path: mine.path), w.name) }
            XCTAssertThrowsError(try w.run(mine, true), w.name) { XCTAssertEqual($0 as? OutputError, .notWeightsmithOutput(path: mine.path), w.name) }
            XCTAssertEqual(try fm.contentsOfDirectory(atPath: mine.path), ["precious.txt"], w.name)
            try fm.removeItem(at: mine)
        }

        // A write that fails half-way leaves nothing at the output path and no staging entry.
        XCTAssertThrowsError(try Self.withFileSizeLimit(2048) { try w.run(out, false) }, w.name)
        XCTAssertFalse(fm.fileExists(atPath: out.path), "\(w.name): partial output left")
        XCTAssertEqual(try leftovers(dir), [], w.name)

        // Then the run succeeds; a second one needs --force and replaces the first.
        try w.run(out, false)
        try w.check(out)
        XCTAssertThrowsError(try w.run(out, false), w.name) { XCTAssertEqual($0 as? OutputError, .exists(path: out.path), w.name) }
        try w.run(out, true)
        try w.check(out)
        XCTAssertEqual(try leftovers(dir), [], w.name)
        XCTAssertEqual(try snapshot(w.input), before, "\(w.name): an input changed")
    }

    func testModelFolderWriter() throws {
        let dir = try tmp()
        let input = try copyInput(ModelParityTests.dir.appendingPathComponent("llama"), into: dir)
        let model = try TransformerModel.load(path: input.path)
        try checkDiscipline(Writer(name: "TransformerModel.save", input: input, run: { out, force in
            try model.save(to: out, dtype: .f32, sideFilesFrom: input, force: force)
        }, check: { out in
            let back = try TransformerModel.load(path: out.path)
            XCTAssertEqual(back.parameters.tensor("model.norm.weight"), model.parameters.tensor("model.norm.weight"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(OutputFolder.markerName).path))
        }), dir: dir)
    }

    func testLoRAAdapterWriter() throws {
        let dir = try tmp()
        let input = try copyInput(ModelParityTests.dir.appendingPathComponent("llama"), into: dir)
        let model = try TransformerModel.load(path: input.path)
        let lora = try LoRAAdapters(model: model, settings: .init(rank: 4, alpha: 6, rsLoRA: true, targetModules: ["q_proj", "v_proj"]), seed: 1)
        try checkDiscipline(Writer(name: "LoRAAdapters.save", input: input, run: { out, force in
            try lora.save(to: out, baseModelNameOrPath: input.path, force: force, inputs: [input])
        }, check: { out in
            let a = try LoRAAdapter(path: out.path)
            XCTAssertEqual(a.config.r, 4)
            XCTAssertEqual(a.config.loraAlpha, 6)
            XCTAssertTrue(a.config.useRSLoRA)
        }), dir: dir)
    }

    func testConvertToFolderAndToFile() throws {
        let dir = try tmp()
        let input = try copyInput(ModelParityTests.dir.appendingPathComponent("llama"), into: dir)
        let check: (URL) throws -> Void = { out in
            XCTAssertEqual(try Checkpoint(path: out.path).tensorNames, try Checkpoint(path: input.path).tensorNames)
        }
        try checkDiscipline(Writer(name: "convert folder", input: input, run: { out, force in
            _ = try CheckpointConverter.convert(input: input.path, output: out.path, options: .init(dtype: .bf16), force: force)
        }, check: check), dir: dir)
        let dir2 = try tmp()
        let input2 = try copyInput(ModelParityTests.dir.appendingPathComponent("llama"), into: dir2)
        try checkDiscipline(Writer(name: "convert file", input: input2, kind: .file, run: { out, force in
            _ = try CheckpointConverter.convert(input: input2.path, output: out.path, options: .init(dtype: .f16), force: force)
        }, check: { out in
            XCTAssertEqual(try Checkpoint(path: out.path).tensorNames, try Checkpoint(path: input2.path).tensorNames)
        }), dir: dir2)
    }

    func testConvertGGUF() throws {
        let dir = try tmp()
        let input = try copyInput(ModelParityTests.dir.appendingPathComponent("llama_gguf.gguf"), into: dir)
        try checkDiscipline(Writer(name: "convert-gguf", input: input, run: { out, force in
            _ = try GGUFConverter.convert(gguf: try GGUFFile(url: input), to: out, force: force)
        }, check: { out in
            _ = try TransformerModel.load(path: out.path)
        }), dir: dir)
    }
}
