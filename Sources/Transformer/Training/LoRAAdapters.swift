import Checkpoints
import Foundation
import Tensors

/// Trainable low-rank adapters on a model's linear layers (Hu et al. 2021, "LoRA").
///
/// For an adapted linear y = x W^T (+ b) with W: (O, I), the forward adds s · (x A^T) B^T with
/// A: (r, I), B: (O, r), s = alpha / r (or alpha / sqrt(r) with rsLoRA, Kalajdzievski 2023).
/// A starts uniform in ±1/sqrt(I) (PEFT's Kaiming-uniform with a = sqrt(5)), B at zero, so the
/// adapted model starts equal to the base. The factors live in one `ParameterBuffer` named
/// `<module>.lora_A.weight` / `<module>.lora_B.weight`, with module the weight's name without
/// `.weight` (e.g. `model.layers.0.self_attn.q_proj`). Llama-family models only (GPT-2's Conv1D
/// would need PEFT's fan_in_fan_out).
public final class LoRAAdapters: @unchecked Sendable {
    public struct Settings: Sendable, Equatable {
        public var rank: Int
        public var alpha: Double
        public var rsLoRA: Bool
        /// Short module names, e.g. ["q_proj", "v_proj"].
        public var targetModules: [String]
        /// Every linear layer of a Llama block; taken as "every linear layer" of any family.
        public static let defaultTargets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        public init(rank: Int = 8, alpha: Double = 16, rsLoRA: Bool = false,
                    targetModules: [String] = Settings.defaultTargets) {
            self.rank = rank; self.alpha = alpha; self.rsLoRA = rsLoRA; self.targetModules = targetModules
        }
        public var scale: Double { rsLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank) }
    }

    public struct Module: Sendable, Equatable {
        public let name: String
        public let inFeatures: Int
        public let outFeatures: Int
    }

    public let settings: Settings
    public let modules: [Module]
    public let parameters: ParameterBuffer
    public let scale: Float
    let byWeight: [String: Int]

    public init(model: TransformerModel, settings: Settings, seed: UInt64) throws {
        guard model.block.weightLayout == .outIn else {
            throw ModelError.invalidInput("LoRA training supports (out, in) linear layers (GPT-2 Conv1D layers are not supported)")
        }
        guard settings.rank > 0, settings.alpha > 0 else {
            throw ModelError.invalidInput("LoRA rank and alpha must be positive (got r=\(settings.rank), alpha=\(settings.alpha))")
        }
        let known = model.block.linearModules.compactMap { $0.split(separator: ".").last.map(String.init) }
        // The default list (Llama's seven matrices) means every linear layer of the block, so a
        // fused family (Phi-3: qkv_proj, gate_up_proj) gets its own.
        var settings = settings
        if settings.targetModules == Settings.defaultTargets { settings.targetModules = known }
        for t in settings.targetModules where !known.contains(t) {
            throw ModelError.invalidInput("unknown LoRA target module \"\(t)\" (expected some of \(known.joined(separator: ", ")))")
        }
        var mods: [Module] = [], layout = ParameterLayout(), index: [String: Int] = [:]
        for e in model.layout.entries where e.shape.rank == 2 && e.name.hasSuffix(".weight") {
            let module = String(e.name.dropLast(".weight".count))
            guard let short = module.split(separator: ".").last, settings.targetModules.contains(String(short)) else { continue }
            let (O, I) = (e.shape[0], e.shape[1])
            index[e.name] = mods.count
            mods.append(Module(name: module, inFeatures: I, outFeatures: O))
            layout.add(module + ".lora_A.weight", [settings.rank, I])
            layout.add(module + ".lora_B.weight", [O, settings.rank])
        }
        guard !mods.isEmpty else { throw ModelError.invalidInput("no linear layer matches the LoRA target modules \(settings.targetModules)") }
        self.settings = settings
        modules = mods
        byWeight = index
        scale = Float(settings.scale)
        parameters = ParameterBuffer(layout: layout)
        var rng = SeededRandom(seed: seed)
        for m in mods {
            let a = parameters.pointer(m.name + ".lora_A.weight")
            let bound = 1 / Double(m.inFeatures).squareRoot()
            for i in 0..<settings.rank * m.inFeatures { a[i] = Float((2 * rng.nextUniform() - 1) * bound) }
        }
    }

    /// The adapter of the linear layer whose weight is `weightName`, as (A, B, module).
    func adapter(forWeight weightName: String) -> (a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>, module: Module)? {
        guard let i = byWeight[weightName] else { return nil }
        let m = modules[i]
        return (parameters.pointer(m.name + ".lora_A.weight"), parameters.pointer(m.name + ".lora_B.weight"), m)
    }

    /// Adds s · B A to each adapted weight of `model` (merging the adapter into the base).
    public func merge(into model: TransformerModel) {
        let r = settings.rank
        model.quantized = [:]
        for m in modules {
            let w = model.parameters.pointer(m.name + ".weight")
            // W (O, I) += s · B (O, r) A (r, I)
            gemm(transA: false, transB: false, M: m.outFeatures, N: m.inFeatures, K: r, alpha: scale,
                 A: parameters.pointer(m.name + ".lora_B.weight"), lda: r, B: parameters.pointer(m.name + ".lora_A.weight"), ldb: m.inFeatures,
                 beta: 1, C: w, ldc: m.inFeatures)
        }
    }

    /// Writes a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) that
    /// `peft.PeftModel.from_pretrained` loads, with this adapter's rank, alpha and rsLoRA flag,
    /// atomically through `OutputFolder` (never over an input or into one; an existing folder only
    /// with `force`, and only a previous weightsmith output).
    public func save(to directory: URL, baseModelNameOrPath: String?, force: Bool = false, inputs: [URL] = []) throws {
        let out = try OutputFolder.prepare(directory, inputs: inputs, force: force, command: "finetune --mode lora")
        try out.write { staging in try write(into: staging, baseModelNameOrPath: baseModelNameOrPath) }
    }

    /// Writes the adapter's two files into `directory`, an existing (staging) folder.
    public func write(into directory: URL, baseModelNameOrPath: String?, allowNonFinite: Bool = false) throws {
        let ms = modules.map { m in
            LoRAAdapterWriter.Module(name: m.name, a: parameters.tensor(m.name + ".lora_A.weight")!, b: parameters.tensor(m.name + ".lora_B.weight")!)
        }
        let config = AdapterConfig(r: settings.rank, loraAlpha: settings.alpha, useRSLoRA: settings.rsLoRA,
                                   targetModules: .names(settings.targetModules.sorted()), baseModelNameOrPath: baseModelNameOrPath)
        try LoRAAdapterWriter.writeFiles(into: directory, modules: ms, baseModelNameOrPath: baseModelNameOrPath, config: config,
                                         allowNonFinite: allowNonFinite)
    }
}
