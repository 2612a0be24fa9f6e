import Foundation
import Tensors

/// MEND's editor for one weight shape (Mitchell et al. 2022, §3): running normalisation of the rank-one
/// gradient factors u (d_in) and delta (d_out), then an IDMLP of two low-rank residual blocks on
/// z = concat(û, δ̂) ∈ R^D, D = d_in + d_out, shared by `modes` edited matrices of that shape.
///
/// Block j (j = 0, 1): a = U_j (V_j z) + b_j;  a' = a ⊙ s_j[m] + o_j[m];  z ← z + clamp(a', min: 0).
/// Shapes: U_j (D, r), V_j (r, D), b_j (D), s_j and o_j (modes, D). Identity init: U = 0,
/// V ~ N(0, 1), b = 0, s = 1, o = 0, so the editor starts as the identity (z₂ = z₀ exactly).
/// Normalisation: û = (u − μ_u)/(σ_u + 1e-7) with Welford running statistics over every kept
/// row seen in training mode (updated before use, Chan's batched update), σ unbiased.
public final class GradientTransform {
    public let inFeatures: Int
    public let outFeatures: Int
    public let rank: Int
    public let modes: Int
    public var D: Int { inFeatures + outFeatures }
    /// Parameters, per block: U, V, b, s, o (row-major as documented above).
    public var U: [[Float]], V: [[Float]], b: [[Float]], s: [[Float]], o: [[Float]]
    /// Running statistics over concat(u, delta) rows: count, mean, sum of squared deviations.
    public var count = 0.0
    public var mean: [Double]
    public var m2: [Double]

    public init(inFeatures: Int, outFeatures: Int, rank: Int = 1920, modes: Int, seed: UInt64 = 0) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.modes = modes
        let D = inFeatures + outFeatures
        self.rank = min(rank, D)
        var rng = SeededRandom(seed: seed)
        U = [[Float]](repeating: [Float](repeating: 0, count: D * min(rank, D)), count: 2)
        V = (0..<2).map { _ in rng.normalFloats(min(rank, D) * D) }
        b = [[Float]](repeating: [Float](repeating: 0, count: D), count: 2)
        s = [[Float]](repeating: [Float](repeating: 1, count: modes * D), count: 2)
        o = [[Float]](repeating: [Float](repeating: 0, count: modes * D), count: 2)
        mean = [Double](repeating: 0, count: D)
        m2 = [Double](repeating: 0, count: D)
    }

    /// Rows where both u and delta have a non-zero entry (MEND drops the others).
    public static func keptRows(u: [Float], delta: [Float], rows: Int, inFeatures I: Int, outFeatures O: Int) -> [Int] {
        (0..<rows).filter { r in
            (0..<I).contains { u[r * I + $0] != 0 } && (0..<O).contains { delta[r * O + $0] != 0 }
        }
    }

    /// Adds rows (N, D) to the running statistics (Chan's parallel update of Welford's).
    public func updateStatistics(_ z: [Float], rows n: Int) {
        guard n > 0 else { return }
        let D = self.D
        for j in 0..<D {
            var mb = 0.0
            for r in 0..<n { mb += Double(z[r * D + j]) }
            mb /= Double(n)
            var sb = 0.0
            for r in 0..<n { let d = Double(z[r * D + j]) - mb; sb += d * d }
            if count == 0 { mean[j] = mb; m2[j] = sb; continue }
            let delta = mb - mean[j], k2 = count + Double(n)
            mean[j] += delta * Double(n) / k2
            m2[j] += sb + delta * delta * count * Double(n) / k2
        }
        count += Double(n)
    }

    /// z₀ = normalised rows; throws before the statistics have two rows.
    public func normalise(_ z: [Float], rows n: Int) throws -> [Float] {
        guard count >= 2 else { throw EditError.numerical("the editor's normalisation has seen \(Int(count)) rows, needs at least 2") }
        let D = self.D
        var out = z
        for j in 0..<D {
            let sd = (m2[j] / (count - 1)).squareRoot()
            let mu = Float(mean[j]), inv = Float(1 / (sd + 1e-7))
            for r in 0..<n { out[r * D + j] = (z[r * D + j] - mu) * inv }
        }
        return out
    }

    /// What the backward needs from one forward: inputs of each block, H = Z Vᵀ, pre-scale A.
    public struct Tape {
        public var z: [[Float]]      // z₀, z₁, z₂ (N, D)
        public var h: [[Float]]      // per block (N, r)
        public var a: [[Float]]      // per block, before scale/offset (N, D)
        public var rows: Int
        public var mode: Int
    }

    /// The IDMLP on normalised rows z₀ (N, D) of matrix `mode`; returns the tape (output z₂).
    public func forward(_ z0: [Float], rows n: Int, mode m: Int) -> Tape {
        let D = self.D, r = rank
        var zs = [z0], hs: [[Float]] = [], as_: [[Float]] = []
        for j in 0..<2 {
            let z = zs[j]
            var h = [Float](repeating: 0, count: n * r)
            sgemm(transposeA: false, transposeB: true, m: n, n: r, k: D, alpha: 1, a: z, lda: D, b: V[j], ldb: D, beta: 0, c: &h, ldc: r)
            var a = [Float](repeating: 0, count: n * D)
            for row in 0..<n { for c in 0..<D { a[row * D + c] = b[j][c] } }
            sgemm(transposeA: false, transposeB: true, m: n, n: D, k: r, alpha: 1, a: h, lda: r, b: U[j], ldb: r, beta: 1, c: &a, ldc: D)
            var next = z
            for row in 0..<n { for c in 0..<D {
                let ap = a[row * D + c] * s[j][m * D + c] + o[j][m * D + c]
                if ap > 0 { next[row * D + c] += ap }
            } }
            hs.append(h); as_.append(a); zs.append(next)
        }
        return Tape(z: zs, h: hs, a: as_, rows: n, mode: m)
    }

    /// Gradients of the parameters, laid out like them.
    public struct Gradients {
        public var U: [[Float]], V: [[Float]], b: [[Float]], s: [[Float]], o: [[Float]]
        init(_ t: GradientTransform) {
            U = t.U.map { [Float](repeating: 0, count: $0.count) }; V = t.V.map { [Float](repeating: 0, count: $0.count) }
            b = t.b.map { [Float](repeating: 0, count: $0.count) }; s = t.s.map { [Float](repeating: 0, count: $0.count) }
            o = t.o.map { [Float](repeating: 0, count: $0.count) }
        }
    }

    public func zeroGradients() -> Gradients { Gradients(self) }

    /// Backward of `forward` (the backward of the editor MLP of Mitchell et al. 2022, §3): `dz2` = ∂L/∂z₂ (N, D); accumulates into `grads`.
    /// The ReLU mask is a′ ≥ 0 (clamp semantics: gradient 1 at 0, so U = 0 at init still trains).
    public func backward(_ tape: Tape, dz2: [Float], into grads: inout Gradients) {
        let D = self.D, r = rank, n = tape.rows, m = tape.mode
        var g = dz2
        for j in stride(from: 1, through: 0, by: -1) {
            let a = tape.a[j]
            var ga = [Float](repeating: 0, count: n * D)
            for row in 0..<n { for c in 0..<D {
                let i = row * D + c
                let ap = a[i] * s[j][m * D + c] + o[j][m * D + c]
                guard ap >= 0 else { continue }
                let gp = g[i]
                grads.o[j][m * D + c] += gp
                grads.s[j][m * D + c] += gp * a[i]
                ga[i] = gp * s[j][m * D + c]
                grads.b[j][c] += ga[i]
            } }
            // ∂U (D, r) += Gaᵀ H;  Gh (N, r) = Ga U;  ∂V (r, D) += Ghᵀ Z;  g += Gh V.
            sgemm(transposeA: true, transposeB: false, m: D, n: r, k: n, alpha: 1, a: ga, lda: D, b: tape.h[j], ldb: r, beta: 1, c: &grads.U[j], ldc: r)
            var gh = [Float](repeating: 0, count: n * r)
            sgemm(transposeA: false, transposeB: false, m: n, n: r, k: D, alpha: 1, a: ga, lda: D, b: U[j], ldb: r, beta: 0, c: &gh, ldc: r)
            sgemm(transposeA: true, transposeB: false, m: r, n: D, k: n, alpha: 1, a: gh, lda: r, b: tape.z[j], ldb: D, beta: 1, c: &grads.V[j], ldc: D)
            sgemm(transposeA: false, transposeB: false, m: n, n: D, k: r, alpha: 1, a: gh, lda: r, b: V[j], ldb: D, beta: 1, c: &g, ldc: D)
        }
    }
}
