import CLinearAlgebra
import Foundation

/// How many threads OpenBLAS uses, decided by weightsmith rather than left to OpenBLAS's default.
///
/// OpenBLAS (the Debian pthreads build) starts one thread per core and lets them spin between
/// calls. weightsmith runs its own workers (matrices analysed in parallel, merge blocks, decoding
/// kernels), and on this project's 2-core machines the spinning threads competed with them:
/// a cold `compare` on SmolLM2-135M took 149 s (91 s of it system time) with OpenBLAS's default
/// against 37 s with one BLAS thread. So, unless the user says otherwise through
/// `OPENBLAS_NUM_THREADS`, weightsmith runs BLAS on one thread and parallelises itself.
///
/// OpenBLAS's setting is process-wide (not per thread): code that runs W workers, each calling
/// BLAS, should give BLAS `max(1, budget / W)` threads (`threads(forWorkers:)`).
public enum BLASThreads {
    /// The user's explicit choice: `OPENBLAS_NUM_THREADS` when it is a positive integer.
    public static var userSetting: Int? {
        guard let s = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"], let n = Int(s), n > 0 else { return nil }
        return n
    }

    /// Threads OpenBLAS uses now.
    public static var current: Int { max(1, Int(openblas_get_num_threads())) }

    /// Sets OpenBLAS's thread count (clamped to at least 1).
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// A command line's `--threads`: replaces the budget below (set before any work starts).
    nonisolated(unsafe) public static var budgetOverride: Int? = nil

    /// The total thread budget of this process: `--threads`, else the user's OPENBLAS_NUM_THREADS,
    /// else the active cores.
    public static var budget: Int { budgetOverride ?? userSetting ?? max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// BLAS threads each of `workers` parallel workers should use so that together they fill the
    /// budget without oversubscribing it.
    public static func threads(forWorkers workers: Int) -> Int { max(1, budget / max(1, workers)) }

    /// BLAS threads for a section that runs one BLAS call at a time and no workers of its own
    /// (a training loop's forward and backward passes): the whole budget.
    public static var serialThreads: Int { budget }

    /// Runs `body` with OpenBLAS on `n` threads and restores the previous count afterwards.
    /// The setting is process-wide: use it only where nothing else runs BLAS meanwhile.
    public static func withThreads<T>(_ n: Int, _ body: () throws -> T) rethrows -> T {
        let before = current
        set(n)
        defer { set(before) }
        return try body()
    }

    /// weightsmith's default: the user's `OPENBLAS_NUM_THREADS` when set, else one BLAS thread.
    /// Called once at the start of the command-line tool; library users may call it too.
    public static func configureDefault() {
        set(userSetting ?? 1)
    }
}
