/// A tensor shape: a list of non-negative dimensions, row-major (last dimension fastest).
/// `[]` is a scalar with one element; any zero dimension makes an empty tensor.
public struct Shape: Hashable, Sendable, Codable, ExpressibleByArrayLiteral, CustomStringConvertible {
    public var dims: [Int]

    public init(_ dims: [Int]) { self.dims = dims }
    public init(arrayLiteral elements: Int...) { self.dims = elements }
    public init(from decoder: Decoder) throws { dims = try [Int](from: decoder) }
    public func encode(to encoder: Encoder) throws { try dims.encode(to: encoder) }

    public var rank: Int { dims.count }
    public subscript(i: Int) -> Int { dims[i] }

    /// Number of elements, or nil when a dimension is negative or the product overflows `Int`.
    public var checkedElementCount: Int? {
        var n = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    /// Number of elements. Precondition: a valid shape (validated on input).
    public var elementCount: Int {
        guard let n = checkedElementCount else { preconditionFailure("invalid shape \(dims)") }
        return n
    }

    public var description: String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }
}
