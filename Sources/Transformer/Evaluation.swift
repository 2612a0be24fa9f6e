import Foundation

/// Scores a model on data it did not generate.
///
/// - Prompt/completion pairs: the completion tokens' mean negative log-likelihood (natural log)
///   given the prompt, its perplexity exp(NLL), and greedy exact match. The prompt is encoded
///   with special tokens (BOS), the completion without, and the two id lists are concatenated.
///   Exact match uses teacher forcing: greedy decoding reproduces the completion exactly iff the
///   argmax at every completion position is the completion's token (each step then sees the
///   same context), so one forward pass decides it.
/// - Plain text: perplexity of the whole token stream in consecutive windows of `window`
///   tokens; the first token of each window is context only (not scored).
public struct EvaluationResult: Codable, Sendable, Equatable {
    public var examples: Int
    public var scoredTokens: Int
    public var meanNLL: Double
    public var perplexity: Double
    /// Fraction of examples whose completion greedy decoding reproduces (nil for plain text).
    public var exactMatch: Double?

    enum CodingKeys: String, CodingKey {
        case examples, scoredTokens = "scored_tokens", meanNLL = "mean_nll", perplexity, exactMatch = "exact_match"
    }
}

public struct PromptCompletion: Sendable, Equatable {
    public var prompt: String
    public var completion: String
    public init(prompt: String, completion: String) { self.prompt = prompt; self.completion = completion }

    /// Reads JSONL: one object per non-empty line with string fields `prompt` and `completion`.
    public static func readJSONL(_ url: URL) throws -> [PromptCompletion] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw ModelError.cannotRead(path: url.path, reason: "\(error)")
        }
        var out: [PromptCompletion] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.isEmpty { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any],
                  let p = obj["prompt"] as? String, let c = obj["completion"] as? String else {
                throw ModelError.invalidConfig(path: url.path, key: "line \(i + 1)", reason: "expected {\"prompt\": string, \"completion\": string}")
            }
            out.append(PromptCompletion(prompt: p, completion: c))
        }
        return out
    }
}

public struct Evaluator {
    public let model: TransformerModel
    public let tokenizer: BPETokenizer

    public init(model: TransformerModel, tokenizer: BPETokenizer) { self.model = model; self.tokenizer = tokenizer }

    /// log p(target) under `logits` (one row), in Float64.
    static func logProb(_ row: ArraySlice<Float>, _ target: Int) -> Double {
        let m = Double(row.max() ?? 0)
        var s = 0.0
        for v in row { s += Foundation.exp(Double(v) - m) }
        return Double(row[row.startIndex + target]) - m - Foundation.log(s)
    }

    public func evaluate(_ examples: [PromptCompletion], progress: ((Int, Int) -> Void)? = nil) throws -> EvaluationResult {
        let tokenized = examples.map { (tokenizer.encode($0.prompt), tokenizer.encode($0.completion, addSpecialTokens: false)) }
        return try Self.evaluate(model: model, tokenized: tokenized, progress: progress)
    }

    /// The same on token ids: (prompt ids, completion ids) pairs.
    public static func evaluate(model: TransformerModel, tokenized: [([Int], [Int])], progress: ((Int, Int) -> Void)? = nil) throws -> EvaluationResult {
        let V = model.config.vocabSize
        let examples = tokenized
        var nll = 0.0, scored = 0, exact = 0
        for (i, (p, c)) in tokenized.enumerated() {
            guard !p.isEmpty, !c.isEmpty else {
                throw ModelError.invalidInput("example \(i + 1): the prompt and the completion must each encode to at least one token")
            }
            let ids = p + c
            let logits = try model.forward([ids])
            var allMatch = true
            for (j, target) in c.enumerated() {
                let pos = p.count - 1 + j       // logits at pos predict token pos + 1
                let row = logits.scalars[pos * V..<(pos + 1) * V]
                nll -= logProb(row, target)
                if Sampler.argmax(row) != target { allMatch = false }
            }
            scored += c.count
            if allMatch { exact += 1 }
            progress?(i + 1, examples.count)
        }
        let mean = scored > 0 ? nll / Double(scored) : 0
        return EvaluationResult(examples: examples.count, scoredTokens: scored, meanNLL: mean, perplexity: Foundation.exp(mean),
                                exactMatch: examples.isEmpty ? nil : Double(exact) / Double(examples.count))
    }

    public func perplexity(text: String, window: Int, progress: ((Int, Int) -> Void)? = nil) throws -> EvaluationResult {
        guard window >= 2 else { throw ModelError.invalidInput("the window must be at least 2 tokens") }
        let ids = tokenizer.encode(text)
        guard ids.count >= 2 else { throw ModelError.invalidInput("the text has fewer than 2 tokens") }
        let V = model.config.vocabSize
        var nll = 0.0, scored = 0
        var start = 0
        var windows = 0
        let total = (ids.count + window - 2) / (window - 1)
        while start < ids.count - 1 {
            let chunk = Array(ids[start..<min(start + window, ids.count)])
            let logits = try model.forward([chunk])
            for t in 0..<chunk.count - 1 {
                nll -= Self.logProb(logits.scalars[t * V..<(t + 1) * V], chunk[t + 1])
            }
            scored += chunk.count - 1
            windows += 1
            progress?(windows, total)
            // The next window starts at this window's last token (context only there).
            start += chunk.count - 1
        }
        let mean = nll / Double(scored)
        return EvaluationResult(examples: windows, scoredTokens: scored, meanNLL: mean, perplexity: Foundation.exp(mean), exactMatch: nil)
    }
}
