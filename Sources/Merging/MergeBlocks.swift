import Tensors

/// Row-block access to one job's inputs, for kernels that stream over a tensor in several
/// passes (`MergeMethod.mergeBlocks`) instead of seeing whole tensors.
///
/// `withBlock` may be called concurrently from several threads for any ranges, any number of
/// times. The buffers are valid only inside `body` and must not be retained; the executor's
/// source points into mapped files (Float32) or decodes the range (other dtypes), and drops the
/// range's mapped pages afterwards, so a pass over a large tensor keeps only a few blocks resident.
public protocol MergeBlockSource: Sendable {
    var tensorName: String { get }
    var shape: Shape { get }
    var hasBase: Bool { get }
    var modelCount: Int { get }
    /// The threads a block-wise merge may use (the plan's `threads`).
    var loops: ParallelLoops { get }
    func withBlock(_ range: Range<Int>, _ body: (_ base: UnsafeBufferPointer<Float>?, _ models: [UnsafeBufferPointer<Float>]) throws -> Void) throws
}

/// Where a block-wise merge writes its result: consecutive pieces, in element order, from one thread.
public protocol MergeOutput {
    /// Produces the next `count` output elements: `body` must write every element of its buffer.
    func fill(_ count: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws
}

/// A block source over whole tensors already in memory (tests, `MergeMethod.merge` on buffers).
struct BufferBlockSource: MergeBlockSource, @unchecked Sendable {
    let inputs: MergeInputs
    var tensorName: String { inputs.tensorName }
    var shape: Shape { inputs.shape }
    var hasBase: Bool { inputs.base != nil }
    var modelCount: Int { inputs.models.count }
    var loops: ParallelLoops { inputs.loops }

    func withBlock(_ range: Range<Int>, _ body: (UnsafeBufferPointer<Float>?, [UnsafeBufferPointer<Float>]) throws -> Void) throws {
        try body(inputs.base.map { UnsafeBufferPointer(rebasing: $0[range]) }, inputs.models.map { UnsafeBufferPointer(rebasing: $0[range]) })
    }
}

/// Writes pieces consecutively into one buffer.
final class BufferOutput: MergeOutput {
    let buffer: UnsafeMutableBufferPointer<Float>
    private(set) var written = 0
    init(_ buffer: UnsafeMutableBufferPointer<Float>) { self.buffer = buffer }

    func fill(_ count: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        precondition(written + count <= buffer.count, "merge output overflows its buffer")
        try body(UnsafeMutableBufferPointer(rebasing: buffer[written..<(written + count)]))
        written += count
    }
}

/// The fixed partition of a tensor into row-aligned blocks that every pass of a streamed kernel
/// (and the L1 norms of the in-memory reference) uses: `rowsPerBlock = max(1, target / cols)`
/// whole rows per block, the last block shorter. Fixing the partition fixes the order of Float64
/// sums, so streamed and reference results are bit-identical whatever the thread count.
public struct TensorBlocks: Sendable, Equatable {
    /// Default block size in elements (256 kB of Float32 per input).
    public static let defaultTarget = 1 << 16

    public let count: Int
    public let cols: Int
    public let blockElements: Int

    public init(count: Int, cols: Int, target: Int = TensorBlocks.defaultTarget) {
        self.count = count
        self.cols = max(1, cols)
        blockElements = max(1, target / self.cols) * self.cols
    }

    /// Whole blocks per output window (about 1M elements) that a streamed kernel fills at once.
    public var windowBlocks: Int { max(1, (1 << 20) / blockElements) }
    public var windowElements: Int { windowBlocks * blockElements }

    public var blockCount: Int { count == 0 ? 0 : (count + blockElements - 1) / blockElements }

    public func range(_ block: Int) -> Range<Int> {
        let lo = block * blockElements
        return lo..<min(count, lo + blockElements)
    }
}
