/// Errors raised while loading or using a tokenizer; each names the file or key at fault.
public enum TokenizerError: Error, Equatable, CustomStringConvertible, Sendable {
    case cannotRead(path: String, reason: String)
    case invalidJSON(path: String, key: String, reason: String)
    case unsupported(path: String, key: String, value: String)
    case missingByteToken(path: String, byte: UInt8)
    case unknownMergeToken(path: String, merge: String)
    case unknownTokenId(Int)

    public var description: String {
        switch self {
        case let .cannotRead(p, r): return "\(p): cannot read tokenizer: \(r)"
        case let .invalidJSON(p, k, r): return "\(p): \(k): \(r)"
        case let .unsupported(p, k, v): return "\(p): \(k) = \(v) is not supported (byte-level BPE only)"
        case let .missingByteToken(p, b): return "\(p): the vocabulary has no token for byte 0x\(String(b, radix: 16)) (not a byte-level BPE)"
        case let .unknownMergeToken(p, m): return "\(p): merge \"\(m)\" names a token that is not in the vocabulary"
        case let .unknownTokenId(id): return "token id \(id) is not in the vocabulary"
        }
    }
}
