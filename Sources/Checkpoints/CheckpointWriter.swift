import Foundation
import Tensors

/// Writes a checkpoint into a folder: `model.safetensors`, or, when the tensors exceed
/// `maxShardBytes`, `model-0000k-of-0000n.safetensors` shards plus `model.safetensors.index.json`
/// (`metadata.total_size`, `weight_map`) as `transformers` writes them.
///
/// Tensors are assigned to shards greedily in declaration order; a tensor larger than the limit
/// gets a shard of its own. Each shard is written atomically; the index is written last.
public final class CheckpointWriter {
    public let directory: URL
    public let entries: [TensorEntry]
    /// Shard file name of each entry.
    public let shardOf: [String: String]
    public let shardFileNames: [String]
    private let shardEntries: [[TensorEntry]]
    private let metadata: [String: String]?
    private var current: SafetensorsWriter?
    private var currentShard = -1
    private var written = 0
    /// Passed to every shard's `SafetensorsWriter`: NaN/±Inf refused unless true.
    public let allowNonFinite: Bool

    public init(directory: URL, entries: [TensorEntry], maxShardBytes: Int? = nil, metadata: [String: String]? = nil,
                baseName: String = "model", allowNonFinite: Bool = false) throws {
        self.directory = directory
        self.allowNonFinite = allowNonFinite
        self.entries = entries
        self.metadata = metadata
        var groups: [[TensorEntry]] = [[]]
        var size = 0
        for e in entries {
            if let limit = maxShardBytes, !groups[groups.count - 1].isEmpty, size + e.byteCount > limit {
                groups.append([])
                size = 0
            }
            groups[groups.count - 1].append(e)
            size += e.byteCount
        }
        shardEntries = groups
        if groups.count == 1 {
            shardFileNames = ["\(baseName).safetensors"]
        } else {
            let n = groups.count
            shardFileNames = (1...n).map { String(format: "\(baseName)-%05d-of-%05d.safetensors", $0, n) }
        }
        var map: [String: String] = [:]
        for (i, g) in groups.enumerated() { for e in g { map[e.name] = shardFileNames[i] } }
        shardOf = map
    }

    private func writer(for name: String) throws -> SafetensorsWriter {
        guard let file = shardOf[name] else {
            throw CheckpointError.invalidWriterEntry(path: directory.path, reason: "tensor \"\(name)\" was not declared")
        }
        let s = shardFileNames.firstIndex(of: file)!
        if s != currentShard {
            if let current { try current.finish() }
            currentShard = s
            current = try SafetensorsWriter(url: directory.appendingPathComponent(file), entries: shardEntries[s], metadata: metadata,
                                            allowNonFinite: allowNonFinite)
        }
        return current!
    }

    public func write(_ name: String, _ tensor: Tensor) throws {
        try writer(for: name).write(name, tensor)
        written += 1
    }

    public func write(_ name: String, rawBytes: UnsafeRawBufferPointer) throws {
        try writer(for: name).write(name, rawBytes: rawBytes)
        written += 1
    }

    public func write(_ name: String, converting raw: UnsafeRawBufferPointer, from source: DType) throws {
        try writer(for: name).write(name, converting: raw, from: source)
        written += 1
    }

    /// Starts writing `name` in pieces (see `SafetensorsWriter.beginPieces`).
    public func beginPieces(_ name: String) throws {
        try writer(for: name).beginPieces(name)
    }

    /// The next consecutive Float32 values of the tensor opened with `beginPieces`.
    public func appendPiece(_ src: UnsafeBufferPointer<Float>) throws {
        guard let current else {
            throw CheckpointError.invalidWriterEntry(path: directory.path, reason: "piece written with no tensor open")
        }
        try current.appendPiece(src)
    }

    /// Closes the tensor opened with `beginPieces`.
    public func endPieces() throws {
        guard let current else {
            throw CheckpointError.invalidWriterEntry(path: directory.path, reason: "endPieces with no tensor open")
        }
        try current.endPieces()
        written += 1
    }

    /// Finishes the last shard and writes the index when there are several shards.
    public func finish() throws {
        guard written == entries.count else {
            throw CheckpointError.writeIncomplete(path: directory.path, missing: entries[written].name)
        }
        if let current { try current.finish() } else if entries.isEmpty {
            try SafetensorsWriter(url: directory.appendingPathComponent(shardFileNames[0]), entries: [], metadata: metadata).finish()
        }
        current = nil
        if shardFileNames.count > 1 {
            let total = entries.reduce(0) { $0 + $1.byteCount }
            var json = "{\n  \"metadata\": {\n    \"total_size\": \(total)\n  },\n  \"weight_map\": {\n"
            let names = entries.map(\.name).sorted()
            json += names.map { "    \(SafetensorsWriter.jsonString($0)): \(SafetensorsWriter.jsonString(shardOf[$0]!))" }.joined(separator: ",\n")
            json += "\n  }\n}\n"
            try writeFileAtomically(Array(json.utf8), to: directory.appendingPathComponent("model.safetensors.index.json"))
        }
    }
}
