import Foundation
import Testing
@testable import Checkpoints
@testable import Spectral
import Tensors

/// extract-lora and --plots keep the output discipline of `OutputFolder`; the decomposition
/// cache's clear removes only its own entries.
@Suite struct SpectralOutputFolderTests {
    let fm = FileManager.default

    func hidden(_ dir: URL) throws -> [String] { try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") } }

    /// Copies of the demo base and tuned folders under `dir/inputs`.
    func inputs(_ dir: URL) throws -> (URL, URL) {
        let d = dir.appendingPathComponent("inputs")
        try fm.createDirectory(at: d, withIntermediateDirectories: true)
        let base = d.appendingPathComponent("base"), tuned = d.appendingPathComponent("full-a")
        try fm.copyItem(at: Paths.demo.appendingPathComponent("base"), to: base)
        try fm.copyItem(at: Paths.demo.appendingPathComponent("full-a"), to: tuned)
        return (base, tuned)
    }

    func bytes(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for rel in fm.subpaths(atPath: dir.path) ?? [] {
            var isDir: ObjCBool = false
            let p = dir.appendingPathComponent(rel)
            if fm.fileExists(atPath: p.path, isDirectory: &isDir), !isDir.boolValue { out[rel] = try Data(contentsOf: p) }
        }
        return out
    }

    struct Injected: Error {}

    /// Swift Testing runs suites in parallel, so a process-wide file size limit would hit other
    /// tests: the fault is injected by path instead, after the staging entry is filled.
    func failingHalfWay<T>(_ out: URL, _ body: () throws -> T) throws {
        OutputFolder.injectFailure(forOutput: out, Injected())
        #expect(throws: Injected.self) { _ = try body() }
    }

    @Test func extractLoRAOutputDiscipline() throws {
        let dir = tempDir("extract-safety")
        defer { try? fm.removeItem(at: dir) }
        let (baseURL, tunedURL) = try inputs(dir)
        let before = try bytes(dir.appendingPathComponent("inputs"))
        let base = try Checkpoint(path: baseURL.path), tuned = try Checkpoint(path: tunedURL.path)
        func extract(_ out: URL, rank: Int = 2, force: Bool = false) throws -> LoRAExtraction.Result {
            try LoRAExtraction.extract(base: base, tuned: tuned, rank: rank, modules: "layers\\.0\\.self_attn", output: out, force: force)
        }
        // Onto, inside or above an input: refused with or without --force.
        for (out, relation) in [(baseURL, "onto"), (tunedURL.appendingPathComponent("lora"), "inside"), (baseURL.deletingLastPathComponent(), "as a parent folder of")] {
            for force in [false, true] {
                #expect {
                    _ = try extract(out, force: force)
                } throws: { e in
                    if case let .overlapsInput(_, _, r) = e as? OutputError { return r == relation }
                    return false
                }
            }
        }
        // A failure half-way leaves nothing.
        let out = dir.appendingPathComponent("lora")
        try failingHalfWay(out) { try extract(out) }
        #expect(!fm.fileExists(atPath: out.path))
        #expect(try hidden(dir) == [])
        // Issue 13, item 3: an existing adapter is not overwritten without --force.
        _ = try extract(out, rank: 8)
        #expect(try LoRAAdapter(path: out.path).config.r == 8)
        #expect(throws: OutputError.exists(path: out.path)) { _ = try extract(out, rank: 2) }
        #expect(try LoRAAdapter(path: out.path).config.r == 8)
        _ = try extract(out, rank: 2, force: true)
        #expect(try LoRAAdapter(path: out.path).config.r == 2)
        // --force never replaces a folder weightsmith did not write.
        let mine = dir.appendingPathComponent("mine")
        try fm.createDirectory(at: mine, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: mine.appendingPathComponent("notes.txt"))
        #expect(throws: OutputError.notWeightsmithOutput(path: mine.path)) { _ = try extract(mine, force: true) }
        #expect(try fm.contentsOfDirectory(atPath: mine.path) == ["notes.txt"])
        #expect(try hidden(dir) == [])
        #expect(try bytes(dir.appendingPathComponent("inputs")) == before)
    }

    @Test func plotsFolderDiscipline() throws {
        let dir = tempDir("plots-safety")
        defer { try? fm.removeItem(at: dir) }
        let base = try Checkpoint(path: Paths.demo.appendingPathComponent("base").path)
        let ft = try FineTune.open(path: Paths.demo.appendingPathComponent("full-a").path)
        var opts = SpectralOptions()
        opts.fullTunedSpectrum = true
        let report = try SpectralAnalysis.run(base: base, fineTunes: [ft], modules: "layers\\.0\\.self_attn\\.q", options: opts)
        let plots = dir.appendingPathComponent("plots")
        try failingHalfWay(plots) { try SpectralPlots.write(report, to: plots) }
        #expect(!fm.fileExists(atPath: plots.path))
        let files = try SpectralPlots.write(report, to: plots)
        #expect(files.allSatisfy { fm.fileExists(atPath: $0) } && files.count == 3)
        #expect(throws: OutputError.exists(path: plots.path)) { try SpectralPlots.write(report, to: plots) }
        try SpectralPlots.write(report, to: plots, force: true)
        let mine = dir.appendingPathComponent("mine")
        try fm.createDirectory(at: mine, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: mine.appendingPathComponent("spectra.svg"))
        #expect(throws: OutputError.notWeightsmithOutput(path: mine.path)) { try SpectralPlots.write(report, to: mine, force: true) }
        #expect(try Data(contentsOf: mine.appendingPathComponent("spectra.svg")) == Data("x".utf8))
        #expect(try hidden(dir) == [])
    }

    @Test func cacheClearKeepsFilesItDidNotWrite() throws {
        let dir = tempDir("cache-clear")
        defer { try? fm.removeItem(at: dir) }
        let cache = DecompositionCache(directory: dir)
        cache.store(kind: "u", hash: 7, entry: .init(rows: 2, cols: 2, u: Tensor(shape: [2, 1], scalars: [1, 0]), s: [2, 1]))
        try Data("mine".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        try fm.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        #expect(try cache.clear() == 1)
        #expect(try fm.contentsOfDirectory(atPath: dir.path).sorted() == ["notes.txt", "sub"])
    }
}
