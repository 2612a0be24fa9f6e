import Foundation

/// Terminal rendering of a `SpectralReport`: one row per (layer, module), the columns of each
/// fine-tune side by side, the update-subspace overlap of each pair, and a summary block.
public enum ReportText {
    static let bars: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

    /// One character per value in [0, 1] (higher = taller).
    public static func sparkline(_ values: [Float]) -> String {
        String(values.map { v in bars[max(0, min(bars.count - 1, Int((Double(v) * Double(bars.count)).rounded(.down))))] })
    }

    static func pad(_ s: String, _ w: Int, right: Bool = false) -> String {
        let n = s.count
        if n >= w { return s }
        return right ? String(repeating: " ", count: w - n) + s : s + String(repeating: " ", count: w - n)
    }

    static func f(_ x: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", x) }

    static func describe(_ ft: FineTuneReport) -> String {
        if ft.kind == .lora, let r = ft.loraRank, let a = ft.loraAlpha {
            let s = (ft.useRSLoRA ?? false) ? a / Double(r).squareRoot() : a / Double(r)
            return "LoRA r=\(r) alpha=\(f(a, a == a.rounded() ? 0 : 2))\((ft.useRSLoRA ?? false) ? " rsLoRA" : "") scale=\(f(s, 2))"
        }
        return "full fine-tune"
    }

    public static func render(_ report: SpectralReport) -> String {
        let eps = report.epsilons.first ?? 0.5
        var out = "base: \(report.base)\n"
        for ft in report.fineTunes { out += "\(ft.label): \(ft.path) (\(describe(ft)))\n" }
        out += "intruders: top-\(report.topK) left singular vectors of W vs all of W0, ε = \(report.epsilons.map { f($0, 2) }.joined(separator: ", "))\n"
        out += "columns: rel = ‖ΔW‖F/‖W0‖F, erank = effective rank of ΔW, E@r = energy of ΔW in its top r directions,\n"
        out += "         intr = intruder dimensions at ε = \(f(eps, 2)), cos = max |cos| of each top-\(report.topK) vector of W with W0 (▁ low = intruder)\n"
        let pairs = Array(Set(report.overlaps.map { "\($0.first)\u{1}\($0.second)" })).sorted()
        if !pairs.isEmpty { out += "         φ = update-subspace overlap (‖U1ᵀU2‖F² / min(r1, r2) of ΔW's top directions; chance ≈ r/m)\n" }
        out += "\n"

        // Rows keyed by tensor name in the order of the first fine-tune that has them.
        var rowNames: [String] = []
        var seen = Set<String>()
        var byName: [[String: MatrixDiagnostics]] = []
        for ft in report.fineTunes {
            var d: [String: MatrixDiagnostics] = [:]
            for m in ft.matrices { d[m.name] = m; if seen.insert(m.name).inserted { rowNames.append(m.name) } }
            byName.append(d)
        }
        rowNames.sort { a, b in
            let (la, ta) = parseModuleName(a), (lb, tb) = parseModuleName(b)
            return (la ?? -1, moduleOrder(ta), a) < (lb ?? -1, moduleOrder(tb), b)
        }
        let k = report.topK
        let colW = 7 + 7 + 6 + 5 + k + 2
        var h1 = pad("", 6) + pad("", 11) + pad("", 10)
        var h2 = pad("layer", 6) + pad("module", 11) + pad("shape", 10)
        for ft in report.fineTunes {
            h1 += "│ " + pad(ft.label, colW - 1)
            h2 += "│ " + pad("rel", 7) + pad("erank", 7) + pad("E@r", 6) + pad("intr", 5) + pad("cos", k + 1)
        }
        for p in pairs { let s = p.split(separator: "\u{1}"); h1 += "│ " + pad("φ \(s[0])~\(s[1])", 8); h2 += "│ " + pad("φ", 8) }
        out += h1 + "\n" + h2 + "\n" + String(repeating: "─", count: h2.count) + "\n"
        var lastLayer: Int?? = .none
        for name in rowNames {
            let (layer, type) = parseModuleName(name)
            let first = byName.compactMap { $0[name] }.first!
            var line = pad(lastLayer == .some(layer) ? "" : (layer.map(String.init) ?? "-"), 6)
            lastLayer = .some(layer)
            line += pad(type, 11) + pad("\(first.rows)x\(first.cols)", 10)
            for d in byName {
                guard let m = d[name] else { line += "│ " + pad("(not adapted)", colW - 1); continue }
                let intr = m.intruders.count(at: eps) ?? 0
                line += "│ " + pad(f(m.relativeFrobenius), 7) + pad(f(m.effectiveRank, 1), 7) + pad(f(m.topEnergy * 100, 0) + "%", 6)
                    + pad(intr == 0 ? "·" : "\(intr)", 5) + pad(sparkline(m.intruders.maxCosines), k + 1)
            }
            for p in pairs {
                let s = p.split(separator: "\u{1}").map(String.init)
                if let o = report.overlaps.first(where: { $0.name == name && $0.first == s[0] && $0.second == s[1] }) {
                    line += "│ " + pad(f(o.overlap.phi, 2), 8)
                } else { line += "│ " + pad("-", 8) }
            }
            out += line + "\n"
        }
        out += renderIntruderDetails(report, rowNames: rowNames, byName: byName)
        out += "\n" + renderSummary(report)
        if let alpha = report.alpha { out += "\n" + alpha.text() }
        if let forgetting = report.forgetting { out += "\n" + forgetting.text() }
        if let survival = report.survival, let merged = report.fineTunes.first?.label {
            out += "\n" + IngredientSurvival.text(survival, merged: merged)
        }
        return out
    }

    /// Per fine-tune, the intruders of each matrix: rank in W, σ relative to σ1(W0), max |cos|.
    static func renderIntruderDetails(_ report: SpectralReport, rowNames: [String], byName: [[String: MatrixDiagnostics]], maxLines: Int = 8) -> String {
        let eps = report.epsilons.first ?? 0.5
        var out = ""
        for (fi, ft) in report.fineTunes.enumerated() {
            let with = rowNames.compactMap { byName[fi][$0] }.filter { !$0.intruders.intruders.isEmpty }
            guard !with.isEmpty else { continue }
            out += "\n\(ft.label): intruders at ε = \(f(eps, 2)) as #rank(σ/σ1(W0), max|cos|)\n"
            for m in with.prefix(maxLines) {
                let (l, t) = parseModuleName(m.name)
                out += "  " + pad(l.map { "layer \($0) \(t)" } ?? t, 20)
                    + m.intruders.intruders.map { "#\($0.rank)(\(f(Double($0.sigmaRelativeToBase), 2)), \(f(Double($0.maxCosine), 2)))" }.joined(separator: " ") + "\n"
            }
            if with.count > maxLines { out += "  … \(with.count - maxLines) more matrices with intruders (all of them in --json)\n" }
        }
        return out
    }

    static func moduleOrder(_ t: String) -> Int {
        ["q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "gate_proj", "up_proj", "gate_up_proj", "down_proj"].firstIndex(of: t) ?? 100
    }

    public static func renderSummary(_ report: SpectralReport) -> String {
        let eps = report.epsilons.first ?? 0.5
        var rows: [(String, [String])] = []
        let fts = report.fineTunes
        rows.append(("", fts.map(\.label)))
        rows.append(("kind", fts.map(describe)))
        for e in report.epsilons {
            rows.append(("intruder dimensions (ε=\(f(e, 2)))", fts.map { ft in "\(ft.summary.totalIntruders.first { $0.epsilon == e }?.count ?? 0)" }))
        }
        rows.append(("matrices with intruders (ε=\(f(eps, 2)))", fts.map { "\($0.summary.matricesWithIntruders) / \($0.summary.matrixCount)" }))
        rows.append(("mean effective rank of ΔW", fts.map { f($0.summary.meanEffectiveRank, 1) }))
        rows.append(("mean stable rank of ΔW", fts.map { f($0.summary.meanStableRank, 2) }))
        rows.append(("mean ‖ΔW‖F/‖W0‖F", fts.map { f($0.summary.meanRelativeFrobenius) }))
        rows.append(("mean amplification ‖ΔW‖F/‖UᵀW0V‖F", fts.map { $0.summary.meanAmplification.map { f($0, 2) } ?? "-" }))
        rows.append(("update concentrates in (module)", fts.map { $0.summary.updateShareByModuleType.first.map { "\($0.name) \(f($0.share * 100, 0))%" } ?? "-" }))
        rows.append(("update concentrates in (layer)", fts.map { $0.summary.updateShareByLayer.first.map { "\($0.name) \(f($0.share * 100, 0))%" } ?? "-" }))
        let w0 = rows.map(\.0.count).max() ?? 0
        let ws = (0..<fts.count).map { i in rows.map { $0.1[i].count }.max() ?? 0 }
        var out = "summary\n"
        for (label, vals) in rows {
            out += "  " + pad(label, w0 + 2) + vals.enumerated().map { pad($0.element, ws[$0.offset] + 3, right: false) }.joined() + "\n"
        }
        var pairs: [String: [OverlapEntry]] = [:]
        for o in report.overlaps { pairs["\(o.first) vs \(o.second)", default: []].append(o) }
        for (p, os) in pairs.sorted(by: { $0.key < $1.key }) {
            let mean = os.reduce(0) { $0 + $1.overlap.phi } / Double(os.count)
            let chance = os.reduce(0) { $0 + $1.overlap.randomBaseline } / Double(os.count)
            out += "  update-subspace overlap φ, \(p): mean \(f(mean, 3)) over \(os.count) matrices (chance level \(f(chance, 3)))\n"
        }
        for n in report.notes { out += "  note: \(n)\n" }
        return out
    }
}
