/// Human byte sizes: parsing `500MB`, `2GB`, `1GiB`, `1.5GB`, `4096` (bytes) and formatting.
///
/// Decimal units (kB/KB, MB, GB, TB) are powers of 1000, binary units (KiB, MiB, GiB, TiB) powers
/// of 1024, as in `transformers`' `max_shard_size`. Case-insensitive; a space before the unit is allowed.
public enum ByteSize {
    public struct ParseError: Error, Equatable, CustomStringConvertible, Sendable {
        public let text: String
        public let reason: String
        public var description: String {
            "invalid size \"\(text)\": \(reason) (examples: 500MB, 2GB, 1GiB, 1048576)"
        }
    }

    static let units: [(String, Double)] = [
        ("b", 1), ("kb", 1e3), ("mb", 1e6), ("gb", 1e9), ("tb", 1e12),
        ("kib", 1024), ("mib", 1_048_576), ("gib", 1_073_741_824), ("tib", 1_099_511_627_776),
        ("k", 1e3), ("m", 1e6), ("g", 1e9), ("t", 1e12),
    ]

    /// Bytes for `text`; throws `ParseError` for an empty, negative, zero, non-numeric,
    /// unknown-unit or overflowing size, or a fractional number of bytes.
    public static func parse(_ text: String) throws -> Int {
        let t = text.trimmingWhitespace()
        guard !t.isEmpty else { throw ParseError(text: text, reason: "empty") }
        let numberPart = t.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unitPart = t.dropFirst(numberPart.count).trimmingWhitespace().lowercased()
        guard !numberPart.isEmpty else {
            throw ParseError(text: text, reason: t.hasPrefix("-") ? "must be positive" : "must start with a number")
        }
        guard numberPart.filter({ $0 == "." }).count <= 1, numberPart.first != ".", numberPart.last != ".",
              let value = Double(numberPart) else {
            throw ParseError(text: text, reason: "\"\(numberPart)\" is not a number")
        }
        let multiplier: Double
        if unitPart.isEmpty {
            multiplier = 1
        } else if let u = units.first(where: { $0.0 == unitPart }) {
            multiplier = u.1
        } else {
            throw ParseError(text: text, reason: "unknown unit \"\(unitPart)\"; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB")
        }
        let bytes = value * multiplier
        guard bytes >= 1 else { throw ParseError(text: text, reason: "must be at least 1 byte") }
        guard bytes < 9e18 else { throw ParseError(text: text, reason: "too large") }
        guard bytes == bytes.rounded(.down) else { throw ParseError(text: text, reason: "is not a whole number of bytes") }
        return Int(bytes)
    }

    /// `1.50 GB`, `512 B`: decimal units with three significant figures.
    public static func format(_ bytes: Int) -> String {
        let b = Double(bytes)
        for (name, scale) in [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)] where b >= scale {
            let v = b / scale
            return (v >= 100 ? formatFixed(v, 0) : v >= 10 ? formatFixed(v, 1) : formatFixed(v, 2)) + " " + name
        }
        return "\(bytes) B"
    }
}

/// `value` with `digits` decimals (no Foundation).
func formatFixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e18 else { return "\(value)" }
    let n = Int(scaled)
    let intPart = n / Int(scale)
    var s = (value < 0 && n != 0 ? "-" : "") + "\(intPart)"
    if digits > 0 {
        let frac = String(n % Int(scale))
        s += "." + String(repeating: "0", count: digits - frac.count) + frac
    }
    return s
}

/// `1234567` -> `1,234,567`.
func groupedThousands(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        // Fast path (inspect's table lines rarely need trimming; the generic path walks every line twice).
        guard let f = first, let l = last, f.isWhitespace || l.isWhitespace else { return String(self) }
        let s = self.drop { $0.isWhitespace }
        return String(s.reversed().drop { $0.isWhitespace }.reversed())
    }
}
