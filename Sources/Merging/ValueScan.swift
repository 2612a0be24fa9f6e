import Checkpoints
import Foundation
import Tensors

/// `--stats`: counts NaN and ±Inf in every input tensor a plan reads, reported as pre-flight problems.
public enum ValueScan {
    public struct Finding: Sendable {
        public let model: String
        public let tensor: String
        public let nonFinite: Int
        public let elements: Int
    }

    public static func scan(_ plan: MergePlan) throws -> [Finding] {
        var seen = Set<String>()
        var findings: [Finding] = []
        for job in plan.jobs {
            for inp in [job.base].compactMap({ $0 }) + job.models {
                guard seen.insert("\(inp.model)\u{0}\(inp.tensor)").inserted else { continue }
                let c = plan.inputs[inp.model].checkpoint
                guard let info = c.info(inp.tensor) else { continue }
                let n = info.elementCount
                let bad: Int = try c.withRawBytes(inp.tensor) { raw in
                    var count = 0
                    let chunk = 1 << 16
                    var tmp = [Float](repeating: 0, count: min(chunk, max(n, 1)))
                    var start = 0
                    while start < n {
                        let len = min(chunk, n - start)
                        let src = UnsafeRawBufferPointer(rebasing: raw[(start * info.dtype.byteSize)..<((start + len) * info.dtype.byteSize)])
                        try tmp.withUnsafeMutableBufferPointer { try DTypeConversion.decode(src, dtype: info.dtype, into: UnsafeMutableBufferPointer(rebasing: $0[0..<len]), context: inp.tensor) }
                        for i in 0..<len where !tmp[i].isFinite { count += 1 }
                        start += len
                    }
                    return count
                }
                c.releasePages(inp.tensor)
                if bad > 0 { findings.append(Finding(model: plan.inputs[inp.model].label, tensor: inp.tensor, nonFinite: bad, elements: n)) }
            }
        }
        return findings
    }

    public static func problems(_ findings: [Finding]) -> [String] {
        findings.map { "\($0.model): tensor \"\($0.tensor)\" has \($0.nonFinite) NaN/Inf values of \($0.elements)" }
    }
}
