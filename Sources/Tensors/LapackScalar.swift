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
}
