import Foundation
import Transformer

/// Multi-task grafting stitched into one model: Localize-and-Stitch (He et al. 2024,
/// "Localize-and-Stitch: Efficient Model Merging via Sparse Task Arithmetic", §3). Each task's
/// fine-tune is localised to a graft mask m_t over the base (the magnitude graft of Panigrahi et
/// al. 2023, as the paper's dataless variant does, or any saved or trained mask), and the masks are
/// stitched: θ = θ_base + Σ_t (m_t / max(1, Σ_s m_s)) ⊙ τ_t. An entry kept by one task gets that
/// task's fine-tuned value, one kept by several the mean of their values, one kept by none the base.
///
/// Every task's `GraftPair` must share the base buffer and the eligible tensors (the same base
/// model and eligibility rule).
public enum GraftStitch {
    public struct Task {
        public let name: String
        public let pair: GraftPair
        public let mask: GraftMask
        public init(name: String, pair: GraftPair, mask: GraftMask) { self.name = name; self.pair = pair; self.mask = mask }
    }

    /// Checks that the tasks can be stitched: at least one, distinct names, one base buffer, the
    /// same eligible tensors, masks built over them.
    public static func check(_ tasks: [Task]) throws {
        guard let first = tasks.first else { throw GraftError.invalidSettings("stitching needs at least one task") }
        var names = Set<String>()
        for t in tasks {
            guard names.insert(t.name).inserted else { throw GraftError.invalidSettings("task name \"\(t.name)\" is given twice") }
            guard t.pair.base === first.pair.base else {
                throw GraftError.invalidSettings("task \(t.name): every task must be grafted onto the same base model")
            }
            guard t.pair.tensors.map(\.name) == first.pair.tensors.map(\.name) else {
                throw GraftError.invalidSettings("task \(t.name): the eligible tensors differ from task \(first.name)'s (use one --include rule)")
            }
            guard t.mask.parts.map(\.name) == t.pair.tensors.map(\.name) else {
                throw GraftError.invalidSettings("task \(t.name): its mask is not over the eligible tensors")
            }
        }
    }

    /// Sets `buffer` (the base's layout) to the stitched model. Per entry the arithmetic is the
    /// `localize_stitch` merge method's: Float(b + (Σ_t (f_t − b)) / count) in Float64, so an entry
    /// kept by a single task is that task's value bit for bit.
    public static func stitch(_ tasks: [Task], into buffer: ParameterBuffer) throws {
        try check(tasks)
        let pair0 = tasks[0].pair
        precondition(buffer.layout == pair0.base.layout, "the buffer must have the base's layout")
        buffer.base.update(from: pair0.base.base, count: pair0.base.layout.totalCount)
        for (j, entry) in pair0.tensors.enumerated() {
            guard tasks.contains(where: { !$0.mask.parts[j].indices.isEmpty }) else { continue }
            var sums = [Double](repeating: 0, count: entry.count)
            var counts = [Int32](repeating: 0, count: entry.count)
            let b = pair0.base.base + entry.baseOffset
            for t in tasks {
                let e = t.pair.tensors[j], f = t.pair.tuned.base + e.tunedOffset
                for i in t.mask.parts[j].indices {
                    sums[i] += Double(f[i]) - Double(b[i])
                    counts[i] += 1
                }
            }
            let out = buffer.base + entry.baseOffset
            for i in 0..<entry.count where counts[i] > 0 {
                out[i] = Float(Double(b[i]) + sums[i] / Double(counts[i]))
            }
        }
    }

    /// Entries kept by more than one task's mask (where the stitch averages).
    public static func sharedEntries(_ tasks: [Task]) -> Int {
        guard let first = tasks.first else { return 0 }
        var shared = 0
        for (j, entry) in first.pair.tensors.enumerated() where tasks.contains(where: { !$0.mask.parts[j].indices.isEmpty }) {
            var counts = [Int32](repeating: 0, count: entry.count)
            for t in tasks { for i in t.mask.parts[j].indices { counts[i] += 1 } }
            shared += counts.reduce(0) { $0 + ($1 > 1 ? 1 : 0) }
        }
        return shared
    }

    /// One task's scores on its held-out data.
    public struct TaskRow: Codable, Sendable {
        public var task: String
        public var tunedPath: String
        public var heldOut: String?
        public var kept: Int
        public var base: EvaluationResult?
        public var tuned: EvaluationResult?
        public var graft: EvaluationResult?
        public var stitched: EvaluationResult?
        enum CodingKeys: String, CodingKey { case task, tunedPath = "tuned_path", heldOut = "held_out", kept, base, tuned, graft, stitched }

        /// The share of the fine-tune's gain over the base that `score` keeps, by exact match or NLL.
        public func gainKept(_ score: EvaluationResult?, nll: Bool) -> Double? {
            guard let s = score, let b = base, let t = tuned else { return nil }
            if nll {
                let gain = b.meanNLL - t.meanNLL
                return abs(gain) > 1e-12 ? (b.meanNLL - s.meanNLL) / gain : nil
            }
            guard let e = s.exactMatch, let eb = b.exactMatch, let et = t.exactMatch, abs(et - eb) > 1e-12 else { return nil }
            return (e - eb) / (et - eb)
        }
    }

    public struct Report: Codable, Sendable {
        public var basePath: String
        public var selection: String
        public var eligibility: String
        public var eligibleParameters: Int
        public var sharedEntries: Int
        public var tasks: [TaskRow]
        enum CodingKeys: String, CodingKey {
            case basePath = "base_path", selection, eligibility, eligibleParameters = "eligible_parameters", sharedEntries = "shared_entries", tasks
        }

        public func json() throws -> String { try ReportColumns.json(self) }

        /// Per task with held-out data: the base, the fine-tune, the task's own graft and the
        /// stitched model on that data, with the share of the fine-tune's gain kept.
        public func table() -> String {
            func pct(_ x: Double?) -> String { x.map { String(format: "%.1f%%", 100 * $0) } ?? "-" }
            var lines: [[String]] = [["task", "model", "k", "EM", "NLL", "EM gain kept", "NLL gain kept"]]
            for r in tasks where r.heldOut != nil {
                for (label, score, k) in [("base", r.base, "-"), ("fine-tune", r.tuned, "-"), ("graft", r.graft, "\(r.kept)"),
                                          ("stitched", r.stitched, "-")] {
                    let keep = label == "graft" || label == "stitched"
                    lines.append([label == "base" ? r.task : "", label, k, score?.exactMatch.map { String(format: "%.3f", $0) } ?? "-",
                                  score.map { String(format: "%.4f", $0.meanNLL) } ?? "-",
                                  keep ? pct(r.gainKept(score, nll: false)) : "", keep ? pct(r.gainKept(score, nll: true)) : ""])
                }
            }
            return ReportColumns.render(lines)
        }

        public func modelCard(files: [String]) -> String {
            var s = "# Stitched model (weightsmith graft, several tasks)\n\n"
            s += "Localize-and-Stitch (He et al. 2024, §3): each task's fine-tune localised to a graft mask m_t "
            s += "(\(selection)), then θ = θ_base + Σ_t (m_t / max(1, Σ_s m_s)) ⊙ (θ_t − θ_base): "
            s += "each kept entry takes its task's value, entries kept by several tasks the mean of theirs.\n\n"
            s += "- base: `\(basePath)`\n"
            for t in tasks { s += "- task \(t.task): `\(t.tunedPath)`, k = \(t.kept)\(t.heldOut.map { ", held-out `\($0)`" } ?? "")\n" }
            s += "- eligible parameters: \(eligibleParameters) (\(eligibility)); entries in more than one mask: \(sharedEntries)\n"
            s += "\nFiles: " + files.map { "`\($0)`" }.joined(separator: ", ") + ". `graft-TASK.safetensors` is task TASK's mask as a "
            s += "weightsmith sparse delta (tuned − base at the kept entries).\n\n"
            if tasks.contains(where: { $0.heldOut != nil }) { s += "```\n" + table() + "\n```\n" }
            return s
        }
    }

    /// Scores every task with held-out data on the base, its fine-tune, its own graft and the
    /// stitched model (`stitched` holds the stitched parameters, the base's layout). Grafts are
    /// scored in place on `base` (swapped in and back).
    public static func report(_ tasks: [Task], base: TransformerModel, basePath: String, tuned: [TransformerModel],
                              stitched: TransformerModel, heldOut: [(name: String, pairs: [([Int], [Int])])?], selection: String,
                              progress: (String) -> Void = { _ in }) throws -> Report {
        try check(tasks)
        var rows: [TaskRow] = []
        for (k, t) in tasks.enumerated() {
            var row = TaskRow(task: t.name, tunedPath: t.pair.tunedPath, heldOut: heldOut[k]?.name, kept: t.mask.count)
            if let h = heldOut[k]?.pairs {
                progress("task \(t.name): scoring the base, the fine-tune, its graft and the stitched model")
                row.base = try Evaluator.evaluate(model: base, tokenized: h)
                row.tuned = try Evaluator.evaluate(model: tuned[k], tokenized: h)
                row.graft = try t.mask.withApplied(to: base.parameters, pair: t.pair) { try Evaluator.evaluate(model: base, tokenized: h) }
                row.stitched = try Evaluator.evaluate(model: stitched, tokenized: h)
            }
            rows.append(row)
        }
        let p = tasks[0].pair
        return Report(basePath: basePath, selection: selection, eligibility: p.eligibility.description, eligibleParameters: p.eligibleCount,
                      sharedEntries: sharedEntries(tasks), tasks: rows)
    }
}
