import Foundation

/// Splits element ranges over a given number of threads. Merges are bandwidth-bound, so each
/// chunk is a fused single pass over its elements; small tensors run on the calling thread.
///
/// The thread count is a value passed to whoever loops (a merge plan's `threads`, the CLI's
/// `--threads`), not a process setting: two merges in one process may use different counts.
/// Reductions (`sums`) are chunked independently of it, so results are the same bits whatever
/// the count.
public struct ParallelLoops: Sendable {
    /// Number of worker threads (at least 1).
    public let threadCount: Int

    public init(threads: Int) { threadCount = max(1, threads) }

    /// The active processor count: the default when no `--threads` is given.
    public static var machineThreads: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
    /// Loops over every core.
    public static var machine: ParallelLoops { ParallelLoops(threads: machineThreads) }
    /// Loops on the calling thread only.
    public static let serial = ParallelLoops(threads: 1)

    /// Below this many elements a loop runs on one thread.
    public static let minParallelCount = 1 << 16

    /// Calls `body` on disjoint ranges covering `0..<count`; ranges are contiguous and in order of their index.
    /// `workPerItem` (elements touched per item) decides whether the loop is worth splitting.
    public func forEachChunk(_ count: Int, workPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        let t = threadCount
        if t <= 1 || count < 2 || count * workPerItem < Self.minParallelCount {
            if count > 0 { body(0..<count) }
            return
        }
        // Four chunks per thread (for balance), run by `threadCount` workers: at most that many
        // run at once, whatever the machine's core count.
        let chunks = min(count, t * 4)
        let size = (count + chunks - 1) / chunks
        forEachBlock(chunks) { _, c in
            let lo = c * size
            let hi = min(count, lo + size)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Elements per chunk of `sums`: fixed, so that the order of the additions, and with it every
    /// bit of the result, is the same whatever the thread count.
    public static let sumChunkSize = 1 << 16

    /// Sums `k` Float64 quantities over `0..<count`: `body(range, partials)` adds its range's
    /// contributions to `partials[0..<k]`. The ranges are fixed-size chunks (`sumChunkSize`) and
    /// their results are combined in chunk order, so the result depends neither on scheduling nor
    /// on `threadCount` (1 and 2 threads give identical bits).
    public func sums(_ count: Int, _ k: Int, _ body: (Range<Int>, UnsafeMutablePointer<Double>) -> Void) -> [Double] {
        let size = Self.sumChunkSize
        let chunks = max(1, (count + size - 1) / size)
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: chunks * k)
        partial.initialize(repeating: 0, count: chunks * k)
        defer { partial.deallocate() }
        // forEachBlock runs serially with one worker and hands chunks to `threadCount` workers
        // otherwise; each chunk writes only its own partials.
        let box = UncheckedSendable(partial)
        forEachBlock(chunks) { _, c in
            let lo = c * size, hi = min(count, lo + size)
            if lo < hi { body(lo..<hi, box.value + c * k) }
        }
        var out = [Double](repeating: 0, count: k)
        for c in 0..<chunks { for j in 0..<k { out[j] += partial[c * k + j] } }
        return out
    }

    /// Number of workers `forEachBlock` uses for `count` blocks.
    public func workers(for count: Int) -> Int { max(1, min(threadCount, count)) }

    /// Runs `body(worker, block)` for every `block in 0..<count`, handing blocks to
    /// `workers(for: count)` threads in order as they become free (`worker` indexes per-thread
    /// scratch). Results must not depend on which worker ran a block.
    public func forEachBlock(_ count: Int, _ body: (_ worker: Int, _ block: Int) -> Void) {
        let w = workers(for: count)
        if w == 1 {
            for b in 0..<count { body(0, b) }
            return
        }
        let next = BlockCounter()
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: w) { worker in
                while true {
                    let b = next.take()
                    if b >= count { break }
                    box.value(worker, b)
                }
            }
        }
    }

    /// Runs `body(i)` for `i in 0..<n` concurrently (one item per model, say).
    /// At most `threadCount` run at once.
    public func forEach(_ n: Int, _ body: (Int) -> Void) {
        forEachBlock(n) { _, i in body(i) }
    }
}

/// Hands a value to `concurrentPerform`'s `@Sendable` closure. Used only for loop bodies that
/// write disjoint ranges (or synchronise themselves); the loops above guarantee that.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Hands out consecutive block indices to worker threads.
final class BlockCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    func take() -> Int {
        lock.lock()
        defer { lock.unlock() }
        next += 1
        return next - 1
    }
}
