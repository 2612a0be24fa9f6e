import Tensors

/// Overlap of two subspaces given by orthonormal columns (Hu et al. 2021, LoRA, §7.2).
///
/// φ = ‖U1ᵀ U2‖_F² / min(i, j) ∈ [0, 1], with i, j the column counts; the cosines of the
/// principal angles are the singular values of U1ᵀ U2 (so φ = mean cos² when i = j).
/// For random subspaces of R^n, E[φ] ≈ max(i, j) / n.
public struct SubspaceOverlap: Sendable, Codable, Equatable {
    public var phi: Double
    /// cos θ_k, descending, min(i, j) values.
    public var principalCosines: [Float]
    /// Grassmann distance sqrt(Σ θ_k²).
    public var grassmannDistance: Double
    /// The chance level max(i, j) / n for these sizes.
    public var randomBaseline: Double
}

/// Overlap of span(U1[:, :i]) and span(U2[:, :j]); U1 (n, ≥i), U2 (n, ≥j) with orthonormal columns.
public func subspaceOverlap(_ u1: Tensor, _ u2: Tensor, i: Int, j: Int) throws -> SubspaceOverlap {
    guard u1.shape.rank == 2, u2.shape.rank == 2, u1.shape[0] == u2.shape[0] else {
        throw TensorError.shapeMismatch(context: "subspaceOverlap: both bases need the same ambient dimension", expected: u1.shape, actual: u2.shape)
    }
    let n = u1.shape[0]
    let ii = min(i, u1.shape[1]), jj = min(j, u2.shape[1])
    guard ii > 0, jj > 0 else { return SubspaceOverlap(phi: 0, principalCosines: [], grassmannDistance: 0, randomBaseline: 0) }
    func leading(_ u: Tensor, _ c: Int) -> Tensor {
        var out = [Float](repeating: 0, count: n * c)
        for r in 0..<n { for q in 0..<c { out[r * c + q] = u.scalars[r * u.shape[1] + q] } }
        return Tensor(shape: [n, c], scalars: out)
    }
    let m = matmul(leading(u1, ii), leading(u2, jj), transposeA: true)   // (ii, jj)
    let fro2 = m.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }
    let cosines = try singularValues(m).map { min($0, 1) }
    let g = cosines.reduce(0.0) { let t = Double($1).clamped(-1, 1); return $0 + acos(t) * acos(t) }.squareRoot()
    return SubspaceOverlap(phi: fro2 / Double(min(ii, jj)), principalCosines: cosines, grassmannDistance: g,
                           randomBaseline: Double(max(ii, jj)) / Double(n))
}

extension Double {
    func clamped(_ lo: Double, _ hi: Double) -> Double { Swift.min(Swift.max(self, lo), hi) }
}

import Foundation
