import Checkpoints
import Foundation
import Tensors
import Transformer

/// A binary graft mask γ over the eligible tensors of a `GraftPair`: the kept entries of each
/// tensor, as ascending row-major linear indices. The grafted model is
/// `θ(γ) = θ_base + γ ⊙ τ` (Panigrahi et al. 2023, §3), built here by copying the fine-tune's
/// value at each kept entry, so it equals the fine-tune there bit for bit and the base elsewhere.
public struct GraftMask: Sendable, Equatable {
    public struct Part: Sendable, Equatable {
        public let name: String
        public let dims: [Int]
        /// Ascending row-major linear indices into the tensor.
        public var indices: [Int]
        public init(name: String, dims: [Int], indices: [Int]) { self.name = name; self.dims = dims; self.indices = indices }
        public var density: Double {
            let n = dims.reduce(1, *)
            return n == 0 ? 0 : Double(indices.count) / Double(n)
        }
    }

    /// One part per eligible tensor, in the pair's order (parts may be empty).
    public var parts: [Part]

    public init(parts: [Part]) { self.parts = parts }

    /// The empty mask of `pair` (the base).
    public init(empty pair: GraftPair) { parts = pair.tensors.map { Part(name: $0.name, dims: $0.dims, indices: []) } }

    /// Every eligible entry of `pair` (the fine-tune on the eligible tensors).
    public init(full pair: GraftPair) { parts = pair.tensors.map { Part(name: $0.name, dims: $0.dims, indices: Array(0..<$0.count)) } }

    /// The mask of a saved sparse delta (a graft's `graft.safetensors`, an LT-SFT delta): the
    /// entries it lists, whatever their values. Every tensor it lists must be an eligible tensor of
    /// `pair` with the same shape.
    public init(pair: GraftPair, delta: SparseDeltaFile, path: String) throws {
        var parts = pair.tensors.map { Part(name: $0.name, dims: $0.dims, indices: []) }
        for name in delta.tensorNames {
            guard let j = pair.tensors.firstIndex(where: { $0.name == name }) else {
                throw GraftError.deltaMismatch(path: path, tensor: name, reason: "not an eligible tensor under \(pair.eligibility.description) (--include to change)")
            }
            guard delta.shapes[name]!.dims == pair.tensors[j].dims else {
                throw GraftError.deltaMismatch(path: path, tensor: name, reason: "shape \(delta.shapes[name]!.dims) in the mask, \(pair.tensors[j].dims) in the models")
            }
            parts[j].indices = try delta.sparse(name).indices.map { Int($0) }
        }
        self.init(parts: parts)
    }

    /// Number of kept entries.
    public var count: Int { parts.reduce(0) { $0 + $1.indices.count } }

    /// Σ τ² over the kept entries.
    public func energy(_ pair: GraftPair) -> Double {
        var s = 0.0
        for (p, t) in zip(parts, pair.tensors) {
            let b = pair.base.base + t.baseOffset, f = pair.tuned.base + t.tunedOffset
            for i in p.indices { let d = Double(f[i] - b[i]); s += d * d }
        }
        return s
    }

    /// Kept entries whose τ is exactly 0 (they change nothing).
    public func zeroDifferences(_ pair: GraftPair) -> Int {
        var z = 0
        for (p, t) in zip(parts, pair.tensors) {
            let b = pair.base.base + t.baseOffset, f = pair.tuned.base + t.tunedOffset
            for i in p.indices where f[i] == b[i] { z += 1 }
        }
        return z
    }

    /// Writes the fine-tune's values at the kept entries into `buffer` (the base's layout, e.g.
    /// the base model itself), runs `body`, and restores the previous values, even when `body`
    /// throws. With the base buffer this evaluates the grafted model without a third copy.
    public func withApplied<T>(to buffer: ParameterBuffer, pair: GraftPair, _ body: () throws -> T) rethrows -> T {
        precondition(buffer.layout == pair.base.layout, "the buffer must have the base's layout")
        var saved: [Float] = []
        saved.reserveCapacity(count)
        for (p, t) in zip(parts, pair.tensors) {
            let dst = buffer.base + t.baseOffset, f = pair.tuned.base + t.tunedOffset
            for i in p.indices { saved.append(dst[i]); dst[i] = f[i] }
        }
        defer {
            var j = 0
            for (p, t) in zip(parts, pair.tensors) {
                let dst = buffer.base + t.baseOffset
                for i in p.indices { dst[i] = saved[j]; j += 1 }
            }
        }
        return try body()
    }

    /// Sets `buffer` (the base's layout) to the grafted model: the base everywhere, the
    /// fine-tune at the kept entries.
    public func materialize(into buffer: ParameterBuffer, pair: GraftPair) {
        precondition(buffer.layout == pair.base.layout, "the buffer must have the base's layout")
        buffer.base.update(from: pair.base.base, count: pair.base.layout.totalCount)
        for (p, t) in zip(parts, pair.tensors) {
            let dst = buffer.base + t.baseOffset, f = pair.tuned.base + t.tunedOffset
            for i in p.indices { dst[i] = f[i] }
        }
    }

    /// The mask as a sparse delta: per tensor with at least one kept entry, the indices and
    /// τ = tuned − base (Float32) there. Tensors without kept entries are left out, so the file
    /// size is proportional to `count`. Adding it to the base gives the fine-tune at the kept
    /// entries up to one Float32 rounding (the grafted HF folder holds the exact values).
    public func sparseDelta(_ pair: GraftPair) -> [SparseDeltaTensor] {
        var out: [SparseDeltaTensor] = []
        for (p, t) in zip(parts, pair.tensors) where !p.indices.isEmpty {
            let b = pair.base.base + t.baseOffset, f = pair.tuned.base + t.tunedOffset
            out.append(SparseDeltaTensor(name: p.name, shape: Shape(p.dims), dtype: .f32,
                                         indices: p.indices.map { Int64($0) }, values: p.indices.map { f[$0] - b[$0] }))
        }
        return out
    }

    /// Writes `sparseDelta(pair)` to `url` (atomically) with `metadata` added to `__metadata__`.
    public func writeSparseDelta(_ pair: GraftPair, to url: URL, metadata: [String: String], allowNonFinite: Bool = false) throws {
        try SparseDeltaWriter.write(sparseDelta(pair), to: url, extraMetadata: metadata, allowNonFinite: allowNonFinite)
    }
}
