import Foundation
import Transformer

/// One row of the graft table: the base, the fine-tune, or a graft at one sparsity.
public struct GraftRow: Codable, Sendable, Equatable {
    /// `saved`: a mask read with `graft --mask` (a previous graft's or any sparse delta's entries).
    public enum Kind: String, Codable, Sendable { case base, tuned, graft, saved, trained }
    public var kind: Kind
    public var sparsity: Double?
    /// Kept entries (nil for base and tuned).
    public var kept: Int?
    /// Share of Σ τ² over the eligible tensors that the kept entries carry.
    public var energyKept: Double?
    /// Held-out score (nil without held-out data).
    public var score: EvaluationResult?
    /// Share of the fine-tune's exact-match gain kept: (EM_graft − EM_base) / (EM_tuned − EM_base).
    public var emRecovered: Double?
    /// Share of the fine-tune's NLL gain kept: (NLL_base − NLL_graft) / (NLL_base − NLL_tuned).
    public var nllRecovered: Double?

    enum CodingKeys: String, CodingKey {
        case kind, sparsity, kept, energyKept = "energy_kept", score, emRecovered = "em_recovered", nllRecovered = "nll_recovered"
    }
}

/// What `weightsmith graft` prints and records: one table for all sparsities, and the choice.
public struct GraftReport: Codable, Sendable {
    public var method: String
    public var basePath: String
    public var tunedPath: String
    public var eligibility: String
    public var eligibleParameters: Int
    public var eligibleTensors: Int
    public var heldOut: String?
    public var rows: [GraftRow]
    /// The sparsity written to the output, and why it was chosen.
    public var chosenSparsity: Double
    public var chosenReason: String
    /// Trained-mask details (nil for the magnitude graft).
    public var training: GraftTrainingSummary?

    enum CodingKeys: String, CodingKey {
        case method, basePath = "base", tunedPath = "tuned", eligibility, eligibleParameters = "eligible_parameters"
        case eligibleTensors = "eligible_tensors", heldOut = "held_out", rows, chosenSparsity = "chosen_sparsity"
        case chosenReason = "chosen_reason", training
    }

    /// The row written to the output: the trained mask when there is one, else a saved mask.
    public var chosenRow: GraftRow? {
        rows.first { $0.kind == .trained } ?? rows.first { $0.kind == .saved }
            ?? rows.first { $0.kind == .graft && $0.sparsity == chosenSparsity }
    }

    /// Share of the gain in `row` that counts for the choice: exact match when the fine-tune
    /// gains exact match on the held-out data, else NLL.
    static func primaryRecovery(_ row: GraftRow, emGain: Bool) -> Double? { emGain ? row.emRecovered : row.nllRecovered }

    public func json() throws -> String { try ReportColumns.json(self) }

    /// A fixed-width table: model, sparsity, k, τ energy kept, EM, NLL, shares of the gain kept.
    public func table() -> String {
        func pct(_ x: Double?) -> String { x.map { String(format: "%.1f%%", 100 * $0) } ?? "-" }
        var lines: [[String]] = [["model", "sparsity", "k", "|τ|² kept", "EM", "NLL", "EM gain kept", "NLL gain kept"]]
        for r in rows {
            let name: String
            switch r.kind {
            case .base: name = "base"
            case .tuned: name = "fine-tune"
            case .graft: name = r.sparsity == chosenSparsity && chosenRow?.kind == .graft ? "graft *" : "graft"
            case .saved: name = chosenRow?.kind == .saved ? "saved *" : "saved"
            case .trained: name = "trained *"
            }
            lines.append([name, r.sparsity.map { String(format: "%g", $0) } ?? "-", r.kept.map(String.init) ?? "-",
                          pct(r.energyKept), r.score?.exactMatch.map { String(format: "%.3f", $0) } ?? "-",
                          r.score.map { String(format: "%.4f", $0.meanNLL) } ?? "-", pct(r.emRecovered), pct(r.nllRecovered)])
        }
        if heldOut == nil { lines = lines.map { Array($0[0..<4]) } }
        return ReportColumns.render(lines)
    }

    /// The README written beside the grafted model.
    public func modelCard(files: [String]) -> String {
        var s = "# Grafted model (weightsmith graft)\n\n"
        s += "Method: \(method) graft (Panigrahi et al. 2023, \"Task-Specific Skill Localization in Fine-tuned Language Models\"): "
        s += "the base model with the fine-tune's values copied in at the kept entries only.\n\n"
        s += "- base: `\(basePath)`\n- fine-tune: `\(tunedPath)`\n"
        s += "- eligible tensors: \(eligibleTensors) (\(eligibleParameters) parameters; \(eligibility))\n"
        if let r = chosenRow {
            s += "- sparsity: \(String(format: "%g", r.sparsity ?? chosenSparsity)), k = \(r.kept ?? 0) kept entries (\(chosenReason))\n"
            if let sc = r.score {
                s += String(format: "- held-out (%@): exact match %.3f, mean NLL %.4f", heldOut ?? "-", sc.exactMatch ?? 0, sc.meanNLL)
                s += "; share of the fine-tune's gain kept: EM \(r.emRecovered.map { String(format: "%.1f%%", 100 * $0) } ?? "-"), NLL \(r.nllRecovered.map { String(format: "%.1f%%", 100 * $0) } ?? "-")\n"
            }
        }
        if let t = training {
            s += "- trained mask: \(t.steps) steps, lr \(t.learningRate), sigmoid bias \(t.sigmoidBias); best step \(t.bestStep) "
            s += "(train EM \(String(format: "%.3f", t.bestTrainScore)), validation EM \(String(format: "%.3f", t.bestValidationScore)))\n"
        }
        s += "\nFiles: " + files.map { "`\($0)`" }.joined(separator: ", ") + ". `graft.safetensors` is the mask as a weightsmith "
        s += "sparse delta (per tensor `NAME.idx`, int64 row-major indices, and `NAME.val`, tuned − base at those indices).\n\n"
        s += "```\n" + table() + "\n```\n"
        return s
    }
}

/// What the trained-mask loop did (Panigrahi et al. 2023, §3, the optimised graft).
public struct GraftTrainingSummary: Codable, Sendable {
    public var steps: Int
    public var learningRate: Double
    public var sigmoidBias: Double
    public var bestStep: Int
    public var bestTrainScore: Double
    public var bestValidationScore: Double
    public var initialCount: Int
    public var finalCount: Int
    enum CodingKeys: String, CodingKey {
        case steps, learningRate = "learning_rate", sigmoidBias = "sigmoid_bias", bestStep = "best_step"
        case bestTrainScore = "best_train_score", bestValidationScore = "best_validation_score"
        case initialCount = "initial_count", finalCount = "final_count"
    }
}
