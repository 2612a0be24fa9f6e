import Tensors

/// Every way a checkpoint file, folder or index can be wrong, each naming the file (and the
/// tensor or key) with what was expected and what was found.
public enum CheckpointError: Error, Equatable, CustomStringConvertible, Sendable {
    case fileNotFound(path: String)
    case io(path: String, message: String)
    case fileTooSmall(path: String, size: Int)
    case headerTooLarge(path: String, length: UInt64, limit: Int)
    case headerBeyondFile(path: String, headerEnd: UInt64, fileSize: Int)
    case headerNotUTF8(path: String)
    case invalidJSON(path: String, message: String)
    case headerNotObject(path: String)
    case duplicateTensorName(path: String, name: String)
    case invalidEntry(path: String, tensor: String, reason: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case invalidShape(path: String, tensor: String, reason: String)
    case byteSizeMismatch(path: String, tensor: String, expected: Int, actual: Int)
    case offsetsOutOfBounds(path: String, tensor: String, end: Int, dataSize: Int)
    case overlappingTensors(path: String, first: String, second: String)
    case gapBeforeTensor(path: String, tensor: String, gapStart: Int, gapEnd: Int)
    case dataNotCovered(path: String, coveredTo: Int, dataSize: Int)
    case invalidMetadata(path: String, key: String, reason: String)
    case tensorNotFound(path: String, name: String)
    case invalidIndex(path: String, reason: String)
    case tensorMissingFromShard(index: String, tensor: String, shard: String)
    case missingShard(index: String, shard: String)
    case tensorNotInIndex(index: String, tensor: String, shard: String)
    case tensorInTwoShards(tensor: String, first: String, second: String)
    case notACheckpoint(path: String, reason: String)
    case unsupportedFormat(path: String, reason: String)
    case conversion(path: String, tensor: String, underlying: TensorError)
    case writeOutOfOrder(path: String, expected: String, got: String)
    case writeShapeMismatch(path: String, tensor: String, expected: Shape, actual: Shape)
    case writeIncomplete(path: String, missing: String)
    case invalidWriterEntry(path: String, reason: String)
    /// A tensor to be written holds NaN or ±infinity (`count` of `elements`); `input` names where
    /// it came from when the caller knows. Nothing is committed (`--allow-nonfinite` writes it anyway).
    case nonFinite(path: String, tensor: String, count: Int, elements: Int, input: String? = nil)

    public var description: String {
        switch self {
        case let .fileNotFound(p): return "\(p): no such file or directory"
        case let .io(p, m): return "\(p): \(m)"
        case let .fileTooSmall(p, s): return "\(p): \(s) bytes is too small for a safetensors file (needs at least the 8-byte header length)"
        case let .headerTooLarge(p, n, l): return "\(p): header length \(n) exceeds the format's limit of \(l) bytes"
        case let .headerBeyondFile(p, e, s): return "\(p): header ends at byte \(e) but the file has only \(s) bytes (truncated file?)"
        case let .headerNotUTF8(p): return "\(p): header is not valid UTF-8"
        case let .invalidJSON(p, m): return "\(p): header is not valid JSON: \(m)"
        case let .headerNotObject(p): return "\(p): header must be a JSON object"
        case let .duplicateTensorName(p, n): return "\(p): tensor \"\(n)\" is listed twice in the header"
        case let .invalidEntry(p, t, r): return "\(p): tensor \"\(t)\": \(r)"
        case let .unknownDType(p, t, d):
            if ["F4", "F6_E2M3", "F6_E3M2"].contains(d) {
                return "\(p): tensor \"\(t)\": dtype \"\(d)\" packs several values per byte and is not supported"
            }
            return "\(p): tensor \"\(t)\": unknown dtype \"\(d)\""
        case let .invalidShape(p, t, r): return "\(p): tensor \"\(t)\": invalid shape: \(r)"
        case let .byteSizeMismatch(p, t, e, a): return "\(p): tensor \"\(t)\": shape and dtype need \(e) bytes but data_offsets span \(a)"
        case let .offsetsOutOfBounds(p, t, e, d): return "\(p): tensor \"\(t)\": data ends at \(e), beyond the data section of \(d) bytes"
        case let .overlappingTensors(p, a, b): return "\(p): tensors \"\(a)\" and \"\(b)\" overlap"
        case let .gapBeforeTensor(p, t, s, e): return "\(p): unused bytes \(s)..<\(e) before tensor \"\(t)\""
        case let .dataNotCovered(p, c, d): return "\(p): tensors cover \(c) bytes but the data section has \(d) (trailing bytes)"
        case let .invalidMetadata(p, k, r): return "\(p): __metadata__ \"\(k)\": \(r)"
        case let .tensorNotFound(p, n): return "\(p): no tensor named \"\(n)\""
        case let .invalidIndex(p, r): return "\(p): invalid index: \(r)"
        case let .tensorMissingFromShard(i, t, s): return "\(i): tensor \"\(t)\" is mapped to \(s) but that shard does not contain it"
        case let .missingShard(i, s): return "\(i): lists shard \(s), which does not exist in the index's folder"
        case let .tensorNotInIndex(i, t, s): return "\(i): shard \(s) contains tensor \"\(t)\" which the index does not list"
        case let .tensorInTwoShards(t, a, b): return "tensor \"\(t)\" is present in two shards: \(a) and \(b)"
        case let .notACheckpoint(p, r): return "\(p): not a checkpoint: \(r)"
        case let .unsupportedFormat(p, r): return "\(p): \(r)"
        case let .conversion(p, t, e):
            if case let .unsupportedConversion(from, to, _) = e {
                return "\(p): tensor \"\(t)\": conversion from \(from.rawValue) to \(to.rawValue) is not supported"
            }
            return "\(p): tensor \"\(t)\": \(e)"
        case let .writeOutOfOrder(p, e, g): return "\(p): expected tensor \"\(e)\" next, got \"\(g)\""
        case let .writeShapeMismatch(p, t, e, a): return "\(p): tensor \"\(t)\": declared shape \(e), written \(a)"
        case let .writeIncomplete(p, m): return "\(p): finished before tensor \"\(m)\" was written"
        case let .invalidWriterEntry(p, r): return "\(p): \(r)"
        case let .nonFinite(_, t, c, n, input):
            return "tensor \"\(t)\"\(input.map { " from \($0)" } ?? ""): \(c) of \(n) values are NaN or infinite; "
                + "nothing was written (--allow-nonfinite writes them anyway)"
        }
    }
}

extension CheckpointError {
    /// A `.nonFinite` error with `input` filled in when it was unknown; any other error unchanged.
    public func namingInput(_ input: String) -> CheckpointError {
        if case let .nonFinite(p, t, c, n, nil) = self { return .nonFinite(path: p, tensor: t, count: c, elements: n, input: input) }
        return self
    }
}

/// Runs `body`, naming `input` in a `CheckpointError.nonFinite` it throws.
public func namingNonFiniteInput<R>(_ input: @autoclosure () -> String, _ body: () throws -> R) throws -> R {
    do { return try body() } catch let e as CheckpointError { throw e.namingInput(input()) }
}
