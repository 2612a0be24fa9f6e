import Checkpoints
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Tensors

public struct ExecutionOptions: Sendable {
    /// Refuse to start when the plan's estimated peak exceeds this many bytes (over budget, mapped
    /// input pages are first dropped block by block).
    public var memoryBudget: Int?
    /// The budget is the automatic default (`MemoryBudget`): over it, say so and go on instead of refusing.
    public var memoryBudgetIsAutomatic = false
    /// Shard size limit in bytes (mergekit's default: 5e9).
    public var maxShardBytes: Int? = 5_000_000_000
    /// SHA-256 of every input file for the model card (computed on a background thread).
    public var hashInputs = true
    public var progress = true
    /// Replace an existing output folder.
    public var overwrite = false
    /// Extra safetensors metadata (e.g. `weightsmith.kind: task_vector`).
    public var metadata: [String: String] = [:]
    /// The command named in the output's `.weightsmith-output` marker.
    public var command = "merge"
    /// An output already checked and locked by the caller (e.g. before a long search), used
    /// instead of preparing `outDir` again.
    public var preparedOutput: OutputFolder?
    /// Write NaN/±Inf output values instead of failing (`--allow-nonfinite`).
    public var allowNonFinite = false
    public init(memoryBudget: Int? = nil, maxShardBytes: Int? = 5_000_000_000, hashInputs: Bool = true, progress: Bool = true,
                overwrite: Bool = false) {
        self.memoryBudget = memoryBudget
        self.maxShardBytes = maxShardBytes
        self.hashInputs = hashInputs
        self.progress = progress
        self.overwrite = overwrite
    }
}

public struct MergeReport: Sendable {
    public let outputDirectory: URL
    public let tensors: Int
    public let outputBytes: Int
    public let seconds: Double
    public let files: [String]
}

/// Runs a checked plan tensor by tensor: reads inputs from the mapped checkpoints (Float32 in
/// place, other dtypes decoded), merges with the method's parallel kernels, streams the result
/// through `OutputFolder` (a hidden staging sibling, renamed to `OUT_DIR` when everything, including config.json,
/// tokenizer files, the recipe and the model card, is written and synced).
public enum MergeExecutor {
    public static let tokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                                        "added_tokens.json", "merges.txt", "vocab.json", "chat_template.jinja", "chat_template.json",
                                        "generation_config.json"]

    /// `--dry-run`: OUT checked against the plan's inputs as `run` checks it (never an input, inside
    /// or above one; an existing non-empty folder only with `overwrite`, and only a previous
    /// weightsmith output); returns the line saying what would be written (or that OUT exists and
    /// the run needs --force). Nothing is written.
    public static func checkOutput(_ plan: MergePlan, to outDir: URL, options: ExecutionOptions) throws -> String {
        do {
            _ = try OutputFolder.prepare(outDir, inputs: plan.inputs.flatMap { $0.checkpoint.sourceURLs }, force: options.overwrite,
                                         command: options.command)
        } catch OutputError.exists {
            // Not a problem of the plan: the run itself says so and needs --force.
            return "\(outDir.path) exists and is not empty: the merge would need --force (it replaces only a previous weightsmith output)"
        }
        return "would write \(outDir.path): \(plan.jobs.count) tensors, \(formatBytes(plan.outputBytes)), config.json and tokenizer files"
    }

    public static func run(_ plan: MergePlan, to outDir: URL, options: ExecutionOptions = ExecutionOptions(),
                           cardTitle: String? = nil, cardAppendix: String? = nil,
                           extraFiles: [String: [UInt8]] = [:]) throws -> MergeReport {
        var checked = try plan.checked()
        if let budget = options.memoryBudget, checked.estimatedPeakBytes > budget {
            checked.keepMappedBytes = 0  // drop mapped pages block by block rather than refuse
        }
        let plan = checked
        let fm = FileManager.default
        if let budget = options.memoryBudget, plan.estimatedPeakBytes > budget {
            let largest = plan.jobs.max { $0.elementCount < $1.elementCount }?.output ?? "?"
            guard options.memoryBudgetIsAutomatic else {
                throw MergeError.other("the largest job needs about \(formatBytes(plan.estimatedPeakBytes)) but --memory-budget is \(formatBytes(budget)) (largest tensor: \(largest))")
            }
            if options.progress {
                FileHandle.standardError.write(Data(("note: the largest job (\(largest)) needs about \(formatBytes(plan.estimatedPeakBytes)), more than the automatic memory budget of \(formatBytes(budget)); "
                    + "going on with mapped pages dropped block by block (--memory-budget SIZE refuses instead)\n").utf8))
            }
        }
        let inputURLs = plan.inputs.flatMap { inp -> [URL] in
            inp.checkpoint.sourceURLs
        }
        let output: OutputFolder
        do {
            output = try options.preparedOutput
                ?? OutputFolder.prepare(outDir, inputs: inputURLs, force: options.overwrite, command: options.command)
        } catch let e as OutputError {
            throw MergeError.other(e.description)
        }
        let start = Date()
        let progress: ProgressReporter
        do {
            progress = try output.write { partial -> ProgressReporter in
                // Input fingerprints in the background while the merge runs.
                let hashes = HashBox()
                let group = DispatchGroup()
                if options.hashInputs {
                    DispatchQueue.global(qos: .utility).async(group: group) {
                        let all = plan.inputs.flatMap { files(of: $0.checkpoint) }
                        for (f, h) in InputFingerprints.digests(all) { hashes.set(f, h) }
                    }
                }

                let writer = try CheckpointWriter(directory: partial, entries: outputEntries(plan), maxShardBytes: options.maxShardBytes,
                                                  metadata: shardMetadata(options), allowNonFinite: options.allowNonFinite)
                let progress = ProgressReporter(label: "merge", totalBytes: plan.outputBytes, items: plan.jobs.count, enabled: options.progress)
                try writeJobs(plan.jobs, plan: plan, into: writer, progress: progress)
                group.wait()
                try writeFinishingFiles(plan, hashes: hashes.all, cardTitle: cardTitle ?? outDir.lastPathComponent,
                                        cardAppendix: cardAppendix, extraFiles: extraFiles, to: partial)
                return progress
            }
        } catch let e as CheckpointError {
            throw namingInput(e, plan: plan)
        }
        let seconds = Date().timeIntervalSince(start)
        progress.finish("merge: wrote \(plan.jobs.count) tensors (\(formatBytes(plan.outputBytes))) to \(outDir.path) in \(String(format: "%.2f", seconds))s")
        let listing = ((try? fm.contentsOfDirectory(atPath: outDir.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        return MergeReport(outputDirectory: outDir, tensors: plan.jobs.count, outputBytes: plan.outputBytes, seconds: seconds, files: listing)
    }

    /// The output tensors in write order (the writer's declaration, hence the shard layout).
    static func outputEntries(_ plan: MergePlan) -> [TensorEntry] {
        plan.jobs.map { TensorEntry(name: $0.output, dtype: $0.outDType, shape: $0.shape) }
    }

    /// The safetensors metadata of every output shard.
    static func shardMetadata(_ options: ExecutionOptions) -> [String: String] {
        options.metadata.merging(["format": "pt"]) { a, _ in a }
    }

    /// Runs `jobs` (in plan order) into `writer` and finishes it: outputs stream to the writer
    /// thread piece by piece while the next pieces compute. The one loop of `run` and of a part
    /// of a merge split across processes (`MergeParts`).
    static func writeJobs(_ jobs: [MergeJob], plan: MergePlan, into writer: CheckpointWriter, progress: ProgressReporter) throws {
        let pipe = OutputPipe(writer: writer)
        // On an error (e.g. a refused non-finite tensor) the queued pieces must finish while
        // this thread still holds the pipe: otherwise the last release, and `deinit`'s
        // `queue.sync`, would run on the pipe's own queue and trap.
        defer { pipe.waitForPending() }
        var done = 0
        for (k, job) in jobs.enumerated() {
            try runJob(job, plan: plan, into: pipe)
            for inp in [job.base].compactMap({ $0 }) + job.models { plan.inputs[inp.model].checkpoint.releasePages(inp.tensor) }
            done += job.elementCount * job.outDType.byteSize
            progress.update(doneBytes: done, doneItems: k + 1)
        }
        try pipe.drain()
        try writer.finish()
    }

    /// A writer's refusal of a non-finite output tensor, naming the input it came from (by
    /// scanning only that job's inputs); other errors unchanged.
    static func namingInput(_ e: CheckpointError, plan: MergePlan) -> Error {
        guard case let .nonFinite(_, tensor, _, _, nil) = e, let job = plan.jobs.first(where: { $0.output == tensor }) else { return e }
        let findings = (try? ValueScan.scan(job, plan: plan)) ?? []
        return e.namingInput(findings.isEmpty ? "the merge (every input of this tensor is finite)"
            : findings.map { "\($0.model) (tensor \"\($0.tensor)\", \($0.nonFinite) NaN/Inf)" }.joined(separator: ", "))
    }
}

final class ErrorBox: @unchecked Sendable {
    private let lock = NSLockLike()
    private var error: Error?
    func set(_ e: Error) { lock.locked { if error == nil { error = e } } }
    var value: Error? { lock.locked { error } }
}

final class HashBox: @unchecked Sendable {
    private let lock = NSLockLike()
    private var values: [String: String] = [:]
    func set(_ k: String, _ v: String) { lock.locked { values[k] = v } }
    var all: [String: String] { lock.locked { values } }
}

/// The output side of the executor: tensors begun, filled piece by piece and ended in order,
/// encoded and written on a serial background queue. At most two pieces are in flight, so
/// computing the next piece overlaps writing the previous one; piece buffers are reused.
final class OutputPipe: JobOutput, @unchecked Sendable {
    private let writer: CheckpointWriter
    private let queue = DispatchQueue(label: "weightsmith.merge.writer")
    private let slots = DispatchSemaphore(value: 2)
    private let errors = ErrorBox()
    private let lock = NSLockLike()
    private var pool: [UnsafeMutableBufferPointer<Float>] = []
    /// Buffers up to this many elements are kept for reuse; larger ones are freed after writing.
    static let pooledElements = 1 << 21

    init(writer: CheckpointWriter) { self.writer = writer }

    deinit {
        queue.sync {}
        for b in pool { b.deallocate() }
    }

    func begin(_ name: String) throws {
        if let e = errors.value { throw e }
        let w = UncheckedSendable(writer)
        queue.async { [errors] in
            guard errors.value == nil else { return }
            do { try w.value.beginPieces(name) } catch { errors.set(error) }
        }
    }

    func end() throws {
        let w = UncheckedSendable(writer)
        queue.async { [errors] in
            guard errors.value == nil else { return }
            do { try w.value.endPieces() } catch { errors.set(error) }
        }
        if let e = errors.value { throw e }
    }

    func fill(_ count: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        if let e = errors.value { throw e }
        slots.wait()
        let buffer = take(count)
        do {
            try body(UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
        } catch {
            give(buffer)
            slots.signal()
            throw error
        }
        let piece = UncheckedSendable((writer, buffer))
        queue.async { [errors, slots] in
            defer {
                self.give(piece.value.1)
                slots.signal()
            }
            guard errors.value == nil else { return }
            do { try piece.value.0.appendPiece(UnsafeBufferPointer(rebasing: piece.value.1[0..<count])) } catch { errors.set(error) }
        }
    }

    /// Waits for every pending write (no error check).
    func waitForPending() { queue.sync {} }

    /// Waits for every pending write; throws the first write error.
    func drain() throws {
        queue.sync {}
        if let e = errors.value { throw e }
    }

    private func take(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        lock.locked {
            if let i = pool.firstIndex(where: { $0.count >= count }) { return pool.remove(at: i) }
            return UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, count))
        }
    }

    private func give(_ buffer: UnsafeMutableBufferPointer<Float>) {
        lock.locked {
            if buffer.count <= OutputPipe.pooledElements && pool.count < 4 { pool.append(buffer) } else { buffer.deallocate() }
        }
    }
}

/// Where `MergeExecutor.runJob` puts a job's output: begun, filled piece by piece, ended.
protocol JobOutput: MergeOutput {
    func begin(_ name: String) throws
    func end() throws
}

extension MergeExecutor {
    /// Runs every job of a checked plan into memory instead of a file: for each output tensor,
    /// `destination(name, count)` gives the buffer to fill (nil: the tensor is computed and
    /// dropped). The values are those `run` would write, rounded to each job's output dtype and
    /// decoded back to Float32, so a candidate scored in memory is the merge written to disk.
    /// Used to score recipes on held-out data without a disk round-trip.
    public static func runInMemory(_ plan: MergePlan,
                                   destination: (String, Int) -> UnsafeMutableBufferPointer<Float>?) throws {
        let plan = try plan.checked()
        let out = MemoryOutput()
        for job in plan.jobs {
            let dest = destination(job.output, job.elementCount)
            if let dest, dest.count != job.elementCount {
                throw MergeError.other("in-memory merge: \(job.output) has \(job.elementCount) elements, the destination \(dest.count)")
            }
            let scratch = dest == nil ? UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, job.elementCount)) : nil
            defer { scratch?.deallocate() }
            out.target = dest ?? UnsafeMutableBufferPointer(rebasing: scratch![0..<job.elementCount])
            try runJob(job, plan: plan, into: out)
            for inp in [job.base].compactMap({ $0 }) + job.models { plan.inputs[inp.model].checkpoint.releasePages(inp.tensor) }
            if let dest, job.outDType != .f32 {
                let bytes = try DTypeConversion.encode(Array(dest), as: job.outDType, context: job.output)
                let back = try bytes.withUnsafeBytes { try DTypeConversion.decode($0, dtype: job.outDType, count: job.elementCount, context: job.output) }
                for i in 0..<job.elementCount { dest[i] = back[i] }
            }
        }
    }
}

/// Writes a job's pieces into one buffer, in order.
final class MemoryOutput: JobOutput, @unchecked Sendable {
    var target = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var offset = 0
    private var name = ""
    func begin(_ name: String) throws { self.name = name; offset = 0 }
    func end() throws {
        guard offset == target.count else { throw MergeError.other("in-memory merge: \(name) got \(offset) of \(target.count) elements") }
    }
    func fill(_ count: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        guard offset + count <= target.count else { throw MergeError.other("in-memory merge: \(name) overflows its \(target.count) elements") }
        try body(UnsafeMutableBufferPointer(rebasing: target[offset..<(offset + count)]))
        offset += count
    }
}
