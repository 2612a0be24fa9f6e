import Foundation
import Testing
@testable import Checkpoints
@testable import Spectral
import Tensors

@Suite struct AdapterTests {
    let variants = Paths.fixtures.appendingPathComponent("peft-variants")

    /// Our ΔW = s·B·A for every module equals the update PEFT's merge_and_unload applied.
    @Test(arguments: ["rslora-patterns", "plain-pattern"])
    func deltaMatchesPEFTMerge(name: String) throws {
        let dir = variants.appendingPathComponent(name)
        let adapter = try LoRAAdapter(path: dir.path)
        let expected = try SafetensorsFile(url: dir.appendingPathComponent("peft_merged_delta.safetensors"))
        #expect(!expected.tensorNames.isEmpty)
        for key in expected.tensorNames {
            let base = String(key.dropFirst("merged.".count))
            let mod = try #require(adapter.module(forBaseTensor: base))
            let mine = try adapter.delta(mod)
            let theirs = try expected.tensor(key)
            let scale = theirs.scalars.reduce(0) { max($0, abs($1)) }
            #expect(maxAbs(mine.scalars, theirs.scalars) <= 1e-5 * max(scale, 1), "\(name) \(base)")
        }
    }

    @Test func scalesFromConfigPatterns() throws {
        let a = try LoRAAdapter(path: variants.appendingPathComponent("rslora-patterns").path)
        // r=8, alpha=16, rsLoRA; v_proj rank 4 (rank_pattern); down_proj alpha 40 (alpha_pattern).
        let q = try #require(a.module(named: "model.layers.0.self_attn.q_proj"))
        #expect(q.rank == 8 && abs(q.scale - 16 / 8.0.squareRoot()) < 1e-12)
        let v = try #require(a.module(named: "model.layers.1.self_attn.v_proj"))
        #expect(v.rank == 4 && abs(v.scale - 16 / 2.0) < 1e-12)
        let d = try #require(a.module(named: "model.layers.0.mlp.down_proj"))
        #expect(d.rank == 8 && abs(d.scale - 40 / 8.0.squareRoot()) < 1e-12)
        let p = try LoRAAdapter(path: variants.appendingPathComponent("plain-pattern").path)
        // r=6 alpha=12 (scale 2) except layer 1 up_proj: rank 2 -> 12/2 = 6.
        #expect(p.module(named: "model.layers.0.mlp.up_proj")?.scale == 2)
        #expect(p.module(named: "model.layers.1.mlp.up_proj")?.rank == 2)
        #expect(p.module(named: "model.layers.1.mlp.up_proj")?.scale == 6)
    }

    @Test func fanInFanOutOrientation() throws {
        let dir = variants.appendingPathComponent("fan-in-fan-out")
        let a = try LoRAAdapter(path: dir.path)
        let mod = try #require(a.module(forBaseTensor: "h.0.attn.c_attn.weight"))
        #expect(mod.baseIsTransposed && mod.outFeatures == 10 && mod.inFeatures == 12 && mod.scale == 2)
        let base = try Checkpoint(path: dir.appendingPathComponent("base.safetensors").path)
        try a.validate(against: base)
        // PEFT's stored update is (s·B·A)ᵀ in the Conv1D layout [in, out].
        let stored = try SafetensorsFile(url: dir.appendingPathComponent("peft_merged_delta.safetensors")).tensor("merged.h.0.attn.c_attn.weight")
        #expect(maxAbs(try a.delta(mod).transposed().scalars, stored.scalars) < 1e-4)
    }

    @Test func fanInFanOutThroughTheModelAnalysis() throws {
        let dir = variants.appendingPathComponent("fan-in-fan-out")
        let base = try Checkpoint(path: dir.appendingPathComponent("base.safetensors").path)
        let report = try SpectralAnalysis.run(base: base, fineTunes: [try FineTune.open(path: dir.path)], options: SpectralOptions())
        let m = try #require(report.fineTunes.first?.matrices.first)
        #expect(m.rows == 10 && m.cols == 12)   // normalised to (out, in)
        let w0 = try base.tensor("h.0.attn.c_attn.weight").transposed()
        let delta = try SafetensorsFile(url: dir.appendingPathComponent("peft_merged_delta.safetensors")).tensor("merged.h.0.attn.c_attn.weight").transposed()
        #expect(abs(m.relativeFrobenius - delta.frobeniusNorm / w0.frobeniusNorm) < 1e-5)
        let sv = try singularValues(delta)
        for j in 0..<3 { #expect(abs(m.sigmaUpdate[j] - sv[j]) < 1e-4 * sv[0]) }
    }

    @Test func demoAdapterValidatesAgainstBase() throws {
        let a = try LoRAAdapter(path: Paths.demo.appendingPathComponent("lora-a").path)
        #expect(a.modules.count == 14 && a.modules.allSatisfy { $0.rank == 8 && $0.scale == 2 })
        #expect(a.module(named: "model.layers.0.mlp.gate_proj")?.outFeatures == 160)
        try a.validate(against: try Checkpoint(path: Paths.demo.appendingPathComponent("base").path))
    }

    // MARK: malformed adapters

    func makeAdapter(_ config: String, _ tensors: [(String, Tensor)]) throws -> URL {
        let d = tempDir("adapter")
        try Data(config.utf8).write(to: d.appendingPathComponent("adapter_config.json"))
        try writeSafetensors(d.appendingPathComponent("adapter_model.safetensors"), tensors)
        return d
    }
    let okConfig = #"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q"]}"#
    let A = ("base_model.model.l.q.lora_A.weight", Tensor(zeros: [2, 3]))
    let B = ("base_model.model.l.q.lora_B.weight", Tensor(zeros: [5, 2]))

    @Test func missingFactorIsNamed() throws {
        let d = try makeAdapter(okConfig, [A])
        #expect(throws: AdapterError.missingFactor(path: d.appendingPathComponent("adapter_model.safetensors").path, module: "l.q", factor: "lora_B")) {
            try LoRAAdapter(path: d.path)
        }
    }

    @Test func rankMismatchIsNamed() throws {
        let d = try makeAdapter(#"{"r": 3, "lora_alpha": 4}"#, [A, B])
        #expect(throws: AdapterError.self) { try LoRAAdapter(path: d.path) }
        do { _ = try LoRAAdapter(path: d.path) } catch let e as AdapterError {
            guard case let .rankMismatch(_, module, expected, actual, _) = e else { Issue.record("wrong error \(e)"); return }
            #expect(module == "l.q" && expected == 3 && actual == 2)
        }
        let e2 = try makeAdapter(okConfig, [A, ("base_model.model.l.q.lora_B.weight", Tensor(zeros: [5, 3]))])
        #expect(throws: AdapterError.self) { try LoRAAdapter(path: e2.path) }
    }

    @Test func targetNotInBaseAndShapeMismatch() throws {
        let d = try makeAdapter(okConfig, [A, B])
        let a = try LoRAAdapter(path: d.path)
        let baseURL = d.appendingPathComponent("base.safetensors")
        try writeSafetensors(baseURL, [("l.k.weight", Tensor(zeros: [5, 3]))])
        #expect(throws: AdapterError.targetNotInBase(module: "l.q", tensor: "l.q.weight", base: baseURL.path)) {
            try a.validate(against: try Checkpoint(path: baseURL.path))
        }
        let base2 = d.appendingPathComponent("base2.safetensors")
        try writeSafetensors(base2, [("l.q.weight", Tensor(zeros: [3, 5]))])
        #expect(throws: AdapterError.baseShapeMismatch(module: "l.q", tensor: "l.q.weight", expected: [5, 3], actual: [3, 5])) {
            try a.validate(against: try Checkpoint(path: base2.path))
        }
    }

    @Test func badConfigsAreRejected() throws {
        for (cfg, key) in [(#"{"lora_alpha": 4}"#, "r"), (#"{"r": "8"}"#, "r"), (#"{"r": 0}"#, "r"),
                           (#"{"r": 2, "rank_pattern": {"q": -1}}"#, "rank_pattern.q"), (#"{"r": 2, "target_modules": 3}"#, "target_modules")] {
            let d = try makeAdapter(cfg, [A, B])
            #expect(throws: AdapterError.invalidConfig(path: d.appendingPathComponent("adapter_config.json").path, key: key, reason: "")) {
                do { _ = try LoRAAdapter(path: d.path) } catch let AdapterError.invalidConfig(p, k, _) { throw AdapterError.invalidConfig(path: p, key: k, reason: "") }
            }
        }
        let dora = try makeAdapter(#"{"r": 2, "use_dora": true}"#, [A, B])
        #expect(throws: AdapterError.self) { try LoRAAdapter(path: dora.path) }
        let noConfig = tempDir("noconfig")
        #expect(throws: AdapterError.configMissing(path: noConfig.appendingPathComponent("adapter_config.json").path)) { try LoRAAdapter(path: noConfig.path) }
        let stray = try makeAdapter(okConfig, [A, B, ("something.else", Tensor(zeros: [1]))])
        #expect(throws: AdapterError.self) { try LoRAAdapter(path: stray.path) }
    }

    @Test func writerRoundTripsWithRankPattern() throws {
        let d = tempDir("writer")
        let mods = [LoRAAdapterWriter.Module(name: "model.layers.0.q_proj", a: random(4, 6, seed: 1), b: random(5, 4, seed: 2)),
                    LoRAAdapterWriter.Module(name: "model.layers.1.q_proj", a: random(4, 6, seed: 3), b: random(5, 4, seed: 4)),
                    LoRAAdapterWriter.Module(name: "model.layers.1.v_proj", a: random(2, 6, seed: 5), b: random(3, 2, seed: 6))]
        try LoRAAdapterWriter.write(directory: d, modules: mods)
        let back = try LoRAAdapter(path: d.path)
        #expect(back.config.r == 4 && back.config.loraAlpha == 4)
        for m in mods {
            let mod = try #require(back.module(named: m.name))
            #expect(mod.scale == 1)
            #expect(maxAbs(try back.delta(mod).scalars, matmul(m.b, m.a).scalars) < 1e-6)
        }
        #expect(back.module(named: "model.layers.1.v_proj")?.rank == 2)
    }
}
