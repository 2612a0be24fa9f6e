/// Errors raised while reading a GGUF file. Every case names the file (or tensor/key) and, where
/// there is one, the expected and the actual value: a hostile or truncated file is rejected with
/// one of these, never with a crash.
public enum GGUFError: Error, Equatable, CustomStringConvertible, Sendable {
    case cannotOpen(path: String, reason: String)
    case badMagic(path: String, actual: UInt32)
    case unsupportedVersion(path: String, version: UInt32)
    /// A read of `needed` bytes at `offset` would run past the end of the file (`fileSize`).
    case truncated(path: String, what: String, offset: Int, needed: Int, fileSize: Int)
    case countTooLarge(path: String, what: String, count: UInt64, limit: Int)
    case invalidString(path: String, what: String, offset: Int)
    case unknownValueType(path: String, key: String, type: UInt32)
    case nestedArrayTooDeep(path: String, key: String)
    case duplicateKey(path: String, key: String)
    case duplicateTensor(path: String, name: String)
    /// `value` as written in the file (any GGUF type), e.g. `-51` or `"32"`.
    case invalidAlignment(path: String, value: String)
    case unknownTensorType(path: String, tensor: String, type: UInt32)
    case invalidDimensions(path: String, tensor: String, dims: [UInt64], reason: String)
    case misalignedTensor(path: String, tensor: String, offset: UInt64, alignment: Int)
    case tensorOutOfBounds(path: String, tensor: String, start: UInt64, byteCount: Int, dataSize: Int)
    case overlappingTensors(path: String, first: String, second: String)
    case missingTensor(path: String, name: String)
    case unsupportedTensorType(tensor: String, type: String)
    case missingKey(path: String, key: String)
    case wrongValueType(path: String, key: String, expected: String, actual: String)
    case invalidMetadata(path: String, key: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(p, r): return "\(p): cannot open GGUF file: \(r)"
        case let .badMagic(p, a):
            return "\(p): not a GGUF file (magic 0x\(String(a, radix: 16)), expected 0x46554747 \"GGUF\")"
        case let .unsupportedVersion(p, v): return "\(p): unsupported GGUF version \(v) (supported: 2, 3)"
        case let .truncated(p, w, o, n, s):
            return "\(p): \(w) needs \(n) bytes at offset \(o), beyond the end of the file (\(s) bytes)"
        case let .countTooLarge(p, w, c, l): return "\(p): \(w) is \(c), more than the file can hold (at most \(l))"
        case let .invalidString(p, w, o): return "\(p): \(w) at offset \(o) is not valid UTF-8"
        case let .unknownValueType(p, k, t): return "\(p): metadata key \"\(k)\" has unknown value type \(t)"
        case let .nestedArrayTooDeep(p, k): return "\(p): metadata key \"\(k)\" nests arrays too deeply"
        case let .duplicateKey(p, k): return "\(p): metadata key \"\(k)\" appears twice"
        case let .duplicateTensor(p, n): return "\(p): tensor \"\(n)\" appears twice"
        case let .invalidAlignment(p, v): return "\(p): general.alignment is \(v), expected an integer power of two between 1 and 2^16"
        case let .unknownTensorType(p, t, ty): return "\(p): tensor \"\(t)\" has unknown ggml type \(ty)"
        case let .invalidDimensions(p, t, d, r): return "\(p): tensor \"\(t)\" has invalid dimensions \(d): \(r)"
        case let .misalignedTensor(p, t, o, a):
            return "\(p): tensor \"\(t)\" data offset \(o) is not a multiple of the alignment \(a)"
        case let .tensorOutOfBounds(p, t, s, b, d):
            return "\(p): tensor \"\(t)\" data [\(s), \(s) + \(b)) lies beyond the data section (\(d) bytes)"
        case let .overlappingTensors(p, a, b): return "\(p): tensors \"\(a)\" and \"\(b)\" overlap in the data section"
        case let .missingTensor(p, n): return "\(p): no tensor named \"\(n)\""
        case let .unsupportedTensorType(t, ty): return "tensor \"\(t)\": dequantisation of \(ty) is not supported"
        case let .missingKey(p, k): return "\(p): missing metadata key \"\(k)\""
        case let .wrongValueType(p, k, e, a): return "\(p): metadata key \"\(k)\" is \(a), expected \(e)"
        case let .invalidMetadata(p, k, r): return "\(p): metadata key \"\(k)\": \(r)"
        }
    }
}
