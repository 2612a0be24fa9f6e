import Foundation
import Tensors

/// One `.safetensors` file, memory-mapped and validated on open.
///
/// Opening reads the 8-byte length and the JSON header only; a tensor's bytes are touched when
/// `withRawBytes` or `tensor` asks for them. The header is checked completely before anything
/// is used (see `SafetensorsHeader.parse`): a file that opens is safe to read everywhere.
public final class SafetensorsFile: @unchecked Sendable {
    /// The format's cap on the header length (100 MB), as in the official implementation.
    public static let maxHeaderLength = 100_000_000

    public let url: URL
    public let metadata: [String: String]
    /// Tensor names in data-offset order.
    public let tensorNames: [String]
    /// Byte offset of the data section in the file.
    public let dataStart: Int
    private let infos: [String: TensorInfo]
    private let file: MappedFile

    public convenience init(path: String) throws {
        try self.init(url: URL(fileURLWithPath: path))
    }

    public init(url: URL) throws {
        self.url = url
        let path = url.relativePath  // as the user spelled it, for error messages
        file = try MappedFile(path: path)
        let header = try SafetensorsHeader.parse(file: file, path: path)
        metadata = header.metadata
        tensorNames = header.tensors.map(\.name)
        dataStart = header.dataStart
        var map: [String: TensorInfo] = [:]
        map.reserveCapacity(header.tensors.count)
        for t in header.tensors { map[t.name] = t }
        infos = map
    }

    public var fileSize: Int { file.size }

    /// The `__metadata__` of the file at `path`, reading past the tensor entries without
    /// validating them (opening the file validates everything). Cheap on a header of a million
    /// tensors; for deciding what a file is (sparse delta, task vector) before opening it.
    public static func metadata(path: String) throws -> [String: String] {
        let file = try MappedFile(path: path)
        return try SafetensorsHeader.metadata(prefix: file.bytes(0..<min(file.size, 8 + maxHeaderLength)), fileSize: file.size, path: path)
    }

    /// Validates the header of a safetensors file held in memory (`bytes`: the whole file) exactly
    /// as opening it does, and returns its metadata and tensor infos (in data-offset order).
    /// For fuzzing and tests; `path` only names the bytes in errors.
    public static func validateHeader(_ bytes: [UInt8], path: String = "<memory>") throws -> (metadata: [String: String], tensors: [TensorInfo]) {
        let parsed = try bytes.withUnsafeBytes { try SafetensorsHeader.parse(prefix: $0, fileSize: bytes.count, path: path) }
        return (parsed.metadata, parsed.tensors)
    }

    public func info(_ name: String) -> TensorInfo? { infos[name] }

    public func has(_ name: String) -> Bool { infos[name] != nil }

    /// All tensor infos in data-offset order.
    public var allInfos: [TensorInfo] { tensorNames.map { infos[$0]! } }

    /// Calls `body` with the tensor's stored bytes (little-endian, row-major), valid only inside `body`.
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let info = infos[name] else { throw CheckpointError.tensorNotFound(path: url.relativePath, name: name) }
        let r = (dataStart + info.dataOffsets.lowerBound)..<(dataStart + info.dataOffsets.upperBound)
        return try body(file.bytes(r))
    }

    /// Releases the mapped pages of `name` after streaming through them (see `MappedFile.releasePages`).
    public func releasePages(_ name: String) {
        guard let info = infos[name] else { return }
        file.releasePages((dataStart + info.dataOffsets.lowerBound)..<(dataStart + info.dataOffsets.upperBound))
    }

    /// The tensor decoded to Float32 (exact for F32/BF16/F16; FP8 is refused).
    public func tensor(_ name: String) throws -> Tensor {
        guard let info = infos[name] else { throw CheckpointError.tensorNotFound(path: url.relativePath, name: name) }
        let n = info.elementCount
        let scalars: [Float] = try withRawBytes(name) { raw in
            do {
                return try DTypeConversion.decode(raw, dtype: info.dtype, count: n, context: name)
            } catch let e as TensorError {
                throw CheckpointError.conversion(path: url.relativePath, tensor: name, underlying: e)
            }
        }
        return Tensor(shape: info.shape, scalars: scalars)
    }
}
