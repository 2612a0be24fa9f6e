import Foundation

/// One row of a repair measurement: the base, the fine-tune (λ = 1) or one λ.
///
/// forgetting = forgetting loss − the base's forgetting loss (the paper's "increase of the
/// pre-training loss over the base", Shuttleworth et al. 2024, §5). The two percentages are the
/// paper's pair for Tables 3 and 4, relative to the unrepaired fine-tune: (EM_λ − EM_1) / EM_1
/// and (F_λ − F_1) / |F_1|, both × 100; nil when the reference is 0 or not measured.
public struct RepairSweepRow: Sendable, Codable, Equatable {
    public var label: String
    public var lambda: Double?
    public var exactMatch: Double?
    public var taskNLL: Double?
    public var forgettingLoss: Double?
    public var forgetting: Double?
    public var taskChangePercent: Double?
    public var forgettingChangePercent: Double?
    /// ‖W' − W‖_F over all changed matrices.
    public var changeNorm: Double

    public init(label: String, lambda: Double?, exactMatch: Double?, taskNLL: Double?, forgettingLoss: Double?, forgetting: Double?,
                taskChangePercent: Double?, forgettingChangePercent: Double?, changeNorm: Double) {
        self.label = label; self.lambda = lambda; self.exactMatch = exactMatch; self.taskNLL = taskNLL
        self.forgettingLoss = forgettingLoss; self.forgetting = forgetting; self.taskChangePercent = taskChangePercent
        self.forgettingChangePercent = forgettingChangePercent; self.changeNorm = changeNorm
    }

    /// (x − ref) / |ref| × 100, nil when either is missing or ref is 0.
    public static func percentChange(_ x: Double?, _ ref: Double?) -> Double? {
        guard let x, let ref, ref != 0 else { return nil }
        return (x - ref) / abs(ref) * 100
    }

    enum CodingKeys: String, CodingKey {
        case label, lambda, forgetting
        case exactMatch = "exact_match"
        case taskNLL = "task_nll"
        case forgettingLoss = "forgetting_loss"
        case taskChangePercent = "task_change_percent"
        case forgettingChangePercent = "forgetting_change_percent"
        case changeNorm = "change_norm"
    }
}

/// What `weightsmith repair` did: the changed matrices at the output λ and, when measured, the sweep.
public struct RepairReport: Sendable, Codable {
    public var base: String
    public var fineTune: String
    public var kind: String
    public var target: String
    public var epsilon: Double
    public var topK: Int
    public var lambda: Double
    public var matrices: Int
    public var matricesWithIntruders: Int
    public var intrudersTotal: Int
    public var changes: [RepairChange]
    public var sweep: [RepairSweepRow]?
    /// Time of the one decomposition per matrix (shared by every λ).
    public var decompositionSeconds: Double
    public var decompositions: Int
    public var evaluationSeconds: Double?
    public var totalSeconds: Double
    public var output: String?
    public var asAdapter: Bool
    public var notes: [String] = []

    public init(base: String, fineTune: String, kind: String, target: String, epsilon: Double, topK: Int, lambda: Double, matrices: Int,
                matricesWithIntruders: Int, intrudersTotal: Int, changes: [RepairChange], sweep: [RepairSweepRow]?, decompositionSeconds: Double,
                decompositions: Int, evaluationSeconds: Double?, totalSeconds: Double, output: String?, asAdapter: Bool) {
        self.base = base; self.fineTune = fineTune; self.kind = kind; self.target = target; self.epsilon = epsilon; self.topK = topK
        self.lambda = lambda; self.matrices = matrices; self.matricesWithIntruders = matricesWithIntruders; self.intrudersTotal = intrudersTotal
        self.changes = changes; self.sweep = sweep; self.decompositionSeconds = decompositionSeconds; self.decompositions = decompositions
        self.evaluationSeconds = evaluationSeconds; self.totalSeconds = totalSeconds; self.output = output; self.asAdapter = asAdapter
    }

    enum CodingKeys: String, CodingKey {
        case base, kind, target, epsilon, lambda, matrices, changes, sweep, decompositions, output, notes
        case fineTune = "fine_tune"
        case topK = "top_k"
        case matricesWithIntruders = "matrices_with_intruders"
        case intrudersTotal = "intruders_total"
        case decompositionSeconds = "decomposition_seconds"
        case evaluationSeconds = "evaluation_seconds"
        case totalSeconds = "total_seconds"
        case asAdapter = "as_adapter"
    }

    public func json() throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try enc.encode(self), as: UTF8.self)
    }

    public func text() -> String {
        var s = "repair (\(target), ε = \(fmt(epsilon)), top-k \(topK)) of \(fineTune) on \(base)\n"
        s += "\(matrices) matrices, \(matricesWithIntruders) with intruders (\(intrudersTotal) intruders in all); "
        s += "\(changes.count) changed at λ = \(fmt(lambda))\n"
        if !changes.isEmpty {
            s += pad("matrix", 44) + lpad("rank", 5) + lpad("σ", 10) + lpad("max cos", 9) + lpad("intr.", 6) + lpad("‖ΔW'−ΔW‖", 11)
            if changes.contains(where: { $0.adapterTruncation != nil }) { s += lpad("trunc.", 10) }
            s += "\n"
            for c in changes {
                let d = c.directions
                s += pad(c.name, 44) + lpad(d.map { "\($0.rank)" }.joined(separator: ","), 5)
                s += lpad(String(format: "%.4g", d.first?.sigma ?? 0), 10) + lpad(String(format: "%.3f", d.first?.maxCosine ?? 0), 9)
                s += lpad("\(c.intruders)", 6) + lpad(String(format: "%.4g", c.changeNorm), 11)
                if let t = c.adapterTruncation { s += lpad(String(format: "%.2e", t), 10) }
                s += "\n"
            }
        }
        if let sweep {
            s += "\n" + pad("", 12) + lpad("task EM", 9) + lpad("task NLL", 10) + lpad("forget loss", 12) + lpad("forgetting", 11)
                + lpad("Δtask %", 9) + lpad("Δforget %", 10) + lpad("‖W'−W‖", 9) + "\n"
            for r in sweep {
                s += pad(r.label, 12) + lpad(opt(r.exactMatch, "%.3f"), 9) + lpad(opt(r.taskNLL, "%.4f"), 10)
                s += lpad(opt(r.forgettingLoss, "%.4f"), 12) + lpad(opt(r.forgetting, "%+.4f"), 11)
                s += lpad(opt(r.taskChangePercent, "%+.1f"), 9) + lpad(opt(r.forgettingChangePercent, "%+.1f"), 10)
                s += lpad(String(format: "%.3g", r.changeNorm), 9) + "\n"
            }
            s += String(format: "one decomposition per matrix: %d in %.2f s, reused by %d λ values", decompositions, decompositionSeconds,
                        sweep.filter { $0.lambda != nil && $0.lambda != 1 }.count)
            if let e = evaluationSeconds { s += String(format: "; scoring %.2f s", e) }
            s += "\n"
        }
        for n in notes { s += "note: \(n)\n" }
        if let output { s += "wrote \(output)\(asAdapter ? " (PEFT adapter)" : "")\n" }
        return s
    }

    func fmt(_ x: Double) -> String { String(format: "%g", x) }
    func opt(_ x: Double?, _ f: String) -> String { x.map { String(format: f, $0) } ?? "-" }
    func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count) }
    func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? " " + s : String(repeating: " ", count: w - s.count) + s }
}

/// The sweep as an SVG: task exact match (x) against forgetting (y), one point per λ joined in λ
/// order, the fine-tune (λ = 1) marked; the base (forgetting 0) is written beside the legend.
public enum RepairPlot {
    public static func svg(rows: [RepairSweepRow], title: String) -> String {
        let pts = rows.compactMap { r -> (String, Double, Double, Double?)? in
            guard let x = r.exactMatch ?? r.taskNLL.map({ -$0 }), let y = r.forgetting else { return nil }
            return (r.label, x, y, r.lambda)
        }
        let xLabel = rows.first?.exactMatch != nil ? "task exact match (held-out)" : "− task NLL (held-out)"
        let (w, h) = (680.0, 440.0), (l, r, t, b) = (80.0, 190.0, 50.0, 60.0)
        // The axes span the fine-tune and the repaired points; the base (forgetting 0 by definition,
        // usually far away) is written in the legend instead of squeezing the λ path into a corner.
        let basePoint = pts.first { $0.3 == nil }
        var xs = pts.filter { $0.3 != nil }.map(\.1), ys = pts.filter { $0.3 != nil }.map(\.2)
        if xs.isEmpty { xs = [0, 1] }; if ys.isEmpty { ys = [0, 1] }
        var (x0, x1) = (xs.min()!, xs.max()!), (y0, y1) = (ys.min()!, ys.max()!)
        if x1 - x0 < 1e-9 { x0 -= 0.05; x1 += 0.05 }
        if y1 - y0 < 1e-9 { y0 -= 0.05; y1 += 0.05 }
        let (px, py) = ((x1 - x0) * 0.08, (y1 - y0) * 0.08)
        x0 -= px; x1 += px; y0 -= py; y1 += py
        func X(_ v: Double) -> Double { l + (v - x0) / (x1 - x0) * (w - l - r) }
        func Y(_ v: Double) -> Double { h - b - (v - y0) / (y1 - y0) * (h - t - b) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(w / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        s += "<rect x=\"\(l)\" y=\"\(t)\" width=\"\(w - l - r)\" height=\"\(h - t - b)\" fill=\"none\" stroke=\"#444\"/>\n"
        for i in 0...4 {
            let vx = x0 + (x1 - x0) * Double(i) / 4, vy = y0 + (y1 - y0) * Double(i) / 4
            s += "<line x1=\"\(X(vx))\" y1=\"\(h - b)\" x2=\"\(X(vx))\" y2=\"\(h - b + 5)\" stroke=\"#444\"/>"
            s += "<text x=\"\(X(vx))\" y=\"\(h - b + 18)\" text-anchor=\"middle\">\(String(format: "%.3g", vx))</text>\n"
            s += "<line x1=\"\(l - 5)\" y1=\"\(Y(vy))\" x2=\"\(l)\" y2=\"\(Y(vy))\" stroke=\"#444\"/>"
            s += "<text x=\"\(l - 8)\" y=\"\(Y(vy) + 4)\" text-anchor=\"end\">\(String(format: "%.3g", vy))</text>\n"
        }
        s += "<text x=\"\((l + w - r) / 2)\" y=\"\(h - 18)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text transform=\"translate(20 \((t + h - b) / 2)) rotate(-90)\" text-anchor=\"middle\">forgetting (loss − base loss)</text>\n"
        // The λ path (λ ascending, through λ = 1), then the points.
        let path = pts.filter { $0.3 != nil }.sorted { $0.3! < $1.3! }
        if path.count > 1 {
            s += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"" + path.map { "\(X($0.1)),\(Y($0.2))" }.joined(separator: " ") + "\"/>\n"
        }
        for p in pts where p.3 != nil {
            let color = p.3 == 1 ? "#d62728" : "#1f77b4"
            // Labels point into the plot: to the left of points in its right half.
            let right = X(p.1) > (l + w - r) / 2
            s += "<circle cx=\"\(X(p.1))\" cy=\"\(Y(p.2))\" r=\"5\" fill=\"\(color)\"/>"
            s += "<text x=\"\(X(p.1) + (right ? -9 : 9))\" y=\"\(Y(p.2) + 4)\" text-anchor=\"\(right ? "end" : "start")\" fill=\"\(color)\">\(String(format: "λ = %g", p.3!))</text>\n"
        }
        // Legend outside the data, to the right.
        let lx = w - r + 14
        for (i, (c, name)) in [("#d62728", "fine-tune (λ = 1)"), ("#1f77b4", "repaired (λ < 1)")].enumerated() {
            let ly = t + 10 + Double(i) * 20
            s += "<circle cx=\"\(lx)\" cy=\"\(ly)\" r=\"5\" fill=\"\(c)\"/><text x=\"\(lx + 10)\" y=\"\(ly + 4)\">\(escape(name))</text>\n"
        }
        if let b = basePoint {
            s += "<text x=\"\(lx - 5)\" y=\"\(t + 62)\">base: forgetting 0,</text>\n"
            s += "<text x=\"\(lx - 5)\" y=\"\(t + 78)\">\(escape(xLabel.components(separatedBy: " (").first ?? "")) \(String(format: "%.3g", b.1))</text>\n"
        }
        s += "</svg>\n"
        return s
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
