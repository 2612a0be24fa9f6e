import CLinearAlgebra

/// The two real LAPACK precisions, so that each wrapper is written once for Float and Double.
///
/// Every entry point is column-major (`LAPACK_COL_MAJOR`): the wrappers hand a row-major
/// (m, n) buffer over as the column-major (n, m) matrix it already is, and read the outputs
/// back with the roles of the factors swapped, so no transpose is ever copied.
public protocol LapackScalar: BinaryFloatingPoint, Sendable {
    static func gesdd(_ jobz: UInt8, _ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Self>, _ lda: Int32,
                      _ s: UnsafeMutablePointer<Self>, _ u: UnsafeMutablePointer<Self>?, _ ldu: Int32,
                      _ vt: UnsafeMutablePointer<Self>?, _ ldvt: Int32) -> Int32
    static func gesvd(_ jobu: UInt8, _ jobvt: UInt8, _ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Self>, _ lda: Int32,
                      _ s: UnsafeMutablePointer<Self>, _ u: UnsafeMutablePointer<Self>?, _ ldu: Int32,
                      _ vt: UnsafeMutablePointer<Self>?, _ ldvt: Int32, _ superb: UnsafeMutablePointer<Self>) -> Int32
    static func syevd(_ jobz: UInt8, _ uplo: UInt8, _ n: Int32, _ a: UnsafeMutablePointer<Self>, _ lda: Int32,
                      _ w: UnsafeMutablePointer<Self>) -> Int32
    static func gelqf(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Self>, _ lda: Int32, _ tau: UnsafeMutablePointer<Self>) -> Int32
    static func orglq(_ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafeMutablePointer<Self>, _ lda: Int32, _ tau: UnsafePointer<Self>) -> Int32
    // The pieces of a selective SVD (`TruncatedSVD.swift`): reduce to bidiagonal form once,
    // then all singular values (bdsqr without vectors) and selected vectors (bdsvdx).
    static func geqrf(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Self>, _ lda: Int32, _ tau: UnsafeMutablePointer<Self>) -> Int32
    static func ormqr(_ side: UInt8, _ trans: UInt8, _ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafePointer<Self>, _ lda: Int32,
                      _ tau: UnsafePointer<Self>, _ c: UnsafeMutablePointer<Self>, _ ldc: Int32) -> Int32
    static func gebrd(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Self>, _ lda: Int32, _ d: UnsafeMutablePointer<Self>,
                      _ e: UnsafeMutablePointer<Self>, _ tauq: UnsafeMutablePointer<Self>, _ taup: UnsafeMutablePointer<Self>) -> Int32
    /// Singular values only of an upper bidiagonal (d, e) (dqds), overwriting d.
    static func bdsqrValues(_ n: Int32, _ d: UnsafeMutablePointer<Self>, _ e: UnsafeMutablePointer<Self>) -> Int32
    static func bdsvdx(_ jobz: UInt8, _ range: UInt8, _ n: Int32, _ d: UnsafeMutablePointer<Self>, _ e: UnsafeMutablePointer<Self>,
                       _ il: Int32, _ iu: Int32, _ ns: UnsafeMutablePointer<Int32>, _ s: UnsafeMutablePointer<Self>,
                       _ z: UnsafeMutablePointer<Self>, _ ldz: Int32, _ superb: UnsafeMutablePointer<Int32>) -> Int32
    static func ormbr(_ vect: UInt8, _ side: UInt8, _ trans: UInt8, _ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafePointer<Self>,
                      _ lda: Int32, _ tau: UnsafePointer<Self>, _ c: UnsafeMutablePointer<Self>, _ ldc: Int32) -> Int32
    static var lapackPrefix: String { get }
}

@inline(__always) private func ch(_ c: UInt8) -> CChar { CChar(bitPattern: c) }

extension Float: LapackScalar {
    public static var lapackPrefix: String { "s" }
    public static func gesdd(_ jobz: UInt8, _ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Float>, _ lda: Int32,
                             _ s: UnsafeMutablePointer<Float>, _ u: UnsafeMutablePointer<Float>?, _ ldu: Int32,
                             _ vt: UnsafeMutablePointer<Float>?, _ ldvt: Int32) -> Int32 {
        LAPACKE_sgesdd(LAPACK_COL_MAJOR, ch(jobz), m, n, a, lda, s, u, ldu, vt, ldvt)
    }
    public static func gesvd(_ jobu: UInt8, _ jobvt: UInt8, _ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Float>, _ lda: Int32,
                             _ s: UnsafeMutablePointer<Float>, _ u: UnsafeMutablePointer<Float>?, _ ldu: Int32,
                             _ vt: UnsafeMutablePointer<Float>?, _ ldvt: Int32, _ superb: UnsafeMutablePointer<Float>) -> Int32 {
        LAPACKE_sgesvd(LAPACK_COL_MAJOR, ch(jobu), ch(jobvt), m, n, a, lda, s, u, ldu, vt, ldvt, superb)
    }
    public static func syevd(_ jobz: UInt8, _ uplo: UInt8, _ n: Int32, _ a: UnsafeMutablePointer<Float>, _ lda: Int32,
                             _ w: UnsafeMutablePointer<Float>) -> Int32 {
        LAPACKE_ssyevd(LAPACK_COL_MAJOR, ch(jobz), ch(uplo), n, a, lda, w)
    }
    public static func gelqf(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Float>, _ lda: Int32, _ tau: UnsafeMutablePointer<Float>) -> Int32 {
        LAPACKE_sgelqf(LAPACK_COL_MAJOR, m, n, a, lda, tau)
    }
    public static func orglq(_ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafeMutablePointer<Float>, _ lda: Int32, _ tau: UnsafePointer<Float>) -> Int32 {
        LAPACKE_sorglq(LAPACK_COL_MAJOR, m, n, k, a, lda, tau)
    }
    public static func geqrf(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Float>, _ lda: Int32, _ tau: UnsafeMutablePointer<Float>) -> Int32 {
        LAPACKE_sgeqrf(LAPACK_COL_MAJOR, m, n, a, lda, tau)
    }
    public static func ormqr(_ side: UInt8, _ trans: UInt8, _ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafePointer<Float>, _ lda: Int32,
                             _ tau: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int32) -> Int32 {
        LAPACKE_sormqr(LAPACK_COL_MAJOR, ch(side), ch(trans), m, n, k, a, lda, tau, c, ldc)
    }
    public static func gebrd(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Float>, _ lda: Int32, _ d: UnsafeMutablePointer<Float>,
                             _ e: UnsafeMutablePointer<Float>, _ tauq: UnsafeMutablePointer<Float>, _ taup: UnsafeMutablePointer<Float>) -> Int32 {
        LAPACKE_sgebrd(LAPACK_COL_MAJOR, m, n, a, lda, d, e, tauq, taup)
    }
    public static func bdsqrValues(_ n: Int32, _ d: UnsafeMutablePointer<Float>, _ e: UnsafeMutablePointer<Float>) -> Int32 {
        LAPACKE_sbdsqr(LAPACK_COL_MAJOR, ch(UInt8(ascii: "U")), n, 0, 0, 0, d, e, nil, 1, nil, 1, nil, 1)
    }
    public static func bdsvdx(_ jobz: UInt8, _ range: UInt8, _ n: Int32, _ d: UnsafeMutablePointer<Float>, _ e: UnsafeMutablePointer<Float>,
                              _ il: Int32, _ iu: Int32, _ ns: UnsafeMutablePointer<Int32>, _ s: UnsafeMutablePointer<Float>,
                              _ z: UnsafeMutablePointer<Float>, _ ldz: Int32, _ superb: UnsafeMutablePointer<Int32>) -> Int32 {
        LAPACKE_sbdsvdx(LAPACK_COL_MAJOR, ch(UInt8(ascii: "U")), ch(jobz), ch(range), n, d, e, 0, 0, il, iu, ns, s, z, ldz, superb)
    }
    public static func ormbr(_ vect: UInt8, _ side: UInt8, _ trans: UInt8, _ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafePointer<Float>,
                             _ lda: Int32, _ tau: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int32) -> Int32 {
        LAPACKE_sormbr(LAPACK_COL_MAJOR, ch(vect), ch(side), ch(trans), m, n, k, a, lda, tau, c, ldc)
    }
}

extension Double: LapackScalar {
    public static var lapackPrefix: String { "d" }
    public static func gesdd(_ jobz: UInt8, _ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Double>, _ lda: Int32,
                             _ s: UnsafeMutablePointer<Double>, _ u: UnsafeMutablePointer<Double>?, _ ldu: Int32,
                             _ vt: UnsafeMutablePointer<Double>?, _ ldvt: Int32) -> Int32 {
        LAPACKE_dgesdd(LAPACK_COL_MAJOR, ch(jobz), m, n, a, lda, s, u, ldu, vt, ldvt)
    }
    public static func gesvd(_ jobu: UInt8, _ jobvt: UInt8, _ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Double>, _ lda: Int32,
                             _ s: UnsafeMutablePointer<Double>, _ u: UnsafeMutablePointer<Double>?, _ ldu: Int32,
                             _ vt: UnsafeMutablePointer<Double>?, _ ldvt: Int32, _ superb: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dgesvd(LAPACK_COL_MAJOR, ch(jobu), ch(jobvt), m, n, a, lda, s, u, ldu, vt, ldvt, superb)
    }
    public static func syevd(_ jobz: UInt8, _ uplo: UInt8, _ n: Int32, _ a: UnsafeMutablePointer<Double>, _ lda: Int32,
                             _ w: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dsyevd(LAPACK_COL_MAJOR, ch(jobz), ch(uplo), n, a, lda, w)
    }
    public static func gelqf(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Double>, _ lda: Int32, _ tau: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dgelqf(LAPACK_COL_MAJOR, m, n, a, lda, tau)
    }
    public static func orglq(_ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafeMutablePointer<Double>, _ lda: Int32, _ tau: UnsafePointer<Double>) -> Int32 {
        LAPACKE_dorglq(LAPACK_COL_MAJOR, m, n, k, a, lda, tau)
    }
    public static func geqrf(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Double>, _ lda: Int32, _ tau: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dgeqrf(LAPACK_COL_MAJOR, m, n, a, lda, tau)
    }
    public static func ormqr(_ side: UInt8, _ trans: UInt8, _ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafePointer<Double>, _ lda: Int32,
                             _ tau: UnsafePointer<Double>, _ c: UnsafeMutablePointer<Double>, _ ldc: Int32) -> Int32 {
        LAPACKE_dormqr(LAPACK_COL_MAJOR, ch(side), ch(trans), m, n, k, a, lda, tau, c, ldc)
    }
    public static func gebrd(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Double>, _ lda: Int32, _ d: UnsafeMutablePointer<Double>,
                             _ e: UnsafeMutablePointer<Double>, _ tauq: UnsafeMutablePointer<Double>, _ taup: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dgebrd(LAPACK_COL_MAJOR, m, n, a, lda, d, e, tauq, taup)
    }
    public static func bdsqrValues(_ n: Int32, _ d: UnsafeMutablePointer<Double>, _ e: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dbdsqr(LAPACK_COL_MAJOR, ch(UInt8(ascii: "U")), n, 0, 0, 0, d, e, nil, 1, nil, 1, nil, 1)
    }
    public static func bdsvdx(_ jobz: UInt8, _ range: UInt8, _ n: Int32, _ d: UnsafeMutablePointer<Double>, _ e: UnsafeMutablePointer<Double>,
                              _ il: Int32, _ iu: Int32, _ ns: UnsafeMutablePointer<Int32>, _ s: UnsafeMutablePointer<Double>,
                              _ z: UnsafeMutablePointer<Double>, _ ldz: Int32, _ superb: UnsafeMutablePointer<Int32>) -> Int32 {
        LAPACKE_dbdsvdx(LAPACK_COL_MAJOR, ch(UInt8(ascii: "U")), ch(jobz), ch(range), n, d, e, 0, 0, il, iu, ns, s, z, ldz, superb)
    }
    public static func ormbr(_ vect: UInt8, _ side: UInt8, _ trans: UInt8, _ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafePointer<Double>,
                             _ lda: Int32, _ tau: UnsafePointer<Double>, _ c: UnsafeMutablePointer<Double>, _ ldc: Int32) -> Int32 {
        LAPACKE_dormbr(LAPACK_COL_MAJOR, ch(vect), ch(side), ch(trans), m, n, k, a, lda, tau, c, ldc)
    }
}
