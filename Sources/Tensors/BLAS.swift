import CLinearAlgebra

// Row-major GEMM wrappers over OpenBLAS, with naive triple-loop references beside them.
//
// Conventions: every matrix is row-major; `transposeA` means op(A) = Aᵀ, so for
// `matmul(a, b, transposeA: true)` with a: (k, m) the product is (m, n).

/// Raw row-major SGEMM: C = alpha * op(A) * op(B) + beta * C, with op(A): (m, k), op(B): (k, n),
/// C: (m, n), leading dimensions as stored (row strides). Precondition: buffers large enough.
@inlinable
public func sgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        // BLAS with k = 0 only scales C; do it explicitly so beta = 0 clears NaNs too.
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Raw row-major DGEMM, same contract as `sgemm` in Double.
@inlinable
public func dgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Double, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    cblas_dgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Dimensions of op(A) * op(B) for stored shapes, or nil when the inner dimensions disagree.
@usableFromInline
func gemmDims(_ a: (Int, Int), _ b: (Int, Int), _ ta: Bool, _ tb: Bool) -> (m: Int, n: Int, k: Int)? {
    let (m, ka) = ta ? (a.1, a.0) : (a.0, a.1)
    let (kb, n) = tb ? (b.1, b.0) : (b.0, b.1)
    return ka == kb ? (m, n, ka) : nil
}

/// op(A) * op(B) for rank-2 tensors. A: (m, k) or (k, m) when transposed; B: (k, n) or (n, k).
/// Precondition: both rank 2 with matching inner dimension (a programming error otherwise;
/// use `checkedMatmul` on shapes that come from input).
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    do { return try checkedMatmul(a, b, transposeA: transposeA, transposeB: transposeB) } catch {
        preconditionFailure("\(error)")
    }
}

/// `matmul` that throws `TensorError.shapeMismatch` instead of trapping.
public func checkedMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
    guard a.shape.rank == 2, b.shape.rank == 2,
          let d = gemmDims((a.shape[0], a.shape[1]), (b.shape[0], b.shape[1]), transposeA, transposeB)
    else { throw TensorError.shapeMismatch(context: "matmul(transposeA: \(transposeA), transposeB: \(transposeB)) with A \(a.shape)", expected: b.shape, actual: b.shape) }
    var out = [Float](repeating: 0, count: d.m * d.n)
    a.scalars.withUnsafeBufferPointer { pa in
        b.scalars.withUnsafeBufferPointer { pb in
            out.withUnsafeMutableBufferPointer { pc in
                guard let ba = pa.baseAddress, let bb = pb.baseAddress, let bc = pc.baseAddress else { return }
                sgemm(transposeA: transposeA, transposeB: transposeB, m: d.m, n: d.n, k: d.k,
                      alpha: 1, a: ba, lda: a.shape[1], b: bb, ldb: b.shape[1], beta: 0, c: bc, ldc: d.n)
            }
        }
    }
    return Tensor(shape: [d.m, d.n], scalars: out)
}

/// Double-precision op(A) * op(B) on row-major buffers. A is stored (aRows, aCols), B (bRows, bCols).
/// Returns the (m, n) product. Precondition: consistent dimensions.
public func matmul64(
    _ a: [Double], rows aRows: Int, cols aCols: Int,
    _ b: [Double], rows bRows: Int, cols bCols: Int,
    transposeA: Bool = false, transposeB: Bool = false
) -> [Double] {
    precondition(a.count == aRows * aCols && b.count == bRows * bCols, "matmul64: buffer sizes")
    guard let d = gemmDims((aRows, aCols), (bRows, bCols), transposeA, transposeB) else {
        preconditionFailure("matmul64: inner dimensions disagree")
    }
    var out = [Double](repeating: 0, count: d.m * d.n)
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            out.withUnsafeMutableBufferPointer { pc in
                guard let ba = pa.baseAddress, let bb = pb.baseAddress, let bc = pc.baseAddress else { return }
                dgemm(transposeA: transposeA, transposeB: transposeB, m: d.m, n: d.n, k: d.k,
                      alpha: 1, a: ba, lda: aCols, b: bb, ldb: bCols, beta: 0, c: bc, ldc: d.n)
            }
        }
    }
    return out
}

/// Triple-loop reference for `matmul`, accumulating in Double. For tests only (O(mnk), slow).
public func naiveMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    let d = gemmDims((a.shape[0], a.shape[1]), (b.shape[0], b.shape[1]), transposeA, transposeB)!
    var out = [Float](repeating: 0, count: d.m * d.n)
    for i in 0..<d.m {
        for j in 0..<d.n {
            var s = 0.0
            for p in 0..<d.k {
                let x = transposeA ? a[p, i] : a[i, p]
                let y = transposeB ? b[j, p] : b[p, j]
                s += Double(x) * Double(y)
            }
            out[i * d.n + j] = Float(s)
        }
    }
    return Tensor(shape: [d.m, d.n], scalars: out)
}

/// Triple-loop reference for `matmul64`. For tests only.
public func naiveMatmul64(
    _ a: [Double], rows aRows: Int, cols aCols: Int,
    _ b: [Double], rows bRows: Int, cols bCols: Int,
    transposeA: Bool = false, transposeB: Bool = false
) -> [Double] {
    let d = gemmDims((aRows, aCols), (bRows, bCols), transposeA, transposeB)!
    var out = [Double](repeating: 0, count: d.m * d.n)
    for i in 0..<d.m {
        for j in 0..<d.n {
            var s = 0.0
            for p in 0..<d.k {
                let x = transposeA ? a[p * aCols + i] : a[i * aCols + p]
                let y = transposeB ? b[j * bCols + p] : b[p * bCols + j]
                s += x * y
            }
            out[i * d.n + j] = s
        }
    }
    return out
}

extension Tensor {
    /// The transpose of a rank-2 tensor (a copy).
    public func transposed() -> Tensor {
        precondition(shape.rank == 2, "transposed() needs a rank-2 tensor, got \(shape)")
        let (r, c) = (shape[0], shape[1])
        var out = [Float](repeating: 0, count: r * c)
        scalars.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                for i in 0..<r { for j in 0..<c { d[j * r + i] = s[i * c + j] } }
            }
        }
        return Tensor(shape: [c, r], scalars: out)
    }

    /// Frobenius norm, accumulated in Double.
    public var frobeniusNorm: Double {
        scalars.withUnsafeBufferPointer { p in
            var s = 0.0
            for x in p { s += Double(x) * Double(x) }
            return s.squareRoot()
        }
    }
}

/// The Gram matrix of a row-major (m, n) Float32 matrix on its smaller side, in Float64:
/// AᵀA (n, n) when m ≥ n, else AAᵀ (m, m); returned row-major with both triangles filled.
/// The eigenvalues of the Gram matrix are the squared singular values of A. Products of Float32
/// values are exact in Float64, so the only rounding is the Float64 accumulation. Rows are
/// converted `blockRows` at a time (a tall matrix never exists twice in Float64), with `dsyrk`.
public func smallerSideGram64(_ a: Tensor, blockRows: Int = 4096) -> (n: Int, gram: [Double]) {
    precondition(a.shape.rank == 2, "smallerSideGram64 needs a matrix")
    let (m, n) = (a.shape[0], a.shape[1])
    let k = min(m, n)
    var g = [Double](repeating: 0, count: k * k)
    guard k > 0 else { return (0, g) }
    a.scalars.withUnsafeBufferPointer { src in
        g.withUnsafeMutableBufferPointer { pg in
            if m >= n {
                let rows = max(1, blockRows)
                var block = [Double](repeating: 0, count: min(rows, m) * n)
                var r0 = 0
                while r0 < m {
                    let b = min(rows, m - r0)
                    for i in 0..<(b * n) { block[i] = Double(src[r0 * n + i]) }
                    block.withUnsafeBufferPointer { pb in
                        // row-major: C (n, n) += Bᵀ B with B (b, n)
                        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(b), 1, pb.baseAddress!, Int32(n),
                                    1, pg.baseAddress!, Int32(n))
                    }
                    r0 += b
                }
            } else {
                let full = src.map(Double.init)
                full.withUnsafeBufferPointer { pf in
                    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(m), Int32(n), 1, pf.baseAddress!, Int32(n),
                                0, pg.baseAddress!, Int32(m))
                }
            }
            for i in 0..<k { for j in 0..<i { pg[i * k + j] = pg[j * k + i] } }
        }
    }
    return (k, g)
}
