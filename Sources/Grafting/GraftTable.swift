import Foundation
import Transformer

/// Builds the graft table: the base, the fine-tune and the magnitude graft at each sparsity,
/// scored on held-out prompt/completion pairs (mean NLL and greedy exact match, as
/// `weightsmith eval`), and chooses the sparsity to write.
///
/// Each graft is evaluated in place on the base model (the kept entries are swapped in, scored,
/// and swapped back), so no third model is held in memory.
public enum GraftTable {
    public struct Result: Sendable {
        public var report: GraftReport
        /// One mask per requested sparsity, in the order requested.
        public var masks: [GraftMask]
        public var chosenMask: GraftMask { masks[report.rows.filter { $0.kind == .graft }.firstIndex { $0.sparsity == report.chosenSparsity }!] }
    }

    /// - Parameters:
    ///   - base, tuned: the two models; `pair` must be built from their parameters.
    ///   - heldOut: tokenized (prompt, completion) pairs, or nil to skip scoring.
    ///   - pick: write this sparsity (one of `sparsities`) instead of the automatic choice.
    ///   - target: the share of the fine-tune's gain a graft must keep to be chosen (0.95).
    ///   - progress: called with a short message before each evaluation.
    public static func run(pair: GraftPair, base: TransformerModel, tuned: TransformerModel, sparsities: [Double],
                           heldOut: [([Int], [Int])]?, heldOutName: String? = nil, pick: Double? = nil, target: Double = 0.95,
                           progress: (String) -> Void = { _ in }) throws -> Result {
        precondition(base.parameters === pair.base, "pair must be built from the base model's parameters")
        guard !sparsities.isEmpty else { throw GraftError.invalidSettings("give at least one sparsity") }
        if let pick, !sparsities.contains(pick) { throw GraftError.pickNotRequested(pick: pick, requested: sparsities) }
        let counts = try sparsities.map { try pair.keptCount(sparsity: $0) }
        let masks = MagnitudeGraft.select(pair, counts: counts)
        let total = pair.totalEnergy()

        func score(_ model: TransformerModel) throws -> EvaluationResult? {
            guard let heldOut else { return nil }
            return try Evaluator.evaluate(model: model, tokenized: heldOut)
        }
        progress("scoring the base")
        let baseScore = try score(base)
        progress("scoring the fine-tune")
        let tunedScore = try score(tuned)
        var rows = [GraftRow(kind: .base, sparsity: nil, kept: nil, energyKept: 0, score: baseScore),
                    GraftRow(kind: .tuned, sparsity: nil, kept: nil, energyKept: 1, score: tunedScore)]
        let emGain = (tunedScore?.exactMatch ?? 0) - (baseScore?.exactMatch ?? 0)
        let nllGain = (baseScore?.meanNLL ?? 0) - (tunedScore?.meanNLL ?? 0)
        for (s, m) in zip(sparsities, masks) {
            progress("scoring the graft at sparsity \(s) (k = \(m.count))")
            let sc = try m.withApplied(to: base.parameters, pair: pair) { try score(base) }
            var row = GraftRow(kind: .graft, sparsity: s, kept: m.count, energyKept: total > 0 ? m.energy(pair) / total : 0, score: sc)
            if let sc, let b = baseScore {
                if abs(emGain) > 1e-12, let e = sc.exactMatch, let eb = b.exactMatch { row.emRecovered = (e - eb) / emGain }
                if abs(nllGain) > 1e-12 { row.nllRecovered = (b.meanNLL - sc.meanNLL) / nllGain }
            }
            rows.append(row)
        }

        let chosen: Double, reason: String
        let graftRows = rows.filter { $0.kind == .graft }
        if let pick {
            chosen = pick; reason = "chosen with --pick"
        } else if heldOut != nil, emGain > 1e-12 || nllGain > 1e-12 {
            let useEM = emGain > 1e-12
            let what = useEM ? "exact-match" : "NLL"
            let ordered = graftRows.sorted { $0.sparsity! < $1.sparsity! }
            if let r = ordered.first(where: { (GraftReport.primaryRecovery($0, emGain: useEM) ?? -.infinity) >= target - 1e-12 }) {
                chosen = r.sparsity!
                reason = "the smallest sparsity keeping at least \(Int((100 * target).rounded()))% of the fine-tune's \(what) gain"
            } else {
                // The most of the primary gain; among equals, the most of the NLL gain, then the smaller sparsity.
                func key(_ r: GraftRow) -> (Double, Double) {
                    (GraftReport.primaryRecovery(r, emGain: useEM) ?? -.infinity, r.nllRecovered ?? -.infinity)
                }
                let best = ordered.max { key($0) < key($1) }!
                chosen = best.sparsity!
                reason = "no sparsity keeps \(Int((100 * target).rounded()))% of the fine-tune's \(what) gain; the one keeping the most"
                    + (useEM ? " (then the most NLL gain)" : "")
            }
        } else {
            chosen = sparsities[0]
            reason = heldOut == nil ? "the first listed (no held-out data)" : "the first listed (the fine-tune gains nothing on the held-out data)"
        }
        let report = GraftReport(method: "magnitude", basePath: pair.basePath, tunedPath: pair.tunedPath,
                                 eligibility: pair.eligibility.description, eligibleParameters: pair.eligibleCount,
                                 eligibleTensors: pair.tensors.count, heldOut: heldOut == nil ? nil : (heldOutName ?? "held-out"),
                                 rows: rows, chosenSparsity: chosen, chosenReason: reason, training: nil)
        return Result(report: report, masks: masks)
    }
}

extension GraftTable {
    /// Adds the row of a saved mask (`graft --mask`), scored like the others, and marks it as the
    /// one written (a trained mask started from it replaces it as the written row).
    public static func appendSaved(report: GraftReport, pair: GraftPair, base: TransformerModel, mask: GraftMask,
                                   heldOut: [([Int], [Int])]?, source: String) throws -> GraftReport {
        var r = report
        r.rows.append(try row(kind: .saved, report: report, pair: pair, base: base, mask: mask, heldOut: heldOut))
        r.method = "saved-mask"
        r.chosenReason = "the saved mask \(source)"
        return r
    }

    /// A scored row of `mask`; shares of the gain against the report's base and fine-tune rows.
    static func row(kind: GraftRow.Kind, report: GraftReport, pair: GraftPair, base: TransformerModel, mask: GraftMask,
                    heldOut: [([Int], [Int])]?) throws -> GraftRow {
        let baseRow = report.rows.first { $0.kind == .base }, tunedRow = report.rows.first { $0.kind == .tuned }
        let sc = try heldOut.map { h in try mask.withApplied(to: base.parameters, pair: pair) { try Evaluator.evaluate(model: base, tokenized: h) } }
        let total = pair.totalEnergy()
        let density = Double(mask.count) / Double(pair.eligibleCount)
        var row = GraftRow(kind: kind, sparsity: density, kept: mask.count, energyKept: total > 0 ? mask.energy(pair) / total : 0, score: sc)
        if let sc, let b = baseRow?.score, let t = tunedRow?.score {
            let emGain = (t.exactMatch ?? 0) - (b.exactMatch ?? 0), nllGain = b.meanNLL - t.meanNLL
            if abs(emGain) > 1e-12 { row.emRecovered = ((sc.exactMatch ?? 0) - (b.exactMatch ?? 0)) / emGain }
            if abs(nllGain) > 1e-12 { row.nllRecovered = (b.meanNLL - sc.meanNLL) / nllGain }
        }
        return row
    }

    /// Adds the trained mask's row (scored like the others) and marks it as the one written.
    public static func appendTrained(report: GraftReport, pair: GraftPair, base: TransformerModel, tuned: TransformerModel,
                                     mask: GraftMask, heldOut: [([Int], [Int])]?, summary: GraftTrainingSummary) throws -> GraftReport {
        var r = report
        r.rows.append(try row(kind: .trained, report: report, pair: pair, base: base, mask: mask, heldOut: heldOut))
        r.method = "trained"
        r.chosenReason = report.method == "saved-mask" ? "the trained mask, from \(report.chosenReason)"
            : "the trained mask, from the magnitude graft at sparsity \(String(format: "%g", report.chosenSparsity)) (\(report.chosenReason))"
        r.training = summary
        return r
    }
}
