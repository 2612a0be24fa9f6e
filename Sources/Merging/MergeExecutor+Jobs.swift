import Checkpoints
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Tensors

/// Running one job: chunked element-wise, streamed in blocks, or whole; reading its inputs.
extension MergeExecutor {
    /// Elements per chunk of an element-wise job (4 MB of Float32 per input).
    static let chunkElements = 1 << 20

    /// How a job runs.
    enum JobMode { case chunked, streamed, whole }

    static func mode(of job: MergeJob, plan: MergePlan) -> JobMode {
        if plan.method.isElementwise(job.parameters) && job.elementCount > chunkElements { return .chunked }
        return plan.method.streamsBlocks ? .streamed : .whole
    }

    /// Merges one job into `output` (begun and ended here). Element-wise methods run chunk by
    /// chunk and drop each chunk's mapped input pages at once; streaming methods read blocks in
    /// several passes (`MergeMethod.mergeBlocks`); other methods see whole tensors.
    static func runJob(_ job: MergeJob, plan: MergePlan, into output: some JobOutput) throws {
        try output.begin(job.output)
        let n = job.elementCount
        let prepared = try job.vocabularyRows.map { try VocabularyRows.materialise(job, $0, plan: plan) }
        switch mode(of: job, plan: plan) {
        case .chunked:
            var start = 0
            while start < n {
                let range = start..<min(n, start + chunkElements)
                try output.fill(range.count) { o in
                    try withInputs(job, plan: plan, elements: range, releaseAfter: true, prepared: prepared) { base, models in
                        try plan.method.merge(MergeInputs(tensorName: job.output, shape: Shape([range.count]), base: base, models: models,
                                                                  loops: plan.loops),
                                              job.parameters, seed: plan.seed, into: o)
                    }
                }
                start = range.upperBound
            }
        case .streamed, .whole:
            let source = JobBlockSource(job: job, plan: plan, releaseBlocks: inputBytes(job, plan: plan) > plan.keepMappedBytes,
                                        prepared: prepared)
            try plan.method.mergeBlocks(source, job.parameters, seed: plan.seed, into: output)
        }
        try output.end()
    }

    /// Stored bytes of a job's inputs.
    static func inputBytes(_ job: MergeJob, plan: MergePlan) -> Int {
        ([job.base].compactMap { $0 } + job.models).reduce(0) { $0 + (plan.inputs[$1.model].checkpoint.info($1.tensor)?.byteCount ?? 0) }
    }

    /// Calls `body` with elements `range` of the job's base and model inputs: mapped Float32
    /// read in place, other dtypes decoded, vocabulary padding and task-vector inputs resolved.
    /// With `releaseAfter`, the mapped pages of the range are dropped afterwards.
    /// With `prepared` (a vocabulary matrix laid out in the output vocabulary), its matrices are
    /// read instead of the stored tensors.
    static func withInputs(_ job: MergeJob, plan: MergePlan, elements range: Range<Int>, releaseAfter: Bool, parallel: Bool = true,
                           prepared: PreparedInputs? = nil,
                           _ body: (UnsafeBufferPointer<Float>?, [UnsafeBufferPointer<Float>]) throws -> Void) throws {
        let count = range.count
        if let prepared {
            let buffers = prepared.buffers.map { UnsafeBufferPointer(rebasing: $0[range]) }
            try body(job.base != nil ? buffers[0] : nil, Array(buffers.dropFirst(job.base != nil ? 1 : 0)))
            return
        }
        let all = [job.base].compactMap { $0 } + job.models
        var owned: [UnsafeMutableBufferPointer<Float>] = []
        var mapped: [(bytes: UnsafeRawBufferPointer, tensor: UnsafeRawBufferPointer)] = []
        defer { for b in owned { b.deallocate() } }
        // Base first: task-vector inputs need it.
        var buffers: [UnsafeBufferPointer<Float>] = []
        for inp in all {
            let c = plan.inputs[inp.model].checkpoint
            guard let info = c.info(inp.tensor) else { throw MergeError.other("tensor \(inp.tensor) vanished from \(plan.inputs[inp.model].label)") }
            let own = min(job.elementCount, info.elementCount)
            let inPlace: (UnsafeBufferPointer<Float>, UnsafeRawBufferPointer)? = try c.withRawBytes(inp.tensor) { raw in
                guard info.dtype == .f32, inp.kind == .weights, !c.isVirtual, range.upperBound <= own, let p = raw.baseAddress,
                      Int(bitPattern: p) % MemoryLayout<Float>.alignment == 0 else { return nil }
                // The mapping lives as long as the checkpoint (for the whole merge).
                return (UnsafeBufferPointer(start: p.assumingMemoryBound(to: Float.self) + range.lowerBound, count: count), raw)
            }
            if let (floats, tensor) = inPlace {
                buffers.append(floats)
                mapped.append((UnsafeRawBufferPointer(floats), tensor))
                continue
            }
            let buf = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
            owned.append(buf)
            let ownPart = range.lowerBound..<max(range.lowerBound, min(range.upperBound, own))
            if !ownPart.isEmpty {
                try decode(c, inp.tensor, info, elements: ownPart, into: UnsafeMutableBufferPointer(rebasing: buf[0..<ownPart.count]),
                           label: plan.inputs[inp.model].label, loops: parallel ? plan.loops : .serial, releasingPages: releaseAfter)
            }
            if ownPart.count < count {
                guard let pad = inp.padFrom, let padInfo = plan.inputs[pad].checkpoint.info(inp.tensor) else {
                    throw MergeError.other("tensor \(inp.tensor) of \(plan.inputs[inp.model].label) has \(own) of \(job.elementCount) elements and no padding source")
                }
                try decode(plan.inputs[pad].checkpoint, inp.tensor, padInfo, elements: (range.lowerBound + ownPart.count)..<range.upperBound,
                           into: UnsafeMutableBufferPointer(rebasing: buf[ownPart.count..<count]), label: plan.inputs[pad].label,
                           loops: parallel ? plan.loops : .serial, releasingPages: releaseAfter)
            }
            if inp.kind == .delta {
                guard let b = buffers.first, job.base != nil else { throw MergeError.baseRequired(method: "task-vector composition") }
                for i in 0..<count { buf[i] += b[i] }
            }
            buffers.append(UnsafeBufferPointer(buf))
        }
        try body(job.base != nil ? buffers[0] : nil, Array(buffers.dropFirst(job.base != nil ? 1 : 0)))
        if releaseAfter { for m in mapped { releaseMappedPages(m.bytes, in: m.tensor) } }
    }

    /// Drops the mapped pages of `bytes`, a range of `tensor`'s stored bytes, after use (with the
    /// fault-around margin, within the tensor: `MappedFile.releasePages(_:within:)`).
    static func releaseMappedPages(_ bytes: UnsafeRawBufferPointer, in tensor: UnsafeRawBufferPointer) {
        MappedFile.releasePages(bytes, within: tensor)
    }

    /// Decodes elements `range` of a stored tensor into `dest`, in parallel chunks over `loops`.
    /// With `releasingPages`, the decoded range's mapped pages are dropped afterwards (a stored
    /// file only: a virtual checkpoint's bytes are its own memory).
    static func decode(_ c: Checkpoint, _ name: String, _ info: TensorInfo, elements range: Range<Int>,
                       into dest: UnsafeMutableBufferPointer<Float>, label: String, loops: ParallelLoops,
                       releasingPages: Bool = false) throws {
        let size = info.dtype.byteSize
        var failure: Error?
        let lock = NSLockLike()
        try c.withRawBytes(name) { raw in
            let each: (Range<Int>) -> Void = { r in
                let src = UnsafeRawBufferPointer(rebasing: raw[((range.lowerBound + r.lowerBound) * size)..<((range.lowerBound + r.upperBound) * size)])
                do {
                    try DTypeConversion.decode(src, dtype: info.dtype, into: UnsafeMutableBufferPointer(rebasing: dest[r]), context: name)
                } catch { lock.locked { failure = failure ?? error } }
            }
            loops.forEachChunk(range.count, each)
            if releasingPages && !c.isVirtual {
                releaseMappedPages(UnsafeRawBufferPointer(rebasing: raw[(range.lowerBound * size)..<(range.upperBound * size)]), in: raw)
            }
        }
        if let failure { throw MergeError.other("\(label): tensor \(name): \(failure)") }
    }
}

/// A job's inputs, block by block, for `MergeMethod.mergeBlocks`.
struct JobBlockSource: MergeBlockSource, @unchecked Sendable {
    let job: MergeJob
    let plan: MergePlan
    /// Drop each block's mapped pages after use (large jobs).
    let releaseBlocks: Bool
    /// The inputs laid out in the output vocabulary, when the job has `vocabularyRows`.
    var prepared: PreparedInputs? = nil
    var tensorName: String { job.output }
    var shape: Shape { job.shape }
    var hasBase: Bool { job.base != nil }
    var modelCount: Int { job.models.count }
    var loops: ParallelLoops { plan.loops }

    func withBlock(_ range: Range<Int>, _ body: (UnsafeBufferPointer<Float>?, [UnsafeBufferPointer<Float>]) throws -> Void) throws {
        let whole = range.count == job.elementCount
        try MergeExecutor.withInputs(job, plan: plan, elements: range, releaseAfter: releaseBlocks && !whole, parallel: whole,
                                     prepared: prepared, body)
    }
}
