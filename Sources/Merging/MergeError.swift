import Tensors

/// Errors of merge methods, plans and executions; each names the tensor, model or key involved.
public enum MergeError: Error, Equatable, CustomStringConvertible, Sendable {
    case missingParameter(name: String, model: Int?)
    case invalidParameter(name: String, reason: String)
    case unknownMethod(name: String, known: [String])
    case wrongInputCount(method: String, expected: String, actual: Int)
    case baseRequired(method: String)
    case shapeMismatch(tensor: String, model: String, expected: Shape, actual: Shape)
    case numerical(tensor: String, reason: String)
    case invalidExpression(expression: String, position: Int, reason: String)
    case preflight([String])
    case io(path: String, message: String)
    case other(String)

    public var description: String {
        switch self {
        case let .missingParameter(n, m):
            return m.map { "missing required parameter \"\(n)\" for model #\($0 + 1)" } ?? "missing required parameter \"\(n)\""
        case let .invalidParameter(n, r): return "parameter \"\(n)\": \(r)"
        case let .unknownMethod(n, k): return "unknown merge method \"\(n)\"; known methods: \(k.joined(separator: ", "))"
        case let .wrongInputCount(m, e, a): return "\(m) needs \(e), got \(a)"
        case let .baseRequired(m): return "\(m) needs a base model (base_model in the recipe, --base on the command line)"
        case let .shapeMismatch(t, m, e, a): return "tensor \"\(t)\" of \(m): expected shape \(e), got \(a)"
        case let .numerical(t, r): return "tensor \"\(t)\": \(r)"
        case let .invalidExpression(e, p, r):
            let pad = String(repeating: " ", count: max(0, p))
            return "\(r) at column \(p + 1):\n  \(e)\n  \(pad)^"
        case let .preflight(problems):
            return "pre-flight check found \(problems.count) problem\(problems.count == 1 ? "" : "s"):\n" + problems.map { "  - " + $0 }.joined(separator: "\n")
        case let .io(p, m): return "\(p): \(m)"
        case let .other(m): return m
        }
    }
}
