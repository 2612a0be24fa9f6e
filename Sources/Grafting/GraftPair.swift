import Foundation
import Transformer

/// A base model and its fine-tune, checked to have the same tensors and shapes, with the
/// eligible tensors resolved. `τ = tuned − base` is computed on the fly in Float32 from the two
/// buffers, never stored.
public struct GraftPair: @unchecked Sendable {
    /// One eligible tensor: its name, shape and offsets in the two buffers.
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let dims: [Int]
        public let count: Int
        public let baseOffset: Int
        public let tunedOffset: Int
    }

    public let base: ParameterBuffer
    public let tuned: ParameterBuffer
    public let basePath: String
    public let tunedPath: String
    public let eligibility: GraftEligibility
    /// Eligible tensors in the base's layout order (checkpoint order); ties are broken in this order.
    public let tensors: [Entry]
    /// Number of eligible scalars (N in k = round(sparsity × N)).
    public let eligibleCount: Int

    /// Fails on a tensor missing from either model, a shape mismatch, no eligible tensor, or a
    /// NaN/infinity in an eligible tensor of either model or in their difference.
    public init(base: ParameterBuffer, tuned: ParameterBuffer, basePath: String, tunedPath: String,
                eligibility: GraftEligibility) throws {
        for e in base.layout.entries {
            guard let t = tuned.layout[e.name] else { throw GraftError.missingTensor(path: tunedPath, tensor: e.name) }
            guard t.shape == e.shape else {
                throw GraftError.shapeMismatch(tensor: e.name, basePath: basePath, baseShape: e.shape.dims, tunedPath: tunedPath, tunedShape: t.shape.dims)
            }
        }
        for e in tuned.layout.entries where base.layout[e.name] == nil {
            throw GraftError.missingTensor(path: basePath, tensor: e.name)
        }
        var tensors: [Entry] = []
        var n = 0
        for e in base.layout.entries where eligibility.isEligible(e.name) {
            let t = tuned.layout[e.name]!
            let b = base.base + e.offset, f = tuned.base + t.offset
            for i in 0..<e.count {
                guard b[i].isFinite else { throw GraftError.nonFinite(path: basePath, tensor: e.name, index: i) }
                guard f[i].isFinite, (f[i] - b[i]).isFinite else { throw GraftError.nonFinite(path: tunedPath, tensor: e.name, index: i) }
            }
            tensors.append(Entry(name: e.name, dims: e.shape.dims, count: e.count, baseOffset: e.offset, tunedOffset: t.offset))
            n += e.count
        }
        guard !tensors.isEmpty else { throw GraftError.noEligibleTensors(rule: eligibility.description) }
        self.base = base
        self.tuned = tuned
        self.basePath = basePath
        self.tunedPath = tunedPath
        self.eligibility = eligibility
        self.tensors = tensors
        self.eligibleCount = n
    }

    /// The two models' parameter buffers (they must be the same architecture).
    public init(base: TransformerModel, tuned: TransformerModel, basePath: String, tunedPath: String,
                eligibility: GraftEligibility) throws {
        try self.init(base: base.parameters, tuned: tuned.parameters, basePath: basePath, tunedPath: tunedPath, eligibility: eligibility)
    }

    /// `k = round(sparsity × eligibleCount)` (halves away from zero); sparsity must be in (0, 1].
    public func keptCount(sparsity: Double) throws -> Int {
        guard sparsity > 0, sparsity <= 1, sparsity.isFinite else { throw GraftError.invalidSparsity(value: sparsity) }
        let k = Int((sparsity * Double(eligibleCount)).rounded())
        guard k > 0 else { throw GraftError.emptyGraft(sparsity: sparsity, eligible: eligibleCount) }
        return min(k, eligibleCount)
    }

    /// Σ τ² over the eligible tensors, in Float64.
    public func totalEnergy() -> Double {
        var s = 0.0
        for t in tensors {
            let b = base.base + t.baseOffset, f = tuned.base + t.tunedOffset
            for i in 0..<t.count { let d = Double(f[i] - b[i]); s += d * d }
        }
        return s
    }
}
