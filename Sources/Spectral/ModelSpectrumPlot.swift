import Checkpoints
import Foundation

/// `spectrum MODEL --plots DIR`: `alpha-by-layer.svg`, WeightWatcher's α of every matrix against
/// its layer, one panel per module type on one shared scale, with the 2-6 band weightwatcher
/// calls well trained shaded; points outside it are drawn hollow and red, points above the scale
/// as a triangle on its top edge with their value. Matrices without a layer (embeddings, the
/// head) are listed under the panels.
public enum ModelSpectrumPlot {
    static func n(_ x: Double) -> String { String(format: "%.1f", x) }

    public static func alphaByLayer(_ report: ModelSpectrumReport) -> String {
        let fitted = report.layers.filter { $0.status == "success" }
        let layered = fitted.filter { $0.layer != nil }
        let types = Array(Set(layered.map(\.moduleType))).sorted { (ReportText.moduleOrder($0), $0) < (ReportText.moduleOrder($1), $1) }
        let maxLayer = layered.compactMap(\.layer).max() ?? 0
        // Shared y scale: up to the 95th percentile of α (at least 8), so one outlier does not flatten the rest.
        let sorted = fitted.map(\.alpha).sorted()
        let p95 = sorted.isEmpty ? 8 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.95))]
        let yMax = max(8, (p95 + 1).rounded(.up))
        let cols = min(4, max(1, types.count)), rows = max(1, (types.count + cols - 1) / cols)
        let pw = 220.0, ph = 150.0, gapX = 50.0, gapY = 60.0, x0 = 50.0, y0 = 60.0
        let others = fitted.filter { $0.layer == nil }
        let W = x0 + Double(cols) * (pw + gapX), H = y0 + Double(rows) * (ph + gapY) + (others.isEmpty ? 10 : 30)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(W))\" height=\"\(n(H))\" viewBox=\"0 0 \(n(W)) \(n(H))\" font-family=\"sans-serif\" font-size=\"10\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        let title = URL(fileURLWithPath: report.model).lastPathComponent
        s += "<text x=\"\(n(x0))\" y=\"22\" font-size=\"14\">Power-law exponent α of each matrix's ESD by layer: \(SpectralPlots.esc(title))</text>\n"
        s += "<text x=\"\(n(x0))\" y=\"40\" fill=\"#555\">weightwatcher 0.7.7's fit; shaded: 2 ≤ α ≤ 6; red hollow: outside (α &lt; 2 over-trained, α &gt; 6 under-trained); ▲: above \(Int(yMax)) (value beside)</text>\n"
        for (i, t) in types.enumerated() {
            let px = x0 + Double(i % cols) * (pw + gapX), py = y0 + Double(i / cols) * (ph + gapY)
            func X(_ l: Int) -> Double { px + (maxLayer == 0 ? pw / 2 : Double(l) / Double(maxLayer) * pw) }
            func Y(_ a: Double) -> Double { py + ph - min(a, yMax) / yMax * ph }
            s += "<rect x=\"\(n(px))\" y=\"\(n(Y(6)))\" width=\"\(n(pw))\" height=\"\(n(Y(2) - Y(6)))\" fill=\"#e8f4e8\"/>\n"
            s += "<rect x=\"\(n(px))\" y=\"\(n(py))\" width=\"\(n(pw))\" height=\"\(n(ph))\" fill=\"none\" stroke=\"#999\"/>\n"
            s += "<text x=\"\(n(px + pw / 2))\" y=\"\(n(py - 6))\" text-anchor=\"middle\" font-size=\"12\">\(SpectralPlots.esc(t))</text>\n"
            let step = yMax > 12 ? 4.0 : 2.0
            for v in stride(from: 0.0, through: yMax, by: step) {
                s += "<line x1=\"\(n(px - 3))\" y1=\"\(n(Y(v)))\" x2=\"\(n(px))\" y2=\"\(n(Y(v)))\" stroke=\"#999\"/><text x=\"\(n(px - 5))\" y=\"\(n(Y(v) + 3))\" text-anchor=\"end\">\(Int(v))</text>\n"
            }
            let tick = max(1, (maxLayer + 1) / 6)
            for l in stride(from: 0, through: maxLayer, by: tick) {
                s += "<text x=\"\(n(X(l)))\" y=\"\(n(py + ph + 13))\" text-anchor=\"middle\">\(l)</text>\n"
            }
            s += "<text x=\"\(n(px + pw / 2))\" y=\"\(n(py + ph + 26))\" text-anchor=\"middle\" fill=\"#555\">layer</text>\n"
            let pts = layered.filter { $0.moduleType == t }.sorted { $0.layer! < $1.layer! }
            if pts.count > 1 {
                s += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1\" points=\"" + pts.map { "\(n(X($0.layer!))),\(n(Y($0.alpha)))" }.joined(separator: " ") + "\"/>\n"
            }
            for p in pts {
                let x = X(p.layer!), tip = "\(SpectralPlots.esc(p.name)): α = \(String(format: "%.3f", p.alpha))"
                if p.alpha > yMax {
                    s += "<path d=\"M \(n(x - 4)) \(n(py + 7)) L \(n(x + 4)) \(n(py + 7)) L \(n(x)) \(n(py)) Z\" fill=\"#d62728\"><title>\(tip)</title></path>"
                    s += "<text x=\"\(n(x + 5))\" y=\"\(n(py + 9))\" font-size=\"8\" fill=\"#d62728\">\(String(format: "%.0f", p.alpha))</text>\n"
                } else if p.alpha < 2 || p.alpha > 6 {
                    s += "<circle cx=\"\(n(x))\" cy=\"\(n(Y(p.alpha)))\" r=\"3\" fill=\"white\" stroke=\"#d62728\" stroke-width=\"1.5\"><title>\(tip)</title></circle>\n"
                } else {
                    s += "<circle cx=\"\(n(x))\" cy=\"\(n(Y(p.alpha)))\" r=\"2.5\" fill=\"#1f77b4\"><title>\(tip)</title></circle>\n"
                }
            }
        }
        if !others.isEmpty {
            let y = y0 + Double(rows) * (ph + gapY)
            s += "<text x=\"\(n(x0))\" y=\"\(n(y))\">not in a layer: " + others.map { "\(SpectralPlots.esc($0.name)) α = \(String(format: "%.2f", $0.alpha))" }.joined(separator: ", ") + "</text>\n"
        }
        return s + "</svg>\n"
    }

    /// Writes `alpha-by-layer.svg` through an output folder prepared before the analysis.
    @discardableResult
    public static func write(_ report: ModelSpectrumReport, with out: OutputFolder) throws -> [String] {
        let names = try out.write { staging in
            try writeFileAtomically(Array(alphaByLayer(report).utf8), to: staging.appendingPathComponent("alpha-by-layer.svg"))
            return ["alpha-by-layer.svg"]
        }
        return names.map { out.url.appendingPathComponent($0).path }
    }
}
