import Foundation

/// AdamW (Loshchilov & Hutter 2019), as PyTorch's `torch.optim.AdamW`:
///   p <- p - lr·wd·p                       (decoupled weight decay, matrices only)
///   m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2
///   p <- p - lr · (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
/// State (m, v) lives in buffers with the trainable parameters' layout. Weight decay applies to
/// rank-2 tensors only (not to norm weights and biases, as Hugging Face's Trainer does). With a
/// mask, entries where the mask is 0 are left untouched (no decay, no moment updates), so they
/// keep their exact values.
public final class AdamW: @unchecked Sendable {
    public struct Settings: Sendable, Equatable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var eps: Float = 1e-8
        public var weightDecay: Float = 0
        public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
            self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        }
    }

    public let settings: Settings
    public let layout: ParameterLayout
    let m: ParameterBuffer, v: ParameterBuffer
    public private(set) var stepCount = 0

    public init(layout: ParameterLayout, settings: Settings) {
        self.settings = settings
        self.layout = layout
        m = ParameterBuffer(layout: layout)
        v = ParameterBuffer(layout: layout)
    }

    /// One update of every tensor of `layout`: `parameter(name)` gives the tensor to update,
    /// `gradients` has the same layout; `mask` (same layout, 0/1) restricts the update.
    public func step(parameter: (String) -> UnsafeMutablePointer<Float>, gradients: ParameterBuffer, learningRate lr: Float, mask: ParameterBuffer? = nil) {
        precondition(gradients.layout == layout && (mask == nil || mask!.layout == layout), "AdamW: layouts differ")
        stepCount += 1
        let s = settings
        let c1 = 1 - pow(s.beta1, Float(stepCount)), c2 = 1 - pow(s.beta2, Float(stepCount))
        for e in layout.entries {
            let p = parameter(e.name), g = gradients.base + e.offset, mm = m.base + e.offset, vv = v.base + e.offset
            let mk = mask.map { $0.base + e.offset }
            let decay = e.shape.rank >= 2 ? 1 - lr * s.weightDecay : 1
            @inline(__always) func update(_ i: Int) {
                let gi = g[i]
                mm[i] = s.beta1 * mm[i] + (1 - s.beta1) * gi
                vv[i] = s.beta2 * vv[i] + (1 - s.beta2) * gi * gi
                p[i] = p[i] * decay - lr * (mm[i] / c1) / ((vv[i] / c2).squareRoot() + s.eps)
            }
            if let mk {
                for i in 0..<e.count where mk[i] != 0 { update(i) }
            } else {
                for i in 0..<e.count { update(i) }
            }
        }
    }
}

/// Learning-rate schedule: linear warm-up from 0 over `warmupSteps`, then constant, linear decay
/// or cosine decay to `minRatio` · peak at `totalSteps`. `rate(step:)` takes the 1-based step.
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case constant, linear, cosine }
    public var peak: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var kind: Kind
    public var minRatio: Double
    public init(peak: Double, warmupSteps: Int = 0, totalSteps: Int, kind: Kind = .cosine, minRatio: Double = 0) {
        self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps; self.kind = kind; self.minRatio = minRatio
    }

    public func rate(step: Int) -> Double {
        if step <= warmupSteps && warmupSteps > 0 { return peak * Double(step) / Double(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let t = min(1, max(0, Double(step - warmupSteps) / Double(span)))
        switch kind {
        case .constant: return peak
        case .linear: return peak * (minRatio + (1 - minRatio) * (1 - t))
        case .cosine: return peak * (minRatio + (1 - minRatio) * 0.5 * (1 + cos(Double.pi * t)))
        }
    }
}

extension ParameterBuffer {
    /// Euclidean norm over the whole buffer, in Float64.
    public func globalNorm() -> Double {
        var s = 0.0
        for i in 0..<layout.totalCount { let x = Double(base[i]); s += x * x }
        return s.squareRoot()
    }

    public func scale(by f: Float) { for i in 0..<layout.totalCount { base[i] *= f } }
    public func zero() { base.update(repeating: 0, count: max(layout.totalCount, 1)) }
    /// Multiplies element-wise by `other` (same layout).
    public func multiply(by other: ParameterBuffer) {
        precondition(other.layout == layout)
        for i in 0..<layout.totalCount { base[i] *= other.base[i] }
    }
}

extension ParameterLayout {
    /// The layout of a subset of these tensors (same names and shapes, packed offsets), in this
    /// layout's order. Unknown names are an error.
    public func subset(_ names: Set<String>) throws -> ParameterLayout {
        for n in names where self[n] == nil { throw ModelError.invalidInput("\(n) is not a parameter of this model") }
        var out = ParameterLayout()
        for e in entries where names.contains(e.name) { out.add(e.name, e.shape.dims) }
        return out
    }
}
