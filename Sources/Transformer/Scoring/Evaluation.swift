import Foundation
import Tensors
import Tokenizers

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

    /// The result, or `ModelError.nonFiniteScore` when the mean NLL is NaN or infinite (what
    /// non-finite logits give), so `eval` fails instead of printing "mean NLL nan".
    public func checkedFinite(source: String) throws -> EvaluationResult {
        guard meanNLL.isFinite else { throw ModelError.nonFiniteScore(source: source, what: "mean NLL", value: meanNLL) }
        return self
    }
}

public struct PromptCompletion: Sendable, Equatable {
    public var prompt: String
    public var completion: String
    public init(prompt: String, completion: String) { self.prompt = prompt; self.completion = completion }

    /// Reads JSONL: one object per non-empty line with string fields `prompt` and `completion`.
    public static func readJSONL(_ url: URL) throws -> [PromptCompletion] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.cannotRead(path: url.path, reason: FileManager.default.fileExists(atPath: url.path)
                                        ? "cannot be read (\((error as NSError).localizedDescription))" : "no such file")
        }
        return try parseJSONL(data, path: url.path)
    }

    /// Parses the contents of a JSONL file as `readJSONL` does; `path` names it in errors.
    public static func parseJSONL(_ data: Data, path: String) throws -> [PromptCompletion] {
        guard let text = String(validating: data, as: UTF8.self) else {
            // Name the first line that is not UTF-8.
            var line = 1
            for chunk in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
                if String(validating: chunk, as: UTF8.self) == nil { break }
                line += 1
            }
            throw ModelError.invalidConfig(path: path, key: "line \(line)", reason: "not valid UTF-8 (JSONL files are UTF-8 text)")
        }
        var out: [PromptCompletion] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.isEmpty { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any],
                  let p = obj["prompt"] as? String, let c = obj["completion"] as? String else {
                throw ModelError.invalidConfig(path: path, key: "line \(i + 1)", reason: "expected {\"prompt\": string, \"completion\": string}")
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

    /// Tokens per packed forward pass in `evaluate(model:tokenized:)`: short examples are laid
    /// end to end up to this many tokens (an example longer than this runs alone).
    public static let packTokens = 512

    /// Passes run side by side by default: the thread budget over the BLAS threads each pass
    /// uses (both cores of a 2-core machine with weightsmith's one BLAS thread; 1 with
    /// `--threads 1`). The result does not depend on it.
    public static var defaultWorkers: Int { max(1, BLASThreads.budget / BLASThreads.current) }

    /// The same on token ids: (prompt ids, completion ids) pairs. Examples are packed, in order,
    /// into passes of about `packTokens` tokens (`TransformerModel.forwardPacked`: each example
    /// attends only to itself, logits only where a completion token is scored); `workers` > 1
    /// runs passes side by side. Packing depends only on the data and the sums are taken in
    /// example order afterwards, so the result is bit-identical for any number of workers.
    public static func evaluate(model: TransformerModel, tokenized: [([Int], [Int])], workers: Int = Evaluator.defaultWorkers,
                                packTokens: Int = Evaluator.packTokens,
                                progress: ((Int, Int) -> Void)? = nil) throws -> EvaluationResult {
        let V = model.config.vocabSize
        for (i, (p, c)) in tokenized.enumerated() {
            if p.isEmpty || c.isEmpty {
                throw ModelError.invalidInput("example \(i + 1): the prompt and the completion must each encode to at least one token")
            }
            if p.count + c.count > model.config.maxPositions {
                throw ModelError.invalidInput("example \(i + 1): \(p.count + c.count) tokens exceed the model's context length of \(model.config.maxPositions) (max_position_embeddings); shorten the prompt")
            }
        }
        // Passes: consecutive runs of examples up to packTokens tokens.
        let packs = TrainingBatch.packedRuns(lengths: tokenized.map { $0.0.count + $0.1.count }, tokens: packTokens)

        // Per pass: for each example, log-probabilities of its completion tokens and whether all were the argmax.
        func pass(_ k: Int) throws -> [([Double], Bool)] {
            let range = packs[k]
            var seqs: [[Int]] = [], rows: [Int] = []
            var offset = 0
            for i in range {
                let (p, c) = tokenized[i]
                seqs.append(p + c)
                // logits at position pos predict token pos + 1
                for j in 0..<c.count { rows.append(offset + p.count - 1 + j) }
                offset += p.count + c.count
            }
            let logits = try model.forwardPacked(seqs, logitRows: rows)
            var out: [([Double], Bool)] = []
            var r = 0
            for i in range {
                let c = tokenized[i].1
                var lp: [Double] = []
                lp.reserveCapacity(c.count)
                var allMatch = true
                for target in c {
                    let row = logits.scalars[r * V..<(r + 1) * V]
                    lp.append(logProb(row, target))
                    if Sampler.argmax(row) != target { allMatch = false }
                    r += 1
                }
                out.append((lp, allMatch))
            }
            return out
        }
        let w = min(max(1, workers), packs.count)
        let state = EvaluationState(count: packs.count)
        if w <= 1 {
            var done = 0
            for k in packs.indices {
                state.results[k] = try pass(k)
                done += packs[k].count
                progress?(done, tokenized.count)
            }
        } else {
            nonisolated(unsafe) let pass = pass, progress = progress
            let packs = packs
            DispatchQueue.concurrentPerform(iterations: w) { worker in
                var k = worker
                while k < packs.count, !state.failed {
                    do {
                        let r = try pass(k)
                        let d = state.store(k, r)
                        if worker == 0 { progress?(d, tokenized.count) }
                    } catch {
                        state.fail(error)
                        return
                    }
                    k += w
                }
            }
            if let e = state.error { throw e }
            progress?(tokenized.count, tokenized.count)
        }
        var nll = 0.0, scored = 0, exact = 0
        for case let results? in state.results {
            for (lp, match) in results {
                for v in lp { nll -= v }
                scored += lp.count
                if match { exact += 1 }
            }
        }
        let mean = scored > 0 ? nll / Double(scored) : 0
        return EvaluationResult(examples: tokenized.count, scoredTokens: scored, meanNLL: mean, perplexity: Foundation.exp(mean),
                                exactMatch: tokenized.isEmpty ? nil : Double(exact) / Double(tokenized.count))
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

/// Results of passes evaluated side by side (per pass, per example), and the first error.
private final class EvaluationState: @unchecked Sendable {
    let lock = NSLock()
    var results: [[([Double], Bool)]?]
    var error: Error?
    var done = 0
    init(count: Int) { results = Array(repeating: nil, count: count) }
    var failed: Bool { lock.lock(); defer { lock.unlock() }; return error != nil }
    func store(_ i: Int, _ r: [([Double], Bool)]) -> Int {
        lock.lock(); defer { lock.unlock() }
        results[i] = r
        done += r.count
        return done
    }
    func fail(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
}
