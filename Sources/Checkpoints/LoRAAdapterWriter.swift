import Foundation
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// Writes a PEFT LoRA adapter folder: `adapter_config.json` + `adapter_model.safetensors`.
///
/// Each module's factors are given in the normalised orientation, A (r, n) and B (m, r), with
/// the update ΔW = (alpha / r) · B A. The writer sets `lora_alpha = r` (scale 1) unless told
/// otherwise, and records per-module ranks that differ from the most common one in
/// `rank_pattern` (and the matching alpha in `alpha_pattern`) keyed by the full module path,
/// which PEFT's `(.*\.)?(key)$` rule matches exactly. The folder is created if needed; files
/// are written atomically.
public enum LoRAAdapterWriter {
    public struct Module {
        public var name: String
        public var a: Tensor
        public var b: Tensor
        public init(name: String, a: Tensor, b: Tensor) { self.name = name; self.a = a; self.b = b }
    }

    public static func write(directory: URL, modules: [Module], baseModelNameOrPath: String? = nil,
                             dtype: DType = .f32, metadata: [String: String]? = nil) throws {
        guard !modules.isEmpty else { throw AdapterError.emptyAdapter(path: directory.path) }
        for m in modules {
            guard m.a.shape.rank == 2, m.b.shape.rank == 2, m.a.shape[0] == m.b.shape[1], m.a.shape[0] > 0 else {
                throw AdapterError.factorShapeMismatch(path: directory.path, module: m.name, a: m.a.shape, b: m.b.shape)
            }
        }
        let ranks = modules.map { $0.a.shape[0] }
        var counts: [Int: Int] = [:]
        for r in ranks { counts[r, default: 0] += 1 }
        let r = counts.max { ($0.value, $1.key) < ($1.value, $0.key) }!.key
        let odd = modules.filter { $0.a.shape[0] != r }.sorted { $0.name < $1.name }
        let shortNames = Array(Set(modules.map { $0.name.split(separator: ".").last.map(String.init) ?? $0.name })).sorted()
        let config = AdapterConfig(
            r: r, loraAlpha: Double(r), targetModules: .names(shortNames),
            rankPattern: odd.map { (NSRegularExpression.escapedPattern(for: $0.name), $0.a.shape[0]) },
            alphaPattern: odd.map { (NSRegularExpression.escapedPattern(for: $0.name), Double($0.a.shape[0])) },
            baseModelNameOrPath: baseModelNameOrPath)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let sorted = modules.sorted { $0.name < $1.name }
        var entries: [TensorEntry] = []
        for m in sorted {
            entries.append(TensorEntry(name: "base_model.model.\(m.name).lora_A.weight", dtype: dtype, shape: m.a.shape))
            entries.append(TensorEntry(name: "base_model.model.\(m.name).lora_B.weight", dtype: dtype, shape: m.b.shape))
        }
        let writer = try SafetensorsWriter(url: directory.appendingPathComponent("adapter_model.safetensors"), entries: entries,
                                           metadata: metadata ?? ["format": "pt"])
        for m in sorted {
            try writer.write("base_model.model.\(m.name).lora_A.weight", m.a)
            try writer.write("base_model.model.\(m.name).lora_B.weight", m.b)
        }
        try writer.finish()
        let configURL = directory.appendingPathComponent("adapter_config.json")
        let tmp = directory.appendingPathComponent(".adapter_config.json.tmp-\(getpid())")
        do {
            try Data(config.jsonText().utf8).write(to: tmp)
            guard rename(tmp.path, configURL.path) == 0 else { throw CheckpointError.io(path: configURL.path, message: String(cString: strerror(errno))) }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw CheckpointError.io(path: configURL.path, message: "cannot write: \(error)")
        }
    }
}
