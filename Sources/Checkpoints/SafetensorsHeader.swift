import Tensors

/// Parsing and complete validation of a safetensors header.
///
/// Layout: `u64 little-endian N`, then `N` bytes of UTF-8 JSON, then the data section. The JSON
/// is an object mapping tensor names to `{"dtype", "shape", "data_offsets": [begin, end]}` with
/// offsets relative to the data section, plus an optional `"__metadata__"` map of strings.
/// Rejected: short or truncated files, N beyond the 100 MB cap or the file, non-UTF-8 or
/// invalid JSON, duplicate names, unknown keys or dtypes, negative or overflowing shapes,
/// byte ranges that disagree with shape x dtype size, ranges outside the data section,
/// overlaps, gaps, and data the tensors do not cover.
enum SafetensorsHeader {
    struct Parsed {
        var metadata: [String: String]
        var tensors: [TensorInfo]  // sorted by offset
        var dataStart: Int
    }

    static func parse(file: MappedFile, path: String) throws -> Parsed {
        try parse(prefix: file.bytes(0..<min(file.size, 8 + SafetensorsFile.maxHeaderLength)), fileSize: file.size, path: path)
    }

    /// Only the `__metadata__` map of the header in `prefix` (see `parse(prefix:)`): the tensor
    /// entries are skipped, not validated. For deciding what kind of file this is before opening it.
    static func metadata(prefix: UnsafeRawBufferPointer, fileSize: Int, path: String) throws -> [String: String] {
        guard fileSize >= 8, prefix.count >= 8 else { throw CheckpointError.fileTooSmall(path: path, size: fileSize) }
        let n = UInt64(littleEndian: prefix.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(SafetensorsFile.maxHeaderLength), 8 + n <= UInt64(fileSize), 8 + n <= UInt64(prefix.count) else {
            throw CheckpointError.headerBeyondFile(path: path, headerEnd: 8 + n, fileSize: fileSize)
        }
        let value: JSONValue?
        do {
            value = try StrictJSONParser.member("__metadata__", of: Array(prefix[8..<(8 + Int(n))]))
        } catch let e as JSONParseError {
            throw CheckpointError.invalidJSON(path: path, message: e.description)
        }
        return try value.map { try parseMetadata($0, path: path) } ?? [:]
    }

    /// Parses the header from `prefix`, the first bytes of a file of `fileSize` bytes (at least
    /// the length field and the header, or the whole file when it is shorter).
    static func parse(prefix: UnsafeRawBufferPointer, fileSize: Int, path: String) throws -> Parsed {
        guard fileSize >= 8, prefix.count >= 8 else { throw CheckpointError.fileTooSmall(path: path, size: fileSize) }
        let n = UInt64(littleEndian: prefix.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(SafetensorsFile.maxHeaderLength) else {
            throw CheckpointError.headerTooLarge(path: path, length: n, limit: SafetensorsFile.maxHeaderLength)
        }
        guard 8 + n <= UInt64(fileSize), 8 + n <= UInt64(prefix.count) else {
            throw CheckpointError.headerBeyondFile(path: path, headerEnd: 8 + n, fileSize: fileSize)
        }
        let headerBytes = Array(prefix[8..<(8 + Int(n))])
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw CheckpointError.headerNotUTF8(path: path)
        }
        let json: JSONValue
        do {
            json = try StrictJSONParser.parse(headerBytes)
        } catch let e as JSONParseError {
            if e.message.hasPrefix("duplicate key ") {
                let name = String(e.message.dropFirst("duplicate key \"".count).dropLast())
                throw CheckpointError.duplicateTensorName(path: path, name: name)
            }
            throw CheckpointError.invalidJSON(path: path, message: e.description)
        }
        guard case let .object(members) = json else { throw CheckpointError.headerNotObject(path: path) }
        let dataStart = 8 + Int(n)
        let dataSize = fileSize - dataStart
        var metadata: [String: String] = [:]
        var tensors: [TensorInfo] = []
        for (key, value) in members {
            if key == "__metadata__" {
                metadata = try parseMetadata(value, path: path)
            } else {
                tensors.append(try parseEntry(name: key, value, path: path, dataSize: dataSize))
            }
        }
        try checkLayout(&tensors, path: path, dataSize: dataSize)
        return Parsed(metadata: metadata, tensors: tensors, dataStart: dataStart)
    }

    private static func parseMetadata(_ value: JSONValue, path: String) throws -> [String: String] {
        guard case let .object(members) = value else {
            throw CheckpointError.invalidMetadata(path: path, key: "__metadata__", reason: "must be an object, found \(value.kindName)")
        }
        var out: [String: String] = [:]
        for (k, v) in members {
            guard case let .string(s) = v else {
                throw CheckpointError.invalidMetadata(path: path, key: k, reason: "values must be strings, found \(v.kindName)")
            }
            out[k] = s
        }
        return out
    }

    private static func parseEntry(name: String, _ value: JSONValue, path: String, dataSize: Int) throws -> TensorInfo {
        guard case let .object(fields) = value else {
            throw CheckpointError.invalidEntry(path: path, tensor: name, reason: "entry must be an object, found \(value.kindName)")
        }
        for (k, _) in fields where !["dtype", "shape", "data_offsets"].contains(k) {
            throw CheckpointError.invalidEntry(path: path, tensor: name, reason: "unknown field \"\(k)\"")
        }
        guard let dtypeValue = value["dtype"] else {
            throw CheckpointError.invalidEntry(path: path, tensor: name, reason: "missing \"dtype\"")
        }
        guard case let .string(dtypeName) = dtypeValue else {
            throw CheckpointError.invalidEntry(path: path, tensor: name, reason: "\"dtype\" must be a string")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw CheckpointError.unknownDType(path: path, tensor: name, dtype: dtypeName)
        }
        guard let shapeValue = value["shape"] else {
            throw CheckpointError.invalidEntry(path: path, tensor: name, reason: "missing \"shape\"")
        }
        guard case let .array(dimValues) = shapeValue else {
            throw CheckpointError.invalidShape(path: path, tensor: name, reason: "must be an array")
        }
        var dims: [Int] = []
        for d in dimValues {
            guard case let .integer(v) = d else {
                throw CheckpointError.invalidShape(path: path, tensor: name, reason: "dimensions must be integers")
            }
            guard v >= 0 else { throw CheckpointError.invalidShape(path: path, tensor: name, reason: "negative dimension \(v)") }
            dims.append(v)
        }
        let shape = Shape(dims)
        guard let count = shape.checkedElementCount else {
            throw CheckpointError.invalidShape(path: path, tensor: name, reason: "element count of \(shape) overflows")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else {
            throw CheckpointError.invalidShape(path: path, tensor: name, reason: "byte size of \(shape) x \(dtype.rawValue) overflows")
        }
        guard let offValue = value["data_offsets"] else {
            throw CheckpointError.invalidEntry(path: path, tensor: name, reason: "missing \"data_offsets\"")
        }
        guard case let .array(offs) = offValue, offs.count == 2,
              case let .integer(begin) = offs[0], case let .integer(end) = offs[1] else {
            throw CheckpointError.invalidEntry(path: path, tensor: name, reason: "\"data_offsets\" must be two integers")
        }
        guard begin >= 0, end >= begin else {
            throw CheckpointError.invalidEntry(path: path, tensor: name, reason: "data_offsets [\(begin), \(end)] are not an increasing pair")
        }
        guard end <= dataSize else {
            throw CheckpointError.offsetsOutOfBounds(path: path, tensor: name, end: end, dataSize: dataSize)
        }
        guard end - begin == bytes else {
            throw CheckpointError.byteSizeMismatch(path: path, tensor: name, expected: bytes, actual: end - begin)
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// Sorted by offset, tensors must tile the data section exactly: no gaps, no overlaps.
    private static func checkLayout(_ tensors: inout [TensorInfo], path: String, dataSize: Int) throws {
        tensors.sort {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound)
        }
        var cursor = 0
        var previous: String?
        for t in tensors {
            let begin = t.dataOffsets.lowerBound
            if begin < cursor, let previous {
                throw CheckpointError.overlappingTensors(path: path, first: previous, second: t.name)
            }
            if begin > cursor {
                throw CheckpointError.gapBeforeTensor(path: path, tensor: t.name, gapStart: cursor, gapEnd: begin)
            }
            cursor = t.dataOffsets.upperBound
            previous = t.name
        }
        guard cursor == dataSize else { throw CheckpointError.dataNotCovered(path: path, coveredTo: cursor, dataSize: dataSize) }
    }
}
