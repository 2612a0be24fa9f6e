/// `nearswap`: take the other model where it is already close to the base (mergekit
/// `nearswap.py`; introduced with the QuartetAnemoi-70B-t0.0001 model card).
///
/// `w_j = clamp(t / max(|base_j − x_j|, 1e-6), 0, 1)`, `out_j = w_j x_j + (1 − w_j) base_j`:
/// positions that differ by at most `t` are swapped in completely, farther ones less and less.
public struct NearSwapMerge: MergeMethod {
    public init() {}
    public let name = "nearswap"
    public let reference = "mergekit nearswap (QuartetAnemoi-70B-t0.0001 model card, alchemonaut 2024)"
    public let summary = "interpolate toward the other model by t / |base − other|, clamped to [0, 1]"
    public let baseRole = BaseRole.required
    public let modelCount = 1...1
    public var parameters: [ParameterSpec] {
        [.number("t", .global, default: nil, "distance below which the other model's value is taken whole", range: .nonNegative)]
    }

    public func isElementwise(_ parameters: ResolvedParameters) -> Bool { true }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = inputs.base else { throw MergeError.baseRequired(method: name) }
        let t = try p.number("t")
        let b = base.baseAddress!, x = inputs.models[0].baseAddress!, o = out.baseAddress!
        inputs.loops.forEachChunk(inputs.count) { range in
            for j in range {
                let bj = Double(b[j]), xj = Double(x[j])
                let w = min(1, max(0, t / max(abs(bj - xj), 1e-6)))
                o[j] = Float(w * xj + (1 - w) * bj)
            }
        }
    }
}
