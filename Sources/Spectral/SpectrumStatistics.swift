import Foundation

/// Scalar summaries of a singular spectrum σ_1 ≥ … ≥ σ_q ≥ 0 (effective rank: Roy and Vetterli 2007; stable rank: Rudelson and Vershynin 2007).
public enum SpectrumStatistics {
    /// Effective rank (Roy & Vetterli 2007): exp(−Σ p_i ln p_i) with p_i = σ_i / Σσ (L1, not σ²).
    /// Zero σ are skipped; 0 for an all-zero spectrum. Range [1, q].
    public static func effectiveRank(_ s: [Float]) -> Double {
        let total = s.reduce(0.0) { $0 + Double(max($1, 0)) }
        guard total > 0 else { return 0 }
        var h = 0.0
        for x in s where x > 0 {
            let p = Double(x) / total
            h -= p * log(p)
        }
        return exp(h)
    }

    /// Stable rank Σσ² / σ_1²; 0 for an all-zero spectrum.
    public static func stableRank(_ s: [Float]) -> Double {
        guard let s1 = s.first, s1 > 0 else { return 0 }
        return s.reduce(0.0) { $0 + Double($1) * Double($1) } / (Double(s1) * Double(s1))
    }

    /// Fraction of Σσ² in the top r values (1 for an all-zero spectrum).
    public static func energy(top r: Int, of s: [Float]) -> Double {
        let total = s.reduce(0.0) { $0 + Double($1) * Double($1) }
        guard total > 0 else { return 1 }
        return s.prefix(max(r, 0)).reduce(0.0) { $0 + Double($1) * Double($1) } / total
    }

    /// Smallest r whose top-r energy reaches `fraction` (0 for an all-zero spectrum).
    public static func rankForEnergy(_ fraction: Double, of s: [Float]) -> Int {
        let total = s.reduce(0.0) { $0 + Double($1) * Double($1) }
        guard total > 0 else { return 0 }
        var acc = 0.0
        for (i, x) in s.enumerated() {
            acc += Double(x) * Double(x)
            if acc >= fraction * total * (1 - 1e-12) { return i + 1 }
        }
        return s.count
    }

    /// sqrt(Σσ²) = Frobenius norm of the matrix.
    public static func frobenius(_ s: [Float]) -> Double { s.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
}
