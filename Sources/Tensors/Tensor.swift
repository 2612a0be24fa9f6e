/// A dense Float32 tensor in row-major order: the working type of every numeric operation.
///
/// Storage dtype lives with the checkpoint; arithmetic happens here, in Float32 (or in Float64
/// inside kernels where a sum could cancel).
public struct Tensor: Sendable, Equatable {
    public var shape: Shape
    public var scalars: [Float]

    /// Wraps `scalars`; precondition: `scalars.count == shape.elementCount`.
    public init(shape: Shape, scalars: [Float]) {
        precondition(shape.elementCount == scalars.count, "tensor of shape \(shape) given \(scalars.count) scalars")
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: Shape) {
        self.shape = shape
        self.scalars = [Float](repeating: 0, count: shape.elementCount)
    }

    public init(repeating value: Float, shape: Shape) {
        self.shape = shape
        self.scalars = [Float](repeating: value, count: shape.elementCount)
    }

    public var count: Int { scalars.count }

    /// Rows and columns of a rank-2 tensor, or (1, n) for rank 1.
    public var matrixDims: (rows: Int, cols: Int) {
        switch shape.rank {
        case 2: return (shape[0], shape[1])
        case 1: return (1, shape[0])
        case 0: return (1, 1)
        default:
            let cols = shape.dims.last!
            return (cols == 0 ? 0 : count / cols, cols)
        }
    }

    /// Element (i, j) of a rank-2 tensor.
    public subscript(i: Int, j: Int) -> Float {
        get { scalars[i * shape[1] + j] }
        set { scalars[i * shape[1] + j] = newValue }
    }

    /// The same scalars viewed with another shape of equal element count.
    public func reshaped(_ newShape: Shape) throws -> Tensor {
        guard newShape.checkedElementCount == count else {
            throw TensorError.shapeMismatch(context: "reshape", expected: newShape, actual: shape)
        }
        return Tensor(shape: newShape, scalars: scalars)
    }
}
