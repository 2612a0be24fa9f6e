import Foundation
import Testing
@testable import Checkpoints
@testable import Spectral
import Tensors

/// Compares with scripts/spectral_reference.py (numpy, float64), committed expected JSON.
@Suite struct ReferenceParityTests {
    struct Expected: Decodable {
        struct M: Decodable {
            var sigmaUpdateTop: [Double]; var effectiveRank: Double; var stableRank: Double
            var relativeFrobenius: Double; var relativeSpectral: Double; var topEnergy: Double; var rank90: Int
            var maxCosines: [Double]; var intruders: [String: Int]
            var amplification: Amp?
        }
        struct Amp: Decodable { var rank: Int; var projection: Double; var factor: Double; var baseTopProjection: Double; var randomProjection: Double }
        struct Demo: Decodable {
            var loraA: [String: M]; var fullA: [String: M]; var overlap: [String: Double]
            enum CodingKeys: String, CodingKey { case loraA = "lora-a", fullA = "full-a", overlap }
        }
        var epsilons: [Double]
        var demo: Demo
        var planted: [String: M]
    }

    func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Paths.fixtures.appendingPathComponent("expected_spectral.json")))
    }

    func compare(_ d: MatrixDiagnostics, _ e: Expected.M, _ eps: [Double], _ label: String) {
        #expect(abs(d.effectiveRank - e.effectiveRank) < 2e-3 * e.effectiveRank + 1e-6, "\(label) erank")
        #expect(abs(d.stableRank - e.stableRank) < 2e-3 * e.stableRank + 1e-6, "\(label) srank")
        #expect(abs(d.relativeFrobenius - e.relativeFrobenius) < 1e-4 * e.relativeFrobenius + 1e-7, "\(label) rel")
        #expect(abs(d.relativeSpectral - e.relativeSpectral) < 1e-4 * e.relativeSpectral + 1e-7, "\(label) relσ")
        #expect(abs(d.topEnergy - e.topEnergy) < 1e-4, "\(label) energy")
        #expect(d.rank90 == e.rank90, "\(label) rank90")
        for (j, s) in e.sigmaUpdateTop.enumerated() where j < d.sigmaUpdate.count {
            #expect(abs(Double(d.sigmaUpdate[j]) - s) < 1e-4 * e.sigmaUpdateTop[0] + 1e-7, "\(label) σ\(j)")
        }
        #expect(zip(d.intruders.maxCosines, e.maxCosines).allSatisfy { abs(Double($0) - $1) < 2e-3 }, "\(label) max-cos")
        // Amplification factor (§E.6): same directions used, projection and factor to 1e-3 relative.
        if let ea = e.amplification {
            if let da = d.amplification {
                #expect(da.rank == ea.rank, "\(label) amplification rank")
                #expect(abs(da.projection - ea.projection) < 1e-3 * ea.projection + 1e-6, "\(label) ‖UᵀW0V‖ \(da.projection) vs \(ea.projection)")
                #expect(abs(da.factor - ea.factor) < 1e-3 * ea.factor, "\(label) amplification \(da.factor) vs \(ea.factor)")
                #expect(abs(da.baseTopProjection - ea.baseTopProjection) < 1e-5 * ea.baseTopProjection, "\(label) W0 top")
                #expect(abs(da.randomProjection - ea.randomProjection) < 1e-5 * ea.randomProjection, "\(label) random")
            } else { Issue.record("\(label): no amplification, numpy has \(ea.factor)") }
        } else { #expect(d.amplification == nil, "\(label): numpy has no amplification") }
        for e0 in eps {
            // A vector whose max-cos sits within rounding of ε may legitimately fall either side.
            let borderline = e.maxCosines.contains { abs($0 - e0) < 2e-3 }
            if !borderline { #expect(d.intruders.count(at: e0) == e.intruders[String(e0)], "\(label) count @\(e0)") }
        }
    }

    @Test func demoFixturesMatchNumpy() throws {
        let exp = try expected()
        let base = try Checkpoint(path: Paths.demo.appendingPathComponent("base").path)
        let fts = [try FineTune.open(path: Paths.demo.appendingPathComponent("lora-a").path),
                   try FineTune.open(path: Paths.demo.appendingPathComponent("full-a").path)]
        var opts = SpectralOptions()
        opts.epsilons = exp.epsilons
        opts.energyRank = 8
        let report = try SpectralAnalysis.run(base: base, fineTunes: fts, options: opts, jobs: 2)
        #expect(report.fineTunes.map(\.label) == ["lora-a", "full-a"])
        #expect(report.fineTunes[0].matrices.count == exp.demo.loraA.count)
        for m in report.fineTunes[0].matrices { compare(m, try #require(exp.demo.loraA[m.name]), exp.epsilons, "lora \(m.name)") }
        for m in report.fineTunes[1].matrices { compare(m, try #require(exp.demo.fullA[m.name]), exp.epsilons, "full \(m.name)") }
        for o in report.overlaps { #expect(abs(o.overlap.phi - (exp.demo.overlap[o.name] ?? -1)) < 1e-3, "φ \(o.name)") }
        // Model-level numbers: the sums over matrices.
        for (fi, key) in [(0, exp.demo.loraA), (1, exp.demo.fullA)] {
            let want = key.values.reduce(0) { $0 + ($1.intruders["0.5"] ?? 0) }
            #expect(report.fineTunes[fi].summary.totalIntruders.first { $0.epsilon == 0.5 }?.count == want)
        }
        #expect(report.fineTunes[0].summary.totalIntruders.first { $0.epsilon == 0.5 }!.count > 0)
        #expect(report.fineTunes[1].summary.totalIntruders.first { $0.epsilon == 0.5 }!.count == 0)
    }

    @Test func plantedMatricesMatchNumpy() throws {
        let exp = try expected()
        let f = try SafetensorsFile(url: Paths.fixtures.appendingPathComponent("planted.safetensors"))
        let w0 = try f.tensor("w0")
        var opts = SpectralOptions(); opts.epsilons = exp.epsilons; opts.energyRank = 8
        for (key, tensor) in [("planted", "planted"), ("noise", "noise"), ("identical", "w0")] {
            let d = try analyzeMatrix(name: key, base: w0, tuned: .dense(try f.tensor(tensor)), options: opts).diagnostics
            let e = try #require(exp.planted[key])
            #expect(zip(d.intruders.maxCosines, e.maxCosines).allSatisfy { abs(Double($0) - $1) < 2e-3 }, "\(key)")
            #expect(d.intruders.count(at: 0.5) == e.intruders["0.5"])
            if key != "identical" { compare(d, e, exp.epsilons, key) } else { #expect(d.amplification == nil && e.amplification == nil) }
        }
        #expect(exp.planted["planted"]?.intruders["0.5"] == 1)
        // The planted rank-1 update λ v vᵀ: one direction, projection |vᵀ W0 v|, factor λ / |vᵀ W0 v|.
        #expect(exp.planted["planted"]?.amplification?.rank == 1)
    }

    @Test func cacheGivesIdenticalResultsAndHits() throws {
        let dir = tempDir("cache")
        let base = try Checkpoint(path: Paths.demo.appendingPathComponent("base").path)
        let ft = try FineTune.open(path: Paths.demo.appendingPathComponent("full-a").path)
        var opts = SpectralOptions()
        opts.cache = DecompositionCache(directory: dir)
        let first = try SpectralAnalysis.run(base: base, fineTunes: [ft], modules: "layers\\.0\\.", options: opts)
        #expect(first.cacheHits == 0 && first.cacheMisses > 0)
        opts.cache = DecompositionCache(directory: dir)
        let second = try SpectralAnalysis.run(base: base, fineTunes: [ft], modules: "layers\\.0\\.", options: opts)
        #expect(second.cacheMisses == 0 && second.cacheHits == first.cacheMisses)
        #expect(first.fineTunes[0].matrices.map(\.intruders) == second.fineTunes[0].matrices.map(\.intruders))
        #expect(first.fineTunes[0].matrices.map(\.sigmaUpdate) == second.fineTunes[0].matrices.map(\.sigmaUpdate))
        // A corrupted entry is a miss, not an error.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".bin") }
        try Data([1, 2, 3]).write(to: dir.appendingPathComponent(files[0]))
        opts.cache = DecompositionCache(directory: dir)
        let third = try SpectralAnalysis.run(base: base, fineTunes: [ft], modules: "layers\\.0\\.", options: opts)
        #expect(third.cacheMisses == 1)
        #expect(third.fineTunes[0].matrices.map(\.intruders) == first.fineTunes[0].matrices.map(\.intruders))
        #expect(try DecompositionCache(directory: dir).clear() == files.count)
        #expect(!FileManager.default.fileExists(atPath: dir.path))
    }

    @Test func extractionCapturesTheTopEnergyAndRoundTrips() throws {
        let base = try Checkpoint(path: Paths.demo.appendingPathComponent("base").path)
        let tuned = try Checkpoint(path: Paths.demo.appendingPathComponent("full-a").path)
        let out = tempDir("extract")
        let r = try LoRAExtraction.extract(base: base, tuned: tuned, rank: 4, modules: "layers\\.1\\.self_attn", output: out)
        #expect(r.entries.count == 4)
        let adapter = try LoRAAdapter(path: out.path)
        for e in r.entries {
            let d = try svd(try tuned.tensor(e.name).scalars.enumerated().reduce(into: Tensor(zeros: [e.rows, e.cols])) { t, p in
                t.scalars[p.offset] = p.element
            }.subtracting(try base.tensor(e.name)))
            #expect(abs(e.capturedEnergy - SpectrumStatistics.energy(top: 4, of: d.s)) < 1e-6)
            // The adapter's update is the rank-4 truncation: its singular values are the top 4.
            let mod = try #require(adapter.module(forBaseTensor: e.name))
            let sv = try singularValues(try adapter.delta(mod))
            for j in 0..<4 { #expect(abs(sv[j] - d.s[j]) < 1e-4 * d.s[0]) }
        }
        #expect(throws: SpectralError.self) {
            try LoRAExtraction.extract(base: base, tuned: base, rank: 4, modules: nil, output: tempDir("none"))
        }
    }

    @Test func selectionErrors() throws {
        let base = try Checkpoint(path: Paths.demo.appendingPathComponent("base").path)
        let ft = try FineTune.open(path: Paths.demo.appendingPathComponent("full-a").path)
        #expect(throws: SpectralError.self) { try SpectralAnalysis.selectMatrices(base: base, fineTunes: [ft], modules: "nothing_matches") }
        #expect(throws: SpectralError.invalidModuleRegex("([", reason: "is not a valid regular expression")) {
            try SpectralAnalysis.selectMatrices(base: base, fineTunes: [ft], modules: "([")
        }
        // A pattern past the length bound is refused before compiling, and the message quotes a prefix only.
        let long = String(repeating: "a|", count: 2_100) + "q_proj"
        do {
            _ = try SpectralAnalysis.selectMatrices(base: base, fineTunes: [ft], modules: long)
            Issue.record("a \(long.count)-character pattern was accepted")
        } catch let e as SpectralError {
            #expect(e == .invalidModuleRegex(long, reason: "is 4206 characters long; at most 4096 are accepted"))
            #expect(e.description.count < 200)
        }
        // Just under the bound it compiles and selects.
        let fits = String(repeating: "zq|", count: 1_300) + "q_proj"
        #expect(try SpectralAnalysis.selectMatrices(base: base, fineTunes: [ft], modules: fits).allSatisfy { $0.contains("q_proj") })
        let names = try SpectralAnalysis.selectMatrices(base: base, fineTunes: [ft], modules: nil)
        #expect(names.count == 14 && !names.contains { $0.contains("embed") })
    }
}

extension Tensor {
    func subtracting(_ o: Tensor) -> Tensor {
        var t = self
        for i in t.scalars.indices { t.scalars[i] -= o.scalars[i] }
        return t
    }
}
