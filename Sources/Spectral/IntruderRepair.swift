import Foundation
import Tensors

/// Scaling intruder dimensions back (Shuttleworth et al. 2024, §5 "intervention"; PEFT's
/// `reduce_intruder_dimension` for the all-intruders variant).
///
/// For a tuned matrix W = W0 + ΔW with SVD W = Σ_j σ_j u_j v_jᵀ, the repaired matrix is
///
///     W' = W + (λ − 1) Σ_{j ∈ J} σ_j u_j v_jᵀ
///
/// where J is the highest-ranked intruder only (the paper's intervention; `.topIntruder`), every
/// intruder among the top k (PEFT's variant; `.allIntruders`), or the control of the paper: the
/// non-intruder direction nearest in rank to the top intruder (`.control`; rank i + 1 first, then
/// i − 1, i + 2, …, within the top k). λ = 0 removes the directions, λ = 1 leaves W unchanged
/// bit for bit. Intruders follow `intruderProfile` (left singular vectors, max |cos| over *all*
/// left singular vectors of W0 below ε).
///
/// `RepairDecomposition` holds the one SVD per matrix that every λ of a sweep reuses: the base's
/// left vectors (the decomposition cache's "left-all" entry, shared with `spectrum`) and the
/// top-k triplets of W from the selective LAPACK SVD (`truncatedSVD`, both vector sides).
public enum RepairTarget: String, Sendable, Codable, CaseIterable {
    case topIntruder = "top_intruder"
    case allIntruders = "all_intruders"
    case control
}

/// The top-k triplets of one tuned matrix and its intruder profile, computed once.
public struct RepairDecomposition: Sendable {
    public var name: String
    public var rows: Int
    public var cols: Int
    /// Top-k left vectors of W (rows, k), values (k), right vectors (k, cols).
    public var u: Tensor
    public var s: [Float]
    public var vt: Tensor
    public var profile: IntruderProfile
    /// σ_1(W0).
    public var sigma1Base: Float

    /// Decomposes W0 (all left singular vectors; cached when `cache` is given) and W (top k).
    public static func compute(name: String, base w0: Tensor, tuned w: Tensor, topK: Int = 10, epsilon: Double = 0.5,
                               cache: DecompositionCache? = nil) throws -> RepairDecomposition {
        guard w0.shape.rank == 2, w.shape == w0.shape else {
            throw TensorError.shapeMismatch(context: "\(name): tuned matrix for the repair", expected: w0.shape, actual: w.shape)
        }
        guard topK > 0 else { throw SpectralError.invalidOption("--top-k must be positive") }
        guard epsilon > 0 && epsilon <= 1 else { throw SpectralError.invalidOption("--epsilon must be in (0, 1]") }
        let (m, n) = (w0.shape[0], w0.shape[1])
        let q = min(m, n)
        let hash = contentHash(w0.scalars)
        let base: DecompositionCache.Entry
        if let e = cache?.load(kind: "left-all", hash: hash, rows: m, cols: n), e.u.shape[1] == q, e.s.count == q {
            base = e
        } else {
            let f = try svd(w0)
            base = DecompositionCache.Entry(rows: m, cols: n, u: f.u, s: f.s)
            cache?.store(kind: "left-all", hash: hash, entry: base)
        }
        let k = min(topK, q)
        let f = try svd(w)
        let u = leadingColumns(f.u, k)
        let vt = Tensor(shape: [k, n], scalars: Array(f.vt.scalars.prefix(k * n)))
        let s1 = base.s.first ?? 0
        let profile = try intruderProfile(baseU: base.u, tunedU: u, tunedSigmas: f.s, sigma1Base: s1, topK: k, epsilons: [epsilon])
        return RepairDecomposition(name: name, rows: m, cols: n, u: u, s: Array(f.s.prefix(k)), vt: vt, profile: profile, sigma1Base: s1)
    }

    /// The ranks (0-based, into the top k) that `target` scales; empty when the matrix has no
    /// intruder (or, for the control, no non-intruder within the top k).
    public func selected(_ target: RepairTarget) -> [Int] {
        let intr = profile.intruders.map(\.rank)
        guard let first = intr.first else { return [] }
        switch target {
        case .topIntruder: return [first]
        case .allIntruders: return intr
        case .control:
            let k = s.count
            let isIntruder = Set(intr)
            for d in 1..<max(k, 2) {
                for c in [first + d, first - d] where c >= 0 && c < k && !isIntruder.contains(c) { return [c] }
            }
            return []
        }
    }

    /// Adds (λ − 1) Σ_{j ∈ ranks} σ_j u_j v_jᵀ to `w` (row-major rows × cols), in Float64 per entry.
    public func apply(to w: inout [Float], lambda: Double, ranks: [Int]) {
        precondition(w.count == rows * cols)
        let c = lambda - 1
        guard c != 0, !ranks.isEmpty else { return }
        let k = s.count
        w.withUnsafeMutableBufferPointer { pw in
            u.scalars.withUnsafeBufferPointer { pu in
                vt.scalars.withUnsafeBufferPointer { pv in
                    for i in 0..<rows {
                        // Row i of the change: Σ_j (c σ_j u_ij) v_jᵀ.
                        let coef = ranks.map { c * Double(s[$0]) * Double(pu[i * k + $0]) }
                        for col in 0..<cols {
                            var acc = 0.0
                            for (t, j) in ranks.enumerated() { acc += coef[t] * Double(pv[j * cols + col]) }
                            pw[i * cols + col] = Float(Double(pw[i * cols + col]) + acc)
                        }
                    }
                }
            }
        }
    }

    /// ‖(λ − 1) Σ σ_j u_j v_jᵀ‖_F = |λ − 1| √(Σ σ_j²) (the triplets are orthonormal).
    public func changeNorm(lambda: Double, ranks: [Int]) -> Double {
        abs(lambda - 1) * ranks.map { Double(s[$0]) * Double(s[$0]) }.reduce(0, +).squareRoot()
    }

    /// The repaired update ΔW' = s·B A + (λ − 1) Σ σ_j u_j v_jᵀ refactorised as a rank-r LoRA with the
    /// same scale (PEFT's step 4-5: ΔW'/s, SVD, truncate to r, B = U_r √Σ_r, A = √Σ_r V_rᵀ). The SVD is
    /// exact and factored (`lowRankSVD` of [B·s, (λ−1) U_J Σ_J] and [A; V_Jᵀ], rank ≤ r + |J|), so
    /// the only loss is the truncation, returned as ‖ΔW' − s B' A'‖_F / ‖ΔW'‖_F (0 when rank ΔW' ≤ r).
    public func refactorised(a: Tensor, b: Tensor, scale: Float, lambda: Double, ranks: [Int]) throws -> (a: Tensor, b: Tensor, truncation: Double) {
        let r = a.shape[0]
        guard a.shape == [r, cols], b.shape == [rows, r], scale != 0 else {
            throw TensorError.shapeMismatch(context: "\(name): LoRA factors for the refactorisation", expected: [rows, cols], actual: [b.shape.dims.first ?? 0, a.shape.dims.last ?? 0])
        }
        let p = ranks.count
        let k = s.count
        // B'' (rows, r + p) = [s·B, (λ − 1) σ_j u_j], A'' (r + p, cols) = [A; v_jᵀ].
        var bb = [Float](repeating: 0, count: rows * (r + p))
        for i in 0..<rows {
            for j in 0..<r { bb[i * (r + p) + j] = scale * b.scalars[i * r + j] }
            for (t, j) in ranks.enumerated() { bb[i * (r + p) + r + t] = Float((lambda - 1) * Double(s[j])) * u.scalars[i * k + j] }
        }
        var aa = a.scalars
        for j in ranks { aa.append(contentsOf: vt.scalars[(j * cols)..<((j + 1) * cols)]) }
        let f = try lowRankSVD(a: Tensor(shape: [r + p, cols], scalars: aa), b: Tensor(shape: [rows, r + p], scalars: bb), scale: 1)
        let kept = min(r, f.s.count)
        let total = f.s.map { Double($0) * Double($0) }.reduce(0, +)
        let dropped = f.s.dropFirst(kept).map { Double($0) * Double($0) }.reduce(0, +)
        var na = [Float](repeating: 0, count: r * cols), nb = [Float](repeating: 0, count: rows * r)
        let kk = f.u.shape[1]
        let sign: Float = scale < 0 ? -1 : 1
        for j in 0..<kept {
            let root = (f.s[j] / abs(scale)).squareRoot()
            for i in 0..<rows { nb[i * r + j] = sign * root * f.u.scalars[i * kk + j] }
            for c in 0..<cols { na[j * cols + c] = root * f.vt.scalars[j * cols + c] }
        }
        return (Tensor(shape: [r, cols], scalars: na), Tensor(shape: [rows, r], scalars: nb), total > 0 ? (dropped / total).squareRoot() : 0)
    }
}

/// One changed matrix in a repair report.
public struct RepairChange: Sendable, Codable, Equatable {
    public struct Direction: Sendable, Codable, Equatable {
        /// 0-based rank among W's singular vectors.
        public var rank: Int
        public var sigma: Float
        public var maxCosine: Float
        /// "intruder" or "control".
        public var role: String
    }
    public var name: String
    public var layer: Int?
    public var moduleType: String
    /// The highest-ranked intruder (the one `--control` takes the neighbour of).
    public var intruderRank: Int
    public var intruderSigma: Float
    public var intruderMaxCosine: Float
    public var intruders: Int
    public var directions: [Direction]
    /// ‖W' − W‖_F.
    public var changeNorm: Double
    /// With an adapter output: ‖ΔW' − s B' A'‖_F / ‖ΔW'‖_F.
    public var adapterTruncation: Double?

    enum CodingKeys: String, CodingKey {
        case name, layer, directions, intruders
        case moduleType = "module_type"
        case intruderRank = "intruder_rank"
        case intruderSigma = "intruder_sigma"
        case intruderMaxCosine = "intruder_max_cosine"
        case changeNorm = "change_norm"
        case adapterTruncation = "adapter_truncation"
    }

    public init?(_ d: RepairDecomposition, target: RepairTarget, lambda: Double) {
        guard let top = d.profile.intruders.first else { return nil }
        let ranks = d.selected(target)
        guard !ranks.isEmpty else { return nil }
        let (layer, module) = parseModuleName(d.name)
        name = d.name; self.layer = layer; moduleType = module
        intruderRank = top.rank; intruderSigma = top.sigma; intruderMaxCosine = top.maxCosine
        intruders = d.profile.intruders.count
        directions = ranks.map { Direction(rank: $0, sigma: d.s[$0], maxCosine: d.profile.maxCosines[$0], role: target == .control ? "control" : "intruder") }
        changeNorm = d.changeNorm(lambda: lambda, ranks: ranks)
    }
}

extension RepairChange.Direction {
    enum CodingKeys: String, CodingKey {
        case rank, sigma, role
        case maxCosine = "max_cosine"
    }
}
