import Tensors

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in a.indices { m = max(m, abs(a[i] - b[i])) }
    return m
}

func maxAbsDiff(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var m = 0.0
    for i in a.indices { m = max(m, abs(a[i] - b[i])) }
    return m
}

/// max |QᵀQ − I| for a row-major (m, k) matrix with orthonormal columns.
func orthonormalityError(columnsOf q: [Double], rows m: Int, cols k: Int) -> Double {
    var e = 0.0
    for i in 0..<k {
        for j in 0..<k {
            var d = 0.0
            for r in 0..<m { d += q[r * k + i] * q[r * k + j] }
            e = max(e, abs(d - (i == j ? 1 : 0)))
        }
    }
    return e
}

func orthonormalityError(columnsOf q: Tensor) -> Double {
    orthonormalityError(columnsOf: q.scalars.map(Double.init), rows: q.shape[0], cols: q.shape[1])
}

func orthonormalityError(rowsOf q: Tensor) -> Double {
    orthonormalityError(columnsOf: q.transposed())
}

func randomMatrix(_ m: Int, _ n: Int, seed: UInt64) -> Tensor {
    var rng = SeededRandom(seed: seed)
    return rng.normalTensor(rows: m, cols: n)
}
