import Tensors

/// Small dense helpers shared by the SVD-based merges (TSV-M, Iso-C, Iso-CTS). Matrices are
/// row-major `Tensor`s; products go through BLAS (`matmul`), factorisations through `svd`.
enum SpectralMath {
    /// The first `k` columns of an (m, c) matrix.
    static func columns(_ a: Tensor, _ k: Int) -> Tensor {
        let (m, c) = (a.shape[0], a.shape[1])
        var out = [Float](repeating: 0, count: m * k)
        for i in 0..<m { for j in 0..<k { out[i * k + j] = a.scalars[i * c + j] } }
        return Tensor(shape: [m, k], scalars: out)
    }

    /// The first `k` rows of an (r, n) matrix.
    static func rows(_ a: Tensor, _ k: Int) -> Tensor {
        Tensor(shape: [k, a.shape[1]], scalars: Array(a.scalars[0..<(k * a.shape[1])]))
    }

    /// Columns side by side: (m, c1) | (m, c2) | ...
    static func hstack(_ parts: [Tensor]) -> Tensor {
        let m = parts[0].shape[0]
        let total = parts.reduce(0) { $0 + $1.shape[1] }
        var out = [Float](repeating: 0, count: m * total)
        var offset = 0
        for p in parts {
            let c = p.shape[1]
            for i in 0..<m { for j in 0..<c { out[i * total + offset + j] = p.scalars[i * c + j] } }
            offset += c
        }
        return Tensor(shape: [m, total], scalars: out)
    }

    /// Rows stacked: (r1, n) over (r2, n) ...
    static func vstack(_ parts: [Tensor]) -> Tensor {
        Tensor(shape: [parts.reduce(0) { $0 + $1.shape[0] }, parts[0].shape[1]], scalars: parts.flatMap(\.scalars))
    }

    /// The orthogonal polar factor `P Qᵀ` of `A = P Σ Qᵀ` (the nearest matrix with orthonormal
    /// columns, or rows for a wide matrix).
    ///
    /// Singular values at rounding level (see `numericalRank`) are left out: `P_r Q_rᵀ` over the
    /// numerical range. A stack of singular vectors from overlapping tasks can be exactly rank
    /// deficient (an embedding whose untouched rows are zero in every task vector), and there the
    /// full factor `P Qᵀ` would add directions chosen by rounding alone (on the fixture embedding
    /// it moved rows no fine-tune had changed, and the merged NLL depended on the BLAS kernels).
    /// For a matrix of full numerical rank this is the ordinary polar factor.
    static func polar(_ a: Tensor) throws -> Tensor {
        let f = try svd(a)
        let r = numericalRank(f.s, rows: a.shape[0], cols: a.shape[1])
        return matmul(columns(f.u, r), rows(f.vt, r))
    }

    /// How many singular values exceed `max(m, n) · ε₃₂ · scale` (numpy's `matrix_rank` rule),
    /// with `scale` the largest singular value unless given.
    static func numericalRank(_ s: [Float], rows m: Int, cols n: Int, scale: Float? = nil) -> Int {
        guard let top = scale ?? s.first, top > 0 else { return 0 }
        let tol = Float(max(m, n)) * Float.ulpOfOne * top
        return s.prefix { $0 > tol }.count
    }

    /// `U diag(s) Vt` for U (m, k), s (k), Vt (k, n).
    static func compose(_ u: Tensor, _ s: [Float], _ vt: Tensor) -> Tensor {
        var us = u
        let k = s.count
        for i in 0..<u.shape[0] { for j in 0..<k { us.scalars[i * k + j] *= s[j] } }
        return matmul(us, vt)
    }

    /// `out = base + α·delta` (Float64 per element).
    static func apply(_ delta: Tensor, alpha: Double, base: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>,
                      loops: ParallelLoops) {
        delta.scalars.withUnsafeBufferPointer { d in
            loops.forEachChunk(out.count) { r in for i in r { out[i] = Float(Double(base[i]) + alpha * Double(d[i])) } }
        }
    }

    /// The task vectors `x_i − base` as (m, n) tensors.
    static func taskVectors(_ inputs: MergeInputs, base: UnsafeBufferPointer<Float>, rows: Int, cols: Int) -> [Tensor] {
        inputs.models.map { x in
            Tensor(shape: [rows, cols], scalars: (0..<(rows * cols)).map { x[$0] - base[$0] })
        }
    }

    /// Mean of the task vectors for tensors that are not matrices (norms, biases), as the
    /// reference implementations do: `out = base + α·mean_i(x_i − base)`.
    static func meanDelta(_ inputs: MergeInputs, base: UnsafeBufferPointer<Float>, alpha: Double, into out: UnsafeMutableBufferPointer<Float>) {
        let m = Double(inputs.models.count)
        weightedSum(inputs.models, [Double](repeating: alpha / m, count: inputs.models.count), base: base, into: out, loops: inputs.loops)
    }
}
