import Checkpoints
import Foundation
import Tensors

extension TransformerModel {
    /// Files copied from the base model's folder next to the weights.
    public static let savedSideFiles = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]

    /// Saves the parameters as a Hugging Face folder at `directory`, atomically, through
    /// `OutputFolder`: the path must not be an input (`inputs` and `sideFilesFrom`), inside or
    /// above one; an existing non-empty folder is replaced only with `force`, and only when it is a
    /// previous weightsmith output. A command that does long work first should call
    /// `OutputFolder.prepare` before the work and `writeFolder(into:)` inside its `write`.
    public func save(to directory: URL, dtype: DType = .f32, sideFilesFrom source: URL?, metadata: [String: String]? = nil,
                     force: Bool = false, inputs: [URL] = [], command: String = "save", allowNonFinite: Bool = false) throws {
        let out = try OutputFolder.prepare(directory, inputs: inputs + [source].compactMap { $0 }, force: force, command: command)
        try out.write { staging in
            try writeFolder(into: staging, dtype: dtype, sideFilesFrom: source, metadata: metadata, allowNonFinite: allowNonFinite)
        }
    }

    /// Writes `model.safetensors` (checkpoint names, tied head omitted as transformers does) in
    /// `dtype`, plus config.json and tokenizer files copied from `sideFilesFrom` (the base model's
    /// folder), into `directory`: an existing empty folder, normally an `OutputFolder` staging folder.
    /// A parameter with NaN/±Inf throws `CheckpointError.nonFinite` (naming the loaded model when
    /// the value was already there, else the computation) unless `allowNonFinite`.
    public func writeFolder(into directory: URL, dtype: DType = .f32, sideFilesFrom source: URL?, metadata: [String: String]? = nil,
                            allowNonFinite: Bool = false) throws {
        let fm = FileManager.default
        if let items = try? fm.contentsOfDirectory(atPath: directory.path), !items.isEmpty {
            throw ModelError.invalidInput("\(directory.path) exists and is not empty")
        }
        if let source {
            for name in Self.savedSideFiles {
                let from = source.appendingPathComponent(name)
                guard fm.fileExists(atPath: from.path) else { continue }
                do { try fm.copyItem(at: from, to: directory.appendingPathComponent(name)) } catch {
                    throw ModelError.cannotRead(path: from.path, reason: "cannot copy to \(directory.path): \(error)")
                }
            }
        }
        let entries = layout.entries.map { TensorEntry(name: $0.name, dtype: dtype, shape: $0.shape) }
        let writer = try CheckpointWriter(directory: directory, entries: entries, metadata: metadata ?? ["format": "pt"],
                                          allowNonFinite: allowNonFinite)
        for e in layout.entries {
            let loaded = nonFiniteWeights.contains { $0.tensor == e.name || "transformer." + $0.tensor == e.name }
            try namingNonFiniteInput(loaded ? self.source : "the computed weights (finite in \(self.source))") {
                try writer.write(e.name, parameters.tensor(e.name)!)
            }
        }
        try writer.finish()
    }
}
