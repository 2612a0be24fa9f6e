import Foundation
import Testing
@testable import Tensors

@Suite struct EigenQRTests {
    @Test func symmetricEigenSatisfiesDefinition() throws {
        let x = randomMatrix(6, 6, seed: 11)
        let a = matmul(x, x, transposeB: true)   // symmetric PSD
        let e = try symmetricEigen(a)
        for i in 1..<6 { #expect(e.values[i - 1] <= e.values[i]) }
        #expect(orthonormalityError(rowsOf: e.vectors) < 1e-5)
        for i in 0..<6 {
            for r in 0..<6 {
                var av: Float = 0
                for c in 0..<6 { av += a[r, c] * e.vectors[i, c] }
                #expect(abs(av - e.values[i] * e.vectors[i, r]) < 1e-3)
            }
        }
        // Values against the Jacobi eigen reference and the singular values (PSD: equal).
        let ref = naiveSymmetricEigen64(a.scalars.map(Double.init), n: 6)
        #expect(maxAbsDiff(e.values, ref.values.map(Float.init)) < 1e-3)
        #expect(maxAbsDiff(try symmetricEigenvalues(a), e.values) < 1e-3)
        #expect(maxAbsDiff(e.values.reversed(), try singularValues(a)) < 1e-3)
    }

    @Test func symmetricEigenDoubleAndIndefinite() throws {
        // [[2, 1], [1, 2]] -> 1, 3; [[0, 1], [1, 0]] -> -1, 1.
        let r = try symmetricEigen64([2, 1, 1, 2], n: 2)
        #expect(abs(r.values[0] - 1) < 1e-14 && abs(r.values[1] - 3) < 1e-14)
        #expect(abs(abs(r.vectors[2]) - 0.5.squareRoot()) < 1e-14)
        let s = try symmetricEigen64([0, 1, 1, 0], n: 2)
        #expect(abs(s.values[0] + 1) < 1e-14 && abs(s.values[1] - 1) < 1e-14)
        var rng = SeededRandom(seed: 4)
        let g = rng.normalDoubles(25)
        var sym = [Double](repeating: 0, count: 25)
        for i in 0..<5 { for j in 0..<5 { sym[i * 5 + j] = g[i * 5 + j] + g[j * 5 + i] } }
        let f = try symmetricEigen64(sym, n: 5)
        let ref = naiveSymmetricEigen64(sym, n: 5)
        #expect(maxAbsDiff(f.values, ref.values) < 1e-12)
        #expect(try symmetricEigen64([], n: 0).values.isEmpty)
    }

    @Test(arguments: [(8, 3), (3, 8), (5, 5), (1, 1), (6, 1)])
    func qrReconstructsAndIsOrthonormal(m: Int, n: Int) throws {
        let a = randomMatrix(m, n, seed: UInt64(m * 31 + n))
        let f = try qr(a)
        let k = min(m, n)
        #expect(f.q.shape == [m, k] && f.r.shape == [k, n])
        #expect(orthonormalityError(columnsOf: f.q) < 1e-5)
        for i in 0..<k { for j in 0..<i { #expect(f.r[i, j] == 0) } }
        #expect(maxAbsDiff(matmul(f.q, f.r).scalars, a.scalars) < 1e-5)
        if m >= n {
            // Same factorisation as Gram-Schmidt up to the signs of R's diagonal.
            let ref = naiveQR64(a.scalars.map(Double.init), rows: m, cols: n)
            for i in 0..<n {
                let sign: Float = f.r[i, i] * Float(ref.r[i * n + i]) >= 0 ? 1 : -1
                for j in i..<n { #expect(abs(f.r[i, j] - sign * Float(ref.r[i * n + j])) < 1e-4) }
            }
        }
    }

    @Test func qrDouble() throws {
        var rng = SeededRandom(seed: 8)
        let a = rng.normalDoubles(7 * 4)
        let f = try qr64(a, rows: 7, cols: 4)
        #expect(orthonormalityError(columnsOf: f.q, rows: 7, cols: 4) < 1e-13)
        #expect(maxAbsDiff(matmul64(f.q, rows: 7, cols: 4, f.r, rows: 4, cols: 4), a) < 1e-13)
    }

    @Test func randomizedSVDMatchesExactOnDecayingSpectrum() throws {
        // A = U diag(0.8^i) Vt with random orthonormal U, V: top 10 triplets recovered.
        let (m, n) = (120, 80)
        let u = try qr(randomMatrix(m, n, seed: 1)).q
        let v = try qr(randomMatrix(n, n, seed: 2)).q
        var us = u
        for i in 0..<m { for j in 0..<n { us[i, j] *= Float(pow(0.8, Double(j))) } }
        let a = matmul(us, v, transposeB: true)
        let r = try randomizedSVD(a, rank: 10, oversampling: 10, powerIterations: 3, seed: 5)
        #expect(r.svd.u.shape == [m, 10] && r.svd.vt.shape == [10, n])
        for j in 0..<10 { #expect(abs(r.svd.s[j] - Float(pow(0.8, Double(j)))) < 1e-4) }
        #expect(r.maxRelativeResidual < 1e-3)
        #expect(orthonormalityError(columnsOf: r.svd.u) < 1e-4)
        let exact = try svd(a)
        for j in 0..<10 {
            var dot: Float = 0
            for i in 0..<m { dot += r.svd.u[i, j] * exact.u[i, j] }
            #expect(abs(abs(dot) - 1) < 1e-3)
        }
    }

    @Test func randomizedSVDReportsPoorAccuracyOnFlatSpectrum() throws {
        // Gaussian noise has a flat top spectrum: without power iterations the residual check
        // must flag it (this is what makes callers fall back to gesdd).
        let a = randomMatrix(200, 200, seed: 3)
        let r = try randomizedSVD(a, rank: 10, oversampling: 2, powerIterations: 0, seed: 1)
        #expect(r.maxRelativeResidual > 0.05)
    }
}
