import Foundation
import Checkpoints
import Tensors

/// Interference between task vectors τ_t = W_t − W0 before a merge, per pair of fine-tunes and
/// per matrix (aggregated per layer and per module type):
///
/// * cosine similarity of the flattened τ's (Ilharco et al. 2023, §6: task vectors of different
///   tasks are close to orthogonal);
/// * TIES's sign conflict (Yadav et al. 2023, §3): each τ_t is trimmed to its top `density` share
///   of entries by |τ| over *all* selected matrices (the code's `topk_values_mask`: keep
///   |τ| ≥ the (d − ⌊d·density⌋)-th smallest |τ|, so ties are kept); the share is, among entries
///   kept in both, those with opposite signs (τ_i τ_j < 0);
/// * spectral overlap of the top-r left singular subspaces of the two τ's, φ = ‖U_iᵀ U_j‖_F² / r
///   (the mean cos² of the principal angles; `subspaceOverlap`), the subspace-alignment view of
///   TSV (Gargiulo et al. 2025, §4), which reports interference as overlap of task singular vectors.
///
/// Aggregates: cosine of the concatenated τ's of the group, conflicts / both-kept summed over the
/// group, φ averaged over the group's matrices.
public enum Interference {
    public struct Options: Sendable {
        public var density = 0.2
        public var rank = 8
        public var modules: String?
        public init() {}
    }

    public struct Metrics: Sendable, Codable, Equatable {
        public var cosine: Double
        public var signConflict: Double?
        public var bothKept: Int
        public var overlap: Double
        enum CodingKeys: String, CodingKey {
            case cosine, overlap
            case signConflict = "sign_conflict"
            case bothKept = "both_kept"
        }
    }

    public struct MatrixEntry: Sendable, Codable, Equatable {
        public var name: String
        public var layer: Int?
        public var moduleType: String
        public var metrics: Metrics
        enum CodingKeys: String, CodingKey {
            case name, layer, metrics
            case moduleType = "module_type"
        }
    }

    public struct Pair: Sendable, Codable, Equatable {
        public var first: String
        public var second: String
        public var overall: Metrics
        public var byModuleType: [String: Metrics]
        public var byLayer: [String: Metrics]
        public var matrices: [MatrixEntry]
        enum CodingKeys: String, CodingKey {
            case first, second, overall, matrices
            case byModuleType = "by_module_type"
            case byLayer = "by_layer"
        }
    }

    public struct Report: Sendable, Codable {
        public var base: String
        public var tasks: [String]
        public var density: Double
        public var rank: Int
        /// |τ| threshold of each task's top-density trim.
        public var thresholds: [Double]
        public var pairs: [Pair]
        enum CodingKeys: String, CodingKey {
            case base, tasks, density, rank, thresholds, pairs
        }

        public func json() throws -> String {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            return String(decoding: try enc.encode(self), as: UTF8.self)
        }
    }

    /// The TIES trim threshold of a flattened |τ| (`topk_values_mask`): the (d − ⌊d·density⌋)-th
    /// smallest value; entries with |τ| ≥ it are kept.
    public static func trimThreshold(_ absValues: [Float], density: Double) -> Float {
        let d = absValues.count
        guard d > 0 else { return 0 }
        let k = d - Int(Double(d) * density)
        guard k >= 1 else { return 0 }
        return absValues.sorted()[k - 1]
    }

    struct Accum {
        var dot = 0.0, n1 = 0.0, n2 = 0.0, conflicts = 0, both = 0, overlap = 0.0, count = 0
        mutating func add(_ o: Accum) {
            dot += o.dot; n1 += o.n1; n2 += o.n2; conflicts += o.conflicts; both += o.both; overlap += o.overlap; count += o.count
        }
        var metrics: Metrics {
            Metrics(cosine: n1 > 0 && n2 > 0 ? dot / (n1.squareRoot() * n2.squareRoot()) : 0,
                    signConflict: both > 0 ? Double(conflicts) / Double(both) : nil, bothKept: both,
                    overlap: count > 0 ? overlap / Double(count) : 0)
        }
    }

    /// Runs on dense fine-tunes of `base` (every 2-D non-embedding tensor, or those matching `modules`).
    public static func run(base: Checkpoint, fineTunes: [FineTune], options: Options = Options()) throws -> Report {
        guard fineTunes.count >= 2 else { throw SpectralError.invalidOption("interference needs at least two fine-tunes") }
        guard options.density > 0 && options.density <= 1 else { throw SpectralError.invalidOption("--density must be in (0, 1]") }
        guard options.rank > 0 else { throw SpectralError.invalidOption("--rank must be positive") }
        let names = try SpectralAnalysis.selectMatrices(base: base, fineTunes: fineTunes, modules: options.modules)
        func tau(_ t: Int, _ name: String, _ w0: Tensor) throws -> Tensor {
            switch fineTunes[t].source {
            case let .dense(c):
                var d = try SpectralAnalysis.finite(try c.tensor(name), name, fineTunes[t].path)
                for i in d.scalars.indices { d.scalars[i] -= w0.scalars[i] }
                return d
            case let .lora(a):
                guard let m = a.module(forBaseTensor: name) else { return Tensor(zeros: w0.shape) }
                guard !m.baseIsTransposed else { throw SpectralError.invalidOption("\(fineTunes[t].path): fan_in_fan_out adapters are not supported by interference") }
                return try SpectralAnalysis.finite(try a.delta(m), m.name, fineTunes[t].path)
            }
        }
        // Pass 1: each task's global trim threshold.
        var thresholds: [Float] = []
        for t in fineTunes.indices {
            var all: [Float] = []
            for name in names {
                let w0 = try SpectralAnalysis.finite(try base.tensor(name), name, base.path)
                all.append(contentsOf: try tau(t, name, w0).scalars.map { abs($0) })
            }
            thresholds.append(trimThreshold(all, density: options.density))
        }
        // Pass 2: per matrix, every pair.
        let T = fineTunes.count
        var acc: [[String: Accum]] = Array(repeating: [:], count: T * T)
        var entries: [[MatrixEntry]] = Array(repeating: [], count: T * T)
        for name in names {
            let w0 = try base.tensor(name)
            let taus = try fineTunes.indices.map { try tau($0, name, w0) }
            let r = min(options.rank, w0.shape[0], w0.shape[1])
            let us = try taus.map { try truncatedSVD($0, rank: r, rightVectors: false).u }
            let (layer, module) = parseModuleName(name)
            for i in 0..<T {
                for j in (i + 1)..<T {
                    var a = Accum()
                    let x = taus[i].scalars, y = taus[j].scalars
                    let (ti, tj) = (thresholds[i], thresholds[j])
                    for k in x.indices {
                        let (p, q) = (Double(x[k]), Double(y[k]))
                        a.dot += p * q; a.n1 += p * p; a.n2 += q * q
                        if abs(x[k]) >= ti && abs(y[k]) >= tj {
                            a.both += 1
                            if p * q < 0 { a.conflicts += 1 }
                        }
                    }
                    a.overlap = try subspaceOverlap(us[i], us[j], i: r, j: r).phi
                    a.count = 1
                    let idx = i * T + j
                    entries[idx].append(MatrixEntry(name: name, layer: layer, moduleType: module, metrics: a.metrics))
                    acc[idx]["all", default: Accum()].add(a)
                    acc[idx]["m:" + module, default: Accum()].add(a)
                    acc[idx]["l:" + (layer.map(String.init) ?? "-"), default: Accum()].add(a)
                }
            }
        }
        var pairs: [Pair] = []
        for i in 0..<T {
            for j in (i + 1)..<T {
                let g = acc[i * T + j]
                var byM: [String: Metrics] = [:], byL: [String: Metrics] = [:]
                for (k, v) in g {
                    if k.hasPrefix("m:") { byM[String(k.dropFirst(2))] = v.metrics }
                    if k.hasPrefix("l:") { byL[String(k.dropFirst(2))] = v.metrics }
                }
                pairs.append(Pair(first: fineTunes[i].label, second: fineTunes[j].label, overall: g["all"]!.metrics,
                                  byModuleType: byM, byLayer: byL, matrices: entries[i * T + j]))
            }
        }
        return Report(base: base.path, tasks: fineTunes.map(\.label), density: options.density, rank: options.rank,
                      thresholds: thresholds.map(Double.init), pairs: pairs)
    }

    /// The text report: one line per pair, then per pair the module types and the three matrices
    /// with the highest sign-conflict share; pairs ordered by overall conflict, highest first.
    public static func text(_ r: Report) -> String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "-" }
        var s = "interference of \(r.tasks.count) task vectors on \(r.base) (TIES trim density \(r.density), top-\(r.rank) subspaces)\n"
        let sorted = r.pairs.sorted { ($0.overall.signConflict ?? 0) > ($1.overall.signConflict ?? 0) }
        s += "pair".padding(toLength: 40, withPad: " ", startingAt: 0) + "   cosine  sign-conflict  overlap\n"
        for p in sorted {
            s += "\(p.first) × \(p.second)".padding(toLength: 40, withPad: " ", startingAt: 0)
            s += String(format: "  %7.4f", p.overall.cosine) + "  " + f(p.overall.signConflict).leftPad(13) + "  " + String(format: "%7.4f", p.overall.overlap) + "\n"
        }
        for p in sorted {
            s += "\n\(p.first) × \(p.second): by module type\n"
            for (m, v) in p.byModuleType.sorted(by: { $0.key < $1.key }) {
                s += "  " + m.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: " cosine %7.4f", v.cosine)
                s += "  sign-conflict " + f(v.signConflict) + String(format: "  overlap %.4f", v.overlap) + "\n"
            }
            let worst = p.matrices.sorted { ($0.metrics.signConflict ?? -1) > ($1.metrics.signConflict ?? -1) }.prefix(3)
            s += "  most conflicting: " + worst.map { "\($0.name) (\(f($0.metrics.signConflict)))" }.joined(separator: ", ") + "\n"
        }
        if let top = sorted.first {
            s += "\nmost conflicting pair: \(top.first) × \(top.second) (sign conflict \(f(top.overall.signConflict)), cosine \(String(format: "%.4f", top.overall.cosine)))\n"
        }
        return s
    }
}

extension String {
    func leftPad(_ w: Int) -> String { count >= w ? self : String(repeating: " ", count: w - count) + self }
}
