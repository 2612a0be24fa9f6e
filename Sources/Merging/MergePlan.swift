import Checkpoints
import Foundation
import Tensors

/// A checkpoint opened for a merge, with the name the recipe gave it.
public struct PlannedInput: Sendable {
    public let label: String
    public let path: String
    public let checkpoint: Checkpoint
}

/// Where one input tensor of a job comes from.
public struct JobInput: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Model weights.
        case weights
        /// A stored task vector: the executor feeds `base + tensor` to the method.
        case delta
    }
    /// Index into `MergePlan.inputs`.
    public let model: Int
    /// Tensor name inside that checkpoint.
    public let tensor: String
    public var kind: Kind = .weights
    /// When the tensor has fewer rows than the output (vocabulary choice `base`), the missing
    /// rows are taken from this input (the base model's tensor).
    public var padFrom: Int? = nil

    public init(model: Int, tensor: String, kind: Kind = .weights, padFrom: Int? = nil) {
        self.model = model
        self.tensor = tensor
        self.kind = kind
        self.padFrom = padFrom
    }
}

/// One output tensor: its inputs, the method's resolved parameters and the output dtype.
public struct MergeJob: Sendable {
    public let output: String
    public let shape: Shape
    public let outDType: DType
    public let base: JobInput?
    public var models: [JobInput]
    public let parameters: ResolvedParameters
    /// Layer position used for gradients (0 for non-layer tensors).
    public let t: Double
    /// For a vocabulary matrix of a merge with a tokenizer setting: how each input's rows are
    /// laid out in the output vocabulary before the method runs (nil: the stored rows as they are).
    public var vocabularyRows: VocabularyRows? = nil
    public var elementCount: Int { shape.elementCount }
}

/// The whole merge, decided before any tensor is read: `--dry-run` prints it.
public struct MergePlan: @unchecked Sendable {
    public let recipe: Recipe
    public let method: any MergeMethod
    public let inputs: [PlannedInput]
    public var jobs: [MergeJob]
    /// Input whose config.json is the template of the output's.
    public let configSource: Int
    /// Input whose tokenizer files are copied.
    public let tokenizerSource: Int
    /// Output `num_hidden_layers` when slices changed it.
    public let outputLayerCount: Int?
    /// Output vocabulary rows when a vocabulary choice changed them.
    public let outputVocabularyRows: Int?
    public var notes: [String]
    /// Everything that would make the merge fail or silently wrong; the merge runs only when empty.
    public var problems: [String]
    /// Tensors among `problems` whose inputs differ only in vocabulary rows and no `--vocab`
    /// choice was given (callers that cannot offer `--vocab` give their own advice).
    public var vocabularyMismatches: [String] = []
    public var seed: UInt64 = 0
    /// The chat template written into the output (`chat_template:` resolved), nil = the copied files' own.
    public var chatTemplate: String? = nil
    /// The output vocabulary of a tokenizer setting (`tokenizer_source`, `tokenizer:`), when it is
    /// not simply the tokenizer source's.
    public var vocabulary: VocabularyAlignment? = nil
    /// A streamed job whose mapped inputs take at most this many bytes keeps them resident through
    /// its passes (each pass re-reads memory); a larger one drops each block's pages after every
    /// pass, which costs page faults on every re-read (on SmolLM2-135M × 4 the embedding job:
    /// 452 MB resident and ~0.7 s less wall time than dropping). 1 GiB by default; the executor
    /// lowers it to 0 when `--memory-budget` would otherwise refuse the plan.
    public var keepMappedBytes = 1 << 30
    /// Threads the merge runs on (the CLI's `--threads`; default every core). A run setting like
    /// `keepMappedBytes`, not part of the plan file: the output's bytes do not depend on it.
    public var threads = ParallelLoops.machineThreads {
        didSet { threads = max(1, threads) }
    }
    /// Loops over `threads`.
    public var loops: ParallelLoops { ParallelLoops(threads: threads) }

    /// Throws all problems together.
    public func checked() throws -> MergePlan {
        guard problems.isEmpty else { throw MergeError.preflight(problems) }
        return self
    }

    /// Bytes of output tensor data.
    public var outputBytes: Int { jobs.reduce(0) { $0 + $1.elementCount * $1.outDType.byteSize } }
    /// Bytes of all input checkpoints.
    public var inputBytes: Int { inputs.reduce(0) { $0 + $1.checkpoint.totalBytes } }

    /// Estimated peak working memory of one job: the output piece being filled, the resident
    /// mapped input pages (a chunk or block per thread when the job streams them, else whole
    /// tensors), decoded copies of inputs that are not Float32, and the method's scratch.
    public func estimatedJobBytes(_ job: MergeJob) -> Int {
        let n = job.elementCount
        let inputs = [job.base].compactMap { $0 } + job.models
        let infos = inputs.map { self.inputs[$0.model].checkpoint.info($0.tensor) }
        let decoded = zip(inputs, infos).filter { $1?.dtype != .f32 || $0.kind == .delta || $0.padFrom != nil }.count
        let storedPerElement = infos.reduce(0) { $0 + ($1?.dtype.byteSize ?? 4) }
        // Laid out in the output vocabulary: every input decoded whole, then rearranged.
        let aligned = job.vocabularyRows == nil ? 0 : 4 * n * inputs.count + infos.reduce(0) { $0 + 4 * ($1?.elementCount ?? n) }
        switch MergeExecutor.mode(of: job, plan: self) {
        case .chunked:
            let c = MergeExecutor.chunkElements
            return aligned + 4 * c + storedPerElement * c + 4 * decoded * c
        case .streamed:
            let blocks = TensorBlocks(count: n, cols: job.shape.dims.last ?? 1)
            let block = min(n, blocks.blockElements)
            let mapped = MergeExecutor.inputBytes(job, plan: self) > keepMappedBytes
                ? threads * block * storedPerElement : infos.reduce(0) { $0 + ($1?.byteCount ?? 4 * n) }
            return aligned + 4 * min(n, blocks.windowElements) + mapped + threads * block * 4 * decoded
                + method.streamScratchBytes(elementCount: n, cols: blocks.cols, modelCount: job.models.count, threads: threads)
        case .whole:
            return aligned + 4 * n + infos.reduce(0) { $0 + ($1?.byteCount ?? 4 * n) } + 4 * decoded * n
                + method.wholeScratchBytes(elementCount: n, modelCount: job.models.count, parameters: job.parameters)
        }
    }

    /// Bytes of the largest output piece of a job (the executor writes up to two while computing).
    func outputPieceBytes(_ job: MergeJob) -> Int {
        let n = job.elementCount
        switch MergeExecutor.mode(of: job, plan: self) {
        case .chunked: return 4 * MergeExecutor.chunkElements
        case .streamed: return 4 * min(n, TensorBlocks(count: n, cols: job.shape.dims.last ?? 1).windowElements)
        case .whole: return 4 * n
        }
    }

    /// The largest job plus one more finished output piece waiting for the writer.
    public var estimatedPeakBytes: Int {
        (jobs.map(estimatedJobBytes).max() ?? 0) + (jobs.map(outputPieceBytes).max() ?? 0)
    }

    /// Human-readable plan: inputs, output, one line per job.
    public func describe(maxJobs: Int = Int.max) -> String {
        var s = "method: \(method.name) (\(method.reference))\n"
        s += "inputs:\n"
        for (i, inp) in inputs.enumerated() {
            let c = inp.checkpoint
            s += "  [\(i)] \(inp.label): \(c.tensorNames.count) tensors, \(formatBytes(c.totalBytes))\n"
        }
        let dtypes = Set(jobs.map(\.outDType.recipeName)).sorted().joined(separator: ", ")
        s += "output: \(jobs.count) tensors, \(formatBytes(outputBytes)) (\(dtypes))"
        if let outputLayerCount { s += ", \(outputLayerCount) layers" }
        if let outputVocabularyRows { s += ", vocabulary \(outputVocabularyRows) rows" }
        s += "\nconfig.json from [\(configSource)], tokenizer from [\(tokenizerSource)]\n"
        if method.isRandomized { s += "seed: \(seed)\n" }
        for n in notes { s += "note: \(n)\n" }
        if let own = MemoryBudget.residentBytes() {
            s += "estimated peak memory: \(formatBytes(estimatedPeakBytes + own)) (largest job \(formatBytes(estimatedPeakBytes)) + this program now \(formatBytes(own))), inputs \(formatBytes(inputBytes))\n"
        } else {
            s += "estimated peak memory: \(formatBytes(estimatedPeakBytes)) (largest job), inputs \(formatBytes(inputBytes))\n"
        }
        s += "jobs:\n"
        for (k, j) in jobs.enumerated() {
            if k == maxJobs { s += "  ... \(jobs.count - maxJobs) more\n"; break }
            s += "  \(j.output) \(j.shape) \(j.outDType.rawValue)\(j.vocabularyRows == nil ? "" : " (rows in the output vocabulary)") <- " + describeInputs(j) + "\n"
        }
        return s
    }

    func describeInputs(_ j: MergeJob) -> String {
        func name(_ inp: JobInput, _ params: [String: ParameterValue]?) -> String {
            var n = "[\(inp.model)]"
            if inp.tensor != j.output { n += ":\(inp.tensor)" }
            if inp.kind == .delta { n += "(task vector)" }
            if let params, !params.isEmpty {
                n += "(" + params.keys.sorted().map { "\($0)=\(params[$0]!)" }.joined(separator: ", ") + ")"
            }
            return n
        }
        var parts: [String] = []
        if let b = j.base { parts.append("base " + name(b, nil)) }
        for (i, m) in j.models.enumerated() { parts.append(name(m, i < j.parameters.perModel.count ? j.parameters.perModel[i] : nil)) }
        var s = parts.joined(separator: ", ")
        if !j.parameters.global.isEmpty {
            s += " | " + j.parameters.global.keys.sorted().map { "\($0)=\(j.parameters.global[$0]!)" }.joined(separator: ", ")
        }
        return s
    }
}

/// `1.5 MB`-style sizes (powers of 1000, as file sizes are usually shown).
public func formatBytes(_ b: Int) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var v = Double(b)
    var u = 0
    while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
    return u == 0 ? "\(b) B" : String(format: v >= 100 ? "%.0f" : "%.1f", v) + " " + units[u]
}
