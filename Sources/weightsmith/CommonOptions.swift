import Foundation
import ArgumentParser
import Merging
import Tensors

/// `--threads N`, the same flag on every command that computes: the total number of threads the
/// command uses (merge workers, matrices analysed in parallel, decoding kernels), default every
/// core. BLAS itself runs on one thread per worker unless OPENBLAS_NUM_THREADS is set.
struct ThreadsOption: ParsableArguments {
    @Option(help: "Threads in all (default: every core).")
    var threads: Int?

    /// Checks `--threads` and sets the BLAS thread budget (OpenBLAS's setting is process-wide)
    /// before any work starts. Merge plans get the count itself (`count`, `PlanOptions.threads`).
    func apply() throws { try Self.apply(threads) }

    /// The threads the command's loops run on: `--threads`, else every core.
    var count: Int { threads ?? ParallelLoops.machineThreads }

    /// The same for a command that declares its own `--threads` (merge).
    static func apply(_ threads: Int?) throws {
        guard let threads else { return }
        guard threads >= 1, threads <= 4096 else { throw ValidationError("--threads must be between 1 and 4096, got \(threads)") }
        BLASThreads.budgetOverride = threads
    }
}

/// `--quiet`, the same flag on every command that reports progress or notes: only the result
/// (and errors) is printed.
struct QuietOption: ParsableArguments {
    @Flag(help: "No progress lines or notes: only the result and errors.")
    var quiet = false
}

/// The `--json` report of a command that wrote a merged folder (merge, compose, task-vector extract): snake_case keys
/// as in `eval` and `inspect`.
struct WrittenFolderJSON: Encodable {
    let output: String
    let tensors: Int
    let bytes: Int
    let seconds: Double
    let files: [String]
    let notes: [String]
    /// The tensors' dtype ("mixed" when they differ); left out when the command does not say (merge, compose).
    let dtype: String?

    init(_ report: MergeReport, notes: [String], dtype: String? = nil) {
        output = report.outputDirectory.path
        tensors = report.tensors
        bytes = report.outputBytes
        seconds = (report.seconds * 1000).rounded() / 1000
        files = report.files
        self.notes = notes
        self.dtype = dtype
    }

    func printed() throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try e.encode(self), as: UTF8.self))
    }
}

/// Every command's `--json` report: one object on stdout, sorted keys, snake_case (Swift's
/// camelCase property names converted), NaN/±Inf as the strings "nan"/"inf"/"-inf".
func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    enc.keyEncodingStrategy = .convertToSnakeCase
    enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    print(String(decoding: try enc.encode(value), as: UTF8.self))
}
