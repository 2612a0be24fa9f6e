import Testing
@testable import Tensors

/// `truncatedSVD` (gebrd + bdsqr + bdsvdx + ormbr) against `svd` (gesdd): values to 1e-5
/// relative, vectors up to sign, in both orientations, with and without the QR step.
@Suite struct TruncatedSVDTests {
    @Test(arguments: [(30, 30), (40, 12), (12, 40), (25, 19), (19, 25), (60, 9), (9, 60), (7, 1), (1, 7)])
    func agreesWithGesdd(m: Int, n: Int) throws {
        let a = randomMatrix(m, n, seed: UInt64(m * 1000 + n))
        let full = try svd(a)
        let q = min(m, n)
        for r in [1, 3, q] where r <= q {
            let t = try truncatedSVD(a, rank: r, allValues: true)
            #expect(t.u.shape == [m, r] && t.vt.shape == [r, n] && t.s.count == q)
            for j in 0..<q { #expect(abs(t.s[j] - full.s[j]) <= 1e-5 * full.s[0], "σ\(j) of \(m)x\(n)") }
            for j in 0..<r {
                var du = 0.0, dv = 0.0
                for i in 0..<m { du += Double(t.u[i, j]) * Double(full.u[i, j]) }
                for i in 0..<n { dv += Double(t.vt[j, i]) * Double(full.vt[j, i]) }
                // Same vector up to sign, and the pair carries the same sign (u_j σ_j v_jᵀ is unique).
                #expect(abs(abs(du) - 1) < 1e-4 && abs(abs(dv) - 1) < 1e-4, "vector \(j) of \(m)x\(n) r=\(r)")
                #expect(du * dv > 0)
            }
            // A v_j = σ_j u_j, checked directly on the returned triplets.
            let av = matmul(a, t.vt, transposeB: true)
            var worst: Float = 0
            for i in 0..<m { for j in 0..<r { worst = max(worst, abs(av[i, j] - t.s[j] * t.u[i, j])) } }
            #expect(worst < 1e-5 * full.s[0] * 10)
            // Without allValues only the top r come back; without left vectors no u.
            let top = try truncatedSVD(a, rank: r, leftVectors: false)
            #expect(top.s.count == r && top.u.shape == [m, 0] && top.vt.shape == [r, n])
            for j in 0..<r { #expect(abs(top.s[j] - full.s[j]) <= 1e-5 * full.s[0]) }
        }
    }

    @Test func knownMatrixOrientation() throws {
        // A = 3 e1 f2ᵀ + 2 e3 f1ᵀ (4 x 3): σ = 3, 2, 0 with u1 = e1, v1 = f2, u2 = e3, v2 = f1.
        var a = Tensor(zeros: [4, 3])
        a[0, 1] = 3; a[2, 0] = 2
        for t in [a, a.transposed()] {
            let r = try truncatedSVD(t, rank: 2, allValues: true)
            #expect(abs(r.s[0] - 3) < 1e-6 && abs(r.s[1] - 2) < 1e-6 && abs(r.s[2]) < 1e-6)
            let tall = t.shape[0] == 4
            let (u1, v1) = tall ? ((0, 0), (0, 1)) : ((1, 0), (0, 0))
            #expect(abs(abs(r.u[u1.0, u1.1]) - 1) < 1e-6 && abs(abs(r.vt[v1.0, v1.1]) - 1) < 1e-6)
        }
    }

    @Test func doublePrecisionAndEdges() throws {
        var rng = SeededRandom(seed: 7)
        let a = rng.normalTensor(rows: 20, cols: 13)
        let d = a.scalars.map(Double.init)
        let t = try truncatedSVD64(d, rows: 20, cols: 13, rank: 4, allValues: true)
        let f = try svd64(d, rows: 20, cols: 13)
        #expect(t.rank == 4 && t.s.count == 13)
        for j in 0..<13 { #expect(abs(t.s[j] - f.s[j]) < 1e-12 * f.s[0]) }
        // rank 0 and rank above min(m, n); a zero matrix; NaN is an error.
        #expect(try truncatedSVD(a, rank: 0, allValues: true).s.count == 13)
        #expect(try truncatedSVD(a, rank: 50).s.count == 13)
        let z = try truncatedSVD(Tensor(zeros: [5, 4]), rank: 2, allValues: true)
        #expect(z.s == [0, 0, 0, 0])
        // Bidiagonals that ?bdsvdx would split into repeated 1 x 1 blocks (identity, rank 1) take gesdd
        // (the LAPACK in OpenBLAS 0.3.21 writes out of bounds there) and still give the right triplets.
        var eye = Tensor(zeros: [6, 6])
        for i in 0..<6 { eye[i, i] = 1 }
        let ei = try truncatedSVD(eye, rank: 2, allValues: true)
        #expect(ei.s == [1, 1, 1, 1, 1, 1] && ei.u.shape == [6, 2])
        let x = rng.normalTensor(rows: 9, cols: 1), y = rng.normalTensor(rows: 1, cols: 7)
        let one = try truncatedSVD(matmul(x, y), rank: 3, allValues: true)
        let s1 = x.frobeniusNorm * y.frobeniusNorm
        #expect(abs(Double(one.s[0]) - s1) < 1e-5 * s1 && one.s.dropFirst().allSatisfy { Double($0) < 1e-5 * s1 })
        var dot = 0.0
        for i in 0..<9 { dot += Double(one.u[i, 0]) * Double(x.scalars[i]) }
        #expect(abs(abs(dot) - x.frobeniusNorm) < 1e-5 * x.frobeniusNorm)
        #expect(throws: TensorError.self) { try truncatedSVD(Tensor(shape: [2, 2], scalars: [1, .nan, 0, 1]), rank: 1) }
        #expect(throws: TensorError.self) { try truncatedSVD(Tensor(zeros: [2, 2, 2]), rank: 1) }
    }
}
