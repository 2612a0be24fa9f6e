// Singular value decomposition through LAPACK `?gesdd` (divide and conquer), column-major.
//
// Orientation: a row-major (m, n) buffer A is the column-major (n, m) matrix X = Aᵀ. LAPACK
// factors X = Ux Σ VTx. Then A = VTxᵀ Σ Uxᵀ, and because a column-major buffer read row-major
// is its transpose, the "VT" output buffer read row-major *is* U_A (m x k) and the "U" output
// buffer read row-major *is* Vt_A (k x n). Nothing is transposed or copied.
// If `?gesdd` does not converge (info > 0) the wrappers retry with `?gesvd` (QR iteration).

/// A = U diag(s) Vt for a row-major (m, n) Float32 matrix.
/// Thin: u (m, k), vt (k, n) with k = min(m, n). Full: u (m, m), vt (n, n); s always has k values,
/// descending and non-negative. Columns of u and rows of vt are orthonormal; signs are arbitrary.
public struct SVDResult: Sendable {
    public var u: Tensor
    public var s: [Float]
    public var vt: Tensor
    public init(u: Tensor, s: [Float], vt: Tensor) { self.u = u; self.s = s; self.vt = vt }

    /// U diag(s) Vt, the naive reconstruction used by tests (thin factors only use the first k).
    public func reconstructed() -> Tensor {
        let (m, n, k) = (u.shape[0], vt.shape[1], s.count)
        var out = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k { acc += Double(u[i, p]) * Double(s[p]) * Double(vt[p, j]) }
                out[i * n + j] = Float(acc)
            }
        }
        return Tensor(shape: [m, n], scalars: out)
    }
}

/// The Float64 counterpart of `SVDResult` on plain row-major buffers.
public struct SVD64Result: Sendable {
    public var rows: Int, cols: Int
    /// (rows, uCols) row-major; uCols = k (thin) or rows (full).
    public var u: [Double]
    public var uCols: Int
    public var s: [Double]
    /// (vtRows, cols) row-major; vtRows = k (thin) or cols (full).
    public var vt: [Double]
    public var vtRows: Int
}

/// Generic core: returns (u buffer, uCols, s, vt buffer, vtRows) in the row-major convention.
func gesddRowMajor<T: LapackScalar>(_ a: [T], rows m: Int, cols n: Int, full: Bool, vectors: Bool)
    throws -> (u: [T], uCols: Int, s: [T], vt: [T], vtRows: Int)
{
    precondition(a.count == m * n, "svd: buffer of \(a.count) for (\(m), \(n))")
    let k = min(m, n)
    let uCols = vectors ? (full ? m : k) : 0
    let vtRows = vectors ? (full ? n : k) : 0
    if k == 0 {
        // Empty matrix: no singular values; full factors are identities.
        func eye(_ d: Int) -> [T] { var e = [T](repeating: 0, count: d * d); for i in 0..<d { e[i * d + i] = 1 }; return e }
        return (full && vectors ? eye(m) : [], uCols, [], full && vectors ? eye(n) : [], vtRows)
    }
    guard m <= Int(Int32.max), n <= Int(Int32.max) else { throw TensorError.invalidArgument("svd: dimensions \(m) x \(n) exceed LAPACK's 32-bit indices") }
    // Column-major X = Aᵀ: M = n rows, N = m columns, lda = n.
    let (M, N) = (Int32(n), Int32(m))
    var s = [T](repeating: 0, count: k)
    // LAPACK "U" (M x ucolsX, ld = M) becomes our Vt; LAPACK "VT" (vtrowsX x N, ld = vtrowsX) becomes our U.
    let xuCols = vectors ? (full ? n : k) : 1
    let xvtRows = vectors ? (full ? m : k) : 1
    var xu = [T](repeating: 0, count: vectors ? n * xuCols : 1)
    var xvt = [T](repeating: 0, count: vectors ? xvtRows * m : 1)
    let jobz: UInt8 = vectors ? (full ? UInt8(ascii: "A") : UInt8(ascii: "S")) : UInt8(ascii: "N")
    var work = a
    var info = work.withUnsafeMutableBufferPointer { pa in
        s.withUnsafeMutableBufferPointer { ps in
            xu.withUnsafeMutableBufferPointer { pu in
                xvt.withUnsafeMutableBufferPointer { pv in
                    T.gesdd(jobz, M, N, pa.baseAddress!, M, ps.baseAddress!, pu.baseAddress!, vectors ? M : 1,
                            pv.baseAddress!, vectors ? Int32(xvtRows) : 1)
                }
            }
        }
    }
    if info > 0 {
        // Divide and conquer did not converge: retry with the QR-iteration driver.
        work = a
        var superb = [T](repeating: 0, count: max(1, k - 1))
        info = work.withUnsafeMutableBufferPointer { pa in
            s.withUnsafeMutableBufferPointer { ps in
                xu.withUnsafeMutableBufferPointer { pu in
                    xvt.withUnsafeMutableBufferPointer { pv in
                        superb.withUnsafeMutableBufferPointer { pw in
                            T.gesvd(jobz, jobz, M, N, pa.baseAddress!, M, ps.baseAddress!, pu.baseAddress!, vectors ? M : 1,
                                    pv.baseAddress!, vectors ? Int32(xvtRows) : 1, pw.baseAddress!)
                        }
                    }
                }
            }
        }
        if info != 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "gesvd", info: info) }
    } else if info < 0 {
        throw TensorError.lapackFailure(routine: T.lapackPrefix + "gesdd", info: info)
    }
    return (vectors ? xvt : [], uCols, s, vectors ? xu : [], vtRows)
}

/// SVD of a rank-2 Float32 tensor (m, n) with `sgesdd`. See `SVDResult` for shapes.
/// Throws `TensorError.shapeMismatch` for a tensor that is not rank 2, `lapackFailure` if
/// neither gesdd nor gesvd converges (or the input holds NaN/Inf, which LAPACKE rejects).
public func svd(_ a: Tensor, full: Bool = false) throws -> SVDResult {
    guard a.shape.rank == 2 else { throw TensorError.shapeMismatch(context: "svd needs a matrix", expected: [a.count, 1], actual: a.shape) }
    let (m, n) = (a.shape[0], a.shape[1])
    let r = try gesddRowMajor(a.scalars, rows: m, cols: n, full: full, vectors: true)
    return SVDResult(u: Tensor(shape: [m, r.uCols], scalars: r.u), s: r.s, vt: Tensor(shape: [r.vtRows, n], scalars: r.vt))
}

/// SVD in Float64 (`dgesdd`) of a row-major (rows, cols) buffer.
public func svd64(_ a: [Double], rows: Int, cols: Int, full: Bool = false) throws -> SVD64Result {
    guard a.count == rows * cols else { throw TensorError.byteCountMismatch(context: "svd64 buffer", expected: rows * cols, actual: a.count) }
    let r = try gesddRowMajor(a, rows: rows, cols: cols, full: full, vectors: true)
    return SVD64Result(rows: rows, cols: cols, u: r.u, uCols: r.uCols, s: r.s, vt: r.vt, vtRows: r.vtRows)
}

/// SVD in Float64 of a Float32 tensor (converted on the way in).
public func svd64(_ a: Tensor, full: Bool = false) throws -> SVD64Result {
    guard a.shape.rank == 2 else { throw TensorError.shapeMismatch(context: "svd64 needs a matrix", expected: [a.count, 1], actual: a.shape) }
    return try svd64(a.scalars.map(Double.init), rows: a.shape[0], cols: a.shape[1], full: full)
}

/// Singular values only (jobz = 'N', no vectors: several times cheaper), descending.
public func singularValues(_ a: Tensor) throws -> [Float] {
    guard a.shape.rank == 2 else { throw TensorError.shapeMismatch(context: "singularValues needs a matrix", expected: [a.count, 1], actual: a.shape) }
    return try gesddRowMajor(a.scalars, rows: a.shape[0], cols: a.shape[1], full: false, vectors: false).s
}

/// Singular values in Float64, descending.
public func singularValues64(_ a: [Double], rows: Int, cols: Int) throws -> [Double] {
    guard a.count == rows * cols else { throw TensorError.byteCountMismatch(context: "singularValues64 buffer", expected: rows * cols, actual: a.count) }
    return try gesddRowMajor(a, rows: rows, cols: cols, full: false, vectors: false).s
}
