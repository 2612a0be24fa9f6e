import ArgumentParser
import Merging
import Tensors

/// `--threads N`, the same flag on every command that computes: the total number of threads the
/// command uses (merge workers, matrices analysed in parallel, decoding kernels), default every
/// core. BLAS itself runs on one thread per worker unless OPENBLAS_NUM_THREADS is set.
struct ThreadsOption: ParsableArguments {
    @Option(help: "Threads in all (default: every core).")
    var threads: Int?

    /// Sets the thread budget before any work starts.
    func apply() throws {
        guard let threads else { return }
        guard threads >= 1, threads <= 4096 else { throw ValidationError("--threads must be between 1 and 4096, got \(threads)") }
        ParallelLoops.threadCount = threads
        BLASThreads.budgetOverride = threads
    }
}

/// `--quiet`, the same flag on every command that reports progress or notes: only the result
/// (and errors) is printed.
struct QuietOption: ParsableArguments {
    @Flag(help: "No progress lines or notes: only the result and errors.")
    var quiet = false
}
