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

/// The declaration of one method parameter: name, scope, kind and default (nil = required).
public struct ParameterSpec: Sendable, Equatable {
    public enum Kind: String, Sendable { case number, bool }
    public let name: String
    public let scope: ParameterScope
    public let kind: Kind
    public let defaultValue: ParameterValue?
    public let help: String

    public static func number(_ name: String, _ scope: ParameterScope, default value: Double?, _ help: String) -> ParameterSpec {
        ParameterSpec(name: name, scope: scope, kind: .number, defaultValue: value.map { .number($0) }, help: help)
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
