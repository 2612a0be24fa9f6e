import Testing
@testable import Tensors

@Suite struct SVDTests {
    /// Checks a thin or full SVD against A and the Jacobi reference.
    func check(_ a: Tensor, full: Bool) throws {
        let (m, n) = (a.shape[0], a.shape[1])
        let k = min(m, n)
        let r = try svd(a, full: full)
        #expect(r.u.shape == [m, full ? m : k])
        #expect(r.vt.shape == [full ? n : k, n])
        #expect(r.s.count == k)
        for i in 1..<max(k, 1) where k > 1 { #expect(r.s[i - 1] >= r.s[i]) }
        #expect(r.s.allSatisfy { $0 >= 0 })
        #expect(orthonormalityError(columnsOf: r.u) < 1e-5)
        #expect(orthonormalityError(rowsOf: r.vt) < 1e-5)
        // Reconstruction with the first k columns/rows.
        var uk = [Float](repeating: 0, count: m * k)
        for i in 0..<m { for j in 0..<k { uk[i * k + j] = r.u[i, j] } }
        let thin = SVDResult(u: Tensor(shape: [m, k], scalars: uk), s: r.s, vt: Tensor(shape: [k, n], scalars: Array(r.vt.scalars[0..<(k * n)])))
        #expect(maxAbsDiff(thin.reconstructed().scalars, a.scalars) < 1e-4)
        // Values against one-sided Jacobi in Double.
        let ref = naiveSVD(a)
        #expect(maxAbsDiff(r.s, ref.s) < 1e-4)
        // Vectors agree up to sign (distinct random singular values).
        for j in 0..<k {
            var dot = 0.0
            for i in 0..<m { dot += Double(r.u[i, j]) * Double(ref.u[i, j]) }
            #expect(abs(abs(dot) - 1) < 1e-3)
        }
    }

    @Test(arguments: [(6, 4), (4, 6), (5, 5), (1, 7), (7, 1), (1, 1), (33, 20)])
    func thinAndFull(m: Int, n: Int) throws {
        let a = randomMatrix(m, n, seed: UInt64(m * 100 + n))
        try check(a, full: false)
        try check(a, full: true)
    }

    /// Orientation: for W = diag-like known matrix, U and V land in the right places.
    @Test func orientationOnKnownMatrix() throws {
        // W (3, 2) = [[3, 0], [0, 2], [0, 0]]: U = e1, e2; V = e1, e2; s = [3, 2].
        let w = Tensor(shape: [3, 2], scalars: [3, 0, 0, 2, 0, 0])
        let r = try svd(w)
        #expect(r.s == [3, 2])
        #expect(abs(abs(r.u[0, 0]) - 1) < 1e-6 && abs(abs(r.u[1, 1]) - 1) < 1e-6)
        #expect(r.u[2, 0] == 0 && r.u[2, 1] == 0)
        // A non-symmetric one: W = [[0, 2], [1, 0], [0, 0]]: σ1 = 2 with u = e1, v = e2.
        let w2 = Tensor(shape: [3, 2], scalars: [0, 2, 1, 0, 0, 0])
        let r2 = try svd(w2)
        #expect(r2.s == [2, 1])
        #expect(abs(abs(r2.u[0, 0]) - 1) < 1e-6)    // left vector of σ1 is e1 (row space)
        #expect(abs(abs(r2.vt[0, 1]) - 1) < 1e-6)   // right vector of σ1 is e2
        // U_W = W V Σ⁻¹ on a random 5x3 matrix.
        let a = randomMatrix(5, 3, seed: 9)
        let f = try svd(a)
        let wv = matmul(a, f.vt, transposeB: true)  // (5, 3)
        for i in 0..<5 { for j in 0..<3 { #expect(abs(wv[i, j] / f.s[j] - f.u[i, j]) < 1e-5) } }
    }

    @Test func singularValuesOnlyMatches() throws {
        let a = randomMatrix(40, 25, seed: 5)
        #expect(maxAbsDiff(try singularValues(a), try svd(a).s) < 1e-4)
        #expect(maxAbsDiff(try singularValues(a.transposed()), try svd(a).s) < 1e-4)
    }

    @Test func doublePrecision() throws {
        for (m, n) in [(9, 4), (4, 9), (6, 6)] {
            var rng = SeededRandom(seed: UInt64(m + 10 * n))
            let a = rng.normalDoubles(m * n)
            for full in [false, true] {
                let r = try svd64(a, rows: m, cols: n, full: full)
                let k = min(m, n)
                #expect(r.uCols == (full ? m : k) && r.vtRows == (full ? n : k))
                #expect(orthonormalityError(columnsOf: r.u, rows: m, cols: r.uCols) < 1e-12)
                var rec = [Double](repeating: 0, count: m * n)
                for i in 0..<m { for j in 0..<n { for p in 0..<k { rec[i * n + j] += r.u[i * r.uCols + p] * r.s[p] * r.vt[p * n + j] } } }
                #expect(maxAbsDiff(rec, a) < 1e-12)
                let ref = naiveSVD64(a, rows: m, cols: n)
                #expect(maxAbsDiff(r.s, ref.s) < 1e-12)
            }
            #expect(maxAbsDiff(try singularValues64(a, rows: m, cols: n), try svd64(a, rows: m, cols: n).s) < 1e-12)
        }
    }

    @Test func emptyAndScalar() throws {
        let e = try svd(Tensor(zeros: [0, 3]))
        #expect(e.s.isEmpty && e.u.shape == [0, 0] && e.vt.shape == [0, 3])
        let ef = try svd(Tensor(zeros: [2, 0]), full: true)
        #expect(ef.u.scalars == [1, 0, 0, 1] && ef.vt.shape == [0, 0])
        let one = try svd(Tensor(shape: [1, 1], scalars: [-2.5]))
        #expect(one.s == [2.5])
        #expect(one.u[0, 0] * one.vt[0, 0] == -1)
    }

    @Test func rankDeficient() throws {
        // rank 1: outer product, singular values [|x||y|, 0, 0].
        let x: [Float] = [1, 2, 2], y: [Float] = [3, 4]
        var s = [Float]()
        for i in 0..<3 { for j in 0..<2 { s.append(x[i] * y[j]) } }
        let r = try svd(Tensor(shape: [3, 2], scalars: s))
        #expect(abs(r.s[0] - 15) < 1e-5 && r.s[1] < 1e-5)
    }

    @Test func rejectsNonMatrixAndNaN() {
        #expect(throws: TensorError.self) { try svd(Tensor(zeros: [2, 2, 2])) }
        #expect(throws: TensorError.self) { try svd(Tensor(shape: [2, 2], scalars: [1, .nan, 0, 1])) }
    }
}
