import Checkpoints
import Foundation

/// SVG plots of a `SpectralReport`, written by hand (no plotting dependency):
/// - `spectra.svg`: per matrix, σ_i/σ_1(W0) of W0 (grey) and of W for each fine-tune, log scale;
/// - `intruders-per-layer.svg`: intruder dimensions per layer at the primary ε, grouped by fine-tune;
/// - `cosines-<label>.svg`: per matrix, the heat map |y_jᵀ x_i| of W's top-k vs W0's top-k
///   left singular vectors (near-diagonal = aligned; a pale row = an intruder).
public enum SpectralPlots {
    static let palette = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
    static func n(_ x: Double) -> String { String(format: "%.1f", x) }

    /// Writes the plots as the folder `dir`, atomically, through `OutputFolder` (an existing
    /// non-empty folder only with `force`, and only a previous weightsmith output); returns the
    /// final file paths.
    @discardableResult
    public static func write(_ report: SpectralReport, to dir: URL, force: Bool = false, inputs: [URL] = []) throws -> [String] {
        let out = try OutputFolder.prepare(dir, inputs: inputs, force: force, command: "plots")
        return try write(report, with: out)
    }

    /// Writes the plots through an output prepared before the analysis; returns the final paths.
    @discardableResult
    public static func write(_ report: SpectralReport, with out: OutputFolder) throws -> [String] {
        let names = try out.write { staging in try writeFiles(report, into: staging) }
        return names.map { out.url.appendingPathComponent($0).path }
    }

    /// Writes the SVG files into `dir` (an existing folder, normally a staging folder); returns their names.
    public static func writeFiles(_ report: SpectralReport, into dir: URL) throws -> [String] {
        var files: [(String, String)] = [("spectra.svg", spectra(report)), ("intruders-per-layer.svg", intrudersPerLayer(report))]
        for ft in report.fineTunes {
            let safe = String(ft.label.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
            files.append(("cosines-\(safe).svg", cosines(ft, k: report.topK)))
        }
        var written: [String] = []
        for (name, text) in files {
            try writeFileAtomically(Array(text.utf8), to: dir.appendingPathComponent(name))
            written.append(name)
        }
        return written
    }

    static func header(_ w: Double, _ h: Double) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(w))\" height=\"\(n(h))\" viewBox=\"0 0 \(n(w)) \(n(h))\" font-family=\"sans-serif\" font-size=\"10\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    }

    static func matrixNames(_ report: SpectralReport) -> [String] {
        var seen = Set<String>(), out: [String] = []
        for ft in report.fineTunes { for m in ft.matrices where seen.insert(m.name).inserted { out.append(m.name) } }
        return out.sorted { a, b in
            let (la, ta) = parseModuleName(a), (lb, tb) = parseModuleName(b)
            return (la ?? -1, ReportText.moduleOrder(ta), a) < (lb ?? -1, ReportText.moduleOrder(tb), b)
        }
    }

    static func legend(_ report: SpectralReport, x: Double, y: Double, base: Bool) -> String {
        var s = ""
        var yy = y
        if base { s += "<line x1=\"\(n(x))\" y1=\"\(n(yy))\" x2=\"\(n(x + 18))\" y2=\"\(n(yy))\" stroke=\"#999\" stroke-width=\"2\"/><text x=\"\(n(x + 22))\" y=\"\(n(yy + 3))\">base W0</text>\n"; yy += 14 }
        for (i, ft) in report.fineTunes.enumerated() {
            s += "<line x1=\"\(n(x))\" y1=\"\(n(yy))\" x2=\"\(n(x + 18))\" y2=\"\(n(yy))\" stroke=\"\(palette[i % palette.count])\" stroke-width=\"2\"/><text x=\"\(n(x + 22))\" y=\"\(n(yy + 3))\">\(esc(ft.label))</text>\n"
            yy += 14
        }
        return s
    }

    static func spectra(_ report: SpectralReport) -> String {
        let names = matrixNames(report)
        let cols = 4, pw = 190.0, ph = 130.0, pad = 30.0
        let rows = (names.count + cols - 1) / cols
        let W = Double(cols) * (pw + pad) + pad, H = Double(rows) * (ph + pad + 12) + 70
        var s = header(W, H)
        s += "<text x=\"\(n(pad))\" y=\"20\" font-size=\"14\">Singular spectra σ_i / σ_1(W0), log scale (grey: base)</text>\n"
        s += legend(report, x: W - 150, y: 14, base: true)
        let decades = 4.0
        for (idx, name) in names.enumerated() {
            let x0 = pad + Double(idx % cols) * (pw + pad), y0 = 60 + Double(idx / cols) * (ph + pad + 12)
            s += "<rect x=\"\(n(x0))\" y=\"\(n(y0))\" width=\"\(n(pw))\" height=\"\(n(ph))\" fill=\"none\" stroke=\"#ccc\"/>\n"
            s += "<text x=\"\(n(x0))\" y=\"\(n(y0 - 3))\">\(esc(shortName(name)))</text>\n"
            let mats = report.fineTunes.map { ft in ft.matrices.first { $0.name == name } }
            guard let anyM = mats.compactMap({ $0 }).first, let s1 = anyM.sigmaBase.first, s1 > 0 else { continue }
            let q = anyM.sigmaBase.count
            func path(_ v: [Float], _ color: String, _ width: Double) -> String {
                guard v.count > 1 else { return "" }
                var d = ""
                for (i, x) in v.enumerated() {
                    let r = max(Double(x) / Double(s1), pow(10, -decades))
                    let px = x0 + Double(i) / Double(max(q - 1, 1)) * pw
                    let py = y0 + (-log10(r) / decades) * ph
                    d += (i == 0 ? "M" : "L") + n(px) + " " + n(min(max(py, y0 - 20), y0 + ph))
                }
                return "<path d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(width)\"/>\n"
            }
            s += path(anyM.sigmaBase, "#999", 2.5)
            for (i, m) in mats.enumerated() { if let m { s += path(m.sigmaTuned, palette[i % palette.count], 1.2) } }
            for dcd in 0...Int(decades) {
                let py = y0 + Double(dcd) / decades * ph
                s += "<text x=\"\(n(x0 - 3))\" y=\"\(n(py + 3))\" text-anchor=\"end\" font-size=\"7\">1e-\(dcd)</text>\n"
            }
        }
        return s + "</svg>\n"
    }

    static func shortName(_ name: String) -> String {
        let (l, t) = parseModuleName(name)
        return l.map { "layer \($0) \(t)" } ?? t
    }

    static func intrudersPerLayer(_ report: SpectralReport) -> String {
        let eps = report.epsilons.first ?? 0.5
        var layers = Set<Int>()
        for ft in report.fineTunes { for m in ft.matrices { layers.insert(m.layer ?? -1) } }
        let ls = layers.sorted()
        let counts = report.fineTunes.map { ft in ls.map { l in ft.matrices.filter { ($0.layer ?? -1) == l }.reduce(0) { $0 + ($1.intruders.count(at: eps) ?? 0) } } }
        let maxC = max(1, counts.flatMap { $0 }.max() ?? 1)
        let plotW = max(240, Double(ls.count) * (Double(report.fineTunes.count) * 16 + 14))
        let groupW = plotW / Double(max(ls.count, 1))
        let barW = min(30, (groupW - 14) / Double(max(report.fineTunes.count, 1)))
        let W = 50 + plotW + 170, H = 300.0, plotH = 200.0, x0 = 50.0, y0 = 50.0
        var s = header(W, H)
        s += "<text x=\"\(n(x0))\" y=\"20\" font-size=\"14\">Intruder dimensions per layer (top-\(report.topK), ε = \(String(format: "%.2f", eps)))</text>\n"
        s += legend(report, x: x0 + plotW + 20, y: y0 + 10, base: false)
        s += "<line x1=\"\(n(x0))\" y1=\"\(n(y0 + plotH))\" x2=\"\(n(x0 + Double(ls.count) * groupW))\" y2=\"\(n(y0 + plotH))\" stroke=\"black\"/>\n"
        let step = max(1, Int((Double(maxC) / 5).rounded(.up)))
        for t in stride(from: 0, through: maxC, by: step) {
            let v = Double(t)
            let py = y0 + plotH - v / Double(maxC) * plotH
            s += "<text x=\"\(n(x0 - 5))\" y=\"\(n(py + 3))\" text-anchor=\"end\">\(Int(v.rounded()))</text><line x1=\"\(n(x0))\" y1=\"\(n(py))\" x2=\"\(n(x0 + Double(ls.count) * groupW))\" y2=\"\(n(py))\" stroke=\"#eee\"/>\n"
        }
        for (li, l) in ls.enumerated() {
            let gx = x0 + Double(li) * groupW + 7
            for (fi, c) in counts.enumerated() {
                let h = Double(c[li]) / Double(maxC) * plotH
                s += "<rect x=\"\(n(gx + Double(fi) * barW))\" y=\"\(n(y0 + plotH - h))\" width=\"\(n(barW - 2))\" height=\"\(n(h))\" fill=\"\(palette[fi % palette.count])\"><title>\(c[li])</title></rect>\n"
            }
            for (fi, c) in counts.enumerated() where c[li] == 0 {
                s += "<text x=\"\(n(gx + (Double(fi) + 0.5) * barW - 1))\" y=\"\(n(y0 + plotH - 4))\" text-anchor=\"middle\" font-size=\"9\" fill=\"\(palette[fi % palette.count])\">0</text>\n"
            }
            s += "<text x=\"\(n(gx + Double(counts.count) * barW / 2))\" y=\"\(n(y0 + plotH + 14))\" text-anchor=\"middle\">\(l < 0 ? "-" : String(l))</text>\n"
        }
        s += "<text x=\"\(n(x0 + Double(ls.count) * groupW / 2))\" y=\"\(n(y0 + plotH + 32))\" text-anchor=\"middle\">layer</text>\n"
        return s + "</svg>\n"
    }

    static func cosines(_ ft: FineTuneReport, k: Int) -> String {
        let mats = ft.matrices.sorted { a, b in ((a.layer ?? -1), ReportText.moduleOrder(a.moduleType), a.name) < ((b.layer ?? -1), ReportText.moduleOrder(b.moduleType), b.name) }
        let cell = 9.0, cols = 6, pad = 34.0
        let side = Double(k) * cell
        let rows = (mats.count + cols - 1) / cols
        let W = Double(cols) * (side + pad) + pad, H = Double(rows) * (side + pad + 10) + 60
        var s = header(W, H)
        s += "<text x=\"\(n(pad))\" y=\"20\" font-size=\"14\">\(esc(ft.label)): |cos| of W's top-\(k) (rows) vs W0's top-\(k) (columns) left singular vectors</text>\n"
        s += "<text x=\"\(n(pad))\" y=\"36\">dark = aligned; a row with no dark cell is a direction W0 does not have (▲ = intruder)</text>\n"
        for (idx, m) in mats.enumerated() {
            let x0 = pad + Double(idx % cols) * (side + pad), y0 = 56 + Double(idx / cols) * (side + pad + 10)
            s += "<text x=\"\(n(x0))\" y=\"\(n(y0 - 3))\" font-size=\"8\">\(esc(shortName(m.name)))</text>\n"
            let kk = m.intruders.maxCosines.count
            let hk = kk == 0 ? 0 : m.intruders.topCosines.count / kk
            for j in 0..<kk {
                for i in 0..<hk {
                    let v = Double(m.intruders.topCosines[j * hk + i])
                    let g = Int((1 - v) * 255)
                    s += "<rect x=\"\(n(x0 + Double(i) * cell))\" y=\"\(n(y0 + Double(j) * cell))\" width=\"\(n(cell))\" height=\"\(n(cell))\" fill=\"rgb(\(g),\(g),\(min(255, g + 40)))\"/>"
                }
                if m.intruders.intruders.contains(where: { $0.rank == j }) {
                    s += "<text x=\"\(n(x0 + Double(hk) * cell + 2))\" y=\"\(n(y0 + Double(j) * cell + cell - 1))\" font-size=\"8\" fill=\"#d62728\">▲</text>"
                }
                s += "\n"
            }
        }
        return s + "</svg>\n"
    }
}
