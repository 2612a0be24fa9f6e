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
    let q = min(m, n)
    let cache = options.cache

    // Base: all left singular vectors and values.
    let baseHash = contentHash(w0.scalars)
    let baseEntry: DecompositionCache.Entry
    if let e = cache?.load(kind: "left-all", hash: baseHash, rows: m, cols: n), e.u.shape[1] == q, e.s.count == q {
        baseEntry = e
    } else {
        let f = try svd(w0)
        baseEntry = DecompositionCache.Entry(rows: m, cols: n, u: f.u, s: f.s)
        cache?.store(kind: "left-all", hash: baseHash, entry: baseEntry)
    }

    // Tuned matrix W and the update's spectrum.
    var w: Tensor
    var diag = MatrixDiagnostics(name: name, layer: nil, moduleType: "", rows: m, cols: n, kind: "full", loraRank: nil, loraAlpha: nil,
                                 loraScale: nil, loraNormA: nil, loraNormB: nil, sigmaBase: baseEntry.s, sigmaTuned: [], sigmaUpdate: [],
                                 frobeniusBase: SpectrumStatistics.frobenius(baseEntry.s), frobeniusUpdate: 0, relativeFrobenius: 0,
                                 relativeSpectral: 0, effectiveRank: 0, stableRank: 0, energyRank: 0, topEnergy: 0, rank50: 0, rank90: 0,
                                 rank99: 0, intruders: IntruderProfile(maxCosines: [], sigmas: [], counts: [], intruders: [], topCosines: []),
                                 amplification: nil, tunedMethod: "", updateMethod: "")
    (diag.layer, diag.moduleType) = parseModuleName(name)
    var updateU: Tensor
    // ΔW's top right singular vectors as columns (n, r), for the amplification factor.
    var updateV: Tensor
    switch tuned {
    case let .lora(a, b, scale, rank, alpha):
        guard a.shape.rank == 2, b.shape.rank == 2, a.shape[1] == n, b.shape[0] == m, a.shape[0] == b.shape[1] else {
            throw TensorError.shapeMismatch(context: "\(name): LoRA factors A (r, \(n)) and B (\(m), r)", expected: [m, n], actual: [b.shape.dims.first ?? 0, a.shape.dims.last ?? 0])
        }
        let low = try lowRankSVD(a: a, b: b, scale: scale)
        diag.kind = "lora"
        diag.loraRank = rank; diag.loraAlpha = alpha; diag.loraScale = Double(scale)
        diag.loraNormA = a.frobeniusNorm; diag.loraNormB = b.frobeniusNorm
        diag.sigmaUpdate = low.s
        diag.energyRank = rank
        diag.updateMethod = "factored QR (rank \(rank))"
        updateU = low.u
        updateV = low.vt.transposed()
        // W = W0 + s·B·A, one GEMM.
        w = w0
        w.scalars.withUnsafeMutableBufferPointer { pw in
            b.scalars.withUnsafeBufferPointer { pb in
                a.scalars.withUnsafeBufferPointer { pa in
                    sgemm(transposeA: false, transposeB: false, m: m, n: n, k: a.shape[0], alpha: scale,
                          a: pb.baseAddress!, lda: a.shape[0], b: pa.baseAddress!, ldb: n, beta: 1, c: pw.baseAddress!, ldc: n)
                }
            }
        }
    case let .dense(t):
        guard t.shape == w0.shape else { throw TensorError.shapeMismatch(context: "\(name): tuned matrix", expected: w0.shape, actual: t.shape) }
        w = t
        var d = t
        for i in d.scalars.indices { d.scalars[i] -= w0.scalars[i] }
        let r = options.energyRank ?? 8
        diag.energyRank = r
        let dHash = contentHash(d.scalars)
        if let e = cache?.load(kind: "update", hash: dHash, rows: m, cols: n), e.s.count == q, e.u.shape[1] == min(r, q) {
            diag.sigmaUpdate = e.s; updateU = e.u; diag.updateMethod = "cache"
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
            diag.sigmaUpdate = got!.s
            updateU = got!.u
            diag.updateMethod = got!.method
            cache?.store(kind: "update", hash: dHash, entry: .init(rows: m, cols: n, u: updateU, s: got!.s))
        }
        updateV = Amplification.rightVectors(update: d, u: updateU, sigmas: diag.sigmaUpdate)
    }

    // Top-k of W.
    let k = min(options.topK, q)
    let wHash = contentHash(w.scalars)
    let tunedKind = options.fullTunedSpectrum ? "top\(k)-fullspec" : "top\(k)"
    var tunedU: Tensor, tunedS: [Float]
    if let e = cache?.load(kind: tunedKind, hash: wHash, rows: m, cols: n), e.u.shape[1] == k {
        tunedU = e.u; tunedS = e.s; diag.tunedMethod = "cache"
    } else {
        let useRandom = options.svdMethod == .randomized || (options.svdMethod == .auto && q >= options.randomizedMinDimension)
        var done = false
        tunedU = Tensor(zeros: [m, 0]); tunedS = []
        if useRandom && k + 1 < q {
            // One extra triplet so that the k-th vector's gap to σ_{k+1} is known. Pre-trained
            // weights have slowly decaying spectra, so a first cheap attempt is followed by a
            // longer one (power iterations cost two thin GEMMs each, far below one gesdd).
            var lastBound: Float = .infinity
            for (p, iters) in [(max(10, k), options.randomizedPowerIterations.0), (max(20, 2 * k), options.randomizedPowerIterations.1)] where !done {
                let r = try randomizedSVD(w, rank: k + 1, oversampling: p, powerIterations: iters, seed: wHash)
                lastBound = angleBound(r, k: k)
                if lastBound <= options.randomizedAngleTolerance {
                    tunedU = leadingColumns(r.svd.u, k); tunedS = Array(r.svd.s.prefix(k))
                    diag.tunedMethod = String(format: "randomized, %d power iterations (angle bound %.3g)", iters, lastBound)
                    done = true
                }
            }
            _ = lastBound
        }
        if !done {
            if options.svdMethod == .exact {
                let f = try svd(w)
                tunedU = leadingColumns(f.u, k); tunedS = f.s
                diag.tunedMethod = "gesdd"
            } else {
                // The exact top-k left vectors from one bidiagonal reduction (all values only for plots).
                let f = try truncatedSVD(w, rank: k, allValues: options.fullTunedSpectrum, rightVectors: false)
                tunedU = f.u; tunedS = f.s
                let tried = useRandom && k + 1 < q
                diag.tunedMethod = tried ? "\(selectiveMethod) top-\(k) (randomized failed its check)" : "\(selectiveMethod) top-\(k)"
            }
        } else if options.fullTunedSpectrum {
            tunedS = try singularValues(w)
        }
        cache?.store(kind: tunedKind, hash: wHash, entry: .init(rows: m, cols: n, u: tunedU, s: tunedS))
    }
    diag.sigmaTuned = options.fullTunedSpectrum ? tunedS : Array(tunedS.prefix(k))

    // Scalars of ΔW.
    let su = diag.sigmaUpdate
    diag.frobeniusUpdate = SpectrumStatistics.frobenius(su)
    diag.relativeFrobenius = diag.frobeniusBase > 0 ? diag.frobeniusUpdate / diag.frobeniusBase : 0
    let s1b = baseEntry.s.first ?? 0
    diag.relativeSpectral = s1b > 0 ? Double(su.first ?? 0) / Double(s1b) : 0
    diag.effectiveRank = SpectrumStatistics.effectiveRank(su)
    diag.stableRank = SpectrumStatistics.stableRank(su)
    diag.topEnergy = SpectrumStatistics.energy(top: diag.energyRank, of: su)
    diag.rank50 = SpectrumStatistics.rankForEnergy(0.5, of: su)
    diag.rank90 = SpectrumStatistics.rankForEnergy(0.9, of: su)
    diag.rank99 = SpectrumStatistics.rankForEnergy(0.99, of: su)
    diag.amplification = Amplification.compute(base: w0, u: updateU, v: updateV, sigmas: su, rank: diag.energyRank,
                                               frobeniusUpdate: diag.frobeniusUpdate, baseSigmas: baseEntry.s)
    diag.intruders = try intruderProfile(baseU: baseEntry.u, tunedU: tunedU, tunedSigmas: tunedS, sigma1Base: s1b,
                                         topK: k, epsilons: options.epsilons)
    return MatrixAnalysis(diagnostics: diag, updateU: updateU, tunedU: tunedU)
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
