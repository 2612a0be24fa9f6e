import Foundation
import Tensors

/// The amplification factor of Hu et al. 2021 (LoRA, §7.3): how strongly the update
/// amplifies directions that W0 itself barely uses.
///
/// With U, V the top-r left/right singular vectors of ΔW (r = the LoRA rank, or the energy rank for
/// a dense update), `projection` = ‖Uᵀ W0 V‖_F is how much of W0 lives in ΔW's directions, and
/// `factor` = ‖ΔW‖_F / ‖Uᵀ W0 V‖_F. Two yardsticks for `projection`: W0's own top-r directions give
/// ‖U0ᵀ W0 V0‖_F = sqrt(σ_1(W0)² + … + σ_r(W0)²) (`baseTopProjection`), and random orthonormal
/// r-frames give sqrt(E‖·‖_F²) = r ‖W0‖_F / sqrt(m n) (`randomProjection`).
/// Hu et al.'s check values (GPT-3 layer 48, W_q, r = 4): ‖ΔW‖_F = 6.91, projection 0.32,
/// W_q's top directions 21.67, random 0.02, factor ≈ 21.5.
///
/// Only directions with σ_j(ΔW) ≥ 1e-3 σ_1(ΔW) are used (`rank`): the singular vectors of a
/// (numerically) zero singular value are arbitrary, so an update of rank 1 asked for 8 directions
/// uses 1. An all-zero update has no amplification (nil).
public struct Amplification: Sendable, Codable, Equatable {
    /// Directions used (≤ the r asked for).
    public var rank: Int
    /// ‖Uᵀ W0 V‖_F over ΔW's top `rank` directions.
    public var projection: Double
    /// ‖ΔW‖_F / `projection` (+∞ when the projection is exactly 0).
    public var factor: Double
    /// sqrt(Σ_{i ≤ rank} σ_i(W0)²): the same projection on W0's own top directions.
    public var baseTopProjection: Double
    /// rank · ‖W0‖_F / sqrt(rows · cols): the root-mean-square projection on random directions.
    public var randomProjection: Double

    /// Directions whose singular value is below this fraction of σ_1(ΔW) are not used.
    public static let relativeCutoff: Float = 1e-3

    /// Computes the factor from ΔW's top singular triplets: `u` (m, ≥ r) left vectors, `v` (n, ≥ r)
    /// right vectors as columns, `sigmas` descending. `frobeniusUpdate` is ‖ΔW‖_F (all of ΔW).
    public static func compute(base w0: Tensor, u: Tensor, v: Tensor, sigmas: [Float], rank r: Int,
                               frobeniusUpdate: Double, baseSigmas: [Float]) -> Amplification? {
        guard let s1 = sigmas.first, s1 > 0, frobeniusUpdate > 0 else { return nil }
        let (m, n) = (w0.shape[0], w0.shape[1])
        let limit = min(r, u.shape[1], v.shape[1], sigmas.count)
        var ra = 0
        while ra < limit && sigmas[ra] >= relativeCutoff * s1 { ra += 1 }
        guard ra > 0 else { return nil }
        let ur = leadingColumns(u, ra), vr = leadingColumns(v, ra)
        let x = matmul(ur, matmul(w0, vr), transposeA: true)          // (ra, ra)
        let projection = x.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let baseTop = baseSigmas.prefix(ra).reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let frobeniusBase = SpectrumStatistics.frobenius(baseSigmas)
        return Amplification(rank: ra, projection: projection,
                             factor: projection > 0 ? frobeniusUpdate / projection : .infinity,
                             baseTopProjection: baseTop,
                             randomProjection: Double(ra) * frobeniusBase / (Double(m) * Double(n)).squareRoot())
    }

    /// The right singular vectors V = ΔWᵀ U Σ⁻¹ (n, c) of a dense update from its left ones, for the
    /// first c columns with σ_j > 0 (exact when U is; used when only U was computed or cached).
    static func rightVectors(update d: Tensor, u: Tensor, sigmas: [Float]) -> Tensor {
        let c = min(u.shape[1], sigmas.count)
        var t = matmul(d, leadingColumns(u, c), transposeA: true)      // (n, c)
        for i in 0..<t.shape[0] {
            for j in 0..<c { t.scalars[i * c + j] = sigmas[j] > 0 ? t.scalars[i * c + j] / sigmas[j] : 0 }
        }
        return t
    }
}
