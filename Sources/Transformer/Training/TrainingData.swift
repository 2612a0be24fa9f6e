import Foundation
import Tokenizers

/// One training example: `context` tokens are read, `target` tokens (which follow them) are
/// predicted and scored.
public struct TrainingExample: Sendable, Equatable {
    public var context: [Int]
    public var target: [Int]
    public init(context: [Int], target: [Int]) { self.context = context; self.target = target }
    public var length: Int { context.count + target.count }
}

/// Training data from files.
/// - `.jsonl`: `{"prompt", "completion"}` lines; the prompt is encoded with special tokens (BOS),
///   the completion without, as `weightsmith eval` does; loss on completion tokens only.
/// - anything else: plain text, encoded once and cut into consecutive windows of `maxLength`
///   tokens; every token after the first of a window is scored.
/// Examples longer than `maxLength` lose the end of their completion (a prompt that alone fills
/// the window keeps its last `maxLength - 1` tokens).
public enum TrainingData {
    public static func load(_ url: URL, tokenizer: BPETokenizer, maxLength: Int) throws -> [TrainingExample] {
        guard maxLength >= 2 else { throw ModelError.invalidInput("the maximum length must be at least 2 tokens") }
        if url.pathExtension == "jsonl" {
            return try PromptCompletion.readJSONL(url).enumerated().map { i, pc in
                var p = tokenizer.encode(pc.prompt), c = tokenizer.encode(pc.completion, addSpecialTokens: false)
                guard !p.isEmpty, !c.isEmpty else {
                    throw ModelError.invalidConfig(path: url.path, key: "line \(i + 1)", reason: "prompt and completion must each encode to at least one token")
                }
                if p.count >= maxLength { p = Array(p.suffix(maxLength - 1)) }
                if p.count + c.count > maxLength { c = Array(c.prefix(maxLength - p.count)) }
                return TrainingExample(context: p, target: c)
            }
        }
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch { throw ModelError.cannotRead(path: url.path, reason: "\(error)") }
        let ids = tokenizer.encode(text)
        var out: [TrainingExample] = []
        var start = 0
        while start + 1 < ids.count {
            let w = Array(ids[start..<min(start + maxLength, ids.count)])
            out.append(TrainingExample(context: [w[0]], target: Array(w.dropFirst())))
            start += maxLength
        }
        guard !out.isEmpty else { throw ModelError.invalidInput("\(url.path): fewer than 2 tokens of text") }
        return out
    }

    /// A seeded shuffle, then the last `fraction` (at least one example when fraction > 0 and
    /// there are two or more) held out.
    public static func split(_ examples: [TrainingExample], heldOutFraction fraction: Double, seed: UInt64) -> (train: [TrainingExample], heldOut: [TrainingExample]) {
        guard fraction > 0, examples.count >= 2 else { return (examples, []) }
        var rng = SeededGenerator(seed: seed)
        let shuffled = examples.shuffledDeterministically(using: &rng)
        let k = min(examples.count - 1, max(1, Int((Double(examples.count) * fraction).rounded())))
        return (Array(shuffled.prefix(examples.count - k)), Array(shuffled.suffix(k)))
    }
}

extension Array {
    /// Fisher–Yates with the given generator (the standard library's `shuffled` does not promise
    /// a stable algorithm across versions).
    func shuffledDeterministically<G: RandomNumberGenerator>(using g: inout G) -> [Element] {
        var a = self
        guard a.count > 1 else { return a }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = Int(g.next() % UInt64(i + 1))
            a.swapAt(i, j)
        }
        return a
    }
}
