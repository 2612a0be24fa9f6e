import Tensors

/// What a checkpoint says about one tensor, before any of its bytes are read.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: Shape
    /// Byte range inside the file's data section.
    public let dataOffsets: Range<Int>
    public var byteCount: Int { dataOffsets.count }
    public var elementCount: Int { shape.elementCount }

    public init(name: String, dtype: DType, shape: Shape, dataOffsets: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }
}

/// A tensor to be written: name, storage dtype and shape.
public struct TensorEntry: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: Shape
    public init(name: String, dtype: DType, shape: Shape) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }
    public var byteCount: Int { shape.elementCount * dtype.byteSize }
}
