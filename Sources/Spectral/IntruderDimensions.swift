import Tensors

/// Intruder dimensions (Shuttleworth et al. 2024, Definition 3.1 / Algorithm 1).
///
/// Among the top-k left singular vectors y_j of the tuned matrix W, y_j is an intruder at
/// threshold ε iff max_i |⟨y_j, x_i⟩| < ε over *all* left singular vectors x_i of the base W0
/// (absolute value: singular vectors have arbitrary signs). k = 10 and ε = 0.5 by default.
public struct IntruderProfile: Sendable, Codable, Equatable {
    public struct Intruder: Sendable, Codable, Equatable {
        /// 0-based rank of the singular vector in W (by singular value, descending).
        public var rank: Int
        public var sigma: Float
        /// σ_j(W) / σ_1(W0).
        public var sigmaRelativeToBase: Float
        public var maxCosine: Float
    }
    /// max_i |⟨y_j, x_i⟩| for j = 0..<k.
    public var maxCosines: [Float]
    /// σ_j(W), j = 0..<k.
    public var sigmas: [Float]
    /// (ε, count) for every threshold asked for.
    public var counts: [Count]
    /// Intruders at the primary (first) ε.
    public var intruders: [Intruder]
    /// For the heat map: |y_jᵀ x_i| for j < k and i < k (top-k of W vs top-k of W0), row-major k × k.
    public var topCosines: [Float]

    public struct Count: Sendable, Codable, Equatable {
        public var epsilon: Double
        public var count: Int
    }

    public func count(at epsilon: Double) -> Int? { counts.first { $0.epsilon == epsilon }?.count }
}

/// Computes the intruder profile from the base's left singular vectors `u0` (m, q0; all of them)
/// and the tuned matrix's top left singular vectors `ut` (m, ≥k) with their singular values.
/// - Parameters: `epsilons` (first one is primary), `sigma1Base` = σ_1(W0).
public func intruderProfile(
    baseU u0: Tensor, tunedU ut: Tensor, tunedSigmas: [Float], sigma1Base: Float,
    topK: Int = 10, epsilons: [Double] = [0.5]
) throws -> IntruderProfile {
    guard u0.shape.rank == 2, ut.shape.rank == 2, u0.shape[0] == ut.shape[0] else {
        throw TensorError.shapeMismatch(context: "intruderProfile: base U and tuned U must have the same rows", expected: [u0.shape.dims.first ?? 0, ut.shape.dims.last ?? 0], actual: ut.shape)
    }
    let k = min(topK, ut.shape[1], tunedSigmas.count)
    let m = ut.shape[0], q0 = u0.shape[1]
    // Top-k columns of U_t as a contiguous (m, k) matrix, then C = |Y_kᵀ U0| (k, q0) by one GEMM.
    var yk = [Float](repeating: 0, count: m * k)
    for i in 0..<m { for j in 0..<k { yk[i * k + j] = ut.scalars[i * ut.shape[1] + j] } }
    let c = matmul(Tensor(shape: [m, k], scalars: yk), u0, transposeA: true)
    var maxCos = [Float](repeating: 0, count: k)
    let hk = min(k, q0)
    var top = [Float](repeating: 0, count: k * hk)
    for j in 0..<k {
        var mx: Float = 0
        for i in 0..<q0 { mx = max(mx, abs(c.scalars[j * q0 + i])) }
        maxCos[j] = min(mx, 1)
        for i in 0..<hk { top[j * hk + i] = abs(c.scalars[j * q0 + i]) }
    }
    let sig = Array(tunedSigmas.prefix(k))
    let counts = epsilons.map { e in IntruderProfile.Count(epsilon: e, count: maxCos.filter { Double($0) < e }.count) }
    let primary = epsilons.first ?? 0.5
    let intruders = (0..<k).filter { Double(maxCos[$0]) < primary }.map {
        IntruderProfile.Intruder(rank: $0, sigma: sig[$0], sigmaRelativeToBase: sigma1Base > 0 ? sig[$0] / sigma1Base : 0, maxCosine: maxCos[$0])
    }
    return IntruderProfile(maxCosines: maxCos, sigmas: sig, counts: counts, intruders: intruders, topCosines: top)
}
