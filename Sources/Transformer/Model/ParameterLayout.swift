import Tensors

/// Where each named parameter lives in one flat Float32 buffer. Computed once from the config;
/// the same layout serves parameters, gradients and optimizer state, and its names and shapes
/// are the Hugging Face checkpoint's (GPT-2 Conv1D weights keep their (in, out) shape).
public struct ParameterLayout: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let shape: Shape
        public let offset: Int
        public var count: Int { shape.elementCount }
    }

    public private(set) var entries: [Entry] = []
    public private(set) var index: [String: Int] = [:]
    public private(set) var totalCount = 0

    public init() {}

    public mutating func add(_ name: String, _ dims: [Int]) {
        precondition(index[name] == nil, "duplicate parameter \(name)")
        let e = Entry(name: name, shape: Shape(dims), offset: totalCount)
        index[name] = entries.count
        entries.append(e)
        totalCount += e.count
    }

    public subscript(name: String) -> Entry? { index[name].map { entries[$0] } }
}

/// One Float32 buffer laid out by a `ParameterLayout` (parameters, or gradients of the same shape).
public final class ParameterBuffer: @unchecked Sendable {
    public let layout: ParameterLayout
    public let base: UnsafeMutablePointer<Float>

    public init(layout: ParameterLayout) {
        self.layout = layout
        base = .allocate(capacity: max(layout.totalCount, 1))
        base.initialize(repeating: 0, count: max(layout.totalCount, 1))
    }

    deinit { base.deallocate() }

    /// Pointer to a parameter; precondition: the name is in the layout (the model's own names).
    public func pointer(_ name: String) -> UnsafeMutablePointer<Float> {
        guard let e = layout[name] else { preconditionFailure("no parameter \(name)") }
        return base + e.offset
    }

    public func optionalPointer(_ name: String) -> UnsafeMutablePointer<Float>? { layout[name].map { base + $0.offset } }

    /// A copy of one parameter as a Tensor.
    public func tensor(_ name: String) -> Tensor? {
        guard let e = layout[name] else { return nil }
        return Tensor(shape: e.shape, scalars: Array(UnsafeBufferPointer(start: base + e.offset, count: e.count)))
    }

    /// Copies `t` into the named view after checking its shape; returns how many of the copied
    /// values are NaN or ±Inf (counted in the copy loop, no extra pass).
    @discardableResult
    public func set(_ name: String, _ t: Tensor, source: String) throws -> Int {
        guard let e = layout[name] else { throw ModelError.unexpectedTensor(source: source, name: name) }
        guard t.shape == e.shape else {
            throw ModelError.shapeMismatch(source: source, tensor: name, expected: e.shape.dims, actual: t.shape.dims)
        }
        return t.scalars.withUnsafeBufferPointer { NonFinite.copyCounting($0, into: base + e.offset) }
    }
}
