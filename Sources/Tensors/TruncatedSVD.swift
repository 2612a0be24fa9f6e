// Selective (truncated) SVD through LAPACK: the top r singular triplets, and optionally every
// singular value, from ONE reduction to bidiagonal form.
//
// A full `?gesdd` with vectors costs the bidiagonal reduction plus divide and conquer on all
// vectors plus the back-transformation of all of them (about three reductions' worth of work);
// `?gesdd` without vectors costs one reduction. Here:
//   1. orient the matrix so that the column-major problem is tall (M ≥ N; a row-major (m, n)
//      buffer already is the column-major (n, m) transpose, else one transposed copy is made);
//      when M ≥ 2N, `?geqrf` first and continue with the N × N triangle R (as `?gesvd` does);
//   2. `?gebrd`: Qᵀ X P = B (upper bidiagonal);
//   3. all singular values (if asked) by `?bdsqr` without vectors (dqds, O(N²));
//   4. the top r singular vectors of B by `?bdsvdx` (range 'I', il = 1 … iu = r: bisection and
//      inverse iteration on the Golub-Kahan tridiagonal, O(N r));
//   5. back-transform only those r vectors with `?ormbr` (and `?ormqr` after a QR step).
// This is what `?gesvdx` does internally, plus the singular values for free from the same
// reduction. The results are exact LAPACK results (no randomized accuracy check); tests compare
// them with `?gesdd` (values to 1e-5 relative, vectors up to sign).

/// The top `rank` singular triplets of a row-major (m, n) Float32 matrix: u (m, r), vt (r, n) with
/// r = min(rank, m, n); `s` holds all min(m, n) singular values when `allValues`, else the top r,
/// descending. Signs of the vector pairs are arbitrary (u_j and vt_j are consistent).
/// Throws `shapeMismatch` for a non-matrix, `lapackFailure` for NaN/Inf input or if LAPACK fails.
public func truncatedSVD(_ a: Tensor, rank: Int, allValues: Bool = false, leftVectors: Bool = true,
                         rightVectors: Bool = true) throws -> SVDResult {
    guard a.shape.rank == 2 else { throw TensorError.shapeMismatch(context: "truncatedSVD needs a matrix", expected: [a.count, 1], actual: a.shape) }
    guard rank >= 0 else { throw TensorError.invalidArgument("truncatedSVD: rank \(rank) is negative") }
    let (m, n) = (a.shape[0], a.shape[1])
    let r = try truncatedSVDRowMajor(a.scalars, rows: m, cols: n, rank: rank, allValues: allValues, left: leftVectors, right: rightVectors)
    return SVDResult(u: Tensor(shape: [m, r.left ? r.r : 0], scalars: r.u), s: r.s, vt: Tensor(shape: [r.right ? r.r : 0, n], scalars: r.vt))
}

/// The Float64 counterpart on a row-major buffer: u (rows, r) row-major, s, vt (r, cols) row-major.
public func truncatedSVD64(_ a: [Double], rows: Int, cols: Int, rank: Int, allValues: Bool = false) throws -> (u: [Double], s: [Double], vt: [Double], rank: Int) {
    guard a.count == rows * cols else { throw TensorError.byteCountMismatch(context: "truncatedSVD64 buffer", expected: rows * cols, actual: a.count) }
    let r = try truncatedSVDRowMajor(a, rows: rows, cols: cols, rank: rank, allValues: allValues, left: true, right: true)
    return (r.u, r.s, r.vt, r.r)
}

func truncatedSVDRowMajor<T: LapackScalar>(_ a: [T], rows m: Int, cols n: Int, rank: Int, allValues: Bool, left: Bool, right: Bool)
    throws -> (u: [T], s: [T], vt: [T], r: Int, left: Bool, right: Bool)
{
    precondition(a.count == m * n, "truncatedSVD: buffer of \(a.count) for (\(m), \(n))")
    let q = min(m, n)
    let r = min(max(rank, 0), q)
    if q == 0 || r == 0 {
        let s = allValues && q > 0 ? try gesddRowMajor(a, rows: m, cols: n, full: false, vectors: false).s : []
        return ([], s, [], 0, left, right)
    }
    guard m <= Int(Int32.max) / 2, n <= Int(Int32.max) / 2 else {
        throw TensorError.invalidArgument("truncatedSVD: dimensions \(m) x \(n) exceed LAPACK's 32-bit indices")
    }
    // Column-major X with M ≥ N. A row-major (m, n) buffer is the column-major (n, m) matrix Aᵀ:
    // use it as is when n ≥ m (then X's left vectors are A's right ones), else copy A column-major.
    let swapped = n >= m
    let (M, N) = swapped ? (n, m) : (m, n)
    var x: [T]
    if swapped {
        x = a
    } else {
        x = [T](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { x[i + j * m] = a[i * n + j] } }
    }
    let wantX = swapped ? right : left      // X's left vectors (length M)
    let wantY = swapped ? left : right      // X's right vectors (length N)

    // Optional QR step: X = Qr R, continue with the N × N triangle.
    let useQR = M >= 2 * N
    var qrTau = [T]()
    var b: [T]
    let bm = useQR ? N : M
    if useQR {
        qrTau = [T](repeating: 0, count: N)
        let info = x.withUnsafeMutableBufferPointer { px in qrTau.withUnsafeMutableBufferPointer { T.geqrf(Int32(M), Int32(N), px.baseAddress!, Int32(M), $0.baseAddress!) } }
        if info != 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "geqrf", info: info) }
        b = [T](repeating: 0, count: N * N)
        for j in 0..<N { for i in 0...j { b[i + j * N] = x[i + j * M] } }
    } else {
        b = x
    }

    // Bidiagonal reduction of b (bm × N, bm ≥ N): upper bidiagonal (d, e).
    var d = [T](repeating: 0, count: N), e = [T](repeating: 0, count: max(N, 1))
    var tauq = [T](repeating: 0, count: N), taup = [T](repeating: 0, count: N)
    var info = b.withUnsafeMutableBufferPointer { pb in
        d.withUnsafeMutableBufferPointer { pd in
            e.withUnsafeMutableBufferPointer { pe in
                tauq.withUnsafeMutableBufferPointer { pq in
                    taup.withUnsafeMutableBufferPointer { pp in
                        T.gebrd(Int32(bm), Int32(N), pb.baseAddress!, Int32(bm), pd.baseAddress!, pe.baseAddress!, pq.baseAddress!, pp.baseAddress!)
                    }
                }
            }
        }
    }
    if info != 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "gebrd", info: info) }

    // All singular values (descending) from copies of (d, e).
    var all = [T]()
    if allValues {
        all = d
        var e2 = e
        info = all.withUnsafeMutableBufferPointer { pd in e2.withUnsafeMutableBufferPointer { T.bdsqrValues(Int32(N), pd.baseAddress!, $0.baseAddress!) } }
        if info != 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "bdsqr", info: info) }
    }

    // `?bdsvdx` splits B where an entry is negligible, and the LAPACK in OpenBLAS 0.3.21 writes out
    // of bounds (in ?stein) on some split bidiagonals: all-zero, or repeated values in 1 × 1 blocks
    // (found with AddressSanitizer on d = (1, 1, …), e = (1e-17, …) and on a zero matrix). Such a B
    // (a rank-deficient, diagonal or zero matrix, never a trained weight or update) takes gesdd.
    let smax = zip(d, e).reduce(T(0)) { max($0, abs($1.0), abs($1.1)) }
    let tiny = smax * T.ulpOfOne.squareRoot()
    let split = smax == 0 || d.contains { abs($0) <= tiny } || e.prefix(N - 1).contains { abs($0) <= tiny }
    func viaGesdd() throws -> (u: [T], s: [T], vt: [T], r: Int, left: Bool, right: Bool) {
        let f = try gesddRowMajor(a, rows: m, cols: n, full: false, vectors: true)
        var u = [T](repeating: 0, count: left ? m * r : 0)
        if left { for i in 0..<m { for j in 0..<r { u[i * r + j] = f.u[i * q + j] } } }
        return (u, allValues ? f.s : Array(f.s.prefix(r)), right ? Array(f.vt.prefix(r * n)) : [], r, left, right)
    }
    if split { return try viaGesdd() }

    // Top r singular triplets of B: z (2N × (r + 1)), rows 0..<N = left, N..<2N = right.
    var ns: Int32 = 0
    var top = [T](repeating: 0, count: N)
    var z = [T](repeating: 0, count: 2 * N * (r + 1))
    var superb = [Int32](repeating: 0, count: 12 * N)
    var d2 = d, e3 = e
    info = d2.withUnsafeMutableBufferPointer { pd in
        e3.withUnsafeMutableBufferPointer { pe in
            top.withUnsafeMutableBufferPointer { ps in
                z.withUnsafeMutableBufferPointer { pz in
                    superb.withUnsafeMutableBufferPointer { pw in
                        T.bdsvdx(UInt8(ascii: "V"), UInt8(ascii: "I"), Int32(N), pd.baseAddress!, pe.baseAddress!, 1, Int32(r), &ns,
                                 ps.baseAddress!, pz.baseAddress!, Int32(2 * N), pw.baseAddress!)
                    }
                }
            }
        }
    }
    if info != 0 || Int(ns) != r {
        // Inverse iteration failed to converge for some vector (info > 0): fall back to gesdd.
        if info < 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "bdsvdx", info: info) }
        return try viaGesdd()
    }

    // X's left vectors: Q_B [U_B; 0], then Q_r [·; 0] after a QR step. Column-major M × r.
    var xLeft = [T]()
    if wantX {
        var c = [T](repeating: 0, count: bm * r)
        for j in 0..<r { for i in 0..<N { c[i + j * bm] = z[i + j * 2 * N] } }
        info = b.withUnsafeBufferPointer { pb in
            tauq.withUnsafeBufferPointer { pq in
                c.withUnsafeMutableBufferPointer { T.ormbr(UInt8(ascii: "Q"), UInt8(ascii: "L"), UInt8(ascii: "N"), Int32(bm), Int32(r), Int32(N),
                                                           pb.baseAddress!, Int32(bm), pq.baseAddress!, $0.baseAddress!, Int32(bm)) }
            }
        }
        if info != 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "ormbr", info: info) }
        if useQR {
            var c2 = [T](repeating: 0, count: M * r)
            for j in 0..<r { for i in 0..<N { c2[i + j * M] = c[i + j * N] } }
            info = x.withUnsafeBufferPointer { px in
                qrTau.withUnsafeBufferPointer { pt in
                    c2.withUnsafeMutableBufferPointer { T.ormqr(UInt8(ascii: "L"), UInt8(ascii: "N"), Int32(M), Int32(r), Int32(N),
                                                                px.baseAddress!, Int32(M), pt.baseAddress!, $0.baseAddress!, Int32(M)) }
                }
            }
            if info != 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "ormqr", info: info) }
            c = c2
        }
        xLeft = c
    }
    // X's right vectors: P_B V_B. Column-major N × r.
    var xRight = [T]()
    if wantY {
        var c = [T](repeating: 0, count: N * r)
        for j in 0..<r { for i in 0..<N { c[i + j * N] = z[N + i + j * 2 * N] } }
        info = b.withUnsafeBufferPointer { pb in
            taup.withUnsafeBufferPointer { pp in
                c.withUnsafeMutableBufferPointer { T.ormbr(UInt8(ascii: "P"), UInt8(ascii: "L"), UInt8(ascii: "N"), Int32(N), Int32(r), Int32(bm),
                                                           pb.baseAddress!, Int32(bm), pp.baseAddress!, $0.baseAddress!, Int32(N)) }
            }
        }
        if info != 0 { throw TensorError.lapackFailure(routine: T.lapackPrefix + "ormbr", info: info) }
        xRight = c
    }

    // Back to A's row-major factors. A column-major (len × r) buffer read row-major is (r, len):
    // that is Vt directly; U (m, r) row-major needs one transposed copy.
    func rowMajorU(_ c: [T], _ len: Int) -> [T] {
        var u = [T](repeating: 0, count: len * r)
        for j in 0..<r { for i in 0..<len { u[i * r + j] = c[i + j * len] } }
        return u
    }
    let (uCol, vCol) = swapped ? (xRight, xLeft) : (xLeft, xRight)
    let u = left ? rowMajorU(uCol, m) : []
    let vt = right ? vCol : []
    return (u, allValues ? all : Array(top.prefix(r)), vt, r, left, right)
}
