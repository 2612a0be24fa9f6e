/// Keys (after RoPE) and values of past positions, per layer, for a batch of sequences that
/// advance together. Layout per layer: (B, capacity, kvDim).
public final class KVCache: @unchecked Sendable {
    public let batch: Int
    public let capacity: Int
    public let kvDim: Int
    public let layers: Int
    /// Positions already stored (the same for every sequence of the batch).
    public internal(set) var length = 0
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]

    public init(config: ModelConfig, batch: Int, capacity: Int) {
        self.batch = batch
        self.capacity = capacity
        kvDim = config.kvDim
        layers = config.layers
        let n = max(batch * capacity * config.kvDim, 1)
        keys = (0..<config.layers).map { _ in .allocate(capacity: n) }
        values = (0..<config.layers).map { _ in .allocate(capacity: n) }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Forgets the stored positions (the buffers are reused).
    public func reset() { length = 0 }

    func keys(layer: Int, sequence b: Int) -> UnsafeMutablePointer<Float> { keys[layer] + b * capacity * kvDim }
    func values(layer: Int, sequence b: Int) -> UnsafeMutablePointer<Float> { values[layer] + b * capacity * kvDim }
}
