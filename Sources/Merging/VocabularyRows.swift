import Checkpoints
import Foundation
import Tensors

/// How one vocabulary matrix job (token embeddings, output head) builds each input's rows in
/// the output vocabulary before the merge method sees them (mergekit's `PermutedVocabulary`,
/// `mergekit/tokenizer/embed.py`). For every input, output token `n` is:
///
/// - the input's own row of the token, when it has it and the token is not `force`d;
/// - else the token's shared row, the same for every input: its `tokens:` source (a model's row
///   of that token or of another, or zeros); without one, the row of the only input having the
///   token, the base's row when the base has it, the mean of the rows of the inputs having it,
///   or zeros when none has it;
///
/// and rows past the vocabulary (`pad_to_multiple_of`) are the mean of the input's first
/// `tokens` rows. The method then merges these matrices like any other tensor (no row is
/// masked: an input lacking a token contributes the shared row there, as in mergekit).
public struct VocabularyRows: Sendable {
    /// One input row: job input `input` (position in `[base] + models`), row `row`.
    struct RowRef: Sendable, Equatable {
        let input: Int
        let row: Int
    }
    /// Tokens of the output vocabulary.
    public let tokens: Int
    /// Output rows (`tokens` + padding).
    public let rows: Int
    /// Per job input: output token → own row, or -1 (take the shared row).
    let own: [[Int32]]
    /// Output token → rows averaged for it (one: a copy; none: zeros), for tokens some input
    /// lacks or that are forced.
    let shared: [Int: [RowRef]]

    /// The rows of a job whose inputs are plan inputs `inputs` (`[base] + models` order) with
    /// `rowCounts` rows each; `base` is the slice's base (plan index). Problems name the token.
    static func make(_ a: VocabularyAlignment, inputs: [Int], rowCounts: [Int], base: Int?, tensor: String,
                     labels: [String]) -> (rows: VocabularyRows?, problems: [String], notes: [String]) {
        var problems: [String] = []
        var notes: [String] = []
        let v = a.tokens.count
        var own = inputs.map { a.permutations[$0] }
        for (k, i) in inputs.enumerated() {
            if let bad = own[k].first(where: { Int($0) >= rowCounts[k] }) {
                problems.append("\"\(tensor)\" of \(labels[i]) has \(rowCounts[k]) rows, but its tokenizer has a token with id \(bad)")
            }
        }
        guard problems.isEmpty else { return (nil, problems, notes) }
        var shared: [Int: [RowRef]] = [:]
        var absent: [String] = []
        for n in 0..<v {
            let setting = a.settings[n]
            let present = inputs.indices.filter { own[$0][n] >= 0 }
            let force = setting?.force ?? false
            guard force || present.count < inputs.count else { continue }
            let token = JSONText.quote(a.tokens[n])
            if let setting {
                switch setting.source {
                case nil:
                    problems.append("tokenizer.tokens.\(setting.token): not every input of \"\(tensor)\" has this token\(force ? " (and force is set)" : ""), so it needs a source:")
                case .zero?:
                    shared[n] = []
                case let .model(i)?:
                    guard let k = inputs.firstIndex(of: i) else {
                        problems.append("tokenizer.tokens.\(setting.token): source \(labels[i]) is not an input of \"\(tensor)\""); continue
                    }
                    guard own[k][n] >= 0 else {
                        problems.append("tokenizer.tokens.\(setting.token): \(labels[i]) does not have the token \(token)"); continue
                    }
                    shared[n] = [RowRef(input: k, row: Int(own[k][n]))]
                case let .row(i, row)?:
                    guard let k = inputs.firstIndex(of: i) else {
                        problems.append("tokenizer.tokens.\(setting.token): source \(labels[i]) is not an input of \"\(tensor)\""); continue
                    }
                    guard row < rowCounts[k] else {
                        problems.append("tokenizer.tokens.\(setting.token): row \(row) is out of range for \"\(tensor)\" of \(labels[i]) (\(rowCounts[k]) rows)"); continue
                    }
                    shared[n] = [RowRef(input: k, row: row)]
                }
            } else if present.count == 1 {
                shared[n] = [RowRef(input: present[0], row: Int(own[present[0]][n]))]
            } else if present.isEmpty {
                shared[n] = []
                absent.append(token)
            } else if let b = base, let k = inputs.firstIndex(of: b), own[k][n] >= 0 {
                shared[n] = [RowRef(input: k, row: Int(own[k][n]))]
            } else {
                shared[n] = present.map { RowRef(input: $0, row: Int(own[$0][n])) }
            }
        }
        for (n, s) in a.settings where s.force { for k in own.indices { own[k][n] = -1 } }
        if !absent.isEmpty {
            notes.append("\"\(tensor)\": \(absent.count) token\(absent.count == 1 ? "" : "s") in no input (\(absent.prefix(5).joined(separator: ", "))) get zero rows")
        }
        return (VocabularyRows(tokens: v, rows: a.rows, own: own, shared: shared), problems, notes)
    }

    /// Every input's `rows × cols` Float32 matrix in the output vocabulary (owned by the result).
    static func materialise(_ job: MergeJob, _ r: VocabularyRows, plan: MergePlan) throws -> PreparedInputs {
        let all = [job.base].compactMap { $0 } + job.models
        let cols = job.shape.dims.count > 1 ? job.shape.dims.dropFirst().reduce(1, *) : 1
        let prepared = PreparedInputs()
        var originals: [UnsafeMutableBufferPointer<Float>] = []
        defer { for b in originals { b.deallocate() } }
        for inp in all {
            let c = plan.inputs[inp.model].checkpoint
            guard let info = c.info(inp.tensor) else { throw MergeError.other("tensor \(inp.tensor) vanished from \(plan.inputs[inp.model].label)") }
            let buf = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, info.elementCount))
            originals.append(buf)
            try MergeExecutor.decode(c, inp.tensor, info, elements: 0..<info.elementCount,
                                     into: UnsafeMutableBufferPointer(rebasing: buf[0..<info.elementCount]), label: plan.inputs[inp.model].label,
                                     loops: plan.loops)
        }
        // Shared rows: one sum in input order, then one division (as mergekit averages).
        var sharedRows: [Int: [Float]] = [:]
        for (n, refs) in r.shared {
            var row = [Float](repeating: 0, count: cols)
            for ref in refs {
                let src = originals[ref.input]
                for j in 0..<cols { row[j] += src[ref.row * cols + j] }
            }
            if refs.count > 1 { for j in 0..<cols { row[j] /= Float(refs.count) } }
            sharedRows[n] = row
        }
        for k in all.indices {
            let out = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, r.rows * cols))
            prepared.buffers.append(out)
            out.initialize(repeating: 0)
            let src = originals[k]
            for n in 0..<r.tokens {
                let o = Int(r.own[k][n])
                if o >= 0 {
                    for j in 0..<cols { out[n * cols + j] = src[o * cols + j] }
                } else if let row = sharedRows[n] {
                    for j in 0..<cols { out[n * cols + j] = row[j] }
                }
            }
            if r.rows > r.tokens {
                // Padding rows: the mean of the vocabulary's rows (Hewitt, "Initializing New Word
                // Embeddings for Pretrained Language Models", 2021), accumulated in Float64.
                var mean = [Double](repeating: 0, count: cols)
                for n in 0..<r.tokens { for j in 0..<cols { mean[j] += Double(out[n * cols + j]) } }
                for n in r.tokens..<r.rows { for j in 0..<cols { out[n * cols + j] = Float(mean[j] / Double(r.tokens)) } }
            }
        }
        return prepared
    }

    /// A short digest of the mapping (for the plan file).
    var summary: JSONValue {
        var h: UInt64 = 1469598103934665603
        func mix(_ x: Int) { h = (h ^ UInt64(bitPattern: Int64(x))) &* 1099511628211 }
        for o in own { for x in o { mix(Int(x)) } }
        for n in shared.keys.sorted() { mix(n); for r in shared[n]! { mix(r.input); mix(r.row) } }
        return .object([("tokens", .integer(tokens)), ("rows", .integer(rows)), ("mapping", .string(String(h, radix: 16)))])
    }
}

/// Float32 matrices a job reads instead of its stored tensors (freed with the object).
final class PreparedInputs: @unchecked Sendable {
    var buffers: [UnsafeMutableBufferPointer<Float>] = []
    deinit { for b in buffers { b.deallocate() } }
}
