import Checkpoints
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Part `index` of `count`, numbered from 1 (`--part 2/4`).
public struct PartNumber: Sendable, Equatable, CustomStringConvertible {
    public let index: Int
    public let count: Int
    /// The largest N accepted (the assignment costs N × shards steps).
    public static let maxCount = 100_000

    public init(index: Int, count: Int) throws {
        let given = "\(index)/\(count)"
        guard count >= 1 else { throw MergePartsError.badPartNumber(given: given, reason: "the number of parts N must be at least 1") }
        guard count <= Self.maxCount else {
            throw MergePartsError.badPartNumber(given: given, reason: "at most \(Self.maxCount) parts (a part writes whole shards; more parts than shards only write receipts)")
        }
        guard (1...count).contains(index) else {
            throw MergePartsError.badPartNumber(given: given, reason: "parts are numbered from 1: I must be in 1...\(count) (Kubernetes' JOB_COMPLETION_INDEX counts from 0: pass $((JOB_COMPLETION_INDEX + 1))/\(count))")
        }
        self.index = index
        self.count = count
    }

    /// `I/N`, e.g. `3/8`.
    public init(parsing s: String) throws {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw MergePartsError.badPartNumber(given: s, reason: "expected I/N with whole numbers, e.g. 1/4 (part 1 of 4)")
        }
        try self.init(index: i, count: n)
    }

    public var description: String { "\(index)/\(count)" }

    /// The part's receipt in the output folder, written last: `.weightsmith-part-I-of-N.json`.
    public var receiptName: String { ".weightsmith-part-\(index)-of-\(count).json" }

    /// The part a receipt name stands for, or nil when the name is not a receipt's.
    static func fromReceiptName(_ name: String) -> (index: Int, count: Int)? {
        guard name.hasPrefix(".weightsmith-part-"), name.hasSuffix(".json") else { return nil }
        let middle = name.dropFirst(".weightsmith-part-".count).dropLast(".json".count)
        let halves = middle.components(separatedBy: "-of-")
        guard halves.count == 2, let i = Int(halves[0]), let n = Int(halves[1]) else { return nil }
        return (i, n)
    }
}

/// What a finished part wrote: the plan, the part, and each shard's size and SHA-256. Written
/// atomically after every shard, so its presence means the part is complete.
public struct PartReceipt: Sendable, Equatable {
    public struct Shard: Sendable, Equatable {
        public let file: String
        public let bytes: Int
        public let sha256: String
    }
    public static let format = "weightsmith-merge-part"
    public let planID: String
    public let index: Int
    public let count: Int
    public let shards: [Shard]

    var text: String {
        let shards: [JSONValue] = shards.map { .object([("file", .string($0.file)), ("bytes", .integer($0.bytes)), ("sha256", .string($0.sha256))]) }
        return JSONText.string(.object([("format", .string(Self.format)), ("plan_id", .string(planID)), ("part", .integer(index)),
                                        ("parts", .integer(count)), ("shards", .array(shards))])) + "\n"
    }

    init(planID: String, index: Int, count: Int, shards: [Shard]) {
        self.planID = planID
        self.index = index
        self.count = count
        self.shards = shards
    }

    static func read(_ url: URL) throws -> PartReceipt {
        func bad(_ why: String) -> MergePartsError { .badPart(file: url.path, reason: why) }
        guard let data = FileManager.default.contents(atPath: url.path) else { throw bad("cannot read the part receipt") }
        guard let v = try? StrictJSONParser.parse(Array(data)), v["format"] == .string(format),
              case let .string(id)? = v["plan_id"], case let .integer(i)? = v["part"], case let .integer(n)? = v["parts"],
              case let .array(list)? = v["shards"] else {
            throw bad("not a weightsmith part receipt (format, plan_id, part, parts, shards)")
        }
        let shards = try list.map { s -> Shard in
            guard case let .string(f)? = s["file"], case let .integer(b)? = s["bytes"], case let .string(h)? = s["sha256"] else {
                throw bad("a shard entry lacks file, bytes or sha256")
            }
            return Shard(file: f, bytes: b, sha256: h)
        }
        return PartReceipt(planID: id, index: i, count: n, shards: shards)
    }
}

public struct PartOptions: Sendable {
    /// Refuse to start when the plan's estimated peak exceeds this many bytes (as `merge`).
    public var memoryBudget: Int?
    /// The automatic default budget: over it, go on (mapped pages dropped) instead of refusing.
    public var memoryBudgetIsAutomatic = false
    public var progress = true
    /// Threads this part runs on (a run setting: the shards' bytes do not depend on it).
    public var threads = ParallelLoops.machineThreads
    public init(memoryBudget: Int? = nil, progress: Bool = true) {
        self.memoryBudget = memoryBudget
        self.progress = progress
    }
}

public struct PartReport: Sendable {
    public let part: PartNumber
    public let output: URL
    /// The shard files this part is responsible for (possibly none when N exceeds the shards).
    public let shards: [String]
    public let bytes: Int
    public let seconds: Double
    /// The receipt was already there and every shard matched it: nothing was written.
    public let alreadyComplete: Bool
}

/// One merge split across processes on machines sharing the output folder: `run` writes the
/// shards of part I of N, `MergeParts.assemble` checks every part and writes the rest of the
/// folder. The shard layout is the one-process writer's (`CheckpointWriter`), so every shard is
/// byte for byte the one-process merge's; parts are assigned whole shards.
public enum MergeParts {
    /// In a partial output: `{"plan_id": "..."}`, written by the first part; `assemble` removes it.
    public static let partialMarker = ".weightsmith-partial"

    /// The output writer's shard layout for the plan (writes nothing).
    static func layout(_ plan: MergePlan, settings: PlanSettings, directory: URL) throws -> CheckpointWriter {
        try CheckpointWriter(directory: directory, entries: MergeExecutor.outputEntries(plan), maxShardBytes: settings.maxShardBytes,
                             metadata: MergeExecutor.shardMetadata(ExecutionOptions()), allowNonFinite: settings.allowNonFinite,
                             onlyShards: [])
    }

    /// The shards (indices) of each of `parts` parts: largest shard first, each to the part with
    /// the fewest bytes so far (ties: the lower part); each part's shards in ascending order. With
    /// more parts than shards, the last parts get none (they only write their receipt).
    public static func assignment(shardBytes: [Int], parts: Int) -> [[Int]] {
        var load = [Int](repeating: 0, count: parts)
        var out = [[Int]](repeating: [], count: parts)
        for s in shardBytes.indices.sorted(by: { shardBytes[$0] != shardBytes[$1] ? shardBytes[$0] > shardBytes[$1] : $0 < $1 }) {
            let p = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            out[p].append(s)
            load[p] += shardBytes[s]
        }
        return out.map { $0.sorted() }
    }

    /// Runs part `part` of the plan: re-checks the inputs and the plan (`MergePlanFile.replan`),
    /// takes the output folder (new, empty, or a partial output of the same plan; never anything
    /// else), writes the part's shards, each atomically (a temporary name in the folder, then a
    /// rename), hashes them and writes the receipt last. A part whose receipt is present and whose
    /// shards still match it does nothing; a part killed and run again removes its own temporary
    /// files and writes the same bytes.
    public static func run(_ file: MergePlanFile, part: PartNumber, output: URL? = nil, options: PartOptions = PartOptions()) throws -> PartReport {
        let start = Date()
        var plan = try file.replan()
        plan.threads = options.threads
        let out = try openOutput(file, plan: plan, output: output, creating: true)
        let mine = assignment(shardBytes: file.shards.map(\.bytes), parts: part.count)[part.index - 1]
        let receiptURL = out.appendingPathComponent(part.receiptName)
        let names = mine.map { file.shards[$0].file }
        let bytes = mine.reduce(0) { $0 + file.shards[$1].bytes }
        if let r = try? PartReceipt.read(receiptURL), r.planID == file.id, r.index == part.index, r.count == part.count,
           r.shards.map(\.file) == names, (try? verify([r], in: out)) != nil {
            return PartReport(part: part, output: out, shards: names, bytes: bytes, seconds: Date().timeIntervalSince(start), alreadyComplete: true)
        }
        // A previous attempt of this part (killed) left temporary files of its shards: they are ours.
        let fm = FileManager.default
        for e in (try? fm.contentsOfDirectory(atPath: out.path)) ?? [] where (names + [part.receiptName]).contains(where: { e.hasPrefix(".\($0).tmp-") }) {
            try? fm.removeItem(at: out.appendingPathComponent(e))
        }
        if let budget = options.memoryBudget, plan.estimatedPeakBytes > budget { plan.keepMappedBytes = 0 }
        if let budget = options.memoryBudget, plan.estimatedPeakBytes > budget, !options.memoryBudgetIsAutomatic {
            throw MergeError.other("the largest job needs about \(formatBytes(plan.estimatedPeakBytes)) but --memory-budget is \(formatBytes(budget))")
        }
        let writer = try CheckpointWriter(directory: out, entries: MergeExecutor.outputEntries(plan), maxShardBytes: file.settings.maxShardBytes,
                                          metadata: MergeExecutor.shardMetadata(ExecutionOptions()), allowNonFinite: file.settings.allowNonFinite,
                                          onlyShards: Set(mine))
        let mineSet = Set(names)
        let jobs = plan.jobs.filter { writer.shardOf[$0.output].map(mineSet.contains) ?? false }
        let progress = ProgressReporter(label: "merge part \(part)", totalBytes: jobs.reduce(0) { $0 + $1.elementCount * $1.outDType.byteSize },
                                        items: jobs.count, enabled: options.progress)
        do {
            try MergeExecutor.writeJobs(jobs, plan: plan, into: writer, progress: progress)
        } catch let e as CheckpointError {
            throw MergeExecutor.namingInput(e, plan: plan)
        }
        let urls = mine.map { out.appendingPathComponent(file.shards[$0].file) }
        let digests = hashFiles(urls)
        var shards: [PartReceipt.Shard] = []
        for (k, s) in mine.enumerated() {
            let size = (try? fm.attributesOfItem(atPath: urls[k].path)[.size] as? NSNumber)??.intValue ?? -1
            guard size == file.shards[s].bytes else {
                throw MergePartsError.badShard(file: urls[k].path, part: part.description, reason: "written with \(size) bytes, the plan says \(file.shards[s].bytes)")
            }
            shards.append(PartReceipt.Shard(file: file.shards[s].file, bytes: size, sha256: try digests[k].get()))
        }
        try writeFileAtomically(Array(PartReceipt(planID: file.id, index: part.index, count: part.count, shards: shards).text.utf8), to: receiptURL)
        let seconds = Date().timeIntervalSince(start)
        progress.finish("merge part \(part): wrote \(names.count) shard\(names.count == 1 ? "" : "s") (\(formatBytes(bytes))) to \(out.path) in \(String(format: "%.2f", seconds))s")
        return PartReport(part: part, output: out, shards: names, bytes: bytes, seconds: seconds, alreadyComplete: false)
    }

    /// Checks that each shard of the receipts has the recorded size and SHA-256 (re-hashing the
    /// files, side by side); the first problem in receipt and shard order is thrown.
    static func verify(_ receipts: [PartReceipt], in out: URL) throws {
        let all = receipts.flatMap { r in r.shards.map { (part: "\(r.index)/\(r.count)", shard: $0, url: out.appendingPathComponent($0.file)) } }
        for s in all {
            guard let size = (try? FileManager.default.attributesOfItem(atPath: s.url.path)[.size] as? NSNumber)??.intValue else {
                throw MergePartsError.badShard(file: s.url.path, part: s.part, reason: "the shard is missing")
            }
            guard size == s.shard.bytes else {
                throw MergePartsError.badShard(file: s.url.path, part: s.part, reason: "it has \(size) bytes, the receipt says \(s.shard.bytes)")
            }
        }
        for (s, h) in zip(all, hashFiles(all.map(\.url))) {
            let h = try h.get()
            guard h == s.shard.sha256 else {
                throw MergePartsError.badShard(file: s.url.path, part: s.part, reason: "its SHA-256 is \(h), the receipt says \(s.shard.sha256): it was changed after the part wrote it")
            }
        }
    }

    /// SHA-256 of each file, several files side by side (hashing is CPU-bound: about 150 MB/s per core here).
    static func hashFiles(_ urls: [URL]) -> [Result<String, Error>] {
        final class Box: @unchecked Sendable {
            let lock = NSLockLike()
            var results: [Result<String, Error>]
            init(_ n: Int) { results = Array(repeating: .failure(MergeError.other("not hashed")), count: n) }
        }
        let box = Box(urls.count)
        let paths = urls.map(\.path)
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            let r = Result { try SHA256.hexDigest(ofFile: paths[i]) }
            box.lock.locked { box.results[i] = r }
        }
        return box.results
    }

    // MARK: - The shared output folder

    /// Every name the finished output folder holds (the one-process merge's listing).
    static func finalNames(_ file: MergePlanFile, plan: MergePlan) -> Set<String> {
        var names = Set(file.shards.map(\.file))
        if file.shards.count > 1 { names.insert("model.safetensors.index.json") }
        if let d = plan.inputs[plan.configSource].checkpoint.directory, FileManager.default.fileExists(atPath: d.appendingPathComponent("config.json").path) {
            names.insert("config.json")
        }
        names.formUnion(MergeExecutor.tokenizerOutput(plan).map(\.name))
        names.formUnion(["merge_recipe.yml", "README.md", OutputFolder.markerName])
        return names
    }

    /// `NAME` for a temporary file `.NAME.tmp-PID-RANDOM` of the atomic writers, else nil.
    static func temporaryFileTarget(_ entry: String) -> String? {
        guard entry.hasPrefix("."), let r = entry.range(of: ".tmp-", options: .backwards), r.lowerBound > entry.index(after: entry.startIndex) else { return nil }
        return String(entry[entry.index(after: entry.startIndex)..<r.lowerBound])
    }

    /// The files the assembly writes (all but the shards).
    static func assemblyNames(_ file: MergePlanFile, plan: MergePlan) -> Set<String> {
        finalNames(file, plan: plan).subtracting(file.shards.map(\.file))
    }

    /// The plan id recorded in a partial output, if any.
    public static func partialPlanID(_ out: URL) -> String? {
        guard let data = FileManager.default.contents(atPath: out.appendingPathComponent(partialMarker).path),
              case let .string(id)? = (try? StrictJSONParser.parse(Array(data)))?["plan_id"] else { return nil }
        return id
    }

    /// Validates the output folder for a part (`creating`: made when missing, marked as this
    /// plan's partial output) or for the assembly; returns its resolved URL. Refuses an input (or
    /// a folder inside or above one), a folder holding anything this plan does not write, a
    /// partial output of another plan, and a finished output.
    static func openOutput(_ file: MergePlanFile, plan: MergePlan, output: URL?, creating: Bool) throws -> URL {
        let given = output ?? URL(fileURLWithPath: file.outputPath)
        let out = try OutputFolder.checkNotOverlapping(given, inputs: plan.inputs.flatMap { $0.checkpoint.sourceURLs })
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if !fm.fileExists(atPath: out.path, isDirectory: &isDir) {
            guard creating else {
                throw MergePartsError.outputNotUsable(path: given.path, reason: "does not exist; run the parts (merge --plan PLAN --part I/N) first")
            }
            if mkdir(out.path, 0o755) != 0 && errno != EEXIST {  // another part may create it at the same time
                throw MergePartsError.outputNotUsable(path: given.path, reason: "cannot create the folder: \(String(cString: strerror(errno)))")
            }
        } else if !isDir.boolValue {
            throw MergePartsError.outputNotUsable(path: given.path, reason: "exists and is not a folder")
        }
        let entries = try fm.contentsOfDirectory(atPath: out.path)
        let marker = partialPlanID(out)
        if let marker, marker != file.id {
            throw MergePartsError.outputNotUsable(path: given.path, reason: "is the partial output of another plan (\(marker)), not of \(file.path) (\(file.id)); use a new folder")
        }
        if marker == nil {
            if entries.contains(OutputFolder.markerName) {
                throw MergePartsError.outputNotUsable(path: given.path, reason: creating
                    ? "is a finished weightsmith output (already assembled); parts write only into a new folder or a partial output of the same plan"
                    : "is a finished weightsmith output: it is already assembled (or was not made by parts)")
            }
            if let e = entries.filter({ !$0.hasPrefix(".\(partialMarker).tmp-") }).sorted().first {
                throw MergePartsError.outputNotUsable(path: given.path, reason: "is not empty (it holds \(e)) and is not a partial output of this plan; use a new or empty folder")
            }
            guard creating else { throw MergePartsError.outputNotUsable(path: given.path, reason: "is empty: no part has run yet") }
            try writeFileAtomically(Array((JSONText.string(.object([("plan_id", .string(file.id))])) + "\n").utf8),
                                    to: out.appendingPathComponent(partialMarker))
            return out
        }
        if creating && entries.contains(OutputFolder.markerName) {
            // Assembled, the assembly's clean-up interrupted (`assemble` finishes it): no more parts.
            throw MergePartsError.outputNotUsable(path: given.path, reason: "is already assembled (run --assemble again to finish removing its receipts); parts write only into a new folder or a partial output")
        }
        let known = finalNames(file, plan: plan).union([partialMarker, AssemblyLock.name])
        for e in entries.sorted() {
            if known.contains(e) || PartNumber.fromReceiptName(e) != nil { continue }
            if let name = temporaryFileTarget(e) {
                // Another part at work: the temporary file of a shard, a receipt or the marker (`.NAME.tmp-PID-RANDOM`).
                if creating, known.contains(name) || PartNumber.fromReceiptName(name) != nil { continue }
                // An assembly killed while writing one of its own files: the assembly removes it.
                if !creating, assemblyNames(file, plan: plan).contains(name) { continue }
            }
            throw MergePartsError.outputNotUsable(path: given.path, reason: e.contains(".tmp-")
                ? "holds \(e), a temporary file of a part that is still running or was killed; rerun that part (it removes its own temporary files), then assemble"
                : "holds \(e), which this plan does not write; refusing to use the folder")
        }
        return out
    }
}
