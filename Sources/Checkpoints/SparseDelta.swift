import Foundation
import Tensors

/// A sparse difference checkpoint ("sparse delta"): for each tensor NAME of a model, the entries
/// that differ from the base, stored in one `.safetensors` file as
/// - `NAME.idx`: I64, shape `[k]`, row-major (C-order) linear indices into NAME, strictly ascending;
/// - `NAME.val`: shape `[k]`, the differences at those indices, in the dtype of the source tensor.
///
/// `__metadata__` holds `format = weightsmith-sparse-delta`, `version = 1`, `index_order = row-major`
/// and `shapes`, a JSON object from NAME to its dense shape. This is the safetensors twin of LT-SFT's
/// `pytorch_diff.bin` (Ansell et al. 2022, §3), whose indices are first-dimension-fastest and
/// delta-coded; here they are row-major and absolute, so a reader needs no cumulative sum.
/// Size on disk is (8 + value bytes) per kept entry plus the header.
public enum SparseDelta {
    public static let formatName = "weightsmith-sparse-delta"
    public static let version = "1"

    /// True when `metadata` (a safetensors `__metadata__`) declares a sparse delta.
    public static func isSparseDelta(metadata: [String: String]) -> Bool {
        metadata["format"] == formatName
    }

    /// The entries of `diff` whose magnitude is above `threshold` (row-major, ascending).
    public static func sparsify(name: String, diff: Tensor, dtype: DType = .f32, threshold: Float = 0) -> SparseDeltaTensor {
        var idx: [Int64] = []
        var val: [Float] = []
        for (i, v) in diff.scalars.enumerated() where abs(v) > threshold {
            idx.append(Int64(i))
            val.append(v)
        }
        return SparseDeltaTensor(name: name, shape: diff.shape, dtype: dtype, indices: idx, values: val)
    }
}

/// One tensor of a sparse delta.
public struct SparseDeltaTensor: Sendable, Equatable {
    public let name: String
    /// The dense shape of the tensor the delta applies to.
    public let shape: Shape
    /// The dtype of `NAME.val` (the source tensor's dtype).
    public let dtype: DType
    /// Row-major linear indices, strictly ascending.
    public let indices: [Int64]
    public let values: [Float]

    public init(name: String, shape: Shape, dtype: DType, indices: [Int64], values: [Float]) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.indices = indices
        self.values = values
    }

    /// Kept entries over dense elements (0 for an empty tensor).
    public var density: Double {
        let n = shape.elementCount
        return n == 0 ? 0 : Double(indices.count) / Double(n)
    }

    /// The dense difference tensor (zeros outside the kept entries).
    public func dense() -> Tensor {
        var out = Tensor(zeros: shape)
        for (i, v) in zip(indices, values) { out.scalars[Int(i)] = v }
        return out
    }

    /// Adds the delta onto `tensor` in place (shapes must match).
    public func add(into tensor: inout Tensor, scale: Float = 1) {
        precondition(tensor.shape.dims == shape.dims, "sparse delta \(name): shape \(shape) applied to \(tensor.shape)")
        for (i, v) in zip(indices, values) { tensor.scalars[Int(i)] += scale * v }
    }
}

/// Every way a sparse delta can be wrong, naming the file and the tensor.
public enum SparseDeltaError: Error, Equatable, CustomStringConvertible, Sendable {
    case notASparseDelta(path: String, reason: String)
    case invalidShapes(path: String, reason: String)
    case missingPart(path: String, tensor: String, part: String)
    case strayTensor(path: String, tensor: String)
    case invalidPart(path: String, tensor: String, reason: String)
    case countMismatch(path: String, tensor: String, indices: Int, values: Int)
    case indexOutOfRange(path: String, tensor: String, position: Int, index: Int64, size: Int)
    case notAscending(path: String, tensor: String, position: Int, previous: Int64, index: Int64)
    case duplicateIndex(path: String, tensor: String, position: Int, index: Int64)
    case invalidTensor(path: String, tensor: String, reason: String)

    public var description: String {
        switch self {
        case let .notASparseDelta(p, r): return "\(p): not a weightsmith sparse delta: \(r)"
        case let .invalidShapes(p, r): return "\(p): __metadata__ \"shapes\": \(r)"
        case let .missingPart(p, t, part): return "\(p): tensor \"\(t)\": \"\(t).\(part)\" is missing"
        case let .strayTensor(p, t): return "\(p): \"\(t)\" is neither NAME.idx nor NAME.val of a tensor listed in __metadata__ \"shapes\""
        case let .invalidPart(p, t, r): return "\(p): tensor \"\(t)\": \(r)"
        case let .countMismatch(p, t, i, v): return "\(p): tensor \"\(t)\": \(i) indices but \(v) values"
        case let .indexOutOfRange(p, t, pos, i, n): return "\(p): tensor \"\(t)\": index \(i) at position \(pos) is outside 0..<\(n)"
        case let .notAscending(p, t, pos, prev, i): return "\(p): tensor \"\(t)\": index \(i) at position \(pos) follows \(prev) (indices must be strictly ascending)"
        case let .duplicateIndex(p, t, pos, i): return "\(p): tensor \"\(t)\": index \(i) repeated at position \(pos)"
        case let .invalidTensor(p, t, r): return "\(p): tensor \"\(t)\": \(r)"
        }
    }
}

/// Writes a sparse delta streaming (one tensor in memory at a time) and atomically (temporary
/// sibling, then rename, through `SafetensorsWriter`).
public final class SparseDeltaWriter {
    public let url: URL
    private let writer: SafetensorsWriter
    private let declared: [(name: String, shape: Shape, dtype: DType, count: Int)]
    private var next = 0

    /// Declares every tensor (name, dense shape, value dtype, number of kept entries) up front.
    public init(url: URL, tensors: [(name: String, shape: Shape, dtype: DType, count: Int)], extraMetadata: [String: String] = [:],
                allowNonFinite: Bool = false) throws {
        self.url = url
        self.declared = tensors
        var entries: [TensorEntry] = []
        var shapes = "{"
        for (i, t) in tensors.enumerated() {
            guard t.dtype.isFloatingPoint, t.dtype.isConvertibleToFloat32 else {
                throw SparseDeltaError.invalidTensor(path: url.path, tensor: t.name, reason: "values must be a floating-point dtype convertible to F32, not \(t.dtype.rawValue)")
            }
            guard let n = t.shape.checkedElementCount, t.count >= 0, t.count <= n else {
                throw SparseDeltaError.invalidTensor(path: url.path, tensor: t.name, reason: "\(t.count) kept entries for shape \(t.shape)")
            }
            entries.append(TensorEntry(name: t.name + ".idx", dtype: .i64, shape: Shape([t.count])))
            entries.append(TensorEntry(name: t.name + ".val", dtype: t.dtype, shape: Shape([t.count])))
            if i > 0 { shapes += "," }
            shapes += jsonQuoted(t.name) + ":[" + t.shape.dims.map(String.init).joined(separator: ",") + "]"
        }
        shapes += "}"
        var metadata = extraMetadata
        metadata["format"] = SparseDelta.formatName
        metadata["version"] = SparseDelta.version
        metadata["index_order"] = "row-major"
        metadata["shapes"] = shapes
        writer = try SafetensorsWriter(url: url, entries: entries, metadata: metadata, allowNonFinite: allowNonFinite)
    }

    /// Writes the next declared tensor; indices are checked (ascending, in range) before writing.
    public func write(_ t: SparseDeltaTensor) throws {
        guard next < declared.count else {
            throw SparseDeltaError.invalidTensor(path: url.path, tensor: t.name, reason: "written after all declared tensors")
        }
        let d = declared[next]
        guard d.name == t.name, d.shape.dims == t.shape.dims, d.count == t.indices.count else {
            throw SparseDeltaError.invalidTensor(path: url.path, tensor: t.name, reason: "expected \"\(d.name)\" \(d.shape) with \(d.count) entries next")
        }
        try SparseDeltaFile.validate(indices: t.indices, valueCount: t.values.count, size: t.shape.elementCount, path: url.path, tensor: t.name)
        try t.indices.map { $0.littleEndian }.withUnsafeBytes { try writer.write(t.name + ".idx", rawBytes: $0) }
        try t.values.withUnsafeBufferPointer { try writer.write(t.name + ".val", scalars: $0) }
        next += 1
    }

    /// Checks that every declared tensor was written, then renames the file into place.
    public func finish() throws { try writer.finish() }

    /// Writes `tensors` to `url` in one call.
    public static func write(_ tensors: [SparseDeltaTensor], to url: URL, extraMetadata: [String: String] = [:], allowNonFinite: Bool = false) throws {
        let w = try SparseDeltaWriter(url: url, tensors: tensors.map { ($0.name, $0.shape, $0.dtype, $0.indices.count) }, extraMetadata: extraMetadata,
                                      allowNonFinite: allowNonFinite)
        for t in tensors { try w.write(t) }
        try w.finish()
    }
}

/// A sparse delta opened for reading: the header and every index are validated on open (one pass
/// over the indices, values are decoded on request).
public final class SparseDeltaFile: @unchecked Sendable {
    public let file: SafetensorsFile
    /// Tensor names (without `.idx`/`.val`), sorted.
    public let tensorNames: [String]
    /// Dense shapes by tensor name.
    public let shapes: [String: Shape]
    private var path: String { file.url.relativePath }

    public convenience init(path: String) throws {
        try self.init(file: SafetensorsFile(path: path))
    }

    /// The sparse delta at `path`: the file itself, a graft output folder's `graft.safetensors`,
    /// or the one `.safetensors` file of a folder (an LT-SFT output).
    public convenience init(locating path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CheckpointError.fileNotFound(path: path) }
        guard isDir.boolValue else { try self.init(path: path); return }
        let graft = (path as NSString).appendingPathComponent("graft.safetensors")
        if FileManager.default.fileExists(atPath: graft) { try self.init(path: graft); return }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }
        guard names.count == 1 else {
            throw CheckpointError.notACheckpoint(path: path, reason: "expected graft.safetensors or a single sparse-delta .safetensors file, found \(names.count) .safetensors files")
        }
        try self.init(path: (path as NSString).appendingPathComponent(names[0]))
    }

    public init(file: SafetensorsFile) throws {
        self.file = file
        let path = file.url.relativePath
        guard SparseDelta.isSparseDelta(metadata: file.metadata) else {
            throw SparseDeltaError.notASparseDelta(path: path, reason: "__metadata__ \"format\" is \(file.metadata["format"].map { "\"\($0)\"" } ?? "absent"), expected \"\(SparseDelta.formatName)\"")
        }
        guard file.metadata["version"] == SparseDelta.version else {
            throw SparseDeltaError.notASparseDelta(path: path, reason: "version \(file.metadata["version"] ?? "absent") is not supported (this reader knows version \(SparseDelta.version))")
        }
        if let order = file.metadata["index_order"], order != "row-major" {
            throw SparseDeltaError.notASparseDelta(path: path, reason: "index_order \"\(order)\" is not supported (row-major only)")
        }
        guard let shapesText = file.metadata["shapes"] else { throw SparseDeltaError.invalidShapes(path: path, reason: "absent") }
        let json: JSONValue
        do {
            json = try StrictJSONParser.parse(Array(shapesText.utf8))
        } catch let e as JSONParseError {
            throw SparseDeltaError.invalidShapes(path: path, reason: e.description)
        }
        guard case let .object(members) = json else { throw SparseDeltaError.invalidShapes(path: path, reason: "must be a JSON object") }
        var shapes: [String: Shape] = [:]
        for (name, v) in members {
            guard case let .array(items) = v else { throw SparseDeltaError.invalidShapes(path: path, reason: "\"\(name)\" must be an array of dimensions") }
            var dims: [Int] = []
            for item in items {
                guard case let .integer(d) = item, d >= 0 else { throw SparseDeltaError.invalidShapes(path: path, reason: "\"\(name)\" has a dimension that is not a non-negative integer") }
                dims.append(d)
            }
            guard Shape(dims).checkedElementCount != nil else { throw SparseDeltaError.invalidShapes(path: path, reason: "\"\(name)\" shape \(dims) overflows") }
            guard shapes.updateValue(Shape(dims), forKey: name) == nil else { throw SparseDeltaError.invalidShapes(path: path, reason: "\"\(name)\" listed twice") }
        }
        for stored in file.tensorNames {
            let base: String
            if stored.hasSuffix(".idx") { base = String(stored.dropLast(4)) } else if stored.hasSuffix(".val") { base = String(stored.dropLast(4)) } else { base = "" }
            guard shapes[base] != nil else { throw SparseDeltaError.strayTensor(path: path, tensor: stored) }
        }
        for (name, shape) in shapes {
            guard let idx = file.info(name + ".idx") else { throw SparseDeltaError.missingPart(path: path, tensor: name, part: "idx") }
            guard let val = file.info(name + ".val") else { throw SparseDeltaError.missingPart(path: path, tensor: name, part: "val") }
            guard idx.dtype == .i64, idx.shape.rank == 1 else {
                throw SparseDeltaError.invalidPart(path: path, tensor: name, reason: "\"\(name).idx\" must be a 1-D I64 tensor, found \(idx.dtype.rawValue) \(idx.shape)")
            }
            guard val.dtype.isFloatingPoint, val.dtype.isConvertibleToFloat32, val.shape.rank == 1 else {
                throw SparseDeltaError.invalidPart(path: path, tensor: name, reason: "\"\(name).val\" must be a 1-D floating-point tensor, found \(val.dtype.rawValue) \(val.shape)")
            }
            let indices = try SparseDeltaFile.readIndices(file, name: name)
            try SparseDeltaFile.validate(indices: indices, valueCount: val.elementCount, size: shape.elementCount, path: path, tensor: name)
            file.releasePages(name + ".idx")
        }
        self.shapes = shapes
        self.tensorNames = shapes.keys.sorted()
    }

    static func readIndices(_ file: SafetensorsFile, name: String) throws -> [Int64] {
        try file.withRawBytes(name + ".idx") { raw in
            let n = raw.count / 8
            var out = [Int64](repeating: 0, count: n)
            out.withUnsafeMutableBytes { dst in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<(n * 8)])) }
            return out.map { Int64(littleEndian: $0) }
        }
    }

    /// Counts match, every index is in `0..<size`, strictly ascending (so no duplicates).
    static func validate(indices: [Int64], valueCount: Int, size: Int, path: String, tensor: String) throws {
        guard indices.count == valueCount else {
            throw SparseDeltaError.countMismatch(path: path, tensor: tensor, indices: indices.count, values: valueCount)
        }
        var previous: Int64 = -1
        for (pos, i) in indices.enumerated() {
            guard i >= 0, i < Int64(size) else { throw SparseDeltaError.indexOutOfRange(path: path, tensor: tensor, position: pos, index: i, size: size) }
            if pos > 0 {
                if i == previous { throw SparseDeltaError.duplicateIndex(path: path, tensor: tensor, position: pos, index: i) }
                if i < previous { throw SparseDeltaError.notAscending(path: path, tensor: tensor, position: pos, previous: previous, index: i) }
            }
            previous = i
        }
    }

    public func has(_ name: String) -> Bool { shapes[name] != nil }

    /// Number of kept entries of `name`.
    public func count(_ name: String) -> Int { file.info(name + ".idx")?.elementCount ?? 0 }

    /// Kept entries over dense elements.
    public func density(_ name: String) -> Double {
        let n = shapes[name]?.elementCount ?? 0
        return n == 0 ? 0 : Double(count(name)) / Double(n)
    }

    /// The sparse tensor `name` (indices and values decoded to Float32).
    public func sparse(_ name: String) throws -> SparseDeltaTensor {
        guard let shape = shapes[name], let valInfo = file.info(name + ".val") else {
            throw CheckpointError.tensorNotFound(path: path, name: name)
        }
        let indices = try SparseDeltaFile.readIndices(file, name: name)
        let values = try file.tensor(name + ".val").scalars
        return SparseDeltaTensor(name: name, shape: shape, dtype: valInfo.dtype, indices: indices, values: values)
    }

    /// The dense difference tensor of `name` (zeros outside the kept entries).
    public func dense(_ name: String) throws -> Tensor { try sparse(name).dense() }
}
