import Foundation

/// Errors of the editing module; each names the file, field or tensor and what was expected.
public enum EditError: Error, Equatable, CustomStringConvertible, Sendable {
    case invalidRequest(String)
    case cannotRead(path: String, reason: String)
    case invalidRecord(path: String, line: Int, reason: String)
    case unsupported(String)
    case numerical(String)
    case invalidEditor(path: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidRequest(r): return "invalid edit request: \(r)"
        case let .cannotRead(p, r): return "\(p): \(r)"
        case let .invalidRecord(p, l, r): return "\(p): line \(l): \(r)"
        case let .unsupported(r): return "unsupported: \(r)"
        case let .numerical(r): return "numerical failure: \(r)"
        case let .invalidEditor(p, r): return "\(p): not a usable editor: \(r)"
        }
    }
}
