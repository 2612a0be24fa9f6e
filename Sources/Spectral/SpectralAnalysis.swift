import Foundation
import Checkpoints
import Tensors

/// One fine-tune of the base to analyse.
public struct FineTune: @unchecked Sendable {
    public enum Source { case dense(Checkpoint), lora(LoRAAdapter) }
    public var label: String
    public var path: String
    public var source: Source
    public init(label: String, path: String, source: Source) { self.label = label; self.path = path; self.source = source }

    /// Opens `path` as a PEFT adapter (a folder with adapter_config.json) or a checkpoint.
    /// A dense fine-tune is any model reference (`ModelReference`): a folder, file, GGUF, hub id,
    /// or `BASE+ADAPTER`; a task vector or sparse delta is added to `base` when given.
    public static func open(path: String, label: String? = nil, lora: Bool? = nil, base: String? = nil) throws -> FineTune {
        let isAdapter = lora ?? FileManager.default.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent("adapter_config.json").path)
        let name = label ?? URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
        return FineTune(label: name, path: path, source: isAdapter ? .lora(try LoRAAdapter(path: path)) : .dense(try ModelReference.open(path, base: base)))
    }
}

public enum SpectralError: Error, CustomStringConvertible, Equatable {
    case noMatrices(reason: String)
    case missingInFineTune(tensor: String, fineTune: String, path: String)
    case shapeMismatch(tensor: String, fineTune: String, expected: Shape, actual: Shape)
    case invalidModuleRegex(String, reason: String)
    case invalidOption(String)
    case nonFinite(tensor: String, path: String, count: Int)

    public var description: String {
        switch self {
        case let .noMatrices(r): return "no matrices to analyse: \(r)"
        case let .missingInFineTune(t, f, p): return "\(p): fine-tune \"\(f)\" has no tensor \"\(t)\" (the base has it)"
        case let .shapeMismatch(t, f, e, a): return "fine-tune \"\(f)\": tensor \"\(t)\" has shape \(a), the base has \(e)"
        case let .invalidModuleRegex(r, why): return "--modules: \"\(NamePattern.excerpt(r))\" \(why)"
        case let .invalidOption(m): return m
        case let .nonFinite(t, p, n):
            return "\(p): tensor \"\(t)\" has \(n) NaN/infinite value\(n == 1 ? "" : "s"); its singular values are undefined (repair the checkpoint, or leave the tensor out with --modules)"
        }
    }
}

public enum SpectralAnalysis {
    /// Names the default selection skips (embeddings and the output head are not "adapted linear layers").
    static func isEmbeddingLike(_ name: String) -> Bool {
        let l = name.lowercased()
        return l.contains("embed") || l.contains("lm_head") || l.hasPrefix("wte") || l.contains(".wte.") || l.contains(".wpe.") || l.hasPrefix("wpe")
    }

    /// The base tensors to analyse: the LoRA targets when any fine-tune is an adapter (applied to
    /// the full fine-tunes too, as in the paper's code), else every 2-D non-embedding tensor of
    /// the base; then filtered by `modules` (a regex searched in the tensor name).
    public static func selectMatrices(base: Checkpoint, fineTunes: [FineTune], modules: String?) throws -> [String] {
        var names: [String]
        let adapters = fineTunes.compactMap { ft -> LoRAAdapter? in if case let .lora(a) = ft.source { return a } else { return nil } }
        if !adapters.isEmpty {
            for a in adapters { try a.validate(against: base) }
            names = Array(Set(adapters.flatMap { $0.modules.map(\.baseTensorName) })).sorted()
        } else {
            names = base.tensorNames.filter { base.info($0)?.shape.rank == 2 && !isEmbeddingLike($0) }
        }
        if let modules {
            let re: NSRegularExpression
            do { re = try NamePattern.compile(modules) } catch { throw SpectralError.invalidModuleRegex(modules, reason: error.description) }
            names = names.filter { re.firstMatch(in: $0, range: NSRange($0.startIndex..., in: $0)) != nil }
        }
        guard !names.isEmpty else {
            throw SpectralError.noMatrices(reason: modules.map { "--modules \"\($0)\" matches none of the candidate matrices" } ?? "the base has no 2-D weight matrices")
        }
        for ft in fineTunes {
            guard case let .dense(c) = ft.source else { continue }
            for n in names {
                guard let info = c.info(n) else { throw SpectralError.missingInFineTune(tensor: n, fineTune: ft.label, path: ft.path) }
                let bs = base.info(n)!.shape
                guard info.shape == bs else { throw SpectralError.shapeMismatch(tensor: n, fineTune: ft.label, expected: bs, actual: info.shape) }
            }
        }
        return names
    }

    /// `t` unchanged, or a `nonFinite` error naming the tensor and its file.
    static func finite(_ t: Tensor, _ name: String, _ path: String) throws -> Tensor {
        let bad = t.scalars.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
        guard bad == 0 else { throw SpectralError.nonFinite(tensor: name, path: path, count: bad) }
        return t
    }

    /// Runs the per-matrix analysis for every selected matrix and fine-tune, `jobs` matrices at a time.
    public static func run(base: Checkpoint, fineTunes: [FineTune], modules: String? = nil, options: SpectralOptions,
                           jobs: Int = 1, progress: (@Sendable (String) -> Void)? = nil) throws -> SpectralReport {
        guard !fineTunes.isEmpty else { throw SpectralError.invalidOption("at least one fine-tune is needed") }
        guard options.topK > 0 else { throw SpectralError.invalidOption("--top-k must be positive") }
        guard !options.epsilons.isEmpty, options.epsilons.allSatisfy({ $0 > 0 && $0 <= 1 }) else {
            throw SpectralError.invalidOption("--epsilon values must be in (0, 1]")
        }
        let start = Date()
        let names = try selectMatrices(base: base, fineTunes: fineTunes, modules: modules)
        let results = ResultsBox(count: names.count)
        let work: @Sendable (Int) -> Void = { idx in
            if results.failed { return }
            let name = names[idx]
            do {
                let w0 = try finite(try base.tensor(name), name, base.path)
                var perFT: [MatrixAnalysis?] = []
                for ft in fineTunes {
                    switch ft.source {
                    case let .dense(c):
                        perFT.append(try analyzeMatrix(name: name, base: w0, tuned: .dense(try finite(try c.tensor(name), name, ft.path)), options: options))
                    case let .lora(adapter):
                        guard let mod = adapter.module(forBaseTensor: name) else { perFT.append(nil); continue }
                        // fan_in_fan_out (Conv1D) stores the base as (in, out): normalise to (out, in).
                        let w0n = mod.baseIsTransposed && w0.shape == [mod.inFeatures, mod.outFeatures] ? w0.transposed() : w0
                        let (a, b) = try adapter.factors(mod)
                        _ = try finite(a, mod.name + ".lora_A", ft.path)
                        _ = try finite(b, mod.name + ".lora_B", ft.path)
                        perFT.append(try analyzeMatrix(name: name, base: w0n, tuned: .lora(a: a, b: b, scale: Float(mod.scale), rank: mod.rank, alpha: mod.alpha), options: options))
                    }
                }
                var overlaps: [OverlapEntry] = []
                for i in 0..<fineTunes.count {
                    for j in (i + 1)..<max(fineTunes.count, i + 1) {
                        guard let x = perFT[i], let y = perFT[j] else { continue }
                        let ri = x.diagnostics.loraRank ?? x.diagnostics.energyRank
                        let rj = y.diagnostics.loraRank ?? y.diagnostics.energyRank
                        let o = try subspaceOverlap(x.updateU, y.updateU, i: ri, j: rj)
                        overlaps.append(OverlapEntry(name: name, layer: x.diagnostics.layer, moduleType: x.diagnostics.moduleType,
                                                     first: fineTunes[i].label, second: fineTunes[j].label,
                                                     ranks: [min(ri, x.updateU.shape[1]), min(rj, y.updateU.shape[1])], overlap: o))
                    }
                }
                results.set(idx, perFT.map { $0?.diagnostics }, overlaps)
                progress?(name)
            } catch {
                results.fail(error)
            }
        }
        let workers = max(1, min(jobs, names.count))
        if workers == 1 {
            for i in names.indices { work(i); if results.failed { break } }
        } else {
            let next = ResultsBox.Counter()
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while let i = next.take(limit: names.count) { work(i) }
            }
        }
        if let e = results.error { throw e }
        var reports: [FineTuneReport] = []
        for (fi, ft) in fineTunes.enumerated() {
            let mats = results.diagnostics.compactMap { $0?[fi] }
            var r = FineTuneReport(label: ft.label, path: ft.path, kind: .full, loraRank: nil, loraAlpha: nil, useRSLoRA: nil,
                                   matrices: mats, summary: FineTuneSummary(matrices: mats, epsilons: options.epsilons))
            if case let .lora(a) = ft.source {
                r.kind = .lora; r.loraRank = a.config.r; r.loraAlpha = a.config.loraAlpha; r.useRSLoRA = a.config.useRSLoRA
            }
            reports.append(r)
        }
        var notes: [String] = []
        for ft in fineTunes {
            if case let .lora(a) = ft.source, !a.savedModules.isEmpty {
                notes.append("\(ft.label): modules_to_save replaces \(a.savedModules.count) tensor(s) fully (\(a.savedModules.keys.sorted().joined(separator: ", "))); they are not part of the low-rank diagnostics")
            }
        }
        return SpectralReport(base: base.path, topK: options.topK, epsilons: options.epsilons, fineTunes: reports,
                              overlaps: results.overlaps.flatMap { $0 }, notes: notes,
                              seconds: Date().timeIntervalSince(start), cacheHits: options.cache?.hits ?? 0, cacheMisses: options.cache?.misses ?? 0)
    }
}

/// Thread-safe result slots for the parallel loop.
final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    var diagnostics: [[MatrixDiagnostics?]?]
    var overlaps: [[OverlapEntry]]
    private(set) var error: Error?
    init(count: Int) { diagnostics = Array(repeating: nil, count: count); overlaps = Array(repeating: [], count: count) }
    var failed: Bool { lock.lock(); defer { lock.unlock() }; return error != nil }
    func set(_ i: Int, _ d: [MatrixDiagnostics?], _ o: [OverlapEntry]) { lock.lock(); diagnostics[i] = d; overlaps[i] = o; lock.unlock() }
    func fail(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func take(limit: Int) -> Int? {
            lock.lock(); defer { lock.unlock() }
            guard value < limit else { return nil }
            value += 1
            return value - 1
        }
    }
}
