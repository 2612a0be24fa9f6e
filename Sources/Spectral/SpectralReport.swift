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
    /// `compare --forgetting`: measured forgetting beside the intruder counts; absent otherwise.
    public var forgetting: ForgettingColumn? = nil
    /// `spectrum --ingredient`: what survives of each ingredient's update in the merged one.
    public var survival: [IngredientSurvival]? = nil
}

public struct FineTuneReport: Sendable, Codable {
    public var label: String
    public var path: String
    public var kind: UpdateKind
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

/// `compare --forgetting`: each fine-tune's measured forgetting beside its intruder count
/// (Shuttleworth et al. 2024, §4: intruder dimensions go with forgetting of pre-training data).
public struct ForgettingColumn: Sendable, Codable {
    public struct Entry: Sendable, Codable {
        public var label: String
        /// Mean of the forgetting losses (LM loss per token of each text, completion NLL of each JSONL).
        public var loss: Double
        /// loss − the base's loss.
        public var forgetting: Double
        public var intruders: Int
        public init(label: String, loss: Double, forgetting: Double, intruders: Int) {
            self.label = label; self.loss = loss; self.forgetting = forgetting; self.intruders = intruders
        }
    }
    public var data: [String]
    public var baseLoss: Double
    public var epsilon: Double
    public var fineTunes: [Entry]
    /// Spearman's rank correlation of intruder count and forgetting, when there are 4 or more fine-tunes.
    public var spearman: Double?

    public init(data: [String], baseLoss: Double, epsilon: Double, fineTunes: [Entry]) {
        self.data = data
        self.baseLoss = baseLoss
        self.epsilon = epsilon
        self.fineTunes = fineTunes
        spearman = fineTunes.count >= 4 ? Self.spearman(fineTunes.map { Double($0.intruders) }, fineTunes.map(\.forgetting)) : nil
    }

    /// Spearman's ρ: Pearson's correlation of the ranks (ties take their mean rank); nil when a
    /// side is constant.
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double? {
        precondition(x.count == y.count)
        func ranks(_ v: [Double]) -> [Double] {
            let order = v.indices.sorted { v[$0] < v[$1] }
            var r = [Double](repeating: 0, count: v.count)
            var i = 0
            while i < order.count {
                var j = i
                while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
                let mean = Double(i + j) / 2 + 1
                for k in i...j { r[order[k]] = mean }
                i = j + 1
            }
            return r
        }
        let (rx, ry) = (ranks(x), ranks(y))
        let n = Double(x.count)
        let (mx, my) = (rx.reduce(0, +) / n, ry.reduce(0, +) / n)
        var (sxy, sxx, syy) = (0.0, 0.0, 0.0)
        for i in rx.indices {
            sxy += (rx[i] - mx) * (ry[i] - my); sxx += (rx[i] - mx) * (rx[i] - mx); syy += (ry[i] - my) * (ry[i] - my)
        }
        guard sxx > 0, syy > 0 else { return nil }
        return sxy / (sxx * syy).squareRoot()
    }

    public func text() -> String {
        let w = max(12, (fineTunes.map(\.label.count).max() ?? 0) + 2)
        var out = "forgetting on \(data.joined(separator: ", ")) (loss − the base's \(String(format: "%.4f", baseLoss)); intruders at ε = \(String(format: "%.2f", epsilon)))\n"
        out += "  " + ReportText.pad("fine-tune", w) + ReportText.pad("loss", 10, right: true) + ReportText.pad("forgetting", 12, right: true)
            + ReportText.pad("intruders", 11, right: true) + "\n"
        for e in fineTunes {
            out += "  " + ReportText.pad(e.label, w) + ReportText.pad(String(format: "%.4f", e.loss), 10, right: true)
                + ReportText.pad(String(format: "%+.4f", e.forgetting), 12, right: true) + ReportText.pad("\(e.intruders)", 11, right: true) + "\n"
        }
        if let s = spearman {
            out += "  Spearman ρ(intruders, forgetting) = \(String(format: "%.3f", s)) over \(fineTunes.count) fine-tunes\n"
        } else if fineTunes.count >= 4 {
            out += "  Spearman ρ undefined (intruder counts or forgetting all equal)\n"
        } else {
            out += "  (a rank correlation needs at least 4 fine-tunes)\n"
        }
        return out
    }
}

/// `spectrum --base B --tuned MERGED --ingredient T ...`: how much of each ingredient's top update
/// subspace survives in the merged update, φ = ‖U_mᵀU_i‖F² / r over the top-r left singular
/// vectors of ΔW_merged and of the ingredient's ΔW_i (the subspace overlap of `compare`), per matrix.
public struct IngredientSurvival: Sendable, Codable {
    public struct ByType: Sendable, Codable { public var moduleType: String; public var meanPhi: Double }
    public struct Matrix: Sendable, Codable { public var name: String; public var phi: Double }
    public var ingredient: String
    public var matrices: Int
    public var meanPhi: Double
    /// φ of random subspaces of the same sizes (r/m), averaged over the matrices.
    public var chance: Double
    public var byModuleType: [ByType]
    /// The matrices where the least survives, lowest first (up to 5).
    public var lowest: [Matrix]

    /// One entry per ingredient from the merged-vs-ingredient overlaps.
    public static func from(_ overlaps: [OverlapEntry], merged: String, ingredients: [String]) -> [IngredientSurvival] {
        ingredients.map { ing in
            let os = overlaps.filter { ($0.first == merged && $0.second == ing) || ($0.first == ing && $0.second == merged) }
            let n = Double(max(os.count, 1))
            let types = Array(Set(os.map(\.moduleType))).sorted { (ReportText.moduleOrder($0), $0) < (ReportText.moduleOrder($1), $1) }
            return IngredientSurvival(
                ingredient: ing, matrices: os.count, meanPhi: os.reduce(0) { $0 + $1.overlap.phi } / n,
                chance: os.reduce(0) { $0 + $1.overlap.randomBaseline } / n,
                byModuleType: types.map { t in
                    let ts = os.filter { $0.moduleType == t }
                    return ByType(moduleType: t, meanPhi: ts.reduce(0) { $0 + $1.overlap.phi } / Double(ts.count))
                },
                lowest: os.sorted { $0.overlap.phi < $1.overlap.phi }.prefix(5).map { Matrix(name: $0.name, phi: $0.overlap.phi) })
        }
    }

    public static func text(_ entries: [IngredientSurvival], merged: String) -> String {
        var out = "what survives of each ingredient in \(merged): φ = ‖U_mᵀU_i‖F²/r of the top update directions (1 = all, chance ≈ r/m)\n"
        let types = entries.first?.byModuleType.map(\.moduleType) ?? []
        let w = max(12, (entries.map(\.ingredient.count).max() ?? 0) + 2)
        out += "  " + ReportText.pad("ingredient", w) + ReportText.pad("mean φ", 9, right: true) + ReportText.pad("chance", 8, right: true)
            + types.map { ReportText.pad($0, max(10, $0.count + 2), right: true) }.joined() + "\n"
        for e in entries {
            out += "  " + ReportText.pad(e.ingredient, w) + ReportText.pad(String(format: "%.3f", e.meanPhi), 9, right: true)
                + ReportText.pad(String(format: "%.3f", e.chance), 8, right: true)
                + types.map { t in ReportText.pad(e.byModuleType.first { $0.moduleType == t }.map { String(format: "%.3f", $0.meanPhi) } ?? "-", max(10, t.count + 2), right: true) }.joined() + "\n"
        }
        for e in entries where !e.lowest.isEmpty {
            out += "  least of \(e.ingredient) in: " + e.lowest.prefix(3).map { "\($0.name.replacingOccurrences(of: ".weight", with: "")) \(String(format: "%.3f", $0.phi))" }.joined(separator: ", ") + "\n"
        }
        return out
    }
}
