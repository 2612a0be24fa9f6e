import ArgumentParser
import Checkpoints
import Foundation
import Spectral
import Tensors

/// Options shared by `spectrum` and `compare`.
struct SpectralOptionGroup: ParsableArguments {
    @Option(help: "Only matrices whose tensor name matches this regular expression.")
    var modules: String?

    @Option(name: .customLong("top-k"), help: "How many top singular vectors of the tuned matrix are checked for intruders.")
    var topK = 10

    @Option(parsing: .upToNextOption, help: "Intruder threshold(s) ε; several values (space or comma separated) give a sweep, the first is primary.")
    var epsilon: [String] = ["0.5"]

    @Option(name: .customLong("energy-rank"), help: "r for the top-r energy and the overlap of dense updates (default 8; LoRA uses its rank).")
    var energyRank: Int?

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "Also WeightWatcher's power-law exponent α of each matrix before (W0) and after (W) each fine-tune, side by side.")
    var alpha = false

    @Option(help: "Write SVG plots (spectra, intruders per layer, cosine heat maps) as this folder (must not exist or be empty).")
    var plots: String?

    @Flag(help: "Replace the --plots folder when it is a previous weightsmith output.")
    var force = false

    @Option(help: "Matrices analysed in parallel (default: cores / BLAS threads; BLAS runs on one thread unless OPENBLAS_NUM_THREADS is set).")
    var jobs: Int?

    @Option(help: "SVDs of W and ΔW: auto (exact selective LAPACK SVD of the top vectors; randomized with an accuracy check first for 1024+ dimensions), exact (full gesdd), randomized.")
    var svd: String = "auto"

    @Option(name: .customLong("cache-dir"), help: "Folder for cached decompositions (default $WEIGHTSMITH_CACHE_DIR or ~/.cache/weightsmith/svd).")
    var cacheDir: String?

    @Flag(name: .customLong("no-cache"), help: "Neither read nor write the decomposition cache.")
    var noCache = false

    @Flag(name: .customLong("clear-cache"), help: "Delete the decomposition cache before running.")
    var clearCache = false

    func epsilons() throws -> [Double] {
        let parts = epsilon.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return try parts.map {
            guard let v = Double($0), v > 0, v <= 1 else { throw ValidationError("--epsilon: \"\($0)\" is not a number in (0, 1]") }
            return v
        }
    }

    func spectralOptions() throws -> SpectralOptions {
        var o = SpectralOptions()
        guard topK > 0 else { throw ValidationError("--top-k must be positive") }
        o.topK = topK
        o.epsilons = try epsilons()
        if let energyRank { guard energyRank > 0 else { throw ValidationError("--energy-rank must be positive") }; o.energyRank = energyRank }
        guard let method = SpectralOptions.SVDMethod(rawValue: svd) else { throw ValidationError("--svd must be auto, exact or randomized") }
        o.svdMethod = method
        o.fullTunedSpectrum = plots != nil
        if !noCache {
            let cache = DecompositionCache(directory: cacheDir.map { URL(fileURLWithPath: $0) } ?? DecompositionCache.defaultDirectory)
            if clearCache { try cache.clear() }
            o.cache = cache
        } else if clearCache, true {
            try DecompositionCache(directory: cacheDir.map { URL(fileURLWithPath: $0) } ?? DecompositionCache.defaultDirectory).clear()
        }
        return o
    }

    func workerCount() -> Int {
        if let jobs { return max(1, jobs) }
        // BLASThreads.configureDefault() ran at start-up: one BLAS thread unless the user set
        // OPENBLAS_NUM_THREADS, so by default every core runs a worker.
        let cores = BLASThreads.budget
        return max(1, cores / BLASThreads.current)
    }

    /// Checks the --cache-dir folder against the inputs (never inside one), then checks (and
    /// locks) the --plots folder, before the analysis; nil without --plots.
    func preparePlots(inputs: [String]) throws -> OutputFolder? {
        if !noCache || clearCache {
            try OutputFolder.checkCacheFolder(cacheDir.map { URL(fileURLWithPath: $0) } ?? DecompositionCache.defaultDirectory,
                                              inputs: inputs, option: "--cache-dir")
        }
        guard let plots else { return nil }
        return try OutputFolder.prepare(URL(fileURLWithPath: plots), inputs: inputs.map { URL(fileURLWithPath: $0) }, force: force, command: "plots")
    }

    /// Prints the report (text or JSON) and writes the plots into the prepared folder.
    func emit(_ report: SpectralReport, plotsFolder: OutputFolder?) throws {
        if json {
            try printJSON(report)
        } else {
            print(ReportText.render(report), terminator: "")
        }
        if let plots, let plotsFolder {
            let files = try SpectralPlots.write(report, with: plotsFolder)
            if !json { print("plots: " + files.map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: ", ") + " in \(plots)") }
        }
    }
}
