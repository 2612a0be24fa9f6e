import Foundation
import Checkpoints
import Tensors

// A model's spectra without a base: the per-layer metrics of WeightWatcher (Martin & Mahoney
// 2021, "Predicting trends in the quality of state-of-the-art neural networks without access to
// training or testing data", Nature Communications 12; Martin, Peng & Mahoney 2021, JMLR 22),
// with the fitting rules of the `weightwatcher` package 0.7.7's `analyze()` defaults:
//
// - layers: every 2-D `*.weight` tensor with M = min(shape) ≥ 8 eigenvalues, M ≤ 15,000 and
//   N = max(shape) ≤ 50,000 (its `min_evals`, `max_evals`, `max_N`); no normalisation;
// - ESD: the M eigenvalues λ = σ² of WᵀW (W oriented N × M), in Float64;
// - α: the continuous power-law maximum-likelihood fit of Clauset, Shalizi & Newman (2009, §3):
//   for every candidate x_min (each eigenvalue above 1e-5 but the largest),
//   α = 1 + n / Σ_{λ ≥ x_min} ln(λ / x_min) over the n eigenvalues of the tail, and the
//   Kolmogorov–Smirnov distance D between the tail and 1 − (λ / x_min)^(1−α); the x_min of the
//   smallest D wins (the first on ties), σ_α = (α − 1)/√n. Fewer than 20 eigenvalues above
//   1e-5 take the package's small-sample rule instead: the bias-corrected α = 1 + (n − 1)/Σ ln,
//   tails of at least 8, and x_min chosen by D − 0.868/√n;
// - norms: ‖W‖_F² = Σλ (log_norm is its log10), λ_max (log_spectral_norm), α̂ = α·log10 λ_max
//   (alpha_weighted), log10 Σ λ^α (log_alpha_norm), Σλ/λ_max (stable_rank), the numerical rank
//   (σ > σ_max·N·ε₆₄) and the matrix entropy −Σ p ln p / ln(rank) with p = λ/Σλ (+1e-10 each);
// - warning: "over-trained" below α = 2, "under-trained" above α = 6.
//
// The eigenvalues come from the Float64 Gram matrix on the smaller side (`dsyrk` + `dsyevd`),
// about 3-6x cheaper than an SVD of W. Its absolute error is a few ε₆₄·λ_max, so when the
// smallest eigenvalue is below 1e-8·λ_max (a condition number above 10⁴, where that error would
// show in the small eigenvalues or the rank) the values come from `dgesdd` on W instead, as
// weightwatcher computes them (SciPy's `svd(compute_uv=False)`).

/// A power-law fit of an ESD's tail.
public struct PowerLawFit: Sendable, Equatable {
    public var alpha: Double
    public var xmin: Double
    public var xmax: Double
    /// Kolmogorov–Smirnov distance of the fitted tail.
    public var D: Double
    public var sigma: Double
    /// How many eigenvalues are at or above x_min.
    public var tailCount: Int

    /// The largest positive eigenvalue count that the standard (not small-sample) rule needs.
    public static let smallSampleCutoff = 20
    /// Eigenvalues at or below this are left out of the fit (weightwatcher's EVALS_THRESH).
    public static let threshold = 1e-5

    /// Fits `values` (any order; values ≤ `threshold` are dropped), or nil when fewer than two remain.
    public static func fit(_ values: [Double]) -> PowerLawFit? {
        let data = values.filter { $0 > threshold }.sorted()
        let n = data.count
        guard n >= 2 else { return nil }
        let logs = data.map { Foundation.log($0) }
        // suffix sums of ln λ: tail[i] = Σ_{j ≥ i} ln λ_j
        var tail = [Double](repeating: 0, count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) { tail[i] = tail[i + 1] + logs[i] }
        var best = -1
        var bestScore = Double.infinity
        var alphas = [Double](repeating: 0, count: n - 1)
        var ds = [Double](repeating: 1, count: n - 1)
        let small = n < smallSampleCutoff
        for i in 0..<(n - 1) {
            let count = n - i
            let m = Double(count)
            let s = tail[i] - m * logs[i]
            if small {
                guard count >= 8, s > 1e-12 else { continue }
                let a = 1 + (m - 1) / s
                alphas[i] = a
                guard a > 1 else { continue }
                let d = ksDistance(logs, from: i, alpha: a)
                ds[i] = d
                let score = d - 0.868 / m.squareRoot()
                if score < bestScore { bestScore = score; best = i }
            } else {
                let a = 1 + m / s
                alphas[i] = a
                if a > 1 { ds[i] = ksDistance(logs, from: i, alpha: a) }
                if ds[i] < bestScore { bestScore = ds[i]; best = i }  // the first minimum, as np.argmin
            }
        }
        if best < 0 {
            // Small sample where no tail of 8 qualifies: the whole sample is the tail.
            let m = Double(n)
            let s = tail[0] - m * logs[0]
            guard s > 1e-12 else {
                return PowerLawFit(alpha: 1, xmin: data[0], xmax: data[n - 1], D: 1, sigma: 0, tailCount: n)
            }
            let a = 1 + (m - 1) / s
            // The package computes σ before this fallback, from the loop's α for index 0 (0 when skipped).
            return PowerLawFit(alpha: a, xmin: data[0], xmax: data[n - 1], D: ksDistance(logs, from: 0, alpha: a),
                               sigma: (alphas[0] - 1) / m.squareRoot(), tailCount: n)
        }
        let a = alphas[best]
        return PowerLawFit(alpha: a, xmin: data[best], xmax: data[n - 1], D: ds[best],
                           sigma: (a - 1) / Double(n - best).squareRoot(), tailCount: n - best)
    }

    /// max_k |1 − (λ_{i+k}/λ_i)^(1−α) − k/n| over the tail from index i (n = its length), from
    /// the logarithms of the sorted values: (λ/x_min)^(1−α) = exp((1−α)(ln λ − ln x_min)).
    static func ksDistance(_ logs: [Double], from i: Int, alpha: Double) -> Double {
        let n = logs.count - i
        let l0 = logs[i]
        let e = 1 - alpha
        let inv = 1 / Double(n)
        var d = 0.0
        logs.withUnsafeBufferPointer { p in
            for k in 0..<n {
                let theory = 1 - Foundation.exp(e * (p[i + k] - l0))
                d = max(d, abs(theory - Double(k) * inv))
            }
        }
        return d
    }
}

/// WeightWatcher's metrics of one weight matrix.
public struct LayerSpectrum: Sendable, Codable, Equatable {
    public var name: String
    public var layer: Int?
    public var moduleType: String
    /// max(shape), min(shape): the ESD has M eigenvalues.
    public var N: Int
    public var M: Int
    public var alpha: Double
    public var xmin: Double
    public var xmax: Double
    public var D: Double
    public var sigma: Double
    public var numPLSpikes: Int
    public var status: String
    public var warning: String
    public var lambdaMax: Double
    public var svMax: Double
    public var svMin: Double
    public var rankLoss: Int
    public var weakRankLoss: Int
    public var norm: Double
    public var logNorm: Double
    public var spectralNorm: Double
    public var logSpectralNorm: Double
    public var alphaWeighted: Double
    public var logAlphaNorm: Double
    public var stableRank: Double
    public var matrixRank: Int
    public var entropy: Double
    /// "gram" (dsyrk + dsyevd) or "gesdd".
    public var method: String

    enum CodingKeys: String, CodingKey {
        case name, layer, alpha, xmin, xmax, sigma, status, warning, norm, entropy, method
        case N = "n", M = "m", D = "ks_distance"
        case moduleType = "module_type"
        case numPLSpikes = "num_pl_spikes"
        case lambdaMax = "lambda_max"
        case svMax = "sv_max"
        case svMin = "sv_min"
        case rankLoss = "rank_loss"
        case weakRankLoss = "weak_rank_loss"
        case logNorm = "log_norm"
        case spectralNorm = "spectral_norm"
        case logSpectralNorm = "log_spectral_norm"
        case alphaWeighted = "alpha_weighted"
        case logAlphaNorm = "log_alpha_norm"
        case stableRank = "stable_rank"
        case matrixRank = "matrix_rank"
    }

    /// The metrics of eigenvalues `evals` (λ = σ², any order) of an N × M matrix.
    public static func metrics(name: String, evals raw: [Double], N: Int, M: Int, method: String) -> LayerSpectrum {
        let evals = raw.map { max($0, 0) }.sorted()
        let lmax = evals.last ?? 0
        let sv = evals.map { $0.squareRoot() }
        let svMax = sv.last ?? 0
        let tol = svMax * Double(N) * Double.ulpOfOne
        let rank = sv.reduce(0) { $0 + ($1 > tol ? 1 : 0) }
        let fit = PowerLawFit.fit(evals)
        let alpha = fit?.alpha ?? -1
        let norm = evals.reduce(0, +)
        let logAlphaNorm = Foundation.log10(evals.reduce(0) { $0 + Foundation.pow($1, alpha) })
        let p = evals.map { $0 / norm + 1e-10 }
        let entropy = -p.reduce(0) { $0 + $1 * Foundation.log($1) } / Foundation.log(Double(rank) + 1e-10)
        let warning = alpha < 2 ? "over-trained" : alpha > 6 ? "under-trained" : ""
        let (layer, type) = parseModuleName(name)
        return LayerSpectrum(
            name: name, layer: layer, moduleType: type, N: N, M: M,
            alpha: alpha, xmin: fit?.xmin ?? -1, xmax: fit?.xmax ?? lmax, D: fit?.D ?? -1, sigma: fit?.sigma ?? -1,
            numPLSpikes: fit.map { f in evals.reduce(0) { $0 + ($1 >= f.xmin ? 1 : 0) } } ?? -1,
            status: fit == nil ? "failed" : "success", warning: warning,
            lambdaMax: lmax, svMax: svMax, svMin: sv.first ?? 0, rankLoss: M - rank,
            weakRankLoss: evals.reduce(0) { $0 + ($1 < 1e-6 ? 1 : 0) },
            norm: norm, logNorm: Foundation.log10(norm), spectralNorm: lmax, logSpectralNorm: Foundation.log10(lmax),
            alphaWeighted: alpha * Foundation.log10(lmax), logAlphaNorm: logAlphaNorm, stableRank: norm / lmax,
            matrixRank: rank, entropy: entropy, method: method)
    }

    /// The M squared singular values of `w`: Gram eigenvalues, or `dgesdd` when ill-conditioned.
    public static func eigenvalues(of w: Tensor) throws -> (values: [Double], method: String) {
        let (k, g) = smallerSideGram64(w)
        let values = try symmetricEigenvalues64(g, n: k)
        let top = values.last ?? 0
        if let low = values.first, top > 0, low >= 1e-11 * top { return (values, "gram") }
        let s = try singularValues64(w.scalars.map(Double.init), rows: w.shape[0], cols: w.shape[1])
        return (s.map { $0 * $0 }.reversed(), "gesdd")
    }
}

/// Averages over the analysed layers, as weightwatcher's `get_summary()` reports them.
public struct ModelSpectrumSummary: Sendable, Codable, Equatable {
    public var layers: Int
    public var alpha: Double
    public var alphaWeighted: Double
    public var logNorm: Double
    public var logAlphaNorm: Double
    public var logSpectralNorm: Double
    public var stableRank: Double
    public var overTrained: Int
    public var underTrained: Int

    enum CodingKeys: String, CodingKey {
        case layers, alpha
        case alphaWeighted = "alpha_weighted"
        case logNorm = "log_norm"
        case logAlphaNorm = "log_alpha_norm"
        case logSpectralNorm = "log_spectral_norm"
        case stableRank = "stable_rank"
        case overTrained = "over_trained"
        case underTrained = "under_trained"
    }

    public init(_ layers: [LayerSpectrum]) {
        let fitted = layers.filter { $0.status == "success" }
        func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }
        self.layers = layers.count
        alpha = mean(fitted.map(\.alpha))
        alphaWeighted = mean(fitted.map(\.alphaWeighted))
        logNorm = mean(layers.map(\.logNorm))
        logAlphaNorm = mean(fitted.map(\.logAlphaNorm))
        logSpectralNorm = mean(layers.map(\.logSpectralNorm))
        stableRank = mean(layers.map(\.stableRank))
        overTrained = layers.filter { $0.warning == "over-trained" }.count
        underTrained = layers.filter { $0.warning == "under-trained" }.count
    }
}

/// The ESD report of one model.
public struct ModelSpectrumReport: Sendable, Codable {
    public var model: String
    public var rules: String
    public var layers: [LayerSpectrum]
    /// Tensors left out, with the reason (too few or too many eigenvalues, N too large, not 2-D).
    public var skipped: [SkippedTensor]
    public var summary: ModelSpectrumSummary
    public var seconds: Double

    public struct SkippedTensor: Sendable, Codable, Equatable {
        public var name: String
        public var reason: String
    }
}

public struct ESDOptions: Sendable {
    /// weightwatcher's `min_evals`, `max_evals`, `max_N` defaults.
    public var minEvals = 8
    public var maxEvals = 15_000
    public var maxN = 50_000
    public init() {}
}

public enum ModelSpectrum {
    public static let rules = "weightwatcher 0.7.7 analyze() defaults (power-law fit 'ww', min_evals 8, max_evals 15000, max_N 50000)"

    /// The tensors to analyse (2-D `*.weight` within the eigenvalue limits), filtered by `modules`,
    /// and those left out with why.
    public static func select(_ model: Checkpoint, modules: String?, options: ESDOptions = ESDOptions())
        throws -> (names: [String], skipped: [ModelSpectrumReport.SkippedTensor]) {
        var re: NSRegularExpression?
        if let modules {
            do { re = try NamePattern.compile(modules) } catch { throw SpectralError.invalidModuleRegex(modules, reason: error.description) }
        }
        var names: [String] = []
        var skipped: [ModelSpectrumReport.SkippedTensor] = []
        for name in model.tensorNames where name.hasSuffix(".weight") {
            if let re, re.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) == nil { continue }
            guard let shape = model.info(name)?.shape else { continue }
            guard shape.rank == 2 else {
                if shape.rank > 2 { skipped.append(.init(name: name, reason: "\(shape.rank)-D (not a matrix)")) }
                continue
            }
            let (n, m) = (max(shape[0], shape[1]), min(shape[0], shape[1]))
            if m < options.minEvals { skipped.append(.init(name: name, reason: "\(m) eigenvalues, fewer than \(options.minEvals)")); continue }
            if m > options.maxEvals { skipped.append(.init(name: name, reason: "\(m) eigenvalues, more than \(options.maxEvals)")); continue }
            if n > options.maxN { skipped.append(.init(name: name, reason: "N = \(n), more than \(options.maxN)")); continue }
            names.append(name)
        }
        guard !names.isEmpty else {
            throw SpectralError.noMatrices(reason: modules.map { "--modules \"\($0)\" matches none of the 2-D weight matrices" }
                                           ?? "\(model.path) has no 2-D weight matrix within weightwatcher's limits")
        }
        return (names, skipped)
    }

    /// The metrics of every selected matrix, `jobs` at a time (largest first), in name order.
    public static func analyze(_ model: Checkpoint, modules: String? = nil, options: ESDOptions = ESDOptions(), jobs: Int = 1,
                               progress: (@Sendable (String) -> Void)? = nil) throws -> ModelSpectrumReport {
        let start = Date()
        let (names, skipped) = try select(model, modules: modules, options: options)
        // Largest Gram first so that the longest job does not start last.
        let cost: (String) -> Int = { n in
            let s = model.info(n)!.shape
            let (a, b) = (max(s[0], s[1]), min(s[0], s[1]))
            return a * b * b
        }
        let order = names.indices.sorted { cost(names[$0]) > cost(names[$1]) }
        let box = SlotBox<LayerSpectrum>(count: names.count)
        let work: @Sendable (Int) -> Void = { k in
            if box.failed { return }
            let idx = order[k]
            let name = names[idx]
            do {
                let w = try SpectralAnalysis.finite(try model.tensor(name), name, model.path)
                let (n, m) = (max(w.shape[0], w.shape[1]), min(w.shape[0], w.shape[1]))
                let (values, method) = try LayerSpectrum.eigenvalues(of: w)
                box.set(idx, LayerSpectrum.metrics(name: name, evals: values, N: n, M: m, method: method))
                progress?(name)
            } catch {
                box.fail(error)
            }
        }
        let workers = max(1, min(jobs, names.count))
        if workers == 1 {
            for k in order.indices { work(k); if box.failed { break } }
        } else {
            let next = ResultsBox.Counter()
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while let k = next.take(limit: names.count) { work(k) }
            }
        }
        if let e = box.error { throw e }
        let layers = box.values.compactMap { $0 }
        return ModelSpectrumReport(model: model.path, rules: rules, layers: layers, skipped: skipped,
                                   summary: ModelSpectrumSummary(layers), seconds: Date().timeIntervalSince(start))
    }
}

/// Thread-safe result slots.
final class SlotBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [T?]
    private(set) var error: Error?
    init(count: Int) { values = Array(repeating: nil, count: count) }
    var failed: Bool { lock.lock(); defer { lock.unlock() }; return error != nil }
    func set(_ i: Int, _ v: T) { lock.lock(); values[i] = v; lock.unlock() }
    func fail(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
}

extension ModelSpectrumReport {
    /// One row per matrix in layer order, then the skipped tensors and the summary.
    public func text() -> String {
        func f(_ x: Double, _ d: Int = 3) -> String { x.isFinite ? String(format: "%.\(d)f", x) : "\(x)" }
        func pad(_ s: String, _ w: Int, right: Bool = true) -> String { ReportText.pad(s, w, right: right) }
        var out = "model: \(model)\n"
        out += "rules: \(rules)\n"
        out += "columns: α = power-law exponent of the ESD tail (λ ≥ xmin), D = its KS distance, tail = eigenvalues in the fit,\n"
        out += "         α̂ = α·log10 λmax (alpha_weighted), λmax = largest eigenvalue of WᵀW, srank = Σλ/λmax, entropy = matrix entropy\n"
        out += "         warning: α < 2 over-trained, α > 6 under-trained (weightwatcher's thresholds)\n\n"
        let rows = layers.sorted { a, b in
            (a.layer ?? -1, ReportText.moduleOrder(a.moduleType), a.name) < (b.layer ?? -1, ReportText.moduleOrder(b.moduleType), b.name)
        }
        let typeW = max(8, rows.map(\.moduleType.count).max() ?? 8) + 2
        out += pad("layer", 6, right: false) + pad("module", typeW, right: false) + pad("N×M", 12, right: false)
            + pad("α", 7) + pad("D", 7) + pad("xmin", 10) + pad("tail", 6) + pad("α̂", 8) + pad("λmax", 10) + pad("srank", 8)
            + pad("entropy", 9) + "  warning\n"
        for r in rows {
            out += pad(r.layer.map(String.init) ?? "-", 6, right: false) + pad(r.moduleType, typeW, right: false)
                + pad("\(r.N)×\(r.M)", 12, right: false)
            out += pad(f(r.alpha), 7) + pad(f(r.D), 7) + pad(String(format: "%.4g", r.xmin), 10) + pad(String(r.numPLSpikes), 6)
            out += pad(f(r.alphaWeighted), 8) + pad(String(format: "%.4g", r.lambdaMax), 10) + pad(f(r.stableRank, 2), 8)
            out += pad(f(r.entropy), 9) + (r.warning.isEmpty ? "" : "  " + r.warning) + "\n"
        }
        if !skipped.isEmpty {
            out += "\nskipped (weightwatcher's limits): " + skipped.map { "\($0.name) (\($0.reason))" }.joined(separator: ", ") + "\n"
        }
        // Per module type: mean α, as a compact view of where the heavy tails are.
        var byType: [String: [Double]] = [:]
        for r in layers where r.status == "success" { byType[r.moduleType, default: []].append(r.alpha) }
        let types = byType.keys.sorted { (ReportText.moduleOrder($0), $0) < (ReportText.moduleOrder($1), $1) }
        out += "\nmean α by module: " + types.map { t in
            let v = byType[t]!
            return "\(t) \(f(v.reduce(0, +) / Double(v.count), 2))"
        }.joined(separator: ", ") + "\n"
        let s = summary
        out += "summary over \(s.layers) matrices: α \(f(s.alpha)), α̂ \(f(s.alphaWeighted)), log_norm \(f(s.logNorm)), "
            + "log_alpha_norm \(f(s.logAlphaNorm)), log_spectral_norm \(f(s.logSpectralNorm)), stable_rank \(f(s.stableRank, 2)); "
            + "\(s.overTrained) over-trained (α < 2), \(s.underTrained) under-trained (α > 6)\n"
        out += String(format: "time: %.2f s\n", seconds)
        return out
    }
}
