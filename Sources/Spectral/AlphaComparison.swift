import Foundation
import Checkpoints
import Tensors

/// WeightWatcher's power-law exponent α (see `ModelSpectrum`) of each analysed matrix before a
/// fine-tune (W0) and after it (W = W0 + ΔW; for a LoRA, W0 + s·BA), side by side for every
/// fine-tune. A smaller α is a heavier-tailed ESD (Martin & Mahoney 2021: α between 2 and 6 for
/// well-trained layers; below 2 "over-trained").
public struct AlphaComparison: Sendable, Codable {
    public struct Row: Sendable, Codable {
        public var name: String
        public var layer: Int?
        public var moduleType: String
        public var base: Double
        /// One per fine-tune, nil where the fine-tune does not change this matrix (a LoRA without it).
        public var tuned: [Double?]
    }
    public struct ModuleMean: Sendable, Codable {
        public var moduleType: String
        public var base: Double
        public var tuned: [Double?]
    }
    public var rules: String
    public var labels: [String]
    public var rows: [Row]
    public var byModuleType: [ModuleMean]
    /// Mean α over the matrices each fine-tune changes, base and tuned over the same matrices.
    public var meanBase: [Double]
    public var meanTuned: [Double]
    /// Matrices whose α fell (a heavier tail after the fine-tune), per fine-tune.
    public var decreased: [Int]
    public var compared: [Int]

    /// α of W0 and of each fine-tune's W for `names`, `jobs` matrices at a time.
    public static func run(base: Checkpoint, fineTunes: [FineTune], names: [String], jobs: Int = 1) throws -> AlphaComparison {
        let box = SlotBox<Row>(count: names.count)
        let work: @Sendable (Int) -> Void = { idx in
            if box.failed { return }
            let name = names[idx]
            do {
                let w0 = try SpectralAnalysis.finite(try base.tensor(name), name, base.path)
                func alpha(_ w: Tensor) throws -> Double {
                    let (values, method) = try LayerSpectrum.eigenvalues(of: w)
                    let (n, m) = (max(w.shape[0], w.shape[1]), min(w.shape[0], w.shape[1]))
                    return LayerSpectrum.metrics(name: name, evals: values, N: n, M: m, method: method).alpha
                }
                var tuned: [Double?] = []
                for ft in fineTunes {
                    switch ft.source {
                    case let .dense(c):
                        tuned.append(try alpha(try SpectralAnalysis.finite(try c.tensor(name), name, ft.path)))
                    case let .lora(adapter):
                        guard let mod = adapter.module(forBaseTensor: name) else { tuned.append(nil); continue }
                        let w0n = mod.baseIsTransposed && w0.shape == [mod.inFeatures, mod.outFeatures] ? w0.transposed() : w0
                        var w = try adapter.delta(mod)
                        _ = try SpectralAnalysis.finite(w, mod.name, ft.path)
                        for i in w.scalars.indices { w.scalars[i] += w0n.scalars[i] }
                        tuned.append(try alpha(w))
                    }
                }
                let (layer, type) = parseModuleName(name)
                box.set(idx, Row(name: name, layer: layer, moduleType: type, base: try alpha(w0), tuned: tuned))
            } catch {
                box.fail(error)
            }
        }
        let workers = max(1, min(jobs, names.count))
        if workers == 1 {
            for i in names.indices { work(i); if box.failed { break } }
        } else {
            let next = ResultsBox.Counter()
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while let i = next.take(limit: names.count) { work(i) }
            }
        }
        if let e = box.error { throw e }
        return AlphaComparison(rows: box.values.compactMap { $0 }, labels: fineTunes.map(\.label))
    }

    init(rows: [Row], labels: [String]) {
        self.rules = ModelSpectrum.rules
        self.labels = labels
        self.rows = rows
        func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }
        let types = Array(Set(rows.map(\.moduleType))).sorted { (ReportText.moduleOrder($0), $0) < (ReportText.moduleOrder($1), $1) }
        byModuleType = types.map { t in
            let rs = rows.filter { $0.moduleType == t }
            return ModuleMean(moduleType: t, base: mean(rs.map(\.base)),
                              tuned: labels.indices.map { i in let v = rs.compactMap { $0.tuned[i] }; return v.isEmpty ? nil : mean(v) })
        }
        meanBase = labels.indices.map { i in mean(rows.filter { $0.tuned[i] != nil }.map(\.base)) }
        meanTuned = labels.indices.map { i in mean(rows.compactMap { $0.tuned[i] }) }
        decreased = labels.indices.map { i in rows.filter { r in r.tuned[i].map { $0 < r.base } ?? false }.count }
        compared = labels.indices.map { i in rows.filter { $0.tuned[i] != nil }.count }
    }

    /// The per-module means and, per fine-tune, the matrices whose α moved most.
    public func text(largest: Int = 5) -> String {
        func f(_ x: Double?) -> String { x.map { $0.isFinite ? String(format: "%.3f", $0) : "-" } ?? "-" }
        let colW = max(10, (labels.map(\.count).max() ?? 0) + 2)
        var out = "power-law α of W0 and of each fine-tune's W (weightwatcher 0.7.7's fit; lower = heavier-tailed spectrum)\n"
        out += "  " + ReportText.pad("module", 14) + ReportText.pad("base", 10, right: true)
            + labels.map { ReportText.pad($0, colW, right: true) }.joined() + "\n"
        for m in byModuleType {
            out += "  " + ReportText.pad(m.moduleType, 14) + ReportText.pad(f(m.base), 10, right: true)
                + m.tuned.map { ReportText.pad(f($0), colW, right: true) }.joined() + "\n"
        }
        out += "  " + ReportText.pad("all", 14) + ReportText.pad(f(rows.isEmpty ? nil : rows.map(\.base).reduce(0, +) / Double(rows.count)), 10, right: true)
            + meanTuned.map { ReportText.pad(f($0), colW, right: true) }.joined() + "\n"
        for (i, label) in labels.enumerated() {
            out += "  \(label): α fell in \(decreased[i]) of \(compared[i]) matrices (mean \(f(meanBase[i])) → \(f(meanTuned[i])))"
            let moved = rows.compactMap { r in r.tuned[i].map { (r, $0 - r.base) } }.sorted { abs($0.1) > abs($1.1) }.prefix(largest)
            if !moved.isEmpty {
                out += "; largest changes: " + moved.map { "\($0.0.name.replacingOccurrences(of: ".weight", with: "")) \(f($0.0.base)) → \(f($0.0.tuned[i]))" }
                    .joined(separator: ", ")
            }
            out += "\n"
        }
        return out
    }
}
