import Foundation
import Tensors

/// How a fine-tune changes one base matrix: a dense tuned matrix, or LoRA factors.
public enum TunedMatrix: Sendable {
    /// W (rows, cols), same orientation as W0.
    case dense(Tensor)
    /// ΔW = scale · B A with A (r, cols), B (rows, r).
    case lora(a: Tensor, b: Tensor, scale: Float, rank: Int, alpha: Double)
}

/// Options shared by every analysis.
public struct SpectralOptions: Sendable {
    /// auto: the exact selective SVD (`truncatedSVD`), or for 1024+ dimensions a checked randomized
    /// SVD first; exact: full gesdd for every decomposition; randomized: randomized first at any size.
    public enum SVDMethod: String, Sendable, CaseIterable { case auto, exact, randomized }
    /// k: how many top singular vectors of W are checked for intruders.
    public var topK = 10
    /// ε thresholds; the first is primary (reported intruder list).
    public var epsilons: [Double] = [0.5]
    /// r for the top-r energy and for update-subspace overlaps when the fine-tune is dense
    /// (LoRA fine-tunes use their own rank); nil = 8.
    public var energyRank: Int?
    public var svdMethod: SVDMethod = .auto
    /// `auto` uses the randomized SVD for W's top-k when min(rows, cols) ≥ this.
    public var randomizedMinDimension = 1024
    /// Randomized results are accepted only when every top-k vector's angle bound
    /// (residual / gap, Wedin) is at most this; otherwise the exact selective SVD is used.
    public var randomizedAngleTolerance: Float = 0.02
    /// `auto` computes a dense update's spectrum with jobz = N and its top-r vectors by a checked
    /// randomized SVD when min(rows, cols) ≥ this (a fine-tune's update usually has a fast-decaying
    /// top spectrum; short fine-tunes of SmolLM2-135M, though, had noise-like updates that failed the
    /// check at 576 dimensions, hence the same threshold as for W).
    public var randomizedUpdateMinDimension = 1024
    /// Power iterations of the first and (if its check fails) second randomized attempt.
    public var randomizedPowerIterations = (6, 24)
    /// Compute all singular values of W (for spectrum plots), not only the top k.
    public var fullTunedSpectrum = false
    public var cache: DecompositionCache?
    public init() {}
}

/// The per-matrix result plus what cross-fine-tune comparisons need (not serialised).
public struct MatrixAnalysis: Sendable {
    public var diagnostics: MatrixDiagnostics
    /// Top left singular vectors of ΔW (rows, r) for subspace overlaps.
    public var updateU: Tensor
    /// Top left singular vectors of W (rows, k) for heat maps.
    public var tunedU: Tensor
}

/// Computes `MatrixDiagnostics` for one matrix (see the file comment of each quantity).
///
/// Cost: one thin SVD of W0 (cached by content hash: all left vectors + all σ), the top-k SVD of
/// W (cached; the exact selective SVD, or randomized with the angle check), and the spectrum of ΔW:
/// for LoRA from the factors alone (QR of A and B, r × r core SVD), for a dense update by the
/// selective SVD (all values + top-r vectors from one bidiagonal reduction). Then the
/// amplification factor (§E.6) from ΔW's top directions and W0.
public func analyzeMatrix(name: String, base w0: Tensor, tuned: TunedMatrix, options: SpectralOptions) throws -> MatrixAnalysis {
    guard w0.shape.rank == 2 else { throw TensorError.shapeMismatch(context: "\(name): base must be a matrix", expected: [w0.count, 1], actual: w0.shape) }
    let (m, n) = (w0.shape[0], w0.shape[1])
    let base = try baseDecomposition(w0, cache: options.cache)
    let update = try updateSpectrum(name: name, base: w0, tuned: tuned, options: options)
    let k = min(options.topK, min(m, n))
    let top = try tunedTopVectors(update.tuned, k: k, options: options)

    // Scalars of ΔW, the amplification of its top directions, and the intruder dimensions of W.
    let su = update.sigmas
    let frobeniusBase = SpectrumStatistics.frobenius(base.s), frobeniusUpdate = SpectrumStatistics.frobenius(su)
    let s1b = base.s.first ?? 0
    let (layer, moduleType) = parseModuleName(name)
    let diag = MatrixDiagnostics(
        name: name, layer: layer, moduleType: moduleType, rows: m, cols: n, kind: update.lora == nil ? .full : .lora,
        loraRank: update.lora?.rank, loraAlpha: update.lora?.alpha, loraScale: update.lora?.scale,
        loraNormA: update.lora?.normA, loraNormB: update.lora?.normB,
        sigmaBase: base.s, sigmaTuned: options.fullTunedSpectrum ? top.s : Array(top.s.prefix(k)), sigmaUpdate: su,
        frobeniusBase: frobeniusBase, frobeniusUpdate: frobeniusUpdate,
        relativeFrobenius: frobeniusBase > 0 ? frobeniusUpdate / frobeniusBase : 0,
        relativeSpectral: s1b > 0 ? Double(su.first ?? 0) / Double(s1b) : 0,
        effectiveRank: SpectrumStatistics.effectiveRank(su), stableRank: SpectrumStatistics.stableRank(su),
        energyRank: update.energyRank, topEnergy: SpectrumStatistics.energy(top: update.energyRank, of: su),
        rank50: SpectrumStatistics.rankForEnergy(0.5, of: su), rank90: SpectrumStatistics.rankForEnergy(0.9, of: su),
        rank99: SpectrumStatistics.rankForEnergy(0.99, of: su),
        intruders: try intruderProfile(baseU: base.u, tunedU: top.u, tunedSigmas: top.s, sigma1Base: s1b, topK: k, epsilons: options.epsilons),
        amplification: Amplification.compute(base: w0, u: update.u, v: update.v, sigmas: su, rank: update.energyRank,
                                             frobeniusUpdate: frobeniusUpdate, baseSigmas: base.s),
        tunedMethod: top.method, updateMethod: update.method)
    return MatrixAnalysis(diagnostics: diag, updateU: update.u, tunedU: top.u)
}

/// W0's left singular vectors and values, all of them (cached by content).
func baseDecomposition(_ w0: Tensor, cache: DecompositionCache?) throws -> DecompositionCache.Entry {
    let (m, n) = (w0.shape[0], w0.shape[1])
    let q = min(m, n)
    let hash = contentHash(w0.scalars)
    if let e = cache?.load(kind: "left-all", hash: hash, rows: m, cols: n), e.u.shape[1] == q, e.s.count == q { return e }
    let f = try svd(w0)
    let entry = DecompositionCache.Entry(rows: m, cols: n, u: f.u, s: f.s)
    cache?.store(kind: "left-all", hash: hash, entry: entry)
    return entry
}

/// The tuned matrix W and the spectrum of its update ΔW = W − W0.
struct UpdateSpectrum {
    /// The LoRA adapter's facts, nil for a dense update.
    struct LoRAFacts { var rank: Int; var alpha: Double; var scale: Double; var normA: Double; var normB: Double }
    var tuned: Tensor
    /// ΔW's singular values (r of them for LoRA; all for a dense update).
    var sigmas: [Float]
    /// ΔW's top left singular vectors (m, r) and right ones as columns (n, r).
    var u: Tensor
    var v: Tensor
    /// r of the top-energy share: the LoRA rank, or the option (default 8).
    var energyRank: Int
    var method: String
    var lora: LoRAFacts?
}

/// ΔW's spectrum: from the LoRA factors exactly (a QR of each factor, no m x n SVD), or of the
/// dense difference by the cheapest method that is exact enough (randomized with an angle
/// check, else one selective bidiagonal SVD; cached by content).
func updateSpectrum(name: String, base w0: Tensor, tuned: TunedMatrix, options: SpectralOptions) throws -> UpdateSpectrum {
    let (m, n) = (w0.shape[0], w0.shape[1])
    let q = min(m, n)
    switch tuned {
    case let .lora(a, b, scale, rank, alpha):
        guard a.shape.rank == 2, b.shape.rank == 2, a.shape[1] == n, b.shape[0] == m, a.shape[0] == b.shape[1] else {
            throw TensorError.shapeMismatch(context: "\(name): LoRA factors A (r, \(n)) and B (\(m), r)", expected: [m, n], actual: [b.shape.dims.first ?? 0, a.shape.dims.last ?? 0])
        }
        let low = try lowRankSVD(a: a, b: b, scale: scale)
        // W = W0 + s·B·A, one GEMM.
        var w = w0
        w.scalars.withUnsafeMutableBufferPointer { pw in
            b.scalars.withUnsafeBufferPointer { pb in
                a.scalars.withUnsafeBufferPointer { pa in
                    sgemm(transposeA: false, transposeB: false, m: m, n: n, k: a.shape[0], alpha: scale,
                          a: pb.baseAddress!, lda: a.shape[0], b: pa.baseAddress!, ldb: n, beta: 1, c: pw.baseAddress!, ldc: n)
                }
            }
        }
        return UpdateSpectrum(tuned: w, sigmas: low.s, u: low.u, v: low.vt.transposed(), energyRank: rank,
                              method: "factored QR (rank \(rank))",
                              lora: .init(rank: rank, alpha: alpha, scale: Double(scale), normA: a.frobeniusNorm, normB: b.frobeniusNorm))
    case let .dense(t):
        guard t.shape == w0.shape else { throw TensorError.shapeMismatch(context: "\(name): tuned matrix", expected: w0.shape, actual: t.shape) }
        var d = t
        for i in d.scalars.indices { d.scalars[i] -= w0.scalars[i] }
        let r = options.energyRank ?? 8
        let dHash = contentHash(d.scalars)
        let sigmas: [Float], u: Tensor, method: String
        if let e = options.cache?.load(kind: "update", hash: dHash, rows: m, cols: n), e.s.count == q, e.u.shape[1] == min(r, q) {
            (sigmas, u, method) = (e.s, e.u, "cache")
        } else {
            let rr = min(r, q)
            let useRandom = options.svdMethod == .randomized || (options.svdMethod == .auto && q >= options.randomizedUpdateMinDimension)
            var got: (u: Tensor, s: [Float], method: String)?
            if options.svdMethod == .exact {
                let f = try svd(d)
                got = (leadingColumns(f.u, rr), f.s, "gesdd")
            } else if useRandom && rr + 1 < q {
                // All singular values without vectors (jobz = N, several times cheaper), the top-r
                // vectors by randomized iteration, checked against the exact values' gaps.
                let sAll = try singularValues(d)
                let rs = try randomizedSVD(d, rank: rr, oversampling: max(10, rr), powerIterations: 4, seed: dHash)
                let bound = angleBound(rs, k: rr, exactSigmas: sAll)
                if bound <= options.randomizedAngleTolerance {
                    got = (rs.svd.u, sAll, String(format: "singular values + randomized top-%d (angle bound %.3g)", rr, bound))
                }
            }
            if got == nil {
                // One bidiagonal reduction: every singular value plus the exact top-r left vectors.
                let f = try truncatedSVD(d, rank: rr, allValues: true, rightVectors: false)
                let tried = useRandom && rr + 1 < q
                got = (f.u, f.s, tried ? "\(selectiveMethod) top-\(rr) (randomized failed its check)" : "\(selectiveMethod) top-\(rr)")
            }
            (sigmas, u, method) = (got!.s, got!.u, got!.method)
            options.cache?.store(kind: "update", hash: dHash, entry: .init(rows: m, cols: n, u: u, s: sigmas))
        }
        return UpdateSpectrum(tuned: t, sigmas: sigmas, u: u, v: Amplification.rightVectors(update: d, u: u, sigmas: sigmas),
                              energyRank: r, method: method, lora: nil)
    }
}

/// W's top-k left singular vectors and values (all values when the full spectrum is asked for):
/// randomized with an angle check where that is exact enough, else one selective bidiagonal SVD
/// (or gesdd with --svd exact); cached by content.
func tunedTopVectors(_ w: Tensor, k: Int, options: SpectralOptions) throws -> (u: Tensor, s: [Float], method: String) {
    let (m, n) = (w.shape[0], w.shape[1])
    let q = min(m, n)
    let wHash = contentHash(w.scalars)
    let kind = options.fullTunedSpectrum ? "top\(k)-fullspec" : "top\(k)"
    if let e = options.cache?.load(kind: kind, hash: wHash, rows: m, cols: n), e.u.shape[1] == k { return (e.u, e.s, "cache") }
    let useRandom = options.svdMethod == .randomized || (options.svdMethod == .auto && q >= options.randomizedMinDimension)
    var result: (u: Tensor, s: [Float], method: String)?
    if useRandom && k + 1 < q {
        // One extra triplet so that the k-th vector's gap to σ_{k+1} is known. Pre-trained
        // weights have slowly decaying spectra, so a first cheap attempt is followed by a
        // longer one (power iterations cost two thin GEMMs each, far below one gesdd).
        for (p, iters) in [(max(10, k), options.randomizedPowerIterations.0), (max(20, 2 * k), options.randomizedPowerIterations.1)] where result == nil {
            let r = try randomizedSVD(w, rank: k + 1, oversampling: p, powerIterations: iters, seed: wHash)
            let bound = angleBound(r, k: k)
            if bound <= options.randomizedAngleTolerance {
                result = (leadingColumns(r.svd.u, k), Array(r.svd.s.prefix(k)),
                          String(format: "randomized, %d power iterations (angle bound %.3g)", iters, bound))
            }
        }
        if let r = result, options.fullTunedSpectrum { result = (r.u, try singularValues(w), r.method) }
    }
    if result == nil {
        if options.svdMethod == .exact {
            let f = try svd(w)
            result = (leadingColumns(f.u, k), f.s, "gesdd")
        } else {
            // The exact top-k left vectors from one bidiagonal reduction (all values only for plots).
            let f = try truncatedSVD(w, rank: k, allValues: options.fullTunedSpectrum, rightVectors: false)
            let tried = useRandom && k + 1 < q
            result = (f.u, f.s, tried ? "\(selectiveMethod) top-\(k) (randomized failed its check)" : "\(selectiveMethod) top-\(k)")
        }
    }
    options.cache?.store(kind: kind, hash: wHash, entry: .init(rows: m, cols: n, u: result!.u, s: result!.s))
    return result!
}

/// How `tunedMethod` / `updateMethod` name the exact selective SVD (`truncatedSVD`).
let selectiveMethod = "exact selective SVD (gebrd + bdsvdx)"

/// The first c columns of a row-major matrix.
func leadingColumns(_ u: Tensor, _ c: Int) -> Tensor {
    let (m, k) = (u.shape[0], u.shape[1])
    if c == k { return u }
    var out = [Float](repeating: 0, count: m * c)
    for i in 0..<m { for j in 0..<c { out[i * c + j] = u.scalars[i * k + j] } }
    return Tensor(shape: [m, c], scalars: out)
}

/// max_{j<k} residual_j / gap_j: a bound on the sine of the angle between each of the first k
/// computed singular vectors and the exact one (Wedin), with gap_j the distance from σ_j to its
/// neighbours among the k + 1 computed values (σ_{k+1} is itself an estimate from below, so the
/// last gap can be optimistic by that estimate's error, which its own residual bounds).
/// With `exactSigmas` (all singular values, from jobz = N) the gaps are exact.
func angleBound(_ r: RandomizedSVDResult, k: Int, exactSigmas: [Float]? = nil) -> Float {
    let s = r.svd.s
    guard let s1 = s.first, s1 > 0 else { return 0 }
    var worst: Float = 0
    for j in 0..<min(k, s.count) {
        var gap = Float.infinity
        if let e = exactSigmas {
            // Distance from the computed σ_j to every other exact singular value.
            if j > 0 { gap = min(gap, abs(s[j] - e[j - 1])) }
            if j + 1 < e.count { gap = min(gap, abs(s[j] - e[j + 1])) }
        } else {
            if j > 0 { gap = min(gap, s[j - 1] - s[j]) }
            if j + 1 < s.count { gap = min(gap, s[j] - s[j + 1] - r.relativeResiduals[j + 1] * s1) }
        }
        let res = r.relativeResiduals[j] * s1
        worst = max(worst, gap > 0 ? res / gap : .infinity)
    }
    return worst
}
