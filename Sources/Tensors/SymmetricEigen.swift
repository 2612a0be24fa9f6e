// Symmetric eigendecomposition through LAPACK `?syevd` (divide and conquer).
//
// A symmetric matrix is its own transpose, so its row-major buffer is also its column-major
// buffer. LAPACK returns eigenvectors as the *columns* of a column-major matrix, which read
// row-major are the *rows*: `vectors` row i is the eigenvector of `values[i]`.

/// A = Σ_i values[i] · v_i v_iᵀ with v_i = row i of `vectors` (n, n); values ascending.
public struct SymmetricEigenResult: Sendable {
    public var values: [Float]
    /// (n, n), row i is the unit eigenvector for values[i].
    public var vectors: Tensor
}

/// Float64 counterpart: vectors (n, n) row-major, row i the eigenvector of values[i].
public struct SymmetricEigen64Result: Sendable {
    public var n: Int
    public var values: [Double]
    public var vectors: [Double]
}

func syevdRowMajor<T: LapackScalar>(_ a: [T], n: Int, vectors: Bool) throws -> (values: [T], vectors: [T]) {
    precondition(a.count == n * n)
    if n == 0 { return ([], []) }
    var work = a
    var w = [T](repeating: 0, count: n)
    // Only one triangle is read: 'U' in column-major is the lower triangle of the row-major view;
    // for a symmetric input either is the same.
    let info = work.withUnsafeMutableBufferPointer { pa in
        w.withUnsafeMutableBufferPointer { pw in
            T.syevd(vectors ? UInt8(ascii: "V") : UInt8(ascii: "N"), UInt8(ascii: "U"), Int32(n), pa.baseAddress!, Int32(n), pw.baseAddress!)
        }
    }
    if info != 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "syevd", info: info) }
    return (w, vectors ? work : [])
}

/// Eigenvalues (ascending) and eigenvectors of a symmetric (n, n) tensor, with `ssyevd`.
/// Symmetry is not checked: only the upper triangle of the column-major view is read.
public func symmetricEigen(_ a: Tensor) throws -> SymmetricEigenResult {
    guard a.shape.rank == 2, a.shape[0] == a.shape[1] else {
        throw TensorError.shapeMismatch(context: "symmetricEigen needs a square matrix", expected: [a.matrixDims.rows, a.matrixDims.rows], actual: a.shape)
    }
    let n = a.shape[0]
    let r = try syevdRowMajor(a.scalars, n: n, vectors: true)
    return SymmetricEigenResult(values: r.values, vectors: Tensor(shape: [n, n], scalars: r.vectors))
}

/// Float64 symmetric eigendecomposition (`dsyevd`) of a row-major (n, n) buffer.
public func symmetricEigen64(_ a: [Double], n: Int) throws -> SymmetricEigen64Result {
    guard a.count == n * n else { throw TensorError.byteCountMismatch(context: "symmetricEigen64 buffer", expected: n * n, actual: a.count) }
    let r = try syevdRowMajor(a, n: n, vectors: true)
    return SymmetricEigen64Result(n: n, values: r.values, vectors: r.vectors)
}

/// Eigenvalues only (ascending), Float32.
public func symmetricEigenvalues(_ a: Tensor) throws -> [Float] {
    guard a.shape.rank == 2, a.shape[0] == a.shape[1] else {
        throw TensorError.shapeMismatch(context: "symmetricEigenvalues needs a square matrix", expected: [a.matrixDims.rows, a.matrixDims.rows], actual: a.shape)
    }
    return try syevdRowMajor(a.scalars, n: a.shape[0], vectors: false).values
}

/// Cyclic Jacobi eigenvalue reference in Float64 for small symmetric matrices (tests only).
/// Returns values ascending and vectors as rows, like `symmetricEigen64`.
public func naiveSymmetricEigen64(_ a: [Double], n: Int) -> (values: [Double], vectors: [Double]) {
    var m = a
    var v = [Double](repeating: 0, count: n * n)
    for i in 0..<n { v[i * n + i] = 1 }
    for _ in 0..<100 {
        var off = 0.0
        for p in 0..<n { for q in 0..<n where p != q { off += m[p * n + q] * m[p * n + q] } }
        if off < 1e-26 { break }
        for p in 0..<n {
            for q in (p + 1)..<max(n, p + 1) where m[p * n + q] != 0 {
                let theta = (m[q * n + q] - m[p * n + p]) / (2 * m[p * n + q])
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<n { // columns p, q
                    let x = m[k * n + p], y = m[k * n + q]
                    m[k * n + p] = c * x - s * y; m[k * n + q] = s * x + c * y
                }
                for k in 0..<n { // rows p, q
                    let x = m[p * n + k], y = m[q * n + k]
                    m[p * n + k] = c * x - s * y; m[q * n + k] = s * x + c * y
                }
                for k in 0..<n {
                    let x = v[k * n + p], y = v[k * n + q]
                    v[k * n + p] = c * x - s * y; v[k * n + q] = s * x + c * y
                }
            }
        }
    }
    let order = (0..<n).sorted { m[$0 * n + $0] < m[$1 * n + $1] }
    var vals = [Double](), vecs = [Double](repeating: 0, count: n * n)
    for (dst, src) in order.enumerated() {
        vals.append(m[src * n + src])
        for k in 0..<n { vecs[dst * n + k] = v[k * n + src] }
    }
    return (vals, vecs)
}

/// Eigenvalues only (ascending) of a symmetric row-major (n, n) Float64 buffer, with `dsyevd`.
public func symmetricEigenvalues64(_ a: [Double], n: Int) throws -> [Double] {
    guard a.count == n * n else { throw TensorError.byteCountMismatch(context: "symmetricEigenvalues64 buffer", expected: n * n, actual: a.count) }
    return try syevdRowMajor(a, n: n, vectors: false).values
}
