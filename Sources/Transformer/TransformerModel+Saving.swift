import Checkpoints
import Foundation
import Tensors

extension TransformerModel {
    /// Writes the parameters as a Hugging Face folder: `model.safetensors` (checkpoint names, tied
    /// head omitted as transformers does) in `dtype`, plus config.json and tokenizer files copied
    /// from `sideFilesFrom` (the base model's folder). Refuses a non-empty existing `directory`.
    public func save(to directory: URL, dtype: DType = .f32, sideFilesFrom source: URL?, metadata: [String: String]? = nil) throws {
        let fm = FileManager.default
        if let items = try? fm.contentsOfDirectory(atPath: directory.path), !items.isEmpty {
            throw ModelError.invalidInput("\(directory.path) exists and is not empty")
        }
        do { try fm.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw ModelError.cannotRead(path: directory.path, reason: "cannot create: \(error)")
        }
        if let source {
            for name in ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
                let from = source.appendingPathComponent(name)
                guard fm.fileExists(atPath: from.path) else { continue }
                do { try fm.copyItem(at: from, to: directory.appendingPathComponent(name)) } catch {
                    throw ModelError.cannotRead(path: from.path, reason: "cannot copy to \(directory.path): \(error)")
                }
            }
        }
        let entries = layout.entries.map { TensorEntry(name: $0.name, dtype: dtype, shape: $0.shape) }
        let writer = try CheckpointWriter(directory: directory, entries: entries, metadata: metadata ?? ["format": "pt"])
        for e in layout.entries {
            try writer.write(e.name, parameters.tensor(e.name)!)
        }
        try writer.finish()
    }
}
