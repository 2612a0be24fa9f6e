import Foundation

/// `interference --svg`: one heat map per pair of task vectors, layers down and module types
/// across, each cell one matrix's value of the chosen metric (its number written in the cell),
/// with one colour scale for every panel so that pairs compare at a glance.
public enum InterferencePlot {
    public enum Metric: String, CaseIterable, Sendable {
        case signConflict = "sign-conflict", cosine, overlap

        var title: String {
            switch self {
            case .signConflict: return "TIES sign conflict (share of entries kept in both with opposite signs)"
            case .cosine: return "cosine of the task vectors"
            case .overlap: return "overlap of the top singular subspaces"
            }
        }

        func value(_ m: Interference.Metrics) -> Double? {
            switch self {
            case .signConflict: return m.signConflict
            case .cosine: return m.cosine
            case .overlap: return m.overlap
            }
        }
    }

    /// Module types in the order of a transformer block, unknown ones after them by name.
    static let moduleOrder = ["q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "gate_proj", "up_proj", "gate_up_proj", "down_proj",
                              "c_attn", "c_proj", "c_fc", "query", "key", "value", "dense"]

    public static func svg(_ report: Interference.Report, metric: Metric = .signConflict) -> String {
        let types = Set(report.pairs.flatMap { $0.matrices.map(\.moduleType) })
        let columns = types.sorted { a, b in
            let (i, j) = (moduleOrder.firstIndex(of: a) ?? Int.max, moduleOrder.firstIndex(of: b) ?? Int.max)
            return i != j ? i < j : a < b
        }
        let layerValues = Set(report.pairs.flatMap { $0.matrices.compactMap(\.layer) }).sorted()
        let hasUnlayered = report.pairs.contains { $0.matrices.contains { $0.layer == nil } }
        let rows: [Int?] = layerValues.map { Optional($0) } + (hasUnlayered ? [nil] : [])
        let values = report.pairs.flatMap { $0.matrices.compactMap { metric.value($0.metrics) } }.filter(\.isFinite)
        var (lo, hi) = (values.min() ?? 0, values.max() ?? 1)
        if hi - lo < 1e-12 { lo -= 0.5; hi += 0.5 }

        // Layout: panels in a grid of at most three per row, a colour bar on the right.
        let cell = (w: 58.0, h: max(14.0, min(26.0, 360.0 / Double(max(rows.count, 1)))))
        let panel = (w: 70.0 + cell.w * Double(columns.count), h: 44.0 + cell.h * Double(rows.count) + 34.0)
        let perRow = min(3, max(report.pairs.count, 1))
        let gridRows = (report.pairs.count + perRow - 1) / perRow
        let (top, left, barW) = (56.0, 16.0, 110.0)
        let width = left + panel.w * Double(perRow) + 20 * Double(perRow - 1) + barW
        let height = top + panel.h * Double(max(gridRows, 1)) + 20 * Double(max(gridRows - 1, 0)) + 16
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(left)\" y=\"22\" font-size=\"15\">Interference per matrix: \(RepairPlot.escape(metric.title))</text>\n"
        s += "<text x=\"\(left)\" y=\"40\" fill=\"#555\">base \(RepairPlot.escape(report.base)); TIES trim density \(report.density), top-\(report.rank) subspaces; one cell per layer and module type</text>\n"
        for (k, pair) in report.pairs.enumerated() {
            let x0 = left + Double(k % perRow) * (panel.w + 20), y0 = top + Double(k / perRow) * (panel.h + 20)
            let gx = x0 + 62, gy = y0 + 40
            s += "<text x=\"\(gx)\" y=\"\(y0 + 14)\" font-size=\"12\" font-weight=\"bold\">\(RepairPlot.escape(pair.first)) × \(RepairPlot.escape(pair.second))</text>\n"
            let overall = metric.value(pair.overall).map { String(format: "%.3f", $0) } ?? "–"
            s += "<text x=\"\(gx)\" y=\"\(y0 + 29)\" fill=\"#555\">overall \(overall)</text>\n"
            var byKey: [String: Double] = [:]
            for m in pair.matrices { if let v = metric.value(m.metrics) { byKey["\(m.layer.map(String.init) ?? "-")|\(m.moduleType)"] = v } }
            for (r, layer) in rows.enumerated() {
                let y = gy + Double(r) * cell.h
                s += "<text x=\"\(gx - 6)\" y=\"\(y + cell.h / 2 + 4)\" text-anchor=\"end\">\(layer.map { "layer \($0)" } ?? "other")</text>\n"
                for (c, type) in columns.enumerated() {
                    let x = gx + Double(c) * cell.w
                    guard let v = byKey["\(layer.map(String.init) ?? "-")|\(type)"] else {
                        s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cell.w)\" height=\"\(cell.h)\" fill=\"#eee\" stroke=\"white\"/>\n"
                        continue
                    }
                    let t = v.isFinite ? (v - lo) / (hi - lo) : 0
                    let (fill, dark) = color(t)
                    s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cell.w)\" height=\"\(cell.h)\" fill=\"\(fill)\" stroke=\"white\"><title>\(RepairPlot.escape(type)) layer \(layer.map(String.init) ?? "-"): \(String(format: "%.4f", v))</title></rect>\n"
                    if cell.h >= 14 {
                        s += "<text x=\"\(x + cell.w / 2)\" y=\"\(y + cell.h / 2 + 4)\" text-anchor=\"middle\" font-size=\"10\" fill=\"\(dark ? "white" : "black")\">\(String(format: "%.2f", v))</text>\n"
                    }
                }
            }
            let by = gy + Double(rows.count) * cell.h
            for (c, type) in columns.enumerated() {
                let x = gx + Double(c) * cell.w + cell.w / 2
                s += "<text x=\"\(x)\" y=\"\(by + 14)\" text-anchor=\"middle\" font-size=\"10\">\(RepairPlot.escape(type))</text>\n"
            }
        }
        // Colour bar.
        let gridHeight = panel.h * Double(max(gridRows, 1)) + 20 * Double(max(gridRows - 1, 0))
        let bx = width - barW + 24, by = top + 40, bh = min(220, max(60, gridHeight - 60))
        for i in 0..<50 {
            let t = 1 - Double(i) / 49
            s += "<rect x=\"\(bx)\" y=\"\(by + Double(i) * bh / 50)\" width=\"16\" height=\"\(bh / 50 + 0.5)\" fill=\"\(color(t).fill)\"/>\n"
        }
        s += "<rect x=\"\(bx)\" y=\"\(by)\" width=\"16\" height=\"\(bh)\" fill=\"none\" stroke=\"#444\"/>\n"
        for i in 0...4 {
            let v = hi - (hi - lo) * Double(i) / 4, y = by + bh * Double(i) / 4
            s += "<text x=\"\(bx + 22)\" y=\"\(y + 4)\">\(String(format: "%.3f", v))</text>\n"
        }
        s += "<text x=\"\(bx - 4)\" y=\"\(by - 8)\">\(RepairPlot.escape(metric.rawValue))</text>\n"
        s += "</svg>\n"
        return s
    }

    /// A perceptually ordered scale (dark violet, blue, teal, green, yellow; viridis's anchors),
    /// and whether text on it should be white.
    static func color(_ t: Double) -> (fill: String, dark: Bool) {
        let anchors: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let x = min(max(t, 0), 1) * Double(anchors.count - 1)
        let i = min(Int(x), anchors.count - 2), f = x - Double(i)
        let (a, b) = (anchors[i], anchors[i + 1])
        let rgb = [a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, a.2 + (b.2 - a.2) * f].map { Int($0.rounded()) }
        return (String(format: "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]), t < 0.55)
    }
}
