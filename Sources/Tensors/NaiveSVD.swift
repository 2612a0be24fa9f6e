// One-sided Jacobi SVD (Hestenes), in Float64: the slow, obviously-correct reference that the
// LAPACK wrappers are tested against. O(sweeps * n^2 * m); use on small matrices only.

/// Thin SVD of a row-major (m, n) Float64 buffer by one-sided Jacobi rotations.
/// Returns u (m, k), s (k, descending), vt (k, n) with k = min(m, n), row-major.
/// Columns of u belonging to zero singular values are left zero (not completed to a basis).
public func naiveSVD64(_ a: [Double], rows m: Int, cols n: Int) -> (u: [Double], s: [Double], vt: [Double]) {
    precondition(a.count == m * n)
    if m < n {
        // Work on Aᵀ = V S Uᵀ and swap the roles.
        var at = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { at[j * m + i] = a[i * n + j] } }
        let r = naiveSVD64(at, rows: n, cols: m)   // at (n, m): u (n, m), vt (m, m)
        let k = m
        // A = (r.vt)ᵀ S (r.u)ᵀ: U_A = r.vtᵀ (m, k), Vt_A = r.uᵀ (k, n).
        var u = [Double](repeating: 0, count: m * k), vt = [Double](repeating: 0, count: k * n)
        for i in 0..<k { for j in 0..<m { u[j * k + i] = r.vt[i * m + j] } }
        for i in 0..<n { for j in 0..<k { vt[j * n + i] = r.u[i * k + j] } }
        return (u, r.s, vt)
    }
    // m >= n: orthogonalise the n columns of W = A V by plane rotations, accumulating V.
    var w = a
    var v = [Double](repeating: 0, count: n * n)
    for i in 0..<n { v[i * n + i] = 1 }
    for _ in 0..<60 {
        var rotated = false
        for p in 0..<n {
            for q in (p + 1)..<max(n, p + 1) {
                var alpha = 0.0, beta = 0.0, gamma = 0.0
                for i in 0..<m {
                    let x = w[i * n + p], y = w[i * n + q]
                    alpha += x * x; beta += y * y; gamma += x * y
                }
                if gamma == 0 || abs(gamma) <= 1e-15 * (alpha * beta).squareRoot() { continue }
                rotated = true
                let zeta = (beta - alpha) / (2 * gamma)
                let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                let c = 1 / (1 + t * t).squareRoot(), s = c * t
                for i in 0..<m {
                    let x = w[i * n + p], y = w[i * n + q]
                    w[i * n + p] = c * x - s * y
                    w[i * n + q] = s * x + c * y
                }
                for i in 0..<n {
                    let x = v[i * n + p], y = v[i * n + q]
                    v[i * n + p] = c * x - s * y
                    v[i * n + q] = s * x + c * y
                }
            }
        }
        if !rotated { break }
    }
    var norms = [Double](repeating: 0, count: n)
    for j in 0..<n { var s = 0.0; for i in 0..<m { s += w[i * n + j] * w[i * n + j] }; norms[j] = s.squareRoot() }
    let order = (0..<n).sorted { norms[$0] > norms[$1] }
    var u = [Double](repeating: 0, count: m * n), vt = [Double](repeating: 0, count: n * n), s = [Double](repeating: 0, count: n)
    for (dst, src) in order.enumerated() {
        s[dst] = norms[src]
        for i in 0..<m { u[i * n + dst] = norms[src] > 0 ? w[i * n + src] / norms[src] : 0 }
        for i in 0..<n { vt[dst * n + i] = v[i * n + src] }
    }
    return (u, s, vt)
}

/// Float32 convenience over `naiveSVD64`.
public func naiveSVD(_ a: Tensor) -> SVDResult {
    let (m, n) = (a.shape[0], a.shape[1])
    let r = naiveSVD64(a.scalars.map(Double.init), rows: m, cols: n)
    let k = min(m, n)
    return SVDResult(u: Tensor(shape: [m, k], scalars: r.u.map(Float.init)), s: r.s.map(Float.init),
                     vt: Tensor(shape: [k, n], scalars: r.vt.map(Float.init)))
}
