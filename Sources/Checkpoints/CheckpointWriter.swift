import Foundation
import Tensors

/// Writes a checkpoint into a folder: `model.safetensors`, or, when the tensors exceed
/// `maxShardBytes`, `model-0000k-of-0000n.safetensors` shards plus `model.safetensors.index.json`
/// (`metadata.total_size`, `weight_map`) as `transformers` writes them.
///
/// Tensors are assigned to shards greedily in declaration order; a tensor larger than the limit
/// gets a shard of its own. Each shard is written atomically; the index is written last.
///
/// With `onlyShards`, the writer writes only those shards (by index into `shardFileNames`) and no
/// index: one part of a merge split across processes. The shard layout does not depend on the
/// subset, so every shard a part writes is byte for byte the shard the whole writer writes.
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
    /// The shards this writer writes (all unless `onlyShards` was given).
    public let selectedShards: Set<Int>
    private let writesAll: Bool
    /// Passed to every shard's `SafetensorsWriter`: NaN/±Inf refused unless true.
    public let allowNonFinite: Bool

    public init(directory: URL, entries: [TensorEntry], maxShardBytes: Int? = nil, metadata: [String: String]? = nil,
                baseName: String = "model", allowNonFinite: Bool = false, onlyShards: Set<Int>? = nil) throws {
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
        let all = Set(0..<groups.count)
        if let onlyShards, let bad = onlyShards.subtracting(all).min() {
            throw CheckpointError.invalidWriterEntry(path: directory.path, reason: "shard \(bad) selected, but the layout has \(groups.count) shards")
        }
        selectedShards = onlyShards ?? all
        writesAll = onlyShards == nil
    }

    /// The tensors of shard `index`, in write order.
    public func entries(ofShard index: Int) -> [TensorEntry] { shardEntries[index] }

    /// The exact size in bytes of shard `index` once written (length prefix, header, data).
    public func fileSize(ofShard index: Int) throws -> Int {
        let header = try SafetensorsWriter.headerBytes(entries: shardEntries[index], metadata: metadata,
                                                       path: directory.appendingPathComponent(shardFileNames[index]).path)
        return 8 + header.count + shardEntries[index].reduce(0) { $0 + $1.byteCount }
    }

    private func writer(for name: String) throws -> SafetensorsWriter {
        guard let file = shardOf[name] else {
            throw CheckpointError.invalidWriterEntry(path: directory.path, reason: "tensor \"\(name)\" was not declared")
        }
        let s = shardFileNames.firstIndex(of: file)!
        guard selectedShards.contains(s) else {
            throw CheckpointError.invalidWriterEntry(path: directory.path, reason: "tensor \"\(name)\" belongs to \(file), which this writer does not write")
        }
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

    /// Finishes the last shard and writes the index when there are several shards (a writer of
    /// some shards only writes no index: see `writeIndex`).
    public func finish() throws {
        let expected = writesAll ? entries : selectedShards.sorted().flatMap { shardEntries[$0] }
        guard written == expected.count else {
            throw CheckpointError.writeIncomplete(path: directory.path, missing: expected[written].name)
        }
        if let current { try current.finish() } else if entries.isEmpty && selectedShards.contains(0) {
            try SafetensorsWriter(url: directory.appendingPathComponent(shardFileNames[0]), entries: [], metadata: metadata).finish()
        }
        current = nil
        if writesAll { try writeIndex() }
    }

    /// Writes `model.safetensors.index.json` when there are several shards (nothing otherwise).
    /// `finish` calls it; the assembly of a merge split across processes calls it alone.
    public func writeIndex() throws {
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
