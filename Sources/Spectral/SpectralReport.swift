/// The model-level result of `spectrum` / `compare`: per fine-tune, every matrix's diagnostics
/// and a summary; for every pair of fine-tunes, the overlap of their update subspaces.
public struct SpectralReport: Sendable, Codable {
    public var base: String
    public var topK: Int
    public var epsilons: [Double]
    public var fineTunes: [FineTuneReport]
    public var overlaps: [OverlapEntry]
    public var notes: [String]
    public var seconds: Double
    public var cacheHits: Int
    public var cacheMisses: Int
    /// WeightWatcher's α before and after each fine-tune (`--alpha`); absent otherwise.
    public var alpha: AlphaComparison? = nil
}

public struct FineTuneReport: Sendable, Codable {
    public var label: String
    public var path: String
    /// "lora" or "full".
    public var kind: String
    public var loraRank: Int?
    public var loraAlpha: Double?
    public var useRSLoRA: Bool?
    public var matrices: [MatrixDiagnostics]
    public var summary: FineTuneSummary
}

public struct FineTuneSummary: Sendable, Codable {
    public struct Share: Sendable, Codable { public var name: String; public var share: Double }
    public var matrixCount: Int
    /// Σ over matrices of the intruder counts, per ε (the paper's model-level number).
    public var totalIntruders: [IntruderProfile.Count]
    /// Matrices with at least one intruder at the primary ε.
    public var matricesWithIntruders: Int
    public var meanEffectiveRank: Double
    public var meanStableRank: Double
    public var meanRelativeFrobenius: Double
    /// Mean amplification factor ‖ΔW‖_F / ‖Uᵀ W0 V‖_F (§E.6) over the matrices with a non-zero
    /// update (nil when there is none).
    public var meanAmplification: Double?
    /// Share of Σ‖ΔW‖_F² per module type and per layer, descending.
    public var updateShareByModuleType: [Share]
    public var updateShareByLayer: [Share]

    public init(matrices: [MatrixDiagnostics], epsilons: [Double]) {
        matrixCount = matrices.count
        totalIntruders = epsilons.map { e in
            IntruderProfile.Count(epsilon: e, count: matrices.reduce(0) { $0 + ($1.intruders.count(at: e) ?? 0) })
        }
        matricesWithIntruders = matrices.filter { !$0.intruders.intruders.isEmpty }.count
        let c = Double(max(matrices.count, 1))
        meanEffectiveRank = matrices.reduce(0) { $0 + $1.effectiveRank } / c
        meanStableRank = matrices.reduce(0) { $0 + $1.stableRank } / c
        meanRelativeFrobenius = matrices.reduce(0) { $0 + $1.relativeFrobenius } / c
        let factors = matrices.compactMap { $0.amplification?.factor }.filter(\.isFinite)
        meanAmplification = factors.isEmpty ? nil : factors.reduce(0, +) / Double(factors.count)
        let total = matrices.reduce(0.0) { $0 + $1.frobeniusUpdate * $1.frobeniusUpdate }
        func shares(_ key: (MatrixDiagnostics) -> String) -> [Share] {
            var acc: [String: Double] = [:]
            for m in matrices { acc[key(m), default: 0] += m.frobeniusUpdate * m.frobeniusUpdate }
            return acc.map { Share(name: $0.key, share: total > 0 ? $0.value / total : 0) }
                .sorted { ($0.share, $1.name) > ($1.share, $0.name) }
        }
        updateShareByModuleType = shares { $0.moduleType }
        updateShareByLayer = shares { $0.layer.map { "layer \($0)" } ?? "other" }
    }
}

/// Overlap of the top update directions of two fine-tunes on one matrix.
public struct OverlapEntry: Sendable, Codable {
    public var name: String
    public var layer: Int?
    public var moduleType: String
    public var first: String
    public var second: String
    /// Columns compared on each side (the LoRA rank, or the energy rank for a dense update).
    public var ranks: [Int]
    public var overlap: SubspaceOverlap
}
