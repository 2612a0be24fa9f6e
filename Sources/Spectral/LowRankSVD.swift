import Tensors

/// The SVD of a LoRA update ΔW = s · B A without forming ΔW, O((m + n) r²).
///
/// B = Q_B R_B (m × r), Aᵀ = Q_A R_A (n × r), core M = R_B R_Aᵀ (r × r) = U_M Σ V_Mᵀ, so
/// ΔW = (Q_B U_M) (|s| Σ) (Q_A V_M)ᵀ. Returns thin factors u (m, r), s (r), vt (r, n), where
/// r = min(rank, m, n); a negative scale flips the sign of u. Singular values descending.
public func lowRankSVD(a: Tensor, b: Tensor, scale: Float) throws -> SVDResult {
    guard a.shape.rank == 2, b.shape.rank == 2, a.shape[0] == b.shape[1] else {
        throw TensorError.shapeMismatch(context: "lowRankSVD: A (r, n) and B (m, r)", expected: [b.shape.dims.last ?? 0, a.shape.dims.last ?? 0], actual: a.shape)
    }
    let qb = try qr(b)                       // q (m, kb), r (kb, r)
    let qa = try qr(a.transposed())          // q (n, ka), r (ka, r)
    let core = matmul(qb.r, qa.r, transposeB: true)   // (kb, ka)
    let c = try svd(core)                    // u (kb, k), s (k), vt (k, ka)
    var u = matmul(qb.q, c.u)                // (m, k)
    let vt = matmul(c.vt, qa.q, transposeB: true)     // (k, n)
    if scale < 0 { for i in u.scalars.indices { u.scalars[i] = -u.scalars[i] } }
    return SVDResult(u: u, s: c.s.map { $0 * abs(scale) }, vt: vt)
}
