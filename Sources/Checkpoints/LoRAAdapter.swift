import Foundation
import Tensors

/// One adapted layer of a PEFT LoRA adapter.
///
/// Orientation is normalised: `outFeatures` = m, `inFeatures` = n, and the update is
/// ΔW = scale · B A with A (r, n), B (m, r), for the base weight viewed as (m, n). With
/// `fan_in_fan_out` the base tensor is *stored* (n, m) (GPT-2 Conv1D); `baseIsTransposed` says so.
public struct LoRAModule: Sendable, Equatable {
    /// Module path in the base model, e.g. `model.layers.0.self_attn.q_proj`.
    public let name: String
    /// The base tensor this module updates: `<name>.weight`.
    public let baseTensorName: String
    public let aKey: String
    public let bKey: String
    public let rank: Int
    public let alpha: Double
    public let scale: Double
    public let outFeatures: Int
    public let inFeatures: Int
    public let baseIsTransposed: Bool
}

/// A PEFT LoRA adapter: `adapter_config.json` + `adapter_model.safetensors`, opened lazily.
///
/// Key mapping: `base_model.model.<module>.lora_A.weight` (optionally with PEFT's adapter name,
/// `lora_A.<name>.weight`) holds A for the base tensor `<module>.weight`. Other
/// `base_model.model.<x>` keys are `modules_to_save` replacements of base tensor `<x>`.
/// Opening checks that every module has both factors with composable shapes and the rank the
/// config declares (after `rank_pattern`); `validate(against:)` checks the base model.
public final class LoRAAdapter: @unchecked Sendable {
    public let directory: URL
    public let config: AdapterConfig
    public let file: SafetensorsFile
    /// Adapted modules, sorted by name.
    public let modules: [LoRAModule]
    /// Full replacements (modules_to_save): base tensor name -> adapter key.
    public let savedModules: [String: String]

    /// Opens a PEFT adapter folder (or the path of its `adapter_model.safetensors`).
    public init(path: String) throws {
        var url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CheckpointError.fileNotFound(path: path) }
        if !isDir.boolValue { url = url.deletingLastPathComponent() }
        directory = url
        let configURL = url.appendingPathComponent("adapter_config.json")
        config = try AdapterConfig(contentsOf: configURL)
        let weights = url.appendingPathComponent("adapter_model.safetensors")
        guard FileManager.default.fileExists(atPath: weights.path) else {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("adapter_model.bin").path) {
                throw CheckpointError.unsupportedFormat(path: url.path, reason: "adapter weights are PyTorch pickle (adapter_model.bin); weightsmith reads adapter_model.safetensors")
            }
            throw CheckpointError.fileNotFound(path: weights.path)
        }
        file = try SafetensorsFile(url: weights)
        let path = weights.path
        let prefix = "base_model.model."
        var aKeys: [String: String] = [:], bKeys: [String: String] = [:]
        var saved: [String: String] = [:]
        for key in file.tensorNames {
            guard key.hasPrefix(prefix) else { throw AdapterError.unexpectedKey(path: path, key: key) }
            let rest = String(key.dropFirst(prefix.count))
            if rest.contains("lora_embedding_") || rest.contains("lora_magnitude_vector") {
                throw AdapterError.unsupported(path: path, feature: "tensor \"\(key)\" (embedding LoRA / DoRA magnitudes)")
            }
            if let (module, factor) = LoRAAdapter.splitFactorKey(rest) {
                if factor == "A" { aKeys[module] = key } else { bKeys[module] = key }
            } else if rest.hasSuffix(".weight") || rest.hasSuffix(".bias") {
                // modules_to_save are stored as base_model.model.<x> (PEFT strips "modules_to_save.<name>").
                saved[rest] = key
            } else {
                throw AdapterError.unexpectedKey(path: path, key: key)
            }
        }
        var mods: [LoRAModule] = []
        for module in Set(aKeys.keys).union(bKeys.keys).sorted() {
            guard let ak = aKeys[module] else { throw AdapterError.missingFactor(path: path, module: module, factor: "lora_A") }
            guard let bk = bKeys[module] else { throw AdapterError.missingFactor(path: path, module: module, factor: "lora_B") }
            let a = file.info(ak)!.shape, b = file.info(bk)!.shape
            guard a.rank == 2, b.rank == 2, a[0] == b[1] else { throw AdapterError.factorShapeMismatch(path: path, module: module, a: a, b: b) }
            let expected = config.rank(for: module)
            guard a[0] == expected else {
                throw AdapterError.rankMismatch(path: path, module: module, expected: expected, actual: a[0],
                                                detail: expected == config.r ? "adapter_config r = \(config.r)" : "from rank_pattern")
            }
            for k in [ak, bk] where !(file.info(k)!.dtype.isFloatingPoint && file.info(k)!.dtype.isConvertibleToFloat32) {
                throw AdapterError.invalidConfig(path: path, key: k, reason: "LoRA factors must be F32/F16/BF16/F64, found \(file.info(k)!.dtype.rawValue)")
            }
            mods.append(LoRAModule(name: module, baseTensorName: module + ".weight", aKey: ak, bKey: bk, rank: a[0],
                                   alpha: config.alpha(for: module), scale: config.scale(for: module),
                                   outFeatures: b[0], inFeatures: a[1], baseIsTransposed: config.fanInFanOut))
        }
        guard !mods.isEmpty else { throw AdapterError.emptyAdapter(path: path) }
        modules = mods
        savedModules = saved
    }

    /// "<module>.lora_A.weight" or "<module>.lora_A.<adapter>.weight" -> (module, "A"/"B").
    static func splitFactorKey(_ rest: String) -> (String, String)? {
        for f in ["A", "B"] {
            let marker = ".lora_\(f)."
            guard let r = rest.range(of: marker, options: .backwards) else { continue }
            let tail = rest[r.upperBound...]
            guard tail == "weight" || (tail.hasSuffix(".weight") && !tail.dropLast(7).contains(".")) else { continue }
            return (String(rest[..<r.lowerBound]), f)
        }
        return nil
    }

    public func module(named name: String) -> LoRAModule? { modules.first { $0.name == name } }
    public func module(forBaseTensor name: String) -> LoRAModule? { modules.first { $0.baseTensorName == name } }

    /// The factors in Float32: A (r, n), B (m, r); the scale is *not* applied.
    public func factors(_ m: LoRAModule) throws -> (a: Tensor, b: Tensor) {
        (try file.tensor(m.aKey), try file.tensor(m.bKey))
    }

    /// The dense update ΔW = scale · B A, (m, n) in the normalised orientation.
    public func delta(_ m: LoRAModule) throws -> Tensor {
        let (a, b) = try factors(m)
        var d = matmul(b, a)
        let s = Float(m.scale)
        for i in d.scalars.indices { d.scalars[i] *= s }
        return d
    }

    /// Checks that every module's base tensor exists with the matching shape
    /// ((m, n), or (n, m) with fan_in_fan_out), and every saved module exists in the base.
    public func validate(against base: Checkpoint) throws {
        for m in modules {
            guard let info = base.info(m.baseTensorName) else {
                throw AdapterError.targetNotInBase(module: m.name, tensor: m.baseTensorName, base: base.path)
            }
            let expected: Shape = m.baseIsTransposed ? [m.inFeatures, m.outFeatures] : [m.outFeatures, m.inFeatures]
            guard info.shape == expected else {
                throw AdapterError.baseShapeMismatch(module: m.name, tensor: m.baseTensorName, expected: expected, actual: info.shape)
            }
        }
        for (name, _) in savedModules.sorted(by: { $0.key < $1.key }) where !base.has(name) {
            throw AdapterError.targetNotInBase(module: name, tensor: name, base: base.path)
        }
    }
}
