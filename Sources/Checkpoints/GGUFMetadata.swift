/// GGUF metadata value types, with the numbering of the GGUF specification.
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Size in bytes of a fixed-size value; nil for strings and arrays.
    public var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }
}

/// One metadata value. Arrays keep their declared element type, so an empty array still says
/// what it holds and a writer can reproduce it.
public indirect enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    case array(elementType: GGUFValueType, values: [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        case .array: return .array
        }
    }

    /// The value as an integer, for any integer type (nil for others or when it does not fit `Int`).
    public var intValue: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(exactly: v)
        default: return nil
        }
    }

    /// The value as a Double, for any numeric type.
    public var doubleValue: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    public var boolValue: Bool? { if case let .bool(b) = self { return b }; return nil }
    public var arrayValue: [GGUFValue]? { if case let .array(_, v) = self { return v }; return nil }

    public var description: String {
        switch self {
        case let .string(s): return "\"\(s)\""
        case let .bool(b): return "\(b)"
        case let .float32(v): return "\(v)"
        case let .float64(v): return "\(v)"
        case let .array(t, v):
            let head = v.prefix(4).map(\.description).joined(separator: ", ")
            return "[\(t) x \(v.count)\(v.isEmpty ? "" : ": " + head + (v.count > 4 ? ", ..." : ""))]"
        default: return intValue.map(String.init) ?? "?"
        }
    }
}

/// The key/value metadata of a GGUF file, in file order, with typed accessors that throw
/// `GGUFError` naming the key.
public struct GGUFMetadata: Sendable {
    public let path: String
    public private(set) var keys: [String] = []
    public private(set) var values: [String: GGUFValue] = [:]

    init(path: String) { self.path = path }

    mutating func insert(_ key: String, _ value: GGUFValue) throws {
        guard values[key] == nil else { throw GGUFError.duplicateKey(path: path, key: key) }
        keys.append(key)
        values[key] = value
    }

    public subscript(key: String) -> GGUFValue? { values[key] }

    public func value(_ key: String) throws -> GGUFValue {
        guard let v = values[key] else { throw GGUFError.missingKey(path: path, key: key) }
        return v
    }

    public func string(_ key: String) throws -> String {
        let v = try value(key)
        guard let s = v.stringValue else { throw wrong(key, "string", v) }
        return s
    }

    public func int(_ key: String) throws -> Int {
        let v = try value(key)
        guard let i = v.intValue else { throw wrong(key, "integer", v) }
        return i
    }

    public func double(_ key: String) throws -> Double {
        let v = try value(key)
        guard let d = v.doubleValue else { throw wrong(key, "number", v) }
        return d
    }

    public func stringArray(_ key: String) throws -> [String] {
        let v = try value(key)
        guard case let .array(t, items) = v, t == .string else { throw wrong(key, "array of strings", v) }
        return items.map { $0.stringValue ?? "" }
    }

    public func intArray(_ key: String) throws -> [Int] {
        let v = try value(key)
        guard case let .array(_, items) = v else { throw wrong(key, "array of integers", v) }
        return try items.map { guard let i = $0.intValue else { throw wrong(key, "array of integers", v) }; return i }
    }

    public func doubleArray(_ key: String) throws -> [Double] {
        let v = try value(key)
        guard case let .array(_, items) = v else { throw wrong(key, "array of numbers", v) }
        return try items.map { guard let d = $0.doubleValue else { throw wrong(key, "array of numbers", v) }; return d }
    }

    private func wrong(_ key: String, _ expected: String, _ v: GGUFValue) -> GGUFError {
        let actual: String
        if case let .array(t, _) = v { actual = "array of \(t)" } else { actual = "\(v.type)" }
        return .wrongValueType(path: path, key: key, expected: expected, actual: actual)
    }
}
