/// A resolved parameter value for one output tensor (after filters and layer gradients).
public enum ParameterValue: Sendable, Equatable, CustomStringConvertible {
    case number(Double)
    case bool(Bool)

    public var description: String {
        switch self {
        case let .number(v): return v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
        case let .bool(b): return String(b)
        }
    }
}

/// Whether a parameter is set once per output tensor or once per input model.
public enum ParameterScope: String, Sendable { case global, perModel }

/// The values a number parameter may take: an interval whose ends are open or closed (an
/// infinite end is open). `extrapolable` ranges may be left with `--allow-extrapolation`
/// (e.g. SLERP's t outside [0, 1]).
public struct ValueRange: Sendable, Equatable, CustomStringConvertible {
    public let lo: Double, hi: Double
    public let loOpen: Bool, hiOpen: Bool
    public var extrapolable = false
    public var integer = false

    public static func closed(_ lo: Double, _ hi: Double) -> ValueRange { ValueRange(lo: lo, hi: hi, loOpen: false, hiOpen: false) }
    /// (lo, hi]
    public static func leftOpen(_ lo: Double, _ hi: Double) -> ValueRange { ValueRange(lo: lo, hi: hi, loOpen: true, hiOpen: false) }
    /// [lo, hi)
    public static func rightOpen(_ lo: Double, _ hi: Double) -> ValueRange { ValueRange(lo: lo, hi: hi, loOpen: false, hiOpen: true) }
    /// (0, ∞)
    public static let positive = ValueRange(lo: 0, hi: .infinity, loOpen: true, hiOpen: true)
    /// [0, ∞)
    public static let nonNegative = ValueRange(lo: 0, hi: .infinity, loOpen: false, hiOpen: true)
    /// A whole number in [lo, hi].
    public static func count(_ lo: Double, _ hi: Double) -> ValueRange { ValueRange(lo: lo, hi: hi, loOpen: false, hiOpen: false, integer: true) }
    public var allowingExtrapolation: ValueRange { var r = self; r.extrapolable = true; return r }

    public func contains(_ x: Double) -> Bool {
        guard x.isFinite else { return false }
        if integer, x != x.rounded() { return false }
        return (loOpen ? x > lo : x >= lo) && (hiOpen ? x < hi : x <= hi)
    }

    public var description: String {
        func num(_ v: Double) -> String { v.isInfinite ? (v > 0 ? "∞" : "−∞") : (v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)) }
        let interval = (loOpen ? "(" : "[") + num(lo) + ", " + num(hi) + (hiOpen ? ")" : "]")
        return integer ? "a whole number in \(interval)" : "in \(interval)"
    }
}

/// The declaration of one method parameter: name, scope, kind, default (nil = required) and,
/// for numbers, the range it must lie in (every number must be finite).
public struct ParameterSpec: Sendable, Equatable {
    public enum Kind: String, Sendable { case number, bool }
    public let name: String
    public let scope: ParameterScope
    public let kind: Kind
    public let defaultValue: ParameterValue?
    public let help: String
    public var range: ValueRange? = nil

    public static func number(_ name: String, _ scope: ParameterScope, default value: Double?, _ help: String,
                              range: ValueRange? = nil) -> ParameterSpec {
        ParameterSpec(name: name, scope: scope, kind: .number, defaultValue: value.map { .number($0) }, help: help, range: range)
    }

    /// Why `value` is not acceptable (nil when it is).
    public func problem(with value: ParameterValue, allowExtrapolation: Bool) -> String? {
        guard case let .number(x) = value else { return nil }
        guard x.isFinite else { return "is \(x); it must be a finite number" }
        guard let range, !range.contains(x) else { return nil }
        if range.extrapolable && allowExtrapolation && !range.integer { return nil }
        return "is \(ParameterValue.number(x)); it must be \(range.description)"
            + (range.extrapolable ? " (or pass --allow-extrapolation)" : "")
    }
    public static func bool(_ name: String, _ scope: ParameterScope, default value: Bool?, _ help: String) -> ParameterSpec {
        ParameterSpec(name: name, scope: scope, kind: .bool, defaultValue: value.map { .bool($0) }, help: help)
    }
    public var isRequired: Bool { defaultValue == nil }
}

/// Parameters resolved for one job: globals, and one dictionary per non-base model
/// (in the order of `MergeInputs.models`). Every declared parameter with a default is present;
/// a required one is present or the planner has already reported it.
public struct ResolvedParameters: Sendable, Equatable {
    public var global: [String: ParameterValue]
    public var perModel: [[String: ParameterValue]]

    public init(global: [String: ParameterValue] = [:], perModel: [[String: ParameterValue]] = []) {
        self.global = global
        self.perModel = perModel
    }

    public func number(_ name: String) throws -> Double {
        guard let v = global[name] else { throw MergeError.missingParameter(name: name, model: nil) }
        guard case let .number(x) = v else { throw MergeError.invalidParameter(name: name, reason: "expected a number, got \(v)") }
        return x
    }

    public func bool(_ name: String) throws -> Bool {
        guard let v = global[name] else { throw MergeError.missingParameter(name: name, model: nil) }
        switch v {
        case let .bool(b): return b
        case let .number(x) where x == 0 || x == 1: return x == 1
        default: throw MergeError.invalidParameter(name: name, reason: "expected true or false, got \(v)")
        }
    }

    /// The per-model numbers `name` for every model; `fallback` where a model lacks it (nil = required).
    public func numbers(_ name: String, fallback: Double? = nil) throws -> [Double] {
        try perModel.enumerated().map { i, p in
            switch p[name] {
            case let .number(x)?: return x
            case let .bool(b)?: return b ? 1 : 0
            case nil:
                guard let fallback else { throw MergeError.missingParameter(name: name, model: i) }
                return fallback
            }
        }
    }

    /// Whether any model sets the per-model parameter `name`.
    public func anyModelSets(_ name: String) -> Bool { perModel.contains { $0[name] != nil } }
}
