import Foundation

// Randomized truncated SVD (Halko, Martinsson, Tropp 2011, Algorithms 4.4 + 5.1) with an
// a-posteriori accuracy check on every returned singular triplet.
//
//   Ω ~ N(0,1)^(n x l), l = rank + oversampling
//   Q = orth(A Ω); repeat q times: Q = orth(A orth(Aᵀ Q))     (subspace iteration, re-orthonormalised)
//   B = Qᵀ A (l x n) = Ub Σ Vt;  U = Q Ub; keep the first `rank` triplets.
//
// Check: for each kept triplet the residual r_j = ‖A v_j − σ_j u_j‖₂ = ‖(I − QQᵀ) A v_j‖₂
// (Aᵀ u_j = σ_j v_j holds to rounding by construction, because u_j = Q ub_j and B = QᵀA). By Wedin's theorem the
// angle between u_j and the exact singular vector is at most r_j / gap_j, where gap_j is the
// distance from σ_j to the rest of the spectrum; the singular value itself is within r_j.
// `maxRelativeResidual` = max_j r_j / σ_1 is what callers compare against their tolerance.

public struct RandomizedSVDResult: Sendable {
    /// Thin factors: u (m, rank), s (rank), vt (rank, n).
    public var svd: SVDResult
    /// max_j ‖A v_j − σ_j u_j‖ / σ_1 over the returned triplets (0 for a zero matrix).
    public var maxRelativeResidual: Float
    /// The residual of each triplet, relative to σ_1.
    public var relativeResiduals: [Float]
}

/// Top-`rank` SVD of a (m, n) tensor by randomized subspace iteration.
/// - Parameters: oversampling p (default 10), powerIterations q (default 4), seed for Ω.
/// - Returns: at most min(m, n, rank) triplets plus their residuals (see file comment).
public func randomizedSVD(
    _ a: Tensor, rank: Int, oversampling: Int = 10, powerIterations: Int = 4, seed: UInt64 = 0
) throws -> RandomizedSVDResult {
    guard a.shape.rank == 2 else { throw TensorError.shapeMismatch(context: "randomizedSVD needs a matrix", expected: [a.count, 1], actual: a.shape) }
    guard rank >= 0, oversampling >= 0, powerIterations >= 0 else { throw TensorError.invalidArgument("randomizedSVD: negative rank/oversampling/powerIterations") }
    let (m, n) = (a.shape[0], a.shape[1])
    let k = min(rank, m, n)
    let l = min(k + oversampling, m, n)
    if k == 0 {
        return RandomizedSVDResult(svd: SVDResult(u: Tensor(zeros: [m, 0]), s: [], vt: Tensor(zeros: [0, n])), maxRelativeResidual: 0, relativeResiduals: [])
    }
    var rng = SeededRandom(seed: seed)
    let omega = rng.normalTensor(rows: n, cols: l)
    var q = try qr(matmul(a, omega)).q                            // (m, l)
    for _ in 0..<powerIterations {
        let z = try qr(matmul(a, q, transposeA: true)).q          // (n, l)
        q = try qr(matmul(a, z)).q                                // (m, l)
    }
    let b = matmul(q, a, transposeA: true)                        // (l, n)
    let small = try svd(b)                                        // ub (l, l'), vt (l', n)
    var u = matmul(q, small.u)                                    // (m, l')
    var vt = small.vt
    var s = small.s
    // Keep the first k triplets.
    if s.count > k {
        let lp = s.count
        var uk = [Float](repeating: 0, count: m * k)
        for i in 0..<m { for j in 0..<k { uk[i * k + j] = u.scalars[i * lp + j] } }
        u = Tensor(shape: [m, k], scalars: uk)
        vt = Tensor(shape: [k, n], scalars: Array(vt.scalars[0..<(k * n)]))
        s = Array(s[0..<k])
    }
    // A-posteriori residuals r_j = ‖A v_j − σ_j u_j‖.
    let av = matmul(a, vt, transposeB: true)                      // (m, k)
    var res = [Float](repeating: 0, count: k)
    let sigma1 = Double(s.first ?? 0)
    for j in 0..<k {
        var acc = 0.0
        for i in 0..<m {
            let d = Double(av.scalars[i * k + j]) - Double(s[j]) * Double(u.scalars[i * k + j])
            acc += d * d
        }
        res[j] = sigma1 > 0 ? Float(acc.squareRoot() / sigma1) : 0
    }
    return RandomizedSVDResult(svd: SVDResult(u: u, s: s, vt: vt), maxRelativeResidual: res.max() ?? 0, relativeResiduals: res)
}
