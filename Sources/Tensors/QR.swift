// Thin QR factorisation without transposes.
//
// A row-major (m, n) buffer is the column-major (n, m) matrix X = Aᵀ. The LQ factorisation of X
// (`?gelqf` + `?orglq`) gives X = L Q, hence A = Qᵀ Lᵀ: Qᵀ has orthonormal columns and Lᵀ is upper
// triangular, i.e. exactly the QR factorisation of A. The orthonormal-rows matrix Q (k, m)
// column-major read row-major is Qᵀ (m, k) = Q_A, and L's lower triangle read row-major is R_A.
// This is the same Householder QR that `?geqrf` + `?orgqr` would compute on A, minus the copies.

/// A = q r with q (m, k) orthonormal columns and r (k, n) upper triangular, k = min(m, n).
/// The diagonal of r may be negative (LAPACK's Householder convention).
public struct QRResult: Sendable {
    public var q: Tensor
    public var r: Tensor
}

func qrRowMajor<T: LapackScalar>(_ a: [T], rows m: Int, cols n: Int) throws -> (q: [T], r: [T], k: Int) {
    precondition(a.count == m * n)
    let k = min(m, n)
    if k == 0 { return ([], [], 0) }
    // X = Aᵀ column-major: M = n rows, N = m columns, lda = n.
    var x = a
    var tau = [T](repeating: 0, count: k)
    var info = x.withUnsafeMutableBufferPointer { px in
        tau.withUnsafeMutableBufferPointer { pt in T.gelqf(Int32(n), Int32(m), px.baseAddress!, Int32(n), pt.baseAddress!) }
    }
    if info != 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "gelqf", info: info) }
    // R_A (k, n) row-major: entry (j, i) = L[i, j] = x[i + j*n] for i >= j, zero below the diagonal.
    var r = [T](repeating: 0, count: k * n)
    for j in 0..<k { for i in j..<n { r[j * n + i] = x[j * n + i] } }
    // Q (k, m) column-major with ld = k: copy the first k rows of the (n, m) column-major X.
    var q = [T](repeating: 0, count: k * m)
    for j in 0..<m { for i in 0..<k { q[j * k + i] = x[j * n + i] } }
    info = q.withUnsafeMutableBufferPointer { pq in
        tau.withUnsafeBufferPointer { pt in T.orglq(Int32(k), Int32(m), Int32(k), pq.baseAddress!, Int32(k), pt.baseAddress!) }
    }
    if info != 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "orglq", info: info) }
    return (q, r, k)   // q read row-major is (m, k)
}

/// Thin Householder QR of a rank-2 Float32 tensor.
public func qr(_ a: Tensor) throws -> QRResult {
    guard a.shape.rank == 2 else { throw TensorError.shapeMismatch(context: "qr needs a matrix", expected: [a.count, 1], actual: a.shape) }
    let (m, n) = (a.shape[0], a.shape[1])
    let f = try qrRowMajor(a.scalars, rows: m, cols: n)
    return QRResult(q: Tensor(shape: [m, f.k], scalars: f.q), r: Tensor(shape: [f.k, n], scalars: f.r))
}

/// Thin QR in Float64 of a row-major (rows, cols) buffer: q (rows, k), r (k, cols).
public func qr64(_ a: [Double], rows: Int, cols: Int) throws -> (q: [Double], r: [Double], k: Int) {
    guard a.count == rows * cols else { throw TensorError.byteCountMismatch(context: "qr64 buffer", expected: rows * cols, actual: a.count) }
    return try qrRowMajor(a, rows: rows, cols: cols)
}

/// Modified Gram-Schmidt reference (Float64, tests only); assumes full column rank, m >= n.
public func naiveQR64(_ a: [Double], rows m: Int, cols n: Int) -> (q: [Double], r: [Double]) {
    var q = a
    var r = [Double](repeating: 0, count: n * n)
    for j in 0..<n {
        for p in 0..<j {
            var d = 0.0
            for i in 0..<m { d += q[i * n + p] * q[i * n + j] }
            r[p * n + j] = d
            for i in 0..<m { q[i * n + j] -= d * q[i * n + p] }
        }
        var norm = 0.0
        for i in 0..<m { norm += q[i * n + j] * q[i * n + j] }
        norm = norm.squareRoot()
        r[j * n + j] = norm
        for i in 0..<m { q[i * n + j] /= norm }
    }
    return (q, r)
}
