import Foundation

/// Serialises a `JSONValue` (object keys in their original order), two-space indented, the way
/// Hugging Face writes config.json.
public enum JSONText {
    public static func string(_ v: JSONValue, indent: String = "") -> String {
        switch v {
        case .null: return "null"
        case let .bool(b): return b ? "true" : "false"
        case let .integer(i): return String(i)
        case let .number(d):
            if d.isFinite && d == d.rounded() && abs(d) < 1e15 { return String(format: "%.1f", d) }
            return d.isFinite ? "\(d)" : "null"
        case let .string(s): return quote(s)
        case let .array(a):
            if a.isEmpty { return "[]" }
            let inner = indent + "  "
            return "[\n" + a.map { inner + string($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case let .object(m):
            if m.isEmpty { return "{}" }
            let inner = indent + "  "
            return "{\n" + m.map { inner + quote($0.key) + ": " + string($0.value, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "}"
        }
    }

    public static func quote(_ s: String) -> String { jsonQuoted(s) }

    /// A Foundation-style value (dictionaries, arrays, String, Bool, Int, Double, Float, NSNull)
    /// as a `JSONValue`, object keys sorted. Unlike JSONSerialization, a Double keeps its type:
    /// 5.0 is written `5.0`, which transformers' strict config classes require of float fields.
    public static func value(_ v: Any) -> JSONValue {
        switch v {
        case is NSNull: return .null
        case let b as Bool: return .bool(b)
        case let i as Int: return .integer(i)
        case let d as Double: return .number(d)
        case let f as Float: return .number(Double("\(f)") ?? Double(f))
        case let s as String: return .string(s)
        case let a as [Any]: return .array(a.map(value))
        case let o as [String: Any]: return .object(o.keys.sorted().map { ($0, value(o[$0]!)) })
        case let n as NSNumber: return n.doubleValue == n.doubleValue.rounded() && abs(n.doubleValue) < 1e15 ? .integer(n.intValue) : .number(n.doubleValue)
        default: return .string("\(v)")
        }
    }

    /// `object` with `key` set (replaced in place, or appended).
    public static func setting(_ object: JSONValue, _ key: String, _ value: JSONValue) -> JSONValue {
        guard case var .object(m) = object else { return object }
        if let i = m.firstIndex(where: { $0.key == key }) { m[i].value = value } else { m.append((key, value)) }
        return .object(m)
    }
}
