import Foundation

/// A regular expression over tensor names given by a user (`spectral --modules`,
/// `graft --include`, a mask's tensor pattern): compiled once, refused with a typed reason when
/// it is longer than `maxLength` characters or does not compile. The bound is the one applied
/// to the patterns of an `adapter_config.json`: real patterns are a few hundred characters at
/// most, and a longer one would only spend time and memory in the regex compiler.
public enum NamePattern {
    public static let maxLength = 4096

    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case tooLong(length: Int)
        case invalid
        public var description: String {
            switch self {
            case let .tooLong(n): return "is \(n) characters long; at most \(NamePattern.maxLength) are accepted"
            case .invalid: return "is not a valid regular expression"
            }
        }
    }

    public static func compile(_ pattern: String) throws(Failure) -> NSRegularExpression {
        let n = pattern.count
        guard n <= maxLength else { throw .tooLong(length: n) }
        do { return try NSRegularExpression(pattern: pattern) } catch { throw .invalid }
    }

    /// The pattern as quoted in an error: at most `limit` characters, then an ellipsis and the length.
    public static func excerpt(_ pattern: String, limit: Int = 80) -> String {
        pattern.count <= limit ? pattern : String(pattern.prefix(limit)) + "… (\(pattern.count) characters)"
    }
}
