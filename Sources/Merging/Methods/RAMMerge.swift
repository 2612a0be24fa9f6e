/// `ram` and `ramplus_tl`: Reinforced Agent Merging (arXiv:2601.13572; mergekit `ram.py`).
///
/// With task vectors `τ_i = x_i − base`, a model touches position j when `|τ_ij| > ε`; `c_j` counts
/// the models that touch it. Positions touched by one model take its change as is, positions
/// touched by several take the mean of the changes that touch them, untouched positions keep
/// the base: `out_j = base_j + Σ_i [|τ_ij| > ε] τ_ij · (c_j = 1 ? λ_i : 1/c_j)`.
/// `ram`: λ_i = 1. `ramplus_tl` (RAM+, tensor-local as in mergekit): per model and tensor,
/// `ρ_i = #shared_i / max(#unique_i, ε)` (positions model i touches with others / alone) and
/// `λ_i = 1 + r · clamp(ρ_i, 0, α)`, compensating the dilution of averaged positions.
/// Float64 per element; counts are exact integers, so the result does not depend on threads.
public struct RAMMerge: MergeMethod {
    public let plus: Bool
    public init(plus: Bool) { self.plus = plus }
    public var name: String { plus ? "ramplus_tl" : "ram" }
    public let reference = "Reinforced Agent Merging, arXiv:2601.13572 (RAM and RAM+; tensor-local RAM+ as in mergekit)"
    public var summary: String {
        plus ? "RAM with unique changes scaled up by 1 + r·clamp(shared/unique, 0, alpha) per tensor"
            : "changes made by one model kept, changes made by several averaged, untouched positions from the base"
    }
    public let baseRole = BaseRole.required
    public let modelCount = 1...Int.max
    public var parameters: [ParameterSpec] {
        var specs: [ParameterSpec] = [.number("epsilon", .global, default: 1e-5, "a change counts when its magnitude exceeds this",
                                              range: .nonNegative)]
        if plus {
            specs += [.number("r", .global, default: 0.1, "rescaling strength of unique changes", range: .nonNegative),
                      .number("alpha", .global, default: 0.2, "upper clamp of the shared/unique ratio", range: .nonNegative)]
        }
        return specs
    }

    public func isElementwise(_ parameters: ResolvedParameters) -> Bool { !plus }

    public func merge(_ inputs: MergeInputs, _ p: ResolvedParameters, seed: UInt64, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = inputs.base else { throw MergeError.baseRequired(method: name) }
        let eps = try p.number("epsilon")
        let n = inputs.count, m = inputs.models.count
        let b = base.baseAddress!, o = out.baseAddress!
        let xs = inputs.models.map { $0.baseAddress! }
        var lambda = [Double](repeating: 1, count: m)
        if plus {
            let r = try p.number("r"), alpha = try p.number("alpha")
            // counts[2i]: positions model i shares with another; counts[2i+1]: positions it alone touches.
            let counts = inputs.loops.sums(n, 2 * m) { range, acc in
                for j in range {
                    var c = 0
                    for i in 0..<m where abs(Double(xs[i][j]) - Double(b[j])) > eps { c += 1 }
                    guard c > 0 else { continue }
                    for i in 0..<m where abs(Double(xs[i][j]) - Double(b[j])) > eps { acc[2 * i + (c > 1 ? 0 : 1)] += 1 }
                }
            }
            for i in 0..<m {
                let rho = counts[2 * i] / max(counts[2 * i + 1], eps)
                lambda[i] = 1 + r * min(alpha, max(0, rho))
            }
        }
        inputs.loops.forEachChunk(n, workPerItem: 2 * m) { range in
            for j in range {
                let bj = Double(b[j])
                var c = 0
                for i in 0..<m where abs(Double(xs[i][j]) - bj) > eps { c += 1 }
                var acc = 0.0
                if c == 1 {
                    for i in 0..<m { let d = Double(xs[i][j]) - bj; if abs(d) > eps { acc += lambda[i] * d } }
                } else if c > 1 {
                    for i in 0..<m { let d = Double(xs[i][j]) - bj; if abs(d) > eps { acc += d } }
                    acc /= Double(c)
                }
                o[j] = Float(bj + acc)
            }
        }
    }
}
