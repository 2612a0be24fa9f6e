import Checkpoints
import Foundation
import Tensors

/// NaN and ±Inf in the inputs a plan reads, counted on the stored bytes with the same kernel the
/// writers use (`NonFinite`). Two clients: `merge --stats` lists them as pre-flight problems,
/// and `MergeExecutor`, when the writer refuses a non-finite output tensor, scans only that
/// job's inputs to say which input it came from (the normal path never makes this extra pass:
/// the writer counts while it encodes).
public enum ValueScan {
    public struct Finding: Sendable, Equatable {
        public let model: String
        public let tensor: String
        public let nonFinite: Int
        public let elements: Int
    }

    /// Every input tensor of every job, each counted once.
    public static func scan(_ plan: MergePlan) throws -> [Finding] {
        var seen = Set<String>()
        return try plan.jobs.flatMap { try scan($0, plan: plan, seen: &seen) }
    }

    /// The inputs of one job.
    public static func scan(_ job: MergeJob, plan: MergePlan) throws -> [Finding] {
        var seen = Set<String>()
        return try scan(job, plan: plan, seen: &seen)
    }

    static func scan(_ job: MergeJob, plan: MergePlan, seen: inout Set<String>) throws -> [Finding] {
        var findings: [Finding] = []
        for inp in [job.base].compactMap({ $0 }) + job.models {
            guard seen.insert("\(inp.model)\u{0}\(inp.tensor)").inserted else { continue }
            let c = plan.inputs[inp.model].checkpoint
            guard let info = c.info(inp.tensor) else { continue }
            let bad = try c.withRawBytes(inp.tensor) { NonFinite.count(raw: $0, dtype: info.dtype) }
            c.releasePages(inp.tensor)
            if bad > 0 { findings.append(Finding(model: plan.inputs[inp.model].label, tensor: inp.tensor, nonFinite: bad, elements: info.elementCount)) }
        }
        return findings
    }

    public static func problems(_ findings: [Finding]) -> [String] {
        findings.map { "\($0.model): tensor \"\($0.tensor)\" has \($0.nonFinite) NaN/Inf values of \($0.elements)" }
    }
}
