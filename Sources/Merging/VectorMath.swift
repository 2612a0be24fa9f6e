/// Float64 reductions over Float32 buffers, parallel over chunks with a scheduling-independent
/// combination order.
enum VectorMath {
    /// Gram matrix `G[i][j] = x_i · x_j` (minus `base` first when given) in one pass over memory.
    static func gram(_ xs: [UnsafeBufferPointer<Float>], minus base: UnsafeBufferPointer<Float>?, loops: ParallelLoops) -> [[Double]] {
        let m = xs.count
        let n = xs.first?.count ?? 0
        let ptrs = xs.map { $0.baseAddress! }
        let b = base?.baseAddress
        let flat = loops.sums(n, m * m) { range, acc in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: m) { v in
                for j in range {
                    let bj = b.map { Double($0[j]) } ?? 0
                    for i in 0..<m { v[i] = Double(ptrs[i][j]) - bj }
                    for i in 0..<m {
                        for k in i..<m { acc[i * m + k] += v[i] * v[k] }
                    }
                }
            }
        }
        var g = [[Double]](repeating: [Double](repeating: 0, count: m), count: m)
        for i in 0..<m { for k in i..<m { g[i][k] = flat[i * m + k]; g[k][i] = flat[i * m + k] } }
        return g
    }

    /// `out = base + Σ c_i (x_i − base)` or `Σ c_i x_i` (see `weightedSum`).
    static func combine(_ xs: [UnsafeBufferPointer<Float>], _ c: [Double], base: UnsafeBufferPointer<Float>?,
                        into out: UnsafeMutableBufferPointer<Float>, loops: ParallelLoops) {
        weightedSum(xs, c, base: base, into: out, loops: loops)
    }
}
