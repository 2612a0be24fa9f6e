/// Errors raised by tensor operations on values that came from outside the program.
public enum TensorError: Error, Equatable, CustomStringConvertible, Sendable {
    case shapeMismatch(context: String, expected: Shape, actual: Shape)
    case byteCountMismatch(context: String, expected: Int, actual: Int)
    case unsupportedConversion(from: DType, to: DType, context: String)
    case lapackFailure(routine: String, info: Int32)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .shapeMismatch(ctx, e, a): return "\(ctx): expected shape \(e), got \(a)"
        case let .byteCountMismatch(ctx, e, a): return "\(ctx): expected \(e) bytes, got \(a)"
        case let .unsupportedConversion(f, t, ctx):
            return "\(ctx): conversion from \(f.rawValue) to \(t.rawValue) is not supported"
        case let .lapackFailure(r, info): return "LAPACK \(r) failed with info = \(info)"
        case let .invalidArgument(m): return m
        }
    }
}
