import Checkpoints
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension MergeParts {
    /// Finishes a merge whose parts have run: checks the inputs and the plan again, requires one
    /// receipt per part of one split (`.weightsmith-part-I-of-N.json` for every I in 1...N and
    /// nothing else), each of this plan, listing exactly the shards the plan assigns to it, and
    /// every shard with the size and SHA-256 its receipt recorded (re-hashed here); then writes
    /// the index, config.json, tokenizer files, the recipe, the model card and the
    /// `.weightsmith-output` marker as the one-process merge does (same bytes), and removes the
    /// receipts and the partial-output marker, its own files. The folder is then the one-process
    /// merge's output, file for file and byte for byte. An assembly interrupted after writing the
    /// marker only finishes removing its files when run again.
    @discardableResult
    public static func assemble(_ file: MergePlanFile, output: URL? = nil) throws -> MergeReport {
        let start = Date()
        let plan = try file.replan()
        let out = try openOutput(file, plan: plan, output: output, creating: false)
        // One assembly at a time: a second one started meanwhile fails here instead of racing the
        // first through the receipts it removes.
        let lock = try AssemblyLock(out)
        defer { lock.release() }
        let fm = FileManager.default
        let entries = try fm.contentsOfDirectory(atPath: out.path)
        var receipts: [(name: String, index: Int, count: Int)] = []
        for e in entries.sorted() { if let p = PartNumber.fromReceiptName(e) { receipts.append((e, p.index, p.count)) } }
        // Temporary files of an earlier assembly killed while writing its own files (`openOutput`
        // accepts no other temporary file here).
        let own = assemblyNames(file, plan: plan)
        for e in entries where temporaryFileTarget(e).map(own.contains) ?? false {
            try fm.removeItem(at: out.appendingPathComponent(e))
        }

        if entries.contains(OutputFolder.markerName) {
            // Verified and written by an earlier run, interrupted while removing its own files.
            for r in receipts {
                guard (try? PartReceipt.read(out.appendingPathComponent(r.name)))?.planID == file.id else {
                    throw MergePartsError.badPart(file: out.appendingPathComponent(r.name).path, reason: "is not a receipt of this plan (\(file.id)) in an assembled output")
                }
            }
            try removeOwnFiles(receipts.map(\.name), in: out)
            return report(plan, out: out, start: start)
        }

        guard !receipts.isEmpty else {
            throw MergePartsError.outputNotUsable(path: out.path, reason: "holds no part receipt; run the parts (merge --plan PLAN --part I/N for I = 1...N) first")
        }
        // One split: the part count most receipts agree on; any other receipt is an extra part.
        let counts = Dictionary(grouping: receipts, by: \.count)
        let n = counts.max { a, b in a.value.count != b.value.count ? a.value.count < b.value.count : a.key > b.key }!.key
        for r in receipts where r.count != n || !(1...n).contains(r.index) {
            let why = r.count != n
                ? "an extra part: a receipt of a split into \(r.count) parts, but the other receipts are of a split into \(n)"
                : "an extra part: there is no part \(r.index) in a split into \(n)"
            throw MergePartsError.badPart(file: out.appendingPathComponent(r.name).path, reason: why + "; remove the receipts of the split you abandoned (the shards are the same), then assemble")
        }
        let present = Set(receipts.map(\.index))
        let missing = (1...n).filter { !present.contains($0) }
        guard missing.isEmpty else { throw MergePartsError.missingParts(output: out.path, parts: missing, count: n) }

        let assigned = assignment(shardBytes: file.shards.map(\.bytes), parts: n)
        var checked: [PartReceipt] = []
        for i in 1...n {
            let part = try PartNumber(index: i, count: n)
            let url = out.appendingPathComponent(part.receiptName)
            let r = try PartReceipt.read(url)
            guard r.planID == file.id else {
                throw MergePartsError.badPart(file: url.path, reason: "is a receipt of another plan (\(r.planID)), not of \(file.path) (\(file.id)): a stale part; rerun part \(part)")
            }
            guard r.index == i, r.count == n else {
                throw MergePartsError.badPart(file: url.path, reason: "says it is part \(r.index)/\(r.count): the receipt was renamed or edited; rerun part \(part)")
            }
            let expected = assigned[i - 1].map { file.shards[$0] }
            guard r.shards.map(\.file) == expected.map(\.file), r.shards.map(\.bytes) == expected.map(\.bytes) else {
                throw MergePartsError.badPart(file: url.path, reason: "lists shards \(r.shards.map(\.file)), but part \(part) of this plan writes \(expected.map(\.file)) (the receipt was edited); rerun part \(part)")
            }
            checked.append(r)
        }
        try verify(checked, in: out)

        let writer = try layout(plan, settings: file.settings, directory: out)
        try writer.writeIndex()
        try MergeExecutor.writeFinishingFiles(plan, hashes: file.cardHashes(plan), cardTitle: file.outputName, cardAppendix: nil,
                                              extraFiles: [:], to: out)
        try writeFileAtomically(OutputFolder.markerContents(command: "merge"), to: out.appendingPathComponent(OutputFolder.markerName))
        try removeOwnFiles(receipts.map(\.name), in: out)
        return report(plan, out: out, start: start)
    }

    /// Removes the part receipts, then the partial-output marker (last: until it is gone, a run
    /// again knows the folder as this plan's).
    private static func removeOwnFiles(_ receipts: [String], in out: URL) throws {
        for r in receipts { try FileManager.default.removeItem(at: out.appendingPathComponent(r)) }
        let marker = out.appendingPathComponent(partialMarker)
        if FileManager.default.fileExists(atPath: marker.path) { try FileManager.default.removeItem(at: marker) }
    }

    private static func report(_ plan: MergePlan, out: URL, start: Date) -> MergeReport {
        let listing = ((try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        return MergeReport(outputDirectory: out, tensors: plan.jobs.count, outputBytes: plan.outputBytes,
                           seconds: Date().timeIntervalSince(start), files: listing)
    }
}

/// An exclusive lock (`ExclusiveFileLock`) on `OUT/.weightsmith-assemble.lock` for the length of
/// an assembly; the file is removed when the assembly ends. A lock file left by a killed assembly
/// is locked again by the next one.
final class AssemblyLock {
    static let name = ".weightsmith-assemble.lock"
    private let lock: ExclusiveFileLock

    init(_ out: URL) throws {
        do { lock = try ExclusiveFileLock(out.appendingPathComponent(Self.name)) } catch {
            switch error {
            case .cannotCreate(let reason):
                throw MergePartsError.outputNotUsable(path: out.path, reason: "cannot create \(Self.name): \(reason)")
            case .held:
                throw MergePartsError.outputNotUsable(path: out.path, reason: "another merge --assemble is running on this folder (it holds \(Self.name)); wait for it to finish")
            case .unstable:
                throw MergePartsError.outputNotUsable(path: out.path, reason: "could not take \(Self.name)")
            }
        }
    }

    func release() { lock.release() }
}
