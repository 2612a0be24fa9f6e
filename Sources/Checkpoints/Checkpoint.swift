import Foundation
import Tensors

/// One logical checkpoint: a single `.safetensors` file, a sharded checkpoint through its
/// `*.safetensors.index.json`, or a Hugging Face folder holding either.
///
/// Nothing is loaded: shards are mapped and their headers validated; tensors are decoded on
/// request. For an index, every tensor it lists must be in its shard, every tensor of a shard
/// must be listed, and no tensor may appear in two shards.
public final class Checkpoint: @unchecked Sendable {
    /// What the user gave.
    public let path: String
    /// The Hugging Face folder (config.json, tokenizer files), when there is one.
    public let directory: URL?
    /// Sorted tensor names.
    public let tensorNames: [String]
    /// Shards in file-name order.
    public let shards: [SafetensorsFile]
    /// Metadata of the first shard (`__metadata__`), e.g. `{"format": "pt"}`.
    public let metadata: [String: String]
    /// The index file, when the checkpoint is sharded through one.
    public let indexURL: URL?
    private let location: [String: Int]
    /// Tensors computed on request (a dequantised GGUF, an adapter merged onto its base, a
    /// delta added to its base), when the checkpoint is not a set of safetensors shards.
    let virtualSource: VirtualTensorSource?
    /// What the reference resolved to (see `ModelReference`).
    public internal(set) var referenceKind: ModelReference.Kind = .safetensors
    /// One line saying how the tensors are produced, for reports ("GGUF file x.gguf, dequantised").
    public internal(set) var referenceDescription: String?

    /// A checkpoint whose tensors come from `source` (computed on request, Float32).
    init(virtualPath: String, directory: URL?, source: VirtualTensorSource, metadata: [String: String]) {
        self.path = virtualPath
        self.directory = directory
        self.shards = []
        self.indexURL = nil
        self.location = [:]
        self.virtualSource = source
        self.tensorNames = source.infos.keys.sorted()
        self.metadata = metadata
    }

    public convenience init(path: String) throws { try self.init(path: path, adoptFolder: false) }

    /// `names` in `String` order. Sorted by UTF-8 bytes in one buffer first (no retain/release per
    /// comparison; fast for a header of a million names), which is `String` order for the usual
    /// NFC names; checked in one pass, with the standard sort when it is not.
    static func sortedNames(_ names: some Collection<String>) -> [String] {
        let names = Array(names)
        var arena: [UInt8] = [0]  // never empty, so baseAddress is not nil
        arena.reserveCapacity(names.reduce(1) { $0 + $1.utf8.count })
        var starts: [Int] = [1]
        starts.reserveCapacity(names.count + 1)
        for n in names {
            arena.append(contentsOf: n.utf8)
            starts.append(arena.count)
        }
        var order = Array(0..<names.count)
        arena.withUnsafeBufferPointer { a in
            starts.withUnsafeBufferPointer { s in
                order.sort { x, y in
                    let lx = s[x + 1] - s[x], ly = s[y + 1] - s[y]
                    let c = memcmp(a.baseAddress! + s[x], a.baseAddress! + s[y], min(lx, ly))
                    return c != 0 ? c < 0 : lx < ly
                }
            }
        }
        let sorted = order.map { names[$0] }
        for (x, y) in zip(sorted, sorted.dropFirst()) where !(x < y) { return names.sorted() }
        return sorted
    }

    /// With `adoptFolder`, a single `.safetensors` file whose folder holds config.json gets that
    /// folder as `directory` (config and tokenizer beside the weights).
    init(path: String, adoptFolder: Bool) throws {
        self.path = path
        self.virtualSource = nil
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CheckpointError.fileNotFound(path: path)
        }
        var files: [URL] = []
        var index: URL?
        if isDir.boolValue {
            directory = url
            let fm = FileManager.default
            let names = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            if names.contains("model.safetensors.index.json") {
                index = url.appendingPathComponent("model.safetensors.index.json")
            } else if names.contains("model.safetensors") {
                files = [url.appendingPathComponent("model.safetensors")]
            } else {
                let indexes = names.filter { $0.hasSuffix(".safetensors.index.json") }.sorted()
                let singles = names.filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }.sorted()
                if indexes.count == 1 {
                    index = url.appendingPathComponent(indexes[0])
                } else if indexes.count > 1 {
                    throw CheckpointError.notACheckpoint(path: path, reason: "several index files (\(indexes.joined(separator: ", "))); name the one to use")
                } else if !singles.isEmpty {
                    files = singles.map { url.appendingPathComponent($0) }
                } else if names.contains(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".pt") || $0.hasSuffix(".pth") }) {
                    throw CheckpointError.unsupportedFormat(path: path, reason: "only PyTorch pickle weights (.bin/.pt) found; weightsmith reads safetensors (convert with `safetensors.torch.save_file`)")
                } else {
                    throw CheckpointError.notACheckpoint(path: path, reason: "no .safetensors file or index in this folder")
                }
            }
        } else if path.hasSuffix(".json") {
            directory = url.deletingLastPathComponent()
            index = url
        } else if path.hasSuffix(".bin") || path.hasSuffix(".pt") || path.hasSuffix(".pth") {
            throw CheckpointError.unsupportedFormat(path: path, reason: "PyTorch pickle files can execute code on load and are not read; use safetensors")
        } else {
            let parent = url.deletingLastPathComponent()
            directory = adoptFolder && FileManager.default.fileExists(atPath: parent.appendingPathComponent("config.json").path) ? parent : nil
            files = [url]
        }
        indexURL = index
        var location: [String: Int] = [:]
        var shards: [SafetensorsFile] = []
        if let index {
            let weightMap = try Checkpoint.readIndex(index)
            let shardNames = Array(Set(weightMap.values)).sorted()
            var shardIndex: [String: Int] = [:]
            for name in shardNames {
                shardIndex[name] = shards.count
                let shardURL = index.deletingLastPathComponent().appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: shardURL.path) else {
                    throw CheckpointError.missingShard(index: index.relativePath, shard: name)
                }
                shards.append(try SafetensorsFile(url: shardURL))
            }
            for (tensor, shardName) in weightMap {
                let s = shardIndex[shardName]!
                guard shards[s].has(tensor) else {
                    throw CheckpointError.tensorMissingFromShard(index: index.relativePath, tensor: tensor, shard: shardName)
                }
                location[tensor] = s
            }
            for (s, shard) in shards.enumerated() {
                for t in shard.tensorNames {
                    if let other = location[t], other != s {
                        throw CheckpointError.tensorInTwoShards(tensor: t, first: shards[other].url.lastPathComponent, second: shard.url.lastPathComponent)
                    }
                    if weightMap[t] == nil {
                        throw CheckpointError.tensorNotInIndex(index: index.relativePath, tensor: t, shard: shard.url.lastPathComponent)
                    }
                }
            }
        } else {
            for f in files {
                let shard = try SafetensorsFile(url: f)
                location.reserveCapacity(location.count + shard.tensorNames.count)
                for t in shard.tensorNames {
                    if let other = location[t] {
                        throw CheckpointError.tensorInTwoShards(tensor: t, first: shards[other].url.lastPathComponent, second: f.lastPathComponent)
                    }
                    location[t] = shards.count
                }
                shards.append(shard)
            }
        }
        self.shards = shards
        self.location = location
        self.tensorNames = Checkpoint.sortedNames(location.keys)
        self.metadata = shards.first?.metadata ?? [:]
    }

    /// Reads `weight_map` from an index file; shard names must be plain file names in the same folder.
    static func readIndex(_ url: URL) throws -> [String: String] {
        // An index lists names and file names: a few MB at most even for the largest models.
        if let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int, size > SafetensorsFile.maxHeaderLength {
            throw CheckpointError.invalidIndex(path: url.relativePath, reason: "\(size) bytes is larger than the \(SafetensorsFile.maxHeaderLength)-byte limit for an index")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CheckpointError.fileNotFound(path: url.relativePath)
        }
        let json: JSONValue
        do {
            json = try StrictJSONParser.parse(Array(data))
        } catch let e as JSONParseError {
            throw CheckpointError.invalidIndex(path: url.relativePath, reason: e.description)
        }
        guard case .object = json else { throw CheckpointError.invalidIndex(path: url.relativePath, reason: "must be a JSON object") }
        if let meta = json["metadata"] {
            guard case .object = meta else { throw CheckpointError.invalidIndex(path: url.relativePath, reason: "\"metadata\" must be an object") }
            if let total = meta["total_size"] {
                switch total {
                case let .integer(v) where v >= 0: break
                case let .number(v) where v >= 0 && v.isFinite && v == v.rounded(): break
                default: throw CheckpointError.invalidIndex(path: url.relativePath, reason: "\"metadata.total_size\" must be a non-negative integer")
                }
            }
        }
        guard let wm = json["weight_map"] else { throw CheckpointError.invalidIndex(path: url.relativePath, reason: "missing \"weight_map\"") }
        guard case let .object(entries) = wm else { throw CheckpointError.invalidIndex(path: url.relativePath, reason: "\"weight_map\" must be an object") }
        var out: [String: String] = [:]
        for (tensor, v) in entries {
            guard case let .string(file) = v else {
                throw CheckpointError.invalidIndex(path: url.relativePath, reason: "weight_map[\"\(tensor)\"] must be a file name string")
            }
            guard !file.isEmpty, !file.contains("/"), !file.contains("\\"), file != "..", file != "." else {
                throw CheckpointError.invalidIndex(path: url.relativePath, reason: "weight_map[\"\(tensor)\"] = \"\(file)\" is not a file name in the index's folder")
            }
            out[tensor] = file
        }
        return out
    }

    public func has(_ name: String) -> Bool {
        if let v = virtualSource { return v.infos[name] != nil }
        return location[name] != nil
    }

    public func info(_ name: String) -> TensorInfo? {
        if let v = virtualSource { return v.infos[name] }
        guard let s = location[name] else { return nil }
        return shards[s].info(name)
    }

    /// True when the tensors are computed (GGUF, adapter on base, delta on base), not mapped shards.
    public var isVirtual: Bool { virtualSource != nil }

    /// Every file and folder the tensors and side files are read from (for `OutputFolder`'s
    /// never-write-into-an-input check and for fingerprints).
    public var sourceURLs: [URL] {
        if let v = virtualSource { return v.sourceURLs + (directory.map { [$0] } ?? []) }
        return shards.map(\.url) + [indexURL, directory].compactMap { $0 }
    }

    /// The data files (shards and index, or the virtual source's files), for fingerprints.
    public var dataFiles: [String] {
        if let v = virtualSource { return v.sourceURLs.filter { !$0.hasDirectoryPath && !isDirectory($0) }.map(\.path) }
        return (indexURL.map { [$0.path] } ?? []) + shards.map(\.url.path)
    }

    private func isDirectory(_ url: URL) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &d) && d.boolValue
    }

    /// The file a tensor is read from, as a short label (shard name, or the virtual source's label).
    public func fileLabel(of name: String) -> String? {
        if let v = virtualSource { return v.infos[name] != nil ? v.label(of: name) : nil }
        return shard(of: name)?.url.lastPathComponent
    }

    /// The shard holding `name`.
    public func shard(of name: String) -> SafetensorsFile? {
        location[name].map { shards[$0] }
    }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let v = virtualSource {
            guard v.infos[name] != nil else { throw CheckpointError.tensorNotFound(path: path, name: name) }
            return try v.withRawBytes(name, body)
        }
        guard let s = location[name] else { throw CheckpointError.tensorNotFound(path: path, name: name) }
        return try shards[s].withRawBytes(name, body)
    }

    /// Releases the mapped pages of `name` once it has been streamed (keeps memory near one tensor).
    public func releasePages(_ name: String) {
        if let v = virtualSource { v.release(name); return }
        location[name].map { shards[$0].releasePages(name) }
    }

    /// The tensor decoded to Float32.
    public func tensor(_ name: String) throws -> Tensor {
        if let v = virtualSource {
            guard v.infos[name] != nil else { throw CheckpointError.tensorNotFound(path: path, name: name) }
            return try v.tensor(name)
        }
        guard let s = location[name] else { throw CheckpointError.tensorNotFound(path: path, name: name) }
        return try shards[s].tensor(name)
    }

    /// Total bytes of tensor data.
    public var totalBytes: Int { tensorNames.reduce(0) { $0 + (info($1)?.byteCount ?? 0) } }
    /// Total number of elements.
    public var totalParameters: Int { tensorNames.reduce(0) { $0 + (info($1)?.elementCount ?? 0) } }

    /// A JSON file of the folder (config.json, tokenizer_config.json...), parsed strictly, if present.
    public func folderJSON(_ fileName: String) throws -> JSONValue? {
        guard let directory else { return nil }
        let p = directory.appendingPathComponent(fileName).path
        guard let data = FileManager.default.contents(atPath: p) else { return nil }
        do {
            return try StrictJSONParser.parse(Array(data))
        } catch let e as JSONParseError {
            throw CheckpointError.invalidJSON(path: p, message: e.description)
        }
    }
}
