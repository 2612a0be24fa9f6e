import Foundation
import Tensors

/// Derivative-free minimisation of a recipe's numeric parameters in a box, for `search`.
///
/// One parameter: an even grid of `budget` points over [lo, hi] (exhaustive at that resolution,
/// and what users plot). Several: CMA-ES (Hansen 2016, "The CMA Evolution Strategy: A Tutorial",
/// default strategy parameters), chosen because the objective is noisy in its ranking, cheap to
/// have a population of, non-separable (weights and densities interact) and low-dimensional; it
/// is invariant to rescaling each parameter and is the optimiser mergekit-evolve uses. Points are
/// searched in the unit cube (each parameter scaled to [0, 1]) and clamped to it before they are
/// evaluated; the update uses the clamped points.
public enum ParameterSearch {
    public struct Dimension: Sendable, Equatable {
        public let name: String
        public let lo: Double
        public let hi: Double
        public init(name: String, lo: Double, hi: Double) { self.name = name; self.lo = lo; self.hi = hi }
    }

    public struct Trial: Sendable {
        public let index: Int
        public let values: [Double]
        public let objective: Double
    }

    /// Minimises `objective` over the box with at most `budget` evaluations; returns every trial
    /// in order. `start` (in parameter units, clamped to the box) is the first point of CMA-ES.
    public static func minimise(_ dims: [Dimension], budget: Int, seed: UInt64 = 0, start: [Double]? = nil,
                                objective: ([Double]) throws -> Double) throws -> [Trial] {
        guard !dims.isEmpty, budget >= 1 else { return [] }
        var trials: [Trial] = []
        func eval(_ unit: [Double]) throws -> Double {
            let v = zip(unit, dims).map { u, d in d.lo + min(1, max(0, u)) * (d.hi - d.lo) }
            let f = try objective(v)
            trials.append(Trial(index: trials.count, values: v, objective: f.isNaN ? .infinity : f))
            return f.isNaN ? .infinity : f
        }
        if dims.count == 1 {
            for k in 0..<budget { _ = try eval([budget == 1 ? 0.5 : Double(k) / Double(budget - 1)]) }
            return trials
        }
        let n = dims.count
        let lambda = 4 + Int(3 * Foundation.log(Double(n)))
        let mu = lambda / 2
        var w = (0..<mu).map { Foundation.log(Double(mu) + 0.5) - Foundation.log(Double($0 + 1)) }
        let ws = w.reduce(0, +)
        w = w.map { $0 / ws }
        let mueff = 1 / w.reduce(0) { $0 + $1 * $1 }
        let N = Double(n)
        let cs = (mueff + 2) / (N + mueff + 5)
        let ds = 1 + 2 * max(0, Foundation.sqrt((mueff - 1) / (N + 1)) - 1) + cs
        let cc = (4 + mueff / N) / (N + 4 + 2 * mueff / N)
        let c1 = 2 / ((N + 1.3) * (N + 1.3) + mueff)
        let cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((N + 2) * (N + 2) + mueff))
        let chiN = Foundation.sqrt(N) * (1 - 1 / (4 * N) + 1 / (21 * N * N))
        var rng = SeededRandom(seed: seed)
        var m = start.map { s in zip(s, dims).map { v, d in d.hi > d.lo ? min(1, max(0, (v - d.lo) / (d.hi - d.lo))) : 0.5 } }
            ?? [Double](repeating: 0.5, count: n)
        var sigma = 0.3
        var C = (0..<n * n).map { $0 / n == $0 % n ? 1.0 : 0 }
        var pc = [Double](repeating: 0, count: n), ps = pc
        var B = C, D = [Double](repeating: 1, count: n)
        var generation = 0
        while trials.count < budget {
            // Sample λ points x = m + σ B D z (B's columns are eigenvectors of C).
            var pop: [(x: [Double], f: Double)] = []
            for _ in 0..<lambda where trials.count < budget {
                let z = rng.normalDoubles(n)
                var x = m
                for i in 0..<n { for j in 0..<n { x[i] += sigma * B[i * n + j] * D[j] * z[j] } }
                x = x.map { min(1, max(0, $0)) }
                pop.append((x, try eval(x)))
            }
            guard pop.count == lambda else { break }  // the budget ended inside a generation
            pop.sort { $0.f < $1.f }
            let old = m
            m = (0..<n).map { i in (0..<mu).reduce(0) { $0 + w[$1] * pop[$1].x[i] } }
            let y = (0..<n).map { (m[$0] - old[$0]) / sigma }
            // C^(-1/2) y = B D^(-1) Bᵀ y
            var bty = [Double](repeating: 0, count: n)
            for j in 0..<n { for i in 0..<n { bty[j] += B[i * n + j] * y[i] } }
            var cinv = [Double](repeating: 0, count: n)
            for i in 0..<n { for j in 0..<n { cinv[i] += B[i * n + j] * bty[j] / D[j] } }
            ps = (0..<n).map { (1 - cs) * ps[$0] + Foundation.sqrt(cs * (2 - cs) * mueff) * cinv[$0] }
            let psNorm = Foundation.sqrt(ps.reduce(0) { $0 + $1 * $1 })
            generation += 1
            let hs = psNorm / Foundation.sqrt(1 - Foundation.pow(1 - cs, 2 * Double(generation))) / chiN < 1.4 + 2 / (N + 1) ? 1.0 : 0
            pc = (0..<n).map { (1 - cc) * pc[$0] + hs * Foundation.sqrt(cc * (2 - cc) * mueff) * y[$0] }
            for i in 0..<n {
                for j in 0..<n {
                    var rankMu = 0.0
                    for k in 0..<mu { rankMu += w[k] * (pop[k].x[i] - old[i]) * (pop[k].x[j] - old[j]) / (sigma * sigma) }
                    C[i * n + j] = (1 - c1 - cmu) * C[i * n + j] + c1 * (pc[i] * pc[j] + (1 - hs) * cc * (2 - cc) * C[i * n + j]) + cmu * rankMu
                }
            }
            sigma *= Foundation.exp((cs / ds) * (psNorm / chiN - 1))
            sigma = min(sigma, 1)
            // Symmetrise and decompose C = B diag(D²) Bᵀ.
            for i in 0..<n { for j in 0..<i { let a = (C[i * n + j] + C[j * n + i]) / 2; C[i * n + j] = a; C[j * n + i] = a } }
            let e = try symmetricEigen64(C, n: n)
            for k in 0..<n {
                D[k] = Foundation.sqrt(max(e.values[k], 1e-20))
                for i in 0..<n { B[i * n + k] = e.vectors[k * n + i] }
            }
            if sigma * (D.max() ?? 1) < 1e-6 { break }  // converged: further points would repeat
        }
        return trials
    }
}
