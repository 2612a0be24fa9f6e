import Foundation
import Tensors
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One tensor's entry in a GGUF file. `dims` are in ggml order (innermost first); `shape` is the
/// row-major (PyTorch/Hugging Face) shape, i.e. `dims` reversed. `offset` is relative to the
/// start of the data section.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let dims: [Int]
    public let type: GGMLType
    public let offset: Int
    public let byteCount: Int
    public var shape: Shape { Shape(dims.reversed()) }
    public var elementCount: Int { dims.reduce(1, *) }
}

/// A GGUF v2/v3 file, mapped read-only and validated completely when opened: magic, version,
/// every length and count against the file size, metadata value types, tensor types, dimensions,
/// alignment of every tensor, tensor ranges inside the data section and free of overlaps.
/// Tensors are dequantised to Float32 only when asked for.
public final class GGUFFile: @unchecked Sendable {
    public let url: URL
    public let version: UInt32
    public let metadata: GGUFMetadata
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute file offset of the data section.
    public let dataOffset: Int
    private let byName: [String: Int]
    private let base: UnsafeRawPointer?
    public let fileSize: Int

    /// Whether two tensors hold the same bytes, computed once per pair (GPT-2's written-out tied
    /// `output.weight` is compared with `token_embd.weight` by the config and by the tensor plan).
    private var sameBytesCache: [String: Bool] = [:]
    private let cacheLock = NSLock()

    public var tensorNames: [String] { tensors.map(\.name) }

    /// Whether tensors `a` and `b` have the same type, dimensions and bytes (false when either is missing).
    public func sameBytes(_ a: String, _ b: String) throws -> Bool {
        let key = a + "\u{0}" + b
        if let hit = cacheLock.withLock({ sameBytesCache[key] }) { return hit }
        guard let x = info(a), let y = info(b), x.type == y.type, x.dims == y.dims else { return false }
        let same = try withRawBytes(a) { p in
            try withRawBytes(b) { q in p.count == q.count && (p.count == 0 || memcmp(p.baseAddress!, q.baseAddress!, p.count) == 0) }
        }
        cacheLock.withLock { sameBytesCache[key] = same }
        return same
    }
    public func info(_ name: String) -> GGUFTensorInfo? { byName[name].map { tensors[$0] } }

    public init(url: URL) throws {
        self.url = url
        let path = url.path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        var mapped: UnsafeRawPointer? = nil
        if size > 0 {
            guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
                throw GGUFError.cannotOpen(path: path, reason: "mmap failed: " + String(cString: strerror(errno)))
            }
            mapped = UnsafeRawPointer(m)
        }
        do {
            var parser = GGUFParser(path: path, bytes: UnsafeRawBufferPointer(start: mapped, count: size))
            let parsed = try parser.parse()
            version = parsed.version
            metadata = parsed.metadata
            tensors = parsed.tensors
            alignment = parsed.alignment
            dataOffset = parsed.dataOffset
        } catch {
            if let m = mapped { munmap(UnsafeMutableRawPointer(mutating: m), size) }
            throw error
        }
        base = mapped
        fileSize = size
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        byName = index
    }

    public convenience init(path: String) throws { try self.init(url: URL(fileURLWithPath: path)) }

    /// Validates a GGUF file held in memory (`bytes`: the whole file) exactly as opening it does:
    /// header, metadata and tensor infos. For fuzzing and tests; `path` only names the bytes in errors.
    public static func validate(_ bytes: UnsafeRawBufferPointer, path: String = "<memory>") throws -> (version: UInt32, metadata: GGUFMetadata, tensors: [GGUFTensorInfo], dataOffset: Int) {
        var parser = GGUFParser(path: path, bytes: bytes)
        let p = try parser.parse()
        return (p.version, p.metadata, p.tensors, p.dataOffset)
    }

    deinit { if let b = base { munmap(UnsafeMutableRawPointer(mutating: b), fileSize) } }

    /// The stored bytes of a tensor (valid only inside `body`).
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let t = info(name) else { throw GGUFError.missingTensor(path: url.path, name: name) }
        let start = base.map { $0 + dataOffset + t.offset }
        return try body(UnsafeRawBufferPointer(start: t.byteCount == 0 ? nil : start, count: t.byteCount))
    }

    /// The tensor dequantised to Float32, with its row-major shape (ggml dims reversed).
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = info(name) else { throw GGUFError.missingTensor(path: url.path, name: name) }
        let values = try withRawBytes(name) { raw in
            try GGUFDequantize.dequantize(raw, type: t.type, count: t.elementCount, context: name)
        }
        return Tensor(shape: t.shape, scalars: values)
    }
}

/// Bounds-checked sequential reader over the mapped bytes.
struct GGUFParser {
    let path: String
    let bytes: UnsafeRawBufferPointer
    var pos = 0

    init(path: String, bytes: UnsafeRawBufferPointer) { self.path = path; self.bytes = bytes }

    struct Parsed { var version: UInt32; var metadata: GGUFMetadata; var tensors: [GGUFTensorInfo]; var alignment: Int; var dataOffset: Int }

    mutating func need(_ n: Int, _ what: String) throws {
        guard n >= 0, n <= bytes.count - pos else {
            throw GGUFError.truncated(path: path, what: what, offset: pos, needed: n, fileSize: bytes.count)
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        try need(MemoryLayout<T>.size, what)
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: pos, as: T.self))
        pos += MemoryLayout<T>.size
        return v
    }

    /// A count that must fit in the rest of the file given at least `minBytes` per item.
    mutating func count(_ what: String, minBytes: Int) throws -> Int {
        let c = try read(UInt64.self, what)
        let limit = (bytes.count - pos) / max(minBytes, 1)
        guard c <= UInt64(limit) else { throw GGUFError.countTooLarge(path: path, what: what, count: c, limit: limit) }
        return Int(c)
    }

    mutating func string(_ what: String) throws -> String {
        let start = pos
        let n = try count("length of \(what)", minBytes: 1)
        let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[pos..<pos + n]).bindMemory(to: UInt8.self), as: UTF8.self)
        guard let s else { throw GGUFError.invalidString(path: path, what: what, offset: start) }
        pos += n
        return s
    }

    mutating func value(_ type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        let what = "value of \"\(key)\""
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, what))
        case .int8: return .int8(try read(Int8.self, what))
        case .uint16: return .uint16(try read(UInt16.self, what))
        case .int16: return .int16(try read(Int16.self, what))
        case .uint32: return .uint32(try read(UInt32.self, what))
        case .int32: return .int32(try read(Int32.self, what))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self, what)))
        case .uint64: return .uint64(try read(UInt64.self, what))
        case .int64: return .int64(try read(Int64.self, what))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self, what)))
        case .bool:
            let b = try read(UInt8.self, what)
            guard b <= 1 else { throw GGUFError.invalidMetadata(path: path, key: key, reason: "bool byte is \(b)") }
            return .bool(b == 1)
        case .string: return .string(try string(what))
        case .array:
            guard depth < 4 else { throw GGUFError.nestedArrayTooDeep(path: path, key: key) }
            let raw = try read(UInt32.self, "element type of \"\(key)\"")
            guard let et = GGUFValueType(rawValue: raw) else { throw GGUFError.unknownValueType(path: path, key: key, type: raw) }
            // Strings take at least 8 bytes (their length), arrays at least 12.
            let n = try count("element count of \"\(key)\"", minBytes: et.fixedSize ?? (et == .string ? 8 : 12))
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(et, key: key, depth: depth + 1)) }
            return .array(elementType: et, values: items)
        }
    }

    mutating func parse() throws -> Parsed {
        let magic = try read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else { throw GGUFError.badMagic(path: path, actual: magic) }
        let version = try read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(path: path, version: version) }
        // A tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes;
        // a key/value at least 8 (key length) + 4 (type) + 1.
        let tensorCountRaw = try read(UInt64.self, "tensor count")
        let kvCount = try count("metadata key count", minBytes: 13)
        var metadata = GGUFMetadata(path: path)
        for i in 0..<kvCount {
            let key = try string("metadata key #\(i)")
            let raw = try read(UInt32.self, "value type of \"\(key)\"")
            guard let type = GGUFValueType(rawValue: raw) else { throw GGUFError.unknownValueType(path: path, key: key, type: raw) }
            try metadata.insert(key, try value(type, key: key, depth: 0))
        }
        let remaining = bytes.count - pos
        guard tensorCountRaw <= UInt64(remaining / 24) else {
            throw GGUFError.countTooLarge(path: path, what: "tensor count", count: tensorCountRaw, limit: remaining / 24)
        }
        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.intValue, v > 0, v <= 1 << 16, v & (v - 1) == 0 else {
                // Quoted as stored: a negative or non-integer value must not be converted (found by fuzzing).
                throw GGUFError.invalidAlignment(path: path, value: String(a.description.prefix(80)))
            }
            alignment = v
        }
        struct Raw { var name: String; var dims: [Int]; var type: GGMLType; var offset: UInt64; var bytes: Int }
        var raws: [Raw] = []
        var seen = Set<String>()
        for i in 0..<Int(tensorCountRaw) {
            let name = try string("name of tensor #\(i)")
            guard seen.insert(name).inserted else { throw GGUFError.duplicateTensor(path: path, name: name) }
            let nDims = try read(UInt32.self, "dimension count of \"\(name)\"")
            guard nDims >= 1, nDims <= 4 else {
                throw GGUFError.invalidDimensions(path: path, tensor: name, dims: [], reason: "\(nDims) dimensions (expected 1 to 4)")
            }
            var dims64: [UInt64] = []
            for _ in 0..<nDims { dims64.append(try read(UInt64.self, "dimensions of \"\(name)\"")) }
            let rawType = try read(UInt32.self, "type of \"\(name)\"")
            guard let type = GGMLType(rawValue: rawType) else { throw GGUFError.unknownTensorType(path: path, tensor: name, type: rawType) }
            let offset = try read(UInt64.self, "data offset of \"\(name)\"")
            var n = 1
            var dims: [Int] = []
            for d in dims64 {
                guard d <= UInt64(Int32.max) else {
                    throw GGUFError.invalidDimensions(path: path, tensor: name, dims: dims64, reason: "dimension too large")
                }
                let (p, o) = n.multipliedReportingOverflow(by: Int(d))
                guard !o else { throw GGUFError.invalidDimensions(path: path, tensor: name, dims: dims64, reason: "element count overflows") }
                n = p
                dims.append(Int(d))
            }
            guard dims[0] % type.blockLayout.elements == 0, let byteCount = type.byteCount(elements: n) else {
                throw GGUFError.invalidDimensions(path: path, tensor: name, dims: dims64,
                    reason: "first dimension must be a multiple of the \(type) block size \(type.blockLayout.elements)")
            }
            guard offset % UInt64(alignment) == 0 else {
                throw GGUFError.misalignedTensor(path: path, tensor: name, offset: offset, alignment: alignment)
            }
            raws.append(Raw(name: name, dims: dims, type: type, offset: offset, bytes: byteCount))
        }
        // The data section starts at the next multiple of the alignment.
        let dataOffset = (pos + alignment - 1) / alignment * alignment
        let dataSize = max(0, bytes.count - dataOffset)
        for r in raws {
            guard r.offset <= UInt64(dataSize), UInt64(r.bytes) <= UInt64(dataSize) - r.offset else {
                throw GGUFError.tensorOutOfBounds(path: path, tensor: r.name, start: r.offset, byteCount: r.bytes, dataSize: dataSize)
            }
        }
        let sorted = raws.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.bytes > 0 && b.bytes > 0 {
            if a.offset + UInt64(a.bytes) > b.offset {
                throw GGUFError.overlappingTensors(path: path, first: a.name, second: b.name)
            }
        }
        let infos = raws.map { GGUFTensorInfo(name: $0.name, dims: $0.dims, type: $0.type, offset: Int($0.offset), byteCount: $0.bytes) }
        return Parsed(version: version, metadata: metadata, tensors: infos, alignment: alignment, dataOffset: dataOffset)
    }
}
