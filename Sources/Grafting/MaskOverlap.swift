import Checkpoints
import Foundation
import Spectral

/// Overlap of two binary masks as task similarity (Panigrahi et al. 2023, abstract: the graft regions
/// of different tasks are nearly disjoint, and their overlap tracks task similarity). A mask is
/// read from a sparse delta (a `graft` or LT-SFT output): an entry is in the mask when the delta
/// lists its index, whatever the value.
///
/// For masks A, B over a universe of N entries, with |A∧B| the shared entries:
/// - `aInB = |A∧B| / |A|` and `bInA = |A∧B| / |B|` (asymmetric shares);
/// - `jaccard = |A∧B| / |A∨B|`;
/// - `ratioToRandom = |A∧B| / (|A|·|B| / N)`: 1 for independent random masks of those sizes, so
///   masks of 0.01% and 1% are comparable (0 is disjoint).
///
/// N overall is the eligible count recorded by the writer (`weightsmith.graft.eligible` or
/// `weightsmith.lt_sft.eligible`) when both deltas record the same value; otherwise, and for the
/// per-layer and per-module-type rows, it is the number of entries of the tensors listed by either
/// delta in that group (an eligible tensor that neither delta touches is then not counted).
public enum MaskOverlap {
    public struct Counts: Sendable, Equatable {
        public var a = 0, b = 0, both = 0, universe = 0
        public var aInB: Double { a == 0 ? 0 : Double(both) / Double(a) }
        public var bInA: Double { b == 0 ? 0 : Double(both) / Double(b) }
        public var jaccard: Double { a + b - both == 0 ? 0 : Double(both) / Double(a + b - both) }
        public var ratioToRandom: Double {
            let expected = Double(a) * Double(b) / Double(max(universe, 1))
            return expected == 0 ? 0 : Double(both) / expected
        }
        mutating func add(_ o: Counts) { a += o.a; b += o.b; both += o.both; universe += o.universe }
    }

    public struct Pair: Sendable {
        public var first: String
        public var second: String
        public var overall: Counts
        /// Per layer index ("-" for tensors outside the layers), in layer order.
        public var layers: [(String, Counts)]
        /// Per module type (q_proj, up_proj, ...), sorted by name.
        public var modules: [(String, Counts)]
    }

    static let eligibleKeys = ["weightsmith.graft.eligible", "weightsmith.lt_sft.eligible"]

    /// The overlap of the masks of two sparse deltas of one model; a tensor listed by both must
    /// have the same shape in both.
    public static func compare(_ x: SparseDeltaFile, _ y: SparseDeltaFile, first: String, second: String) throws -> Pair {
        var overall = Counts()
        var layers: [Int: Counts] = [:], other = Counts(), modules: [String: Counts] = [:]
        for name in Set(x.tensorNames).union(y.tensorNames).sorted() {
            let shape = x.shapes[name] ?? y.shapes[name]!
            if let s = x.shapes[name], let t = y.shapes[name], s != t {
                throw GraftError.deltaMismatch(path: "\(first) and \(second)", tensor: name, reason: "shape \(s) in one delta, \(t) in the other")
            }
            var c = Counts(universe: shape.elementCount)
            let ia = x.has(name) ? try x.sparse(name).indices : [], ib = y.has(name) ? try y.sparse(name).indices : []
            c.a = ia.count; c.b = ib.count
            // Both index lists are strictly ascending: one merge pass.
            var i = 0, j = 0
            while i < ia.count && j < ib.count {
                if ia[i] == ib[j] { c.both += 1; i += 1; j += 1 } else if ia[i] < ib[j] { i += 1 } else { j += 1 }
            }
            overall.add(c)
            let (layer, module) = parseModuleName(name)
            if let layer { layers[layer, default: Counts()].add(c) } else { other.add(c) }
            modules[module, default: Counts()].add(c)
        }
        let nx = eligibleKeys.lazy.compactMap { x.file.metadata[$0] }.first.flatMap { Int($0) }
        let ny = eligibleKeys.lazy.compactMap { y.file.metadata[$0] }.first.flatMap { Int($0) }
        if let nx, nx == ny, nx >= overall.universe { overall.universe = nx }
        var layerRows = layers.sorted { $0.key < $1.key }.map { ("\($0.key)", $0.value) }
        if other.universe > 0 { layerRows.append(("-", other)) }
        return Pair(first: first, second: second, overall: overall, layers: layerRows, modules: modules.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// One table of all pairs, then per pair its layer and module-type rows.
    public static func text(_ pairs: [Pair]) -> String {
        func row(_ label: String, _ c: Counts) -> [String] {
            [label, "\(c.a)", "\(c.b)", "\(c.both)", String(format: "%.3f", c.aInB), String(format: "%.3f", c.bInA),
             String(format: "%.4f", c.jaccard), String(format: "%.2f", c.ratioToRandom)]
        }
        func table(_ rows: [[String]]) -> String {
            let header = ["", "|A|", "|B|", "|A∧B|", "A in B", "B in A", "Jaccard", "vs random"]
            let all = [header] + rows
            let widths = header.indices.map { i in all.map { $0[i].count }.max()! }
            return all.map { r in
                r.enumerated().map { i, c in
                    i == 0 ? c + String(repeating: " ", count: widths[i] - c.count) : String(repeating: " ", count: widths[i] - c.count) + c
                }.joined(separator: "  ")
            }.joined(separator: "\n") + "\n"
        }
        var out = table(pairs.map { row("\($0.first) × \($0.second)", $0.overall) })
        for p in pairs {
            out += "\n\(p.first) × \(p.second) (N = \(p.overall.universe)): by layer, then by module type\n"
            out += table(p.layers.map { row("layer \($0.0)", $0.1) } + p.modules.map { row($0.0, $0.1) })
        }
        return out
    }
}
