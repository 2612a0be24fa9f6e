import Foundation
import Transformer

public enum EditedModelWriter {
    /// Writes `model` as a Hugging Face folder at `directory` atomically: into a temporary
    /// sibling folder first, renamed into place once complete. `directory` must not exist or be
    /// empty. Side files (config.json, tokenizer files) come from `source`.
    public static func save(_ model: TransformerModel, to directory: URL, sideFilesFrom source: URL?, metadata: [String: String]) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: directory.path, isDirectory: &isDir) {
            let items = (try? fm.contentsOfDirectory(atPath: directory.path)) ?? ["?"]
            guard isDir.boolValue, items.isEmpty else { throw EditError.invalidRequest("\(directory.path) exists and is not an empty folder") }
            try? fm.removeItem(at: directory)
        }
        let tmp = directory.deletingLastPathComponent().appendingPathComponent(".\(directory.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        try? fm.removeItem(at: tmp)
        do {
            try model.save(to: tmp, sideFilesFrom: source, metadata: metadata)
            try fm.moveItem(at: tmp, to: directory)
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }
}
