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
/// which PEFT's `(.*\.)?(key)$` rule matches exactly.
///
/// `write(directory:...)` goes through `OutputFolder` (the adapter folder appears atomically;
/// never over an input, an existing adapter only with `force`, and only a previous weightsmith
/// output); `writeFiles(into:...)` writes the two files into an existing empty (staging) folder.
public enum LoRAAdapterWriter {
    public struct Module {
        public var name: String
        public var a: Tensor
        public var b: Tensor
        public init(name: String, a: Tensor, b: Tensor) { self.name = name; self.a = a; self.b = b }
    }

    /// Writes the adapter folder atomically through `OutputFolder` (see the type's comment).
    public static func write(directory: URL, modules: [Module], baseModelNameOrPath: String? = nil,
                             dtype: DType = .f32, metadata: [String: String]? = nil, config: AdapterConfig? = nil,
                             force: Bool = false, inputs: [URL] = [], command: String = "lora") throws {
        try validate(modules, path: directory.path)
        let out = try OutputFolder.prepare(directory, inputs: inputs, force: force, command: command)
        try out.write { staging in
            try writeFiles(into: staging, modules: modules, baseModelNameOrPath: baseModelNameOrPath, dtype: dtype,
                           metadata: metadata, config: config)
        }
    }

    static func validate(_ modules: [Module], path: String) throws {
        guard !modules.isEmpty else { throw AdapterError.emptyAdapter(path: path) }
        for m in modules {
            guard m.a.shape.rank == 2, m.b.shape.rank == 2, m.a.shape[0] == m.b.shape[1], m.a.shape[0] > 0 else {
                throw AdapterError.factorShapeMismatch(path: path, module: m.name, a: m.a.shape, b: m.b.shape)
            }
        }
    }

    /// Writes `adapter_model.safetensors` and `adapter_config.json` into `directory` (an existing
    /// folder, normally an `OutputFolder` staging folder). `config`, when given, is written as is
    /// (a trained adapter's own alpha and rsLoRA flag); otherwise `lora_alpha = r` and patterns
    /// for the odd ranks are derived from the factors.
    public static func writeFiles(into directory: URL, modules: [Module], baseModelNameOrPath: String? = nil,
                                  dtype: DType = .f32, metadata: [String: String]? = nil, config given: AdapterConfig? = nil,
                                  allowNonFinite: Bool = false) throws {
        try validate(modules, path: directory.path)
        let ranks = modules.map { $0.a.shape[0] }
        var counts: [Int: Int] = [:]
        for r in ranks { counts[r, default: 0] += 1 }
        let r = counts.max { ($0.value, $1.key) < ($1.value, $0.key) }!.key
        let odd = modules.filter { $0.a.shape[0] != r }.sorted { $0.name < $1.name }
        let shortNames = Array(Set(modules.map { $0.name.split(separator: ".").last.map(String.init) ?? $0.name })).sorted()
        let config = given ?? AdapterConfig(
            r: r, loraAlpha: Double(r), targetModules: .names(shortNames),
            rankPattern: odd.map { (NSRegularExpression.escapedPattern(for: $0.name), $0.a.shape[0]) },
            alphaPattern: odd.map { (NSRegularExpression.escapedPattern(for: $0.name), Double($0.a.shape[0])) },
            baseModelNameOrPath: baseModelNameOrPath)
        let sorted = modules.sorted { $0.name < $1.name }
        var entries: [TensorEntry] = []
        for m in sorted {
            entries.append(TensorEntry(name: "base_model.model.\(m.name).lora_A.weight", dtype: dtype, shape: m.a.shape))
            entries.append(TensorEntry(name: "base_model.model.\(m.name).lora_B.weight", dtype: dtype, shape: m.b.shape))
        }
        let writer = try SafetensorsWriter(url: directory.appendingPathComponent("adapter_model.safetensors"), entries: entries,
                                           metadata: metadata ?? ["format": "pt"], allowNonFinite: allowNonFinite)
        for m in sorted {
            try writer.write("base_model.model.\(m.name).lora_A.weight", m.a)
            try writer.write("base_model.model.\(m.name).lora_B.weight", m.b)
        }
        try writer.finish()
        try writeFileAtomically(Array(config.jsonText().utf8), to: directory.appendingPathComponent("adapter_config.json"))
    }
}
